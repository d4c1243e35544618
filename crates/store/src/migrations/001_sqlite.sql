-- yigong schema v1 (SQLite)
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Current version of every FHIR resource (a rowid table: bodies are ~1 kB, which
-- WITHOUT ROWID would spill to overflow pages). The body is the JSON served to clients,
-- meta included, so a read is a single indexed lookup with no re-serialisation.
CREATE TABLE IF NOT EXISTS resource (
  rtype TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  org TEXT,            -- directly referenced organisation (managingOrganization, serviceProvider, partOf, ...)
  inst TEXT,           -- responsible institution (scope)
  comm TEXT,           -- its medical community (scope)
  patient TEXT,        -- the patient the resource is about (its own id for Patient)
  pinst TEXT,          -- the patient's managing institution (scope)
  pcomm TEXT,          -- the patient's community (scope)
  sdate TEXT,          -- the resource's main date, ISO 8601, for search and sort
  sname TEXT,          -- the first name search value, for sorting by name
  idx TEXT,            -- this row's search_index entries, so an update deletes exactly them
  body TEXT NOT NULL,
  PRIMARY KEY (rtype, id)
);
CREATE INDEX IF NOT EXISTS resource_patient ON resource (patient, rtype, sdate);
CREATE INDEX IF NOT EXISTS resource_date ON resource (rtype, sdate);
CREATE INDEX IF NOT EXISTS resource_org ON resource (rtype, org, sdate);
CREATE INDEX IF NOT EXISTS resource_pcomm ON resource (rtype, pcomm, sdate);

-- Earlier versions (the current one lives in resource).
CREATE TABLE IF NOT EXISTS resource_history (
  rtype TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated TEXT NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  body TEXT NOT NULL,
  PRIMARY KEY (rtype, id, version)
);

-- Search parameter values, one row per (resource, parameter, value).
CREATE TABLE IF NOT EXISTS search_index (
  rtype TEXT NOT NULL,
  param TEXT NOT NULL,
  value TEXT NOT NULL,
  id TEXT NOT NULL,
  PRIMARY KEY (rtype, param, value, id)
) WITHOUT ROWID;

-- The organisation tree, kept beside the Organization resources for scope decisions.
CREATE TABLE IF NOT EXISTS org_tree (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  kind TEXT,
  tier TEXT,
  parent TEXT,
  inst TEXT,           -- the institution this node belongs to (itself for institutions)
  comm TEXT,           -- the community it belongs to
  sub_centre INTEGER NOT NULL DEFAULT 0,
  lead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS org_tree_parent ON org_tree (parent);

CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  institution TEXT,
  action TEXT NOT NULL,
  rtype TEXT,
  rid TEXT,
  version INTEGER,
  reason TEXT
);
CREATE INDEX IF NOT EXISTS audit_resource ON audit (rtype, rid);

-- Reads of patient records by people (who looked at my record).
CREATE TABLE IF NOT EXISTS access_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  institution TEXT,
  rtype TEXT NOT NULL,
  rid TEXT NOT NULL,
  patient TEXT
);
CREATE INDEX IF NOT EXISTS access_log_patient ON access_log (patient, at);

CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  display TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL,
  scope_kind TEXT NOT NULL,
  scope_id TEXT,
  institution TEXT,
  active INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE IF NOT EXISTS credentials (
  hash TEXT PRIMARY KEY,
  user_name TEXT NOT NULL REFERENCES users (name),
  kind TEXT NOT NULL,
  created TEXT NOT NULL,
  expires TEXT NOT NULL
);

-- Encounters per local month and institution, maintained in the same transaction
-- as every encounter write, so the overview never scans the encounter table.
-- Registered residents (Patient records) per community, maintained in the same
-- transaction as every Patient write: the insurance budget's default enrollees.
CREATE TABLE IF NOT EXISTS resident_count (
  comm TEXT PRIMARY KEY,
  n INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS encounter_month (
  month TEXT NOT NULL,
  inst TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (month, inst)
);
