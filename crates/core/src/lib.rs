//! Domain types and pure rules of a county medical community (紧密型县域医共体).
//!
//! No IO, no async, no SQL: everything here is a value or a pure function, so the
//! rules can be tested exhaustively and reused by every other crate.

pub mod condition;
pub mod division;
pub mod encounter;
pub mod error;
pub mod icd10;
pub mod money;
pub mod org;
pub mod patient;
pub mod practitioner;
pub mod resident_id;

pub use condition::Condition;
pub use division::DivisionCode;
pub use encounter::{Charges, Encounter, EncounterClass};
pub use error::DomainError;
pub use icd10::Icd10;
pub use money::Fen;
pub use org::{OrgKind, Organization, Tier};
pub use patient::{Insurance, InsuranceScheme, Patient, Sex};
pub use practitioner::{Practitioner, Role, Secondment, Title};
pub use resident_id::ResidentId;
