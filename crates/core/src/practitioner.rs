//! Practitioners, their roles, titles and secondments (派驻).

use crate::{DomainError, patient::Sex};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Physician,
    Nurse,
    Pharmacist,
    VillageDoctor,
    Technician,
    PublicHealth,
    Manager,
}

pub const ALL_ROLES: [Role; 7] = [
    Role::Physician,
    Role::Nurse,
    Role::Pharmacist,
    Role::VillageDoctor,
    Role::Technician,
    Role::PublicHealth,
    Role::Manager,
];

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::Pharmacist => "pharmacist",
            Role::VillageDoctor => "village-doctor",
            Role::Technician => "technician",
            Role::PublicHealth => "public-health",
            Role::Manager => "manager",
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::Physician => "医师",
            Role::Nurse => "护士",
            Role::Pharmacist => "药师",
            Role::VillageDoctor => "乡村医生",
            Role::Technician => "医技人员",
            Role::PublicHealth => "公共卫生人员",
            Role::Manager => "管理人员",
        }
    }
    pub fn from_code(s: &str) -> Option<Role> {
        ALL_ROLES.into_iter().find(|r| r.code() == s)
    }
}

/// Professional title (职称).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Title {
    ChiefPhysician,
    AssociateChief,
    Attending,
    Resident,
    AssistantPhysician,
    VillageDoctor,
    Pharmacist,
    Nurse,
}

pub const ALL_TITLES: [Title; 8] = [
    Title::ChiefPhysician,
    Title::AssociateChief,
    Title::Attending,
    Title::Resident,
    Title::AssistantPhysician,
    Title::VillageDoctor,
    Title::Pharmacist,
    Title::Nurse,
];

impl Title {
    pub fn code(self) -> &'static str {
        match self {
            Title::ChiefPhysician => "chief",
            Title::AssociateChief => "associate-chief",
            Title::Attending => "attending",
            Title::Resident => "resident",
            Title::AssistantPhysician => "assistant",
            Title::VillageDoctor => "village-doctor",
            Title::Pharmacist => "pharmacist",
            Title::Nurse => "nurse",
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            Title::ChiefPhysician => "主任医师",
            Title::AssociateChief => "副主任医师",
            Title::Attending => "主治医师",
            Title::Resident => "住院医师",
            Title::AssistantPhysician => "执业助理医师",
            Title::VillageDoctor => "乡村医生",
            Title::Pharmacist => "主管药师",
            Title::Nurse => "护师",
        }
    }
    pub fn from_code(s: &str) -> Option<Title> {
        ALL_TITLES.into_iter().find(|t| t.code() == s)
    }
}

/// A period of work at another institution (派驻/下沉), e.g. a lead-hospital
/// attending physician posted to a township centre for a year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secondment {
    pub institution: String,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
}

impl Secondment {
    pub fn active_on(&self, day: NaiveDate) -> bool {
        self.start <= day && self.end.is_none_or(|e| day <= e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Practitioner {
    pub id: String,
    pub name: String,
    pub sex: Sex,
    pub role: Role,
    pub title: Title,
    /// Practising licence number (执业证书编码).
    pub licence: Option<String>,
    pub primary_institution: String,
    pub department: Option<String>,
    pub secondments: Vec<Secondment>,
}

impl Practitioner {
    pub fn validate(&self) -> Result<(), DomainError> {
        crate::patient::validate_name(&self.name)?;
        for s in &self.secondments {
            if s.end.is_some_and(|e| e < s.start) {
                return Err(DomainError::invalid(
                    "secondment-period",
                    "派驻结束日期早于开始日期",
                ));
            }
            if s.institution == self.primary_institution {
                return Err(DomainError::invalid(
                    "secondment-self",
                    "不能派驻到本人所属机构",
                ));
            }
        }
        Ok(())
    }

    /// Institutions where the practitioner works on `day`: the primary one and any
    /// active secondment.
    pub fn institutions_on(&self, day: NaiveDate) -> Vec<&str> {
        let mut v = vec![self.primary_institution.as_str()];
        v.extend(
            self.secondments
                .iter()
                .filter(|s| s.active_on(day))
                .map(|s| s.institution.as_str()),
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn secondment_periods() {
        let p = Practitioner {
            id: "d1".into(),
            name: "李医生".into(),
            sex: Sex::Male,
            role: Role::Physician,
            title: Title::Attending,
            licence: None,
            primary_institution: "lead".into(),
            department: None,
            secondments: vec![Secondment {
                institution: "town".into(),
                start: d(2026, 1, 1),
                end: Some(d(2026, 12, 31)),
            }],
        };
        assert!(p.validate().is_ok());
        assert_eq!(p.institutions_on(d(2026, 6, 1)), vec!["lead", "town"]);
        assert_eq!(p.institutions_on(d(2027, 1, 1)), vec!["lead"]);
        let mut bad = p.clone();
        bad.secondments[0].end = Some(d(2025, 1, 1));
        assert_eq!(bad.validate().unwrap_err().code(), "secondment-period");
    }

    #[test]
    fn codes_round_trip() {
        for r in ALL_ROLES {
            assert_eq!(Role::from_code(r.code()), Some(r));
        }
        for t in ALL_TITLES {
            assert_eq!(Title::from_code(t.code()), Some(t));
        }
    }
}
