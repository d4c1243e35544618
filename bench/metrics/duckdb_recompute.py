"""The same encounter and claim indicators as `yigong bench-metrics` recomputes,
by DuckDB over the rows the benchmark exported (encounters.csv, claims.csv,
orgs.csv).
Usage: duckdb_recompute.py DIR. Prints one JSON line: seconds and per-component totals."""
import json
import sys
import time

import duckdb

d = sys.argv[1]
t0 = time.perf_counter()
con = duckdb.connect()
con.execute(f"CREATE TABLE org AS SELECT * FROM read_csv('{d}/orgs.csv', header=true, all_varchar=false, types={{'id':'VARCHAR','tier':'VARCHAR','kind':'VARCHAR','comm':'VARCHAR','lead':'INTEGER'}})")
con.execute(f"""CREATE TABLE enc AS SELECT * FROM read_csv('{d}/encounters.csv', header=true,
  types={{'org':'VARCHAR','class':'VARCHAR','status':'VARCHAR','start':'VARCHAR','end':'VARCHAR','in_county_ext':'INTEGER','pcomm':'VARCHAR',
          'drugs':'BIGINT','consumables':'BIGINT','exams':'BIGINT','services':'BIGINT','insurance':'BIGINT'}})""")
con.execute(f"""CREATE TABLE clm AS SELECT * FROM read_csv('{d}/claims.csv', header=true,
  types={{'org':'VARCHAR','status':'VARCHAR','date':'VARCHAR','currency':'VARCHAR','total':'BIGINT','in_county_ext':'INTEGER','pcomm':'VARCHAR','linked':'INTEGER'}})""")
# Claims that count: active, in CNY, with an amount, no Encounter behind them.
con.execute("""
CREATE TABLE c AS
SELECT clm.*, o.comm AS ocomm, o.tier,
  (coalesce(in_county_ext, 1) = 1 AND coalesce(o.kind, '') <> 'external') AS inc,
  CASE WHEN length(date) = 10 THEN substr(date, 1, 7)
       ELSE strftime(CAST(date AS TIMESTAMPTZ) AT TIME ZONE 'UTC' + INTERVAL 8 HOUR, '%Y-%m') END AS mm
FROM clm LEFT JOIN org o ON o.id = clm.org
WHERE status = 'active' AND linked = 0 AND coalesce(currency, 'CNY') = 'CNY' AND total IS NOT NULL
""")
# One row per encounter with what the indicators need (months in China time).
con.execute("""
CREATE TABLE e AS
SELECT enc.*, o.tier, o.kind, o.comm AS ocomm, coalesce(o.lead, 0) AS lead,
  (coalesce(in_county_ext, 1) = 1 AND coalesce(o.kind, '') <> 'external') AS inc,
  strftime(CAST(start AS TIMESTAMPTZ) AT TIME ZONE 'UTC' + INTERVAL 8 HOUR, '%Y-%m') AS sm,
  CASE WHEN "end" IS NULL OR "end" = '' THEN NULL ELSE strftime(CAST("end" AS TIMESTAMPTZ) AT TIME ZONE 'UTC' + INTERVAL 8 HOUR, '%Y-%m') END AS em,
  CASE WHEN "end" IS NULL OR "end" = '' THEN NULL ELSE
    greatest(1, date_diff('day', CAST(CAST(start AS TIMESTAMPTZ) AT TIME ZONE 'UTC' + INTERVAL 8 HOUR AS DATE),
                              CAST(CAST("end" AS TIMESTAMPTZ) AT TIME ZONE 'UTC' + INTERVAL 8 HOUR AS DATE))) END AS days,
  drugs + consumables + exams + services AS total
FROM enc LEFT JOIN org o ON o.id = enc.org
WHERE status NOT IN ('planned', 'cancelled', 'entered-in-error')
""")
q = """
WITH v AS (SELECT * FROM e WHERE class IN ('AMB', 'EMER')),
     s AS (SELECT * FROM e WHERE class = 'IMP'),
     settled AS (SELECT *, CASE WHEN class = 'IMP' THEN em ELSE sm END AS mm FROM e WHERE class IN ('AMB', 'EMER') OR em IS NOT NULL),
     money AS (SELECT org, pcomm, inc, ocomm, mm, insurance AS fund FROM settled
               UNION ALL SELECT org, pcomm, inc, ocomm, mm, total FROM c)
SELECT 'visits' AS c, org AS g, sm AS m, count(*) AS n FROM v GROUP BY ALL
UNION ALL SELECT 'visits_in_county', org, sm, count(*) FROM v WHERE inc GROUP BY ALL
UNION ALL SELECT 'visits_primary', org, sm, count(*) FROM v WHERE inc AND tier IN ('township', 'village') GROUP BY ALL
UNION ALL SELECT 'admissions', org, sm, count(*) FROM s GROUP BY ALL
UNION ALL SELECT 'admissions_in_county', org, sm, count(*) FROM s WHERE inc GROUP BY ALL
UNION ALL SELECT 'discharges_in_county', org, em, count(*) FROM s WHERE inc AND em IS NOT NULL GROUP BY ALL
UNION ALL SELECT 'inpatient_days_in_county', org, em, sum(days) FROM s WHERE inc AND em IS NOT NULL GROUP BY ALL
UNION ALL SELECT 'charges_drugs', org, mm, sum(drugs) FROM settled WHERE inc GROUP BY ALL
UNION ALL SELECT 'fund_paid', org, mm, sum(fund) FROM money WHERE inc GROUP BY ALL
UNION ALL SELECT 'visit_charges', org, mm, sum(total) FROM settled WHERE inc AND class <> 'IMP' GROUP BY ALL
UNION ALL SELECT 'inpatient_charges_in_county', org, mm, sum(total) FROM settled WHERE inc AND class = 'IMP' GROUP BY ALL
UNION ALL SELECT 'enrollee_fund_outside', pcomm, mm, sum(fund) FROM money WHERE pcomm IS NOT NULL AND NOT inc GROUP BY ALL
UNION ALL SELECT 'enrollee_fund_inside', pcomm, mm, sum(fund) FROM money WHERE pcomm IS NOT NULL AND inc AND ocomm = pcomm GROUP BY ALL
UNION ALL SELECT 'enrollee_fund_county', pcomm, mm, sum(fund) FROM money WHERE pcomm IS NOT NULL AND inc AND ocomm IS DISTINCT FROM pcomm GROUP BY ALL
UNION ALL SELECT 'claims', org, mm, count(*) FROM c GROUP BY ALL
UNION ALL SELECT 'claim_amount', org, mm, sum(total) FROM c GROUP BY ALL
"""
rows = con.execute(q).fetchall()
seconds = time.perf_counter() - t0
totals = {}
for c, _g, _m, n in rows:
    totals[c] = totals.get(c, 0) + int(n or 0)
print(json.dumps({"seconds": seconds, "rows": con.execute("SELECT count(*) FROM e").fetchone()[0] + con.execute("SELECT count(*) FROM clm").fetchone()[0], "totals": totals}))
