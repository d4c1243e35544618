//! Residents in households: who lives together, their names, ages, resident IDs,
//! phones, insurance and addresses.
//!
//! Households follow the shapes of an ageing rural county where many young adults
//! work away: elderly living alone or as couples, empty nests, nuclear families,
//! three generations, and grandparents raising grandchildren (留守儿童). With the
//! weights below the county has about 16-17% children under 15, about 22-23%
//! people aged 60 and over, and a sex ratio of about 1.03.
//!
//! Some look-alikes that a master patient index must keep apart are built in:
//! about 1.2% of births are twins (same household, address and birth date,
//! adjacent ID sequence numbers, different given names), and children carry a
//! guardian's phone number, as clerks record it.

use crate::dist::pick;
use crate::geography::{COUNTY_CODE, Geography};
use crate::names;
use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use std::collections::HashSet;
use yigong_core::{Insurance, InsuranceScheme, Patient, ResidentId, Sex};

/// Divisions of residents registered elsewhere (marriage, migration): Luzhou's
/// districts and counties, 隆昌 (Neijiang), 荣昌 and 永川 (Chongqing).
const OTHER_DIVISIONS: [&str; 7] = [
    "510502", "510503", "510504", "510522", "511083", "500153", "500118",
];

const MOBILE_PREFIXES: [&str; 24] = [
    "134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182",
    "183", "187", "188", "130", "131", "132", "155", "156", "186", "133", "189",
];

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One person aged 60+ (more often a widow).
    SingleElder,
    ElderCouple,
    /// One adult of working age (more often a man).
    SingleAdult,
    /// A couple without children at home (young, or an empty nest).
    Couple,
    /// Parents (sometimes a single mother) and one to three children.
    Nuclear,
    /// Grandparents, their son, his wife and their children.
    ThreeGenerations,
    /// Grandparents with grandchildren whose parents work away.
    SkippedGeneration,
}

const SHAPES: [(Shape, u32); 7] = [
    (Shape::SingleElder, 7),
    (Shape::ElderCouple, 10),
    (Shape::SingleAdult, 15),
    (Shape::Couple, 16),
    (Shape::Nuclear, 28),
    (Shape::ThreeGenerations, 15),
    (Shape::SkippedGeneration, 6),
];

/// One resident with what the care model needs besides the record.
pub struct Person {
    pub patient: Patient,
    /// Age in whole years on `as_of`.
    pub age: u32,
    /// Index into `Geography::villages`.
    pub village: usize,
}

/// Keeps resident ID sequence numbers unique per division and birth date with a
/// bit set (about 5 MB for the county, whatever the number of residents).
struct IdRegistry {
    first_day: NaiveDate,
    days: usize,
    county: Vec<u64>,
    others: HashSet<(u8, u32, u16)>,
}

impl IdRegistry {
    fn new(as_of: NaiveDate) -> Self {
        let first_day = as_of - Duration::days(366 * 121);
        let days = (as_of - first_day).num_days() as usize + 1;
        IdRegistry {
            first_day,
            days,
            county: vec![0; (days * 1000).div_ceil(64)],
            others: HashSet::new(),
        }
    }

    /// Claims a free sequence number with the parity of `sex`, starting at `wanted`.
    fn claim(&mut self, division: usize, birth: NaiveDate, wanted: u16, sex: Sex) -> u16 {
        let parity = u16::from(sex == Sex::Male);
        let day = (birth - self.first_day)
            .num_days()
            .clamp(0, self.days as i64 - 1) as usize;
        let mut seq = (wanted & !1) | parity;
        for _ in 0..500 {
            let free = if division == usize::MAX {
                let bit = day * 1000 + seq as usize;
                let (w, b) = (bit / 64, bit % 64);
                let free = self.county[w] & (1 << b) == 0;
                if free {
                    self.county[w] |= 1 << b;
                }
                free
            } else {
                self.others.insert((division as u8, day as u32, seq))
            };
            if free {
                return seq;
            }
            seq = (seq + 2) % 1000;
        }
        seq
    }
}

/// Makes households one after another, numbering residents from `pat-0000001`.
pub struct Population<'a> {
    geo: &'a Geography,
    as_of: NaiveDate,
    next_patient: u64,
    /// Households registered so far in each village (for 户号 and addresses).
    per_village: Vec<u32>,
    ids: IdRegistry,
}

/// Share of births that are twins (China: about 1.2-1.5% of deliveries).
const TWIN_BIRTHS: f64 = 0.012;
/// Share of twins of the same sex (identical twins plus half of the fraternal).
const TWINS_SAME_SEX: f64 = 0.65;
/// Share of children (under 18) whose record carries a guardian's phone.
const CHILD_GUARDIAN_PHONE: f64 = 0.9;

/// Someone about to be registered: age, sex, surname, optional given-name generation char.
struct Draft {
    age: u32,
    sex: Sex,
    surname: &'static str,
    generation: Option<&'static str>,
    /// Born on the same day as the draft just before (a twin).
    twin: bool,
}

fn elder_age(rng: &mut impl Rng) -> u32 {
    match pick(rng, &[(0, 40), (1, 40), (2, 20)]) {
        0 => rng.random_range(60..=69),
        1 => rng.random_range(70..=79),
        _ => rng.random_range(80..=95),
    }
}

fn child_sex(rng: &mut impl Rng) -> Sex {
    if rng.random_bool(0.54) {
        Sex::Male
    } else {
        Sex::Female
    }
}

/// Ages of up to `n` children of a mother aged `mother`, eldest first.
fn children_ages(rng: &mut impl Rng, mother: u32, n: u32, oldest: u32) -> Vec<u32> {
    let mut out = vec![];
    let mut age = mother as i32 - rng.random_range(21..=30);
    for _ in 0..n {
        if age < 0 {
            break;
        }
        if age as u32 <= oldest {
            out.push(age as u32);
        }
        age -= rng.random_range(2..=6);
    }
    out
}

/// The date `years` years before `day` (28 February for a 29 February).
fn years_before(day: NaiveDate, years: u32) -> NaiveDate {
    let y = day.year() - years as i32;
    day.with_year(y)
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(y, 2, 28).expect("valid date"))
}

/// A birth date such that the person is exactly `age` on `as_of`.
fn birth_date(rng: &mut impl Rng, age: u32, as_of: NaiveDate) -> NaiveDate {
    let latest = years_before(as_of, age);
    let earliest = years_before(as_of, age + 1) + Duration::days(1);
    let span = (latest - earliest).num_days().max(0);
    earliest + Duration::days(rng.random_range(0..=span))
}

/// The other sex.
pub fn opposite(sex: Sex) -> Sex {
    match sex {
        Sex::Male => Sex::Female,
        Sex::Female => Sex::Male,
    }
}

/// A mobile number.
pub fn phone(rng: &mut impl Rng) -> String {
    format!(
        "{}{:08}",
        MOBILE_PREFIXES[rng.random_range(0..MOBILE_PREFIXES.len())],
        rng.random_range(0..100_000_000u32)
    )
}

impl<'a> Population<'a> {
    pub fn new(geo: &'a Geography, as_of: NaiveDate) -> Self {
        Population {
            geo,
            as_of,
            next_patient: 1,
            per_village: vec![0; geo.villages.len()],
            ids: IdRegistry::new(as_of),
        }
    }

    /// The members of one household (one to six), head first.
    fn members(&self, rng: &mut impl Rng) -> Vec<Draft> {
        let family = names::surname(rng);
        let d = |age: u32, sex: Sex, surname: &'static str| Draft {
            age,
            sex,
            surname,
            generation: None,
            twin: false,
        };
        let mut m = vec![];
        match pick(rng, &SHAPES) {
            Shape::SingleElder => {
                let sex = if rng.random_bool(0.62) {
                    Sex::Female
                } else {
                    Sex::Male
                };
                m.push(d(elder_age(rng), sex, family));
            }
            Shape::ElderCouple => {
                let h: u32 = match pick(rng, &[(0, 50), (1, 38), (2, 12)]) {
                    0 => rng.random_range(60..=69),
                    1 => rng.random_range(70..=79),
                    _ => rng.random_range(80..=88),
                };
                m.push(d(h, Sex::Male, family));
                let w = h.saturating_sub(rng.random_range(0..=5)).max(55);
                m.push(d(w, Sex::Female, names::surname(rng)));
            }
            Shape::SingleAdult => {
                let sex = if rng.random_bool(0.72) {
                    Sex::Male
                } else {
                    Sex::Female
                };
                m.push(d(rng.random_range(20..=59), sex, family));
            }
            Shape::Couple => {
                let h: u32 = if rng.random_bool(0.2) {
                    rng.random_range(22..=35)
                } else {
                    rng.random_range(40..=64)
                };
                m.push(d(h, Sex::Male, family));
                let w = h.saturating_sub(rng.random_range(0..=4)).max(20);
                m.push(d(w, Sex::Female, names::surname(rng)));
            }
            Shape::Nuclear => {
                let f: u32 = rng.random_range(25..=50);
                let mother = f.saturating_sub(rng.random_range(0..=4)).max(21);
                let n = pick(rng, &[(1, 52), (2, 41), (3, 7)]);
                if rng.random_bool(0.92) {
                    m.push(d(f, Sex::Male, family));
                }
                m.push(d(mother, Sex::Female, names::surname(rng)));
                for age in children_ages(rng, mother, n, 30) {
                    m.push(d(age, child_sex(rng), family));
                }
            }
            Shape::ThreeGenerations => {
                let g: u32 = rng.random_range(55..=85);
                let gm = g.saturating_sub(rng.random_range(0..=5)).max(50);
                let r: f64 = rng.random();
                if r < 0.91 {
                    if r < 0.70 {
                        m.push(d(g, Sex::Male, family));
                    }
                    m.push(d(gm, Sex::Female, names::surname(rng)));
                } else {
                    m.push(d(g, Sex::Male, family));
                }
                let son = g.saturating_sub(rng.random_range(24..=32)).max(20);
                let dil = son.saturating_sub(rng.random_range(0..=4)).max(20);
                m.push(d(son, Sex::Male, family));
                m.push(d(dil, Sex::Female, names::surname(rng)));
                let n = pick(rng, &[(1, 55), (2, 45)]);
                for age in children_ages(rng, dil, n, 25) {
                    m.push(d(age, child_sex(rng), family));
                }
            }
            Shape::SkippedGeneration => {
                let g: u32 = rng.random_range(52..=80);
                let gm = g.saturating_sub(rng.random_range(0..=5)).max(50);
                if rng.random_bool(0.8) {
                    m.push(d(g, Sex::Male, family));
                }
                m.push(d(gm, Sex::Female, names::surname(rng)));
                for _ in 0..pick(rng, &[(1, 55), (2, 45)]) {
                    m.push(d(rng.random_range(0..=15), child_sex(rng), family));
                }
            }
        }
        // Some children are twins (the head is never a child; households stay at
        // six members at most).
        let mut i = 1;
        while i < m.len() {
            if m[i].age < 18 && m.len() < 6 && rng.random_bool(TWIN_BIRTHS) {
                let sex = if rng.random_bool(TWINS_SAME_SEX) {
                    m[i].sex
                } else {
                    opposite(m[i].sex)
                };
                let mut twin = d(m[i].age, sex, m[i].surname);
                twin.twin = true;
                m.insert(i + 1, twin);
                i += 1;
            }
            i += 1;
        }
        // Siblings of the same sex sometimes share a generation character (字辈).
        if rng.random_bool(0.35) {
            for sex in [Sex::Male, Sex::Female] {
                let kids: Vec<usize> = (0..m.len())
                    .filter(|&i| m[i].sex == sex && m[i].age < 30 && m[i].surname == family)
                    .collect();
                if kids.len() >= 2 {
                    let year = self.as_of.year() - m[kids[0]].age as i32;
                    let g = names::generation_char(rng, sex, year);
                    for i in kids {
                        m[i].generation = Some(g);
                    }
                }
            }
        }
        m
    }

    /// Generates one household of at most `max` residents (at least one).
    pub fn household(&mut self, rng: &mut impl Rng, max: usize) -> Vec<Person> {
        let geo = self.geo;
        let as_of = self.as_of;
        let mut drafts = self.members(rng);
        drafts.truncate(max.max(1));

        let v = geo.village_table.pick(rng);
        let village = &geo.villages[v];
        let township = &geo.townships[village.township];
        self.per_village[v] += 1;
        let n = self.per_village[v] - 1;
        let address = if village.urban {
            let (building, room) = (n / 32 + 1, n % 32);
            format!(
                "四川省泸州市泸县{}{}{}栋{}{:02}号",
                township.name,
                village.name,
                building,
                room / 4 + 1,
                room % 4 + 1
            )
        } else {
            // Households fill the villager groups in turn; house numbers within a
            // group rise with gaps (each household gets one of three numbers of its
            // own block, so numbers stay unique).
            let offset = v as u32 * 5;
            format!(
                "四川省泸州市泸县{}{}{}组{}号",
                township.name,
                village.name,
                (n + offset) % village.groups + 1,
                n / village.groups * 3 + rng.random_range(1..=3)
            )
        };
        let household = format!("{}{:05}", village.code, n + 1);
        let managing = village.clinic.unwrap_or(township.centre);
        let managing = &geo.insts[managing].id;

        let mut out: Vec<Person> = Vec::with_capacity(drafts.len());
        // The first adult with a phone: the number clerks record for the children.
        let mut guardian_phone: Option<String> = None;
        for dr in drafts {
            let number = self.next_patient;
            self.next_patient += 1;
            // A twin shares the birth date and ID status of the sibling just before.
            let sibling = out.last().map(|p| &p.patient).filter(|_| dr.twin);
            let birth = match sibling {
                Some(s) => s.birth_date,
                None => birth_date(rng, dr.age, as_of),
            };
            let missing_id = match dr.age {
                0..=5 => 0.20,
                6..=17 => 0.05,
                18..=79 => 0.03,
                _ => 0.10,
            };
            let has_id = match sibling {
                Some(s) => s.resident_id.is_some(),
                None => !rng.random_bool(missing_id),
            };
            let resident_id = has_id.then(|| {
                let (division, code) = if dr.age >= 18 && rng.random_bool(0.04) {
                    let i = rng.random_range(0..OTHER_DIVISIONS.len());
                    (i, OTHER_DIVISIONS[i])
                } else {
                    (usize::MAX, COUNTY_CODE)
                };
                // Twins are registered together: the next free sequence numbers.
                let wanted = match sibling.and_then(|s| s.resident_id.as_ref()) {
                    Some(id) => (id.as_str()[14..17].parse::<u16>().unwrap_or(0) + 1) % 1000,
                    None => rng.random_range(0..1000u16),
                };
                let seq = self.ids.claim(division, birth, wanted, dr.sex);
                ResidentId::compose(code, birth, seq)
            });
            let phone_share = match dr.age {
                0..=17 => 0.0,
                18..=59 => 0.82,
                60..=79 => 0.62,
                _ => 0.35,
            };
            let phone = if dr.age < 18 {
                guardian_phone
                    .clone()
                    .filter(|_| rng.random_bool(CHILD_GUARDIAN_PHONE))
            } else {
                let own = rng.random_bool(phone_share).then(|| phone(rng));
                if guardian_phone.is_none() {
                    guardian_phone.clone_from(&own);
                }
                own
            };
            let scheme = if dr.age >= 18 {
                pick(
                    rng,
                    &[
                        (Some(InsuranceScheme::Resident), 915),
                        (Some(InsuranceScheme::Employee), 75),
                        (None, 10),
                    ],
                )
            } else {
                pick(rng, &[(Some(InsuranceScheme::Resident), 99), (None, 1)])
            };
            let insurance = scheme.map(|scheme| Insurance {
                scheme,
                number: format!("{COUNTY_CODE}{number:010}"),
                year: as_of.year(),
            });
            let mut given = names::given(rng, dr.sex, birth.year(), dr.generation);
            // Parents never give twins the same name.
            if let Some(s) = sibling {
                for _ in 0..20 {
                    if s.name != format!("{}{given}", dr.surname) {
                        break;
                    }
                    given = names::given(rng, dr.sex, birth.year(), dr.generation);
                }
            }
            out.push(Person {
                patient: Patient {
                    id: format!("pat-{number:07}"),
                    name: format!("{}{given}", dr.surname),
                    sex: dr.sex,
                    birth_date: birth,
                    resident_id,
                    phone,
                    village: Some(village.code.clone()),
                    household: Some(household.clone()),
                    address: Some(address.clone()),
                    insurance,
                    managing_institution: Some(managing.clone()),
                    unverified_id: None,
                },
                age: dr.age,
                village: v,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::substream;
    use crate::geography;
    use std::collections::BTreeSet;

    #[test]
    fn birth_dates_give_the_wanted_age() {
        let mut rng = substream(1, 0, 0);
        for as_of in [
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        ] {
            for age in 0..100 {
                for _ in 0..20 {
                    let b = birth_date(&mut rng, age, as_of);
                    assert_eq!(as_of.years_since(b), Some(age), "{as_of} {b}");
                }
            }
        }
    }

    #[test]
    fn households_are_realistic() {
        let geo = geography::build();
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let mut pop = Population::new(&geo, as_of);
        let mut people = vec![];
        let mut h = 0;
        while people.len() < 30_000 {
            let mut rng = substream(9, 2, h);
            h += 1;
            people.extend(pop.household(&mut rng, 6));
        }
        let n = people.len() as f64;
        let share = |f: &dyn Fn(&Person) -> bool| people.iter().filter(|p| f(p)).count() as f64 / n;
        let young = share(&|p| p.age < 15);
        let old = share(&|p| p.age >= 60);
        let males = share(&|p| p.patient.sex == Sex::Male);
        let ratio = males / (1.0 - males);
        assert!((0.14..0.19).contains(&young), "under 15: {young}");
        assert!((0.20..0.25).contains(&old), "60+: {old}");
        assert!((0.99..1.08).contains(&ratio), "sex ratio {ratio}");
        let adults_with_id = people
            .iter()
            .filter(|p| p.age >= 18)
            .map(|p| p.patient.resident_id.is_some() as u32 as f64)
            .sum::<f64>()
            / people.iter().filter(|p| p.age >= 18).count() as f64;
        assert!((0.95..0.985).contains(&adults_with_id), "{adults_with_id}");
        let adults: Vec<&Person> = people.iter().filter(|p| p.age >= 18).collect();
        let phones = adults.iter().filter(|p| p.patient.phone.is_some()).count() as f64
            / adults.len() as f64;
        assert!(
            (0.70..0.80).contains(&phones),
            "adults with a phone: {phones}"
        );
        let scheme = |s: Option<InsuranceScheme>| {
            share(&|p| p.patient.insurance.as_ref().map(|i| i.scheme) == s)
        };
        let resident = scheme(Some(InsuranceScheme::Resident));
        let employee = scheme(Some(InsuranceScheme::Employee));
        assert!(
            (0.91..0.95).contains(&resident),
            "resident scheme {resident}"
        );
        assert!(
            (0.045..0.075).contains(&employee),
            "employee scheme {employee}"
        );
        let mut ids = BTreeSet::new();
        for p in &people {
            p.patient.validate(as_of).unwrap();
            if let Some(id) = &p.patient.resident_id {
                assert!(ids.insert(id.clone()), "duplicate resident ID {id}");
            }
        }
        // Household members share village, household number and address.
        for w in people.windows(2) {
            let (a, b) = (&w[0].patient, &w[1].patient);
            if a.household == b.household {
                assert_eq!(a.address, b.address);
                assert_eq!(a.village, b.village);
            }
        }
    }
}
