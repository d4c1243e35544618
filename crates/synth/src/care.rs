//! A year of care for one resident: chronic conditions, outpatient and emergency
//! visits across the three tiers, admissions, and what each cost (in fen).

use crate::geography::{Geography, OUT_OF_COUNTY_ID};
use crate::people::Member;
use crate::staff::Staff;
use chrono::{Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use rand::Rng;
use yigong_core::{Charges, Condition, Encounter, EncounterClass, Fen, Icd10, OrgKind, Sex};

/// (ICD-10, Chinese name, weight, min age, max age, sex restriction)
type Dx = (&'static str, &'static str, u32, u32, u32, Option<Sex>);

const CHRONIC: [(&str, &str); 4] = [
    ("I10", "原发性高血压"),
    ("E11.9", "2型糖尿病"),
    ("J44.9", "慢性阻塞性肺疾病"),
    ("I25.1", "冠状动脉粥样硬化性心脏病"),
];

const OUTPATIENT: [Dx; 16] = [
    ("J06.9", "急性上呼吸道感染", 30, 0, 120, None),
    ("J20.9", "急性支气管炎", 10, 0, 120, None),
    ("K29.7", "胃炎", 9, 12, 120, None),
    ("M54.5", "腰痛", 8, 20, 120, None),
    ("K52.9", "非感染性胃肠炎", 6, 0, 120, None),
    ("N39.0", "尿路感染", 4, 15, 120, None),
    ("L30.9", "皮炎", 4, 0, 120, None),
    ("H10.9", "结膜炎", 3, 0, 120, None),
    ("M17.9", "膝关节病", 5, 45, 120, None),
    ("R51", "头痛", 4, 10, 120, None),
    ("Z00.0", "一般健康检查", 6, 0, 120, None),
    ("Z23", "预防接种", 6, 0, 6, None),
    ("N76.0", "急性阴道炎", 3, 16, 60, Some(Sex::Female)),
    ("Z34.9", "正常妊娠监督", 3, 20, 40, Some(Sex::Female)),
    ("N40", "前列腺增生", 3, 50, 120, Some(Sex::Male)),
    ("A09", "感染性腹泻", 3, 0, 120, None),
];

const INPATIENT: [Dx; 12] = [
    ("J18.9", "肺炎", 20, 0, 120, None),
    ("I63.9", "脑梗死", 12, 45, 120, None),
    ("J44.1", "慢性阻塞性肺疾病急性加重", 8, 50, 120, None),
    ("I50.9", "心力衰竭", 6, 55, 120, None),
    ("K80.2", "胆囊结石", 6, 25, 120, None),
    ("K35.8", "急性阑尾炎", 5, 8, 80, None),
    ("S72.0", "股骨颈骨折", 4, 60, 120, None),
    ("S82.2", "胫骨骨折", 3, 10, 80, None),
    ("O80", "单胎顺产", 8, 20, 40, Some(Sex::Female)),
    ("E11.9", "2型糖尿病", 5, 40, 120, None),
    ("I10", "原发性高血压", 5, 45, 120, None),
    ("N18.9", "慢性肾脏病", 3, 40, 120, None),
];

fn pick_dx(rng: &mut impl Rng, list: &[Dx], age: u32, sex: Sex) -> (&'static str, &'static str) {
    let ok: Vec<&Dx> = list
        .iter()
        .filter(|d| age >= d.3 && age <= d.4 && d.5.is_none_or(|s| s == sex))
        .collect();
    let total: u32 = ok.iter().map(|d| d.2).sum();
    let mut r = rng.random_range(0..total.max(1));
    for d in &ok {
        if r < d.2 {
            return (d.0, d.1);
        }
        r -= d.2;
    }
    (list[0].0, list[0].1)
}

fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    let l = (-lambda).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

fn fen(rng: &mut impl Rng, lo: i64, hi: i64) -> i64 {
    rng.random_range(lo..hi)
}

/// Splits a total into drugs / consumables / exams / services and sets the insured part.
fn charges(rng: &mut impl Rng, total: i64, insured_pct: (u32, u32)) -> Charges {
    let drugs = total * rng.random_range(30..46) / 100;
    let consumables = total * rng.random_range(4..11) / 100;
    let exams = total * rng.random_range(15..30) / 100;
    let services = total - drugs - consumables - exams;
    let insurance_paid = total * rng.random_range(insured_pct.0..insured_pct.1) as i64 / 100;
    Charges {
        drugs: Fen(drugs),
        consumables: Fen(consumables),
        exams: Fen(exams),
        services: Fen(services),
        insurance_paid: Fen(insurance_paid),
    }
}

pub struct Counters {
    pub encounter: u64,
    pub condition: u64,
}

enum Place {
    Village,
    Township,
    County,
    OutOfCounty,
}

pub struct Care {
    pub conditions: Vec<Condition>,
    pub encounters: Vec<Encounter>,
}

fn when(rng: &mut impl Rng, day: NaiveDate) -> chrono::DateTime<Utc> {
    // Clinic hours 08:00-17:30 in China (UTC+8).
    let minutes = rng.random_range(0..(9 * 60 + 30));
    let local = day.and_time(NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"))
        + Duration::minutes(minutes);
    Utc.from_utc_datetime(&(local - Duration::hours(8)))
}

pub fn year_of_care(
    geo: &Geography,
    staff: &Staff,
    rng: &mut impl Rng,
    m: &Member,
    as_of: NaiveDate,
    n: &mut Counters,
) -> Care {
    let p = &m.patient;
    let age = m.age;
    let year_start = as_of - Duration::days(364);
    let village_clinic = p.managing_institution.clone().unwrap_or_default();
    let village = geo
        .villages
        .iter()
        .find(|v| Some(&v.code) == p.village.as_ref());
    let township = village
        .map(|v| &geo.townships[v.township])
        .unwrap_or(&geo.townships[0]);
    let lead = geo.leads[township.community].clone();
    let has_clinic = village.is_some_and(|v| v.clinic.is_some());

    // Chronic diseases under management.
    let mut conditions = vec![];
    let chronic_p = [
        match age {
            40..=49 => 0.10,
            50..=59 => 0.20,
            60.. => 0.30,
            _ => 0.0,
        },
        match age {
            40..=49 => 0.04,
            50.. => 0.10,
            _ => 0.0,
        },
        if age >= 60 { 0.05 } else { 0.0 },
        if age >= 60 { 0.05 } else { 0.0 },
    ];
    for (i, (code, name)) in CHRONIC.iter().enumerate() {
        if chronic_p[i] > 0.0 && rng.random_bool(chronic_p[i]) {
            n.condition += 1;
            let onset = (as_of - Duration::days(rng.random_range(200..5000)))
                .max(p.birth_date + Duration::days(365 * 30));
            conditions.push(Condition {
                id: format!("cond-{:07}", n.condition),
                patient: p.id.clone(),
                code: Icd10::parse(code).expect("valid code"),
                display: name.to_string(),
                onset: onset.min(as_of),
                institution: if has_clinic {
                    village_clinic.clone()
                } else {
                    township.centre.clone()
                },
                encounter: None,
                chronic: true,
            });
        }
    }

    let base = match age {
        0..=5 => 4.5,
        6..=14 => 2.2,
        15..=44 => 2.2,
        45..=59 => 3.2,
        _ => 4.6,
    };
    let visits = poisson(rng, base + 2.5 * conditions.len() as f64);
    let mut encounters = vec![];
    let physician = |rng: &mut dyn rand::RngCore, inst: &str| {
        let docs = staff.physicians_of(inst);
        (!docs.is_empty()).then(|| docs[rng.random_range(0..docs.len())].clone())
    };
    let department = |inst: &str, class: EncounterClass, age: u32, code: &str| -> Option<String> {
        let d = geo.departments_of(inst);
        if d.is_empty() {
            return None;
        }
        let county = d.len() > 4;
        let i = if !county {
            0
        } else if class == EncounterClass::Emergency {
            4
        } else if code.starts_with('O') || code.starts_with("Z34") || code.starts_with("N76") {
            2
        } else if age < 14 {
            3
        } else if code.starts_with('S')
            || code.starts_with("K80")
            || code.starts_with("K35")
            || code.starts_with("M")
        {
            1
        } else {
            0
        };
        d.get(i).cloned()
    };
    let other_county: Vec<&str> = geo
        .hospitals
        .iter()
        .filter(|h| h.kind != OrgKind::Cdc && h.kind != OrgKind::MentalHealth && h.id != lead)
        .map(|h| h.id.as_str())
        .collect();

    for _ in 0..visits {
        let chronic_visit = !conditions.is_empty() && rng.random_bool(0.6);
        let place = match rng.random_range(0..100) {
            r if r < (if chronic_visit { 42 } else { 28 }) && has_clinic => Place::Village,
            r if r < (if chronic_visit { 74 } else { 62 }) => Place::Township,
            r if r < 96 => Place::County,
            _ => Place::OutOfCounty,
        };
        let emergency = matches!(place, Place::County) && rng.random_bool(0.12)
            || matches!(place, Place::Township) && rng.random_bool(0.03);
        let (code, _) = if chronic_visit {
            let c = &conditions[rng.random_range(0..conditions.len())];
            (c.code.as_str().to_string(), c.display.clone())
        } else {
            let (c, d) = pick_dx(rng, &OUTPATIENT, age, p.sex);
            (c.to_string(), d.to_string())
        };
        let (inst, in_county, total, insured) = match place {
            Place::Village => (
                village_clinic.clone(),
                true,
                fen(rng, 2_000, 6_000),
                (50, 61),
            ),
            Place::Township => (
                township.centre.clone(),
                true,
                fen(rng, 6_000, 18_000),
                (40, 61),
            ),
            Place::County => {
                let inst = if age < 14 && rng.random_bool(0.3) || code.starts_with("Z34") {
                    "org-mch".to_string()
                } else if rng.random_bool(0.75) {
                    lead.clone()
                } else {
                    other_county[rng.random_range(0..other_county.len())].to_string()
                };
                let t = if emergency {
                    fen(rng, 30_000, 80_000)
                } else {
                    fen(rng, 15_000, 45_000)
                };
                (inst, true, t, (30, 51))
            }
            Place::OutOfCounty => (
                OUT_OF_COUNTY_ID.to_string(),
                false,
                fen(rng, 30_000, 90_000),
                (20, 41),
            ),
        };
        let class = if emergency {
            EncounterClass::Emergency
        } else {
            EncounterClass::Outpatient
        };
        let day = year_start + Duration::days(rng.random_range(0..365));
        n.encounter += 1;
        encounters.push(Encounter {
            id: format!("enc-{:08}", n.encounter),
            patient: p.id.clone(),
            class,
            department: department(&inst, class, age, &code),
            practitioner: if in_county {
                physician(rng, &inst)
            } else {
                None
            },
            institution: inst,
            start: when(rng, day),
            end: None,
            in_county,
            diagnoses: vec![Icd10::parse(&code).expect("valid code")],
            charges: charges(rng, total, insured),
        });
    }

    // Admissions.
    let admit_p = match age {
        0..=5 => 0.09,
        6..=44 => 0.07,
        45..=59 => 0.14,
        _ => 0.27,
    } + 0.05 * conditions.len() as f64;
    let admissions = if rng.random_bool(admit_p.min(0.9)) {
        if rng.random_bool(0.18) { 2 } else { 1 }
    } else {
        0
    };
    for _ in 0..admissions {
        let (code, _) = pick_dx(rng, &INPATIENT, age, p.sex);
        let (inst, in_county, los, total, insured) = match rng.random_range(0..100) {
            0..=23 => (
                township.centre.clone(),
                true,
                rng.random_range(3..8),
                fen(rng, 150_000, 400_000),
                (70, 81),
            ),
            24..=85 => {
                let inst = if code == "O80" && rng.random_bool(0.5) {
                    "org-mch".to_string()
                } else {
                    lead.clone()
                };
                (
                    inst,
                    true,
                    rng.random_range(4..13),
                    fen(rng, 500_000, 1_500_000),
                    (55, 71),
                )
            }
            _ => (
                OUT_OF_COUNTY_ID.to_string(),
                false,
                rng.random_range(6..16),
                fen(rng, 1_500_000, 4_000_000),
                (45, 56),
            ),
        };
        let day = year_start + Duration::days(rng.random_range(0..365));
        let start = when(rng, day);
        let end = start + Duration::days(los) + Duration::hours(rng.random_range(-3..4));
        let now_limit = Utc.from_utc_datetime(
            &(as_of.and_time(NaiveTime::from_hms_opt(0, 0, 0).expect("valid"))
                - Duration::hours(8)),
        );
        n.encounter += 1;
        encounters.push(Encounter {
            id: format!("enc-{:08}", n.encounter),
            patient: p.id.clone(),
            class: EncounterClass::Inpatient,
            department: department(&inst, EncounterClass::Inpatient, age, code),
            practitioner: if in_county {
                physician(rng, &inst)
            } else {
                None
            },
            institution: inst,
            start,
            end: (end < now_limit).then_some(end),
            in_county,
            diagnoses: vec![Icd10::parse(code).expect("valid code")],
            charges: charges(rng, total, insured),
        });
    }
    encounters.sort_by_key(|e| e.start);
    Care {
        conditions,
        encounters,
    }
}
