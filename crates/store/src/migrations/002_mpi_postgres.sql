-- Master patient index (one person, one file).

-- Master persons: the golden record and the electronic health card.
CREATE TABLE IF NOT EXISTS mpi_person (
  id TEXT COLLATE "C" PRIMARY KEY,
  card TEXT COLLATE "C" NOT NULL UNIQUE,     -- 电子健康卡号
  version BIGINT NOT NULL,
  status TEXT COLLATE "C" NOT NULL,          -- active | merged
  merged_into TEXT COLLATE "C",
  golden TEXT NOT NULL,            -- JSON: best value per field
  updated TEXT COLLATE "C" NOT NULL
);

-- Each Patient record belongs to exactly one master person.
CREATE TABLE IF NOT EXISTS mpi_link (
  patient TEXT COLLATE "C" PRIMARY KEY,
  person TEXT COLLATE "C" NOT NULL,
  method TEXT COLLATE "C" NOT NULL,          -- new | auto | manual
  probability BIGINT,             -- parts per million
  explanation TEXT,                -- JSON, why it was linked
  raw TEXT NOT NULL,               -- JSON, the registration fields as compared
  updated TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS mpi_link_person ON mpi_link (person);

-- Blocking keys: a new registration is compared with records sharing one.
CREATE TABLE IF NOT EXISTS mpi_key (
  key BIGINT NOT NULL,
  patient TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (key, patient)
);
CREATE INDEX IF NOT EXISTS mpi_key_patient ON mpi_key (patient);

-- Possible matches awaiting a data steward, and their decisions.
CREATE TABLE IF NOT EXISTS mpi_review (
  id BIGSERIAL PRIMARY KEY,
  a TEXT COLLATE "C" NOT NULL,
  b TEXT COLLATE "C" NOT NULL,
  probability BIGINT NOT NULL,
  explanation TEXT NOT NULL,
  a_version BIGINT NOT NULL,       -- Patient versions when scored: a decision on
  b_version BIGINT NOT NULL,       -- changed records is stale
  status TEXT COLLATE "C" NOT NULL,          -- open | merged | distinct
  created TEXT COLLATE "C" NOT NULL,
  decided_by TEXT COLLATE "C",
  decided_at TEXT COLLATE "C",
  reason TEXT,
  UNIQUE (a, b)
);
CREATE INDEX IF NOT EXISTS mpi_review_status ON mpi_review (status, probability);

-- Steward merges, with exactly what moved so an unmerge restores it.
CREATE TABLE IF NOT EXISTS mpi_merge (
  id BIGSERIAL PRIMARY KEY,
  survivor TEXT COLLATE "C" NOT NULL,
  merged TEXT COLLATE "C" NOT NULL,
  moved TEXT NOT NULL,             -- JSON [{patient, method, probability}]
  review BIGINT,
  actor TEXT COLLATE "C" NOT NULL,
  at TEXT COLLATE "C" NOT NULL,
  reason TEXT,
  undone_at TEXT COLLATE "C"
);
