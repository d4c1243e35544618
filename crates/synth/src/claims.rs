//! Insurance settlements the county sees only as claims: outpatient care and
//! drug purchases of its enrollees outside the county (异地门诊、异地购药),
//! settled through the provincial platform and charged to the community's
//! insurance package. The county's own institutions report their care as
//! Encounters with settled charges; what happens elsewhere reaches it only as
//! a FHIR Claim whose `total` is the fund's share, with no Encounter behind it.

use crate::care::local_time;
use crate::dist::{pick, poisson};
use crate::geography::OUT_OF_COUNTY_ID;
use crate::people::Person;
use chrono::{Duration, NaiveDate, SecondsFormat};
use rand::Rng;
use serde_json::{Value, json};
use yigong_core::{Condition, Fen};

/// Claims per resident-year: everyone a little, more with age, most for the
/// chronically ill who keep a specialist in the city.
const BASE_RATE: f64 = 0.04;
const ELDERLY_RATE: f64 = 0.10;
const CHRONIC_RATE: f64 = 0.45;

/// What kind of care a claim settles, its weight and the fund's share in
/// ¥ range (min, max) of the fund-paid amount.
const KINDS: [(&str, u32, u32, u32); 3] = [
    ("异地门诊", 55, 60, 1_800),
    ("异地门诊慢特病", 30, 150, 3_500),
    ("异地定点药店购药", 15, 30, 600),
];

/// The claims of one resident's year (ending on `as_of`).
pub fn person(
    rng: &mut impl Rng,
    person: &Person,
    conditions: &[Condition],
    as_of: NaiveDate,
) -> Vec<Value> {
    let chronic = conditions.iter().any(|c| c.chronic);
    let rate = BASE_RATE
        + if person.age >= 60 { ELDERLY_RATE } else { 0.0 }
        + if chronic { CHRONIC_RATE } else { 0.0 };
    let n = poisson(rng, rate);
    let kinds: Vec<(usize, u32)> = KINDS.iter().enumerate().map(|(i, k)| (i, k.1)).collect();
    (0..n)
        .map(|k| {
            let (label, _, lo, hi) = KINDS[pick(rng, &kinds)];
            // Skewed towards the low end, as bills are.
            let u: f64 = rng.random::<f64>();
            let yuan = lo as f64 + (hi - lo) as f64 * u * u;
            let fen = (yuan * 100.0).round() as i64;
            let day = as_of - Duration::days(rng.random_range(0..365));
            let at = local_time(rng, day, 8 * 60, 18 * 60);
            claim(
                &format!("clm-{}-{k}", person.patient.id),
                &person.patient.id,
                label,
                fen,
                at.to_rfc3339_opts(SecondsFormat::Secs, true),
            )
        })
        .collect()
}

fn claim(id: &str, patient: &str, label: &str, fen: i64, at: String) -> Value {
    let yuan: Value = serde_json::from_str(&Fen(fen).yuan_string()).unwrap_or(json!(0));
    json!({
        "resourceType": "Claim",
        "id": id,
        "extension": [{"url": yigong_fhir::codes::EXT_IN_COUNTY, "valueBoolean": false}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}], "text": label},
        "use": "claim",
        "patient": {"reference": format!("Patient/{patient}")},
        "billablePeriod": {"start": at},
        "created": at,
        "provider": {"reference": format!("Organization/{OUT_OF_COUNTY_ID}")},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"display": "城乡居民基本医疗保险"}}],
        "total": {"value": yuan, "currency": "CNY"},
    })
}
