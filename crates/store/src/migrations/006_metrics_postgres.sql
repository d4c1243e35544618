-- Live indicators (issue 6): one counter per component, organisation (an
-- institution, or a community for enrollee-based components) and month, moved
-- in the same transaction as the resource write that changes it.
CREATE TABLE IF NOT EXISTS metric_fact (
  component TEXT COLLATE "C" NOT NULL,
  org TEXT COLLATE "C" NOT NULL,
  month TEXT COLLATE "C" NOT NULL,
  value BIGINT NOT NULL,
  PRIMARY KEY (component, org, month)
);
CREATE INDEX IF NOT EXISTS metric_fact_org ON metric_fact (org, month);
-- A component's months in order, covering the value: the cockpit's monthly
-- and year-to-date sums read only the months asked for, already grouped.
CREATE INDEX IF NOT EXISTS metric_fact_month ON metric_fact (component, month, org, value);

-- The indicator input of every resource a recompute reads: the resource cut
-- to the keys the rules read (yigong_metrics::input), written with it.
CREATE TABLE IF NOT EXISTS metric_input (
  rtype TEXT COLLATE "C" NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  pcomm TEXT COLLATE "C",
  body TEXT NOT NULL,
  PRIMARY KEY (rtype, id)
);
