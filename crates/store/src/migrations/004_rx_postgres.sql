-- Prescription review (issue 5). A prescription is one row with its engine
-- input and findings as JSON. Every transition bumps `version` (If-Match) and
-- appends an rx_event row and an audit row in the same transaction.
CREATE TABLE IF NOT EXISTS rx_prescription (
  id TEXT COLLATE "C" PRIMARY KEY,
  version BIGINT NOT NULL,
  patient TEXT COLLATE "C" NOT NULL,
  patient_name TEXT COLLATE "C" NOT NULL,
  inst TEXT COLLATE "C" NOT NULL,             -- prescribing institution
  comm TEXT COLLATE "C",                      -- its community (scope, review queue)
  prescriber TEXT COLLATE "C" NOT NULL,       -- user name
  prescriber_name TEXT COLLATE "C" NOT NULL,
  status TEXT COLLATE "C" NOT NULL,           -- pending | passed | returned | dispensed | cancelled
  verdict TEXT COLLATE "C" NOT NULL,          -- engine: pass | review | blocked
  top_rule TEXT COLLATE "C",                  -- the most severe finding's rule (queue display)
  body TEXT COLLATE "C" NOT NULL,             -- JSON: yigong_rx::Prescription
  findings TEXT COLLATE "C" NOT NULL,         -- JSON: [Finding]
  formulary_version BIGINT NOT NULL,
  amount_fen BIGINT,             -- set when dispensed
  created TEXT COLLATE "C" NOT NULL,
  submitted TEXT COLLATE "C" NOT NULL,
  due TEXT COLLATE "C" NOT NULL,              -- review deadline
  overdue BIGINT NOT NULL DEFAULT 0,
  reviewer TEXT COLLATE "C", reviewed_at TEXT, review_note TEXT,
  dispenser TEXT COLLATE "C", dispensed_at TEXT,
  month TEXT COLLATE "C" NOT NULL             -- local YYYY-MM of submission (post-hoc sampling)
);
CREATE INDEX IF NOT EXISTS rx_queue ON rx_prescription (comm, status, due);
CREATE INDEX IF NOT EXISTS rx_inst_month ON rx_prescription (inst, month);
CREATE INDEX IF NOT EXISTS rx_by_prescriber ON rx_prescription (prescriber, status, submitted);
CREATE INDEX IF NOT EXISTS rx_patient ON rx_prescription (patient, submitted);

CREATE TABLE IF NOT EXISTS rx_event (
  seq BIGSERIAL PRIMARY KEY,
  rx TEXT COLLATE "C" NOT NULL,
  at TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  action TEXT COLLATE "C" NOT NULL,           -- submit | pass | return | resubmit | dispense | cancel | timeout-pass | escalate
  from_status TEXT COLLATE "C",
  to_status TEXT COLLATE "C" NOT NULL,
  note TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS rx_event_rx ON rx_event (rx, seq);

-- Prescribing rights (处方权) per user. Users without a row get their role's default.
CREATE TABLE IF NOT EXISTS rx_prescriber (
  username TEXT COLLATE "C" PRIMARY KEY,
  antimicrobial TEXT COLLATE "C",             -- non-restricted | restricted | special | NULL
  narcotic_right BIGINT NOT NULL DEFAULT 0,
  version BIGINT NOT NULL
);

-- Pharmacy-committee decisions (药事会决议): the formulary in force is the
-- shipped data with every decision whose effective date has come applied in order.
CREATE TABLE IF NOT EXISTS rx_decision (
  seq BIGSERIAL PRIMARY KEY,
  at TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  meeting TEXT COLLATE "C" NOT NULL,          -- minutes reference, e.g. 2026年第3次药事会
  kind TEXT COLLATE "C" NOT NULL,             -- add | remove | restrict | unrestrict | update
  drug TEXT COLLATE "C" NOT NULL,
  effective TEXT COLLATE "C" NOT NULL,        -- YYYY-MM-DD
  reason TEXT COLLATE "C" NOT NULL,
  entry TEXT COLLATE "C"                      -- JSON Drug for add/update, Restriction for restrict
);

-- Post-hoc review (处方点评): sampled prescriptions and their verdicts.
CREATE TABLE IF NOT EXISTS rx_comment (
  rx TEXT COLLATE "C" PRIMARY KEY,
  month TEXT COLLATE "C" NOT NULL,
  inst TEXT COLLATE "C" NOT NULL,
  comm TEXT COLLATE "C",
  prescriber TEXT COLLATE "C" NOT NULL,
  sampled_at TEXT COLLATE "C" NOT NULL,
  sampled_by TEXT COLLATE "C" NOT NULL,
  result TEXT COLLATE "C",                    -- rational | non-standard | inappropriate | abnormal
  codes TEXT COLLATE "C",                     -- JSON array of category codes (e.g. "N11", "I5")
  note TEXT COLLATE "C",
  reviewer TEXT COLLATE "C",
  reviewed_at TEXT COLLATE "C",
  version BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rx_comment_month ON rx_comment (month, inst);
