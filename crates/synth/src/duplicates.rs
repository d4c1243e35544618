//! Duplicate patient records in the demo county: a resident registered again at
//! an institution they visit, typed anew by its clerk, so that part of their
//! record lives under a second patient id.
//!
//! About 8% of residents (older people more often, as in [`crate::registrations`])
//! get a second Patient `<id>-d1` managed by another institution of the county:
//! one where they had a visit or an admission this year (drawn by number of
//! visits), else their township centre or a county hospital. Its identity carries
//! the errors of [`crate::registrations`], limited to what a valid [`Patient`]
//! holds: a missing sex or birth date falls back to the true one; a wrong sex is
//! not kept when an ID is recorded (the system reads the sex from the ID); an ID
//! whose check character fails goes, normalised (half-width, no spaces, upper-case
//! X), into `unverified_id`; an ID that contradicts a mistyped birth date is left
//! out, as the clerk would have to. The duplicate has no household number and
//! keeps the insurance card in 70% of cases. About half of the person's
//! encounters at that institution (those on or after the duplicate's birth date)
//! are recorded under the duplicate; conditions stay with the original.

use crate::geography::Geography;
use crate::people::Person;
use crate::registrations::{Identity, later_institutions, retype, revisit_factor};
use crate::typos;
use chrono::{Duration, NaiveDate};
use rand::Rng;
use yigong_core::{Encounter, Patient, ResidentId};

/// Share of residents with a duplicate record (before the age factor).
const DUPLICATE_SHARE: f64 = 0.0825;
/// Share of the encounters at the duplicate's institution recorded under it.
const MOVED_ENCOUNTERS: f64 = 0.5;
/// Share of duplicates that carry the insurance card.
const KEEPS_INSURANCE: f64 = 0.7;

/// The duplicate record and its encounters.
pub struct Duplicate {
    pub patient: Patient,
    pub encounters: Vec<Encounter>,
}

/// Maybe makes a duplicate of `person`, moving some of `encounters` to it.
pub fn split(
    rng: &mut impl Rng,
    geo: &Geography,
    person: &Person,
    encounters: &mut Vec<Encounter>,
    as_of: NaiveDate,
) -> Option<Duplicate> {
    if !rng.random_bool((DUPLICATE_SHARE * revisit_factor(person.age)).min(1.0)) {
        return None;
    }
    let original = &person.patient;
    let managing = original.managing_institution.as_deref();
    let visited: Vec<&str> = encounters
        .iter()
        .filter(|e| e.in_county && Some(e.institution.as_str()) != managing)
        .map(|e| e.institution.as_str())
        .collect();
    let institution = if visited.is_empty() {
        let i = *later_institutions(rng, geo, person, 1).first()?;
        geo.insts[i].id.clone()
    } else {
        visited[rng.random_range(0..visited.len())].to_string()
    };

    let typed = retype(rng, &Identity::of(original), as_of);
    let mut patient = record(original, typed);
    patient.id = format!("{}-d1", original.id);
    patient.household = None;
    patient.managing_institution = Some(institution.clone());
    if !rng.random_bool(KEEPS_INSURANCE) {
        patient.insurance = None;
    }

    let (kept, moved): (Vec<Encounter>, Vec<Encounter>) =
        std::mem::take(encounters).into_iter().partition(|e| {
            let local_day = (e.start + Duration::hours(8)).date_naive();
            !(e.institution == institution
                && local_day >= patient.birth_date
                && rng.random_bool(MOVED_ENCOUNTERS))
        });
    *encounters = kept;
    let moved = moved
        .into_iter()
        .map(|e| Encounter {
            patient: patient.id.clone(),
            ..e
        })
        .collect();
    Some(Duplicate {
        patient,
        encounters: moved,
    })
}

/// What a valid Patient record keeps of a typed identity (see the module doc).
fn record(original: &Patient, typed: Identity) -> Patient {
    let birth_date = typed.birth_date.unwrap_or(original.birth_date);
    let mut sex = typed.sex.unwrap_or(original.sex);
    let (mut resident_id, mut unverified_id) = (None, None);
    if let Some(raw) = typed.resident_id {
        match ResidentId::parse(&raw) {
            Ok(id) if id.birth_date() == Some(birth_date) => {
                sex = id.sex();
                resident_id = Some(id);
            }
            Ok(_) => {}
            Err(_) => unverified_id = Some(typos::normalise_id(&raw)),
        }
    }
    Patient {
        id: original.id.clone(),
        name: typed.name,
        sex,
        birth_date,
        resident_id,
        unverified_id,
        phone: typed.phone,
        village: typed.village,
        household: original.household.clone(),
        address: typed.address,
        insurance: original.insurance.clone(),
        managing_institution: original.managing_institution.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yigong_core::Sex;

    fn original() -> Patient {
        let birth = NaiveDate::from_ymd_opt(1968, 3, 7).unwrap();
        Patient {
            id: "pat-0000001".into(),
            name: "王晓明".into(),
            sex: Sex::Male,
            birth_date: birth,
            resident_id: Some(ResidentId::compose("510521", birth, 37)),
            unverified_id: None,
            phone: Some("13812345678".into()),
            village: Some("510521100201".into()),
            household: Some("51052110020100001".into()),
            address: Some("四川省泸州市泸县福集镇龙华村3组12号".into()),
            insurance: None,
            managing_institution: Some("org-x".into()),
        }
    }

    #[test]
    fn records_stay_valid() {
        let o = original();
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let typed = |f: &dyn Fn(&mut Identity)| {
            let mut t = Identity::of(&o);
            f(&mut t);
            record(&o, t)
        };
        // A broken check character: kept aside, normalised.
        let id = o.resident_id.as_ref().unwrap().as_str();
        let mut rng = crate::dist::substream(1, 0, 0);
        let broken = typos::digit_typo(&mut rng, id).unwrap();
        let p = typed(&|t| t.resident_id = typos::spaced(&typos::full_width(&broken)));
        assert_eq!(p.resident_id, None);
        assert_eq!(p.unverified_id.as_deref(), Some(broken.as_str()));
        p.validate(today).unwrap();
        // A mistyped birth date: the ID is left out.
        let p = typed(&|t| t.birth_date = NaiveDate::from_ymd_opt(1968, 7, 3));
        assert_eq!(p.resident_id, None);
        p.validate(today).unwrap();
        // A wrong sex yields to the ID; missing fields fall back.
        let p = typed(&|t| {
            t.sex = Some(Sex::Female);
            t.resident_id = Some(o.resident_id.as_ref().unwrap().as_str().to_lowercase());
        });
        assert_eq!(p.sex, Sex::Male);
        p.validate(today).unwrap();
        let p = typed(&|t| {
            t.sex = None;
            t.birth_date = None;
        });
        assert_eq!((p.sex, p.birth_date), (o.sex, o.birth_date));
        assert_eq!(p.resident_id, o.resident_id);
    }
}
