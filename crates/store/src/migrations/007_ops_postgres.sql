-- The operations centre (issue 6): its configuration and its records. Every
-- write is one transaction with its audit row, rows with a version are
-- updated only by a writer who saw the current version.

-- Evaluation standards uploaded as files (the newest row is in force, the
-- shipped national standard applies while there is none).
CREATE TABLE IF NOT EXISTS ops_standard (
  seq BIGSERIAL PRIMARY KEY,
  std_id TEXT COLLATE "C" NOT NULL,
  std_version TEXT COLLATE "C" NOT NULL,
  title TEXT COLLATE "C" NOT NULL,
  body TEXT COLLATE "C" NOT NULL,
  uploaded_by TEXT COLLATE "C" NOT NULL,
  uploaded_at TEXT COLLATE "C" NOT NULL
);

-- Attested grades per community, standard (id and version) and criterion.
CREATE TABLE IF NOT EXISTS ops_attest (
  comm TEXT COLLATE "C" NOT NULL,
  std_key TEXT COLLATE "C" NOT NULL,
  criterion TEXT COLLATE "C" NOT NULL,
  grade TEXT COLLATE "C" NOT NULL,
  note TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  updated_by TEXT COLLATE "C" NOT NULL,
  updated_at TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (comm, std_key, criterion)
);

-- Evidence attachments of an attested grade (the file as base64 text).
CREATE TABLE IF NOT EXISTS ops_evidence (
  id TEXT COLLATE "C" PRIMARY KEY,
  comm TEXT COLLATE "C" NOT NULL,
  std_key TEXT COLLATE "C" NOT NULL,
  criterion TEXT COLLATE "C" NOT NULL,
  file_name TEXT COLLATE "C" NOT NULL,
  content_type TEXT COLLATE "C" NOT NULL,
  size BIGINT NOT NULL,
  data TEXT COLLATE "C" NOT NULL,
  uploaded_by TEXT COLLATE "C" NOT NULL,
  uploaded_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_evidence_crit ON ops_evidence (comm, std_key, criterion);

-- The insurance global budget of a community and year. enrollees NULL means
-- the count of the community's registered residents.
CREATE TABLE IF NOT EXISTS ops_budget (
  comm TEXT COLLATE "C" NOT NULL,
  yr BIGINT NOT NULL,
  enrollees BIGINT,
  per_capita BIGINT NOT NULL,
  reserve_bp BIGINT NOT NULL,
  rule TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  updated_by TEXT COLLATE "C" NOT NULL,
  updated_at TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (comm, yr)
);

-- Special funds: the total per community and year, and the ledger of
-- allocations and spending (replayed through the pure rules on every write).
CREATE TABLE IF NOT EXISTS ops_fund (
  comm TEXT COLLATE "C" NOT NULL,
  yr BIGINT NOT NULL,
  total BIGINT NOT NULL,
  version BIGINT NOT NULL,
  updated_by TEXT COLLATE "C" NOT NULL,
  updated_at TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (comm, yr)
);
CREATE TABLE IF NOT EXISTS ops_fund_entry (
  seq BIGSERIAL PRIMARY KEY,
  comm TEXT COLLATE "C" NOT NULL,
  yr BIGINT NOT NULL,
  kind TEXT COLLATE "C" NOT NULL,
  purpose TEXT COLLATE "C" NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  amount BIGINT NOT NULL,
  note TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_fund_entry_fund ON ops_fund_entry (comm, yr, seq);

-- Notify / warn / summon rules (the body is an EscalationRule as JSON).
CREATE TABLE IF NOT EXISTS ops_rule (
  id TEXT COLLATE "C" PRIMARY KEY,
  subject_level TEXT COLLATE "C" NOT NULL,
  body TEXT COLLATE "C" NOT NULL,
  active BIGINT NOT NULL,
  version BIGINT NOT NULL,
  updated_by TEXT COLLATE "C" NOT NULL,
  updated_at TEXT COLLATE "C" NOT NULL
);

-- The record of each escalation step taken: who notified whom, when.
CREATE TABLE IF NOT EXISTS ops_step (
  seq BIGSERIAL PRIMARY KEY,
  rule_id TEXT COLLATE "C" NOT NULL,
  org TEXT COLLATE "C" NOT NULL,
  comm TEXT COLLATE "C",
  step_level TEXT COLLATE "C" NOT NULL,
  since TEXT COLLATE "C" NOT NULL,
  period TEXT COLLATE "C" NOT NULL,
  notified TEXT COLLATE "C" NOT NULL,
  note TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  at TEXT COLLATE "C" NOT NULL,
  UNIQUE (rule_id, org, step_level, since)
);
CREATE INDEX IF NOT EXISTS ops_step_org ON ops_step (org, seq);

-- Assessment cycles (self-evaluation, assessment, result, feedback) per
-- community and year, and their transitions.
CREATE TABLE IF NOT EXISTS ops_cycle (
  comm TEXT COLLATE "C" NOT NULL,
  yr BIGINT NOT NULL,
  start_date TEXT COLLATE "C" NOT NULL,
  days TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  updated_by TEXT COLLATE "C" NOT NULL,
  updated_at TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (comm, yr)
);
CREATE TABLE IF NOT EXISTS ops_cycle_step (
  seq BIGSERIAL PRIMARY KEY,
  comm TEXT COLLATE "C" NOT NULL,
  yr BIGINT NOT NULL,
  from_step TEXT COLLATE "C" NOT NULL,
  to_step TEXT COLLATE "C" NOT NULL,
  on_date TEXT COLLATE "C" NOT NULL,
  late_days BIGINT NOT NULL,
  note TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_cycle_step_cycle ON ops_cycle_step (comm, yr, seq);
