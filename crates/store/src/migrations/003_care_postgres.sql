-- Care across the community (issue 4): the worklist row of every tracked flow
-- (a referral, exam, consultation or critical-value Task, or an Appointment),
-- kept in the same transaction as the resource it mirrors, so a worklist page is
-- one index range scan instead of a search over Task bodies.
CREATE TABLE IF NOT EXISTS care_item (
  id TEXT COLLATE "C" PRIMARY KEY,          -- Task or Appointment id
  kind TEXT COLLATE "C" NOT NULL,           -- referral | exam | consult | critical-ack | appointment
  state TEXT COLLATE "C" NOT NULL,          -- Task businessStatus code / Appointment status
  priority TEXT COLLATE "C" NOT NULL,
  req_inst TEXT COLLATE "C", req_comm TEXT COLLATE "C", -- the asking institution
  perf_inst TEXT COLLATE "C", perf_comm TEXT COLLATE "C", -- the institution asked
  patient TEXT COLLATE "C",
  focus TEXT COLLATE "C",                   -- ServiceRequest / DiagnosticReport / Slot id
  item TEXT COLLATE "C",                    -- exam item, referral direction, slot service
  created BIGINT NOT NULL,     -- epoch seconds of the first step
  responded BIGINT,            -- the other side's first answer
  done BIGINT,                 -- a terminal state reached
  due BIGINT,                  -- response deadline while awaited
  escalated BIGINT,
  assignee TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS care_item_perf ON care_item (perf_inst, kind, state, created);
CREATE INDEX IF NOT EXISTS care_item_req ON care_item (req_inst, kind, state, created);
CREATE INDEX IF NOT EXISTS care_item_due ON care_item (due) WHERE due IS NOT NULL AND escalated IS NULL AND done IS NULL;
DROP INDEX IF EXISTS care_item_done;

-- Notifications to an institution (and optionally one practitioner).
CREATE TABLE IF NOT EXISTS care_notice (
  seq BIGSERIAL PRIMARY KEY,
  inst TEXT COLLATE "C" NOT NULL,
  practitioner TEXT COLLATE "C",
  kind TEXT COLLATE "C" NOT NULL,
  item TEXT COLLATE "C",
  text TEXT COLLATE "C" NOT NULL,
  at TEXT COLLATE "C" NOT NULL,
  read_at TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS care_notice_inst ON care_notice (inst, seq);

-- Mutual recognition: each time a still-valid result was offered at order time,
-- whether it was recognised (no repeat) or the exam was repeated with a reason.
CREATE TABLE IF NOT EXISTS recognition_log (
  seq BIGSERIAL PRIMARY KEY,
  at TEXT COLLATE "C" NOT NULL,
  inst TEXT COLLATE "C" NOT NULL,
  actor TEXT COLLATE "C" NOT NULL,
  patient TEXT COLLATE "C" NOT NULL,
  item TEXT COLLATE "C" NOT NULL,
  outcome TEXT COLLATE "C" NOT NULL,        -- recognised | repeated
  reason TEXT COLLATE "C",
  prior_report TEXT COLLATE "C" NOT NULL,
  order_id TEXT COLLATE "C",
  fee_fen BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS recognition_log_inst ON recognition_log (inst, at);
