//! FHIR R4 face of yigong: domain → JSON mapping, incoming-resource checks and
//! extraction, search parameters, bundles, OperationOutcome and the
//! CapabilityStatement. Pure: no IO.

pub mod bundle;
pub mod capability;
pub mod codes;
pub mod consent;
pub mod extract;
pub mod mapping;
pub mod outcome;
pub mod search;

pub use extract::{Extracted, OrgFacts, check_and_extract};
pub use outcome::Issue;
