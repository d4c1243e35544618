//! Care across the community (issue 4): two-way referral, orders to the shared
//! diagnostic centres with critical values, result mutual recognition, remote
//! consultation and appointments — as pure state machines and rules, and the
//! FHIR shapes they travel in (ServiceRequest + Task, DiagnosticReport +
//! Observation, Schedule + Slot + Appointment). No IO: the store calls these to
//! check every write, and pages, the generator and tests build resources with
//! the same functions.

pub mod exams;
mod flow;
pub mod requests;
pub mod rules;
pub mod slots;
pub mod task;

pub use flow::{Flow, Side, state_label};
pub use rules::Rules;
pub use task::TaskView;

/// Our code systems and extensions for the flows.
pub mod codes {
    /// Task.code: which flow a Task tracks.
    pub const CS_FLOW: &str = "https://yigong.org.cn/fhir/CodeSystem/care-flow";
    /// Task.businessStatus: the fine state of the flow.
    pub const CS_FLOW_STATE: &str = "https://yigong.org.cn/fhir/CodeSystem/care-flow-state";
    /// Task.output types.
    pub const CS_TASK_OUTPUT: &str = "https://yigong.org.cn/fhir/CodeSystem/care-task-output";
    /// ServiceRequest.code of exam items.
    pub const CS_EXAM_ITEM: &str = "https://yigong.org.cn/fhir/CodeSystem/exam-item";
    /// ServiceRequest.category: the shared centre kind.
    pub const CS_CENTRE_KIND: &str = "https://yigong.org.cn/fhir/CodeSystem/centre-kind";
    /// Referral direction (上转 / 下转).
    pub const CS_REFERRAL_DIRECTION: &str =
        "https://yigong.org.cn/fhir/CodeSystem/referral-direction";
    pub const CS_SNOMED: &str = "http://snomed.info/sct";
    pub const CS_LOINC: &str = "http://loinc.org";
    pub const CS_V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
    pub const CS_INTERPRETATION: &str =
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
    pub const CS_OBSERVATION_CATEGORY: &str =
        "http://terminology.hl7.org/CodeSystem/observation-category";
    pub const UCUM: &str = "http://unitsofmeasure.org";
    /// Specimen / exam barcode (条码号).
    pub const SID_BARCODE: &str = "https://yigong.org.cn/fhir/sid/specimen-barcode";

    /// Task: one entry per step (state, at, by).
    pub const EXT_STEP: &str = "https://yigong.org.cn/fhir/StructureDefinition/care-step";
    /// Task: when the response deadline passed unanswered and was escalated.
    pub const EXT_ESCALATED: &str = "https://yigong.org.cn/fhir/StructureDefinition/escalated";
    /// Task: the expert who took a consultation.
    pub const EXT_ASSIGNEE: &str = "https://yigong.org.cn/fhir/StructureDefinition/assignee";
    /// ServiceRequest: referral direction (valueCode up | down).
    pub const EXT_DIRECTION: &str =
        "https://yigong.org.cn/fhir/StructureDefinition/referral-direction";
    /// ServiceRequest: out-of-county referral filing (转外备案): approver, number, date.
    pub const EXT_OUT_OF_COUNTY: &str =
        "https://yigong.org.cn/fhir/StructureDefinition/out-of-county-filing";
    /// ServiceRequest: why an exam is ordered again although a recognised result is valid.
    pub const EXT_REPEAT_REASON: &str =
        "https://yigong.org.cn/fhir/StructureDefinition/repeat-reason";
    /// Slot: held for referrals from member units until a release time (号源下沉).
    pub const EXT_HELD_FOR_REFERRAL: &str =
        "https://yigong.org.cn/fhir/StructureDefinition/held-for-referral";
    /// The institution a record was made at (shared with the foundation).
    pub const EXT_RECORDED_AT: &str = "https://yigong.org.cn/fhir/StructureDefinition/recorded-at";
}

/// A refusal with an HTTP status and a Chinese message saying what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{zh}")]
pub struct CareError {
    /// 409 for an illegal step or a taken slot, 422 for malformed content, 403 for the wrong side.
    pub status: u16,
    pub code: &'static str,
    pub zh: String,
}

impl CareError {
    pub fn conflict(code: &'static str, zh: impl Into<String>) -> CareError {
        CareError {
            status: 409,
            code,
            zh: zh.into(),
        }
    }
    pub fn invalid(code: &'static str, zh: impl Into<String>) -> CareError {
        CareError {
            status: 422,
            code,
            zh: zh.into(),
        }
    }
    pub fn forbidden(code: &'static str, zh: impl Into<String>) -> CareError {
        CareError {
            status: 403,
            code,
            zh: zh.into(),
        }
    }
}

/// Adds minutes to an RFC 3339 instant (UTC out).
pub fn plus_minutes(at: &str, minutes: i64) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(at).ok()?;
    Some(
        (t.with_timezone(&chrono::Utc) + chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Seconds since the epoch of an RFC 3339 instant.
pub fn epoch(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp())
}
