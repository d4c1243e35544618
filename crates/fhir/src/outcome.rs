//! Errors as FHIR OperationOutcome: an HTTP status, a FHIR issue type, our machine
//! code and a message in Simplified Chinese.

use serde_json::{Value, json};
use yigong_core::DomainError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{zh}")]
pub struct Issue {
    pub status: u16,
    /// FHIR IssueType: invalid, structure, required, value, too-long, not-found,
    /// conflict, forbidden, not-supported, processing, exception, security, login.
    pub issue_type: &'static str,
    /// Stable machine code, e.g. `resident-id-checksum`.
    pub code: String,
    pub zh: String,
    /// FHIRPath of the offending element, if known.
    pub expression: Option<String>,
}

impl Issue {
    pub fn new(
        status: u16,
        issue_type: &'static str,
        code: impl Into<String>,
        zh: impl Into<String>,
    ) -> Issue {
        Issue {
            status,
            issue_type,
            code: code.into(),
            zh: zh.into(),
            expression: None,
        }
    }
    pub fn invalid(code: impl Into<String>, zh: impl Into<String>) -> Issue {
        Issue::new(400, "invalid", code, zh)
    }
    pub fn unprocessable(code: impl Into<String>, zh: impl Into<String>) -> Issue {
        Issue::new(422, "processing", code, zh)
    }
    pub fn not_found(zh: impl Into<String>) -> Issue {
        Issue::new(404, "not-found", "not-found", zh)
    }
    pub fn at(mut self, expression: impl Into<String>) -> Issue {
        self.expression = Some(expression.into());
        self
    }
    pub fn from_domain(e: DomainError, expression: &str) -> Issue {
        let issue_type = if e.code() == "too-long" {
            "too-long"
        } else {
            "value"
        };
        Issue::new(422, issue_type, e.code(), e.message_zh()).at(expression)
    }

    pub fn to_outcome(&self) -> Value {
        let mut issue = json!({
            "severity": "error",
            "code": self.issue_type,
            "details": {
                "coding": [{ "system": "https://yigong.org.cn/fhir/CodeSystem/error", "code": self.code }],
                "text": self.zh
            },
            "diagnostics": self.zh
        });
        if let Some(e) = &self.expression {
            issue["expression"] = json!([e]);
        }
        json!({ "resourceType": "OperationOutcome", "issue": [issue] })
    }
}

/// An informational outcome (e.g. for a successful delete or a no-op).
pub fn information(zh: &str) -> Value {
    json!({ "resourceType": "OperationOutcome", "issue": [{ "severity": "information", "code": "informational", "diagnostics": zh }] })
}
