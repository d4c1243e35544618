//! Diagnoses recorded on the problem list (Condition), e.g. managed chronic diseases.

use crate::{DomainError, Icd10};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub id: String,
    pub patient: String,
    pub code: Icd10,
    /// Display name in Chinese, e.g. 原发性高血压.
    pub display: String,
    pub onset: NaiveDate,
    /// Institution that recorded it.
    pub institution: String,
    /// The encounter where it was diagnosed, if known.
    pub encounter: Option<String>,
    /// Under chronic-disease management (慢病管理).
    pub chronic: bool,
}

impl Condition {
    pub fn validate(&self, today: NaiveDate) -> Result<(), DomainError> {
        if self.onset > today {
            return Err(DomainError::invalid("onset-future", "发病日期晚于今天"));
        }
        if self.display.chars().count() > 200 {
            return Err(DomainError::invalid("too-long", "诊断名称过长(最多200字)"));
        }
        Ok(())
    }
}
