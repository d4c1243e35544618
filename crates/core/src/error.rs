use thiserror::Error;

/// A broken domain rule. Each variant carries a machine code (English) and a
/// message for people (Simplified Chinese), because both reach the API caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("{zh}")]
    Invalid { code: &'static str, zh: String },
}

impl DomainError {
    pub fn invalid(code: &'static str, zh: impl Into<String>) -> Self {
        DomainError::Invalid {
            code,
            zh: zh.into(),
        }
    }
    /// Stable machine-readable code, e.g. `resident-id-checksum`.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid { code, .. } => code,
        }
    }
    /// Human message in Simplified Chinese.
    pub fn message_zh(&self) -> &str {
        match self {
            DomainError::Invalid { zh, .. } => zh,
        }
    }
}
