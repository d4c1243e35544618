//! `yigong bench-metrics`: speed of the live indicators on a county-year.
//!
//! 1. Full recompute of every counter from the stored resources (and a check
//!    that the live counters equal it).
//! 2. The same encounter and claim indicators computed by DuckDB (Python package) over
//!    the same rows exported to CSV, with both times, the ratio and whether
//!    the totals agree.
//! 3. Over HTTP (server as a child process, `wrk`): cockpit pages and
//!    `$evaluate-measure`, and how long a new encounter takes to show.

use crate::bench::{CountyArgs, open_county, run_wrk, start_server, tempdir};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use yigong_fhir::codes::{CHARGE_PARTS, EXT_CHARGES, EXT_IN_COUNTY};
use yigong_store::Store;
use yigong_store::metrics::Subject;

#[derive(clap::Args)]
pub struct BenchMetricsArgs {
    #[command(flatten)]
    county: CountyArgs,
    #[arg(long, default_value_t = 10)]
    duration: u32,
    #[arg(long, default_value_t = 32)]
    connections: u32,
    #[arg(long, default_value = "127.0.0.1:18095")]
    listen: String,
    /// Skip the DuckDB comparison.
    #[arg(long)]
    no_duckdb: bool,
    /// Skip the HTTP measurements.
    #[arg(long)]
    no_http: bool,
}

/// The components DuckDB recomputes (see bench/metrics/duckdb_recompute.py).
const COMPARED: [&str; 16] = [
    "visits",
    "visits_in_county",
    "visits_primary",
    "admissions",
    "admissions_in_county",
    "discharges_in_county",
    "inpatient_days_in_county",
    "charges_drugs",
    "fund_paid",
    "visit_charges",
    "inpatient_charges_in_county",
    "enrollee_fund_outside",
    "enrollee_fund_inside",
    "enrollee_fund_county",
    "claims",
    "claim_amount",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn charge(v: &Value, part: &str) -> i64 {
    v["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == EXT_CHARGES)
        .flat_map(|e| e["extension"].as_array().into_iter().flatten())
        .find(|e| e["url"] == part)
        .and_then(|e| {
            let raw = e["valueMoney"]["value"].to_string();
            yigong_core::Fen::parse_yuan(&raw)
        })
        .map_or(0, |f| f.0)
}

/// Calls `f` with every stored resource of a type (parsed) and its patient's community.
fn each_body(
    store: &Store,
    rtype: &str,
    mut f: impl FnMut(&Value, Option<&str>) -> Result<()>,
) -> Result<()> {
    let mut after = String::new();
    loop {
        let rows = store.db().read(|c| {
            c.query(
                "SELECT id, body, pcomm FROM resource WHERE rtype = ? AND deleted = 0 AND id > ? ORDER BY id LIMIT 50000",
                &[rtype.into(), after.as_str().into()],
            )
        })?;
        let Some(last) = rows.last() else { break };
        after = last[0].as_str().unwrap_or("").to_string();
        for r in &rows {
            if let Some(v) = r[1]
                .as_str()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
            {
                f(&v, r[2].as_str())?;
            }
        }
    }
    Ok(())
}

fn org_of(v: &Value, key: &str) -> String {
    csv_field(
        v[key]["reference"]
            .as_str()
            .and_then(|s| s.strip_prefix("Organization/"))
            .unwrap_or(""),
    )
}

fn in_county_ext(v: &Value) -> String {
    v["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == EXT_IN_COUNTY)
        .and_then(|e| e["valueBoolean"].as_bool())
        .map_or(String::new(), |b| (b as i32).to_string())
}

/// Writes encounters.csv, claims.csv and orgs.csv (the rows DuckDB reads);
/// returns the rows.
fn export(store: &Store, dir: &std::path::Path) -> Result<usize> {
    let mut orgs = std::io::BufWriter::new(std::fs::File::create(dir.join("orgs.csv"))?);
    writeln!(orgs, "id,tier,kind,comm,lead")?;
    for n in store.org_tree()? {
        writeln!(
            orgs,
            "{},{},{},{},{}",
            csv_field(&n.id),
            n.tier.unwrap_or_default(),
            n.kind.unwrap_or_default(),
            n.comm.unwrap_or_default(),
            n.lead as i32
        )?;
    }
    orgs.flush()?;
    let mut n = 0;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("encounters.csv"))?);
    writeln!(
        out,
        "org,class,status,start,end,in_county_ext,pcomm,drugs,consumables,exams,services,insurance"
    )?;
    each_body(store, "Encounter", |v, pcomm| {
        let parts: Vec<String> = CHARGE_PARTS
            .iter()
            .map(|p| charge(v, p).to_string())
            .collect();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            org_of(v, "serviceProvider"),
            v["class"]["code"].as_str().unwrap_or(""),
            v["status"].as_str().unwrap_or(""),
            v["period"]["start"].as_str().unwrap_or(""),
            v["period"]["end"].as_str().unwrap_or(""),
            in_county_ext(v),
            pcomm.unwrap_or(""),
            parts.join(",")
        )?;
        n += 1;
        Ok(())
    })?;
    out.flush()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("claims.csv"))?);
    writeln!(
        out,
        "org,status,date,currency,total,in_county_ext,pcomm,linked"
    )?;
    each_body(store, "Claim", |v, pcomm| {
        let linked = v["item"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["encounter"].as_array().is_some_and(|a| !a.is_empty()));
        let total = v["total"]["value"]
            .as_number()
            .and_then(|x| yigong_core::Fen::parse_yuan(&x.to_string()))
            .map_or(String::new(), |f| f.0.to_string());
        let date = v["billablePeriod"]["start"]
            .as_str()
            .or(v["created"].as_str())
            .unwrap_or("");
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            org_of(v, "provider"),
            v["status"].as_str().unwrap_or(""),
            date,
            v["total"]["currency"].as_str().unwrap_or(""),
            total,
            in_county_ext(v),
            pcomm.unwrap_or(""),
            linked as i32
        )?;
        n += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}

fn duckdb(store: &Store) -> Result<()> {
    let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/metrics/setup.sh");
    let o = Command::new("bash")
        .arg(setup)
        .output()
        .context("无法运行 bench/metrics/setup.sh")?;
    if !o.status.success() {
        bail!("DuckDB 环境准备失败:{}", String::from_utf8_lossy(&o.stderr));
    }
    let python = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or("python3")
        .to_string();
    let dir = tempdir()?.join("duckdb");
    std::fs::create_dir_all(&dir)?;
    let t = Instant::now();
    let rows = export(store, &dir)?;
    println!(
        "导出:{rows} 条就诊记录与结算单写成 CSV,用时 {:.1} s(不计入两边的计算时间)",
        t.elapsed().as_secs_f64()
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/metrics/duckdb_recompute.py"
    );
    let o = Command::new(&python).arg(script).arg(&dir).output()?;
    if !o.status.success() {
        bail!("DuckDB 计算失败:{}", String::from_utf8_lossy(&o.stderr));
    }
    let res: Value = serde_json::from_slice(
        o.stdout
            .split(|b| *b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .unwrap_or(b"{}"),
    )?;
    let secs = res["seconds"].as_f64().unwrap_or(0.0);
    // Our figures for the same components over the whole period, from the live counters.
    let comps: Vec<String> = COMPARED.iter().map(|s| s.to_string()).collect();
    let t = Instant::now();
    let ours = store.metric_sums(&Subject::County, &comps, "0000-01", "9999-12")?;
    let sum_secs = t.elapsed().as_secs_f64();
    let mut differ = Vec::new();
    for c in COMPARED {
        let d = res["totals"][c].as_i64().unwrap_or(0);
        let o = ours.get(c).copied().unwrap_or(0);
        if d != o {
            differ.push(format!("{c}: 本系统 {o} / DuckDB {d}"));
        }
    }
    println!(
        "DuckDB {}(同一批 {rows} 行 CSV,读入 + 关联 + 汇总 {} 个分量):{secs:.2} s;本系统读取实时计数器中的同一批分量:{:.3} s",
        python_version(&python),
        COMPARED.len(),
        sum_secs
    );
    if differ.is_empty() {
        println!(
            "结果一致:{} 个分量的全县合计与 DuckDB 完全相同",
            COMPARED.len()
        );
    } else {
        println!("结果不一致:{}", differ.join(";"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    LAST_DUCKDB.with(|d| d.set(secs));
    Ok(())
}

thread_local! {
    static LAST_DUCKDB: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

fn python_version(python: &str) -> String {
    Command::new(python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn run(args: BenchMetricsArgs) -> Result<()> {
    let store = open_county("yigong bench-metrics", &args.county)?;
    let encounters = store.db().read(|c| {
        c.scalar_int(
            "SELECT count(*) FROM resource WHERE rtype = 'Encounter' AND deleted = 0",
            &[],
        )
    })?;
    println!("县域一年:{encounters} 条就诊记录");

    // 1. Full recompute (inputs of an older version rebuilt first, timed apart).
    let t = Instant::now();
    if let Some(n) = store.ensure_metric_inputs()? {
        println!(
            "指标输入版本不符:先由资源重建 {n} 条,用时 {:.1} s(不计入重算)",
            t.elapsed().as_secs_f64()
        );
    }
    let r = store.metrics_recompute()?;
    println!(
        "全量重算:{} 个资源 → {} 个计数器,用时 {:.1} s(目标 < 10 s);与实时增量维护的计数器相比不一致 {} 个",
        r.resources, r.facts, r.seconds, r.differing
    );
    // 2. DuckDB on the same rows.
    if !args.no_duckdb {
        duckdb(&store)?;
        let d = LAST_DUCKDB.with(|d| d.get());
        if d > 0.0 {
            println!(
                "对比:本系统全量重算(全部资源类型、全部指标,读每个资源的指标输入行){:.1} s,DuckDB(仅就诊与结算单分量,读预先导出的平面 CSV){d:.1} s,比值 {:.2}",
                r.seconds,
                r.seconds / d
            );
        }
    }
    if args.no_http {
        return Ok(());
    }

    // 3. HTTP.
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("未安装 wrk:apt-get install wrk");
    }
    let tree = store.org_tree()?;
    let comms: Vec<String> = tree
        .iter()
        .filter(|n| n.kind.as_deref() == Some("community"))
        .map(|n| n.id.clone())
        .collect();
    let insts: Vec<String> = tree
        .iter()
        .filter(|n| n.tier.is_some() && n.kind.as_deref() != Some("department"))
        .map(|n| n.id.clone())
        .take(50)
        .collect();
    let token = store.issue_credential("admin", "token", chrono::Duration::hours(2))?;
    let month = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string();
    let year = &month[..4];
    drop(store);
    let server = start_server(&args.county.data_dir, &args.listen)?;
    let base = format!("http://{}", args.listen);
    let dir = tempdir()?;
    let auth = format!("wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n");
    let mut pages = vec!["/cockpit".to_string()];
    for c in &comms {
        pages.push(format!("/cockpit?subject=Organization/{c}"));
    }
    for id in [
        "primary_visit_share",
        "inpatient_in_county_share",
        "drug_share",
        "cost_per_admission",
    ] {
        pages.push(format!("/cockpit/indicators/{id}"));
    }
    let mut evals = Vec::new();
    for m in [
        "primary-visit-share",
        "inpatient-in-county-share",
        "drug-share",
        "cost-per-admission",
        "average-length-of-stay",
    ] {
        for s in comms.iter().chain(insts.iter().take(10)) {
            evals.push(format!(
                "/fhir/Measure/{m}/$evaluate-measure?periodStart={year}-01-01&periodEnd={year}-12-31&subject=Organization/{s}&reportType=summary"
            ));
        }
    }
    println!(
        "{:<36} {:>10} {:>8} {:>8} {:>8} {:>6}",
        "场景(wrk)", "请求/秒", "p50 ms", "p90 ms", "p99 ms", "非2xx"
    );
    // One connection measures a page's own server time; 32 measure it under load
    // (on 2 cores the load test's latency is mostly queueing).
    for (name, paths, target, conns) in [
        ("驾驶舱页面,1 连接(单页服务时间)", &pages, "p99 < 50 ms", 1),
        ("驾驶舱页面,32 连接(满负荷)", &pages, "-", args.connections),
        ("$evaluate-measure,32 连接", &evals, "-", args.connections),
    ] {
        let script = dir.join("paths.lua");
        std::fs::write(
            &script,
            format!(
                "{auth}{}request = function() return wrk.format(\"GET\", paths[math.random(#paths)]) end\n",
                crate::bench::lua_list("paths", paths)
            ),
        )?;
        let w = run_wrk(&base, &script, args.duration, conns)?;
        println!(
            "{name:<36} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>6}  目标 {target}",
            w.rps, w.p50, w.p90, w.p99, w.non2xx
        );
    }

    // A new encounter on the cockpit: POST it, then read the institution's
    // visits this month until it shows.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let inst = insts.first().cloned().context("没有机构")?;
    let patient = {
        let mut r = agent
            .get(format!("{base}/fhir/Patient?_count=1&organization={inst}"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()?;
        let b: Value = r.body_mut().read_json()?;
        b["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let eval = format!(
        "{base}/fhir/Measure/outpatient-visits/$evaluate-measure?periodStart={month}-01&periodEnd={month}-28&subject=Organization/{inst}&reportType=summary"
    );
    let count = |agent: &ureq::Agent| -> Result<i64> {
        let mut r = agent
            .get(&eval)
            .header("Authorization", &format!("Bearer {token}"))
            .call()?;
        let b: Value = r.body_mut().read_json()?;
        Ok(b["group"][0]["population"]
            .as_array()
            .and_then(|p| {
                p.iter()
                    .find(|x| x["code"]["coding"][0]["code"] == "measure-population")
            })
            .and_then(|p| p["count"].as_i64())
            .unwrap_or(0))
    };
    let mut lags = Vec::new();
    for i in 0..20 {
        let before = count(&agent)?;
        let e = json!({
            "resourceType": "Encounter", "status": "finished",
            "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
            "subject": { "reference": format!("Patient/{patient}") },
            "serviceProvider": { "reference": format!("Organization/{inst}") },
            "period": { "start": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true) },
            "reasonCode": [{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "J06.9" }] }]
        });
        let r = agent
            .post(format!("{base}/fhir/Encounter"))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/fhir+json")
            .send(e.to_string())?;
        if r.status().as_u16() != 201 {
            bail!("新建就诊失败:HTTP {}(第 {i} 次)", r.status());
        }
        let t = Instant::now();
        loop {
            if count(&agent)? > before {
                break;
            }
            if t.elapsed() > Duration::from_secs(5) {
                bail!("新就诊 5 秒内未出现在指标中");
            }
        }
        lags.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lags.sort_by(f64::total_cmp);
    println!(
        "新就诊出现在指标上(API 返回后到下一次查询可见,20 次):中位 {:.1} ms,最大 {:.1} ms(目标 < 1000 ms;计数器与就诊同一事务提交)",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
    drop(server);
    Ok(())
}
