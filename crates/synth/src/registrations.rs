//! Duplicate registrations with ground truth, for measuring a master patient
//! index (identity resolution).
//!
//! In a county the same resident is registered at the village clinic, again at
//! the township health centre, again at the county hospital, each time typed anew
//! by a clerk. [`registrations`] streams such registrations for the residents of
//! the synthetic county — the very people [`crate::generate`] makes with the same
//! [`Params`] (person `i` is patient `pat-{i+1:07}` there, with the same name,
//! birth date, ID, phone, village and address) — each labelled with the person it
//! belongs to.
//!
//! # Multiplicity
//!
//! Every person has a first, clean registration at their managing institution
//! (the village clinic, or the township or community centre where there is no
//! clinic). About 35% are registered a second time at another institution of the
//! county (their township centre, their community's lead hospital, another county
//! hospital, or the maternal and child health hospital for children and women of
//! child-bearing age), and about 12% a third time; older people and infants more
//! often, school children and young adults less.
//!
//! # Order
//!
//! A person's first registration comes with their household, in household order.
//! Each later registration is held back and emitted after between 1 and 10,000
//! further residents have been registered (deterministically), so registrations
//! of one person are generally **not** adjacent; a person's first registration
//! always precedes their later ones. Registration ids (`reg-0000001`, …) number
//! the stream in emission order. Only the held-back registrations are in memory
//! (a few thousand at most).
//!
//! # Errors in later registrations
//!
//! First registrations are exact copies of the person. Each later one is typed
//! again, with each of these errors drawn independently (so a registration may
//! carry several); about 40% of later registrations come out identical to the
//! first one.
//!
//! | field | error | probability |
//! |---|---|---|
//! | name | nickname-like variant: last given character doubled (王明明) or after 小 (王小明); an old woman as surname + 氏 (李氏) | 1.2% |
//! | name | one character of a two-character given name dropped (李秀英 → 李英) | 1.5% |
//! | name | a character of the person's era added to a one-character given name (王芳 → 王秀芳) | 1.2% |
//! | name | homophone for one given-name character (王晓明 → 王小明, 李娟 → 李鹃; 116 pronunciation groups) | 5% |
//! | name | similar-shaped character anywhere in the name (王/玉, 侯/候, 未/末; 26 pairs) | 2% (of names that have one) |
//! | name | traditional characters (陳 for 陈, 張 for 张, 劉 for 刘; 42 characters) | 2% (of names that have one) |
//! | sex | the other sex | 0.4% |
//! | sex | missing | 1% |
//! | birth date | day and month swapped (when the day is 12 or less and differs from the month) | 4% |
//! | birth date | the day before or after | 2% |
//! | birth date | missing | 1.5% |
//! | ID | a 15-digit first-generation number (people born before 1985) | 5% |
//! | ID | otherwise one character wrong (the check character fails) | 3% |
//! | ID | otherwise two adjacent digits transposed (the check character fails) | 2% |
//! | ID | lower-case x (numbers ending in X) | 50% |
//! | ID | full-width digits (input method in full-width mode) | 2% |
//! | ID | spaces between division, birth date and sequence | 2% |
//! | ID | not recorded this time | 7% |
//! | phone | a new number | 12% |
//! | phone | missing | 8% |
//! | village | missing | 10% |
//! | address | without province and city, or without the county too | 18% |
//! | address | missing | 6% |
//!
//! Besides, some people have no ID in any registration: the population lacks one
//! for about 20% of children under 6, 5% of other minors, 3% of adults and 10%
//! of people aged 80 and over. Errors never produce a birth date after
//! `params.as_of`.
//!
//! # Hard negatives
//!
//! Different people who look alike keep distinct `person` values: twins (same
//! household, address, village, birth date and guardian's phone, adjacent ID
//! sequence numbers, different given names), household members sharing a phone
//! and address, and namesakes (重名), which the surname and given-name
//! frequencies of the population make common.

use crate::dist::{self, pick};
use crate::geography::Geography;
use crate::people::{self, Person, Population, opposite};
use crate::{Params, STREAM_HOUSEHOLD, STREAM_REGISTRATIONS, geography, typos};
use chrono::{Datelike, NaiveDate};
use rand::Rng;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use yigong_core::{Patient, Sex};

/// One registration of a resident at one institution, as a clerk typed it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registration {
    /// Unique, in stream order: `reg-0000001`.
    pub id: String,
    /// Ground truth: index of the real resident (0-based; patient `pat-{person+1:07}`
    /// of the county with the same parameters).
    pub person: u32,
    /// Organisation id of the institution where the person was registered.
    pub institution: String,
    /// What the clerk typed.
    #[serde(flatten)]
    pub typed: Identity,
}

/// What [`registrations`] emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrationSummary {
    /// Real residents.
    pub persons: usize,
    pub registrations: usize,
    /// Pairs of registrations of the same person (a person registered k times
    /// contributes k(k-1)/2).
    pub true_pairs: u64,
}

/// Share of residents registered a second time (before the age factor).
const SECOND_REGISTRATION: f64 = 0.36;
/// Share of those registered twice who are registered a third time.
const THIRD_GIVEN_SECOND: f64 = 0.34;
/// A later registration appears after at most this many further residents.
const MAX_DELAY: u64 = 10_000;

/// How much more often than average a resident of `age` is registered at a
/// further institution (infants at the MCH hospital, the elderly everywhere).
/// Averages about 1 over the population.
pub(crate) fn revisit_factor(age: u32) -> f64 {
    match age {
        0..=5 => 1.1,
        6..=17 => 0.6,
        18..=44 => 0.75,
        45..=59 => 1.05,
        60..=74 => 1.4,
        _ => 1.55,
    }
}

/// How often each error appears in a later registration, each drawn on its own
/// (the table in the module documentation lists the same numbers).
struct ErrorRates {
    nickname: f64,
    given_dropped: f64,
    given_added: f64,
    name_homophone: f64,
    name_shape: f64,
    name_traditional: f64,
    sex_wrong: f64,
    sex_missing: f64,
    birth_day_month: f64,
    birth_next_day: f64,
    birth_missing: f64,
    id_old_fifteen: f64,
    id_typo: f64,
    id_transposed: f64,
    id_lower_x: f64,
    id_full_width: f64,
    id_spaces: f64,
    id_missing: f64,
    phone_changed: f64,
    phone_missing: f64,
    village_missing: f64,
    address_abbreviated: f64,
    address_missing: f64,
}

const RATES: ErrorRates = ErrorRates {
    nickname: 0.012,
    given_dropped: 0.015,
    given_added: 0.012,
    name_homophone: 0.05,
    name_shape: 0.02,
    name_traditional: 0.02,
    sex_wrong: 0.004,
    sex_missing: 0.01,
    birth_day_month: 0.04,
    birth_next_day: 0.02,
    birth_missing: 0.015,
    id_old_fifteen: 0.05,
    id_typo: 0.03,
    id_transposed: 0.02,
    id_lower_x: 0.5,
    id_full_width: 0.02,
    id_spaces: 0.02,
    id_missing: 0.07,
    phone_changed: 0.12,
    phone_missing: 0.08,
    village_missing: 0.10,
    address_abbreviated: 0.18,
    address_missing: 0.06,
};

/// The identity fields of one registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub name: String,
    pub sex: Option<Sex>,
    pub birth_date: Option<NaiveDate>,
    /// Raw text as typed: may be 15 digits, have a lower-case x, full-width digits,
    /// spaces, one wrong digit or two transposed.
    pub resident_id: Option<String>,
    pub phone: Option<String>,
    /// 12-digit village division code.
    pub village: Option<String>,
    pub address: Option<String>,
}

impl Identity {
    /// The person's identity exactly as on record.
    pub fn of(p: &Patient) -> Self {
        Identity {
            name: p.name.clone(),
            sex: Some(p.sex),
            birth_date: Some(p.birth_date),
            resident_id: p.resident_id.as_ref().map(|id| id.as_str().to_string()),
            phone: p.phone.clone(),
            village: p.village.clone(),
            address: p.address.clone(),
        }
    }
}

/// With probability `p`, replaces `value` by what `error` makes of it, when the
/// error applies to it.
fn maybe<R: Rng, T>(
    rng: &mut R,
    p: f64,
    value: &mut T,
    error: impl FnOnce(&mut R, &T) -> Option<T>,
) {
    if rng.random_bool(p)
        && let Some(v) = error(rng, value)
    {
        *value = v;
    }
}

/// `clean` typed again by another clerk, with the errors of [`RATES`].
pub(crate) fn retype(rng: &mut impl Rng, clean: &Identity, as_of: NaiveDate) -> Identity {
    let r = &RATES;
    let mut t = clean.clone();
    let sex = clean.sex.unwrap_or(Sex::Female);
    let year = clean.birth_date.map_or(1970, |d| d.year());

    maybe(rng, r.nickname, &mut t.name, |rng, n| {
        typos::nickname(rng, n, sex, year)
    });
    maybe(rng, r.given_dropped, &mut t.name, |rng, n| {
        typos::drop_given_char(rng, n)
    });
    maybe(rng, r.given_added, &mut t.name, |rng, n| {
        typos::add_given_char(rng, n, sex, year)
    });
    maybe(rng, r.name_homophone, &mut t.name, |rng, n| {
        typos::homophone(rng, n)
    });
    maybe(rng, r.name_shape, &mut t.name, |rng, n| {
        typos::similar_shape(rng, n)
    });
    maybe(rng, r.name_traditional, &mut t.name, |_, n| {
        typos::traditional(n)
    });

    maybe(rng, r.sex_wrong, &mut t.sex, |_, s| {
        s.map(|s| Some(opposite(s)))
    });
    maybe(rng, r.sex_missing, &mut t.sex, |_, _| Some(None));

    let past = |d: NaiveDate| (d <= as_of).then_some(Some(d));
    maybe(rng, r.birth_day_month, &mut t.birth_date, |_, d| {
        d.and_then(typos::swap_day_month).and_then(past)
    });
    maybe(rng, r.birth_next_day, &mut t.birth_date, |rng, d| {
        d.map(|d| typos::next_to(rng, d)).and_then(past)
    });
    maybe(rng, r.birth_missing, &mut t.birth_date, |_, _| Some(None));

    if let Some(id) = &clean.resident_id {
        let mut raw = id.clone();
        // At most one error in the digits themselves.
        let old_card = clean.birth_date.is_some_and(|d| d.year() < 1985);
        let wrong = if old_card && rng.random_bool(r.id_old_fifteen) {
            typos::old_fifteen(id)
        } else if rng.random_bool(r.id_typo) {
            typos::digit_typo(rng, id)
        } else if rng.random_bool(r.id_transposed) {
            typos::transpose(rng, id)
        } else {
            None
        };
        if let Some(w) = wrong {
            raw = w;
        }
        maybe(rng, r.id_lower_x, &mut raw, |_, s| typos::lower_x(s));
        maybe(rng, r.id_full_width, &mut raw, |_, s| {
            Some(typos::full_width(s))
        });
        maybe(rng, r.id_spaces, &mut raw, |_, s| typos::spaced(s));
        t.resident_id = (!rng.random_bool(r.id_missing)).then_some(raw);
    }

    maybe(rng, r.phone_changed, &mut t.phone, |rng, p| {
        p.as_ref().map(|_| Some(people::phone(rng)))
    });
    maybe(rng, r.phone_missing, &mut t.phone, |_, _| Some(None));
    maybe(rng, r.village_missing, &mut t.village, |_, _| Some(None));
    maybe(rng, r.address_abbreviated, &mut t.address, |rng, a| {
        a.as_deref()
            .and_then(|a| typos::abbreviate_address(rng, a))
            .map(Some)
    });
    maybe(rng, r.address_missing, &mut t.address, |_, _| Some(None));
    t
}

/// Institutions (indices into `geo.insts`) other than the managing one where
/// `person` is registered later, `n` of them, all different.
pub(crate) fn later_institutions(
    rng: &mut impl Rng,
    geo: &Geography,
    person: &Person,
    n: usize,
) -> Vec<usize> {
    let village = &geo.villages[person.village];
    let township = &geo.townships[village.township];
    let managing = village.clinic.unwrap_or(township.centre);
    let lead = geo.lead_of(township.community);
    let county = geo.county;
    let mother_or_child =
        person.age < 14 || (person.patient.sex == Sex::Female && (18..=45).contains(&person.age));
    let mut candidates = vec![
        (township.centre, 45),
        (lead, 30),
        (county.mch, if mother_or_child { 15 } else { 2 }),
    ];
    for h in county.hospitals.into_iter().filter(|&h| h != lead) {
        candidates.push((h, 8));
    }
    candidates.retain(|&(i, _)| i != managing);
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !candidates.is_empty() {
        let i = pick(rng, &candidates);
        out.push(i);
        candidates.retain(|&(c, _)| c != i);
    }
    out
}

/// How many times `person` is registered after the first.
fn later_registrations(rng: &mut impl Rng, age: u32) -> usize {
    let f = revisit_factor(age);
    if !rng.random_bool((SECOND_REGISTRATION * f).min(1.0)) {
        return 0;
    }
    1 + usize::from(rng.random_bool((THIRD_GIVEN_SECOND * f.sqrt()).min(1.0)))
}

/// A later registration waiting for its turn, ordered by (due, order).
struct Pending {
    due: u64,
    order: u64,
    registration: Registration,
}

impl Pending {
    fn key(&self) -> (u64, u64) {
        (self.due, self.order)
    }
}
impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Numbers the registrations and hands them to the sink.
struct Out<'a> {
    sink: &'a mut dyn FnMut(Registration),
    emitted: usize,
    held: BinaryHeap<Reverse<Pending>>,
    held_so_far: u64,
}

impl Out<'_> {
    fn emit(&mut self, mut r: Registration) {
        self.emitted += 1;
        r.id = format!("reg-{:07}", self.emitted);
        (self.sink)(r);
    }

    fn hold(&mut self, due: u64, registration: Registration) {
        self.held_so_far += 1;
        self.held.push(Reverse(Pending {
            due,
            order: self.held_so_far,
            registration,
        }));
    }

    /// Emits the held registrations due at or before `now`.
    fn release(&mut self, now: u64) {
        while self.held.peek().is_some_and(|p| p.0.due <= now) {
            let Some(Reverse(p)) = self.held.pop() else {
                break;
            };
            self.emit(p.registration);
        }
    }
}

fn registration(person: u32, institution: &str, t: Identity) -> Registration {
    Registration {
        id: String::new(),
        person,
        institution: institution.to_string(),
        typed: t,
    }
}

/// Streams registrations for `params.residents` real residents (see the module
/// documentation for multiplicity, order and errors); deterministic per
/// [`Params`]. Registrations of one person are generally not adjacent.
pub fn registrations(params: &Params, sink: &mut dyn FnMut(Registration)) -> RegistrationSummary {
    let geo = geography::build();
    let mut population = Population::new(&geo, params.as_of);
    let mut out = Out {
        sink,
        emitted: 0,
        held: BinaryHeap::new(),
        held_so_far: 0,
    };
    let mut summary = RegistrationSummary::default();
    let mut left = params.residents as usize;
    let mut household: u64 = 0;
    while left > 0 {
        // The household stream makes the same people as the county; the errors
        // draw from a stream of their own.
        let mut rng = dist::substream(params.seed, STREAM_HOUSEHOLD, household);
        let mut typing = dist::substream(params.seed, STREAM_REGISTRATIONS, household);
        household += 1;
        for person in population.household(&mut rng, left) {
            left -= 1;
            let index = summary.persons as u64;
            summary.persons += 1;
            out.release(index);

            let clean = Identity::of(&person.patient);
            let managing = person
                .patient
                .managing_institution
                .as_deref()
                .unwrap_or_default();
            out.emit(registration(index as u32, managing, clean.clone()));

            let later = later_registrations(&mut typing, person.age);
            let places = later_institutions(&mut typing, &geo, &person, later);
            let k = 1 + places.len() as u64;
            summary.true_pairs += k * (k - 1) / 2;
            for inst in places {
                let typed = retype(&mut typing, &clean, params.as_of);
                let due = index + typing.random_range(1..=MAX_DELAY);
                out.hold(due, registration(index as u32, &geo.insts[inst].id, typed));
            }
        }
    }
    out.release(u64::MAX);
    summary.registrations = out.emitted;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::substream;

    #[test]
    fn retyping_keeps_about_forty_percent_exact() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let clean = Identity {
            name: "王晓明".into(),
            sex: Some(Sex::Male),
            birth_date: NaiveDate::from_ymd_opt(1968, 3, 7),
            resident_id: Some("510521196803070379".into()),
            phone: Some("13812345678".into()),
            village: Some("510521100201".into()),
            address: Some("四川省泸州市泸县福集镇龙华村3组12号".into()),
        };
        let mut rng = substream(5, 0, 0);
        let n = 20_000;
        let exact = (0..n)
            .filter(|_| retype(&mut rng, &clean, as_of) == clean)
            .count();
        let share = exact as f64 / n as f64;
        // This identity is exposed to every error (it has an ID and a phone), so
        // it is typed exactly less often than the average resident.
        assert!((0.30..0.45).contains(&share), "{share}");
    }

    #[test]
    fn revisit_factor_stays_a_probability() {
        for age in 0..=120 {
            assert!(SECOND_REGISTRATION * revisit_factor(age) < 1.0);
            assert!(THIRD_GIVEN_SECOND * revisit_factor(age).sqrt() < 1.0);
        }
    }
}
