//! Prints the first residents of a county with their conditions and encounters as
//! JSON lines: `cargo run -p yigong-synth --example sample -- 20` (residents, seed).
//! Add `--orgs` / `--staff` to print the organisations or practitioners instead.

use yigong_synth::{Item, Params, generate};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let residents = numbers.first().copied().unwrap_or(20) as u32;
    let seed = numbers.get(1).copied().unwrap_or(1);
    let orgs = args.iter().any(|a| a == "--orgs");
    let staff = args.iter().any(|a| a == "--staff");
    let params = Params {
        residents,
        seed,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("valid date"),
    };
    generate(&params, &mut |item| {
        let line = match &item {
            Item::Org(o) if orgs => serde_json::to_string(o),
            Item::Practitioner(p) if staff => serde_json::to_string(p),
            Item::Patient(p) if !orgs && !staff => serde_json::to_string(p),
            Item::Encounter(e) if !orgs && !staff => serde_json::to_string(e),
            Item::Condition(c) if !orgs && !staff => serde_json::to_string(c),
            _ => return,
        };
        println!("{}", line.expect("serialisable"));
    });
}
