-- The operations centre (issue 6): its configuration and its records. Every
-- write is one transaction with its audit row, rows with a version are
-- updated only by a writer who saw the current version.

-- Evaluation standards uploaded as files (the newest row is in force, the
-- shipped national standard applies while there is none).
CREATE TABLE IF NOT EXISTS ops_standard (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  std_id TEXT NOT NULL,
  std_version TEXT NOT NULL,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  uploaded_by TEXT NOT NULL,
  uploaded_at TEXT NOT NULL
);

-- Attested grades per community, standard (id and version) and criterion.
CREATE TABLE IF NOT EXISTS ops_attest (
  comm TEXT NOT NULL,
  std_key TEXT NOT NULL,
  criterion TEXT NOT NULL,
  grade TEXT NOT NULL,
  note TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (comm, std_key, criterion)
);

-- Evidence attachments of an attested grade (the file as base64 text).
CREATE TABLE IF NOT EXISTS ops_evidence (
  id TEXT PRIMARY KEY,
  comm TEXT NOT NULL,
  std_key TEXT NOT NULL,
  criterion TEXT NOT NULL,
  file_name TEXT NOT NULL,
  content_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  data TEXT NOT NULL,
  uploaded_by TEXT NOT NULL,
  uploaded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_evidence_crit ON ops_evidence (comm, std_key, criterion);

-- The insurance global budget of a community and year. enrollees NULL means
-- the count of the community's registered residents.
CREATE TABLE IF NOT EXISTS ops_budget (
  comm TEXT NOT NULL,
  yr INTEGER NOT NULL,
  enrollees INTEGER,
  per_capita INTEGER NOT NULL,
  reserve_bp INTEGER NOT NULL,
  rule TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (comm, yr)
);

-- Special funds: the total per community and year, and the ledger of
-- allocations and spending (replayed through the pure rules on every write).
CREATE TABLE IF NOT EXISTS ops_fund (
  comm TEXT NOT NULL,
  yr INTEGER NOT NULL,
  total INTEGER NOT NULL,
  version INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (comm, yr)
);
CREATE TABLE IF NOT EXISTS ops_fund_entry (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  comm TEXT NOT NULL,
  yr INTEGER NOT NULL,
  kind TEXT NOT NULL,
  purpose TEXT NOT NULL,
  name TEXT NOT NULL,
  amount INTEGER NOT NULL,
  note TEXT NOT NULL,
  actor TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_fund_entry_fund ON ops_fund_entry (comm, yr, seq);

-- Notify / warn / summon rules (the body is an EscalationRule as JSON).
CREATE TABLE IF NOT EXISTS ops_rule (
  id TEXT PRIMARY KEY,
  subject_level TEXT NOT NULL,
  body TEXT NOT NULL,
  active INTEGER NOT NULL,
  version INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- The record of each escalation step taken: who notified whom, when.
CREATE TABLE IF NOT EXISTS ops_step (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  rule_id TEXT NOT NULL,
  org TEXT NOT NULL,
  comm TEXT,
  step_level TEXT NOT NULL,
  since TEXT NOT NULL,
  period TEXT NOT NULL,
  notified TEXT NOT NULL,
  note TEXT NOT NULL,
  actor TEXT NOT NULL,
  at TEXT NOT NULL,
  UNIQUE (rule_id, org, step_level, since)
);
CREATE INDEX IF NOT EXISTS ops_step_org ON ops_step (org, seq);

-- Assessment cycles (self-evaluation, assessment, result, feedback) per
-- community and year, and their transitions.
CREATE TABLE IF NOT EXISTS ops_cycle (
  comm TEXT NOT NULL,
  yr INTEGER NOT NULL,
  start_date TEXT NOT NULL,
  days TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (comm, yr)
);
CREATE TABLE IF NOT EXISTS ops_cycle_step (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  comm TEXT NOT NULL,
  yr INTEGER NOT NULL,
  from_step TEXT NOT NULL,
  to_step TEXT NOT NULL,
  on_date TEXT NOT NULL,
  late_days INTEGER NOT NULL,
  note TEXT NOT NULL,
  actor TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_cycle_step_cycle ON ops_cycle_step (comm, yr, seq);
