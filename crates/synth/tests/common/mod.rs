//! The simulated year and parameters shared by the generator's integration tests.
#![allow(dead_code)]

use chrono::NaiveDate;
use yigong_synth::Params;

pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

pub fn params(residents: u32, seed: u64) -> Params {
    Params {
        residents,
        seed,
        as_of: as_of(),
    }
}
