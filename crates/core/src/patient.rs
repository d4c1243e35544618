//! Residents and patients.

use crate::{DomainError, ResidentId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// FHIR administrative gender code.
    pub fn fhir(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }
    pub fn from_fhir(s: &str) -> Option<Sex> {
        match s {
            "male" => Some(Sex::Male),
            "female" => Some(Sex::Female),
            _ => None,
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
        }
    }
}

/// Basic medical insurance schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InsuranceScheme {
    /// 城乡居民基本医疗保险
    Resident,
    /// 城镇职工基本医疗保险
    Employee,
}

impl InsuranceScheme {
    pub fn code(self) -> &'static str {
        match self {
            InsuranceScheme::Resident => "resident",
            InsuranceScheme::Employee => "employee",
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            InsuranceScheme::Resident => "城乡居民医保",
            InsuranceScheme::Employee => "职工医保",
        }
    }
    pub fn from_code(s: &str) -> Option<Self> {
        match s {
            "resident" => Some(InsuranceScheme::Resident),
            "employee" => Some(InsuranceScheme::Employee),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insurance {
    pub scheme: InsuranceScheme,
    /// Insurance card / personal number (医保号).
    pub number: String,
    /// The enrolment year (参保年度).
    pub year: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    pub id: String,
    pub name: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    /// Children and the elderly often have none on file.
    pub resident_id: Option<ResidentId>,
    /// An ID number as typed that fails its check digit: kept so the person can
    /// still be found, but never trusted for linking ("unverified identity").
    pub unverified_id: Option<String>,
    pub phone: Option<String>,
    /// 12-digit village (村/居委会) division code of the household.
    pub village: Option<String>,
    /// Household number (户号), shared by family members.
    pub household: Option<String>,
    pub address: Option<String>,
    pub insurance: Option<Insurance>,
    /// The institution that registered the resident (scope follows it).
    pub managing_institution: Option<String>,
}

pub const MAX_NAME_CHARS: usize = 50;

impl Patient {
    /// Checks every rule that a single record can break: name, birth date not in the
    /// future, resident ID agreeing with birth date and sex, phone format.
    pub fn validate(&self, today: NaiveDate) -> Result<(), DomainError> {
        validate_name(&self.name)?;
        if self.birth_date > today {
            return Err(DomainError::invalid(
                "birthdate-future",
                format!("出生日期 {} 晚于今天,请核对", self.birth_date),
            ));
        }
        if self.birth_date.year_ce().1 < 1880 {
            return Err(DomainError::invalid(
                "birthdate-range",
                "出生日期过早,请核对",
            ));
        }
        if let Some(id) = &self.resident_id {
            if id.birth_date() != Some(self.birth_date) {
                return Err(DomainError::invalid(
                    "resident-id-birthdate-mismatch",
                    format!(
                        "身份证号中的出生日期({})与登记的出生日期({})不一致",
                        id.birth_date().map(|d| d.to_string()).unwrap_or_default(),
                        self.birth_date
                    ),
                ));
            }
            if id.sex() != self.sex {
                return Err(DomainError::invalid(
                    "resident-id-sex-mismatch",
                    format!(
                        "身份证号显示性别为{},与登记的性别({})不一致",
                        id.sex().label_zh(),
                        self.sex.label_zh()
                    ),
                ));
            }
        }
        if let Some(p) = &self.phone {
            validate_phone(p)?;
        }
        if let Some(a) = &self.address
            && a.chars().count() > 200
        {
            return Err(DomainError::invalid("too-long", "地址过长(最多200字)"));
        }
        Ok(())
    }

    /// Age in whole years on `day`.
    pub fn age_on(&self, day: NaiveDate) -> u32 {
        day.years_since(self.birth_date).unwrap_or(0)
    }
}

use chrono::Datelike;

pub fn validate_name(name: &str) -> Result<(), DomainError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(DomainError::invalid("name-missing", "姓名不能为空"));
    }
    if n.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(
            "too-long",
            format!("姓名过长(最多{MAX_NAME_CHARS}字)"),
        ));
    }
    if n.chars().any(char::is_control) {
        return Err(DomainError::invalid("name-format", "姓名含有非法字符"));
    }
    Ok(())
}

/// Mainland mobile (1[3-9] + 9 digits) or a landline with area code (0xxx-xxxxxxx).
pub fn validate_phone(p: &str) -> Result<(), DomainError> {
    let digits: String = p.chars().filter(|c| *c != '-' && *c != ' ').collect();
    let b = digits.as_bytes();
    let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
    let landline = (10..=12).contains(&b.len()) && b[0] == b'0';
    if !b.iter().all(u8::is_ascii_digit) || !(mobile || landline) {
        return Err(DomainError::invalid(
            "phone-format",
            format!("电话号码 {p} 格式错误(手机号11位,固话需带区号)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Patient {
        Patient {
            id: "p1".into(),
            name: "王小明".into(),
            sex: Sex::Female,
            birth_date: NaiveDate::from_ymd_opt(1949, 12, 31).unwrap(),
            resident_id: Some(ResidentId::parse("11010519491231002X").unwrap()),
            phone: Some("13812345678".into()),
            village: None,
            household: None,
            address: None,
            insurance: None,
            managing_institution: None,
            unverified_id: None,
        }
    }
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn consistent_patient_is_valid() {
        assert!(patient().validate(today()).is_ok());
        assert_eq!(patient().age_on(today()), 76);
    }

    #[test]
    fn future_birth_date_is_rejected() {
        let mut p = patient();
        p.resident_id = None;
        p.birth_date = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        assert_eq!(p.validate(today()).unwrap_err().code(), "birthdate-future");
    }

    #[test]
    fn id_contradicting_record_is_rejected() {
        let mut p = patient();
        p.birth_date = NaiveDate::from_ymd_opt(1950, 1, 1).unwrap();
        assert_eq!(
            p.validate(today()).unwrap_err().code(),
            "resident-id-birthdate-mismatch"
        );
        let mut p = patient();
        p.sex = Sex::Male;
        assert_eq!(
            p.validate(today()).unwrap_err().code(),
            "resident-id-sex-mismatch"
        );
    }

    #[test]
    fn phone_and_name_rules() {
        assert!(validate_phone("0830-1234567").is_ok());
        assert!(validate_phone("12812345678").is_err());
        assert!(validate_phone("1381234567").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"王".repeat(51)).is_err());
    }
}

/// Two-character surnames (复姓) that must not be split after the first character.
const COMPOUND_SURNAMES: [&str; 26] = [
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "令狐", "慕容", "尉迟", "长孙", "宇文", "司徒",
    "夏侯", "公孙", "轩辕", "端木", "申屠", "独孤", "南宫", "西门", "万俟", "闻人", "赫连", "澹台",
    "呼延", "钟离",
];

/// Splits a Chinese full name into (surname, given name). Names without Han
/// characters (e.g. imported foreign records) are returned whole as the surname.
pub fn split_chinese_name(full: &str) -> (String, String) {
    let full = full.trim();
    if !full
        .chars()
        .next()
        .is_some_and(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    {
        return (full.to_string(), String::new());
    }
    let n = if COMPOUND_SURNAMES.iter().any(|s| full.starts_with(s)) && full.chars().count() > 2 {
        2
    } else {
        1
    };
    let family: String = full.chars().take(n).collect();
    let given: String = full.chars().skip(n).collect();
    (family, given)
}

#[cfg(test)]
mod name_tests {
    use super::split_chinese_name;

    #[test]
    fn splits_single_and_compound_surnames() {
        assert_eq!(split_chinese_name("王小明"), ("王".into(), "小明".into()));
        assert_eq!(
            split_chinese_name("欧阳娜娜"),
            ("欧阳".into(), "娜娜".into())
        );
        assert_eq!(split_chinese_name("欧阳"), ("欧".into(), "阳".into()));
        assert_eq!(split_chinese_name("Smith"), ("Smith".into(), "".into()));
    }
}
