//! Encounters (就诊): outpatient, emergency and inpatient, with their charges.

use crate::{DomainError, Fen, Icd10};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncounterClass {
    Outpatient,
    Emergency,
    Inpatient,
}

impl EncounterClass {
    /// HL7 v3 ActCode used by FHIR Encounter.class.
    pub fn act_code(self) -> &'static str {
        match self {
            EncounterClass::Outpatient => "AMB",
            EncounterClass::Emergency => "EMER",
            EncounterClass::Inpatient => "IMP",
        }
    }
    pub fn from_act_code(s: &str) -> Option<Self> {
        match s {
            "AMB" => Some(EncounterClass::Outpatient),
            "EMER" => Some(EncounterClass::Emergency),
            "IMP" | "ACUTE" | "NONAC" => Some(EncounterClass::Inpatient),
            _ => None,
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            EncounterClass::Outpatient => "门诊",
            EncounterClass::Emergency => "急诊",
            EncounterClass::Inpatient => "住院",
        }
    }
}

/// Charges split the way insurance and the indicators need them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charges {
    pub drugs: Fen,
    pub consumables: Fen,
    pub exams: Fen,
    pub services: Fen,
    /// The part paid by basic medical insurance.
    pub insurance_paid: Fen,
}

impl Charges {
    pub fn total(&self) -> Fen {
        self.drugs + self.consumables + self.exams + self.services
    }
    pub fn self_paid(&self) -> Fen {
        self.total() - self.insurance_paid
    }
    pub fn validate(&self) -> Result<(), DomainError> {
        let parts = [
            self.drugs,
            self.consumables,
            self.exams,
            self.services,
            self.insurance_paid,
        ];
        if parts.iter().any(|f| f.0 < 0) {
            return Err(DomainError::invalid("charge-negative", "费用不能为负数"));
        }
        // ¥1,000,000,000 per line item is beyond any real charge.
        if parts.iter().any(|f| f.0 > 100_000_000_000) {
            return Err(DomainError::invalid("charge-range", "单项费用超出合理范围"));
        }
        if self.insurance_paid > self.total() {
            return Err(DomainError::invalid(
                "charge-insurance-exceeds-total",
                format!(
                    "医保支付({})超过总费用({})",
                    self.insurance_paid,
                    self.total()
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encounter {
    pub id: String,
    pub patient: String,
    pub class: EncounterClass,
    pub institution: String,
    pub department: Option<String>,
    pub practitioner: Option<String>,
    /// Visit time, or admission time for inpatients.
    pub start: DateTime<Utc>,
    /// Discharge time for inpatients (None while still admitted).
    pub end: Option<DateTime<Utc>>,
    /// False when care was given outside the county (县外就医).
    pub in_county: bool,
    pub diagnoses: Vec<Icd10>,
    pub charges: Charges,
}

impl Encounter {
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        if self.start > now + chrono::Duration::minutes(5) {
            return Err(DomainError::invalid(
                "encounter-future",
                "就诊时间晚于当前时间",
            ));
        }
        if let Some(end) = self.end
            && end < self.start
        {
            return Err(DomainError::invalid(
                "encounter-period",
                "出院(结束)时间早于入院(开始)时间",
            ));
        }
        if self.diagnoses.len() > 30 {
            return Err(DomainError::invalid("too-long", "诊断数量过多(最多30个)"));
        }
        self.charges.validate()
    }
    /// Length of stay in days (discharge date minus admission date, min 1) for inpatients.
    pub fn length_of_stay_days(&self) -> Option<i64> {
        match (self.class, self.end) {
            (EncounterClass::Inpatient, Some(end)) => Some(
                (end.date_naive() - self.start.date_naive())
                    .num_days()
                    .max(1),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn enc() -> Encounter {
        Encounter {
            id: "e1".into(),
            patient: "p1".into(),
            class: EncounterClass::Inpatient,
            institution: "h1".into(),
            department: None,
            practitioner: None,
            start: Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap(),
            end: Some(Utc.with_ymd_and_hms(2026, 3, 8, 2, 0, 0).unwrap()),
            in_county: true,
            diagnoses: vec![Icd10::parse("J18.9").unwrap()],
            charges: Charges {
                drugs: Fen(150_000),
                consumables: Fen(20_000),
                exams: Fen(50_000),
                services: Fen(80_000),
                insurance_paid: Fen(200_000),
            },
        }
    }

    #[test]
    fn charges_add_up() {
        let e = enc();
        assert_eq!(e.charges.total(), Fen(300_000));
        assert_eq!(e.charges.self_paid(), Fen(100_000));
        assert_eq!(e.length_of_stay_days(), Some(7));
        assert!(e.validate(Utc::now()).is_ok());
    }

    #[test]
    fn broken_encounters_are_rejected() {
        let mut e = enc();
        e.end = Some(e.start - chrono::Duration::days(1));
        assert_eq!(
            e.validate(Utc::now()).unwrap_err().code(),
            "encounter-period"
        );
        let mut e = enc();
        e.charges.insurance_paid = Fen(999_999);
        assert_eq!(
            e.validate(Utc::now()).unwrap_err().code(),
            "charge-insurance-exceeds-total"
        );
        let mut e = enc();
        e.charges.drugs = Fen(-1);
        assert_eq!(
            e.validate(Utc::now()).unwrap_err().code(),
            "charge-negative"
        );
    }

    #[test]
    fn act_codes_round_trip() {
        for c in [
            EncounterClass::Outpatient,
            EncounterClass::Emergency,
            EncounterClass::Inpatient,
        ] {
            assert_eq!(EncounterClass::from_act_code(c.act_code()), Some(c));
        }
    }
}
