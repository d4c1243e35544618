//! Residents in households: names, ages, sexes, resident IDs, phones, insurance.

use crate::geography::{COUNTY_CODE, Geography};
use crate::names;
use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use yigong_core::{Insurance, InsuranceScheme, Patient, ResidentId, Sex};

/// Neighbouring divisions, for residents registered elsewhere (migrants, marriage).
const OTHER_DIVISIONS: [&str; 6] = ["510502", "510503", "510504", "510522", "510524", "500112"];

/// Household sizes 1..=6 with their shares (per cent) in rural Sichuan.
const HOUSEHOLD_SIZES: [(usize, u32); 6] = [(1, 15), (2, 28), (3, 22), (4, 18), (5, 11), (6, 6)];

fn household_size(rng: &mut impl Rng) -> usize {
    let mut r = rng.random_range(0..100);
    for (n, w) in HOUSEHOLD_SIZES {
        if r < w {
            return n;
        }
        r -= w;
    }
    3
}

/// A household head's age: an ageing rural county (many young adults work away).
fn head_age(rng: &mut impl Rng) -> u32 {
    match rng.random_range(0..100) {
        0..=14 => rng.random_range(22..35),
        15..=44 => rng.random_range(35..55),
        45..=77 => rng.random_range(55..70),
        _ => rng.random_range(70..92),
    }
}

fn birth_date(rng: &mut impl Rng, age: u32, as_of: NaiveDate) -> NaiveDate {
    let latest = as_of
        .with_year(as_of.year() - age as i32)
        .unwrap_or(as_of - Duration::days(365 * age as i64));
    latest - Duration::days(rng.random_range(0..365))
}

fn phone(rng: &mut impl Rng) -> String {
    const PREFIXES: [&str; 8] = ["135", "136", "138", "139", "150", "158", "180", "187"];
    format!(
        "{}{:08}",
        PREFIXES[rng.random_range(0..PREFIXES.len())],
        rng.random_range(0..100_000_000u32)
    )
}

pub struct Member {
    pub patient: Patient,
    pub age: u32,
}

/// Generates one household of residents numbered from `first`.
pub fn household(
    geo: &Geography,
    rng: &mut impl Rng,
    as_of: NaiveDate,
    first: u64,
    household_no: u64,
    max: usize,
) -> Vec<Member> {
    let size = household_size(rng).min(max).max(1);
    let village = &geo.villages[rng.random_range(0..geo.villages.len())];
    let township = &geo.townships[village.township];
    let managing = village
        .clinic
        .clone()
        .unwrap_or_else(|| township.centre.clone());
    let address = format!(
        "四川省泸州市泸县{}{}{}组{}号",
        township.name,
        village.name,
        rng.random_range(1..12),
        rng.random_range(1..80)
    );
    let household = format!("H{}{:05}", village.code, household_no % 100_000);
    let head_age = head_age(rng);
    let head_male = rng.random_bool(0.8);
    let family = names::surname(rng);

    let mut people: Vec<(u32, Sex, &'static str)> = vec![(
        head_age,
        if head_male { Sex::Male } else { Sex::Female },
        family,
    )];
    if size >= 2 {
        let spouse_age = (head_age as i64 + rng.random_range(-4..=4)).clamp(20, 95) as u32;
        people.push((
            spouse_age,
            if head_male { Sex::Female } else { Sex::Male },
            names::surname(rng),
        ));
    }
    for _ in 2..size {
        let sex = if rng.random_bool(0.52) {
            Sex::Male
        } else {
            Sex::Female
        };
        let age = if head_age < 58 {
            // Children of the couple.
            head_age.saturating_sub(rng.random_range(22..36))
        } else if rng.random_bool(0.5) {
            // Grandchildren left with their grandparents (留守儿童).
            rng.random_range(0..15)
        } else {
            head_age.saturating_sub(rng.random_range(24..34))
        };
        people.push((age, sex, family));
    }

    people
        .into_iter()
        .enumerate()
        .map(|(i, (age, sex, surname))| {
            let birth = birth_date(rng, age, as_of);
            let missing_id = match age {
                0..=5 => 0.25,
                81.. => 0.08,
                _ => 0.02,
            };
            let resident_id = (!rng.random_bool(missing_id)).then(|| {
                let division = if rng.random_bool(0.95) {
                    COUNTY_CODE
                } else {
                    OTHER_DIVISIONS[rng.random_range(0..OTHER_DIVISIONS.len())]
                };
                let seq = rng.random_range(0..500u16) * 2 + u16::from(sex == Sex::Male);
                ResidentId::compose(division, birth, seq)
            });
            let insurance = match rng.random_range(0..100) {
                0..=92 => Some(InsuranceScheme::Resident),
                93..=98 => Some(InsuranceScheme::Employee),
                _ => None,
            }
            .map(|scheme| Insurance {
                scheme,
                number: format!("5105{:010}", first + i as u64),
                year: as_of.year(),
            });
            let patient = Patient {
                id: format!("pat-{:07}", first + i as u64),
                name: format!("{surname}{}", names::given(rng, sex == Sex::Male)),
                sex,
                birth_date: birth,
                resident_id,
                phone: (age >= 16 && rng.random_bool(0.75)).then(|| phone(rng)),
                village: Some(village.code.clone()),
                household: Some(household.clone()),
                address: Some(address.clone()),
                insurance,
                managing_institution: Some(managing.clone()),
            };
            Member { patient, age }
        })
        .collect()
}
