//! Prescription review pages (集中审方): the pharmacists' queue and the
//! prescribers' own list, the prescription form (new and edit after a return),
//! the detail with the engine's findings per drug line and the steps the user may
//! take (pass, return, resubmit, dispense, cancel), the formulary browser, the
//! pharmacy committee's decisions and post-hoc review (处方点评).
//!
//! Every change goes through the store's workflow API, which checks roles,
//! scope and versions; a refusal comes back as the page with its Chinese message
//! and the store's HTTP status.

use super::*;
use axum::routing::post;
use serde::Serialize;
use std::sync::OnceLock;
use yigong_rx::Knowledge;
use yigong_rx::knowledge::{Drug, FREQUENCIES, ROUTES, atc_matches, frequency_label, route_label};
use yigong_rx::model::{Allergy, CATEGORIES, Item, Sex, SkinTest, age_label};
use yigong_store::rx::{
    COMMENT_CODES, COMMENT_RESULTS, Decision, ReviewAction, RxInput, RxRow, status_label,
};
use yigong_store::{Role, StoreError};

pub fn add_templates(env: &mut Environment<'static>) {
    for (name, src) in [
        ("rx_nav.html", include_str!("../../templates/rx_nav.html")),
        (
            "rx_queue.html",
            include_str!("../../templates/rx_queue.html"),
        ),
        ("rx_form.html", include_str!("../../templates/rx_form.html")),
        (
            "rx_detail.html",
            include_str!("../../templates/rx_detail.html"),
        ),
        (
            "rx_formulary.html",
            include_str!("../../templates/rx_formulary.html"),
        ),
        ("rx_drug.html", include_str!("../../templates/rx_drug.html")),
        (
            "rx_decisions.html",
            include_str!("../../templates/rx_decisions.html"),
        ),
        (
            "rx_comments.html",
            include_str!("../../templates/rx_comments.html"),
        ),
    ] {
        env.add_template(name, src).expect("template parses");
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rx", get(queue))
        .route("/rx/new", get(new_form).post(create))
        .route("/rx/formulary", get(formulary))
        .route("/rx/formulary/{code}", get(drug_page))
        .route("/rx/decisions", get(decisions).post(decide))
        .route("/rx/comments", get(comments))
        .route("/rx/comments/sample", post(sample))
        .route("/rx/comments/{rx}", post(comment))
        .route("/rx/{id}", get(detail))
        .route("/rx/{id}/edit", get(edit_form).post(resubmit))
        .route("/rx/{id}/review", post(review))
        .route("/rx/{id}/dispense", post(dispense))
        .route("/rx/{id}/cancel", post(cancel))
}

// ---- Shared helpers ----

/// The status and Chinese message the API would answer for a store error.
fn issue_of(e: StoreError) -> (StatusCode, String) {
    let i = crate::service::store_issue(e);
    (
        StatusCode::from_u16(i.status).unwrap_or(StatusCode::BAD_REQUEST),
        i.zh,
    )
}

fn store_fail(st: &AppState, p: &Principal, e: StoreError) -> Response {
    let (status, msg) = issue_of(e);
    error_page(st, p, status, &msg)
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

/// A pharmacist of the community's (or county's) pharmacy department: reviews.
fn may_review(p: &Principal) -> bool {
    p.role() == Role::Pharmacist && !matches!(p.0.scope, Scope::Institution(_))
}

fn may_prescribe(p: &Principal) -> bool {
    matches!(p.role(), Role::Clinician | Role::VillageDoctor) && p.0.institution.is_some()
}

fn may_decide(p: &Principal) -> bool {
    p.role() == Role::SystemAdmin
        || (p.role() == Role::Pharmacist && !matches!(p.0.scope, Scope::Institution(_)))
}

/// Numbers as a prescription writes them: no trailing zeros.
fn num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn strength_label(d: &Drug) -> String {
    format!("{}{}/{}", num(d.strength), d.strength_unit, d.unit)
}

fn drug_option(d: &Drug) -> minijinja::Value {
    context! { code => d.code.clone(), label => format!("{} {} {}", d.name, d.form, strength_label(d)) }
}

fn frequencies() -> Vec<minijinja::Value> {
    FREQUENCIES
        .iter()
        .map(|(c, l, _)| context! { code => *c, label => *l })
        .collect()
}

fn routes_list() -> Vec<minijinja::Value> {
    ROUTES
        .iter()
        .map(|(c, l)| context! { code => *c, label => *l })
        .collect()
}

const SKIN: [(&str, &str); 4] = [
    ("", "未注明"),
    ("negative", "阴性(-)"),
    ("positive", "阳性(+)"),
    ("continuing", "续用(已皮试)"),
];

fn skin_code(s: SkinTest) -> &'static str {
    match s {
        SkinTest::NotRecorded => "",
        SkinTest::Negative => "negative",
        SkinTest::Positive => "positive",
        SkinTest::Continuing => "continuing",
    }
}

fn skin_label(s: SkinTest) -> &'static str {
    let c = skin_code(s);
    SKIN.iter().find(|(k, _)| *k == c).map_or("", |(_, l)| l)
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "block" => 3,
        "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

fn severity_label(s: &str) -> &'static str {
    match s {
        "block" => "拦截",
        "warning" => "警告",
        "info" => "提示",
        _ => "",
    }
}

fn category_label(code: &str) -> &'static str {
    CATEGORIES
        .iter()
        .find(|c| c.code() == code)
        .map_or("其他", |c| c.label())
}

fn verdict_label(v: &str) -> &'static str {
    match v {
        "blocked" => "拦截",
        "review" => "警告",
        "pass" => "未发现问题",
        _ => "",
    }
}

/// CSS class of a verdict (the severity it stands for).
fn verdict_class(v: &str) -> &'static str {
    match v {
        "blocked" => "sev-block",
        "review" => "sev-warning",
        _ => "sev-pass",
    }
}

fn action_label(a: &str) -> &'static str {
    match a {
        "submit" => "提交处方",
        "pass" => "审核通过",
        "return" => "退回医师修改",
        "resubmit" => "修改后重新提交",
        "dispense" => "发药",
        "cancel" => "作废",
        "timeout-pass" => "超时系统通过",
        "escalate" => "超时督办",
        _ => "处理",
    }
}

fn decision_kind_label(k: &str) -> &'static str {
    match k {
        "add" => "增补",
        "remove" => "删除",
        "restrict" => "限制使用",
        "unrestrict" => "取消限制",
        "update" => "修改",
        _ => "未知",
    }
}

const DECISION_KINDS: [&str; 5] = ["add", "remove", "restrict", "unrestrict", "update"];

const STATUSES: [&str; 5] = ["pending", "passed", "returned", "dispensed", "cancelled"];

/// A finding as stored (the engine's `Finding`, serialised).
#[derive(Deserialize)]
struct StoredFinding {
    rule: String,
    category: String,
    severity: String,
    #[serde(default)]
    items: Vec<usize>,
    message: String,
    #[serde(default)]
    source: String,
}

fn findings_of(rx: &RxRow) -> Vec<StoredFinding> {
    serde_json::from_value(rx.findings.clone()).unwrap_or_default()
}

/// The message of the most severe finding, for list rows.
fn top_message(rx: &RxRow) -> String {
    findings_of(rx)
        .into_iter()
        .max_by_key(|f| severity_rank(&f.severity))
        .map(|f| f.message)
        .unwrap_or_default()
}

fn inst_name(names: &HashMap<String, String>, id: &str) -> String {
    names.get(id).cloned().unwrap_or_else(|| id.to_string())
}

fn is_institution(n: &TreeNode) -> bool {
    !matches!(
        n.kind.as_deref(),
        Some("county" | "community" | "department") | None
    )
}

/// Institutions in the user's scope (for choosing one to sample).
fn institutions_in_scope(st: &AppState, p: &Principal) -> Vec<minijinja::Value> {
    st.svc
        .org_tree()
        .iter()
        .filter(|n| {
            is_institution(n)
                && match &p.0.scope {
                    Scope::County => true,
                    Scope::Community(c) => n.comm.as_deref() == Some(c),
                    Scope::Institution(i) => *i == n.id,
                }
        })
        .map(|n| context! { id => n.id.clone(), name => n.name.clone() })
        .collect()
}

fn now_local() -> chrono::DateTime<chrono_tz::Tz> {
    Utc::now().with_timezone(&Shanghai)
}

/// Form fields in order (checkboxes may repeat a name).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.trim())
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

fn base_ctx(st: &AppState, p: &Principal, title: &str, sub: &str) -> minijinja::Value {
    context! {
        title => title, nav => "rx", sub => sub, user => user_ctx(st, p),
        can_prescribe => may_prescribe(p), can_decide => may_decide(p),
    }
}

fn merge(a: minijinja::Value, b: minijinja::Value) -> minijinja::Value {
    context! { ..a, ..b }
}

// ---- Queue and lists ----

#[derive(Deserialize, Default)]
struct QueueQuery {
    status: Option<String>,
    done: Option<String>,
    act: Option<String>,
}

fn row_ctx(rx: &RxRow, names: &HashMap<String, String>, now: &str) -> minijinja::Value {
    let overdue = rx.status == "pending" && (rx.overdue || rx.due.as_str() < now);
    context! {
        id => rx.id.clone(), patient => rx.patient.clone(), patient_name => rx.patient_name.clone(),
        prescriber => rx.prescriber_name.clone(), inst => inst_name(names, &rx.inst),
        status => rx.status.clone(), status_label => status_label(&rx.status),
        verdict => rx.verdict.clone(), verdict_label => verdict_label(&rx.verdict), verdict_class => verdict_class(&rx.verdict),
        top => top_message(rx), top_rule => rx.top_rule.clone(),
        submitted => local_time(&rx.submitted), due => local_time(&rx.due), overdue => overdue,
        note => rx.review_note.clone(),
    }
}

async fn queue(State(st): State<AppState>, Query(q): Query<QueueQuery>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let role = p.role();
    let reviewer = may_review(&p);
    let prescriber = matches!(role, Role::Clinician | Role::VillageDoctor);
    let status = q
        .status
        .clone()
        .filter(|s| STATUSES.contains(&s.as_str()) || s == "all")
        .unwrap_or_else(|| {
            if reviewer {
                "pending".into()
            } else if role == Role::Pharmacist {
                // An institution's pharmacist dispenses what the centre passed.
                "passed".into()
            } else {
                "all".into()
            }
        });
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    let user = p.0.name.clone();
    let filter = (status != "all").then(|| status.clone());
    let res = blocking(move || -> Result<_, StoreError> {
        if prescriber {
            // Own prescriptions: the returned ones first, then the rest.
            let returned = store.rx_list(&scope, Some("returned"), Some(&user), 100)?;
            let mine = store.rx_list(&scope, filter.as_deref(), Some(&user), 100)?;
            Ok((vec![], returned, mine))
        } else {
            let counts = store.rx_counts(&scope)?;
            let rows = store.rx_list(&scope, filter.as_deref(), None, 200)?;
            Ok((counts, vec![], rows))
        }
    })
    .await;
    let (counts, returned, rows) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, e),
    };
    let names = st.svc.org_names();
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let tabs: Vec<minijinja::Value> =
        std::iter::once(context! { code => "all", label => "全部", n => total })
            .chain(STATUSES.iter().map(|s| {
                let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
                context! { code => *s, label => status_label(s), n => n }
            }))
            .collect();
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .filter(|r| !(prescriber && r.status == "returned" && status == "all"))
        .map(|r| row_ctx(r, &names, &now))
        .collect();
    let returned: Vec<minijinja::Value> =
        returned.iter().map(|r| row_ctx(r, &names, &now)).collect();
    let title = if reviewer {
        "审方队列"
    } else if prescriber {
        "我的处方"
    } else {
        "处方审核"
    };
    let done = q.done.clone().map(|id| {
        let what = match q.act.as_deref() {
            Some("pass") => "已审核通过",
            Some("return") => "已退回医师",
            _ => "已处理",
        };
        context! { id => id, what => what }
    });
    render(
        &st,
        "rx_queue.html",
        merge(
            base_ctx(&st, &p, title, "queue"),
            context! {
                reviewer => reviewer, prescriber => prescriber, status => status, tabs => tabs,
                show_tabs => !prescriber, rows => rows, returned => returned, done => done,
                my_tabs => STATUSES.iter().map(|s| context! { code => *s, label => status_label(s) }).collect::<Vec<_>>(),
            },
        ),
    )
}

// ---- The prescription form ----

#[derive(Serialize, Deserialize, Default, Clone)]
struct LineForm {
    drug: String,
    dose: String,
    unit: String,
    frequency: String,
    route: String,
    days: String,
    group: String,
    skin: String,
}

#[derive(Serialize, Default, Clone)]
struct RxForm {
    patient: String,
    setting: String,
    long_term: bool,
    diagnoses: String,
    weight: String,
    pregnant: String,
    lactating: String,
    egfr: String,
    hepatic: String,
    allergies: String,
    lines: Vec<LineForm>,
}

const MIN_LINES: usize = 5;
const MAX_LINES: usize = 20;

impl RxForm {
    fn blank(patient: &str, lines: usize) -> RxForm {
        RxForm {
            patient: patient.to_string(),
            setting: "outpatient".into(),
            lines: vec![
                LineForm {
                    frequency: "tid".into(),
                    route: "po".into(),
                    ..Default::default()
                };
                lines.clamp(MIN_LINES, MAX_LINES)
            ],
            ..Default::default()
        }
    }

    fn from_fields(f: &Fields) -> RxForm {
        let n = (0..MAX_LINES)
            .rev()
            .find(|i| f.0.iter().any(|(k, _)| k.starts_with(&format!("l{i}_"))))
            .map_or(0, |i| i + 1);
        let lines = (0..n)
            .map(|i| {
                let g = |k: &str| f.get(&format!("l{i}_{k}")).to_string();
                LineForm {
                    drug: g("drug"),
                    dose: g("dose"),
                    unit: g("unit"),
                    frequency: g("frequency"),
                    route: g("route"),
                    days: g("days"),
                    group: g("group"),
                    skin: g("skin"),
                }
            })
            .collect();
        let mut form = RxForm {
            patient: f.get("patient").to_string(),
            setting: f.get("setting").to_string(),
            long_term: !f.get("long_term").is_empty(),
            diagnoses: f.get("diagnoses").to_string(),
            weight: f.get("weight").to_string(),
            pregnant: f.get("pregnant").to_string(),
            lactating: f.get("lactating").to_string(),
            egfr: f.get("egfr").to_string(),
            hepatic: f.get("hepatic").to_string(),
            allergies: f.get("allergies").to_string(),
            lines,
        };
        form.pad();
        form
    }

    /// At least five lines, and one empty line to add to when all are used.
    fn pad(&mut self) {
        let used = self
            .lines
            .iter()
            .rposition(|l| !l.drug.is_empty())
            .map_or(0, |i| i + 1);
        let want = (used + 1).clamp(MIN_LINES, MAX_LINES);
        while self.lines.len() < want {
            self.lines.push(LineForm {
                frequency: "tid".into(),
                route: "po".into(),
                ..Default::default()
            });
        }
    }

    /// The form of a stored prescription (to edit it after a return).
    fn from_rx(rx: &RxRow) -> RxForm {
        let b = &rx.body;
        let opt_bool = |v: Option<bool>| match v {
            Some(true) => "yes".to_string(),
            Some(false) => "no".to_string(),
            None => String::new(),
        };
        let mut form = RxForm {
            patient: rx.patient.clone(),
            setting: match b.setting {
                yigong_rx::model::Setting::Outpatient => "outpatient",
                yigong_rx::model::Setting::Emergency => "emergency",
                yigong_rx::model::Setting::Inpatient => "inpatient",
            }
            .into(),
            long_term: b.long_term,
            diagnoses: b.diagnoses.join(", "),
            weight: b.patient.weight_kg.map(num).unwrap_or_default(),
            pregnant: opt_bool(b.patient.pregnant),
            lactating: opt_bool(b.patient.lactating),
            egfr: b.patient.egfr.map(num).unwrap_or_default(),
            hepatic: b.patient.hepatic.clone().unwrap_or_default(),
            allergies: b
                .patient
                .allergies
                .iter()
                .filter(|a| !a.text.trim().is_empty())
                .map(|a| a.text.trim().to_string())
                .collect::<Vec<_>>()
                .join("、"),
            lines: b
                .items
                .iter()
                .map(|it| LineForm {
                    drug: it.drug.clone(),
                    dose: num(it.dose),
                    unit: it.unit.clone(),
                    frequency: it.frequency.clone(),
                    route: it.route.clone(),
                    days: it.days.to_string(),
                    group: it.group.map(|g| g.to_string()).unwrap_or_default(),
                    skin: skin_code(it.skin_test).into(),
                })
                .collect(),
        };
        form.pad();
        form
    }

    /// What the store takes, or the first thing wrong with the form (in Chinese).
    fn to_input(&self, k: &Knowledge) -> Result<RxInput, String> {
        let patient = self.patient.trim();
        if patient.is_empty() {
            return Err("请填写患者编号".into());
        }
        let setting = match self.setting.as_str() {
            "" | "outpatient" => yigong_rx::model::Setting::Outpatient,
            "emergency" => yigong_rx::model::Setting::Emergency,
            "inpatient" => yigong_rx::model::Setting::Inpatient,
            other => return Err(format!("就诊类型“{other}”无效")),
        };
        let mut diagnoses = Vec::new();
        for d in self
            .diagnoses
            .split([',', ',', '、', ';', ';', ' '])
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            let code = d.to_ascii_uppercase();
            yigong_core::icd10::Icd10::parse(&code).map_err(|e| e.message_zh().to_string())?;
            diagnoses.push(code);
        }
        let number = |v: &str, what: &str| -> Result<Option<f64>, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(format!("{what}“{v}”不是有效的正数")),
            }
        };
        let yes_no = |v: &str, what: &str| -> Result<Option<bool>, String> {
            match v {
                "" => Ok(None),
                "yes" => Ok(Some(true)),
                "no" => Ok(Some(false)),
                _ => Err(format!("{what}的取值无效")),
            }
        };
        let hepatic = match self.hepatic.trim().to_ascii_uppercase().as_str() {
            "" => None,
            h @ ("A" | "B" | "C") => Some(h.to_string()),
            _ => return Err("肝功能分级须为 Child-Pugh A、B 或 C".into()),
        };
        let mut items = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            let n = i + 1;
            let drug = l.drug.trim();
            if drug.is_empty() {
                if !l.dose.trim().is_empty() || !l.days.trim().is_empty() {
                    return Err(format!("第 {n} 行没有选择药品"));
                }
                continue;
            }
            let d = resolve_drug(k, drug)
                .ok_or_else(|| format!("第 {n} 行药品“{drug}”不在统一用药目录中,请从目录中选择"))?;
            let dose = number(&l.dose, &format!("第 {n} 行剂量"))?
                .ok_or_else(|| format!("第 {n} 行{}缺少剂量", d.name))?;
            let unit = if l.unit.trim().is_empty() {
                d.dose_unit.clone()
            } else {
                l.unit.trim().to_string()
            };
            let frequency = l.frequency.trim();
            if !FREQUENCIES.iter().any(|(c, _, _)| *c == frequency) {
                return Err(format!("第 {n} 行请选择给药频次"));
            }
            let route = l.route.trim();
            if !ROUTES.iter().any(|(c, _)| *c == route) {
                return Err(format!("第 {n} 行请选择给药途径"));
            }
            let days: u32 = match l.days.trim().parse() {
                Ok(v) if v > 0 => v,
                _ => {
                    return Err(format!("第 {n} 行用药天数“{}”须为正整数", l.days.trim()));
                }
            };
            let group = match l.group.trim() {
                "" => None,
                g => Some(
                    g.parse::<u32>()
                        .map_err(|_| format!("第 {n} 行输液组号“{g}”须为整数"))?,
                ),
            };
            let skin_test = match l.skin.as_str() {
                "" => SkinTest::NotRecorded,
                "negative" => SkinTest::Negative,
                "positive" => SkinTest::Positive,
                "continuing" => SkinTest::Continuing,
                _ => return Err(format!("第 {n} 行皮试结果无效")),
            };
            items.push(Item {
                drug: d.code.clone(),
                dose,
                unit,
                frequency: frequency.to_string(),
                route: route.to_string(),
                days,
                group,
                skin_test,
            });
        }
        if items.is_empty() {
            return Err("请至少填写一种药品".into());
        }
        let egfr = match self.egfr.trim() {
            "" => None,
            v => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && (0.0..=200.0).contains(&x) => Some(x),
                _ => return Err(format!("eGFR“{v}”须为 0–200 之间的数")),
            },
        };
        let allergies = self
            .allergies
            .split([',', ',', '、', ';', ';'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| Allergy {
                code: None,
                text: a.to_string(),
            })
            .collect();
        Ok(RxInput {
            patient: patient.to_string(),
            setting,
            long_term: self.long_term,
            diagnoses,
            items,
            weight_kg: number(&self.weight, "体重")?,
            pregnant: yes_no(&self.pregnant, "妊娠")?,
            lactating: yes_no(&self.lactating, "哺乳")?,
            egfr,
            hepatic,
            allergies,
        })
    }
}

/// A drug typed or chosen in the form: its code, "code name …" from the list,
/// or its exact Chinese name.
fn resolve_drug<'k>(k: &'k Knowledge, typed: &str) -> Option<&'k Drug> {
    k.drug(typed)
        .or_else(|| typed.split_whitespace().next().and_then(|c| k.drug(c)))
        .or_else(|| k.by_name(typed).map(|i| &k.drugs[i]))
}

#[derive(Deserialize, Default)]
struct NewQuery {
    patient: Option<String>,
    lines: Option<usize>,
}

struct FormPage<'a> {
    form: &'a RxForm,
    edit: Option<(&'a str, i64)>,
    message: Option<String>,
    note: Option<String>,
}

async fn render_form(st: &AppState, p: &Principal, page: FormPage<'_>) -> Response {
    let state = st.svc.store.rx_state();
    let drugs: Vec<minijinja::Value> = state.knowledge.drugs.iter().map(drug_option).collect();
    let store = st.svc.store.clone();
    let pid = page.form.patient.trim().to_string();
    let patient_name = if pid.is_empty() {
        None
    } else {
        blocking(move || store.display_names("Patient", std::slice::from_ref(&pid)))
            .await
            .ok()
            .and_then(|m| m.into_values().next())
    };
    let title = if page.edit.is_some() {
        "修改处方"
    } else {
        "开具处方"
    };
    render(
        st,
        "rx_form.html",
        merge(
            base_ctx(st, p, title, "new"),
            context! {
                form => page.form.clone(), drugs => drugs, frequencies => frequencies(), routes => routes_list(),
                skins => SKIN.iter().map(|(c, l)| context! { code => *c, label => *l }).collect::<Vec<_>>(),
                message => page.message, note => page.note, patient_name => patient_name,
                edit => page.edit.map(|(id, v)| context! { id => id, version => v }),
                action => page.edit.map_or("/rx/new".to_string(), |(id, _)| format!("/rx/{id}/edit")),
                empty_formulary => state.knowledge.drugs.is_empty(),
            },
        ),
    )
}

async fn new_form(State(st): State<AppState>, Query(q): Query<NewQuery>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    if !may_prescribe(&p) {
        return error_page(
            &st,
            &p,
            StatusCode::FORBIDDEN,
            "只有医疗机构的医师和乡村医生可以开具处方",
        );
    }
    let form = RxForm::blank(
        q.patient.as_deref().unwrap_or("").trim(),
        q.lines.unwrap_or(MIN_LINES),
    );
    render_form(
        &st,
        &p,
        FormPage {
            form: &form,
            edit: None,
            message: None,
            note: None,
        },
    )
    .await
}

async fn create(
    State(st): State<AppState>,
    p: Principal,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let form = RxForm::from_fields(&Fields(f));
    let state = st.svc.store.rx_state();
    let input = match form.to_input(&state.knowledge) {
        Ok(i) => i,
        Err(msg) => {
            let r = render_form(
                &st,
                &p,
                FormPage {
                    form: &form,
                    edit: None,
                    message: Some(msg),
                    note: None,
                },
            )
            .await;
            return with_status(r, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let store = st.svc.store.clone();
    let (actor, role, display) = (p.actor(), p.role(), p.0.display.clone());
    match blocking_write(move || store.rx_submit(&actor, &display, role, &input)).await {
        Ok(rx) => Redirect::to(&format!("/rx/{}", rx.id)).into_response(),
        Err(e) => {
            let (status, msg) = issue_of(e);
            let r = render_form(
                &st,
                &p,
                FormPage {
                    form: &form,
                    edit: None,
                    message: Some(msg),
                    note: None,
                },
            )
            .await;
            with_status(r, status)
        }
    }
}

async fn load(st: &AppState, p: &Principal, id: &str) -> Result<RxRow, Response> {
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    let id2 = id.to_string();
    match blocking(move || store.rx_get(&scope, &id2)).await {
        Ok(Some(rx)) => Ok(rx),
        Ok(None) => Err(error_page(
            st,
            p,
            StatusCode::NOT_FOUND,
            &format!("处方 {id} 不存在或不在您的管理范围内"),
        )),
        Err(e) => Err(store_fail(st, p, e)),
    }
}

async fn edit_form(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let rx = match load(&st, &p, &id).await {
        Ok(rx) => rx,
        Err(r) => return r,
    };
    if rx.prescriber != p.0.name {
        return error_page(
            &st,
            &p,
            StatusCode::FORBIDDEN,
            "只有开方医师本人可以修改处方",
        );
    }
    if !matches!(rx.status.as_str(), "returned" | "pending") {
        return error_page(
            &st,
            &p,
            StatusCode::CONFLICT,
            &format!("处方当前为“{}”,不能再修改", status_label(&rx.status)),
        );
    }
    let form = RxForm::from_rx(&rx);
    render_form(
        &st,
        &p,
        FormPage {
            form: &form,
            edit: Some((&rx.id, rx.version)),
            message: None,
            note: rx.review_note.clone().filter(|_| rx.status == "returned"),
        },
    )
    .await
}

async fn resubmit(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let fields = Fields(f);
    let version: i64 = fields.get("version").parse().unwrap_or(0);
    let form = RxForm::from_fields(&fields);
    let state = st.svc.store.rx_state();
    let fail_form = |msg: String| FormPage {
        form: &form,
        edit: Some((&id, version)),
        message: Some(msg),
        note: None,
    };
    let input = match form.to_input(&state.knowledge) {
        Ok(i) => i,
        Err(msg) => {
            let r = render_form(&st, &p, fail_form(msg)).await;
            return with_status(r, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let store = st.svc.store.clone();
    let (actor, role, rid) = (p.actor(), p.role(), id.clone());
    match blocking_write(move || store.rx_resubmit(&actor, role, &rid, version, &input)).await {
        Ok(rx) => Redirect::to(&format!("/rx/{}", rx.id)).into_response(),
        Err(e) => {
            let (status, msg) = issue_of(e);
            let r = render_form(&st, &p, fail_form(msg)).await;
            with_status(r, status)
        }
    }
}

// ---- Detail and its steps ----

async fn detail(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    detail_page(&st, &p, &id, None).await
}

/// The detail page, with the reason a step was refused when there is one (the
/// page then carries that step's status: 403, 409, 412 or 422).
async fn detail_page(
    st: &AppState,
    p: &Principal,
    id: &str,
    refused: Option<(StatusCode, String)>,
) -> Response {
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    let id2 = id.to_string();
    let res = blocking(move || -> Result<_, StoreError> {
        let Some(rx) = store.rx_get(&scope, &id2)? else {
            return Ok(None);
        };
        let events = store.rx_events(&id2)?;
        Ok(Some((rx, events)))
    })
    .await;
    let (rx, events) = match res {
        Ok(Some(v)) => v,
        Ok(None) => {
            return match refused {
                Some((status, msg)) => error_page(st, p, status, &msg),
                None => error_page(
                    st,
                    p,
                    StatusCode::NOT_FOUND,
                    &format!("处方 {id} 不存在或不在您的管理范围内"),
                ),
            };
        }
        Err(e) => return store_fail(st, p, e),
    };
    let state = st.svc.store.rx_state();
    let k = &state.knowledge;
    let names = st.svc.org_names();
    let findings = findings_of(&rx);
    let b = &rx.body;
    let lines: Vec<minijinja::Value> = b
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let d = k.drug(&it.drug);
            let mine: Vec<&StoredFinding> = findings.iter().filter(|f| f.items.contains(&i)).collect();
            let worst = mine.iter().map(|f| f.severity.as_str()).max_by_key(|s| severity_rank(s)).unwrap_or("");
            context! {
                n => i + 1, code => it.drug.clone(),
                name => d.map_or_else(|| it.drug.clone(), |d| d.name.clone()),
                spec => d.map(|d| format!("{} {}", d.form, strength_label(d))),
                dose => format!("{}{}", num(it.dose), it.unit), frequency => frequency_label(&it.frequency).to_string(),
                route => route_label(&it.route).to_string(), days => it.days, group => it.group,
                skin => (d.is_some_and(|d| d.skin_test) || it.skin_test != SkinTest::NotRecorded).then(|| skin_label(it.skin_test)),
                severity => worst, severity_label => severity_label(worst),
                findings => mine.iter().map(|f| context! { rule => f.rule.clone(), severity => f.severity.clone(), label => severity_label(&f.severity) }).collect::<Vec<_>>(),
            }
        })
        .collect();
    let mut sorted: Vec<&StoredFinding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(severity_rank(&f.severity)));
    let finding_rows: Vec<minijinja::Value> = sorted
        .iter()
        .map(|f| {
            let src = k.source(&f.source);
            context! {
                rule => f.rule.clone(), severity => f.severity.clone(), severity_label => severity_label(&f.severity),
                category => category_label(&f.category), message => f.message.clone(),
                lines => f.items.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join("、"),
                source => src.map_or_else(|| f.source.clone(), |s| s.title.clone()),
                url => src.map(|s| s.url.clone()).filter(|u| !u.is_empty()),
            }
        })
        .collect();
    let pf = &b.patient;
    let patient = context! {
        id => rx.patient.clone(), name => rx.patient_name.clone(),
        age => pf.birth_date.map(|d| age_label(d, b.date)),
        sex => pf.sex.map(|s| match s { Sex::Male => "男", Sex::Female => "女" }),
        weight => pf.weight_kg.map(num), egfr => pf.egfr.map(num), hepatic => pf.hepatic.clone(),
        pregnant => pf.pregnant, lactating => pf.lactating,
        allergies => pf.allergies.iter().map(|a| if a.text.trim().is_empty() { a.code.clone().unwrap_or_default() } else { a.text.clone() }).collect::<Vec<_>>().join("、"),
    };
    let events: Vec<minijinja::Value> = events
        .iter()
        .map(|e| {
            context! {
                at => local_time(&e.at), actor => if e.actor == "system" { "系统".to_string() } else { e.actor.clone() },
                action => action_label(&e.action), to => status_label(&e.to_status), note => e.note.clone(),
            }
        })
        .collect();
    let is_prescriber = rx.prescriber == p.0.name;
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let can = context! {
        review => may_review(p) && rx.status == "pending",
        edit => is_prescriber && matches!(rx.status.as_str(), "returned" | "pending"),
        // Stock leaves the prescribing institution's pharmacy: its own staff
        // dispense (or a user without an institution who has it in scope).
        dispense => matches!(p.role(), Role::Pharmacist | Role::VillageDoctor) && rx.status == "passed"
            && match &p.0.institution {
                Some(i) => *i == rx.inst,
                None => p.0.scope.allows(Some(&rx.inst), rx.comm.as_deref(), None, None),
            },
        cancel => is_prescriber && !matches!(rx.status.as_str(), "dispensed" | "cancelled"),
    };
    let (status, message) = match refused {
        Some((s, m)) => (Some(s), Some(m)),
        None => (None, None),
    };
    let r = render(
        st,
        "rx_detail.html",
        merge(
            base_ctx(st, p, &format!("处方 {}", rx.id), "queue"),
            context! {
                rx => context! {
                    id => rx.id.clone(), version => rx.version, status => rx.status.clone(), status_label => status_label(&rx.status),
                    verdict => rx.verdict.clone(), verdict_label => verdict_label(&rx.verdict), verdict_class => verdict_class(&rx.verdict),
                    inst => inst_name(&names, &rx.inst), prescriber => rx.prescriber_name.clone(),
                    setting => b.setting.label(), long_term => b.long_term, date => b.date.to_string(),
                    diagnoses => b.diagnoses.join("、"), tier => b.tier.label_zh(),
                    submitted => local_time(&rx.submitted), due => local_time(&rx.due),
                    overdue => rx.status == "pending" && (rx.overdue || rx.due < now),
                    reviewer => rx.reviewer.as_deref().map(|r| if r == "system" { "系统" } else { r }), reviewed_at => rx.reviewed_at.as_deref().map(local_time), note => rx.review_note.clone(),
                    dispenser => rx.dispenser.clone(), dispensed_at => rx.dispensed_at.as_deref().map(local_time),
                    amount => rx.amount_fen.map(|a| Fen(a).to_string()), formulary_version => rx.formulary_version,
                },
                patient => patient, lines => lines, findings => finding_rows, events => events, can => can, message => message,
            },
        ),
    );
    match status {
        Some(s) => with_status(r, s),
        None => r,
    }
}

#[derive(Deserialize)]
struct ReviewForm {
    #[serde(default)]
    version: i64,
    action: String,
    #[serde(default)]
    note: String,
}

async fn review(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Form(f): Form<ReviewForm>,
) -> Response {
    let action = match f.action.as_str() {
        "pass" => ReviewAction::Pass,
        "return" => ReviewAction::Return,
        _ => {
            let refused = (StatusCode::BAD_REQUEST, "未知的审核操作".to_string());
            return detail_page(&st, &p, &id, Some(refused)).await;
        }
    };
    let store = st.svc.store.clone();
    let (actor, role, rid) = (p.actor(), p.role(), id.clone());
    let res =
        blocking_write(move || store.rx_review(&actor, role, &rid, f.version, action, &f.note))
            .await;
    match res {
        Ok(rx) => Redirect::to(&format!("/rx?done={}&act={}", rx.id, f.action)).into_response(),
        Err(e) => detail_page(&st, &p, &id, Some(issue_of(e))).await,
    }
}

#[derive(Deserialize)]
struct VersionForm {
    #[serde(default)]
    version: i64,
    #[serde(default)]
    reason: String,
}

async fn dispense(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Form(f): Form<VersionForm>,
) -> Response {
    let store = st.svc.store.clone();
    let (actor, role, rid) = (p.actor(), p.role(), id.clone());
    match blocking_write(move || store.rx_dispense(&actor, role, &rid, f.version)).await {
        Ok(rx) => Redirect::to(&format!("/rx/{}", rx.id)).into_response(),
        Err(e) => detail_page(&st, &p, &id, Some(issue_of(e))).await,
    }
}

async fn cancel(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Form(f): Form<VersionForm>,
) -> Response {
    let store = st.svc.store.clone();
    let (actor, rid) = (p.actor(), id.clone());
    match blocking_write(move || store.rx_cancel(&actor, &rid, f.version, &f.reason)).await {
        Ok(rx) => Redirect::to(&format!("/rx/{}", rx.id)).into_response(),
        Err(e) => detail_page(&st, &p, &id, Some(issue_of(e))).await,
    }
}

// ---- Formulary ----

#[derive(Deserialize, Default)]
struct FormularyQuery {
    #[serde(default)]
    q: String,
}

fn drug_row(d: &Drug) -> minijinja::Value {
    context! {
        code => d.code.clone(), name => d.name.clone(), generic => d.generic.clone(), en => d.en.clone(),
        form => d.form.clone(), strength => strength_label(d),
        package => format!("{}{}/{}", d.package, d.unit, d.package_unit), splittable => d.splittable,
        atc => d.atc.clone(), ddd => d.ddd.map(|v| format!("{}{}", num(v), d.ddd_unit.clone().unwrap_or_default())),
        antimicrobial => d.antimicrobial.map(|g| g.label()), controlled => d.controlled.map(|c| c.label()),
        skin_test => d.skin_test, insurance => d.insurance.clone(), vbp => d.vbp.as_ref().map(|v| v.batch.clone()),
        long_rx => d.long_rx,
        restriction => d.restriction.as_ref().map(|r| format!("限{}及以上:{}", r.min_tier.label_zh(), r.note)),
    }
}

fn matches_query(d: &Drug, q: &str) -> bool {
    let lower = q.to_lowercase();
    let upper = q.to_ascii_uppercase();
    d.name.contains(q)
        || d.generic.contains(q)
        || d.en.to_lowercase().contains(&lower)
        || d.atc.starts_with(&upper)
        || d.code.starts_with(&upper)
}

async fn formulary(
    State(st): State<AppState>,
    Query(q): Query<FormularyQuery>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    let state = st.svc.store.rx_state();
    let query = q.q.trim().to_string();
    let found: Vec<&Drug> = state
        .knowledge
        .drugs
        .iter()
        .filter(|d| query.is_empty() || matches_query(d, &query))
        .collect();
    let total = found.len();
    let rows: Vec<minijinja::Value> = found.into_iter().take(300).map(drug_row).collect();
    render(
        &st,
        "rx_formulary.html",
        merge(
            base_ctx(&st, &p, "统一用药目录", "formulary"),
            context! { q => query, rows => rows, total => total, all => state.knowledge.drugs.len(), version => state.version },
        ),
    )
}

fn source_ctx(k: &Knowledge, id: &str) -> minijinja::Value {
    match k.source(id) {
        Some(s) => {
            context! { id => s.id.clone(), title => s.title.clone(), url => s.url.clone(), publisher => s.publisher.clone(), year => s.year }
        }
        None => context! { id => id, title => id },
    }
}

fn caution_label(c: yigong_rx::knowledge::Caution) -> &'static str {
    use yigong_rx::knowledge::Caution::*;
    match c {
        Caution => "慎用",
        Reduce => "减量",
        Avoid => "避免使用",
        Contraindicated => "禁用",
    }
}

fn limits_text(l: &yigong_rx::knowledge::DoseLimits, unit: &str) -> String {
    let mut parts = vec![];
    if let Some(v) = l.min_dose {
        parts.push(format!("常用最小单次 {}{unit}", num(v)));
    }
    if let Some(v) = l.max_dose {
        parts.push(format!("最大单次 {}{unit}", num(v)));
    }
    if let Some(v) = l.max_daily {
        parts.push(format!("每日最大 {}{unit}", num(v)));
    }
    if parts.is_empty() {
        "—".into()
    } else {
        parts.join(",")
    }
}

/// Names of formulary drugs under an ATC code or prefix (a few, for reading).
fn drugs_under(k: &Knowledge, prefix: &str) -> String {
    let names: Vec<&str> = k
        .drugs
        .iter()
        .filter(|d| atc_matches(&d.atc, prefix))
        .map(|d| d.generic.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .take(6)
        .collect();
    names.join("、")
}

async fn drug_page(State(st): State<AppState>, Path(code): Path<String>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let state = st.svc.store.rx_state();
    let k = &state.knowledge;
    let Some(d) = k.drug(&code) else {
        return error_page(
            &st,
            &p,
            StatusCode::NOT_FOUND,
            &format!("药品 {code} 不在现行统一用药目录中"),
        );
    };
    let src = |g: &str| d.sources.get(g).map(|s| source_ctx(k, s));
    let u = &d.dose_unit;
    let mut population = vec![];
    if let Some(pg) = &d.pregnancy {
        population.push(format!("妊娠分级 {pg}"));
    }
    if let Some(l) = d.lactation {
        population.push(format!("哺乳期{}", caution_label(l)));
    }
    if let Some(days) = d.child_min_age_days {
        population.push(format!("{} 天以下儿童禁用", days));
    }
    if let Some(e) = &d.elderly {
        population.push(format!(
            "老年人{}{}:{}",
            caution_label(e.action),
            e.max_daily
                .map_or(String::new(), |m| format!("(每日不超过 {}{u})", num(m))),
            e.advice
        ));
    }
    for r in &d.renal {
        population.push(format!(
            "eGFR < {}:{}{}:{}",
            num(r.egfr_below),
            caution_label(r.action),
            r.max_daily
                .map_or(String::new(), |m| format!("(每日不超过 {}{u})", num(m))),
            r.advice
        ));
    }
    if let Some(h) = &d.hepatic {
        population.push(format!(
            "肝功能 Child-Pugh {} 级起{}:{}",
            h.from_class,
            caution_label(h.action),
            h.advice
        ));
    }
    let groups = vec![
        context! {
            label => "标识(ATC/DDD)", source => src("identity"),
            facts => vec![format!("ATC {}", d.atc), d.ddd.map_or("未设 DDD".to_string(), |v| format!("DDD {}{}", num(v), d.ddd_unit.clone().unwrap_or_default()))],
        },
        context! {
            label => "用法用量", source => src("dose"),
            facts => {
                let mut f = vec![
                    format!("成人:{}", limits_text(&d.adult, u)),
                    format!("频次:{}", d.frequencies.iter().map(|f| frequency_label(f)).collect::<Vec<_>>().join("、")),
                    format!("途径:{}", d.routes.iter().map(|r| route_label(r)).collect::<Vec<_>>().join("、")),
                ];
                if let Some(c) = &d.child_per_kg {
                    f.push(format!("儿童(按体重):{}", limits_text(c, &format!("{u}/kg"))));
                }
                f
            },
        },
        context! { label => "特殊人群", source => src("population"), facts => population },
        context! {
            label => "适应症与禁忌", source => src("indication"),
            facts => {
                let mut f = vec![format!("适应症(ICD-10):{}", d.indications.join("、"))];
                for c in &d.contraindications {
                    f.push(format!("{} 时{}:{}", c.icd10, caution_label(c.action), c.note));
                }
                f
            },
        },
        context! {
            label => "管理类别", source => src("control"),
            facts => {
                let mut f = vec![];
                if let Some(g) = d.antimicrobial { f.push(format!("抗菌药物:{}", g.label())); }
                if let Some(c) = d.controlled { f.push(format!("特殊管理:{}", c.label())); }
                if d.skin_test { f.push("用药前须皮试".to_string()); }
                if let Some(a) = &d.allergy_class { f.push(format!("过敏类别:{a}")); }
                if f.is_empty() { f.push("无特殊管理".to_string()); }
                f
            },
        },
        context! { label => "医保", source => src("insurance"), facts => vec![format!("医保{}类", d.insurance)] },
        context! {
            label => "集中带量采购", source => src("vbp"),
            facts => vec![d.vbp.as_ref().map_or("非集采品种".to_string(), |v| format!("国家集采{}(约定量 {})", v.batch, v.agreed_volume))],
        },
    ];
    let f = &k.facts;
    let interactions: Vec<minijinja::Value> = f
        .interactions
        .iter()
        .filter_map(|x| {
            let other = if atc_matches(&d.atc, &x.a) {
                &x.b
            } else if atc_matches(&d.atc, &x.b) {
                &x.a
            } else {
                return None;
            };
            let level = match x.severity {
                yigong_rx::knowledge::InteractionSeverity::Contraindicated => "禁止合用",
                yigong_rx::knowledge::InteractionSeverity::Major => "严重",
                yigong_rx::knowledge::InteractionSeverity::Moderate => "中度",
                yigong_rx::knowledge::InteractionSeverity::Minor => "轻度",
            };
            Some(context! {
                other => other.clone(), other_names => drugs_under(k, other), level => level,
                mechanism => x.mechanism.clone(), advice => x.advice.clone(), source => source_ctx(k, &x.source),
            })
        })
        .collect();
    let duplicates: Vec<minijinja::Value> = f
        .duplicate_classes
        .iter()
        .filter(|c| c.atc.iter().any(|p| atc_matches(&d.atc, p)))
        .map(|c| {
            let members: Vec<String> = k
                .drugs
                .iter()
                .filter(|o| o.code != d.code && c.atc.iter().any(|p| atc_matches(&o.atc, p)))
                .map(|o| o.name.clone())
                .take(10)
                .collect();
            context! { name => c.name.clone(), atc => c.atc.join("、"), members => members.join("、"), source => source_ctx(k, &c.source) }
        })
        .collect();
    let incompat: Vec<minijinja::Value> = f
        .incompatibilities
        .iter()
        .filter_map(|x| {
            let other = if atc_matches(&d.atc, &x.a) {
                &x.b
            } else if atc_matches(&d.atc, &x.b) {
                &x.a
            } else {
                return None;
            };
            Some(context! { other => other.clone(), other_names => drugs_under(k, other), note => x.note.clone(), source => source_ctx(k, &x.source) })
        })
        .collect();
    render(
        &st,
        "rx_drug.html",
        merge(
            base_ctx(&st, &p, &d.name, "formulary"),
            context! { d => drug_row(d), groups => groups, interactions => interactions, duplicates => duplicates, incompat => incompat },
        ),
    )
}

// ---- Committee decisions ----

fn shipped() -> Option<&'static Knowledge> {
    static SHIPPED: OnceLock<Option<Knowledge>> = OnceLock::new();
    SHIPPED.get_or_init(|| Knowledge::shipped().ok()).as_ref()
}

#[derive(Serialize, Deserialize, Default, Clone)]
struct DecisionForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    drug: String,
    #[serde(default)]
    meeting: String,
    #[serde(default)]
    effective: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    min_tier: String,
    #[serde(default)]
    entry: String,
}

impl DecisionForm {
    fn to_decision(&self) -> Result<Decision, String> {
        if !DECISION_KINDS.contains(&self.kind.as_str()) {
            return Err("请选择决议类型".into());
        }
        let drug = self
            .drug
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        if drug.is_empty() {
            return Err("请填写药品编码".into());
        }
        let effective = chrono::NaiveDate::parse_from_str(self.effective.trim(), "%Y-%m-%d")
            .map_err(|_| format!("生效日期“{}”格式应为 YYYY-MM-DD", self.effective.trim()))?;
        let entry = match self.kind.as_str() {
            "restrict" => {
                let tier = Tier::from_code(&self.min_tier).ok_or("限制使用须选择最低机构级别")?;
                Some(serde_json::json!({ "min_tier": tier, "note": self.reason.trim() }))
            }
            "add" | "update" => {
                if self.entry.trim().is_empty() {
                    return Err("增补或修改药品须填写药品条目(JSON)".into());
                }
                Some(
                    serde_json::from_str::<Value>(&self.entry)
                        .map_err(|e| format!("药品条目不是有效的 JSON:{e}"))?,
                )
            }
            _ => None,
        };
        Ok(Decision {
            meeting: self.meeting.trim().to_string(),
            kind: self.kind.clone(),
            drug,
            effective,
            reason: self.reason.trim().to_string(),
            entry,
        })
    }
}

async fn decisions_page(
    st: &AppState,
    p: &Principal,
    form: DecisionForm,
    refused: Option<(StatusCode, String)>,
) -> Response {
    let store = st.svc.store.clone();
    let rows = match blocking(move || store.rx_decisions()).await {
        Ok(r) => r,
        Err(e) => return store_fail(st, p, e),
    };
    let state = st.svc.store.rx_state();
    let k = &state.knowledge;
    let name_of = |code: &str, entry: &Option<Value>| -> String {
        k.drug(code)
            .map(|d| d.name.clone())
            .or_else(|| shipped().and_then(|s| s.drug(code)).map(|d| d.name.clone()))
            .or_else(|| {
                entry
                    .as_ref()
                    .and_then(|e| e["name"].as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .rev()
        .map(|r| {
            let d = &r.decision;
            let detail = match d.kind.as_str() {
                "restrict" => d.entry.as_ref().and_then(|e| e["min_tier"].as_str()).and_then(Tier::from_code).map(|t| format!("限{}及以上机构使用", t.label_zh())),
                _ => None,
            };
            context! {
                seq => r.seq, at => local_time(&r.at), actor => r.actor.clone(), meeting => d.meeting.clone(),
                kind => d.kind.clone(), kind_label => decision_kind_label(&d.kind), drug => d.drug.clone(), name => name_of(&d.drug, &d.entry),
                effective => d.effective.to_string(), reason => d.reason.clone(), in_force => r.in_force, detail => detail,
                listed => k.drug(&d.drug).is_some(),
            }
        })
        .collect();
    let (status, message) = match refused {
        Some((s, m)) => (Some(s), Some(m)),
        None => (None, None),
    };
    let mut form = form;
    if form.effective.is_empty() {
        form.effective = now_local().date_naive().to_string();
    }
    let r = render(
        st,
        "rx_decisions.html",
        merge(
            base_ctx(st, p, "药事会决议", "decisions"),
            context! {
                rows => rows, form => form, message => message, version => state.version,
                kinds => DECISION_KINDS.iter().map(|k| context! { code => *k, label => decision_kind_label(k) }).collect::<Vec<_>>(),
                tiers => [Tier::County, Tier::Township, Tier::Village].iter().map(|t| context! { code => t.code(), label => t.label_zh() }).collect::<Vec<_>>(),
                drugs => k.drugs.iter().map(drug_option).collect::<Vec<_>>(),
            },
        ),
    );
    match status {
        Some(s) => with_status(r, s),
        None => r,
    }
}

async fn decisions(State(st): State<AppState>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    decisions_page(&st, &p, DecisionForm::default(), None).await
}

async fn decide(State(st): State<AppState>, p: Principal, Form(f): Form<DecisionForm>) -> Response {
    let d = match f.to_decision() {
        Ok(d) => d,
        Err(msg) => {
            return decisions_page(&st, &p, f, Some((StatusCode::UNPROCESSABLE_ENTITY, msg))).await;
        }
    };
    let store = st.svc.store.clone();
    let (actor, role) = (p.actor(), p.role());
    match blocking_write(move || store.rx_decide(&actor, role, &d)).await {
        Ok(_) => Redirect::to("/rx/decisions").into_response(),
        Err(e) => decisions_page(&st, &p, f, Some(issue_of(e))).await,
    }
}

// ---- Post-hoc review (处方点评) ----

#[derive(Deserialize, Default)]
struct CommentsQuery {
    month: Option<String>,
    inst: Option<String>,
    sampled: Option<usize>,
}

fn valid_month(m: &str) -> bool {
    chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok() && m.len() == 7
}

fn code_label(code: &str) -> &'static str {
    COMMENT_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, l)| l)
}

fn result_label(r: &str) -> &'static str {
    COMMENT_RESULTS
        .iter()
        .find(|(c, _)| *c == r)
        .map_or("", |(_, l)| l)
}

fn result_prefix(r: &str) -> &'static str {
    match r {
        "non-standard" => "N",
        "inappropriate" => "I",
        "abnormal" => "A",
        _ => "",
    }
}

struct CommentsView {
    month: String,
    inst: String,
    message: Option<(StatusCode, String)>,
    notice: Option<String>,
}

async fn comments_page(st: &AppState, p: &Principal, v: CommentsView) -> Response {
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    let month = v.month.clone();
    let inst_filter = Some(v.inst.clone()).filter(|i| !i.is_empty());
    let res = blocking(move || -> Result<_, StoreError> {
        Ok((
            store.rx_comments(&scope, &month, inst_filter.as_deref())?,
            store.rx_comment_report(&scope, &month, false)?,
            store.rx_comment_report(&scope, &month, true)?,
        ))
    })
    .await;
    let (rows, by_inst, by_prescriber) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(st, p, e),
    };
    let names = st.svc.org_names();
    let groups = |suggested: &[String], chosen: &[String]| -> Vec<minijinja::Value> {
        [
            ("N", "不规范处方"),
            ("I", "用药不适宜处方"),
            ("A", "超常处方"),
        ]
        .iter()
        .map(|(prefix, label)| {
            let codes: Vec<minijinja::Value> = COMMENT_CODES
                .iter()
                .filter(|(c, _)| c.starts_with(prefix))
                .map(|(c, l)| {
                    let checked = if chosen.is_empty() {
                        suggested.iter().any(|s| s == c)
                    } else {
                        chosen.iter().any(|s| s == c)
                    };
                    context! { code => *c, label => *l, checked => checked, suggested => suggested.iter().any(|s| s == c) }
                })
                .collect();
            context! { prefix => *prefix, label => *label, codes => codes }
        })
        .collect()
    };
    let reviewer = p.role() == Role::Pharmacist;
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .map(|r| {
            // Pre-select the result the suggestions point to.
            let guess = match r.suggested.first().map(|s| &s[..1]) {
                Some("N") => "non-standard",
                Some("I") => "inappropriate",
                Some("A") => "abnormal",
                _ => "rational",
            };
            let chosen = r.result.clone().unwrap_or_else(|| guess.to_string());
            context! {
                rx => r.rx.clone(), inst => inst_name(&names, &r.inst), prescriber => format!("{}({})", r.prescriber_name, r.prescriber),
                result => r.result.clone(), result_label => r.result.as_deref().map(result_label),
                codes => r.codes.iter().map(|c| format!("{c} {}", code_label(c))).collect::<Vec<_>>(),
                suggested => r.suggested.iter().map(|c| format!("{c} {}", code_label(c))).collect::<Vec<_>>(),
                note => r.note.clone(), reviewer => r.reviewer.clone(), version => r.version,
                chosen => chosen, groups => groups(&r.suggested, &r.codes),
            }
        })
        .collect();
    let stat = |s: &yigong_store::rx::CommentStat, key: String| {
        context! {
            key => key, sampled => s.sampled, reviewed => s.reviewed,
            rational => s.rational, non_standard => s.non_standard, inappropriate => s.inappropriate, abnormal => s.abnormal,
            rate => if s.reviewed > 0 { format!("{:.1}%", s.rational_permille as f64 / 10.0) } else { "—".into() },
            top => s.top_codes.iter().map(|(c, n)| format!("{c} {}({n})", code_label(c))).collect::<Vec<_>>(),
        }
    };
    let by_inst: Vec<minijinja::Value> = by_inst
        .iter()
        .map(|s| stat(s, inst_name(&names, &s.key)))
        .collect();
    let by_prescriber: Vec<minijinja::Value> = by_prescriber
        .iter()
        .map(|s| stat(s, format!("{}({})", s.label, s.key)))
        .collect();
    let (status, message) = match v.message {
        Some((s, m)) => (Some(s), Some(m)),
        None => (None, None),
    };
    let r = render(
        st,
        "rx_comments.html",
        merge(
            base_ctx(st, p, "处方点评", "comments"),
            context! {
                month => v.month, inst => v.inst, institutions => institutions_in_scope(st, p),
                rows => rows, by_inst => by_inst, by_prescriber => by_prescriber,
                results => COMMENT_RESULTS.iter().map(|(c, l)| context! { code => *c, label => *l, prefix => result_prefix(c) }).collect::<Vec<_>>(),
                message => message, notice => v.notice, reviewer => reviewer,
                can_sample => matches!(p.role(), Role::Pharmacist | Role::SystemAdmin | Role::OperationsCentre | Role::HealthCommission),
            },
        ),
    );
    match status {
        Some(s) => with_status(r, s),
        None => r,
    }
}

fn this_month() -> String {
    now_local().format("%Y-%m").to_string()
}

async fn comments(
    State(st): State<AppState>,
    Query(q): Query<CommentsQuery>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    let month = q
        .month
        .clone()
        .filter(|m| valid_month(m))
        .unwrap_or_else(this_month);
    let notice = q.sampled.map(|n| format!("已抽取 {n} 张处方"));
    let inst = q.inst.clone().unwrap_or_default();
    comments_page(
        &st,
        &p,
        CommentsView {
            month,
            inst,
            message: None,
            notice,
        },
    )
    .await
}

#[derive(Deserialize)]
struct SampleForm {
    #[serde(default)]
    month: String,
    #[serde(default)]
    inst: String,
    #[serde(default)]
    n: String,
    #[serde(default)]
    seed: String,
}

async fn sample(State(st): State<AppState>, p: Principal, Form(f): Form<SampleForm>) -> Response {
    let month = f.month.trim().to_string();
    let view = |message| CommentsView {
        month: if valid_month(&month) {
            month.clone()
        } else {
            this_month()
        },
        inst: f.inst.clone(),
        message: Some(message),
        notice: None,
    };
    let n: usize = match f.n.trim().parse() {
        Ok(n) => n,
        Err(_) => {
            let msg = (
                StatusCode::UNPROCESSABLE_ENTITY,
                "抽样张数须为 1–1000 之间的整数".to_string(),
            );
            return comments_page(&st, &p, view(msg)).await;
        }
    };
    let seed: u64 = match f.seed.trim() {
        "" => 1,
        s => match s.parse() {
            Ok(v) => v,
            Err(_) => {
                let msg = (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "随机种子须为非负整数".to_string(),
                );
                return comments_page(&st, &p, view(msg)).await;
            }
        },
    };
    if f.inst.trim().is_empty() {
        let msg = (
            StatusCode::UNPROCESSABLE_ENTITY,
            "请选择抽样机构".to_string(),
        );
        return comments_page(&st, &p, view(msg)).await;
    }
    let store = st.svc.store.clone();
    let actor = p.actor();
    let (m, i) = (month.clone(), f.inst.trim().to_string());
    match blocking_write(move || store.rx_sample(&actor, &m, &i, n, seed)).await {
        Ok(taken) => Redirect::to(&format!(
            "/rx/comments?month={month}&inst={}&sampled={taken}",
            f.inst.trim()
        ))
        .into_response(),
        Err(e) => comments_page(&st, &p, view(issue_of(e))).await,
    }
}

async fn comment(
    State(st): State<AppState>,
    p: Principal,
    Path(rx): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let f = Fields(f);
    let month = Some(f.get("month").to_string())
        .filter(|m| valid_month(m))
        .unwrap_or_else(this_month);
    let inst = f.get("inst").to_string();
    let version: i64 = f.get("version").parse().unwrap_or(0);
    let result = f.get("result").to_string();
    // Only the categories of the chosen result count (the others are hidden).
    let prefix = result_prefix(&result);
    let codes: Vec<String> = f
        .all("codes")
        .into_iter()
        .filter(|c| !prefix.is_empty() && c.starts_with(prefix))
        .collect();
    let note = f.get("note").to_string();
    let store = st.svc.store.clone();
    let (actor, role, id) = (p.actor(), p.role(), rx.clone());
    let res = blocking_write(move || {
        let verdict = yigong_store::rx::CommentVerdict {
            result,
            codes,
            note,
        };
        store.rx_comment(&actor, role, &id, version, &verdict)
    })
    .await;
    match res {
        Ok(()) => {
            Redirect::to(&format!("/rx/comments?month={month}&inst={inst}#c-{rx}")).into_response()
        }
        Err(e) => {
            comments_page(
                &st,
                &p,
                CommentsView {
                    month,
                    inst,
                    message: Some(issue_of(e)),
                    notice: None,
                },
            )
            .await
        }
    }
}
