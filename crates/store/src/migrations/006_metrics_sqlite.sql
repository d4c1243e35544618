-- Live indicators (issue 6): one counter per component, organisation (an
-- institution, or a community for enrollee-based components) and month, moved
-- in the same transaction as the resource write that changes it.
CREATE TABLE IF NOT EXISTS metric_fact (
  component TEXT NOT NULL,
  org TEXT NOT NULL,
  month TEXT NOT NULL,
  value INTEGER NOT NULL,
  PRIMARY KEY (component, org, month)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_fact_org ON metric_fact (org, month);
