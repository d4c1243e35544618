//! Centralised prescription review (集中审方): the prescription workflow
//! (submit → rules → pharmacist pass / return → prescriber fix → dispense),
//! review deadlines, the formulary's committee decisions and post-hoc review.
//!
//! Every transition is one transaction: the prescription row (version-checked),
//! an `rx_event` row and an audit row.

use crate::db::{Row, Sql, Val};
use crate::{Actor, AuditRow, Role, Scope, Store, StoreError, now_string};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use yigong_core::org::Tier;
use yigong_rx::knowledge::{AntimicrobialGrade, Drug, Restriction, check_drug};
use yigong_rx::model::{Allergy, Item, PatientFacts, Prescriber, Setting};
use yigong_rx::{Knowledge, Prescription, Verdict};

/// Review deadlines and what happens when they pass.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RxSettings {
    /// Minutes a pharmacist has to review, by setting.
    pub minutes_outpatient: i64,
    pub minutes_emergency: i64,
    pub minutes_inpatient: i64,
    /// At the deadline, a prescription with warnings only is passed by the system
    /// (so a patient is not kept waiting); blocked ones are escalated, never passed.
    pub pass_warnings_on_timeout: bool,
    /// Send even clean prescriptions to a pharmacist (otherwise the system passes them).
    pub review_all: bool,
}

impl Default for RxSettings {
    fn default() -> Self {
        RxSettings {
            minutes_outpatient: 15,
            minutes_emergency: 5,
            minutes_inpatient: 30,
            pass_warnings_on_timeout: true,
            review_all: false,
        }
    }
}

impl RxSettings {
    pub fn check(&self) -> Result<(), String> {
        for (v, what) in [
            (self.minutes_outpatient, "门诊"),
            (self.minutes_emergency, "急诊"),
            (self.minutes_inpatient, "住院"),
        ] {
            if !(1..=24 * 60).contains(&v) {
                return Err(format!("{what}审方时限须在 1–1440 分钟之间"));
            }
        }
        Ok(())
    }
    fn minutes(&self, s: Setting) -> i64 {
        match s {
            Setting::Outpatient => self.minutes_outpatient,
            Setting::Emergency => self.minutes_emergency,
            Setting::Inpatient => self.minutes_inpatient,
        }
    }
}

/// The formulary version in force and its knowledge base.
pub struct RxState {
    /// Number of committee decisions applied.
    pub version: i64,
    pub knowledge: Knowledge,
    pub settings: RxSettings,
    /// Effective date of the next decision not yet in force, if any.
    pending_from: Option<NaiveDate>,
}

impl RxState {
    pub(crate) fn shipped() -> RxState {
        RxState {
            version: 0,
            knowledge: Knowledge::shipped()
                .expect("the shipped knowledge base is checked by its tests"),
            settings: RxSettings::default(),
            pending_from: None,
        }
    }
}

/// What a prescriber submits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RxInput {
    pub patient: String,
    #[serde(default)]
    pub setting: Setting,
    #[serde(default)]
    pub long_term: bool,
    #[serde(default)]
    pub diagnoses: Vec<String>,
    pub items: Vec<Item>,
    /// Facts the prescriber states; missing ones come from the record.
    #[serde(default)]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    pub pregnant: Option<bool>,
    #[serde(default)]
    pub lactating: Option<bool>,
    #[serde(default)]
    pub egfr: Option<f64>,
    #[serde(default)]
    pub hepatic: Option<String>,
    #[serde(default)]
    pub allergies: Vec<Allergy>,
}

/// A prescription as stored.
#[derive(Debug, Clone, Serialize)]
pub struct RxRow {
    pub id: String,
    pub version: i64,
    pub patient: String,
    pub patient_name: String,
    pub inst: String,
    pub comm: Option<String>,
    pub prescriber: String,
    pub prescriber_name: String,
    pub status: String,
    pub verdict: String,
    pub top_rule: Option<String>,
    pub body: Prescription,
    pub findings: Value,
    pub formulary_version: i64,
    pub amount_fen: Option<i64>,
    pub created: String,
    pub submitted: String,
    pub due: String,
    pub overdue: bool,
    pub reviewer: Option<String>,
    pub reviewed_at: Option<String>,
    pub review_note: Option<String>,
    pub dispenser: Option<String>,
    pub dispensed_at: Option<String>,
    pub month: String,
}

pub fn status_label(s: &str) -> &'static str {
    match s {
        "pending" => "待审核",
        "passed" => "审核通过",
        "returned" => "已退回",
        "dispensed" => "已发药",
        "cancelled" => "已作废",
        _ => "未知",
    }
}

pub fn verdict_code(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Review => "review",
        Verdict::Blocked => "blocked",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RxEvent {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: Option<String>,
}

/// A committee decision on the formulary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub meeting: String,
    /// add | remove | restrict | unrestrict | update
    pub kind: String,
    pub drug: String,
    pub effective: NaiveDate,
    pub reason: String,
    /// The Drug entry for add/update, the Restriction for restrict.
    #[serde(default)]
    pub entry: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub decision: Decision,
    pub in_force: bool,
}

/// The review decision of a pharmacist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAction {
    Pass,
    Return,
}

/// Post-hoc review results (医院处方点评管理规范 art. 17–19).
pub const COMMENT_RESULTS: [(&str, &str); 4] = [
    ("rational", "合理处方"),
    ("non-standard", "不规范处方"),
    ("inappropriate", "用药不适宜处方"),
    ("abnormal", "超常处方"),
];

/// The standard categories: N = 不规范 (art. 17), I = 用药不适宜 (art. 18), A = 超常 (art. 19).
pub const COMMENT_CODES: [(&str, &str); 28] = [
    (
        "N1",
        "处方前记、正文、后记内容缺项,书写不规范或字迹难以辨认",
    ),
    ("N2", "医师签名、签章不规范或与留样不一致"),
    ("N3", "药师未对处方进行适宜性审核"),
    ("N4", "新生儿、婴幼儿处方未写明日、月龄"),
    ("N5", "西药、中成药与中药饮片未分别开具处方"),
    ("N6", "未使用药品规范名称开具处方"),
    ("N7", "药品的剂量、规格、数量、单位等书写不规范或不清楚"),
    ("N8", "用法、用量使用“遵医嘱”“自用”等含糊不清字句"),
    (
        "N9",
        "处方修改未签名并注明修改日期,或超剂量使用未注明原因和再次签名",
    ),
    ("N10", "开具处方未写临床诊断或临床诊断书写不全"),
    ("N11", "单张门急诊处方超过五种药品"),
    ("N12", "门诊超过7日用量、急诊超过3日用量,需延长时未注明理由"),
    ("N13", "开具特殊管理药品处方未执行国家有关规定"),
    ("N14", "医师未按照抗菌药物临床应用管理规定开具抗菌药物处方"),
    ("N15", "中药饮片处方未按要求排列或标注特殊要求"),
    ("I1", "适应证不适宜"),
    ("I2", "遴选的药品不适宜"),
    ("I3", "药品剂型或给药途径不适宜"),
    ("I4", "无正当理由不首选国家基本药物"),
    ("I5", "用法、用量不适宜"),
    ("I6", "联合用药不适宜"),
    ("I7", "重复给药"),
    ("I8", "有配伍禁忌或者不良相互作用"),
    ("I9", "其它用药不适宜情况"),
    ("A1", "无适应证用药"),
    ("A2", "无正当理由开具高价药"),
    ("A3", "无正当理由超说明书用药"),
    ("A4", "无正当理由为同一患者同时开具2种以上药理作用相同药物"),
];

/// The post-hoc category an engine rule suggests to the reviewing pharmacist.
pub fn comment_code_for(rule: &str) -> Option<&'static str> {
    Some(match rule {
        "FMT-AGE" => "N4",
        "FMT-DIAGNOSIS" => "N10",
        "FMT-COUNT" => "N11",
        "FMT-DAYS" => "N12",
        "FMT-DOSE" | "FMT-FREQUENCY" | "FMT-ROUTE" | "FMT-WEIGHT" | "FMT-UNKNOWN-DRUG" => "N7",
        "LEG-CONTROLLED" | "LEG-CONTROLLED-TIER" | "LEG-CONTROLLED-DAYS" => "N13",
        "LEG-AMR-GRADE" | "LEG-AMR-TIER" | "LEG-AMR-OUTPATIENT" => "N14",
        "IND-NONE" => "I1",
        "IND-CONTRA" | "PREGNANCY" | "LACTATION" | "CHILD-AGE" | "ELDERLY" | "RENAL"
        | "HEPATIC" | "ALLERGY" | "LEG-RESTRICTED" => "I2",
        "ROUTE-MISMATCH" => "I3",
        "DOSE-SINGLE"
        | "DOSE-DAILY"
        | "DOSE-LOW"
        | "DOSE-FREQUENCY"
        | "DOSE-CHILD-KG"
        | "DOSE-CHILD-KG-DAILY"
        | "DOSE-CONC" => "I5",
        "DDI" => "I8",
        "INCOMPAT" => "I8",
        "DUP-SAME" => "I7",
        "DUP-CLASS" => "A4",
        "SKIN-TEST" => "I9",
        "LONG-DRUG" | "LONG-DAYS" | "LONG-DISEASE" => "N12",
        _ => return None,
    })
}

/// A pharmacist's post-hoc verdict on one sampled prescription.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommentVerdict {
    /// One of [`COMMENT_RESULTS`].
    pub result: String,
    /// Categories of [`COMMENT_CODES`] matching the result's kind.
    #[serde(default)]
    pub codes: Vec<String>,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommentRow {
    pub rx: String,
    pub month: String,
    pub inst: String,
    pub prescriber: String,
    pub prescriber_name: String,
    pub result: Option<String>,
    pub codes: Vec<String>,
    pub note: Option<String>,
    pub reviewer: Option<String>,
    pub version: i64,
    /// Categories the engine's findings suggest.
    pub suggested: Vec<String>,
}

/// One line of the post-hoc report (per institution or per prescriber).
#[derive(Debug, Clone, Serialize, Default)]
pub struct CommentStat {
    /// Institution id or prescriber user name.
    pub key: String,
    /// The prescriber's name (per-prescriber reports).
    pub label: String,
    pub sampled: i64,
    pub reviewed: i64,
    pub rational: i64,
    pub non_standard: i64,
    pub inappropriate: i64,
    pub abnormal: i64,
    /// Share of reviewed prescriptions judged rational, in per mille.
    pub rational_permille: i64,
    /// Most frequent categories: (code, count).
    pub top_codes: Vec<(String, i64)>,
}

const RX_COLS: &str = "id, version, patient, patient_name, inst, comm, prescriber, prescriber_name, status, verdict, top_rule, body, findings, formulary_version, amount_fen, created, submitted, due, overdue, reviewer, reviewed_at, review_note, dispenser, dispensed_at, month";

fn rx_from_row(r: Row) -> Result<RxRow, StoreError> {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Val::Null);
    let text = |v: Val| v.into_string().unwrap_or_default();
    Ok(RxRow {
        id: text(next()),
        version: next().as_int().unwrap_or(0),
        patient: text(next()),
        patient_name: text(next()),
        inst: text(next()),
        comm: next().into_string(),
        prescriber: text(next()),
        prescriber_name: text(next()),
        status: text(next()),
        verdict: text(next()),
        top_rule: next().into_string(),
        body: serde_json::from_str(&text(next()))
            .map_err(|e| StoreError::Database(format!("处方数据损坏: {e}")))?,
        findings: serde_json::from_str(&text(next())).unwrap_or(Value::Null),
        formulary_version: next().as_int().unwrap_or(0),
        amount_fen: next().as_int(),
        created: text(next()),
        submitted: text(next()),
        due: text(next()),
        overdue: next().as_int() == Some(1),
        reviewer: next().into_string(),
        reviewed_at: next().into_string(),
        review_note: next().into_string(),
        dispenser: next().into_string(),
        dispensed_at: next().into_string(),
        month: text(next()),
    })
}

fn local_today() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

fn local_month(at: &str) -> String {
    DateTime::parse_from_rfc3339(at)
        .map(|t| {
            (t.with_timezone(&Utc) + Duration::hours(8))
                .format("%Y-%m")
                .to_string()
        })
        .unwrap_or_else(|_| at.chars().take(7).collect())
}

fn plus_minutes(at: &str, minutes: i64) -> String {
    DateTime::parse_from_rfc3339(at)
        .map(|t| {
            (t.with_timezone(&Utc) + Duration::minutes(minutes))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|_| at.to_string())
}

fn new_rx_id(at: &str) -> String {
    let day: String = at.chars().filter(|c| c.is_ascii_digit()).take(8).collect();
    let tail = uuid::Uuid::new_v4().simple().to_string();
    format!("rx{day}{}", &tail[..10])
}

fn grade_code(g: Option<AntimicrobialGrade>) -> Option<&'static str> {
    g.map(|g| match g {
        AntimicrobialGrade::NonRestricted => "non-restricted",
        AntimicrobialGrade::Restricted => "restricted",
        AntimicrobialGrade::Special => "special",
    })
}

fn grade_from(s: Option<&str>) -> Option<AntimicrobialGrade> {
    match s? {
        "non-restricted" => Some(AntimicrobialGrade::NonRestricted),
        "restricted" => Some(AntimicrobialGrade::Restricted),
        "special" => Some(AntimicrobialGrade::Special),
        _ => None,
    }
}

/// Applies committee decisions in order to the shipped formulary.
fn apply_decisions(base: &Knowledge, decisions: &[Decision]) -> Result<Knowledge, String> {
    let mut drugs = base.drugs.clone();
    for d in decisions {
        apply_one(&mut drugs, d)?;
    }
    base.with_drugs(drugs).map_err(|e| e.to_string())
}

fn apply_one(drugs: &mut Vec<Drug>, d: &Decision) -> Result<(), String> {
    let pos = drugs.iter().position(|x| x.code == d.drug);
    match (d.kind.as_str(), pos) {
        ("add", Some(_)) => return Err(format!("药品 {} 已在目录中", d.drug)),
        ("add", None) | ("update", Some(_)) => {
            let entry = d.entry.clone().ok_or("新增或修改药品须提供药品条目")?;
            let drug: Drug =
                serde_json::from_value(entry).map_err(|e| format!("药品条目格式错误: {e}"))?;
            if drug.code != d.drug {
                return Err(format!(
                    "药品条目编码 {} 与决议药品 {} 不一致",
                    drug.code, d.drug
                ));
            }
            check_drug(&drug).map_err(|m| format!("药品条目不合格:{m}"))?;
            match pos {
                Some(i) => drugs[i] = drug,
                None => drugs.push(drug),
            }
        }
        ("remove", Some(i)) => {
            drugs.remove(i);
        }
        ("restrict", Some(i)) => {
            let r: Restriction = match &d.entry {
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| format!("限制条件格式错误: {e}"))?,
                None => return Err("限制使用须指明最低机构级别".into()),
            };
            drugs[i].restriction = Some(r);
        }
        ("unrestrict", Some(i)) => drugs[i].restriction = None,
        ("remove" | "restrict" | "unrestrict" | "update", None) => {
            return Err(format!("药品 {} 不在目录中", d.drug));
        }
        (k, _) => {
            return Err(format!(
                "未知的决议类型 {k}(应为 add、remove、restrict、unrestrict、update)"
            ));
        }
    }
    Ok(())
}

impl Store {
    /// The formulary and knowledge base in force.
    pub fn rx_state(&self) -> Arc<RxState> {
        self.rx.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds the formulary from the decisions in force today.
    pub(crate) fn load_rx(&self) -> Result<(), StoreError> {
        let settings = match self.meta_get("rx_settings")? {
            Some(s) => serde_json::from_str(&s).unwrap_or_default(),
            None => RxSettings::default(),
        };
        let today = local_today();
        let rows = self.rx_decisions()?;
        let mut in_force = Vec::new();
        let mut pending_from = None;
        for r in rows {
            if r.decision.effective <= today {
                in_force.push(r.decision);
            } else {
                pending_from = Some(pending_from.map_or(r.decision.effective, |p: NaiveDate| {
                    p.min(r.decision.effective)
                }));
            }
        }
        in_force.sort_by_key(|d| d.effective);
        let base = RxState::shipped().knowledge;
        let knowledge = apply_decisions(&base, &in_force).map_err(StoreError::Invalid)?;
        *self.rx.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(RxState {
            version: in_force.len() as i64,
            knowledge,
            settings,
            pending_from,
        });
        Ok(())
    }

    pub fn rx_set_settings(&self, actor: &Actor, settings: RxSettings) -> Result<(), StoreError> {
        settings.check().map_err(StoreError::Invalid)?;
        let text =
            serde_json::to_string(&settings).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let at = now_string();
        self.db.write(|tx| {
            tx.exec(
                "INSERT INTO meta (key, value) VALUES ('rx_settings', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[text.as_str().into()],
            )?;
            AuditRow::by(actor, &at, "rx-settings").reason(Some(&text)).append(tx)
        })?;
        self.load_rx()
    }

    /// The prescribing rights of a user: their row, or their role's default.
    pub fn rx_prescriber(&self, username: &str, role: Role) -> Result<Prescriber, StoreError> {
        let row = self.db.read(|c| {
            c.query_one(
                "SELECT antimicrobial, narcotic_right FROM rx_prescriber WHERE username = ?",
                &[username.into()],
            )
        })?;
        Ok(match row {
            Some(r) => Prescriber {
                antimicrobial: grade_from(r[0].as_str()),
                narcotic_right: r[1].as_int() == Some(1),
            },
            None => Prescriber {
                antimicrobial: match role {
                    Role::Clinician => Some(AntimicrobialGrade::Restricted),
                    Role::VillageDoctor => Some(AntimicrobialGrade::NonRestricted),
                    _ => None,
                },
                narcotic_right: false,
            },
        })
    }

    /// Grants prescribing rights (by the institution's medical affairs, here an administrator).
    pub fn rx_set_prescriber(
        &self,
        actor: &Actor,
        username: &str,
        rights: &Prescriber,
    ) -> Result<(), StoreError> {
        let at = now_string();
        let grade = grade_code(rights.antimicrobial);
        let reason = format!(
            "抗菌药物:{};麻精药品:{}",
            rights.antimicrobial.map_or("无", |g| g.label()),
            if rights.narcotic_right { "有" } else { "无" }
        );
        self.db.write(|tx| {
            if tx
                .query_one("SELECT 1 FROM users WHERE name = ?", &[username.into()])?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("用户 {username} 不存在")));
            }
            tx.exec(
                "INSERT INTO rx_prescriber (username, antimicrobial, narcotic_right, version) VALUES (?, ?, ?, 1)
                 ON CONFLICT (username) DO UPDATE SET antimicrobial = excluded.antimicrobial, narcotic_right = excluded.narcotic_right, version = rx_prescriber.version + 1",
                &[username.into(), grade.into(), Val::Int(rights.narcotic_right as i64)],
            )?;
            AuditRow::by(actor, &at, "rx-prescriber")
                .on("User", username)
                .reason(Some(&reason))
                .append(tx)
        })
    }

    /// The tier and community of an institution.
    fn rx_institution(&self, inst: &str) -> Result<(Tier, Option<String>), StoreError> {
        let row = self.db.read(|c| {
            c.query_one(
                "SELECT tier, comm FROM org_tree WHERE id = ?",
                &[inst.into()],
            )
        })?;
        let Some(r) = row else {
            return Err(StoreError::Forbidden("所在机构不存在,不能开具处方".into()));
        };
        let tier = r[0]
            .as_str()
            .and_then(Tier::from_code)
            .ok_or_else(|| StoreError::Forbidden("只有医疗机构可以开具处方".into()))?;
        Ok((tier, r[1].as_str().map(str::to_string)))
    }

    /// Patient facts from the record, overridden by what the prescriber states.
    fn rx_patient(&self, input: &RxInput) -> Result<(String, PatientFacts), StoreError> {
        let id = input.patient.trim().trim_start_matches("Patient/");
        if id.is_empty() {
            return Err(StoreError::Invalid("缺少患者".into()));
        }
        let p = self
            .read("Patient", id)?
            .filter(|p| !p.deleted)
            .ok_or_else(|| StoreError::Invalid(format!("患者 {id} 不存在")))?;
        let body: Value = serde_json::from_str(&p.body).unwrap_or(Value::Null);
        let name = body["name"][0]["text"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                let n = &body["name"][0];
                Some(format!(
                    "{}{}",
                    n["family"].as_str().unwrap_or(""),
                    n["given"][0].as_str().unwrap_or("")
                ))
            })
            .unwrap_or_default();
        // The record's allergies and latest observations, read as CDS prefetch would be.
        let mut allergies = Vec::new();
        let mut labs = Vec::new();
        // Only the two types the rules read, not the whole compartment.
        let rows = self.db.read(|c| {
            c.query(
                "SELECT rtype, body FROM resource WHERE patient = ? AND rtype IN ('AllergyIntolerance', 'Observation') AND deleted = 0",
                &[id.into()],
            )
        })?;
        for r in rows {
            let entry = serde_json::json!({ "resource": r[1].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok()).unwrap_or(Value::Null) });
            match r[0].as_str() {
                Some("AllergyIntolerance") => allergies.push(entry),
                _ => labs.push(entry),
            }
        }
        let mut prefetch = serde_json::Map::new();
        prefetch.insert("patient".into(), body);
        prefetch.insert(
            "allergies".into(),
            serde_json::json!({"resourceType": "Bundle", "entry": allergies}),
        );
        prefetch.insert(
            "labs".into(),
            serde_json::json!({"resourceType": "Bundle", "entry": labs}),
        );
        let (mut f, _) = yigong_rx::cds::patient_facts(&prefetch);
        if input.weight_kg.is_some() {
            f.weight_kg = input.weight_kg;
        }
        if input.pregnant.is_some() {
            f.pregnant = input.pregnant;
        }
        if input.lactating.is_some() {
            f.lactating = input.lactating;
        }
        if input.egfr.is_some() {
            f.egfr = input.egfr;
        }
        if let Some(h) = input.hepatic.as_deref().filter(|h| !h.trim().is_empty()) {
            let h = h.trim().to_ascii_uppercase();
            if !["A", "B", "C"].contains(&h.as_str()) {
                return Err(StoreError::Invalid(
                    "肝功能分级须为 Child-Pugh A、B 或 C".into(),
                ));
            }
            f.hepatic = Some(h);
        }
        for a in &input.allergies {
            if !a.text.trim().is_empty() || a.code.is_some() {
                f.allergies.push(a.clone());
            }
        }
        Ok((name, f))
    }

    fn rx_build(
        &self,
        actor: &Actor,
        role: Role,
        input: &RxInput,
        date: NaiveDate,
    ) -> Result<(String, Prescription, Option<String>, Tier), StoreError> {
        if !matches!(role, Role::Clinician | Role::VillageDoctor) {
            return Err(StoreError::Forbidden(
                "只有医师和乡村医生可以开具处方".into(),
            ));
        }
        let inst = actor
            .institution
            .clone()
            .ok_or_else(|| StoreError::Forbidden("没有所属机构的用户不能开具处方".into()))?;
        let (tier, comm) = self.rx_institution(&inst)?;
        if input.items.is_empty() {
            return Err(StoreError::Invalid("处方没有药品".into()));
        }
        if input.items.len() > 20 {
            return Err(StoreError::Invalid("一张处方最多 20 行".into()));
        }
        for (i, it) in input.items.iter().enumerate() {
            if it.drug.trim().is_empty() {
                return Err(StoreError::Invalid(format!("第 {} 行没有选择药品", i + 1)));
            }
            if it.days > 366 {
                return Err(StoreError::Invalid(format!(
                    "第 {} 行用药天数 {} 不合理",
                    i + 1,
                    it.days
                )));
            }
        }
        let (name, facts) = self.rx_patient(input)?;
        let rights = self.rx_prescriber(&actor.user, role)?;
        let rx = Prescription {
            date,
            setting: input.setting,
            long_term: input.long_term,
            tier,
            prescriber: rights,
            patient: facts,
            diagnoses: input
                .diagnoses
                .iter()
                .map(|d| d.trim().to_ascii_uppercase())
                .filter(|d| !d.is_empty())
                .collect(),
            items: input.items.clone(),
        };
        Ok((name, rx, comm, tier))
    }

    /// Submits a new prescription: the rules run, then it is passed by the
    /// system (clean) or queued for the community's pharmacists.
    pub fn rx_submit(
        &self,
        actor: &Actor,
        display: &str,
        role: Role,
        input: &RxInput,
    ) -> Result<RxRow, StoreError> {
        let at = now_string();
        let (name, rx, comm, _) = self.rx_build(actor, role, input, local_today())?;
        let inst = actor.institution.clone().unwrap_or_default();
        let state = self.rx_state();
        let Reviewed {
            verdict,
            top,
            body,
            findings: fj,
        } = Reviewed::of(&state.knowledge, &rx)?;
        let auto = verdict == Verdict::Pass && !state.settings.review_all;
        let status = if auto { "passed" } else { "pending" };
        let id = new_rx_id(&at);
        let due = plus_minutes(&at, state.settings.minutes(rx.setting));
        let month = local_month(&at);
        self.db.write(|tx| {
            tx.exec(
                &format!("INSERT INTO rx_prescription ({RX_COLS}) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, 0, ?, ?, ?, NULL, NULL, ?)"),
                &[
                    id.as_str().into(), rx_patient_id(input).into(), name.as_str().into(), inst.as_str().into(), comm.clone().into(),
                    actor.user.as_str().into(), display.into(), status.into(), verdict_code(verdict).into(), top.into(),
                    body.as_str().into(), fj.as_str().into(), Val::Int(state.version), at.as_str().into(), at.as_str().into(), due.as_str().into(),
                    auto.then_some("system").into(), auto.then_some(at.as_str()).into(),
                    auto.then_some("规则审核未发现问题,系统自动通过").into(), month.as_str().into(),
                ],
            )?;
            event(tx, &id, &at, &actor.user, "submit", None, "pending", None)?;
            if auto {
                event(tx, &id, &at, "system", "pass", Some("pending"), "passed", Some("规则审核未发现问题"))?;
            }
            AuditRow::by(actor, &at, "rx-submit")
                .on("Prescription", &id)
                .version(1)
                .reason(Some(verdict_code(verdict)))
                .append(tx)
        })?;
        self.rx_get(&Scope::County, &id)?
            .ok_or_else(|| StoreError::Database("刚写入的处方读不到".into()))
    }

    /// One prescription, if visible in `scope`.
    pub fn rx_get(&self, scope: &Scope, id: &str) -> Result<Option<RxRow>, StoreError> {
        let row = self.db.read(|c| {
            c.query_one(
                &format!("SELECT {RX_COLS} FROM rx_prescription WHERE id = ?"),
                &[id.into()],
            )
        })?;
        let Some(row) = row else { return Ok(None) };
        let rx = rx_from_row(row)?;
        Ok(scope
            .allows(Some(&rx.inst), rx.comm.as_deref(), None, None)
            .then_some(rx))
    }

    pub fn rx_events(&self, id: &str) -> Result<Vec<RxEvent>, StoreError> {
        self.db.read(|c| {
            let rows = c.query(
                "SELECT at, actor, action, from_status, to_status, note FROM rx_event WHERE rx = ? ORDER BY seq",
                &[id.into()],
            )?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut it = r.into_iter();
                    let mut next = || it.next().unwrap_or(Val::Null);
                    RxEvent {
                        at: next().into_string().unwrap_or_default(),
                        actor: next().into_string().unwrap_or_default(),
                        action: next().into_string().unwrap_or_default(),
                        from_status: next().into_string(),
                        to_status: next().into_string().unwrap_or_default(),
                        note: next().into_string(),
                    }
                })
                .collect())
        })
    }

    /// Prescriptions in `scope` with a status, most urgent first for the queue
    /// (blocked before warnings, then by deadline), newest first otherwise.
    pub fn rx_list(
        &self,
        scope: &Scope,
        status: Option<&str>,
        prescriber: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RxRow>, StoreError> {
        let mut p: Vec<Val> = vec![];
        let mut w = String::from("1 = 1");
        match scope {
            Scope::County => {}
            Scope::Community(c) => {
                w.push_str(" AND comm = ?");
                p.push(c.as_str().into());
            }
            Scope::Institution(i) => {
                w.push_str(" AND inst = ?");
                p.push(i.as_str().into());
            }
        }
        if let Some(s) = status {
            w.push_str(" AND status = ?");
            p.push(s.into());
        }
        if let Some(u) = prescriber {
            w.push_str(" AND prescriber = ?");
            p.push(u.into());
        }
        let order = if status == Some("pending") {
            "CASE verdict WHEN 'blocked' THEN 0 WHEN 'review' THEN 1 ELSE 2 END, due"
        } else {
            "submitted DESC"
        };
        p.push(Val::Int(limit));
        self.db.read(|c| {
            c.query(
                &format!(
                    "SELECT {RX_COLS} FROM rx_prescription WHERE {w} ORDER BY {order} LIMIT ?"
                ),
                &p,
            )?
            .into_iter()
            .map(rx_from_row)
            .collect()
        })
    }

    /// Counts by status in `scope`.
    pub fn rx_counts(&self, scope: &Scope) -> Result<Vec<(String, i64)>, StoreError> {
        let mut p: Vec<Val> = vec![];
        let w = match scope {
            Scope::County => String::new(),
            Scope::Community(c) => {
                p.push(c.as_str().into());
                " WHERE comm = ?".into()
            }
            Scope::Institution(i) => {
                p.push(i.as_str().into());
                " WHERE inst = ?".into()
            }
        };
        self.db.read(|c| {
            Ok(c.query(
                &format!("SELECT status, count(*) FROM rx_prescription{w} GROUP BY status"),
                &p,
            )?
            .into_iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap_or("").to_string(),
                    r[1].as_int().unwrap_or(0),
                )
            })
            .collect())
        })
    }

    /// A pharmacist passes or returns a pending prescription.
    pub fn rx_review(
        &self,
        actor: &Actor,
        role: Role,
        id: &str,
        version: i64,
        action: ReviewAction,
        note: &str,
    ) -> Result<RxRow, StoreError> {
        if role != Role::Pharmacist {
            return Err(StoreError::Forbidden("只有药师可以审核处方".into()));
        }
        if matches!(actor.scope, Scope::Institution(_)) {
            return Err(StoreError::Forbidden(
                "集中审方由牵头医院药师负责:您的账号没有医共体审方范围".into(),
            ));
        }
        let note = note.trim();
        let at = now_string();
        self.rx_transition(actor, id, version, |rx| {
            if rx.status != "pending" {
                return Err(StoreError::Conflict(format!(
                    "处方当前为“{}”,只有待审核的处方可以{}",
                    status_label(&rx.status),
                    if action == ReviewAction::Pass { "通过" } else { "退回" }
                )));
            }
            match action {
                ReviewAction::Pass => {
                    if rx.verdict == "blocked" && note.is_empty() {
                        return Err(StoreError::Invalid("处方有拦截级问题,放行必须填写理由".into()));
                    }
                    Ok(("pass", "passed", Some(note.to_string()).filter(|n| !n.is_empty())))
                }
                ReviewAction::Return => {
                    if note.is_empty() {
                        return Err(StoreError::Invalid("退回处方必须写明需要医师修改的内容".into()));
                    }
                    Ok(("return", "returned", Some(note.to_string())))
                }
            }
        }, |tx, rx, to, note| {
            tx.exec(
                "UPDATE rx_prescription SET status = ?, version = version + 1, reviewer = ?, reviewed_at = ?, review_note = ? WHERE id = ?",
                &[to.into(), actor.user.as_str().into(), at.as_str().into(), note.into(), rx.id.as_str().into()],
            )?;
            Ok(())
        })
    }

    /// The prescriber edits a returned (or still pending) prescription and submits it again.
    pub fn rx_resubmit(
        &self,
        actor: &Actor,
        role: Role,
        id: &str,
        version: i64,
        input: &RxInput,
    ) -> Result<RxRow, StoreError> {
        let cur = self
            .rx_get(&actor.scope, id)?
            .ok_or_else(|| StoreError::NotFound(format!("处方 {id} 不存在")))?;
        if cur.prescriber != actor.user {
            return Err(StoreError::Forbidden("只有开方医师本人可以修改处方".into()));
        }
        if rx_patient_id(input) != cur.patient {
            return Err(StoreError::Invalid("修改处方不能更换患者".into()));
        }
        let (_, rx, _, _) = self.rx_build(actor, role, input, local_today())?;
        let state = self.rx_state();
        let Reviewed {
            verdict,
            top,
            body,
            findings: fj,
        } = Reviewed::of(&state.knowledge, &rx)?;
        let auto = verdict == Verdict::Pass && !state.settings.review_all;
        let at = now_string();
        let due = plus_minutes(&at, state.settings.minutes(rx.setting));
        self.rx_transition(actor, id, version, |rx| {
            if !matches!(rx.status.as_str(), "returned" | "pending") {
                return Err(StoreError::Conflict(format!(
                    "处方当前为“{}”,不能再修改",
                    status_label(&rx.status)
                )));
            }
            let to = if auto { "passed" } else { "pending" };
            Ok(("resubmit", to, None))
        }, |tx, rx, to, _| {
            tx.exec(
                "UPDATE rx_prescription SET status = ?, version = version + 1, verdict = ?, top_rule = ?, body = ?, findings = ?, formulary_version = ?, submitted = ?, due = ?, overdue = 0,
                 reviewer = ?, reviewed_at = ?, review_note = ? WHERE id = ?",
                &[
                    to.into(), verdict_code(verdict).into(), top.into(), body.as_str().into(), fj.as_str().into(), Val::Int(state.version),
                    at.as_str().into(), due.as_str().into(), auto.then_some("system").into(), auto.then_some(at.as_str()).into(),
                    auto.then_some("修改后规则审核未发现问题,系统自动通过").into(), rx.id.as_str().into(),
                ],
            )?;
            Ok(())
        })
    }

    /// The prescriber withdraws a prescription not yet dispensed.
    pub fn rx_cancel(
        &self,
        actor: &Actor,
        id: &str,
        version: i64,
        reason: &str,
    ) -> Result<RxRow, StoreError> {
        let reason = reason.trim().to_string();
        if reason.is_empty() {
            return Err(StoreError::Invalid("作废处方须写明原因".into()));
        }
        self.rx_transition(
            actor,
            id,
            version,
            |rx| {
                if rx.prescriber != actor.user {
                    return Err(StoreError::Forbidden("只有开方医师本人可以作废处方".into()));
                }
                if matches!(rx.status.as_str(), "dispensed" | "cancelled") {
                    return Err(StoreError::Conflict(format!(
                        "处方当前为“{}”,不能作废",
                        status_label(&rx.status)
                    )));
                }
                Ok(("cancel", "cancelled", Some(reason.clone())))
            },
            |tx, rx, to, _| {
                tx.exec(
                    "UPDATE rx_prescription SET status = ?, version = version + 1 WHERE id = ?",
                    &[to.into(), rx.id.as_str().into()],
                )?;
                Ok(())
            },
        )
    }

    /// Dispenses a passed prescription at its institution, taking stock in the
    /// same transaction.
    pub fn rx_dispense(
        &self,
        actor: &Actor,
        role: Role,
        id: &str,
        version: i64,
    ) -> Result<RxRow, StoreError> {
        if !matches!(role, Role::Pharmacist | Role::VillageDoctor) {
            return Err(StoreError::Forbidden("只有药师或乡村医生可以发药".into()));
        }
        let state = self.rx_state();
        let at = now_string();
        self.rx_transition(actor, id, version, |rx| {
            if rx.status != "passed" {
                return Err(StoreError::Conflict(format!(
                    "处方当前为“{}”,审核通过后才能发药",
                    status_label(&rx.status)
                )));
            }
            // Stock belongs to the prescribing institution: only its own staff dispense.
            if actor.institution.as_deref() != Some(rx.inst.as_str()) {
                return Err(StoreError::Forbidden("只能为本机构的处方发药".into()));
            }
            Ok(("dispense", "dispensed", None))
        }, |tx, rx, to, _| {
            let mut lines = Vec::new();
            for (i, item) in rx.body.items.iter().enumerate() {
                let units = yigong_rx::engine::units_needed(&state.knowledge, item).ok_or_else(|| {
                    StoreError::Invalid(format!("第 {} 行无法计算发药数量,请退回医师核对", i + 1))
                })?;
                let code = state.knowledge.drug(&item.drug).map_or(item.drug.clone(), |d| d.code.clone());
                lines.push(crate::pharmacy::DispenseLine { drug: code, units });
            }
            let amount = crate::pharmacy::dispense_tx(tx, &at, actor, &rx.inst, &rx.id, &lines, &state.knowledge)?;
            tx.exec(
                "UPDATE rx_prescription SET status = ?, version = version + 1, dispenser = ?, dispensed_at = ?, amount_fen = ? WHERE id = ?",
                &[to.into(), actor.user.as_str().into(), at.as_str().into(), Val::Int(amount), rx.id.as_str().into()],
            )?;
            Ok(())
        })
    }

    /// Common shape of a transition: lock and check the row, decide, write, log.
    fn rx_transition(
        &self,
        actor: &Actor,
        id: &str,
        version: i64,
        decide: impl FnOnce(&RxRow) -> Result<(&'static str, &'static str, Option<String>), StoreError>,
        write: impl FnOnce(&mut dyn Sql, &RxRow, &str, Option<&str>) -> Result<(), StoreError>,
    ) -> Result<RxRow, StoreError> {
        let at = now_string();
        self.db.write(|tx| {
            let lock = if tx.dialect() == crate::Dialect::Postgres {
                " FOR UPDATE"
            } else {
                ""
            };
            let row = tx
                .query_one(
                    &format!("SELECT {RX_COLS} FROM rx_prescription WHERE id = ?{lock}"),
                    &[id.into()],
                )?
                .ok_or_else(|| StoreError::NotFound(format!("处方 {id} 不存在")))?;
            let rx = rx_from_row(row)?;
            if !actor
                .scope
                .allows(Some(&rx.inst), rx.comm.as_deref(), None, None)
            {
                return Err(StoreError::NotFound(format!("处方 {id} 不存在")));
            }
            if rx.version != version {
                return Err(StoreError::VersionConflict {
                    current: rx.version,
                });
            }
            let (action, to, note) = decide(&rx)?;
            write(tx, &rx, to, note.as_deref())?;
            event(
                tx,
                &rx.id,
                &at,
                &actor.user,
                action,
                Some(&rx.status),
                to,
                note.as_deref(),
            )?;
            AuditRow::by(actor, &at, &format!("rx-{action}"))
                .on("Prescription", &rx.id)
                .version(rx.version + 1)
                .reason(note.as_deref())
                .append(tx)
        })?;
        self.rx_get(&Scope::County, id)?
            .ok_or_else(|| StoreError::Database("处方读不到".into()))
    }

    /// Deadline sweep: warnings-only prescriptions past their deadline pass (if
    /// configured), blocked ones are marked overdue for escalation. Also brings
    /// committee decisions into force on their effective date.
    pub fn rx_sweep(&self, now: &str) -> Result<usize, StoreError> {
        let state = self.rx_state();
        if state.pending_from.is_some_and(|d| d <= local_today()) {
            self.load_rx()?;
        }
        let pass = state.settings.pass_warnings_on_timeout;
        let system = Actor::system("system");
        self.db.write(|tx| {
            let rows = tx.query(
                "SELECT id, verdict, version, status FROM rx_prescription WHERE status = 'pending' AND overdue = 0 AND due <= ? LIMIT 500",
                &[now.into()],
            )?;
            let n = rows.len();
            for r in rows {
                let id = r[0].as_str().unwrap_or("").to_string();
                let version = r[2].as_int().unwrap_or(0);
                if r[1].as_str() != Some("blocked") && pass {
                    let note = "审核超时,系统自动通过(仅含警告级问题)";
                    tx.exec(
                        "UPDATE rx_prescription SET status = 'passed', version = version + 1, reviewer = 'system', reviewed_at = ?, review_note = ? WHERE id = ?",
                        &[now.into(), note.into(), id.as_str().into()],
                    )?;
                    event(tx, &id, now, "system", "timeout-pass", Some("pending"), "passed", Some(note))?;
                    AuditRow::by(&system, now, "rx-timeout-pass").on("Prescription", &id).version(version + 1).reason(Some(note)).append(tx)?;
                } else {
                    let note = "审核超时,已提醒牵头医院药学部";
                    tx.exec("UPDATE rx_prescription SET overdue = 1 WHERE id = ?", &[id.as_str().into()])?;
                    event(tx, &id, now, "system", "escalate", Some("pending"), "pending", Some(note))?;
                    AuditRow::by(&system, now, "rx-escalate").on("Prescription", &id).version(version).reason(Some(note)).append(tx)?;
                }
            }
            Ok(n)
        })
    }

    // ---- Formulary decisions ----

    pub fn rx_decisions(&self) -> Result<Vec<DecisionRow>, StoreError> {
        let today = local_today();
        self.db.read(|c| {
            let rows = c.query(
                "SELECT seq, at, actor, meeting, kind, drug, effective, reason, entry FROM rx_decision ORDER BY seq",
                &[],
            )?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut it = r.into_iter();
                    let mut next = || it.next().unwrap_or(Val::Null);
                    let seq = next().as_int().unwrap_or(0);
                    let at = next().into_string().unwrap_or_default();
                    let actor = next().into_string().unwrap_or_default();
                    let decision = Decision {
                        meeting: next().into_string().unwrap_or_default(),
                        kind: next().into_string().unwrap_or_default(),
                        drug: next().into_string().unwrap_or_default(),
                        effective: next()
                            .into_string()
                            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
                            .unwrap_or(today),
                        reason: next().into_string().unwrap_or_default(),
                        entry: next().into_string().and_then(|e| serde_json::from_str(&e).ok()),
                    };
                    DecisionRow { seq, at, actor, in_force: decision.effective <= today, decision }
                })
                .collect())
        })
    }

    /// Records a pharmacy-committee decision; the formulary changes on its
    /// effective date. Checked against the formulary it will apply to.
    pub fn rx_decide(&self, actor: &Actor, role: Role, d: &Decision) -> Result<i64, StoreError> {
        if !(role == Role::SystemAdmin
            || (role == Role::Pharmacist && !matches!(actor.scope, Scope::Institution(_))))
        {
            return Err(StoreError::Forbidden(
                "只有医共体药学部药师或管理员可以登记药事会决议".into(),
            ));
        }
        if d.meeting.trim().is_empty() || d.reason.trim().is_empty() {
            return Err(StoreError::Invalid("药事会决议须写明会议和理由".into()));
        }
        let mut all: Vec<Decision> = self
            .rx_decisions()?
            .into_iter()
            .map(|r| r.decision)
            .collect();
        all.push(d.clone());
        // Decisions take effect in date order (recording order within a day).
        all.sort_by_key(|d| d.effective);
        apply_decisions(&RxState::shipped().knowledge, &all).map_err(StoreError::Invalid)?;
        let at = now_string();
        let entry = d.entry.as_ref().map(|e| e.to_string());
        let effective = d.effective.format("%Y-%m-%d").to_string();
        let seq = self.db.write(|tx| {
            tx.exec(
                "INSERT INTO rx_decision (at, actor, meeting, kind, drug, effective, reason, entry) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                &[at.as_str().into(), actor.user.as_str().into(), d.meeting.trim().into(), d.kind.as_str().into(), d.drug.as_str().into(), effective.as_str().into(), d.reason.trim().into(), entry.clone().into()],
            )?;
            let seq = tx.scalar_int("SELECT max(seq) FROM rx_decision", &[])?;
            AuditRow::by(actor, &at, &format!("formulary-{}", d.kind))
                .on("Formulary", &d.drug)
                .version(seq)
                .reason(Some(d.reason.trim()))
                .append(tx)?;
            Ok(seq)
        })?;
        self.load_rx()?;
        Ok(seq)
    }

    // ---- Post-hoc review (处方点评) ----

    /// Samples `n` prescriptions of an institution's month (dispensed or passed)
    /// not sampled before; deterministic for a seed. Returns the number sampled.
    pub fn rx_sample(
        &self,
        actor: &Actor,
        month: &str,
        inst: &str,
        n: usize,
        seed: u64,
    ) -> Result<usize, StoreError> {
        if !actor.scope.allows(Some(inst), None, None, None)
            && !matches!(actor.scope, Scope::Community(_))
        {
            return Err(StoreError::Forbidden("不在您的管理范围内".into()));
        }
        if n == 0 || n > 1000 {
            return Err(StoreError::Invalid("抽样张数须在 1–1000 之间".into()));
        }
        if NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").is_err() {
            return Err(StoreError::Invalid(format!(
                "月份 {month} 格式应为 YYYY-MM"
            )));
        }
        let at = now_string();
        self.db.write(|tx| {
            let rows = tx.query(
                "SELECT p.id, p.comm, p.prescriber FROM rx_prescription p WHERE p.inst = ? AND p.month = ? AND p.status IN ('dispensed', 'passed')
                 AND NOT EXISTS (SELECT 1 FROM rx_comment c WHERE c.rx = p.id) ORDER BY p.id",
                &[inst.into(), month.into()],
            )?;
            if let Some(Some(comm)) = rows.first().map(|r| r[1].as_str())
                && let Scope::Community(c) = &actor.scope
                && c != comm
            {
                return Err(StoreError::Forbidden("不在您的管理范围内".into()));
            }
            // Deterministic shuffle: order by a keyed hash of the id.
            let mut keyed: Vec<(u64, &Row)> = rows.iter().map(|r| (mix(seed, r[0].as_str().unwrap_or("")), r)).collect();
            keyed.sort_by_key(|(k, _)| *k);
            let take = keyed.len().min(n);
            for (_, r) in keyed.into_iter().take(take) {
                tx.exec(
                    "INSERT INTO rx_comment (rx, month, inst, comm, prescriber, sampled_at, sampled_by, version) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                    &[r[0].clone(), month.into(), inst.into(), r[1].clone(), r[2].clone(), at.as_str().into(), actor.user.as_str().into()],
                )?;
            }
            AuditRow::by(actor, &at, "rx-comment-sample")
                .on("Organization", inst)
                .reason(Some(&format!("{month} 抽取 {take} 张")))
                .append(tx)?;
            Ok(take)
        })
    }

    pub fn rx_comments(
        &self,
        scope: &Scope,
        month: &str,
        inst: Option<&str>,
    ) -> Result<Vec<CommentRow>, StoreError> {
        let mut p: Vec<Val> = vec![month.into()];
        let mut w = String::new();
        match scope {
            Scope::County => {}
            Scope::Community(c) => {
                w.push_str(" AND c.comm = ?");
                p.push(c.as_str().into());
            }
            Scope::Institution(i) => {
                w.push_str(" AND c.inst = ?");
                p.push(i.as_str().into());
            }
        }
        if let Some(i) = inst {
            w.push_str(" AND c.inst = ?");
            p.push(i.into());
        }
        self.db.read(|c| {
            let rows = c.query(
                &format!("SELECT c.rx, c.month, c.inst, c.prescriber, c.result, c.codes, c.note, c.reviewer, c.version, p.findings, p.prescriber_name FROM rx_comment c JOIN rx_prescription p ON p.id = c.rx WHERE c.month = ?{w} ORDER BY c.inst, c.rx"),
                &p,
            )?;
            Ok(rows.into_iter().map(comment_from_row).collect())
        })
    }

    /// Records a post-hoc verdict on a sampled prescription.
    pub fn rx_comment(
        &self,
        actor: &Actor,
        role: Role,
        rx: &str,
        version: i64,
        verdict: &CommentVerdict,
    ) -> Result<(), StoreError> {
        let (result, codes, note) = (
            verdict.result.as_str(),
            &verdict.codes,
            verdict.note.as_str(),
        );
        if role != Role::Pharmacist {
            return Err(StoreError::Forbidden("只有药师可以点评处方".into()));
        }
        if !COMMENT_RESULTS.iter().any(|(c, _)| *c == result) {
            return Err(StoreError::Invalid(format!("点评结果 {result} 无效")));
        }
        for c in codes {
            if !COMMENT_CODES.iter().any(|(k, _)| k == c) {
                return Err(StoreError::Invalid(format!("点评类别 {c} 无效")));
            }
        }
        let prefix = match result {
            "non-standard" => "N",
            "inappropriate" => "I",
            "abnormal" => "A",
            _ => "",
        };
        if prefix.is_empty() && !codes.is_empty() {
            return Err(StoreError::Invalid("合理处方不应勾选问题类别".into()));
        }
        if !prefix.is_empty() && (codes.is_empty() || codes.iter().any(|c| !c.starts_with(prefix)))
        {
            return Err(StoreError::Invalid("请勾选与点评结果相符的问题类别".into()));
        }
        let at = now_string();
        let codes_json = serde_json::to_string(codes).unwrap_or_else(|_| "[]".into());
        self.db.write(|tx| {
            let row = tx
                .query_one("SELECT inst, comm, version FROM rx_comment WHERE rx = ?", &[rx.into()])?
                .ok_or_else(|| StoreError::NotFound(format!("处方 {rx} 未被抽样")))?;
            if !actor.scope.allows(row[0].as_str(), row[1].as_str(), None, None) {
                return Err(StoreError::NotFound(format!("处方 {rx} 未被抽样")));
            }
            let cur = row[2].as_int().unwrap_or(0);
            if cur != version {
                return Err(StoreError::VersionConflict { current: cur });
            }
            tx.exec(
                "UPDATE rx_comment SET result = ?, codes = ?, note = ?, reviewer = ?, reviewed_at = ?, version = version + 1 WHERE rx = ?",
                &[result.into(), codes_json.as_str().into(), note.trim().into(), actor.user.as_str().into(), at.as_str().into(), rx.into()],
            )?;
            AuditRow::by(actor, &at, "rx-comment")
                .on("Prescription", rx)
                .version(version + 1)
                .reason(Some(&format!("{result} {codes_json}")))
                .append(tx)
        })
    }

    /// Post-hoc report for a month, per institution (`by_prescriber` false) or per prescriber.
    pub fn rx_comment_report(
        &self,
        scope: &Scope,
        month: &str,
        by_prescriber: bool,
    ) -> Result<Vec<CommentStat>, StoreError> {
        let rows = self.rx_comments(scope, month, None)?;
        let mut out: Vec<CommentStat> = Vec::new();
        for r in rows {
            let key = if by_prescriber {
                r.prescriber.clone()
            } else {
                r.inst.clone()
            };
            let pos = match out.iter().position(|s| s.key == key) {
                Some(p) => p,
                None => {
                    let label = if by_prescriber {
                        r.prescriber_name.clone()
                    } else {
                        String::new()
                    };
                    out.push(CommentStat {
                        key,
                        label,
                        ..Default::default()
                    });
                    out.len() - 1
                }
            };
            let s = &mut out[pos];
            s.sampled += 1;
            if let Some(res) = &r.result {
                s.reviewed += 1;
                match res.as_str() {
                    "rational" => s.rational += 1,
                    "non-standard" => s.non_standard += 1,
                    "inappropriate" => s.inappropriate += 1,
                    _ => s.abnormal += 1,
                }
                for c in &r.codes {
                    match s.top_codes.iter_mut().find(|(k, _)| k == c) {
                        Some(e) => e.1 += 1,
                        None => s.top_codes.push((c.clone(), 1)),
                    }
                }
            }
        }
        for s in &mut out {
            s.rational_permille = if s.reviewed > 0 {
                s.rational * 1000 / s.reviewed
            } else {
                0
            };
            s.top_codes
                .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            s.top_codes.truncate(5);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

impl Store {
    /// Appends one audit row per (subject, note) in one transaction (CDS Hooks feedback).
    pub fn record_feedback(
        &self,
        actor: &Actor,
        action: &str,
        rows: &[(String, String)],
    ) -> Result<(), StoreError> {
        let at = now_string();
        self.db.write(|tx| {
            for (subject, note) in rows {
                AuditRow::by(actor, &at, action)
                    .on("Card", subject)
                    .reason(Some(note))
                    .append(tx)?;
            }
            Ok(())
        })
    }
}

/// A historical prescription to load (the demo county).
pub struct ImportRx {
    pub id: String,
    pub patient: String,
    pub patient_name: String,
    pub inst: String,
    pub prescriber: String,
    pub prescriber_name: String,
    /// RFC 3339 UTC.
    pub submitted: String,
    pub rx: Prescription,
}

impl Store {
    /// Loads historical prescriptions in one transaction (with one audit row):
    /// the rules run on each; before `today` clean and warned ones end dispensed
    /// (warned ones after a pharmacist's pass) and blocked ones returned; today's
    /// wait in the review queue like live ones. Existing ids are skipped.
    pub fn rx_import(
        &self,
        actor: &Actor,
        rows: &[ImportRx],
        today: NaiveDate,
    ) -> Result<usize, StoreError> {
        let state = self.rx_state();
        let comm_of: std::collections::HashMap<String, Option<String>> = self
            .org_tree()?
            .into_iter()
            .map(|n| (n.id, n.comm))
            .collect();
        let at = now_string();
        self.db.write(|tx| {
            let mut n = 0;
            for r in rows {
                let Reviewed { verdict, top, body, findings: fj } = Reviewed::of(&state.knowledge, &r.rx)?;
                let month = local_month(&r.submitted);
                let day = DateTime::parse_from_rfc3339(&r.submitted)
                    .map(|t| (t.with_timezone(&Utc) + Duration::hours(8)).date_naive())
                    .unwrap_or(today);
                let live = day >= today;
                let (status, reviewer, note) = match (verdict, live) {
                    (Verdict::Pass, _) if !state.settings.review_all => ("passed", Some("system"), Some("规则审核未发现问题,系统自动通过")),
                    (_, true) => ("pending", None, None),
                    (Verdict::Blocked, false) => ("returned", Some("pharmacist"), Some("存在拦截级问题,退回医师修改")),
                    (_, false) => ("passed", Some("pharmacist"), Some("药师审核通过")),
                };
                let status = if status == "passed" && !live { "dispensed" } else { status };
                let due = plus_minutes(&r.submitted, state.settings.minutes(r.rx.setting));
                let comm = comm_of.get(&r.inst).cloned().flatten();
                let done = reviewer.is_some();
                let changed = tx.exec(
                    &format!("INSERT INTO rx_prescription ({RX_COLS}) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"),
                    &[
                        r.id.as_str().into(), r.patient.as_str().into(), r.patient_name.as_str().into(), r.inst.as_str().into(), comm.into(),
                        r.prescriber.as_str().into(), r.prescriber_name.as_str().into(), status.into(), verdict_code(verdict).into(), top.into(),
                        body.into(), fj.into(), Val::Int(state.version), r.submitted.as_str().into(), r.submitted.as_str().into(), due.as_str().into(),
                        reviewer.into(), done.then_some(r.submitted.as_str()).into(), note.into(),
                        (status == "dispensed").then_some("pharmacist").into(), (status == "dispensed").then_some(r.submitted.as_str()).into(), month.into(),
                    ],
                )?;
                n += changed as usize;
                if changed == 1 {
                    event(tx, &r.id, &r.submitted, &r.prescriber, "submit", None, "pending", None)?;
                    if let Some(who) = reviewer {
                        let (action, to) = if status == "returned" { ("return", "returned") } else { ("pass", "passed") };
                        event(tx, &r.id, &r.submitted, who, action, Some("pending"), to, note)?;
                    }
                }
            }
            AuditRow::by(actor, &at, "rx-import").reason(Some(&format!("载入 {n} 张处方"))).append(tx)?;
            Ok(n)
        })
    }
}

/// What the rules said about a prescription, ready to store.
struct Reviewed {
    verdict: Verdict,
    /// The most severe finding's rule (for the queue).
    top: Option<&'static str>,
    /// The prescription as JSON.
    body: String,
    /// The findings as JSON.
    findings: String,
}

impl Reviewed {
    fn of(k: &Knowledge, rx: &Prescription) -> Result<Reviewed, StoreError> {
        let findings = yigong_rx::review(k, rx);
        Ok(Reviewed {
            verdict: yigong_rx::verdict(&findings),
            top: findings.iter().max_by_key(|f| f.severity).map(|f| f.rule),
            body: serde_json::to_string(rx).map_err(|e| StoreError::Invalid(e.to_string()))?,
            findings: serde_json::to_string(&findings)
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
        })
    }
}

fn rx_patient_id(input: &RxInput) -> String {
    input
        .patient
        .trim()
        .trim_start_matches("Patient/")
        .to_string()
}

fn comment_from_row(r: Row) -> CommentRow {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Val::Null);
    let rx = next().into_string().unwrap_or_default();
    let month = next().into_string().unwrap_or_default();
    let inst = next().into_string().unwrap_or_default();
    let prescriber = next().into_string().unwrap_or_default();
    let result = next().into_string();
    let codes = next()
        .into_string()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default();
    let note = next().into_string();
    let reviewer = next().into_string();
    let version = next().as_int().unwrap_or(0);
    let findings: Value = next()
        .into_string()
        .and_then(|f| serde_json::from_str(&f).ok())
        .unwrap_or(Value::Null);
    let prescriber_name = next().into_string().unwrap_or_default();
    let mut suggested: Vec<String> = Vec::new();
    for f in findings.as_array().into_iter().flatten() {
        if let Some(c) = f["rule"].as_str().and_then(comment_code_for)
            && !suggested.iter().any(|s| s == c)
        {
            suggested.push(c.to_string());
        }
    }
    CommentRow {
        rx,
        month,
        inst,
        prescriber,
        prescriber_name,
        result,
        codes,
        note,
        reviewer,
        version,
        suggested,
    }
}

/// A keyed 64-bit mix (SplitMix64 over FNV-1a of the id) for deterministic sampling.
fn mix(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h = h.wrapping_add(0x9e3779b97f4a7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d049bb133111eb);
    h ^ (h >> 31)
}

#[allow(clippy::too_many_arguments)]
fn event(
    tx: &mut dyn Sql,
    rx: &str,
    at: &str,
    actor: &str,
    action: &str,
    from: Option<&str>,
    to: &str,
    note: Option<&str>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO rx_event (rx, at, actor, action, from_status, to_status, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
        &[rx.into(), at.into(), actor.into(), action.into(), from.into(), to.into(), note.into()],
    )?;
    // Review decisions feed the indicators (review intervention rate).
    if matches!(action, "pass" | "return" | "timeout-pass") {
        let inst = tx
            .query_one(
                "SELECT inst FROM rx_prescription WHERE id = ?",
                &[rx.into()],
            )?
            .and_then(|r| r.into_iter().next())
            .and_then(Val::into_string)
            .unwrap_or_default();
        crate::metrics::bump(tx, "rx_reviewed", &inst, at, 1)?;
        if action == "return" {
            crate::metrics::bump(tx, "rx_intervened", &inst, at, 1)?;
        }
    }
    Ok(())
}
