//! The demo county's prescriptions: deterministic, written against the shipped
//! formulary for the visits of the last 60 days, mostly clean, and with the
//! problems put in on purpose found by the review engine. Prints the observed
//! rates (`cargo test -p yigong-synth --test rx -- --nocapture`).

mod common;

use chrono::{Duration, NaiveDate};
use common::{as_of, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;
use yigong_core::{Encounter, EncounterClass};
use yigong_rx::model::{Setting, Severity};
use yigong_rx::{Knowledge, review};
use yigong_synth::{
    INJECTED, Item, SynthRx, WINDOW_DAYS, generate, generate_counted, injected_category,
};

const RESIDENTS: u32 = 6_000;

struct County {
    prescriptions: Vec<SynthRx>,
    /// Outpatient and emergency visits in the county in the window.
    eligible_visits: usize,
    summary_count: usize,
}

fn local_day(t: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    (t + Duration::hours(8)).date_naive()
}

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::shipped().expect("shipped formulary"))
}

/// The county, with its prescriptions checked against the encounters and
/// practitioners emitted before them.
fn county() -> &'static County {
    static C: OnceLock<County> = OnceLock::new();
    C.get_or_init(|| {
        let first_day = as_of() - Duration::days(WINDOW_DAYS - 1);
        let mut encounters: HashMap<String, Encounter> = HashMap::new();
        let mut practitioners = HashSet::new();
        let mut prescriptions = vec![];
        let mut eligible_visits = 0;
        let mut current_patient = String::new();
        let summary = generate_counted(&params(RESIDENTS, 5), &mut |item| match item {
            Item::Practitioner(p) => {
                practitioners.insert(p.id);
            }
            Item::Patient(p) => current_patient = p.id,
            Item::Encounter(e) => {
                let day = local_day(e.start);
                if e.in_county
                    && matches!(
                        e.class,
                        EncounterClass::Outpatient | EncounterClass::Emergency
                    )
                    && day >= first_day
                    && day <= as_of()
                {
                    eligible_visits += 1;
                }
                encounters.insert(e.id.clone(), e);
            }
            Item::Prescription(rx) => {
                let e = encounters
                    .get(&rx.encounter)
                    .unwrap_or_else(|| panic!("{}: encounter emitted before", rx.id));
                assert_eq!(rx.patient, current_patient, "{} follows its patient", rx.id);
                assert_eq!(rx.patient, e.patient);
                assert_eq!(rx.institution, e.institution);
                assert_eq!(
                    Some(&rx.prescriber),
                    e.practitioner.as_ref().or(Some(&String::new()))
                );
                if !rx.prescriber.is_empty() {
                    assert!(practitioners.contains(&rx.prescriber));
                    assert!(!rx.prescriber_name.is_empty());
                }
                assert!(e.in_county, "{}", rx.id);
                let setting = match e.class {
                    EncounterClass::Outpatient => Setting::Outpatient,
                    EncounterClass::Emergency => Setting::Emergency,
                    _ => panic!("{}: prescription of an admission", rx.id),
                };
                assert_eq!(rx.rx.setting, setting);
                let minutes = (rx.at - e.start).num_minutes();
                assert!((2..=15).contains(&minutes), "{}: {minutes} min", rx.id);
                prescriptions.push(*rx);
            }
            _ => {}
        });
        County {
            prescriptions,
            eligible_visits,
            summary_count: summary.prescriptions,
        }
    })
}

#[test]
fn same_seed_same_prescriptions() {
    let run = |seed| {
        let mut out = vec![];
        generate(&params(1_500, seed), &mut |item| {
            if let Item::Prescription(rx) = item {
                out.push(*rx);
            }
        });
        out
    };
    let a = run(9);
    let b = run(9);
    assert!(a.len() > 200, "{} prescriptions", a.len());
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_ne!(a, run(10));
}

#[test]
fn prescriptions_are_well_formed() {
    let c = county();
    let k = knowledge();
    assert_eq!(c.summary_count, c.prescriptions.len());
    let first_day = as_of() - Duration::days(WINDOW_DAYS - 1);
    let mut ids = HashSet::new();
    let mut items = 0;
    for s in &c.prescriptions {
        assert!(
            (1..=64).contains(&s.id.len())
                && s.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{}",
            s.id
        );
        assert_eq!(s.id, format!("{}-rx", s.encounter));
        assert!(ids.insert(s.id.clone()), "duplicate {}", s.id);
        let day = local_day(s.at);
        assert_eq!(s.rx.date, day, "{}", s.id);
        assert!(day >= first_day && day <= as_of(), "{} on {day}", s.id);
        assert!(!s.rx.items.is_empty());
        if s.injected != Some("too-many-drugs") {
            assert!(s.rx.items.len() <= 5, "{}", s.id);
        }
        for it in &s.rx.items {
            let d = k
                .drug(&it.drug)
                .unwrap_or_else(|| panic!("{}: {} not in the formulary", s.id, it.drug));
            assert_eq!(it.unit, d.dose_unit);
            assert!(it.dose > 0.0 && it.dose.is_finite());
            assert!(it.days >= 1);
            items += 1;
        }
        if let Some(w) = s.rx.patient.weight_kg {
            assert!((1.5..150.0).contains(&w), "{}: {w} kg", s.id);
        }
        assert!(s.rx.patient.birth_date.is_some() && s.rx.patient.sex.is_some());
    }
    // About three in four visits end with drugs (health checks need none).
    let share = c.prescriptions.len() as f64 / c.eligible_visits as f64;
    let per_rx = items as f64 / c.prescriptions.len() as f64;
    eprintln!(
        "prescriptions {} of {} eligible visits ({:.1}%), {per_rx:.2} drugs each",
        c.prescriptions.len(),
        c.eligible_visits,
        share * 100.0
    );
    assert!((0.55..=0.78).contains(&share), "{share}");
    assert!((1.3..=3.0).contains(&per_rx), "{per_rx}");
    let long = c
        .prescriptions
        .iter()
        .filter(|s| s.rx.long_term && s.injected.is_none())
        .count();
    let pregnant = c
        .prescriptions
        .iter()
        .filter(|s| s.rx.patient.pregnant == Some(true))
        .count();
    let allergic = c
        .prescriptions
        .iter()
        .filter(|s| !s.rx.patient.allergies.is_empty())
        .count();
    let egfr = c
        .prescriptions
        .iter()
        .filter(|s| s.rx.patient.egfr.is_some())
        .count();
    eprintln!(
        "long prescriptions {long}, pregnant {pregnant}, with allergies {allergic}, with eGFR {egfr}"
    );
    assert!(long > 0 && pregnant > 0 && allergic > 0 && egfr > 0);
}

#[test]
fn problems_come_at_their_rates_and_the_engine_finds_them() {
    let c = county();
    let k = knowledge();
    let n = c.prescriptions.len() as f64;
    let mut injected: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let (mut clean, mut others, mut pass) = (0usize, 0usize, 0usize);
    let mut noise: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &c.prescriptions {
        let findings = review(k, &s.rx);
        let serious = findings.iter().any(|f| f.severity >= Severity::Warning);
        if !serious {
            pass += 1;
        }
        match s.injected {
            Some(code) => {
                let want = injected_category(code).unwrap();
                let found = findings.iter().any(|f| {
                    f.category == want && (code != "interaction" || f.severity >= Severity::Warning)
                });
                let e = injected.entry(code).or_default();
                e.0 += 1;
                e.1 += usize::from(found);
                if !found {
                    eprintln!("missed {code} in {}: {:?}", s.id, s.rx);
                }
            }
            None => {
                others += 1;
                if !serious {
                    clean += 1;
                } else {
                    for f in findings.iter().filter(|f| f.severity >= Severity::Warning) {
                        *noise.entry(f.rule).or_default() += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "{} prescriptions of {RESIDENTS} residents",
        c.prescriptions.len()
    );
    eprintln!("problem              nominal  observed  count  found");
    let (mut total, mut found) = (0, 0);
    for (code, rate) in INJECTED {
        let (count, hit) = injected.get(code).copied().unwrap_or((0, 0));
        total += count;
        found += hit;
        eprintln!(
            "{code:<20} {:>6.2}%  {:>7.2}%  {count:>5}  {hit:>5}",
            rate * 100.0,
            count as f64 / n * 100.0
        );
        // Unconditional problems land near their rates (binomial, 4 sd).
        if !matches!(
            code,
            "pregnancy" | "child-no-weight" | "skin-test-missing" | "amr-rights"
        ) {
            let expected = rate * n;
            let slack = 4.0 * expected.sqrt() + 2.0;
            assert!(
                (count as f64 - expected).abs() <= slack.max(expected * 0.3),
                "{code}: {count} for {expected:.1} expected"
            );
        }
    }
    let clean_share = clean as f64 / others as f64;
    let pass_share = pass as f64 / n;
    eprintln!(
        "injected {total} ({:.1}%), found by the engine {found} ({:.1}%)",
        total as f64 / n * 100.0,
        found as f64 / total.max(1) as f64 * 100.0
    );
    eprintln!(
        "no warning or block: {:.1}% of all, {:.1}% of those without an injected problem",
        pass_share * 100.0,
        clean_share * 100.0
    );
    eprintln!("warnings and blocks on the others, by rule: {noise:?}");
    assert!(total > 0);
    assert!(
        found as f64 >= 0.95 * total as f64,
        "the engine found {found} of {total} injected problems"
    );
    assert!(clean_share >= 0.75, "{clean_share}");
    // Injected problems are each put in at their rate, independently of the others.
    let rate_sum: f64 = INJECTED.iter().map(|x| x.1).sum();
    assert!(total as f64 / n <= rate_sum + 0.03);
}
