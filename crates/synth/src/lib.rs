//! A deterministic synthetic county: 泸县 (Luxian, Sichuan) with its real
//! townships and villages, three medical communities ("一主、两副、四次"),
//! practitioners, residents in households and a year of care.
//!
//! Same [`Params`], same county, byte for byte: one ChaCha8 stream per part,
//! no hash-map iteration, no clock.

mod care;
mod geography;
mod names;
mod people;
mod staff;

pub use geography::{COUNTY_CODE, COUNTY_ID, OUT_OF_COUNTY_ID};

use chrono::NaiveDate;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use yigong_core::{Condition, Encounter, Organization, Patient, Practitioner};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub residents: u32,
    pub seed: u64,
    /// Last day of the simulated year; encounters fall in the 365 days ending here.
    pub as_of: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Org(Organization),
    Practitioner(Practitioner),
    Patient(Patient),
    Encounter(Encounter),
    Condition(Condition),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub orgs: usize,
    pub practitioners: usize,
    pub patients: usize,
    pub encounters: usize,
    pub conditions: usize,
}

/// Streams the county in dependency order (every referenced item before the
/// items referring to it) without holding the residents in memory.
pub fn generate(params: &Params, sink: &mut dyn FnMut(Item)) {
    generate_counted(params, sink);
}

pub fn generate_counted(params: &Params, sink: &mut dyn FnMut(Item)) -> Summary {
    let mut summary = Summary::default();
    let geo = geography::build();
    for o in &geo.orgs {
        summary.orgs += 1;
        sink(Item::Org(o.clone()));
    }
    let mut staff_rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x5354_4146);
    let staff = staff::build(&geo, &mut staff_rng, params.as_of);
    for p in &staff.practitioners {
        summary.practitioners += 1;
        sink(Item::Practitioner(p.clone()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut counters = care::Counters {
        encounter: 0,
        condition: 0,
    };
    let mut next: u64 = 1;
    let mut household_no = 0;
    let total = params.residents as u64;
    while next <= total {
        household_no += 1;
        let left = (total - next + 1) as usize;
        let members = people::household(&geo, &mut rng, params.as_of, next, household_no, left);
        for m in members {
            next += 1;
            let care = care::year_of_care(&geo, &staff, &mut rng, &m, params.as_of, &mut counters);
            summary.patients += 1;
            sink(Item::Patient(m.patient));
            for c in care.conditions {
                summary.conditions += 1;
                sink(Item::Condition(c));
            }
            for e in care.encounters {
                summary.encounters += 1;
                sink(Item::Encounter(e));
            }
        }
    }
    summary
}
