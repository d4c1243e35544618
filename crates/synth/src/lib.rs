//! A deterministic synthetic county: 泸县 (Luxian, Luzhou, Sichuan) with its real
//! townships and villages, three medical communities ("一主、两副、四次"), their
//! institutions, departments and practitioners, residents living in households,
//! and one year of care — including care across the community (`flows.rs`):
//! two-way referrals, orders to the shared diagnostic centres with reports and
//! critical values, remote consultations, and appointments on the clinics'
//! slots, as raw FHIR resources built with the `yigong-care` builders
//! ([`Item::Resource`]), the insurance Claims of its enrollees' care outside the
//! county (`claims.rs`) — and the prescriptions of the last [`WINDOW_DAYS`]
//! days' visits, written against the shipped formulary, some with a problem
//! put in on purpose for the review engine to find (`rx.rs`,
//! [`Item::Prescription`]).
//!
//! Like a real county, the demo county has duplicate patient records (about 8% of
//! residents are registered a second time, with typing errors, at an institution
//! they visit; see `duplicates.rs`), and [`registrations`] streams registrations
//! with ground truth for measuring a master patient index.
//!
//! Same [`Params`], same county, byte for byte: every part draws from its own
//! ChaCha8 stream derived from the seed (the staff one stream, the clinic
//! schedules another, each household its own for people, duplicates and care
//! flows), nothing iterates a hash map and nothing reads the clock. Residents
//! are generated and handed to the sink one household at a time, so a county of a
//! million residents needs only a few megabytes.
//!
//! ```
//! use yigong_synth::{Item, Params, generate_counted};
//! let params = Params {
//!     residents: 100,
//!     seed: 1,
//!     as_of: chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap(),
//! };
//! let mut patients = 0;
//! let summary = generate_counted(&params, &mut |item| {
//!     if let Item::Patient(_) = item {
//!         patients += 1;
//!     }
//! });
//! assert_eq!(summary.patients, patients);
//! assert_eq!(summary.patients - summary.duplicate_patients, 100);
//! ```

mod care;
mod claims;
mod dist;
mod duplicates;
mod flows;
mod geography;
mod names;
mod people;
pub mod registrations;
mod rx;
mod staff;
mod typos;

pub use care::diagnosis_name;
pub use flows::RESOURCE_TYPES;
pub use geography::{COUNTY_CODE, COUNTY_ID, OUT_OF_COUNTY_ID, SUB_CENTRES};
pub use registrations::{Identity, Registration, RegistrationSummary, registrations};
pub use rx::{INJECTED, RxModel, SynthRx, WINDOW_DAYS, injected_category};

use chrono::NaiveDate;
use yigong_core::{Condition, Encounter, Organization, Patient, Practitioner};

/// Random sub-stream tags.
const STREAM_STAFF: u64 = 1;
const STREAM_HOUSEHOLD: u64 = 2;
/// Typing errors of later registrations (one stream per household).
const STREAM_REGISTRATIONS: u64 = 3;
/// Duplicate patient records of the demo county (one stream per household).
const STREAM_DUPLICATES: u64 = 4;
/// Care across the community: referrals, exams, consultations, appointments
/// (one stream per household).
const STREAM_FLOWS: u64 = 5;
/// Clinic schedules and their slots (one stream).
const STREAM_SCHEDULES: u64 = 6;
/// Prescriptions (one stream per household).
const STREAM_RX: u64 = 7;
/// Insurance claims of care outside the county (one stream per household).
const STREAM_CLAIMS: u64 = 8;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Number of residents (patients) in the county.
    pub residents: u32,
    pub seed: u64,
    /// Last day of the simulated year; encounters fall in the 365 days ending here.
    pub as_of: NaiveDate,
}

/// One generated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Org(Organization),
    Practitioner(Practitioner),
    Patient(Patient),
    Encounter(Encounter),
    Condition(Condition),
    /// A raw FHIR resource (with `resourceType` and `id`) of the care flows:
    /// one of [`RESOURCE_TYPES`], built with the `yigong-care` builders.
    Resource(serde_json::Value),
    /// A prescription of an outpatient or emergency visit of the last
    /// [`WINDOW_DAYS`] days, with who wrote it and the problem put in on purpose.
    Prescription(Box<SynthRx>),
}

/// The resource type of an [`Item::Resource`], as a static name.
pub fn resource_type(v: &serde_json::Value) -> Option<&'static str> {
    let t = v.get("resourceType")?.as_str()?;
    RESOURCE_TYPES.iter().copied().find(|r| *r == t)
}

/// Counts per item kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub orgs: usize,
    pub practitioners: usize,
    /// Patient records, duplicates included (residents = `patients -
    /// duplicate_patients`).
    pub patients: usize,
    /// Second records (`<id>-d1`) of residents registered again elsewhere.
    pub duplicate_patients: usize,
    pub encounters: usize,
    pub conditions: usize,
    /// Every [`Item::Resource`].
    pub resources: usize,
    /// Referral ServiceRequests (up, down and out of the county).
    pub referrals: usize,
    /// Exam ServiceRequests to the shared centres.
    pub exam_orders: usize,
    /// DiagnosticReports.
    pub reports: usize,
    /// Reports with at least one critical Observation.
    pub critical_values: usize,
    /// Consultation ServiceRequests.
    pub consultations: usize,
    pub schedules: usize,
    pub slots: usize,
    pub appointments: usize,
    /// [`Item::Prescription`]s.
    pub prescriptions: usize,
    /// Claims of care outside the county (no Encounter behind them).
    pub claims: usize,
}

/// Streams the county in dependency order: all organisations (county node first,
/// then communities, then institutions, then departments — every parent before
/// its children), then all practitioners, then the clinic Schedules, each
/// followed by its Slots, then patients, each patient immediately
/// followed by its Conditions and Encounters (Encounter.patient / Condition.patient
/// refer to that patient's id; encounter.institution / department / practitioner
/// refer to already-emitted ids). A resident's duplicate record, if any, comes
/// right after the resident's items, followed by the encounters recorded under it,
/// and then the resident's care flows ([`Item::Resource`]: referrals, exam orders
/// with their results, consultations, appointments), each resource after every
/// resource it refers to. A patient's prescriptions ([`Item::Prescription`])
/// come right after the encounters they were written at (the resident's after
/// the resident's encounters, the duplicate record's after its encounters).
/// Does not hold the residents in memory.
pub fn generate(params: &Params, sink: &mut dyn FnMut(Item)) {
    generate_counted(params, sink);
}

/// [`generate`], returning how many items of each kind were emitted.
pub fn generate_counted(params: &Params, sink: &mut dyn FnMut(Item)) -> Summary {
    let mut summary = Summary::default();
    let geo = geography::build();
    for o in &geo.orgs {
        summary.orgs += 1;
        sink(Item::Org(o.clone()));
    }

    let mut staff_rng = dist::substream(params.seed, STREAM_STAFF, 0);
    let staff = staff::build(&geo, &mut staff_rng, params.as_of);
    for p in &staff.practitioners {
        summary.practitioners += 1;
        sink(Item::Practitioner(p.clone()));
    }

    let mut schedule_rng = dist::substream(params.seed, STREAM_SCHEDULES, 0);
    let mut flow_model = flows::FlowModel::new(&geo, &staff, params.as_of, &mut schedule_rng);
    flow_model.emit_schedules(&mut summary, sink);

    let model = care::CareModel::new(&geo, &staff, params.as_of);
    let rx_model = RxModel::new(rx::shipped(), params.as_of);
    let rx_county = rx::County::new(&geo, &staff);
    let mut population = people::Population::new(&geo, params.as_of);
    let mut counters = care::Counters::default();
    let mut left = params.residents as usize;
    let mut household: u64 = 0;
    while left > 0 {
        let mut rng = dist::substream(params.seed, STREAM_HOUSEHOLD, household);
        let mut dup_rng = dist::substream(params.seed, STREAM_DUPLICATES, household);
        let mut flow_rng = dist::substream(params.seed, STREAM_FLOWS, household);
        let mut rx_rng = dist::substream(params.seed, STREAM_RX, household);
        let mut claim_rng = dist::substream(params.seed, STREAM_CLAIMS, household);
        household += 1;
        for person in population.household(&mut rng, left) {
            left -= 1;
            let (conditions, mut encounters) = model.year(&mut rng, &person, &mut counters);
            let duplicate =
                duplicates::split(&mut dup_rng, &geo, &person, &mut encounters, params.as_of);
            let care = flow_model.person(
                &mut flow_rng,
                &person,
                &conditions,
                &encounters,
                duplicate.as_ref().map_or(&[][..], |d| &d.encounters[..]),
                &mut summary,
            );
            let mut prescribe = |patient: &yigong_core::Patient, encounters: &[Encounter]| {
                encounters
                    .iter()
                    .filter_map(|e| rx_model.for_encounter(&mut rx_rng, patient, e, &rx_county))
                    .collect::<Vec<_>>()
            };
            let claims = claims::person(&mut claim_rng, &person, &conditions, params.as_of);
            let prescriptions = prescribe(&person.patient, &encounters);
            let duplicate_prescriptions = duplicate
                .as_ref()
                .map_or(vec![], |d| prescribe(&d.patient, &d.encounters));
            summary.patients += 1;
            summary.conditions += conditions.len();
            summary.encounters += encounters.len();
            sink(Item::Patient(person.patient));
            for c in conditions {
                sink(Item::Condition(c));
            }
            for e in encounters {
                sink(Item::Encounter(e));
            }
            for p in prescriptions {
                summary.prescriptions += 1;
                sink(Item::Prescription(Box::new(p)));
            }
            if let Some(d) = duplicate {
                summary.patients += 1;
                summary.duplicate_patients += 1;
                summary.encounters += d.encounters.len();
                sink(Item::Patient(d.patient));
                for e in d.encounters {
                    sink(Item::Encounter(e));
                }
                for p in duplicate_prescriptions {
                    summary.prescriptions += 1;
                    sink(Item::Prescription(Box::new(p)));
                }
            }
            for r in care {
                sink(Item::Resource(r));
            }
            summary.claims += claims.len();
            summary.resources += claims.len();
            for c in claims {
                sink(Item::Resource(c));
            }
        }
    }
    summary
}
