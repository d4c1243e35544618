-- Care across the community (issue 4): the worklist row of every tracked flow
-- (a referral, exam, consultation or critical-value Task, or an Appointment),
-- kept in the same transaction as the resource it mirrors, so a worklist page is
-- one index range scan instead of a search over Task bodies.
CREATE TABLE IF NOT EXISTS care_item (
  id TEXT PRIMARY KEY,          -- Task or Appointment id
  kind TEXT NOT NULL,           -- referral | exam | consult | critical-ack | appointment
  state TEXT NOT NULL,          -- Task businessStatus code / Appointment status
  priority TEXT NOT NULL,
  req_inst TEXT, req_comm TEXT, -- the asking institution
  perf_inst TEXT, perf_comm TEXT, -- the institution asked
  patient TEXT,
  focus TEXT,                   -- ServiceRequest / DiagnosticReport / Slot id
  item TEXT,                    -- exam item, referral direction, slot service
  created INTEGER NOT NULL,     -- epoch seconds of the first step
  responded INTEGER,            -- the other side's first answer
  done INTEGER,                 -- a terminal state reached
  due INTEGER,                  -- response deadline while awaited
  escalated INTEGER,
  assignee TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS care_item_perf ON care_item (perf_inst, kind, state, created);
CREATE INDEX IF NOT EXISTS care_item_req ON care_item (req_inst, kind, state, created);
CREATE INDEX IF NOT EXISTS care_item_due ON care_item (due) WHERE due IS NOT NULL AND escalated IS NULL AND done IS NULL;
-- Turnaround statistics scan the table: an index on completion time would be
-- one more B-tree written by every step.
DROP INDEX IF EXISTS care_item_done;

-- Notifications to an institution (and optionally one practitioner).
CREATE TABLE IF NOT EXISTS care_notice (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  inst TEXT NOT NULL,
  practitioner TEXT,
  kind TEXT NOT NULL,
  item TEXT,
  text TEXT NOT NULL,
  at TEXT NOT NULL,
  read_at TEXT
);
CREATE INDEX IF NOT EXISTS care_notice_inst ON care_notice (inst, seq);

-- Mutual recognition: each time a still-valid result was offered at order time,
-- whether it was recognised (no repeat) or the exam was repeated with a reason.
CREATE TABLE IF NOT EXISTS recognition_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  inst TEXT NOT NULL,
  actor TEXT NOT NULL,
  patient TEXT NOT NULL,
  item TEXT NOT NULL,
  outcome TEXT NOT NULL,        -- recognised | repeated
  reason TEXT,
  prior_report TEXT NOT NULL,
  order_id TEXT,
  fee_fen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recognition_log_inst ON recognition_log (inst, at);
