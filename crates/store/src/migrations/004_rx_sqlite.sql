-- Prescription review (issue 5). A prescription is one row with its engine
-- input and findings as JSON. Every transition bumps `version` (If-Match) and
-- appends an rx_event row and an audit row in the same transaction.
CREATE TABLE IF NOT EXISTS rx_prescription (
  id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  patient TEXT NOT NULL,
  patient_name TEXT NOT NULL,
  inst TEXT NOT NULL,             -- prescribing institution
  comm TEXT,                      -- its community (scope, review queue)
  prescriber TEXT NOT NULL,       -- user name
  prescriber_name TEXT NOT NULL,
  status TEXT NOT NULL,           -- pending | passed | returned | dispensed | cancelled
  verdict TEXT NOT NULL,          -- engine: pass | review | blocked
  top_rule TEXT,                  -- the most severe finding's rule (queue display)
  body TEXT NOT NULL,             -- JSON: yigong_rx::Prescription
  findings TEXT NOT NULL,         -- JSON: [Finding]
  formulary_version INTEGER NOT NULL,
  amount_fen INTEGER,             -- set when dispensed
  created TEXT NOT NULL,
  submitted TEXT NOT NULL,
  due TEXT NOT NULL,              -- review deadline
  overdue INTEGER NOT NULL DEFAULT 0,
  reviewer TEXT, reviewed_at TEXT, review_note TEXT,
  dispenser TEXT, dispensed_at TEXT,
  month TEXT NOT NULL             -- local YYYY-MM of submission (post-hoc sampling)
);
CREATE INDEX IF NOT EXISTS rx_queue ON rx_prescription (comm, status, due);
CREATE INDEX IF NOT EXISTS rx_inst_month ON rx_prescription (inst, month);
CREATE INDEX IF NOT EXISTS rx_by_prescriber ON rx_prescription (prescriber, status, submitted);
CREATE INDEX IF NOT EXISTS rx_patient ON rx_prescription (patient, submitted);

CREATE TABLE IF NOT EXISTS rx_event (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  rx TEXT NOT NULL,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,           -- submit | pass | return | resubmit | dispense | cancel | timeout-pass | escalate
  from_status TEXT,
  to_status TEXT NOT NULL,
  note TEXT
);
CREATE INDEX IF NOT EXISTS rx_event_rx ON rx_event (rx, seq);

-- Prescribing rights (处方权) per user. Users without a row get their role's default.
CREATE TABLE IF NOT EXISTS rx_prescriber (
  username TEXT PRIMARY KEY,
  antimicrobial TEXT,             -- non-restricted | restricted | special | NULL
  narcotic_right INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL
);

-- Pharmacy-committee decisions (药事会决议): the formulary in force is the
-- shipped data with every decision whose effective date has come applied in order.
CREATE TABLE IF NOT EXISTS rx_decision (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  meeting TEXT NOT NULL,          -- minutes reference, e.g. 2026年第3次药事会
  kind TEXT NOT NULL,             -- add | remove | restrict | unrestrict | update
  drug TEXT NOT NULL,
  effective TEXT NOT NULL,        -- YYYY-MM-DD
  reason TEXT NOT NULL,
  entry TEXT                      -- JSON Drug for add/update, Restriction for restrict
);

-- Post-hoc review (处方点评): sampled prescriptions and their verdicts.
CREATE TABLE IF NOT EXISTS rx_comment (
  rx TEXT PRIMARY KEY,
  month TEXT NOT NULL,
  inst TEXT NOT NULL,
  comm TEXT,
  prescriber TEXT NOT NULL,
  sampled_at TEXT NOT NULL,
  sampled_by TEXT NOT NULL,
  result TEXT,                    -- rational | non-standard | inappropriate | abnormal
  codes TEXT,                     -- JSON array of category codes (e.g. "N11", "I5")
  note TEXT,
  reviewer TEXT,
  reviewed_at TEXT,
  version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rx_comment_month ON rx_comment (month, inst);
