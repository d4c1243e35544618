//! What the engine reviews (a prescription with the facts about its patient and
//! prescriber) and what it says (findings).

use crate::knowledge::AntimicrobialGrade;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
pub use yigong_core::org::Tier;

/// Where the prescription is written: the norm limits days' supply by setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    #[default]
    Outpatient,
    Emergency,
    Inpatient,
}

impl Setting {
    pub fn label(self) -> &'static str {
        match self {
            Setting::Outpatient => "门诊",
            Setting::Emergency => "急诊",
            Setting::Inpatient => "住院",
        }
    }
}

/// The prescriber's rights, as granted by the institution (处方权).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prescriber {
    /// Highest antimicrobial grade the prescriber may prescribe (None: none).
    #[serde(default)]
    pub antimicrobial: Option<AntimicrobialGrade>,
    /// Holds the narcotic and class-I psychotropic prescription right (麻精药品处方权).
    #[serde(default)]
    pub narcotic_right: bool,
}

impl Prescriber {
    /// The grade a title normally carries (抗菌药物临床应用管理办法 art. 24):
    /// senior titles special, attending restricted, resident and assistant
    /// and village doctors non-restricted.
    pub fn grade_for_title(title: &str) -> Option<AntimicrobialGrade> {
        match title {
            "chief" | "associate-chief" => Some(AntimicrobialGrade::Special),
            "attending" => Some(AntimicrobialGrade::Restricted),
            "resident" | "assistant" | "village-doctor" => Some(AntimicrobialGrade::NonRestricted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sex {
    Male,
    Female,
}

/// An allergy as recorded: a code (ATC or formulary) and/or free text such as "青霉素".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Allergy {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub text: String,
}

/// The patient facts the rules need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientFacts {
    #[serde(default)]
    pub birth_date: Option<NaiveDate>,
    #[serde(default)]
    pub sex: Option<Sex>,
    #[serde(default)]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    pub pregnant: Option<bool>,
    #[serde(default)]
    pub lactating: Option<bool>,
    /// eGFR in mL/min/1.73m².
    #[serde(default)]
    pub egfr: Option<f64>,
    /// Child-Pugh class "A", "B" or "C" when hepatic impairment is known.
    #[serde(default)]
    pub hepatic: Option<String>,
    #[serde(default)]
    pub allergies: Vec<Allergy>,
}

/// Skin-test status of an item that needs one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkinTest {
    #[default]
    NotRecorded,
    Negative,
    Positive,
    /// Continuing a course already tested (续用), recorded by the prescriber.
    Continuing,
}

/// One drug line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Formulary code, or an ATC code.
    pub drug: String,
    /// Single dose, in `unit`.
    pub dose: f64,
    pub unit: String,
    /// Frequency code (qd, bid, tid, q8h …).
    pub frequency: String,
    /// Route code (po, ivgtt, im …).
    pub route: String,
    /// Days' supply.
    pub days: u32,
    /// Infusion group: items with the same group are mixed in one infusion.
    #[serde(default)]
    pub group: Option<u32>,
    #[serde(default)]
    pub skin_test: SkinTest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prescription {
    /// The date the prescription is written (ages are computed at this date).
    pub date: NaiveDate,
    #[serde(default)]
    pub setting: Setting,
    /// A long prescription (长期处方).
    #[serde(default)]
    pub long_term: bool,
    /// The prescribing institution's tier.
    pub tier: Tier,
    #[serde(default)]
    pub prescriber: Prescriber,
    #[serde(default)]
    pub patient: PatientFacts,
    /// ICD-10 codes of the clinical diagnoses.
    #[serde(default)]
    pub diagnoses: Vec<String>,
    pub items: Vec<Item>,
}

/// 提示 / 警告 / 拦截.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Block,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "提示",
            Severity::Warning => "警告",
            Severity::Block => "拦截",
        }
    }
}

/// The review norm's categories, for reports and for the corpus' per-category
/// sensitivity and specificity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Legality,
    Format,
    Indication,
    Dose,
    Route,
    Duplicate,
    Interaction,
    Incompatibility,
    Pregnancy,
    Children,
    Elderly,
    Renal,
    Hepatic,
    Allergy,
    SkinTest,
    LongRx,
}

pub const CATEGORIES: [Category; 16] = [
    Category::Legality,
    Category::Format,
    Category::Indication,
    Category::Dose,
    Category::Route,
    Category::Duplicate,
    Category::Interaction,
    Category::Incompatibility,
    Category::Pregnancy,
    Category::Children,
    Category::Elderly,
    Category::Renal,
    Category::Hepatic,
    Category::Allergy,
    Category::SkinTest,
    Category::LongRx,
];

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::Legality => "合法性",
            Category::Format => "规范性",
            Category::Indication => "适应症",
            Category::Dose => "用法用量",
            Category::Route => "剂型与给药途径",
            Category::Duplicate => "重复用药",
            Category::Interaction => "相互作用",
            Category::Incompatibility => "配伍禁忌",
            Category::Pregnancy => "妊娠与哺乳期",
            Category::Children => "儿童用药",
            Category::Elderly => "老年人用药",
            Category::Renal => "肾功能不全",
            Category::Hepatic => "肝功能不全",
            Category::Allergy => "过敏",
            Category::SkinTest => "皮试",
            Category::LongRx => "长期处方",
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Category::Legality => "legality",
            Category::Format => "format",
            Category::Indication => "indication",
            Category::Dose => "dose",
            Category::Route => "route",
            Category::Duplicate => "duplicate",
            Category::Interaction => "interaction",
            Category::Incompatibility => "incompatibility",
            Category::Pregnancy => "pregnancy",
            Category::Children => "children",
            Category::Elderly => "elderly",
            Category::Renal => "renal",
            Category::Hepatic => "hepatic",
            Category::Allergy => "allergy",
            Category::SkinTest => "skin-test",
            Category::LongRx => "long-rx",
        }
    }
}

/// One thing the engine found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule code, e.g. "DOSE-DAILY".
    pub rule: &'static str,
    pub category: Category,
    pub severity: Severity,
    /// The drug lines concerned (0-based).
    pub items: Vec<usize>,
    /// Chinese, telling the prescriber what to change.
    pub message: String,
    /// Source id of the fact or norm the rule applies.
    pub source: String,
}

/// Age in whole days at `on`, or None when born after it.
pub fn age_days(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    let d = (on - birth).num_days();
    (d >= 0).then_some(d as u32)
}

/// Age in whole years at `on`.
pub fn age_years(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    if on < birth {
        return None;
    }
    let mut y = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        y -= 1;
    }
    Some(y as u32)
}

/// Age as a prescription shows it: infants in days or months and days (处方管理办法
/// art. 6: 新生儿、婴幼儿写日、月龄), everyone else in years.
pub fn age_label(birth: NaiveDate, on: NaiveDate) -> String {
    let Some(days) = age_days(birth, on) else {
        return "出生日期晚于处方日期".into();
    };
    if days < 28 {
        return format!("{days}天");
    }
    let years = age_years(birth, on).unwrap_or(0);
    if years >= 1 {
        return format!("{years}岁");
    }
    let mut months = (on.year() - birth.year()) * 12 + on.month() as i32 - birth.month() as i32;
    if on.day() < birth.day() {
        months -= 1;
    }
    let anchor = birth
        .checked_add_months(chrono::Months::new(months.max(0) as u32))
        .unwrap_or(birth);
    let rest = (on - anchor).num_days();
    if rest > 0 {
        format!("{months}月{rest}天")
    } else {
        format!("{months}月")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn infants_are_aged_in_days_and_months() {
        assert_eq!(age_label(d("2026-11-01"), d("2026-11-20")), "19天");
        assert_eq!(age_label(d("2026-05-10"), d("2026-11-20")), "6月10天");
        assert_eq!(age_label(d("2026-05-20"), d("2026-11-20")), "6月");
        assert_eq!(age_label(d("2020-11-21"), d("2026-11-20")), "5岁");
        assert_eq!(age_years(d("2020-11-20"), d("2026-11-20")), Some(6));
        assert_eq!(age_days(d("2026-11-21"), d("2026-11-20")), None);
    }
}
