//! `yigong bench-rx`: speed of prescription review. The workload is the
//! synthetic county's prescriptions (realistic kinds and rates of problems).
//!
//! 1. The engine in process on one core: prescriptions reviewed per second
//!    (median of rounds) and per-prescription latency percentiles.
//! 2. CDS Hooks `order-sign` over HTTP: the server as a child process, `wrk`
//!    with 32 connections posting order-sign requests with full prefetch.

use crate::bench::{lua_list, run_wrk, start_server, tempdir};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::process::Command;
use std::time::Instant;
use yigong_rx::Knowledge;
use yigong_store::{Actor, Role, Scope, Store, User};

#[derive(clap::Args)]
pub struct BenchRxArgs {
    /// Residents of the synthetic county whose prescriptions are the workload.
    #[arg(long, default_value_t = 50_000)]
    residents: u32,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Timed passes of the engine over the whole workload.
    #[arg(long, default_value_t = 7)]
    rounds: u32,
    /// Seconds of the HTTP load test.
    #[arg(long, default_value_t = 15)]
    duration: u32,
    #[arg(long, default_value_t = 32)]
    connections: u32,
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: String,
    /// Only the in-process engine benchmark.
    #[arg(long)]
    no_http: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The county's prescriptions, in generation order.
fn workload(residents: u32, seed: u64) -> Vec<yigong_rx::Prescription> {
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 10, 31).expect("valid date");
    let params = yigong_synth::Params {
        residents,
        seed,
        as_of,
    };
    let mut out = Vec::new();
    yigong_synth::generate(&params, &mut |item| {
        if let yigong_synth::Item::Prescription(p) = item {
            out.push(p.rx);
        }
    });
    out
}

pub fn run(args: BenchRxArgs) -> Result<()> {
    println!(
        "== yigong bench-rx ==  机器:{} 核",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let k = Knowledge::shipped().context("药品知识库加载失败")?;
    let t = Instant::now();
    let rxs = workload(args.residents, args.seed);
    if rxs.is_empty() {
        bail!("合成县没有生成处方");
    }
    let mut verdicts = [0usize; 3];
    let mut findings = 0usize;
    for rx in &rxs {
        let f = yigong_rx::review(&k, rx);
        findings += f.len();
        verdicts[yigong_rx::verdict(&f) as usize] += 1;
    }
    let n = rxs.len();
    let items: usize = rxs.iter().map(|r| r.items.len()).sum();
    println!(
        "工作量:合成县 {} 名居民近 60 天的 {n} 张处方(生成 {:.1} s),平均 {:.2} 种药;规则结果 通过 {:.1}% / 警告 {:.1}% / 拦截 {:.1}%,共 {findings} 条提示",
        args.residents,
        t.elapsed().as_secs_f64(),
        items as f64 / n as f64,
        verdicts[0] as f64 * 100.0 / n as f64,
        verdicts[1] as f64 * 100.0 / n as f64,
        verdicts[2] as f64 * 100.0 / n as f64,
    );
    println!(
        "药品知识库:{} 种药品,{} 对相互作用",
        k.drugs.len(),
        k.facts.interactions.len()
    );

    // 1. The engine, one thread.
    let mut rates = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let t = Instant::now();
        let mut sink = 0usize;
        for rx in &rxs {
            sink += yigong_rx::review(&k, std::hint::black_box(rx)).len();
        }
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        rates.push(n as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    let mut lat: Vec<f64> = rxs
        .iter()
        .map(|rx| {
            let t = Instant::now();
            std::hint::black_box(yigong_rx::review(&k, rx));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    println!(
        "审方引擎(单线程,进程内,{} 轮):中位 {:.0} 张/秒(最低 {:.0},最高 {:.0});单张耗时 p50 {:.1} µs,p99 {:.1} µs,最大 {:.1} µs(目标 ≥ 100000 张/秒)",
        rates.len(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1],
    );
    if args.no_http {
        return Ok(());
    }

    // 2. CDS Hooks order-sign over HTTP.
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("未安装 wrk:apt-get install wrk");
    }
    let dir = tempdir()?.join("rx");
    let _ = std::fs::remove_dir_all(&dir);
    let token = {
        let store = Store::open_sqlite_dir(&dir)?;
        let org = |id: &str, name: &str, kind: &str, tier: Option<&str>, parent: Option<&str>| {
            let mut types = vec![
                json!({ "coding": [{ "system": "https://yigong.org.cn/fhir/CodeSystem/org-kind", "code": kind }] }),
            ];
            if let Some(t) = tier {
                types.push(json!({ "coding": [{ "system": "https://yigong.org.cn/fhir/CodeSystem/org-tier", "code": t }] }));
            }
            let mut o =
                json!({ "resourceType": "Organization", "id": id, "name": name, "type": types });
            if let Some(p) = parent {
                o["partOf"] = json!({ "reference": format!("Organization/{p}") });
            }
            json!({ "resource": o, "request": { "method": "PUT", "url": format!("Organization/{id}") } })
        };
        let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
            org("county", "基准县", "county", None, None),
            org("com1", "第一医共体", "community", None, Some("county")),
            org("h1", "县人民医院", "general-hospital", Some("county"), Some("com1")),
        ]});
        yigong_web::service_api::import_bundle(&store, &Actor::system("bench"), bundle)
            .map_err(|i| anyhow::anyhow!(i.zh))?;
        let user = User {
            name: "bench-doctor".into(),
            display: "基准医生".into(),
            role: Role::Clinician,
            scope: Scope::Institution("h1".into()),
            institution: Some("h1".into()),
        };
        store.upsert_user("bench", &user, "bench-password-1")?;
        store.issue_credential("bench-doctor", "token", chrono::Duration::hours(2))?
    };
    let bodies: Vec<String> = rxs
        .iter()
        .take(2_000)
        .enumerate()
        .map(|(i, rx)| {
            yigong_rx::cds::order_sign_request(
                &format!("5d1a7c0e-0000-4000-8000-{i:012}"),
                &format!("p{i}"),
                rx,
            )
            .to_string()
        })
        .collect();
    let script = dir.join("order_sign.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.headers[\"Authorization\"] = \"Bearer {token}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n{}n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(\"POST\", \"/cds-services/order-sign\", nil, bodies[(n % #bodies) + 1])\nend\n",
            lua_list("bodies", &bodies)
        ),
    )?;
    let server = start_server(&dir, &args.listen)?;
    let base = format!("http://{}", args.listen);
    // Warm up, then measure.
    run_wrk(&base, &script, 3, args.connections)?;
    let w = run_wrk(&base, &script, args.duration, args.connections)?;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "CDS Hooks order-sign(wrk,{} 连接,{} s,完整预取,{} 种请求轮换):{:.0} 请求/秒,p50 {:.2} ms,p90 {:.2} ms,p99 {:.2} ms,非2xx {}(目标 p99 < 5 ms)",
        args.connections,
        args.duration,
        bodies.len(),
        w.rps,
        w.p50,
        w.p90,
        w.p99,
        w.non2xx
    );
    println!(
        "同类开源方案:议题所述的开源审方系统(50 条规则,以子串匹配诊断文本判断禁忌)不提供可运行的基准接口,本基准不含其对照数据。"
    );
    Ok(())
}
