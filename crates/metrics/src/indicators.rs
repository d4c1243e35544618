//! The indicator catalogue (issue 6, scope 1–2) and its incremental arithmetic.
//!
//! Every indicator is a fraction (or a plain sum) of **components**: integer
//! counters per organisation and month (counts, fen, days, minutes,
//! person-months). What one stored resource adds to the components is
//! [`contributions`], a pure and deterministic function of the resource and
//! the [`Context`] the store knows at write time. The store keeps a table
//! `metric_fact(component, org, month, value)` and, in the transaction of every
//! write, subtracts the old version's facts and adds the new one's ([`delta`]
//! gives the net change), so corrections and deletions are exact and a full
//! recompute gives the same table. [`value`] turns the component sums of a
//! subject (county, community or institution) and period into the indicator's
//! figure; a zero denominator gives `None` ("无数据"), never NaN.
//!
//! **Which organisation a fact belongs to.** Institution-based components are
//! keyed by the institution where care happened (Encounter.serviceProvider,
//! Claim.provider, the centre that signed a report, …). Enrollee-based
//! components ([`Basis::Enrollee`]) are keyed by the *community* of the patient
//! (参保人所属医共体, `Context::patient_comm`), so that a community's enrollees'
//! care outside the community is counted for it. A subject's sum is therefore:
//! county = every fact; community = facts of its member institutions plus facts
//! keyed by the community id; institution = facts keyed by the institution.
//!
//! **Months** are calendar months in Asia/Shanghai (UTC+8, `YYYY-MM`).
//!
//! **Money** is integer fen parsed exactly from the decimal text of FHIR Money
//! with [`yigong_core::Fen::parse_yuan`], never through floating point.
//! Encounters carry the settled amounts (charges split into drugs,
//! consumables, exams and services, and the insurance-paid part); a Claim
//! counts only for care recorded without an Encounter (a Claim whose items name
//! an Encounter contributes nothing, the Encounter already carries the money).
//!
//! Bad input never panics: [`check`] refuses it with a Chinese message (the
//! store calls it before writing), and [`contributions`] of a resource that
//! would fail the money checks is empty.

use crate::doc::Doc;
use crate::{Direction, Unit, div_half_even};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;
use yigong_care::Flow;
use yigong_care::exams::{self, CentreKind};
use yigong_core::{EncounterClass, Fen, Icd10, Tier};

/// The shipped catalogue (`data/indicators.json`).
pub const SHIPPED: &str = include_str!("../data/indicators.json");
const SCHEMA: u32 = 1;

/// Largest amount accepted for one charge part or one claim: ¥1,000,000,000
/// (the same limit as `yigong_core::Charges::validate`).
pub const MAX_FEN: i64 = 100_000_000_000;

/// Clock tolerance for "in the future" (the same five minutes as the FHIR checks).
const FUTURE_TOLERANCE_MIN: i64 = 5;

/// An open-ended secondment is counted for at most this many months from its
/// start (the store has no clock; recording the end corrects it exactly).
pub const OPEN_SECONDMENT_MONTHS: i64 = 12;
/// Any secondment is counted for at most this many months.
pub const MAX_SECONDMENT_MONTHS: i64 = 60;

const EXT_IN_COUNTY: &str = yigong_fhir::codes::EXT_IN_COUNTY;
const EXT_CHARGES: &str = yigong_fhir::codes::EXT_CHARGES;
const EXT_SECONDMENT: &str = yigong_fhir::codes::EXT_SECONDMENT;
const EXT_RECORDED_AT: &str = yigong_fhir::codes::EXT_RECORDED_AT;
const CS_ICD10: &str = yigong_fhir::codes::CS_ICD10;
const CS_PRACTITIONER_ROLE: &str = yigong_fhir::codes::CS_PRACTITIONER_ROLE;

// ---------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------

/// What a component counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A number of events (visits, admissions, reports …).
    Count,
    /// Money in fen.
    Fen,
    /// Days.
    Days,
    /// Minutes.
    Minutes,
    /// Person-months.
    Months,
}

impl Kind {
    /// The Chinese unit shown with a figure of this kind.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Count => "",
            Kind::Fen => "元",
            Kind::Days => "天",
            Kind::Minutes => "分钟",
            Kind::Months => "人·月",
        }
    }
}

/// Which organisation a component's facts are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The institution where the care or the work happened.
    Institution,
    /// The community of the patient (参保人所属医共体).
    Enrollee,
}

struct Def {
    id: &'static str,
    kind: Kind,
    basis: Basis,
    zh: &'static str,
}

const fn d(id: &'static str, kind: Kind, basis: Basis, zh: &'static str) -> Def {
    Def {
        id,
        kind,
        basis,
        zh,
    }
}

use Basis::{Enrollee as E, Institution as I};
use Kind::{Count as N, Days as D, Fen as F, Minutes as M, Months as PM};

/// Every component. Ids ending in `:*` name a family whose members carry a key
/// after the colon (`visits_dx:I10`).
const DEFS: &[Def] = &[
    // Encounter: visits (门急诊, class AMB / EMER), month of the visit.
    d("visits", N, I, "门急诊人次（含县外就诊记录），按就诊月份"),
    d("visits_in_county", N, I, "县域内医疗机构门急诊人次"),
    d(
        "visits_primary",
        N,
        I,
        "基层医疗卫生机构（乡镇卫生院、社区卫生服务中心、村卫生室）门急诊人次",
    ),
    d("visits_tcm", N, I, "县域内中医医院门急诊人次"),
    d("visit_charges", F, I, "县域内门急诊总费用（分）"),
    d(
        "visits_dx:*",
        N,
        I,
        "县域内门急诊人次，按第一诊断 ICD-10 三位类目（visits_dx:I10 等）",
    ),
    // Encounter: inpatient stays (住院, class IMP).
    d("admissions", N, I, "入院人次（含县外住院），按入院月份"),
    d("admissions_in_county", N, I, "县域内医疗机构入院人次"),
    d(
        "admissions_out_of_county",
        N,
        I,
        "县域外住院人次（记在县外医疗机构名下）",
    ),
    d(
        "discharges_in_county",
        N,
        I,
        "县域内医疗机构出院人次，按出院月份",
    ),
    d(
        "inpatient_days_in_county",
        D,
        I,
        "县域内出院者住院天数（出院日期减入院日期，北京时间，至少 1 天）",
    ),
    d(
        "inpatient_charges_in_county",
        F,
        I,
        "县域内出院者住院总费用（分），按出院月份",
    ),
    d(
        "discharges_dx:*",
        N,
        I,
        "县域内出院人次，按第一诊断 ICD-10 三位类目",
    ),
    // Encounter: revenue (结算时点：门急诊为就诊月份，住院为出院月份).
    d("charges_drugs", F, I, "县域内医疗收入：药品费（分）"),
    d(
        "charges_consumables",
        F,
        I,
        "县域内医疗收入：卫生材料（耗材）费（分）",
    ),
    d("charges_exams", F, I, "县域内医疗收入：检查检验费（分）"),
    d("charges_services", F, I, "县域内医疗收入：医疗服务费（分）"),
    d(
        "revenue_primary",
        F,
        I,
        "基层医疗卫生机构医疗收入（四项费用合计，分）",
    ),
    d("revenue_lead", F, I, "牵头医院医疗收入（四项费用合计，分）"),
    d(
        "fund_paid",
        F,
        I,
        "县域内医疗机构发生的医保基金支付额（分，就诊记录与无就诊记录的结算单）",
    ),
    // Claim.
    d(
        "claims",
        N,
        I,
        "无就诊记录的医保结算单数（Claim，人民币计价，状态 active）",
    ),
    d(
        "claim_amount",
        F,
        I,
        "无就诊记录的医保结算单申请基金支付额（分）",
    ),
    // Enrollee-based (org = the patient's community).
    d(
        "enrollee_admissions",
        N,
        E,
        "本医共体参保人住院人次（含县外），按入院月份",
    ),
    d(
        "enrollee_admissions_in_county",
        N,
        E,
        "本医共体参保人在县域内住院人次",
    ),
    d(
        "enrollee_fund_inside",
        F,
        E,
        "本医共体参保人在本医共体内机构发生的医保基金支付额（分）",
    ),
    d(
        "enrollee_fund_county",
        F,
        E,
        "本医共体参保人在县域内其他机构发生的医保基金支付额（分）",
    ),
    d(
        "enrollee_fund_outside",
        F,
        E,
        "本医共体参保人在县域外发生的医保基金支付额（分）",
    ),
    d(
        "enrollee_fund_primary",
        F,
        E,
        "本医共体参保人在县域内基层医疗卫生机构发生的医保基金支付额（分）",
    ),
    // DiagnosticReport (signed: final / amended / corrected / appended).
    d(
        "reports_imaging",
        N,
        I,
        "影像中心出具的报告数，按报告月份，记在出具报告的机构",
    ),
    d("reports_ecg", N, I, "心电中心出具的报告数"),
    d("reports_lab", N, I, "检验中心出具的报告数"),
    d("reports_pathology", N, I, "病理中心出具的报告数"),
    d(
        "ecg_reports_village",
        N,
        I,
        "村卫生室申请的心电报告数（记在申请的村卫生室）",
    ),
    // Task (care flows).
    d(
        "referrals_up",
        N,
        I,
        "上转人次（接收方已接收及以后：已接收、已预约、已到院、已完成），记在转出机构，按申请月份",
    ),
    d("referrals_down", N, I, "下转人次（同上口径）"),
    d(
        "referrals_out_of_county",
        N,
        I,
        "经备案转往县外人次（同上口径）",
    ),
    d(
        "referral_response_minutes",
        M,
        I,
        "转诊申请到接收方首次答复（接收或拒绝）的分钟数合计，记在接收机构，按答复月份",
    ),
    d("referral_responses", N, I, "有答复时间的转诊申请数"),
    d(
        "exam_tat_minutes",
        M,
        I,
        "检查检验申请到报告的分钟数合计，记在检查中心所在机构，按报告月份",
    ),
    d("exam_tat_count", N, I, "有报告时间的检查检验申请数"),
    d(
        "imaging_tat_minutes",
        M,
        I,
        "影像检查申请到报告的分钟数合计",
    ),
    d("imaging_tat_count", N, I, "有报告时间的影像检查申请数"),
    d("ecg_tat_minutes", M, I, "心电检查申请到报告的分钟数合计"),
    d("ecg_tat_count", N, I, "有报告时间的心电检查申请数"),
    // PractitionerRole.
    d(
        "seconded_physician_months",
        PM,
        I,
        "派驻到基层医疗卫生机构的医师人·月数（派驻期间覆盖的每个自然月计 1），记在接收机构",
    ),
    // Prescription review (facts written by the store's rx tables).
    d("rx_reviewed", N, I, "经审方的处方数（由处方审核表维护）"),
    d(
        "rx_intervened",
        N,
        I,
        "审方干预（退回或拦截）的处方数（由处方审核表维护）",
    ),
];

fn def(id: &str) -> Option<&'static Def> {
    match id.split_once(':') {
        Some((family, key)) if !key.is_empty() => DEFS
            .iter()
            .find(|d| d.id.strip_suffix(":*") == Some(family)),
        Some(_) => None,
        None => DEFS.iter().find(|d| d.id == id),
    }
}

/// Every component id (families as `prefix:*`) with its Chinese description.
pub fn components() -> &'static [(&'static str, &'static str)] {
    static LIST: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    LIST.get_or_init(|| DEFS.iter().map(|d| (d.id, d.zh)).collect())
}

/// What a component counts; also answers for family members (`visits_dx:I10`)
/// and families (`visits_dx:*`). `None` for an unknown id.
pub fn component_kind(id: &str) -> Option<Kind> {
    def(id).map(|d| d.kind)
}

/// Which organisation a component's facts are keyed by.
pub fn component_basis(id: &str) -> Option<Basis> {
    def(id).map(|d| d.basis)
}

/// The family prefix of a family id or member (`visits_dx` for `visits_dx:*`
/// and for `visits_dx:I10`), `None` for a plain component.
pub fn family_of(id: &str) -> Option<&str> {
    id.split_once(':').map(|(f, _)| f)
}

// ---------------------------------------------------------------------------
// Facts and context
// ---------------------------------------------------------------------------

/// What the store knows of an organisation when it computes contributions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgFacts {
    pub tier: Option<Tier>,
    /// Org-kind code (`tcm-hospital`, `village-clinic`, `external`, …).
    pub kind: Option<String>,
    /// The community the institution belongs to.
    pub comm: Option<String>,
    /// The institution is its community's lead hospital (牵头医院).
    pub lead: bool,
    /// False for care providers outside the county.
    pub in_county: bool,
}

/// One counter increment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fact {
    pub component: Cow<'static, str>,
    /// Institution id, or a community id for enrollee-based components.
    pub org: String,
    /// `YYYY-MM` in Asia/Shanghai (UTC+8).
    pub month: String,
    pub value: i64,
}

/// What the store knows around a resource when it computes its contributions.
///
/// Contributions depend on the context (the organisation tree, the patient's
/// community, the order a report answers). For subtraction to be exact the
/// store must subtract exactly what it once added: keep each resource's facts
/// (or recompute the old version with the context it was added under); after
/// a change to the organisation tree or a patient's community, the full
/// recompute brings the table in line.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub org: &'a dyn Fn(&str) -> Option<OrgFacts>,
    /// The patient's community (enrollee) as the store knows it.
    pub patient_comm: Option<&'a str>,
    /// For a DiagnosticReport or a Task: the ServiceRequest it answers
    /// (`basedOn`) or tracks (`focus`), when the store has it in hand. Gives the
    /// ordering institution (village ECG) and the exam item (turnaround by
    /// centre) and the referral direction.
    pub request: Option<&'a Json>,
}

impl<'a> Context<'a> {
    /// A context with only the organisation look-up.
    pub fn new(org: &'a dyn Fn(&str) -> Option<OrgFacts>) -> Context<'a> {
        Context {
            org,
            patient_comm: None,
            request: None,
        }
    }
}

/// Where the rules put their facts: `(component, org, month, value)`.
pub type Sink<'s> = dyn FnMut(&str, &str, &str, i64) + 's;

struct Out<'s, 'f> {
    sink: &'s mut Sink<'f>,
}

impl Out<'_, '_> {
    fn add(&mut self, component: &str, org: &str, month: &str, value: i64) {
        if value != 0 && !org.is_empty() {
            (self.sink)(component, org, month, value);
        }
    }
}

/// The net change `new − old`, merged per (component, org, month), zeros
/// dropped, in a stable order: what the store applies on an update (old =
/// the stored version's facts, new = the incoming one's; a create has no old,
/// a deletion no new).
pub fn delta(old: &[Fact], new: &[Fact]) -> Vec<Fact> {
    let mut m: BTreeMap<(&str, &str, &str), i128> = BTreeMap::new();
    for (facts, sign) in [(old, -1i128), (new, 1)] {
        for f in facts {
            *m.entry((&f.component, &f.org, &f.month)).or_default() += sign * i128::from(f.value);
        }
    }
    m.into_iter()
        .filter(|(_, v)| *v != 0)
        .filter_map(|((c, o, mo), v)| {
            Some(Fact {
                component: Cow::Owned(c.to_string()),
                org: o.to_string(),
                month: mo.to_string(),
                value: i64::try_from(v).ok()?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// A FHIR date or dateTime as an instant. Dates (and dateTimes without a zone)
/// are read in Asia/Shanghai; `YYYY-MM` is the first of the month; a bare year
/// is too coarse for a month and gives `None`.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    let tz = shanghai();
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return tz.from_local_datetime(&t).single();
    }
    let date = match s.len() {
        10 => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?,
        7 => NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()?,
        _ => return None,
    };
    tz.from_local_datetime(&date.and_hms_opt(0, 0, 0)?).single()
}

/// The calendar month (`YYYY-MM`, Asia/Shanghai) of a FHIR date or dateTime.
pub fn month_of(s: &str) -> Option<String> {
    parse_time(s).map(|t| month_str(t.with_timezone(&shanghai()).date_naive()))
}

fn month_str(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn local_date(t: DateTime<FixedOffset>) -> NaiveDate {
    t.with_timezone(&shanghai()).date_naive()
}

/// Checks a month id `YYYY-MM`.
pub fn is_month(m: &str) -> bool {
    m.len() == 7 && NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok()
}

/// The same month a year earlier (`2026-03` → `2025-03`).
pub fn previous_year(month: &str) -> Option<String> {
    if !is_month(month) {
        return None;
    }
    let y: i32 = month.get(..4)?.parse().ok()?;
    Some(format!("{:04}{}", y - 1, month.get(4..)?))
}

/// The months a FHIR period (`periodStart`, `periodEnd`: dates) covers, as the
/// first and last `YYYY-MM`, inclusive; every month the period touches counts
/// (indicators are kept per month). `None` when a bound is unreadable or the
/// end is before the start.
pub fn month_range(period_start: &str, period_end: &str) -> Option<(String, String)> {
    let a = month_of(period_start)?;
    let b = month_of(period_end)?;
    (a <= b).then_some((a, b))
}

fn months_between(first: NaiveDate, last: NaiveDate) -> i64 {
    i64::from(last.year() - first.year()) * 12 + i64::from(last.month()) - i64::from(first.month())
}

fn add_months(d: NaiveDate, n: i64) -> Option<NaiveDate> {
    let total = i64::from(d.year()) * 12 + i64::from(d.month0()) + n;
    let y = i32::try_from(total.div_euclid(12)).ok()?;
    let m = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    NaiveDate::from_ymd_opt(y, m, 1)
}

// ---------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------

fn s<'a, J: Doc>(v: &'a J, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn ref_id<'a, J: Doc>(v: &'a J, key: &str, rtype: &str) -> Option<&'a str> {
    let r = v.get(key)?.get("reference")?.as_str()?;
    let (t, id) = yigong_fhir::extract::parse_reference(r)?;
    (t == rtype).then_some(id)
}

fn ext<'a, J: Doc>(v: &'a J, url: &str) -> Option<&'a J> {
    v.get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(J::as_str) == Some(url))
}

fn codes<'a, J: Doc>(
    concept: Option<&'a J>,
    system: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    concept
        .and_then(|c| c.get("coding"))
        .and_then(J::as_array)
        .into_iter()
        .flatten()
        .filter(move |c| c.get("system").and_then(J::as_str) == Some(system))
        .filter_map(|c| c.get("code").and_then(J::as_str))
}

/// Reads a FHIR Money exactly into fen: the JSON number's own decimal text
/// through `Fen::parse_yuan` (at most two decimals), never through `f64`
/// arithmetic. Refuses text, exponents, more than two decimals, negative
/// amounts and amounts beyond [`MAX_FEN`]; the currency, when given, must be CNY.
fn money<J: Doc>(m: &J, what: &dyn std::fmt::Display) -> Result<Fen, String> {
    if let Some(c) = m.get("currency")
        && c.as_str() != Some("CNY")
    {
        return Err(format!(
            "{what}的币种必须为人民币（CNY），收到 {}",
            c.to_json()
        ));
    }
    let Some(v) = m.get("value") else {
        return Err(format!("{what}缺少金额（value）"));
    };
    let Some(text) = v.number_text() else {
        return Err(format!(
            "{what}的金额必须是数字（单位元，最多两位小数），收到 {}",
            v.to_json()
        ));
    };
    if text.starts_with('-') {
        return Err(format!("{what}不能为负数（收到 {text} 元）"));
    }
    let f = Fen::parse_yuan(&text).ok_or_else(|| {
        let int_digits = text.split(['.', 'e', 'E']).next().map_or(0, str::len);
        let big_exponent =
            text.contains(['e', 'E']) && !text.contains("e-") && !text.contains("E-");
        if big_exponent || int_digits > 10 {
            format!("{what}超出合理范围（收到 {text} 元，单笔不超过 10 亿元）")
        } else {
            format!("{what}金额格式错误（收到 {text}，单位元，最多两位小数）")
        }
    })?;
    if f.0 > MAX_FEN {
        return Err(format!(
            "{what}超出合理范围（收到 {} 元，单笔不超过 10 亿元）",
            f.yuan_string()
        ));
    }
    Ok(f)
}

// ---------------------------------------------------------------------------
// Encounter
// ---------------------------------------------------------------------------

/// The charge parts of an Encounter in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Charges {
    drugs: i64,
    consumables: i64,
    exams: i64,
    services: i64,
    insurance: i64,
}

impl Charges {
    fn total(&self) -> i64 {
        self.drugs + self.consumables + self.exams + self.services
    }
}

const PART_NAMES: [(&str, &str); 5] = [
    ("drugs", "药品费"),
    ("consumables", "卫生材料费"),
    ("exams", "检查检验费"),
    ("services", "医疗服务费"),
    ("insurance-paid", "医保支付额"),
];

fn encounter_charges<J: Doc>(v: &J) -> Result<Charges, String> {
    let Some(ch) = ext(v, EXT_CHARGES) else {
        return Ok(Charges::default());
    };
    let mut got = [None; 5];
    for p in ch.get("extension").and_then(J::as_array).unwrap_or(&[]) {
        let url = p.get("url").and_then(J::as_str);
        let Some(i) = PART_NAMES.iter().position(|(name, _)| Some(*name) == url) else {
            continue;
        };
        let (name, zh) = PART_NAMES[i];
        if got[i].is_some() {
            return Err(format!("费用“{zh}”（{name}）重复出现"));
        }
        let m = p
            .get("valueMoney")
            .ok_or_else(|| format!("费用“{zh}”（{name}）必须以 valueMoney 给出"))?;
        got[i] = Some(money(m, &format_args!("费用“{zh}”"))?.0);
    }
    let got = got.map(|g| g.unwrap_or(0));
    let c = Charges {
        drugs: got[0],
        consumables: got[1],
        exams: got[2],
        services: got[3],
        insurance: got[4],
    };
    if c.insurance > c.total() {
        return Err(format!(
            "医保支付额（{} 元）超过总费用（{} 元）",
            Fen(c.insurance).yuan_string(),
            Fen(c.total()).yuan_string()
        ));
    }
    Ok(c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Care {
    Visit,
    Stay,
}

fn care_of<J: Doc>(v: &J) -> Option<Care> {
    let code = v.get("class")?.get("code")?.as_str()?;
    match EncounterClass::from_act_code(code)? {
        EncounterClass::Outpatient | EncounterClass::Emergency => Some(Care::Visit),
        EncounterClass::Inpatient => Some(Care::Stay),
    }
}

fn counts_status(status: Option<&str>) -> bool {
    !matches!(status, Some("planned" | "cancelled" | "entered-in-error"))
}

/// The three-character ICD-10 category of the principal (first coded) diagnosis.
fn principal_dx<J: Doc>(v: &J) -> Option<String> {
    let first = v
        .get("reasonCode")?
        .as_array()?
        .iter()
        .find_map(|rc| codes(Some(rc), CS_ICD10).next())?;
    Icd10::parse(first).ok().map(|c| c.category().to_string())
}

/// Whether the resource itself says the care was in the county (the
/// in-county extension; in the county unless it says otherwise).
fn said_in_county<J: Doc>(v: &J) -> bool {
    ext(v, EXT_IN_COUNTY)
        .and_then(|e| e.get("valueBoolean"))
        .and_then(J::as_bool)
        .unwrap_or(true)
}

/// In the county: as the resource says, and not at an institution outside it.
fn in_county(said: bool, facts: Option<&OrgFacts>) -> bool {
    said && facts.is_none_or(|f| f.in_county)
}

/// Where the care of one enrollee happened, for the fund split.
fn enrollee_money(
    out: &mut Out,
    ctx: &Context<'_>,
    facts: Option<&OrgFacts>,
    in_county: bool,
    month: &str,
    fund: i64,
) {
    let Some(comm) = ctx.patient_comm else {
        return;
    };
    let part = if !in_county {
        "enrollee_fund_outside"
    } else if facts.and_then(|f| f.comm.as_deref()) == Some(comm) {
        "enrollee_fund_inside"
    } else {
        "enrollee_fund_county"
    };
    out.add(part, comm, month, fund);
    if in_county && facts.and_then(|f| f.tier).is_some_and(Tier::is_primary) {
        out.add("enrollee_fund_primary", comm, month, fund);
    }
}

/// What the Encounter rules read from one Encounter that counts: everything
/// else they need comes from the organisation tree and the patient. Also the
/// stored indicator input (see [`input_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct EncounterInput<'a> {
    care: Care,
    org: &'a str,
    /// Local (Asia/Shanghai) dates of the period.
    start: NaiveDate,
    end: Option<NaiveDate>,
    charges: Charges,
    said_in_county: bool,
    /// The principal diagnosis's three-character ICD-10 category.
    dx: Option<Cow<'a, str>>,
}

/// `None` when the Encounter counts nothing (planned or cancelled, no class
/// the indicators know, no institution, unreadable or reversed period, money
/// the rules refuse).
fn encounter_input<J: Doc>(v: &J) -> Option<EncounterInput<'_>> {
    if !counts_status(v.get("status").and_then(J::as_str)) {
        return None;
    }
    let care = care_of(v)?;
    let org = ref_id(v, "serviceProvider", "Organization")?;
    let start = parse_time(s(v, &["period", "start"])?)?;
    let end = match s(v, &["period", "end"]) {
        Some(e) => Some(parse_time(e)?),
        None => None,
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    Some(EncounterInput {
        care,
        org,
        start: local_date(start),
        end: end.map(local_date),
        charges: encounter_charges(v).ok()?,
        said_in_county: said_in_county(v),
        dx: principal_dx(v).map(Cow::Owned),
    })
}

fn encounter_facts(e: &EncounterInput<'_>, ctx: &Context<'_>, out: &mut Out) {
    let (org, charges, care) = (e.org, e.charges, e.care);
    let facts = (ctx.org)(org);
    let facts = facts.as_ref();
    let in_county = in_county(e.said_in_county, facts);
    let primary = in_county && facts.and_then(|f| f.tier).is_some_and(Tier::is_primary);
    let tcm = in_county && facts.and_then(|f| f.kind.as_deref()) == Some("tcm-hospital");
    let lead = in_county && facts.is_some_and(|f| f.lead);
    let dx = e.dx.as_deref();
    let start_month = month_str(e.start);

    // Money counts where and when it was settled: the visit, or the discharge.
    let settle = |out: &mut Out, month: &str| {
        let total = charges.total();
        if in_county {
            out.add("charges_drugs", org, month, charges.drugs);
            out.add("charges_consumables", org, month, charges.consumables);
            out.add("charges_exams", org, month, charges.exams);
            out.add("charges_services", org, month, charges.services);
            out.add("fund_paid", org, month, charges.insurance);
            if primary {
                out.add("revenue_primary", org, month, total);
            }
            if lead {
                out.add("revenue_lead", org, month, total);
            }
            if care == Care::Visit {
                out.add("visit_charges", org, month, total);
            } else {
                out.add("inpatient_charges_in_county", org, month, total);
            }
        }
        enrollee_money(out, ctx, facts, in_county, month, charges.insurance);
    };

    match care {
        Care::Visit => {
            out.add("visits", org, &start_month, 1);
            if in_county {
                out.add("visits_in_county", org, &start_month, 1);
                if primary {
                    out.add("visits_primary", org, &start_month, 1);
                }
                if tcm {
                    out.add("visits_tcm", org, &start_month, 1);
                }
                if let Some(dx) = dx {
                    out.add(&format!("visits_dx:{dx}"), org, &start_month, 1);
                }
            }
            settle(out, &start_month);
        }
        Care::Stay => {
            out.add("admissions", org, &start_month, 1);
            if in_county {
                out.add("admissions_in_county", org, &start_month, 1);
            } else {
                out.add("admissions_out_of_county", org, &start_month, 1);
            }
            if let Some(comm) = ctx.patient_comm {
                out.add("enrollee_admissions", comm, &start_month, 1);
                if in_county {
                    out.add("enrollee_admissions_in_county", comm, &start_month, 1);
                }
            }
            if let Some(end) = e.end {
                let end_month = month_str(end);
                if in_county {
                    let days = (end - e.start).num_days().max(1);
                    out.add("discharges_in_county", org, &end_month, 1);
                    out.add("inpatient_days_in_county", org, &end_month, days);
                    if let Some(dx) = dx {
                        out.add(&format!("discharges_dx:{dx}"), org, &end_month, 1);
                    }
                }
                settle(out, &end_month);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Claim
// ---------------------------------------------------------------------------

fn claim_linked<J: Doc>(v: &J) -> bool {
    v.get("item")
        .and_then(J::as_array)
        .into_iter()
        .flatten()
        .any(|i| {
            i.get("encounter")
                .and_then(J::as_array)
                .is_some_and(|a| !a.is_empty())
        })
}

fn claim_date<J: Doc>(v: &J) -> Option<&str> {
    s(v, &["billablePeriod", "start"]).or_else(|| s(v, &["created"]))
}

fn is_cny<J: Doc>(m: &J) -> bool {
    m.get("currency").is_none_or(|c| c.as_str() == Some("CNY"))
}

/// What the Claim rules read from one Claim that counts (also its stored
/// indicator input).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimInput<'a> {
    org: &'a str,
    month: Cow<'a, str>,
    amount: i64,
    said_in_county: bool,
}

/// `None` when the Claim counts nothing (not active, tied to an Encounter,
/// no provider or date, money the rules refuse).
fn claim_input<J: Doc>(v: &J) -> Option<ClaimInput<'_>> {
    if v.get("status").and_then(J::as_str) != Some("active") || claim_linked(v) {
        return None;
    }
    let org = ref_id(v, "provider", "Organization")?;
    let month = month_of(claim_date(v)?)?;
    let total = v.get("total")?;
    if !is_cny(total) {
        return None;
    }
    Some(ClaimInput {
        org,
        month: Cow::Owned(month),
        amount: money(total, &"结算金额").ok()?.0,
        said_in_county: said_in_county(v),
    })
}

fn claim_facts(c: &ClaimInput<'_>, ctx: &Context<'_>, out: &mut Out) {
    let (org, month, amount) = (c.org, &*c.month, c.amount);
    let facts = (ctx.org)(org);
    let facts = facts.as_ref();
    let in_county = in_county(c.said_in_county, facts);
    out.add("claims", org, month, 1);
    out.add("claim_amount", org, month, amount);
    if in_county {
        out.add("fund_paid", org, month, amount);
    }
    enrollee_money(out, ctx, facts, in_county, month, amount);
}

// ---------------------------------------------------------------------------
// Stored indicator inputs
// ---------------------------------------------------------------------------

/// The format of [`input_of`]'s lines; stored inputs of another format are
/// rebuilt from the resources. Bump it with any change to what the lines hold
/// or to how [`encounter_input`] and [`claim_input`] read a resource.
pub const INPUT_FORMAT: u32 = 2;

/// The indicator input of an Encounter or Claim: one short line with exactly
/// what its rules read (empty when it counts nothing), so that a full
/// recompute reads a few dozen bytes per resource instead of its JSON and
/// runs the same rules ([`contributions_of_input`]). `None` for other types.
///
/// Encounter: `care|start|end|drugs|consumables|exams|services|insurance|in-county|dx|org`
/// (care `V` visit or `S` stay; dates as days from the common era, local;
/// money in fen; the organisation last, so that it may hold any character).
/// Claim: `month|amount|in-county|org`.
fn input_of<J: Doc>(rtype: &str, body: &J) -> Option<String> {
    use std::fmt::Write;
    let mut line = String::new();
    if body.get("resourceType").and_then(J::as_str) != Some(rtype) {
        return matches!(rtype, "Encounter" | "Claim").then_some(line);
    }
    match rtype {
        "Encounter" => {
            if let Some(e) = encounter_input(body) {
                let c = e.charges;
                let _ = write!(
                    line,
                    "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    if e.care == Care::Visit { 'V' } else { 'S' },
                    e.start.num_days_from_ce(),
                    e.end
                        .map(|d| d.num_days_from_ce().to_string())
                        .unwrap_or_default(),
                    c.drugs,
                    c.consumables,
                    c.exams,
                    c.services,
                    c.insurance,
                    u8::from(e.said_in_county),
                    e.dx.as_deref().unwrap_or(""),
                    e.org
                );
            }
        }
        "Claim" => {
            if let Some(c) = claim_input(body) {
                let _ = write!(
                    line,
                    "{}|{}|{}|{}",
                    c.month,
                    c.amount,
                    u8::from(c.said_in_county),
                    c.org
                );
            }
        }
        _ => return None,
    }
    Some(line)
}

/// The indicator input of any resource given as serde_json's value: the
/// line of [`input_of`] for an Encounter or Claim; for a Task,
/// DiagnosticReport or ServiceRequest a small JSON object with what the task
/// and report rules read of it (empty when it counts nothing); `None` for
/// other types.
pub(crate) fn input_of_json(rtype: &str, body: &Json) -> Option<String> {
    if matches!(rtype, "Encounter" | "Claim") {
        return input_of(rtype, body);
    }
    if !has_input_line(rtype) {
        return None;
    }
    if body.get("resourceType").and_then(Json::as_str) != Some(rtype) {
        return Some(String::new());
    }
    let line = match rtype {
        "Task" => task_input(body).map(|t| serde_json::to_string(&t)),
        "DiagnosticReport" => report_input(body).map(|r| serde_json::to_string(&r)),
        _ => request_input(body).map(|r| serde_json::to_string(&r)),
    };
    Some(line.and_then(Result::ok).unwrap_or_default())
}

/// [`input_of_json`] from a resource's stored JSON text (rebuilding the
/// inputs; Encounters and Claims parsed by sonic-rs); an empty line when the
/// text is not JSON.
pub(crate) fn input_of_text(rtype: &str, text: &str) -> Option<String> {
    if !has_input_line(rtype) {
        return None;
    }
    if matches!(rtype, "Encounter" | "Claim") {
        return match sonic_rs::from_str::<sonic_rs::Value>(text) {
            Ok(v) => input_of(rtype, &v),
            Err(_) => Some(String::new()),
        };
    }
    match serde_json::from_str::<Json>(text) {
        Ok(v) => input_of_json(rtype, &v),
        Err(_) => Some(String::new()),
    }
}

/// Whether [`input_of_json`] gives this type a line.
pub(crate) fn has_input_line(rtype: &str) -> bool {
    matches!(
        rtype,
        "Encounter" | "Claim" | "Task" | "DiagnosticReport" | "ServiceRequest"
    )
}

/// The order (ServiceRequest id) a Task's or DiagnosticReport's input line
/// refers to.
pub(crate) fn input_request(rtype: &str, line: &str) -> Option<String> {
    match rtype {
        "Task" => serde_json::from_str::<TaskInput>(line).ok()?.request,
        "DiagnosticReport" => serde_json::from_str::<ReportInput>(line).ok()?.request,
        _ => None,
    }
    .map(Cow::into_owned)
}

fn decode_encounter(line: &str) -> Option<EncounterInput<'_>> {
    let mut f = line.splitn(11, '|');
    let mut next = || f.next();
    let care = match next()? {
        "V" => Care::Visit,
        "S" => Care::Stay,
        _ => return None,
    };
    let day = |t: &str| NaiveDate::from_num_days_from_ce_opt(t.parse().ok()?);
    let start = day(next()?)?;
    let end = match next()? {
        "" => None,
        t => Some(day(t)?),
    };
    let mut money = [0i64; 5];
    for m in &mut money {
        *m = next()?.parse().ok()?;
    }
    let said_in_county = next()? == "1";
    let dx = Some(next()?).filter(|d| !d.is_empty()).map(Cow::Borrowed);
    Some(EncounterInput {
        care,
        start,
        end,
        charges: Charges {
            drugs: money[0],
            consumables: money[1],
            exams: money[2],
            services: money[3],
            insurance: money[4],
        },
        said_in_county,
        dx,
        org: next()?,
    })
}

fn decode_claim(line: &str) -> Option<ClaimInput<'_>> {
    let mut f = line.splitn(4, '|');
    Some(ClaimInput {
        month: Cow::Borrowed(f.next()?),
        amount: f.next()?.parse().ok()?,
        said_in_county: f.next()? == "1",
        org: f.next()?,
    })
}

fn parse_request(line: &str) -> Option<RequestInput<'_>> {
    serde_json::from_str(line).ok()
}

/// The facts of a resource from its stored input line ([`input_of_json`]):
/// exactly those [`contributions`] gives for the resource. `request` gives
/// the input line of an order (by id), for tasks and reports.
pub(crate) fn contributions_of_input(
    rtype: &str,
    line: &str,
    request: &dyn Fn(&str) -> Option<String>,
    ctx: &Context<'_>,
    sink: &mut Sink<'_>,
) {
    let mut out = Out { sink };
    let order = |id: Option<&str>| id.and_then(request);
    match rtype {
        "Encounter" => {
            if let Some(e) = decode_encounter(line) {
                encounter_facts(&e, ctx, &mut out);
            }
        }
        "Claim" => {
            if let Some(c) = decode_claim(line) {
                claim_facts(&c, ctx, &mut out);
            }
        }
        "Task" => {
            if let Ok(t) = serde_json::from_str::<TaskInput>(line) {
                let line = order(t.request.as_deref());
                let r = line.as_deref().and_then(parse_request);
                task_facts(&t, r.as_ref(), ctx, &mut out);
            }
        }
        "DiagnosticReport" => {
            if let Ok(d) = serde_json::from_str::<ReportInput>(line) {
                let line = order(d.request.as_deref());
                let r = line.as_deref().and_then(parse_request);
                report_facts(&d, r.as_ref(), ctx, &mut out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// DiagnosticReport
// ---------------------------------------------------------------------------

fn centre_of_category(code: &str) -> Option<CentreKind> {
    Some(match code {
        "RAD" | "CT" | "NMR" | "NMS" | "US" | "RX" | "VUS" | "XRC" | "OUS" => CentreKind::Imaging,
        "EC" | "CG" => CentreKind::Ecg,
        "LAB" | "HM" | "CH" | "MB" | "SR" | "IMM" | "BLB" | "MCB" | "VR" | "SER" | "TX" | "CUS" => {
            CentreKind::Lab
        }
        "PAT" | "SP" | "CP" => CentreKind::Pathology,
        _ => return None,
    })
}

fn report_kind(v: &Json) -> Option<CentreKind> {
    if let Some(item) = codes(v.get("code"), yigong_care::codes::CS_EXAM_ITEM).find_map(exams::item)
    {
        return Some(item.kind);
    }
    v.get("category")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| codes(Some(c), yigong_care::codes::CS_V2_0074))
        .find_map(centre_of_category)
}

/// What the report and task rules read from the order (ServiceRequest) a
/// report answers or a task tracks; also the order's stored indicator input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RequestInput<'a> {
    #[serde(borrow)]
    flow: Cow<'a, str>,
    #[serde(borrow)]
    requester: Option<Cow<'a, str>>,
    out_of_county: bool,
    #[serde(borrow)]
    direction: Option<Cow<'a, str>>,
    #[serde(borrow)]
    item: Option<Cow<'a, str>>,
}

fn request_input(r: &Json) -> Option<RequestInput<'static>> {
    let r = yigong_care::requests::read(r).ok().flatten()?;
    Some(RequestInput {
        flow: Cow::Borrowed(r.flow.code()),
        requester: r.requester_org.map(Cow::Owned),
        out_of_county: r.out_of_county,
        direction: r.direction.map(Cow::Owned),
        item: r.item.map(Cow::Owned),
    })
}

/// The id of the order (ServiceRequest) a report answers (`basedOn`) or a
/// task tracks (`focus`).
pub fn request_id<'a>(rtype: &str, v: &'a Json) -> Option<&'a str> {
    let r = match rtype {
        "DiagnosticReport" => v.get("basedOn")?.get(0)?,
        "Task" => v.get("focus")?,
        _ => return None,
    };
    r.get("reference")?
        .as_str()?
        .strip_prefix("ServiceRequest/")
}

/// What the report rules read from a signed DiagnosticReport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReportInput<'a> {
    #[serde(borrow)]
    component: Cow<'a, str>,
    #[serde(borrow)]
    org: Cow<'a, str>,
    #[serde(borrow)]
    month: Cow<'a, str>,
    #[serde(borrow)]
    request: Option<Cow<'a, str>>,
}

fn report_input(v: &Json) -> Option<ReportInput<'_>> {
    let status = v.get("status").and_then(Json::as_str);
    if !matches!(status, Some("final" | "amended" | "corrected" | "appended")) {
        return None;
    }
    let kind = report_kind(v)?;
    let org = v
        .get("performer")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .find_map(|p| {
            let r = p.get("reference")?.as_str()?;
            let (t, id) = yigong_fhir::extract::parse_reference(r)?;
            (t == "Organization").then_some(id)
        })
        .or_else(|| {
            let r = ext(v, EXT_RECORDED_AT)?.get("valueReference")?;
            let (t, id) = yigong_fhir::extract::parse_reference(r.get("reference")?.as_str()?)?;
            (t == "Organization").then_some(id)
        })?;
    let when = s(v, &["issued"])
        .or_else(|| s(v, &["effectiveDateTime"]))
        .or_else(|| s(v, &["effectivePeriod", "end"]))?;
    let component = match kind {
        CentreKind::Imaging => "reports_imaging",
        CentreKind::Ecg => "reports_ecg",
        CentreKind::Lab => "reports_lab",
        CentreKind::Pathology => "reports_pathology",
    };
    Some(ReportInput {
        component: Cow::Borrowed(component),
        org: Cow::Borrowed(org),
        month: Cow::Owned(month_of(when)?),
        request: request_id("DiagnosticReport", v).map(Cow::Borrowed),
    })
}

fn report_facts(
    r: &ReportInput<'_>,
    request: Option<&RequestInput<'_>>,
    ctx: &Context<'_>,
    out: &mut Out,
) {
    out.add(&r.component, &r.org, &r.month, 1);
    if r.component == "reports_ecg"
        && let Some(requester) = request.and_then(|q| q.requester.as_deref())
        && (ctx.org)(requester).and_then(|f| f.tier) == Some(Tier::Village)
    {
        out.add("ecg_reports_village", requester, &r.month, 1);
    }
}

// ---------------------------------------------------------------------------
// Task
// ---------------------------------------------------------------------------

fn minutes_between(a: &str, b: &str) -> Option<(i64, DateTime<FixedOffset>)> {
    let a = parse_time(a)?;
    let b = parse_time(b)?;
    let m = (b - a).num_minutes();
    (m >= 0).then_some((m, b))
}

/// What the task rules read from a referral or exam Task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TaskInput<'a> {
    #[serde(borrow)]
    flow: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    #[serde(borrow)]
    requester: Cow<'a, str>,
    #[serde(borrow)]
    owner: Cow<'a, str>,
    #[serde(borrow)]
    authored: Option<Cow<'a, str>>,
    /// When it was requested (the step, else when authored).
    #[serde(borrow)]
    requested: Option<Cow<'a, str>>,
    /// The first accepted or rejected step.
    #[serde(borrow)]
    responded: Option<Cow<'a, str>>,
    /// The last reported step.
    #[serde(borrow)]
    reported: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<Cow<'a, str>>,
}

fn task_input(v: &Json) -> Option<TaskInput<'_>> {
    let t = yigong_care::task::read(v).ok()??;
    if !matches!(t.flow, Flow::Referral | Flow::Exam) {
        return None;
    }
    let steps = yigong_care::task::steps(v);
    let at = |found: Option<&(String, String)>| found.map(|(_, at)| Cow::Owned(at.clone()));
    let requested = at(steps.iter().find(|(s, _)| s == "requested"))
        .or_else(|| t.authored.clone().map(Cow::Owned));
    Some(TaskInput {
        flow: Cow::Borrowed(t.flow.code()),
        requester: Cow::Owned(t.requester?),
        owner: Cow::Owned(t.owner?),
        state: Cow::Owned(t.state),
        authored: t.authored.map(Cow::Owned),
        requested,
        responded: at(steps
            .iter()
            .find(|(s, _)| s == "accepted" || s == "rejected")),
        reported: at(steps.iter().rev().find(|(s, _)| s == "reported")),
        request: request_id("Task", v).map(Cow::Borrowed),
    })
}

fn task_facts(
    t: &TaskInput<'_>,
    request: Option<&RequestInput<'_>>,
    ctx: &Context<'_>,
    out: &mut Out,
) -> Option<()> {
    let (requester, owner) = (&*t.requester, &*t.owner);
    let requested_at = t.requested.as_deref();
    let request = request.filter(|r| r.flow == t.flow);
    match Flow::from_code(&t.flow)? {
        Flow::Referral => {
            let counted = matches!(
                &*t.state,
                "accepted" | "scheduled" | "arrived" | "completed"
            );
            let out_of_county = match request {
                Some(r) => r.out_of_county,
                None => requester == owner,
            };
            let direction = if out_of_county {
                Some("out")
            } else if let Some(d) = request.and_then(|r| r.direction.as_deref()) {
                Some(if d == "up" { "up" } else { "down" })
            } else {
                let level = |o: &str| (ctx.org)(o).and_then(|f| f.tier).map(Tier::level);
                match (level(requester), level(owner)) {
                    (Some(a), Some(b)) if b > a => Some("up"),
                    (Some(a), Some(b)) if b < a => Some("down"),
                    _ => None,
                }
            };
            if counted
                && let Some(dir) = direction
                && let Some(month) = t.authored.as_deref().or(requested_at).and_then(month_of)
            {
                let c = match dir {
                    "up" => "referrals_up",
                    "down" => "referrals_down",
                    _ => "referrals_out_of_county",
                };
                out.add(c, requester, &month, 1);
            }
            if !out_of_county
                && let Some(from) = requested_at
                && let Some(at) = t.responded.as_deref()
                && let Some((minutes, when)) = minutes_between(from, at)
            {
                let month = month_str(local_date(when));
                out.add("referral_responses", owner, &month, 1);
                out.add("referral_response_minutes", owner, &month, minutes);
            }
        }
        Flow::Exam if t.state == "reported" => {
            let from = requested_at?;
            let (minutes, when) = minutes_between(from, t.reported.as_deref()?)?;
            let month = month_str(local_date(when));
            out.add("exam_tat_count", owner, &month, 1);
            out.add("exam_tat_minutes", owner, &month, minutes);
            match request
                .and_then(|r| r.item.as_deref())
                .and_then(exams::item)
                .map(|i| i.kind)
            {
                Some(CentreKind::Imaging) => {
                    out.add("imaging_tat_count", owner, &month, 1);
                    out.add("imaging_tat_minutes", owner, &month, minutes);
                }
                Some(CentreKind::Ecg) => {
                    out.add("ecg_tat_count", owner, &month, 1);
                    out.add("ecg_tat_minutes", owner, &month, minutes);
                }
                _ => {}
            }
        }
        _ => {}
    }
    Some(())
}

// ---------------------------------------------------------------------------
// PractitionerRole
// ---------------------------------------------------------------------------

fn secondment(v: &Json, ctx: &Context<'_>, out: &mut Out) -> Option<()> {
    if v.get("active").and_then(Json::as_bool) == Some(false) {
        return None;
    }
    let flagged = ext(v, EXT_SECONDMENT)
        .and_then(|e| e.get("valueBoolean"))
        .and_then(Json::as_bool)
        == Some(true);
    let physician = v
        .get("code")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .any(|c| codes(Some(c), CS_PRACTITIONER_ROLE).any(|code| code == "physician"));
    if !flagged || !physician {
        return None;
    }
    let org = ref_id(v, "organization", "Organization")?;
    if !(ctx.org)(org)
        .and_then(|f| f.in_county.then_some(f.tier).flatten())
        .is_some_and(Tier::is_primary)
    {
        return None;
    }
    let start = local_date(parse_time(s(v, &["period", "start"])?)?);
    let span = match s(v, &["period", "end"]) {
        Some(e) => {
            let end = local_date(parse_time(e)?);
            if end < start {
                return None;
            }
            months_between(start, end) + 1
        }
        None => OPEN_SECONDMENT_MONTHS,
    }
    .min(MAX_SECONDMENT_MONTHS);
    for i in 0..span {
        let m = add_months(start, i)?;
        out.add("seconded_physician_months", org, &month_str(m), 1);
    }
    Some(())
}

// ---------------------------------------------------------------------------
// The two entry points
// ---------------------------------------------------------------------------

/// What one stored resource contributes to the components. Deterministic and
/// pure; never panics. Types without indicators (and resources that would fail
/// [`check`]'s money rules) contribute nothing. Facts of the same key are not
/// merged (use [`delta`]).
pub fn contributions(rtype: &str, body: &Json, ctx: &Context<'_>) -> Vec<Fact> {
    let mut facts = Vec::new();
    contributions_each(rtype, body, ctx, &mut |component, org, month, value| {
        facts.push(Fact {
            component: Cow::Owned(component.to_string()),
            org: org.to_string(),
            month: month.to_string(),
            value,
        })
    });
    facts
}

/// [`contributions`], each fact handed to `sink` as it is found (nothing
/// allocated per fact): the full recompute's form.
pub fn contributions_each(rtype: &str, body: &Json, ctx: &Context<'_>, sink: &mut Sink<'_>) {
    let mut out = Out { sink };
    if body.get("resourceType").and_then(Json::as_str) == Some(rtype) {
        let _ = match rtype {
            "Encounter" => encounter_input(body).map(|e| encounter_facts(&e, ctx, &mut out)),
            "Claim" => claim_input(body).map(|c| claim_facts(&c, ctx, &mut out)),
            "DiagnosticReport" => report_input(body).map(|r| {
                let request = ctx.request.and_then(request_input);
                report_facts(&r, request.as_ref(), ctx, &mut out)
            }),
            "Task" => task_input(body).and_then(|t| {
                let request = ctx.request.and_then(request_input);
                task_facts(&t, request.as_ref(), ctx, &mut out)
            }),
            "PractitionerRole" => secondment(body, ctx, &mut out),
            _ => None,
        };
    }
}

fn not_future(
    v: &Json,
    path: &[&str],
    now: DateTime<Utc>,
    what: &str,
) -> Result<Option<DateTime<FixedOffset>>, String> {
    let Some(text) = s(v, path) else {
        return Ok(None);
    };
    let t = parse_time(text).ok_or_else(|| format!("{what}“{text}”格式错误"))?;
    if t.with_timezone(&Utc) > now + chrono::Duration::minutes(FUTURE_TOLERANCE_MIN) {
        return Err(format!("{what}（{text}）晚于当前时间，不能登记未来的业务"));
    }
    Ok(Some(t))
}

/// The indicator rules a resource must meet before the store writes it
/// (Chinese message on refusal): Encounter charges and Claim totals are
/// non-negative amounts in CNY with at most two decimals and at most ¥1e9
/// each, insurance-paid is not above the total, and visit / admission /
/// discharge / claim dates are not in the future (`now` is the server's
/// clock; five minutes of tolerance). Other types pass.
pub fn check(rtype: &str, body: &Json, now: DateTime<Utc>) -> Result<(), String> {
    match rtype {
        "Encounter" => {
            encounter_charges(body)?;
            let start = not_future(body, &["period", "start"], now, "就诊（入院）时间")?;
            let end = not_future(body, &["period", "end"], now, "出院（结束）时间")?;
            if let (Some(s), Some(e)) = (start, end)
                && e < s
            {
                return Err("出院（结束）时间早于入院（开始）时间".into());
            }
            Ok(())
        }
        "Claim" => {
            if let Some(total) = body.get("total") {
                if is_cny(total) {
                    money(total, &"结算金额")?;
                } else {
                    // Foreign-currency claims (e.g. imported Synthea records)
                    // never count, but a negative or absurd amount is still refused.
                    let text = total.get("value").map(Json::to_string).unwrap_or_default();
                    if text.starts_with('-') {
                        return Err(format!("结算金额不能为负数（收到 {text}）"));
                    }
                    if total
                        .get("value")
                        .and_then(Json::as_f64)
                        .is_some_and(|v| v > 1e9)
                    {
                        return Err(format!("结算金额超出合理范围（收到 {text}）"));
                    }
                }
            } else if body.get("status").and_then(Json::as_str) == Some("active") {
                return Err("医保结算单（Claim）必须给出结算金额 total".into());
            }
            not_future(body, &["billablePeriod", "start"], now, "结算期间开始日期")?;
            not_future(body, &["created"], now, "结算单创建时间")?;
            Ok(())
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// The catalogue
// ---------------------------------------------------------------------------

/// The groups of the 2024 monitoring set, plus the operations centre's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// 紧密度 (tightness).
    Tightness,
    /// 同质化 (homogeneity).
    Homogeneity,
    /// 分工协作 (division of labour).
    Division,
    /// 医疗卫生资源利用效率 (efficiency).
    Efficiency,
    /// 健康水平 (health).
    Health,
    /// 运营管理 (operations).
    Operations,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::Tightness,
        Group::Homogeneity,
        Group::Division,
        Group::Efficiency,
        Group::Health,
        Group::Operations,
    ];
    pub fn code(self) -> &'static str {
        match self {
            Group::Tightness => "tightness",
            Group::Homogeneity => "homogeneity",
            Group::Division => "division",
            Group::Efficiency => "efficiency",
            Group::Health => "health",
            Group::Operations => "operations",
        }
    }
    pub fn from_code(s: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.code() == s)
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            Group::Tightness => "紧密度",
            Group::Homogeneity => "同质化",
            Group::Division => "分工协作",
            Group::Efficiency => "资源利用效率",
            Group::Health => "健康水平",
            Group::Operations => "运营管理",
        }
    }
}

/// The subject levels an indicator is shown for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    County,
    Community,
    Institution,
}

impl Level {
    pub fn code(self) -> &'static str {
        match self {
            Level::County => "county",
            Level::Community => "community",
            Level::Institution => "institution",
        }
    }
    fn from_code(s: &str) -> Option<Level> {
        [Level::County, Level::Community, Level::Institution]
            .into_iter()
            .find(|l| l.code() == s)
    }
}

/// A comparison with another period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Growth against the same period a year earlier (同比增幅):
    /// `(now − before) / before`, of the base figure the components define.
    PreviousYear,
}

/// One indicator with its written definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Indicator {
    /// Stable snake_case id.
    pub id: String,
    /// Chinese name.
    pub name: String,
    pub group: Group,
    /// Definition texts (Chinese).
    pub numerator: String,
    pub denominator: String,
    pub inclusion: String,
    pub source_data: String,
    pub period: String,
    /// Unit of the score: `Permille` / `Bp` for shares, ratios and growth;
    /// `Count` for sums and averages in the components' kind.
    pub unit: Unit,
    /// For `Count` scores: the score is the figure × 10^decimals (fen-based
    /// figures are always in fen, decimals 2, shown as yuan). For a growth
    /// indicator: the decimals of its base figure.
    pub decimals: u32,
    /// What a `Count` score is shown with (人次, 元, 天 …).
    pub unit_label: String,
    /// In the unit; `None` when there is no published target.
    pub target: Option<i64>,
    pub direction: Direction,
    pub numerator_components: Vec<String>,
    /// Empty = a plain sum (or count).
    pub denominator_components: Vec<String>,
    pub compare: Option<Compare>,
    pub levels: Vec<Level>,
    /// False when the platform has no data to compute it (the definition says why).
    pub available: bool,
    pub note: String,
    /// The public document the definition follows.
    pub source: String,
}

/// Components counted within others: the numerator of a proportion is a
/// part of its denominator.
const PART_OF: &[(&str, &[&str])] = &[
    ("visits_primary", &["visits_in_county"]),
    ("visits_tcm", &["visits_in_county"]),
    ("visits_dx:*", &["visits_in_county"]),
    ("discharges_dx:*", &["discharges_in_county"]),
    ("enrollee_admissions_in_county", &["enrollee_admissions"]),
    (
        "enrollee_fund_primary",
        &["enrollee_fund_inside", "enrollee_fund_county"],
    ),
    ("rx_intervened", &["rx_reviewed"]),
];

fn is_part(num: &[String], den: &[String]) -> bool {
    !den.is_empty()
        && num.iter().all(|c| {
            den.contains(c)
                || PART_OF
                    .iter()
                    .any(|(p, whole)| p == c && whole.iter().all(|w| den.iter().any(|d| d == w)))
        })
}

impl Indicator {
    /// A share whose numerator is counted within its denominator (0–100%),
    /// as opposed to a ratio of two different quantities.
    pub fn is_proportion(&self) -> bool {
        matches!(self.unit, Unit::Permille | Unit::Bp)
            && self.compare.is_none()
            && is_part(&self.numerator_components, &self.denominator_components)
    }
    /// The kind of the numerator's components (all the same, checked on parse).
    pub fn numerator_kind(&self) -> Kind {
        self.numerator_components
            .first()
            .and_then(|c| component_kind(c))
            .unwrap_or(Kind::Count)
    }
    /// The kind of the denominator's components, `None` for a plain sum.
    pub fn denominator_kind(&self) -> Option<Kind> {
        self.denominator_components
            .first()
            .and_then(|c| component_kind(c))
    }
    /// The family of a ranking indicator (`visits_dx` for `visits_dx:*`).
    pub fn family(&self) -> Option<&str> {
        self.numerator_components
            .iter()
            .find_map(|c| c.strip_suffix(":*"))
    }
    /// Shows a score for people: shares as "82.1%", money as "¥8123.45",
    /// other figures with their decimals and unit label; `None` as "无数据".
    pub fn format(&self, score: Option<i64>) -> String {
        let Some(v) = score else {
            return "无数据".to_string();
        };
        match self.unit {
            Unit::Permille | Unit::Bp => self.unit.format(v),
            Unit::Count => {
                let text = decimal(v, self.decimals);
                if self.numerator_kind() == Kind::Fen && self.compare.is_none() {
                    format!("¥{text}")
                } else if self.unit_label.is_empty() {
                    text
                } else {
                    format!("{text} {}", self.unit_label)
                }
            }
        }
    }
    /// Whether a score meets the target (`None` without a target or a score).
    pub fn meets_target(&self, score: Option<i64>) -> Option<bool> {
        Some(self.direction.meets(score?, self.target?))
    }
}

/// `v / 10^decimals` as exact decimal text ("-12.05").
pub fn decimal(v: i64, decimals: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{a}");
    }
    let p = 10u64.pow(decimals);
    format!(
        "{sign}{}.{:0width$}",
        a / p,
        a % p,
        width = decimals as usize
    )
}

/// Why a catalogue file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("指标目录文件格式错误：{0}")]
    Format(String),
    #[error("指标目录文件的 schema 版本为 {0}，本程序只支持 {SCHEMA}")]
    Schema(u32),
    #[error("指标编号“{0}”重复")]
    Duplicate(String),
    #[error("指标 {id}：{reason}")]
    Indicator { id: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    schema: u32,
    version: String,
    title: String,
    #[serde(default)]
    note: String,
    indicators: Vec<RawIndicator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    id: String,
    name: String,
    group: String,
    numerator: String,
    #[serde(default)]
    denominator: String,
    inclusion: String,
    source_data: String,
    period: String,
    unit: String,
    #[serde(default)]
    decimals: Option<u32>,
    #[serde(default)]
    unit_label: String,
    #[serde(default)]
    target: Option<Json>,
    direction: String,
    #[serde(default)]
    numerator_components: Vec<String>,
    #[serde(default)]
    denominator_components: Vec<String>,
    #[serde(default)]
    compare: Option<String>,
    levels: Vec<String>,
    #[serde(default = "yes")]
    available: bool,
    #[serde(default)]
    note: String,
    source: String,
}

fn yes() -> bool {
    true
}

/// The indicators with their definitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    pub version: String,
    pub title: String,
    pub note: String,
    indicators: Vec<Indicator>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

fn snake_case(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('_')
        && !s.contains("__")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_components(id: &str, list: &[String], side: &str) -> Result<Option<Kind>, CatalogueError> {
    let err = |reason: String| CatalogueError::Indicator {
        id: id.to_string(),
        reason,
    };
    let mut kind = None;
    let mut seen = BTreeSet::new();
    for c in list {
        let k = component_kind(c)
            .filter(|_| !c.contains(':') || c.ends_with(":*"))
            .ok_or_else(|| err(format!("{side}的组成项“{c}”未定义（见 components()）")))?;
        if !seen.insert(c.as_str()) {
            return Err(err(format!("{side}的组成项“{c}”重复")));
        }
        if kind.is_some_and(|k0| k0 != k) {
            return Err(err(format!(
                "{side}的组成项单位不一致（“{c}”与前面的项不能相加）"
            )));
        }
        kind = Some(k);
    }
    Ok(kind)
}

fn check_indicator(r: RawIndicator) -> Result<Indicator, CatalogueError> {
    let id = r.id.clone();
    let err = |reason: String| CatalogueError::Indicator {
        id: id.clone(),
        reason,
    };
    if !snake_case(&r.id) {
        return Err(err(
            "编号须为小写字母开头的 snake_case（小写字母、数字、下划线，最长 64）".into(),
        ));
    }
    for (name, v) in [
        ("name", &r.name),
        ("numerator", &r.numerator),
        ("inclusion", &r.inclusion),
        ("source_data", &r.source_data),
        ("period", &r.period),
        ("source", &r.source),
    ] {
        if v.trim().is_empty() {
            return Err(err(format!("定义字段 {name} 不能为空")));
        }
    }
    let group = Group::from_code(&r.group).ok_or_else(|| {
        err(format!(
            "分组“{}”无效（只能是 {}）",
            r.group,
            Group::ALL.map(Group::code).join("、")
        ))
    })?;
    let unit = Unit::from_name(&r.unit).ok_or_else(|| {
        err(format!(
            "单位“{}”无效（只能是 permille、bp 或 count）",
            r.unit
        ))
    })?;
    let direction = match r.direction.as_str() {
        "higher_is_better" => Direction::HigherIsBetter,
        "lower_is_better" => Direction::LowerIsBetter,
        d => {
            return Err(err(format!(
                "方向“{d}”无效（只能是 higher_is_better 或 lower_is_better）"
            )));
        }
    };
    let compare = match r.compare.as_deref() {
        None => None,
        Some("previous_year") => Some(Compare::PreviousYear),
        Some(c) => return Err(err(format!("比较方式“{c}”无效（只能是 previous_year）"))),
    };
    let mut levels = Vec::new();
    for l in &r.levels {
        let level = Level::from_code(l).ok_or_else(|| {
            err(format!(
                "层级“{l}”无效（只能是 county、community 或 institution）"
            ))
        })?;
        if levels.contains(&level) {
            return Err(err(format!("层级“{l}”重复")));
        }
        levels.push(level);
    }
    levels.sort();
    if levels.is_empty() {
        return Err(err("至少要有一个统计层级 levels".into()));
    }
    let target = match &r.target {
        None | Some(Json::Null) => None,
        Some(t) => Some(t.as_i64().ok_or_else(|| {
            err(format!(
                "目标值 {t} 不是整数（须为以 {} 为单位的整数，如 85% 写作 permille 850）",
                unit.name()
            ))
        })?),
    };

    if r.decimals.is_some_and(|d| d > 3) {
        return Err(err("decimals 过大（最多 3）".into()));
    }
    if !r.available {
        if !r.numerator_components.is_empty() || !r.denominator_components.is_empty() {
            return Err(err(
                "不可计算的指标（available: false）不能列出组成项".into()
            ));
        }
        if r.note.trim().is_empty() {
            return Err(err("不可计算的指标须在 note 中说明缺少哪些数据".into()));
        }
        return Ok(Indicator {
            id: r.id,
            name: r.name,
            group,
            numerator: r.numerator,
            denominator: r.denominator,
            inclusion: r.inclusion,
            source_data: r.source_data,
            period: r.period,
            unit,
            decimals: r.decimals.unwrap_or(0),
            unit_label: r.unit_label,
            target,
            direction,
            numerator_components: vec![],
            denominator_components: vec![],
            compare,
            levels,
            available: false,
            note: r.note,
            source: r.source,
        });
    }

    if r.numerator_components.is_empty() {
        return Err(err("分子组成项 numerator_components 不能为空".into()));
    }
    let nk = check_components(&r.id, &r.numerator_components, "分子")?.unwrap_or(Kind::Count);
    let dk = check_components(&r.id, &r.denominator_components, "分母")?;
    let families = r
        .numerator_components
        .iter()
        .filter(|c| c.ends_with(":*"))
        .count();
    if families > 0 && (r.numerator_components.len() != 1 || dk.is_none()) {
        return Err(err(
            "排名类指标的分子只能是一个组成项族（如 visits_dx:*），且必须有分母".into(),
        ));
    }
    if r.denominator_components.iter().any(|c| c.ends_with(":*")) {
        return Err(err("分母不能是组成项族".into()));
    }
    if dk.is_some() && r.denominator.trim().is_empty() {
        return Err(err("有分母组成项时，分母定义 denominator 不能为空".into()));
    }
    let basis = |list: &[String]| {
        list.iter()
            .filter_map(|c| component_basis(c))
            .collect::<BTreeSet<_>>()
    };
    if basis(&r.numerator_components).len() > 1 || basis(&r.denominator_components).len() > 1 {
        return Err(err(
            "同一分子（或分母）不能混用按机构计与按参保人所属医共体计的组成项".into(),
        ));
    }
    if basis(&r.numerator_components)
        .union(&basis(&r.denominator_components))
        .any(|b| *b == Basis::Enrollee)
        && levels.contains(&Level::Institution)
    {
        return Err(err(
            "按参保人所属医共体计的指标不能在机构层级统计（levels 不能含 institution）".into(),
        ));
    }
    let decimals = match (unit, compare, nk) {
        (Unit::Permille | Unit::Bp, None, _) => {
            if dk.is_none() {
                return Err(err("占比或比值（permille / bp）必须有分母组成项".into()));
            }
            if r.decimals.is_some_and(|d| d != 0) {
                return Err(err("占比或比值不设 decimals（由单位决定）".into()));
            }
            0
        }
        (Unit::Count, Some(_), _) => {
            return Err(err("同比增幅指标的单位须为 permille 或 bp".into()));
        }
        (_, _, Kind::Fen) => {
            if r.decimals.is_some_and(|d| d != 2) {
                return Err(err(
                    "以金额为分子的数值以分为单位、按元显示，decimals 只能是 2".into(),
                ));
            }
            2
        }
        (_, _, _) => {
            let d = r.decimals.unwrap_or(0);
            if d > 3 {
                return Err(err(format!("decimals = {d} 过大（最多 3）")));
            }
            if dk.is_none() && d != 0 {
                return Err(err("合计类指标（无分母）不设 decimals".into()));
            }
            d
        }
    };
    if let Some(t) = target {
        let (lo, hi) = match (unit, compare) {
            (Unit::Permille | Unit::Bp, None)
                if is_part(&r.numerator_components, &r.denominator_components) =>
            {
                unit.range()
            }
            (Unit::Permille | Unit::Bp, None) => (0, i64::MAX),
            _ => (i64::MIN, i64::MAX),
        };
        if t < lo || t > hi {
            return Err(err(format!("目标值 {t} 超出单位范围 {lo}–{hi}")));
        }
    }
    Ok(Indicator {
        id: r.id,
        name: r.name,
        group,
        numerator: r.numerator,
        denominator: r.denominator,
        inclusion: r.inclusion,
        source_data: r.source_data,
        period: r.period,
        unit,
        decimals,
        unit_label: r.unit_label,
        target,
        direction,
        numerator_components: r.numerator_components,
        denominator_components: r.denominator_components,
        compare,
        levels,
        available: true,
        note: r.note,
        source: r.source,
    })
}

impl Catalogue {
    /// Parses and checks a catalogue: schema, unique snake_case ids, known
    /// groups, units, directions and levels, components that exist and can be
    /// added (one kind per side, one basis per side), integer targets in the
    /// unit's range, and complete definition texts.
    pub fn parse(json: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue = serde_json::from_str(json).map_err(|e| {
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let text = text.strip_suffix(&suffix).unwrap_or(&text);
            CatalogueError::Format(format!("第 {} 行第 {} 列：{text}", e.line(), e.column()))
        })?;
        if raw.schema != SCHEMA {
            return Err(CatalogueError::Schema(raw.schema));
        }
        if raw.version.trim().is_empty() || raw.title.trim().is_empty() {
            return Err(CatalogueError::Format("version 和 title 不能为空".into()));
        }
        let mut indicators = Vec::with_capacity(raw.indicators.len());
        let mut index = HashMap::new();
        for r in raw.indicators {
            let ind = check_indicator(r)?;
            if index.insert(ind.id.clone(), indicators.len()).is_some() {
                return Err(CatalogueError::Duplicate(ind.id));
            }
            indicators.push(ind);
        }
        if indicators.is_empty() {
            return Err(CatalogueError::Format("至少要有一项指标".into()));
        }
        Ok(Catalogue {
            version: raw.version,
            title: raw.title,
            note: raw.note,
            indicators,
            index,
        })
    }

    /// The catalogue shipped with the crate (`data/indicators.json`).
    pub fn shipped() -> Catalogue {
        static SHIPPED_CAT: OnceLock<Catalogue> = OnceLock::new();
        SHIPPED_CAT
            .get_or_init(|| Catalogue::parse(SHIPPED).expect("the shipped catalogue is valid"))
            .clone()
    }

    pub fn get(&self, id: &str) -> Option<&Indicator> {
        self.index.get(id).map(|&i| &self.indicators[i])
    }

    /// Looks an indicator up by its FHIR Measure id (`primary-visit-share`).
    pub fn by_measure_id(&self, measure_id: &str) -> Option<&Indicator> {
        self.get(&measure_id.replace('-', "_"))
    }

    /// Every indicator in file order.
    pub fn all(&self) -> &[Indicator] {
        &self.indicators
    }

    /// Every component the catalogue's indicators read (families as `prefix:*`).
    pub fn used_components(&self) -> BTreeSet<&str> {
        self.indicators
            .iter()
            .flat_map(|i| {
                i.numerator_components
                    .iter()
                    .chain(&i.denominator_components)
            })
            .map(String::as_str)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// An indicator's figure for one subject and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Value {
    /// Sum of the numerator's components (for a growth indicator: the base
    /// figure of this period, in the base's unit).
    pub numerator: i64,
    /// Sum of the denominator's components; `None` for a plain sum (for a
    /// growth indicator: the base figure a year earlier).
    pub denominator: Option<i64>,
    /// In the indicator's unit; `None` when the denominator is zero
    /// ("无数据"), the indicator is not available, or the figure overflows.
    pub score: Option<i64>,
}

impl Value {
    pub const NONE: Value = Value {
        numerator: 0,
        denominator: None,
        score: None,
    };
}

fn total(list: &[String], sum: &dyn Fn(&str) -> i64) -> Option<i64> {
    list.iter().try_fold(0i64, |acc, c| acc.checked_add(sum(c)))
}

/// The base ratio `num × scale / den` of an indicator (exact, as a fraction).
fn base(ind: &Indicator, sum: &dyn Fn(&str) -> i64) -> Option<(i64, Option<i64>)> {
    let n = total(&ind.numerator_components, sum)?;
    if ind.denominator_components.is_empty() {
        Some((n, None))
    } else {
        Some((n, Some(total(&ind.denominator_components, sum)?)))
    }
}

fn scale(ind: &Indicator) -> i128 {
    match ind.unit {
        Unit::Permille => 1000,
        Unit::Bp => 10_000,
        Unit::Count if ind.numerator_kind() == Kind::Fen => 1,
        Unit::Count => 10i128.pow(ind.decimals),
    }
}

fn base_scale(ind: &Indicator) -> i128 {
    if ind.numerator_kind() == Kind::Fen {
        1
    } else {
        10i128.pow(ind.decimals)
    }
}

fn ratio(n: i64, d: Option<i64>, scale: i128) -> Option<i64> {
    let v = match d {
        None => i128::from(n).checked_mul(scale)?,
        Some(d) => div_half_even(i128::from(n).checked_mul(scale)?, i128::from(d))?,
    };
    i64::try_from(v).ok()
}

/// The indicator's figure from the sums of its components over the subject
/// and period (`sum("visits_dx:*")` must give the family total). A zero
/// denominator gives `score: None` ("无数据"). For a growth indicator this is
/// the base figure of the period in `numerator` and no score: use
/// [`value_growth`].
pub fn value(ind: &Indicator, sum: &dyn Fn(&str) -> i64) -> Value {
    if !ind.available {
        return Value::NONE;
    }
    let Some((n, d)) = base(ind, sum) else {
        return Value::NONE;
    };
    if ind.compare.is_some() {
        return Value {
            numerator: ratio(n, d, base_scale(ind)).unwrap_or(0),
            denominator: None,
            score: None,
        };
    }
    Value {
        numerator: n,
        denominator: d,
        score: ratio(n, d, scale(ind)),
    }
}

/// Growth of a `compare: previous_year` indicator: `now` and `before` sum the
/// components over the period and over the same period a year earlier
/// ([`previous_year`]). `numerator` / `denominator` are the base figures
/// (rounded, in the base unit: fen for money), the score is computed from the
/// exact sums: `(now − before) / before` in the indicator's unit, `None` when
/// either base has no data or the earlier one is zero.
pub fn value_growth(
    ind: &Indicator,
    now: &dyn Fn(&str) -> i64,
    before: &dyn Fn(&str) -> i64,
) -> Value {
    if !ind.available || ind.compare.is_none() {
        return Value::NONE;
    }
    let (Some((cn, cd)), Some((pn, pd))) = (base(ind, now), base(ind, before)) else {
        return Value::NONE;
    };
    let bs = base_scale(ind);
    let numerator = ratio(cn, cd, bs).unwrap_or(0);
    let denominator = ratio(pn, pd, bs);
    let (cd, pd) = (i128::from(cd.unwrap_or(1)), i128::from(pd.unwrap_or(1)));
    let (cn, pn) = (i128::from(cn), i128::from(pn));
    // (cn/cd − pn/pd) / (pn/pd) = (cn·pd − pn·cd) / (pn·cd)
    let score = (|| {
        if cd == 0 || pd == 0 || pn == 0 {
            return None;
        }
        let num = cn.checked_mul(pd)?.checked_sub(pn.checked_mul(cd)?)?;
        let den = pn.checked_mul(cd)?;
        let v = div_half_even(num.checked_mul(scale(ind))?, den)?;
        i64::try_from(v).ok()
    })();
    Value {
        numerator,
        denominator,
        score,
    }
}

/// One entry of a ranking (top diseases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    /// The family key (ICD-10 category).
    pub key: String,
    pub value: Value,
}

/// The `n` largest members of a ranking indicator's family (`members`: every
/// member component with its sum over the subject and period, e.g.
/// `("visits_dx:I10", 812)`), each as a share of the indicator's denominator;
/// ties by key. Empty for an indicator that is not a ranking.
pub fn top(
    ind: &Indicator,
    members: &[(String, i64)],
    sum: &dyn Fn(&str) -> i64,
    n: usize,
) -> Vec<Ranked> {
    let Some(family) = ind.family() else {
        return vec![];
    };
    let den = total(&ind.denominator_components, sum);
    let mut rows: Vec<(&str, i64)> = members
        .iter()
        .filter_map(|(c, v)| {
            let (f, key) = c.split_once(':')?;
            (f == family && key != "*" && *v != 0).then_some((key, *v))
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    rows.into_iter()
        .take(n)
        .map(|(key, v)| Ranked {
            key: key.to_string(),
            value: Value {
                numerator: v,
                denominator: den,
                score: den.and_then(|d| ratio(v, Some(d), scale(ind))),
            },
        })
        .collect()
}

/// Sums a fact table for one subject and month range: `orgs` are the
/// organisation ids of the subject (`None` = the whole county), months
/// inclusive. Family totals (`visits_dx:*`) are answered too. A reference
/// implementation of what the store does in SQL, used by the tests.
pub fn sum_table<'t>(
    table: &'t BTreeMap<(String, String, String), i64>,
    orgs: Option<&'t BTreeSet<String>>,
    first_month: &'t str,
    last_month: &'t str,
) -> impl Fn(&str) -> i64 + 't {
    move |component: &str| {
        let family = component.strip_suffix(":*");
        table
            .iter()
            .filter(|((c, o, m), _)| {
                let c_ok = match family {
                    Some(f) => c.split_once(':').is_some_and(|(cf, _)| cf == f),
                    None => c == component,
                };
                c_ok && orgs.is_none_or(|s| s.contains(o))
                    && m.as_str() >= first_month
                    && m.as_str() <= last_month
            })
            .fold(0i64, |acc, (_, v)| acc.saturating_add(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalogue_parses() {
        let c = Catalogue::shipped();
        assert!(c.get("inpatient_in_county_share").is_some());
        assert!(c.get("primary_visit_share").is_some());
        for (id, _) in components() {
            assert!(component_kind(id).is_some());
        }
    }

    #[test]
    fn months_in_shanghai() {
        assert_eq!(month_of("2026-01-31T16:30:00Z").as_deref(), Some("2026-02"));
        assert_eq!(month_of("2026-01-31T15:59:59Z").as_deref(), Some("2026-01"));
        assert_eq!(month_of("2026-03-05").as_deref(), Some("2026-03"));
        assert_eq!(month_of("2026-03").as_deref(), Some("2026-03"));
        assert_eq!(month_of("2026"), None);
        assert_eq!(month_of("garbage"), None);
        assert_eq!(previous_year("2026-03").as_deref(), Some("2025-03"));
        assert_eq!(
            month_range("2026-01-01", "2026-03-31"),
            Some(("2026-01".into(), "2026-03".into()))
        );
        assert_eq!(month_range("2026-04-01", "2026-03-31"), None);
        assert_eq!(
            add_months(NaiveDate::from_ymd_opt(2025, 11, 3).unwrap(), 3),
            NaiveDate::from_ymd_opt(2026, 2, 1)
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal(812_345, 2), "8123.45");
        assert_eq!(decimal(-5, 2), "-0.05");
        assert_eq!(decimal(73, 1), "7.3");
        assert_eq!(decimal(42, 0), "42");
    }
}
