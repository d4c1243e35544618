//! The synthetic county is valid, realistic and deterministic.

use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};
use yigong_core::{EncounterClass, OrgKind, Tier};
use yigong_synth::*;

fn params(residents: u32, seed: u64) -> Params {
    Params {
        residents,
        seed,
        as_of: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
    }
}

fn collect(p: &Params) -> Vec<Item> {
    let mut v = vec![];
    generate(p, &mut |i| v.push(i));
    v
}

#[test]
fn same_seed_same_county_byte_for_byte() {
    let a = format!("{:?}", collect(&params(2_000, 7)));
    let b = format!("{:?}", collect(&params(2_000, 7)));
    assert_eq!(a, b);
    let c = format!("{:?}", collect(&params(2_000, 8)));
    assert_ne!(a, c);
}

#[test]
fn every_item_is_valid_and_references_resolve() {
    let p = params(5_000, 1);
    let today = p.as_of + chrono::Duration::days(1);
    let now = chrono::Utc::now();
    let mut kinds: HashMap<String, OrgKind> = HashMap::new();
    let mut ids = HashSet::new();
    let (mut patients, mut practitioners) = (HashSet::new(), HashSet::new());
    for item in collect(&p) {
        match item {
            Item::Org(o) => {
                o.validate(o.parent.as_ref().map(|p| kinds[p]))
                    .unwrap_or_else(|e| panic!("{}: {e}", o.id));
                assert!(ids.insert(o.id.clone()), "duplicate {}", o.id);
                kinds.insert(o.id.clone(), o.kind);
            }
            Item::Practitioner(pr) => {
                pr.validate().unwrap();
                assert!(kinds.contains_key(&pr.primary_institution));
                for s in &pr.secondments {
                    assert!(kinds.contains_key(&s.institution));
                }
                assert!(practitioners.insert(pr.id.clone()));
            }
            Item::Patient(pt) => {
                pt.validate(today)
                    .unwrap_or_else(|e| panic!("{}: {e}", pt.id));
                assert!(kinds.contains_key(pt.managing_institution.as_ref().unwrap()));
                if let Some(id) = &pt.resident_id {
                    assert_eq!(id.birth_date(), Some(pt.birth_date));
                    assert_eq!(id.sex(), pt.sex);
                }
                assert!(patients.insert(pt.id.clone()));
            }
            Item::Encounter(e) => {
                e.validate(now)
                    .unwrap_or_else(|err| panic!("{}: {err}", e.id));
                assert!(
                    patients.contains(&e.patient),
                    "patient before its encounters"
                );
                assert!(kinds.contains_key(&e.institution));
                if let Some(pr) = &e.practitioner {
                    assert!(practitioners.contains(pr));
                }
                assert!(ids.insert(e.id.clone()), "duplicate {}", e.id);
            }
            Item::Condition(c) => {
                c.validate(today).unwrap();
                assert!(patients.contains(&c.patient));
                assert!(ids.insert(c.id.clone()));
            }
        }
    }
    assert_eq!(patients.len(), 5_000);
}

#[test]
fn the_county_has_the_shape_of_luxian() {
    let items = collect(&params(500, 3));
    let orgs: Vec<_> = items
        .iter()
        .filter_map(|i| if let Item::Org(o) = i { Some(o) } else { None })
        .collect();
    let count = |k: OrgKind| orgs.iter().filter(|o| o.kind == k).count();
    assert_eq!(count(OrgKind::County), 1);
    assert_eq!(count(OrgKind::Community), 3);
    assert_eq!(orgs.iter().filter(|o| o.lead).count(), 3);
    assert_eq!(
        count(OrgKind::TownshipCentre) + count(OrgKind::CommunityCentre),
        20
    );
    assert_eq!(orgs.iter().filter(|o| o.sub_centre).count(), 4);
    assert_eq!(count(OrgKind::VillageClinic), 251);
    assert!(orgs.iter().any(|o| o.name == "泸县潮河镇中心卫生院"));
    assert!(
        orgs.iter().any(|o| o.kind == OrgKind::Cdc)
            && orgs
                .iter()
                .any(|o| o.kind == OrgKind::MaternalChildHospital)
    );
    let communities: HashSet<_> = orgs
        .iter()
        .filter(|o| o.kind == OrgKind::Community)
        .map(|o| o.id.clone())
        .collect();
    for v in orgs.iter().filter(|o| o.kind == OrgKind::VillageClinic) {
        assert!(
            communities.contains(v.parent.as_ref().unwrap()),
            "{} hangs under a community",
            v.name
        );
    }
    // Every township centre has a lead-hospital physician seconded all year.
    let centres: Vec<_> = orgs
        .iter()
        .filter(|o| o.kind.tier() == Some(Tier::Township))
        .collect();
    let as_of = params(1, 1).as_of;
    for c in centres {
        let seconded = items.iter().any(|i| match i {
            Item::Practitioner(p) => p.secondments.iter().any(|s| {
                s.institution == c.id
                    && s.start <= as_of - chrono::Duration::days(300)
                    && s.active_on(as_of)
            }),
            _ => false,
        });
        assert!(seconded, "{} has a seconded physician", c.name);
    }
}

#[test]
fn care_lands_in_realistic_ranges() {
    let items = collect(&params(10_000, 11));
    let tier: HashMap<String, Option<Tier>> = items
        .iter()
        .filter_map(|i| {
            if let Item::Org(o) = i {
                Some((o.id.clone(), o.tier()))
            } else {
                None
            }
        })
        .collect();
    let encounters: Vec<_> = items
        .iter()
        .filter_map(|i| {
            if let Item::Encounter(e) = i {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    let visits: Vec<_> = encounters
        .iter()
        .filter(|e| e.class != EncounterClass::Inpatient)
        .collect();
    let primary = visits
        .iter()
        .filter(|e| e.in_county && tier[&e.institution].is_some_and(Tier::is_primary))
        .count() as f64
        / visits.len() as f64;
    let out = visits.iter().filter(|e| !e.in_county).count() as f64 / visits.len() as f64;
    let per_resident = visits.len() as f64 / 10_000.0;
    let admissions: Vec<_> = encounters
        .iter()
        .filter(|e| e.class == EncounterClass::Inpatient)
        .collect();
    let admitted: HashSet<_> = admissions.iter().map(|e| &e.patient).collect();
    let in_county_admissions =
        admissions.iter().filter(|e| e.in_county).count() as f64 / admissions.len() as f64;
    let old = items
        .iter()
        .filter(|i| matches!(i, Item::Patient(p) if p.age_on(params(1,1).as_of) >= 60))
        .count() as f64
        / 10_000.0;
    println!(
        "primary {primary:.3} out {out:.3} visits/resident {per_resident:.2} admitted {:.3} in-county admissions {in_county_admissions:.3} aged60+ {old:.3}",
        admitted.len() as f64 / 10_000.0
    );
    assert!((0.55..=0.70).contains(&primary), "primary share {primary}");
    assert!((0.02..=0.06).contains(&out), "out-of-county share {out}");
    assert!(
        (3.0..=5.0).contains(&per_resident),
        "visits per resident {per_resident}"
    );
    assert!(
        (0.12..=0.19).contains(&(admitted.len() as f64 / 10_000.0)),
        "admission rate"
    );
    assert!(
        (0.80..=0.90).contains(&in_county_admissions),
        "in-county admissions {in_county_admissions}"
    );
    assert!((0.17..=0.30).contains(&old), "share aged 60+ {old}");
}
