-- Master patient index (one person, one file).

-- Master persons: the golden record and the electronic health card.
CREATE TABLE IF NOT EXISTS mpi_person (
  id TEXT PRIMARY KEY,
  card TEXT NOT NULL UNIQUE,     -- 电子健康卡号
  version BIGINT NOT NULL,
  status TEXT NOT NULL,          -- active | merged
  merged_into TEXT,
  golden TEXT NOT NULL,            -- JSON: best value per field
  updated TEXT NOT NULL
);

-- Each Patient record belongs to exactly one master person.
CREATE TABLE IF NOT EXISTS mpi_link (
  patient TEXT PRIMARY KEY,
  person TEXT NOT NULL,
  method TEXT NOT NULL,          -- new | auto | manual
  probability BIGINT,             -- parts per million
  explanation TEXT,                -- JSON, why it was linked
  raw TEXT NOT NULL,               -- JSON, the registration fields as compared
  updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mpi_link_person ON mpi_link (person);

-- Blocking keys: a new registration is compared with records sharing one.
CREATE TABLE IF NOT EXISTS mpi_key (
  key BIGINT NOT NULL,
  patient TEXT NOT NULL,
  PRIMARY KEY (key, patient)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mpi_key_patient ON mpi_key (patient);

-- Possible matches awaiting a data steward, and their decisions.
CREATE TABLE IF NOT EXISTS mpi_review (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  a TEXT NOT NULL,
  b TEXT NOT NULL,
  probability BIGINT NOT NULL,
  explanation TEXT NOT NULL,
  a_version BIGINT NOT NULL,       -- Patient versions when scored: a decision on
  b_version BIGINT NOT NULL,       -- changed records is stale
  status TEXT NOT NULL,          -- open | merged | distinct
  created TEXT NOT NULL,
  decided_by TEXT,
  decided_at TEXT,
  reason TEXT,
  UNIQUE (a, b)
);
CREATE INDEX IF NOT EXISTS mpi_review_status ON mpi_review (status, probability);

-- Steward merges, with exactly what moved so an unmerge restores it.
CREATE TABLE IF NOT EXISTS mpi_merge (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  survivor TEXT NOT NULL,
  merged TEXT NOT NULL,
  moved TEXT NOT NULL,             -- JSON [{patient, method, probability}]
  review BIGINT,
  actor TEXT NOT NULL,
  at TEXT NOT NULL,
  reason TEXT,
  undone_at TEXT
);
