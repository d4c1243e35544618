-- yigong schema v1 (PostgreSQL)
CREATE TABLE IF NOT EXISTS meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT COLLATE "C" NOT NULL);

-- Current version of every FHIR resource. The body is the JSON served to clients,
-- meta included, so a read is a single indexed lookup with no re-serialisation.
CREATE TABLE IF NOT EXISTS resource (
  rtype TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  updated TEXT COLLATE "C" NOT NULL,
  deleted BIGINT NOT NULL DEFAULT 0,
  org TEXT COLLATE "C",            -- directly referenced organisation (managingOrganization, serviceProvider, partOf, ...)
  inst TEXT COLLATE "C",           -- responsible institution (scope)
  comm TEXT COLLATE "C",           -- its medical community (scope)
  patient TEXT COLLATE "C",        -- the patient the resource is about (its own id for Patient)
  pinst TEXT COLLATE "C",          -- the patient's managing institution (scope)
  pcomm TEXT COLLATE "C",          -- the patient's community (scope)
  sdate TEXT COLLATE "C",          -- the resource's main date, ISO 8601, for search and sort
  sname TEXT COLLATE "C",          -- the first name search value, for sorting by name
  idx TEXT COLLATE "C",            -- this row's search_index entries, so an update deletes exactly them
  body TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (rtype, id)
);
CREATE INDEX IF NOT EXISTS resource_patient ON resource (patient, rtype, sdate);
CREATE INDEX IF NOT EXISTS resource_date ON resource (rtype, sdate);
CREATE INDEX IF NOT EXISTS resource_org ON resource (rtype, org, sdate);
CREATE INDEX IF NOT EXISTS resource_pcomm ON resource (rtype, pcomm, sdate);

-- Earlier versions (the current one lives in resource).
CREATE TABLE IF NOT EXISTS resource_history (
  rtype TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  updated TEXT COLLATE "C" NOT NULL,
  deleted BIGINT NOT NULL DEFAULT 0,
  body TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (rtype, id, version)
);

-- Search parameter values, one row per (resource, parameter, value).
CREATE TABLE IF NOT EXISTS search_index (
  rtype TEXT COLLATE "C" NOT NULL,
  param TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (rtype, param, value, id)
);

-- The organisation tree, kept beside the Organization resources for scope decisions.
CREATE TABLE IF NOT EXISTS org_tree (
  id TEXT COLLATE "C" PRIMARY KEY,
  name TEXT COLLATE "C" NOT NULL,
  kind TEXT COLLATE "C",
  tier TEXT COLLATE "C",
  parent TEXT COLLATE "C",
  inst TEXT COLLATE "C",           -- the institution this node belongs to (itself for institutions)
  comm TEXT COLLATE "C",           -- the community it belongs to
  sub_centre BIGINT NOT NULL DEFAULT 0,
  lead BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS org_tree_parent ON org_tree (parent);

CREATE TABLE IF NOT EXISTS audit (
  seq BIGSERIAL PRIMARY KEY,
  at TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  institution TEXT COLLATE "C",
  action TEXT COLLATE "C" NOT NULL,
  rtype TEXT COLLATE "C",
  rid TEXT COLLATE "C",
  version BIGINT,
  reason TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS audit_resource ON audit (rtype, rid);

-- Reads of patient records by people (who looked at my record).
CREATE TABLE IF NOT EXISTS access_log (
  seq BIGSERIAL PRIMARY KEY,
  at TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  institution TEXT COLLATE "C",
  rtype TEXT COLLATE "C" NOT NULL,
  rid TEXT COLLATE "C" NOT NULL,
  patient TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS access_log_patient ON access_log (patient, at);

CREATE TABLE IF NOT EXISTS users (
  name TEXT COLLATE "C" PRIMARY KEY,
  display TEXT COLLATE "C" NOT NULL,
  password_hash TEXT COLLATE "C" NOT NULL,
  role TEXT COLLATE "C" NOT NULL,
  scope_kind TEXT COLLATE "C" NOT NULL,
  scope_id TEXT COLLATE "C",
  institution TEXT COLLATE "C",
  active BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE IF NOT EXISTS credentials (
  hash TEXT COLLATE "C" PRIMARY KEY,
  user_name TEXT COLLATE "C" NOT NULL REFERENCES users (name),
  kind TEXT COLLATE "C" NOT NULL,
  created TEXT COLLATE "C" NOT NULL,
  expires TEXT COLLATE "C" NOT NULL
);

-- Registered residents (Patient records) per community, maintained in the same
-- transaction as every Patient write: the insurance budget's default enrollees.
CREATE TABLE IF NOT EXISTS resident_count (
  comm TEXT COLLATE "C" PRIMARY KEY,
  n BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS encounter_month (
  month TEXT COLLATE "C" NOT NULL,
  inst TEXT COLLATE "C" NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (month, inst)
);
