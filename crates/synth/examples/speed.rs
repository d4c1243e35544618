//! Times the generator: `cargo run --release -p yigong-synth --example speed -- 1000000`
//! (residents, default 200,000; optional seed). Prints counts, seconds, items per
//! second and peak resident memory (Linux).

use std::time::Instant;
use yigong_synth::{Params, generate_counted};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let residents = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let params = Params {
        residents,
        seed,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("valid date"),
    };
    let started = Instant::now();
    let summary = generate_counted(&params, &mut |item| {
        std::hint::black_box(item);
    });
    let secs = started.elapsed().as_secs_f64();
    let items = summary.orgs
        + summary.practitioners
        + summary.patients
        + summary.encounters
        + summary.conditions;
    println!("{summary:?}");
    println!(
        "residents {residents} items {items} seconds {secs:.2} items/s {:.0} peak_rss_mib {}",
        items as f64 / secs,
        peak_rss_mib().map_or("?".into(), |m| format!("{m:.1}"))
    );
}
