//! Times the duplicate-registration stream and prints its shape:
//! `cargo run --release -p yigong-synth --example registrations -- 680000 [seed] [--json]`
//! (residents, default 680,000 ≈ one million registrations; peak memory is measured
//! before the shape statistics, which hold the stream). With `--json`, prints the
//! registrations as JSON lines instead.

use std::collections::HashMap;
use std::time::Instant;
use yigong_synth::{Params, Registration, registrations};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let json = args.iter().any(|a| a == "--json");
    let params = Params {
        residents: numbers.first().copied().unwrap_or(680_000) as u32,
        seed: numbers.get(1).copied().unwrap_or(1),
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("valid date"),
    };
    if json {
        registrations(&params, &mut |r| {
            println!("{}", serde_json::to_string(&r).expect("serialisable"));
        });
        return;
    }
    let started = Instant::now();
    let summary = registrations(&params, &mut |r| {
        std::hint::black_box(r);
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{summary:?}\nseconds {secs:.2} registrations/s {:.0} peak_rss_mib {}",
        summary.registrations as f64 / secs,
        peak_rss_mib().map_or("?".into(), |m| format!("{m:.1}"))
    );

    // Shape, on a copy held in memory (not part of the timing).
    let mut first: HashMap<u32, Registration> = HashMap::new();
    let mut per_person: HashMap<u32, u32> = HashMap::new();
    let (mut later, mut exact) = (0u64, 0u64);
    registrations(&params, &mut |r| {
        *per_person.entry(r.person).or_default() += 1;
        match first.get(&r.person) {
            None => {
                first.insert(r.person, r);
            }
            Some(f) => {
                later += 1;
                let same = Registration {
                    id: f.id.clone(),
                    institution: f.institution.clone(),
                    ..r
                } == *f;
                exact += u64::from(same);
            }
        }
    });
    let n = per_person.len() as f64;
    let at_least = |k: u32| per_person.values().filter(|&&c| c >= k).count() as f64 / n;
    println!(
        "registered twice or more {:.3}, three times {:.3}, later registrations typed exactly {:.3}",
        at_least(2),
        at_least(3),
        exact as f64 / later as f64
    );
}
