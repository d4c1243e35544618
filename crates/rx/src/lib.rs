//! Prescription review (issue 5): the unified formulary and drug knowledge base,
//! the review engine of the 2018 norm (医疗机构处方审核规范) with the 2021 long-
//! prescription norm, and the CDS Hooks `order-sign` service's request and card
//! shapes. Pure and deterministic: no IO, no clock — callers pass the date.

pub mod knowledge;

pub use knowledge::{Drug, Knowledge, KnowledgeError};
pub mod engine;
pub mod model;

pub use engine::{Verdict, review, verdict};
pub use model::{Category, Finding, Prescription, Severity};
pub mod cds;
