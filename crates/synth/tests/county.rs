//! The synthetic county is valid, shaped like Luxian, realistic and deterministic.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use yigong_core::{EncounterClass, OrgKind, Tier};
use yigong_synth::*;

mod common;
use common::{as_of, params};

fn collect(p: &Params) -> Vec<Item> {
    let mut v = vec![];
    generate(p, &mut |i| v.push(i));
    v
}

/// The end of `as_of` in China (UTC+8).
fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(day.and_hms_opt(23, 59, 59).unwrap() - Duration::hours(8)))
}

fn json(item: &Item) -> String {
    match item {
        Item::Org(o) => serde_json::to_string(o),
        Item::Practitioner(p) => serde_json::to_string(p),
        Item::Patient(p) => serde_json::to_string(p),
        Item::Encounter(e) => serde_json::to_string(e),
        Item::Condition(c) => serde_json::to_string(c),
        Item::Resource(v) => serde_json::to_string(v),
        Item::Prescription(rx) => serde_json::to_string(rx),
    }
    .unwrap()
}

#[test]
fn same_params_same_county_byte_for_byte() {
    let a = collect(&params(1_500, 7));
    let b = collect(&params(1_500, 7));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let ja: Vec<String> = a.iter().map(json).collect();
    let jb: Vec<String> = b.iter().map(json).collect();
    assert_eq!(ja, jb);
    let c = collect(&params(1_500, 8));
    assert_ne!(format!("{a:?}"), format!("{c:?}"));
    // A smaller county is a prefix of a larger one with the same seed (households
    // draw from their own streams), except for the household the cut falls in.
    let small = collect(&params(500, 7));
    let first_patient = small
        .iter()
        .position(|i| matches!(i, Item::Patient(_)))
        .unwrap();
    assert_eq!(
        format!("{:?}", &small[..first_patient + 50]),
        format!("{:?}", &a[..first_patient + 50])
    );
}

#[test]
fn summary_counts_what_was_emitted() {
    let mut counts = [0usize; 5];
    let mut duplicates = 0;
    let s = generate_counted(&params(800, 3), &mut |i| match i {
        Item::Org(_) => counts[0] += 1,
        Item::Practitioner(_) => counts[1] += 1,
        Item::Patient(p) => {
            counts[2] += 1;
            duplicates += usize::from(p.id.ends_with("-d1"));
        }
        Item::Encounter(_) => counts[3] += 1,
        Item::Condition(_) => counts[4] += 1,
        Item::Resource(_) | Item::Prescription(_) => {}
    });
    assert_eq!(
        [
            s.orgs,
            s.practitioners,
            s.patients,
            s.encounters,
            s.conditions
        ],
        counts
    );
    // `patients` counts every Patient record; 800 residents, some registered twice.
    assert_eq!(s.duplicate_patients, duplicates);
    assert_eq!(s.patients - s.duplicate_patients, 800);
    assert!((30..=110).contains(&duplicates), "{duplicates} duplicates");
    let none = generate_counted(&params(0, 3), &mut |_| {});
    assert_eq!(none.patients, 0);
    assert_eq!(none.orgs, s.orgs);
}

#[test]
fn every_item_is_valid_ordered_and_references_resolve() {
    let p = params(5_000, 1);
    let today = p.as_of;
    let now = end_of_day(p.as_of);
    let year_start = end_of_day(p.as_of - Duration::days(365));
    let mut kinds: HashMap<String, OrgKind> = HashMap::new();
    let mut ids = HashSet::new();
    let mut resident_ids = HashSet::new();
    let (mut patients, mut practitioners) = (HashSet::new(), HashSet::new());
    let mut current_patient = String::new();
    // The resident whose items are being emitted, and their record.
    let mut current_resident: Option<yigong_core::Patient> = None;
    let (mut duplicates, mut unverified, mut split_records) = (0, 0, HashSet::new());
    let mut phase = 0;
    let mut org_group = 0;
    let id_ok = |id: &str| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    for item in collect(&p) {
        let this_phase = match &item {
            Item::Org(_) => 0,
            Item::Practitioner(_) => 1,
            _ => 2,
        };
        assert!(this_phase >= phase, "items come in dependency order");
        phase = this_phase;
        match item {
            Item::Org(o) => {
                let group = match o.kind {
                    OrgKind::County => 0,
                    OrgKind::Community => 1,
                    OrgKind::Department => 3,
                    _ => 2,
                };
                assert!(group >= org_group, "{} out of order", o.id);
                org_group = group;
                let parent = o.parent.as_ref().map(|p| {
                    *kinds
                        .get(p)
                        .unwrap_or_else(|| panic!("{}: parent {p} not yet emitted", o.id))
                });
                o.validate(parent)
                    .unwrap_or_else(|e| panic!("{}: {e}", o.id));
                assert!(id_ok(&o.id), "{}", o.id);
                assert!(ids.insert(o.id.clone()), "duplicate {}", o.id);
                if let Some(code) = &o.code {
                    assert_eq!(code.len(), 18);
                }
                kinds.insert(o.id.clone(), o.kind);
            }
            Item::Practitioner(pr) => {
                pr.validate().unwrap_or_else(|e| panic!("{}: {e}", pr.id));
                assert!(id_ok(&pr.id));
                assert!(kinds[&pr.primary_institution].is_institution());
                if let Some(d) = &pr.department {
                    assert_eq!(kinds[d], OrgKind::Department);
                }
                for s in &pr.secondments {
                    assert!(kinds[&s.institution].is_institution());
                }
                assert!(ids.insert(pr.id.clone()), "duplicate {}", pr.id);
                practitioners.insert(pr.id.clone());
            }
            Item::Patient(pt) => {
                pt.validate(today)
                    .unwrap_or_else(|e| panic!("{}: {e}", pt.id));
                assert!(id_ok(&pt.id));
                let m = pt.managing_institution.as_ref().unwrap();
                if let Some(id) = &pt.resident_id {
                    assert_eq!(id.birth_date(), Some(pt.birth_date));
                    assert_eq!(id.sex(), pt.sex);
                }
                if let Some(original) = pt.id.strip_suffix("-d1") {
                    // A second record of the resident just emitted, registered at
                    // another institution of the county; it may repeat the
                    // resident's ID but no one else's.
                    let resident = current_resident.as_ref().expect("follows its resident");
                    assert_eq!(resident.id, original);
                    assert_ne!(Some(m), resident.managing_institution.as_ref());
                    assert!(kinds[m].is_institution() && kinds[m] != OrgKind::External);
                    if let Some(id) = &pt.resident_id {
                        assert_eq!(Some(id), resident.resident_id.as_ref(), "{}", pt.id);
                    }
                    if let Some(raw) = &pt.unverified_id {
                        assert_eq!(
                            yigong_core::ResidentId::parse(raw).unwrap_err().code(),
                            "resident-id-checksum"
                        );
                        assert!(pt.resident_id.is_none());
                        unverified += 1;
                    }
                    assert!(pt.household.is_none());
                    duplicates += 1;
                } else {
                    assert!(matches!(
                        kinds[m],
                        OrgKind::VillageClinic | OrgKind::TownshipCentre | OrgKind::CommunityCentre
                    ));
                    if let Some(id) = &pt.resident_id {
                        assert!(resident_ids.insert(id.clone()), "duplicate ID {id}");
                    }
                    assert!(pt.unverified_id.is_none());
                    let village = pt.village.as_ref().unwrap();
                    assert_eq!(village.len(), 12);
                    assert!(pt.address.as_ref().unwrap().starts_with("四川省泸州市泸县"));
                    current_resident = Some(pt.clone());
                }
                assert!(ids.insert(pt.id.clone()), "duplicate {}", pt.id);
                patients.insert(pt.id.clone());
                current_patient = pt.id.clone();
            }
            Item::Encounter(e) => {
                e.validate(now)
                    .unwrap_or_else(|err| panic!("{}: {err}", e.id));
                assert!(id_ok(&e.id));
                assert_eq!(e.patient, current_patient, "follows its patient");
                assert!(e.start > year_start && e.start <= now, "{}", e.id);
                assert!(kinds[&e.institution].is_institution());
                assert_eq!(
                    e.in_county,
                    kinds[&e.institution] != OrgKind::External,
                    "{}",
                    e.id
                );
                if let Some(d) = &e.department {
                    assert_eq!(kinds[d], OrgKind::Department);
                }
                if let Some(pr) = &e.practitioner {
                    assert!(practitioners.contains(pr));
                } else {
                    assert!(!e.in_county, "{} has a practitioner", e.id);
                }
                if e.class == EncounterClass::Inpatient {
                    let los = e.length_of_stay_days().expect("discharged");
                    assert!((3..=12).contains(&los), "{} stays {los} days", e.id);
                    assert!(e.end.unwrap() <= now);
                } else {
                    assert!(e.end.is_none());
                }
                // Clinic hours in China: 08:00-17:30 (UTC+8).
                let local = e.start + Duration::hours(8);
                let minutes = local.hour() * 60 + local.minute();
                assert!((480..1050).contains(&minutes), "{} at {local}", e.id);
                assert!(!e.diagnoses.is_empty());
                assert!(ids.insert(e.id.clone()), "duplicate {}", e.id);
                if e.patient.ends_with("-d1") {
                    split_records.insert(e.patient.clone());
                }
            }
            Item::Condition(c) => {
                c.validate(today).unwrap();
                assert!(id_ok(&c.id));
                assert_eq!(c.patient, current_patient, "follows its patient");
                assert!(kinds[&c.institution].is_institution());
                assert!(ids.insert(c.id.clone()), "duplicate {}", c.id);
            }
            // Checked in tests/flows.rs and tests/rx.rs.
            Item::Resource(_) | Item::Prescription(_) => {}
        }
    }
    assert_eq!(patients.len() - duplicates, 5_000);
    // About 8% of residents have a second record; some of those hold part of the
    // resident's encounters, and some carry an ID whose check character fails.
    assert!((300..=520).contains(&duplicates), "{duplicates} duplicates");
    assert!(
        split_records.len() * 3 > duplicates,
        "{} split",
        split_records.len()
    );
    assert!(unverified > 0);
}

#[test]
fn the_county_has_the_shape_of_luxian() {
    let items = collect(&params(300, 3));
    let orgs: Vec<_> = items
        .iter()
        .filter_map(|i| if let Item::Org(o) = i { Some(o) } else { None })
        .collect();
    let by_id: BTreeMap<&str, _> = orgs.iter().map(|o| (o.id.as_str(), *o)).collect();
    let count = |k: OrgKind| orgs.iter().filter(|o| o.kind == k).count();
    assert_eq!(orgs[0].id, COUNTY_ID);
    assert_eq!(orgs[0].name, "泸县");
    assert_eq!(orgs[0].division.as_ref().unwrap().as_str(), COUNTY_CODE);
    assert_eq!(count(OrgKind::County), 1);
    assert_eq!(count(OrgKind::Community), 3);
    assert_eq!(count(OrgKind::TownshipCentre), 19);
    assert_eq!(count(OrgKind::CommunityCentre), 1);
    assert_eq!(count(OrgKind::VillageClinic), 251);
    assert_eq!(count(OrgKind::External), 1);
    assert_eq!(by_id[OUT_OF_COUNTY_ID].parent.as_deref(), Some(COUNTY_ID));

    let leads: Vec<_> = orgs.iter().filter(|o| o.lead).collect();
    assert_eq!(
        leads.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["泸县人民医院", "泸县第二人民医院", "泸县中医医院"]
    );
    let lead_communities: BTreeSet<_> = leads.iter().map(|o| o.parent.clone()).collect();
    assert_eq!(lead_communities.len(), 3, "one lead per community");
    for name in ["泸县妇幼保健院", "泸县疾病预防控制中心"] {
        let o = orgs.iter().find(|o| o.name == name).unwrap();
        assert_eq!(
            o.parent, leads[0].parent,
            "{name} joins the people's hospital community"
        );
    }
    assert_eq!(count(OrgKind::MentalHealth), 1);

    let subs: BTreeSet<_> = orgs
        .iter()
        .filter(|o| o.sub_centre)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(subs.len(), 4);
    assert!(subs.contains("泸县潮河镇中心卫生院") && subs.contains("泸县兆雅镇中心卫生院"));
    assert!(orgs.iter().any(|o| o.name == "泸县嘉明镇卫生院"));
    assert!(
        orgs.iter()
            .any(|o| o.name == "泸县玉蟾街道社区卫生服务中心")
    );
    assert!(orgs.iter().any(|o| o.name == "福集镇赵岩村卫生室"));

    for v in orgs.iter().filter(|o| o.kind == OrgKind::VillageClinic) {
        let parent = by_id[v.parent.as_deref().unwrap()];
        assert_eq!(parent.kind, OrgKind::Community, "{}", v.name);
        assert_eq!(v.division.as_ref().unwrap().as_str().len(), 12);
        assert!(v.name.ends_with("村卫生室"));
        // The clinic belongs to the community of its township centre.
        let township = &v.division.as_ref().unwrap().as_str()[..9];
        let centre = orgs
            .iter()
            .find(|o| o.division.as_ref().is_some_and(|d| d.as_str() == township))
            .unwrap();
        assert_eq!(centre.parent, v.parent);
    }
    for d in orgs.iter().filter(|o| o.kind == OrgKind::Department) {
        let parent = by_id[d.parent.as_deref().unwrap()];
        assert!(parent.kind.is_institution());
        assert_ne!(parent.kind, OrgKind::VillageClinic);
    }
    let departments_of = |name: &str| {
        let id = &orgs.iter().find(|o| o.name == name).unwrap().id;
        orgs.iter()
            .filter(|o| o.parent.as_ref() == Some(id))
            .count()
    };
    assert!(departments_of("泸县人民医院") >= 10);
    assert!(departments_of("泸县嘉明镇卫生院") >= 4);

    // Every township centre has a lead-hospital attending seconded all year.
    let as_of = as_of();
    let practitioners: Vec<_> = items
        .iter()
        .filter_map(|i| {
            if let Item::Practitioner(p) = i {
                Some(p)
            } else {
                None
            }
        })
        .collect();
    for c in orgs
        .iter()
        .filter(|o| o.kind.tier() == Some(Tier::Township))
    {
        let lead = leads.iter().find(|l| l.parent == c.parent).unwrap();
        let seconded = practitioners.iter().any(|p| {
            p.primary_institution == lead.id
                && p.title == yigong_core::Title::Attending
                && p.secondments.iter().any(|s| {
                    s.institution == c.id
                        && s.start == as_of - Duration::days(364)
                        && s.end == Some(as_of)
                        && s.active_on(as_of)
                })
        });
        assert!(seconded, "{} has a seconded attending", c.name);
    }
    // Some experts go for short periods.
    assert!(practitioners.iter().any(|p| {
        p.secondments
            .iter()
            .any(|s| s.end.is_some_and(|e| (e - s.start).num_days() <= 90))
    }));
    // Staff sizes per tier.
    let staff_of = |id: &str| {
        practitioners
            .iter()
            .filter(|p| p.primary_institution == id)
            .count()
    };
    for l in &leads {
        assert!((120..=250).contains(&staff_of(&l.id)), "{}", l.name);
    }
    for o in &orgs {
        let n = staff_of(&o.id);
        match o.kind {
            OrgKind::TownshipCentre | OrgKind::CommunityCentre => {
                assert!((10..=30).contains(&n), "{} has {n}", o.name)
            }
            OrgKind::VillageClinic => assert!((1..=2).contains(&n), "{} has {n}", o.name),
            _ => {}
        }
    }
    let nurses: Vec<_> = practitioners
        .iter()
        .filter(|p| p.role == yigong_core::Role::Nurse)
        .collect();
    let female = nurses
        .iter()
        .filter(|p| p.sex == yigong_core::Sex::Female)
        .count();
    assert!(female * 10 > nurses.len() * 9, "nurses are mostly women");
    for p in &practitioners {
        if matches!(p.role, yigong_core::Role::Physician) {
            assert_eq!(p.licence.as_ref().unwrap().len(), 15);
        }
    }
}

#[test]
fn care_lands_in_realistic_ranges() {
    let n = 10_000;
    let items = collect(&params(n, 11));
    let as_of = as_of();
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
    // Care is counted per resident: a duplicate record (`<id>-d1`) stands for the
    // resident it duplicates.
    let resident = |id: &str| id.strip_suffix("-d1").unwrap_or(id).to_string();
    let mut ages: HashMap<String, u32> = HashMap::new();
    let mut chronic: HashMap<String, Vec<String>> = HashMap::new();
    let mut encounters = vec![];
    for i in &items {
        match i {
            Item::Patient(p) if !p.id.ends_with("-d1") => {
                ages.insert(p.id.clone(), p.age_on(as_of));
            }
            Item::Condition(c) => {
                assert!(c.chronic);
                chronic
                    .entry(c.patient.clone())
                    .or_default()
                    .push(c.code.as_str().to_string());
            }
            Item::Encounter(e) => encounters.push(e),
            _ => {}
        }
    }
    let share = |num: usize, den: usize| num as f64 / den as f64;
    let visits: Vec<_> = encounters
        .iter()
        .filter(|e| e.class != EncounterClass::Inpatient)
        .collect();
    let tier_of = |e: &yigong_core::Encounter| tier[&e.institution];
    let primary = share(
        visits
            .iter()
            .filter(|e| tier_of(e).is_some_and(Tier::is_primary))
            .count(),
        visits.len(),
    );
    let county = share(
        visits
            .iter()
            .filter(|e| tier_of(e) == Some(Tier::County))
            .count(),
        visits.len(),
    );
    let out = share(visits.iter().filter(|e| !e.in_county).count(), visits.len());
    let per_resident = visits.len() as f64 / n as f64;
    let emergencies: Vec<_> = visits
        .iter()
        .filter(|e| e.class == EncounterClass::Emergency)
        .collect();
    let emergency = share(emergencies.len(), visits.len());
    let emergency_county = share(
        emergencies
            .iter()
            .filter(|e| tier_of(e) == Some(Tier::County))
            .count(),
        emergencies.len(),
    );
    let admissions: Vec<_> = encounters
        .iter()
        .filter(|e| e.class == EncounterClass::Inpatient)
        .collect();
    let admitted: HashSet<_> = admissions.iter().map(|e| resident(&e.patient)).collect();
    let admission_rate = share(admitted.len(), n as usize);
    let in_county_admissions = share(
        admissions.iter().filter(|e| e.in_county).count(),
        admissions.len(),
    );
    let count_age = |f: &dyn Fn(u32) -> bool| ages.values().filter(|&&a| f(a)).count();
    let old = share(count_age(&|a| a >= 60), n as usize);
    let young = share(count_age(&|a| a < 15), n as usize);
    let hypertension_60 = share(
        ages.iter()
            .filter(|(p, a)| {
                **a >= 60
                    && chronic
                        .get(*p)
                        .is_some_and(|c| c.iter().any(|c| c == "I10"))
            })
            .count(),
        count_age(&|a| a >= 60),
    );
    let diabetes_50 = share(
        ages.iter()
            .filter(|(p, a)| {
                **a >= 50
                    && chronic
                        .get(*p)
                        .is_some_and(|c| c.iter().any(|c| c == "E11.9"))
            })
            .count(),
        count_age(&|a| a >= 50),
    );
    println!(
        "visits/resident {per_resident:.2} primary {primary:.3} county {county:.3} out {out:.3} \
         emergency {emergency:.3} (county {emergency_county:.2}) admitted {admission_rate:.3} \
         admissions/100 {:.1} in-county admissions {in_county_admissions:.3} 60+ {old:.3} <15 {young:.3} \
         hypertension(60+) {hypertension_60:.3} diabetes(50+) {diabetes_50:.3}",
        admissions.len() as f64 * 100.0 / n as f64
    );
    assert!((3.0..=5.0).contains(&per_resident), "visits {per_resident}");
    assert!((0.60..=0.68).contains(&primary), "primary share {primary}");
    assert!((0.30..=0.36).contains(&county), "county share {county}");
    assert!((0.03..=0.05).contains(&out), "out-of-county share {out}");
    assert!(
        (0.035..=0.07).contains(&emergency),
        "emergency share {emergency}"
    );
    assert!(emergency_county > 0.6, "emergencies mostly at county level");
    assert!(
        (0.13..=0.17).contains(&admission_rate),
        "admission rate {admission_rate}"
    );
    assert!(
        (0.82..=0.88).contains(&in_county_admissions),
        "in-county admissions {in_county_admissions}"
    );
    assert!((0.19..=0.25).contains(&old), "share aged 60+ {old}");
    assert!((0.13..=0.19).contains(&young), "share under 15 {young}");
    assert!(
        (0.21..=0.29).contains(&hypertension_60),
        "{hypertension_60}"
    );
    assert!((0.075..=0.125).contains(&diabetes_50), "{diabetes_50}");

    // Diagnoses are age- and sex-appropriate.
    let patients: HashMap<String, yigong_core::Patient> = items
        .iter()
        .filter_map(|i| {
            if let Item::Patient(p) = i {
                Some((p.id.clone(), p.clone()))
            } else {
                None
            }
        })
        .collect();
    for e in &encounters {
        let p = &patients[&resident(&e.patient)];
        for d in &e.diagnoses {
            if d.chapter() == 'O' {
                assert_eq!(p.sex, yigong_core::Sex::Female);
                assert!((18..=45).contains(&p.age_on(as_of)));
            }
        }
    }

    // Charges by tier and class (yuan).
    for e in &encounters {
        let total = e.charges.total().0;
        let yuan = total / 100;
        let t = tier_of(e);
        match (e.class, t, e.in_county) {
            (EncounterClass::Outpatient, Some(Tier::Village), _) => {
                assert!((20..=60).contains(&yuan), "{}: {yuan}", e.id)
            }
            (EncounterClass::Outpatient, Some(Tier::Township), _) => {
                assert!((60..=180).contains(&yuan), "{}: {yuan}", e.id)
            }
            (EncounterClass::Outpatient, Some(Tier::County), _) => {
                assert!((150..=450).contains(&yuan), "{}: {yuan}", e.id)
            }
            (EncounterClass::Inpatient, Some(Tier::Township), _) => {
                assert!((1_500..=4_000).contains(&yuan), "{}: {yuan}", e.id)
            }
            (EncounterClass::Inpatient, Some(Tier::County), _) => {
                assert!((5_000..=15_000).contains(&yuan), "{}: {yuan}", e.id)
            }
            (EncounterClass::Inpatient, _, false) => {
                assert!((15_000..=40_000).contains(&yuan), "{}: {yuan}", e.id)
            }
            _ => {}
        }
        let insured = e.charges.insurance_paid.0 as f64 / total as f64;
        let drugs = e.charges.drugs.0 as f64 / total as f64;
        assert!((0.29..=0.46).contains(&drugs), "{}: drugs {drugs}", e.id);
        if e.class == EncounterClass::Inpatient {
            assert!((0.49..=0.76).contains(&insured), "{}: {insured}", e.id);
        } else {
            assert!((0.29..=0.61).contains(&insured), "{}: {insured}", e.id);
        }
    }
}
