//! What a community configures: response deadlines per flow and priority, the
//! shared centres, and the mutual-recognition catalogue. Kept as JSON in the
//! store (`meta.care_rules`); the defaults follow common county practice.

use crate::exams::{self, CentreKind};
use crate::{CareError, Flow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Minutes allowed per FHIR request priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByPriority {
    pub routine: i64,
    pub urgent: i64,
    pub asap: i64,
    pub stat: i64,
}

impl ByPriority {
    pub fn get(&self, priority: &str) -> i64 {
        match priority {
            "stat" => self.stat,
            "asap" => self.asap,
            "urgent" => self.urgent,
            _ => self.routine,
        }
    }
}

/// Institutions whose results a recognised item accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "institutions")]
pub enum AcceptFrom {
    /// Any institution of the ordering institution's community.
    Community,
    /// Any institution of the county.
    County,
    /// Only these institutions (e.g. the centres that passed quality control).
    Listed(Vec<String>),
}

/// One item of the mutual-recognition catalogue (结果互认目录).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recognised {
    pub item: String,
    pub validity_days: i64,
    pub accept_from: AcceptFrom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// How long the receiving institution has to accept or reject a referral.
    pub referral_response: ByPriority,
    /// How long the expert pool has to accept a consultation.
    pub consult_response: ByPriority,
    /// How long a centre has to report once it has received a sample or exam.
    pub exam_report: ByPriority,
    /// How long the ordering institution has to acknowledge a critical value.
    pub critical_ack_minutes: i64,
    /// community id → centre kind code → performing institution. A community not
    /// listed uses its lead hospital for every kind.
    pub centres: BTreeMap<String, BTreeMap<String, String>>,
    pub recognition: Vec<Recognised>,
}

impl Default for Rules {
    fn default() -> Rules {
        let recognition = exams::CATALOGUE
            .iter()
            .filter_map(|i| {
                let days = match i.kind {
                    CentreKind::Lab if i.code == "HBA1C" => 30,
                    CentreKind::Lab => 7,
                    CentreKind::Ecg => 7,
                    CentreKind::Imaging => 30,
                    CentreKind::Pathology => return None,
                };
                Some(Recognised {
                    item: i.code.to_string(),
                    validity_days: days,
                    accept_from: AcceptFrom::County,
                })
            })
            .collect();
        Rules {
            referral_response: ByPriority {
                routine: 48 * 60,
                urgent: 120,
                asap: 60,
                stat: 30,
            },
            consult_response: ByPriority {
                routine: 24 * 60,
                urgent: 120,
                asap: 60,
                stat: 30,
            },
            exam_report: ByPriority {
                routine: 24 * 60,
                urgent: 120,
                asap: 60,
                stat: 30,
            },
            critical_ack_minutes: 30,
            centres: BTreeMap::new(),
            recognition,
        }
    }
}

impl Rules {
    /// Parses and checks a configuration; a bad one is refused whole.
    pub fn from_json(text: &str) -> Result<Rules, CareError> {
        let r: Rules = serde_json::from_str(text)
            .map_err(|e| CareError::invalid("bad-rules", format!("流程配置格式错误:{e}")))?;
        r.check()?;
        Ok(r)
    }

    pub fn check(&self) -> Result<(), CareError> {
        for (what, p) in [
            ("转诊响应时限", &self.referral_response),
            ("会诊响应时限", &self.consult_response),
            ("报告时限", &self.exam_report),
        ] {
            if [p.routine, p.urgent, p.asap, p.stat]
                .iter()
                .any(|m| *m <= 0)
            {
                return Err(CareError::invalid(
                    "bad-rules",
                    format!("{what}必须为正的分钟数"),
                ));
            }
        }
        if self.critical_ack_minutes <= 0 {
            return Err(CareError::invalid(
                "bad-rules",
                "危急值确认时限必须为正的分钟数",
            ));
        }
        for kinds in self.centres.values() {
            if let Some(k) = kinds.keys().find(|k| CentreKind::from_code(k).is_none()) {
                return Err(CareError::invalid(
                    "bad-rules",
                    format!("未知的中心类型“{k}”"),
                ));
            }
        }
        for r in &self.recognition {
            if exams::item(&r.item).is_none() {
                return Err(CareError::invalid(
                    "bad-rules",
                    format!("互认目录中的项目“{}”不在检查目录中", r.item),
                ));
            }
            if r.validity_days <= 0 {
                return Err(CareError::invalid(
                    "bad-rules",
                    format!("互认项目“{}”的有效期必须为正", r.item),
                ));
            }
        }
        Ok(())
    }

    /// Minutes the awaited side has, for a flow in a state awaiting it.
    pub fn response_minutes(&self, flow: Flow, priority: &str) -> i64 {
        match flow {
            Flow::Referral => self.referral_response.get(priority),
            Flow::Consult => self.consult_response.get(priority),
            Flow::Exam => self.exam_report.get(priority),
            Flow::CriticalAck => self.critical_ack_minutes,
        }
    }

    /// The institution configured as a community's centre of a kind, if any.
    pub fn centre(&self, community: &str, kind: CentreKind) -> Option<&str> {
        self.centres
            .get(community)?
            .get(kind.code())
            .map(String::as_str)
    }

    pub fn recognised(&self, item: &str) -> Option<&Recognised> {
        self.recognition.iter().find(|r| r.item == item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_check() {
        let r = Rules::default();
        r.check().unwrap();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(Rules::from_json(&text).unwrap(), r);
        assert_eq!(r.response_minutes(Flow::Referral, "stat"), 30);
        assert!(r.recognised("CBC").is_some());
        assert!(r.recognised("PATH-TISSUE").is_none());
    }

    #[test]
    fn bad_rules_are_refused_with_reasons() {
        let mut r = Rules::default();
        r.recognition[0].item = "NOPE".into();
        assert!(r.check().unwrap_err().zh.contains("NOPE"));
        let r = Rules {
            critical_ack_minutes: 0,
            ..Default::default()
        };
        assert!(r.check().is_err());
        assert!(Rules::from_json("{").unwrap_err().zh.contains("格式错误"));
    }
}
