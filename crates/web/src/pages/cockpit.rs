//! The operations centre's cockpit (运营管理中心驾驶舱) and its workflows:
//! the county (or the user's community / institution) at a glance with live
//! tiles, trends against targets and a map-free drill-down county → community
//! → institution; one indicator with its written definition, trend, breakdown,
//! ranking and the records behind it; the monthly report; the national
//! evaluation standard with attested grades and evidence; the insurance
//! global budget with special funds; notify / warn / summon and the
//! assessment cycle; and an Excel export of every view.
//!
//! Every figure comes from the live counters (`metric_sums`,
//! `metric_monthly`, `metric_family_range`, `metric_by_org`): a page never scans
//! resources. A zero denominator shows "无数据". Scope is enforced here (the
//! subject must be inside the user's scope) and in the store (every write
//! checks the actor's scope); configuration is changed only by the operations
//! centre and the health commission.

use super::*;
use axum::extract::{DefaultBodyLimit, Multipart};
use axum::routing::post;
use chrono::NaiveDate;
use rust_xlsxwriter::{Format, Workbook};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use yigong_metrics::budget::{self, Overspend, SettlementRule};
use yigong_metrics::escalation::{
    self, EscalationRule, Level as EscLevel, MissingData, Step, StepDays,
};
use yigong_metrics::evaluation::{self, Grade};
use yigong_metrics::indicators::{
    self, Indicator, Kind as CompKind, Level as ILevel, Value as IValue,
};
use yigong_metrics::{Direction, Unit};
use yigong_store::metrics::{Subject, catalogue};
use yigong_store::ops::{self, BudgetInput, NewEvidence, NewStep, OrgLevel, RuleRow, StepRow};
use yigong_store::{Role, StoreError};

pub fn add_templates(env: &mut Environment<'static>) {
    for (name, src) in [
        (
            "cockpit_macros.html",
            include_str!("../../templates/cockpit_macros.html"),
        ),
        (
            "cockpit_home.html",
            include_str!("../../templates/cockpit_home.html"),
        ),
        (
            "cockpit_tiles.html",
            include_str!("../../templates/cockpit_tiles.html"),
        ),
        (
            "cockpit_indicator.html",
            include_str!("../../templates/cockpit_indicator.html"),
        ),
        (
            "cockpit_records.html",
            include_str!("../../templates/cockpit_records.html"),
        ),
        (
            "cockpit_report.html",
            include_str!("../../templates/cockpit_report.html"),
        ),
        (
            "cockpit_evaluation.html",
            include_str!("../../templates/cockpit_evaluation.html"),
        ),
        (
            "cockpit_budget.html",
            include_str!("../../templates/cockpit_budget.html"),
        ),
        (
            "cockpit_escalation.html",
            include_str!("../../templates/cockpit_escalation.html"),
        ),
    ] {
        env.add_template(name, src).expect("template parses");
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cockpit", get(home))
        .route("/cockpit/tiles", get(tiles_fragment))
        .route("/cockpit/indicators/{id}", get(indicator_page))
        .route("/cockpit/records", get(records))
        .route("/cockpit/report", get(report))
        .route("/cockpit/export.xlsx", get(export))
        .route("/cockpit/evaluation", get(evaluation_page))
        .route("/cockpit/evaluation/standard", post(standard_upload))
        .route(
            "/cockpit/evaluation/attest",
            post(attest).layer(DefaultBodyLimit::max(3 * ops::MAX_EVIDENCE_BYTES)),
        )
        .route("/cockpit/evidence/{id}", get(evidence))
        .route("/cockpit/budget", get(budget_page).post(budget_post))
        .route("/cockpit/budget/fund", post(fund_total))
        .route("/cockpit/budget/fund/entry", post(fund_entry))
        .route("/cockpit/escalation", get(escalation_page))
        .route("/cockpit/escalation/rules", post(rule_post))
        .route("/cockpit/escalation/steps", post(step_post))
        .route("/cockpit/cycles", post(cycle_plan))
        .route("/cockpit/cycles/advance", post(cycle_advance))
}

// ---------------------------------------------------------------------------
// Common pieces
// ---------------------------------------------------------------------------

/// A refusal: HTTP status and Chinese message.
type Fail = (StatusCode, String);

fn sf(e: StoreError) -> Fail {
    let i = crate::service::store_issue(e);
    (
        StatusCode::from_u16(i.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        i.zh,
    )
}

fn bad(msg: impl Into<String>) -> Fail {
    (StatusCode::UNPROCESSABLE_ENTITY, msg.into())
}

/// Who may change the operations centre's configuration and records.
fn may_edit(p: &Principal) -> bool {
    matches!(p.role(), Role::OperationsCentre | Role::HealthCommission)
}

fn edit_guard(p: &Principal) -> Result<(), Fail> {
    if may_edit(p) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "只有运营管理中心或卫健局可以修改运营配置和记录".into(),
        ))
    }
}

/// The query parameters the cockpit's pages take (all optional, checked by
/// each page with a Chinese message).
#[derive(Deserialize, Default, Clone, Debug)]
struct Q {
    subject: Option<String>,
    month: Option<String>,
    from: Option<String>,
    to: Option<String>,
    community: Option<String>,
    year: Option<String>,
    view: Option<String>,
    id: Option<String>,
    org: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn today() -> NaiveDate {
    Utc::now().with_timezone(&Shanghai).date_naive()
}

fn current_month() -> String {
    let d = today();
    format!("{:04}-{:02}", d.year(), d.month())
}

fn ym(m: &str) -> Option<(i32, u32)> {
    if !indicators::is_month(m) {
        return None;
    }
    Some((m.get(..4)?.parse().ok()?, m.get(5..7)?.parse().ok()?))
}

/// `m` shifted by `n` months.
fn shift(m: &str, n: i32) -> String {
    let (y, mo) = ym(m).unwrap_or((2000, 1));
    let t = y * 12 + mo as i32 - 1 + n;
    format!("{:04}-{:02}", t.div_euclid(12), t.rem_euclid(12) + 1)
}

fn months(first: &str, last: &str) -> Vec<String> {
    let mut out = vec![];
    let mut m = first.to_string();
    while m.as_str() <= last && out.len() < 240 {
        out.push(m.clone());
        m = shift(&m, 1);
    }
    out
}

fn month_label(m: &str) -> String {
    ym(m).map_or(m.to_string(), |(y, mo)| format!("{y}年{mo}月"))
}

fn month_param(s: &Option<String>, default: String, what: &str) -> Result<String, Fail> {
    match nonempty(s) {
        None => Ok(default),
        Some(m) if indicators::is_month(m) => Ok(m.to_string()),
        Some(m) => Err((
            StatusCode::BAD_REQUEST,
            format!("{what}“{m}”格式错误，应为 YYYY-MM"),
        )),
    }
}

fn year_param(s: &Option<String>) -> Result<i32, Fail> {
    match nonempty(s) {
        None => Ok(today().year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("年份“{y}”无效（应为 2000–2100）"),
                )
            }),
    }
}

/// "¥1,234,567.89".
fn yuan(f: Fen) -> String {
    let s = f.yuan_string();
    let (neg, s) = s
        .strip_prefix('-')
        .map_or((false, s.as_str()), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}¥{grouped}.{frac}", if neg { "-" } else { "" })
}

fn bp_text(v: Option<i64>) -> String {
    v.map_or("无数据".into(), |v| Unit::Bp.format(v))
}

fn is_inst(n: &TreeNode) -> bool {
    !matches!(
        n.kind.as_deref(),
        Some("county" | "community" | "department" | "external") | None
    )
}

fn pct_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------
// Cells, tables and Excel
// ---------------------------------------------------------------------------

/// What a cell holds for Excel: text, or a number with its display format.
#[derive(Clone, Debug)]
enum X {
    S,
    N(f64, &'static str),
}

/// One table cell: the text shown on the page, the typed value written to
/// Excel, a colour class and an optional link.
#[derive(Clone, Debug)]
struct Cell {
    text: String,
    x: X,
    class: &'static str,
    href: Option<String>,
}

impl Cell {
    fn s(t: impl Into<String>) -> Cell {
        Cell {
            text: t.into(),
            x: X::S,
            class: "",
            href: None,
        }
    }
    fn int(v: i64) -> Cell {
        Cell {
            text: v.to_string(),
            x: X::N(v as f64, "0"),
            class: "",
            href: None,
        }
    }
    /// Money. Excel receives yuan as a number (presentation only: the
    /// arithmetic was done in integer fen).
    fn fen(f: Fen) -> Cell {
        Cell {
            text: yuan(f),
            x: X::N(f.0 as f64 / 100.0, "#,##0.00"),
            class: "",
            href: None,
        }
    }
    fn bp(v: Option<i64>) -> Cell {
        match v {
            None => Cell::s("无数据"),
            Some(v) => Cell {
                text: Unit::Bp.format(v),
                x: X::N(v as f64 / 10_000.0, "0.00%"),
                class: "",
                href: None,
            },
        }
    }
    /// An indicator's score in its unit ("无数据" when there is none).
    fn score(ind: &Indicator, score: Option<i64>) -> Cell {
        let money = ind.unit == Unit::Count
            && ind.numerator_kind() == CompKind::Fen
            && ind.compare.is_none();
        let text = match score {
            Some(v) if money => yuan(Fen(v)),
            _ => ind.format(score),
        };
        let Some(v) = score else {
            return Cell::s(text);
        };
        let x = match ind.unit {
            Unit::Permille => X::N(v as f64 / 1000.0, "0.0%"),
            Unit::Bp => X::N(v as f64 / 10_000.0, "0.00%"),
            Unit::Count if ind.numerator_kind() == CompKind::Fen && ind.compare.is_none() => {
                X::N(v as f64 / 100.0, "#,##0.00")
            }
            Unit::Count => match ind.decimals {
                0 => X::N(v as f64, "0"),
                1 => X::N(v as f64 / 10.0, "0.0"),
                2 => X::N(v as f64 / 100.0, "0.00"),
                _ => X::N(v as f64 / 1000.0, "0.000"),
            },
        };
        Cell {
            text,
            x,
            class: "",
            href: None,
        }
    }
    /// A component sum in its kind (fen as money, others as counts).
    fn part(kind: CompKind, v: i64) -> Cell {
        match kind {
            CompKind::Fen => Cell::fen(Fen(v)),
            k => {
                let mut c = Cell::int(v);
                if !k.label().is_empty() {
                    c.text = format!("{v} {}", k.label());
                }
                c
            }
        }
    }
    fn class(mut self, c: &'static str) -> Cell {
        self.class = c;
        self
    }
    fn link(mut self, h: impl Into<String>) -> Cell {
        self.href = Some(h.into());
        self
    }
    fn ctx(&self) -> minijinja::Value {
        context! { text => self.text.clone(), class => self.class, href => self.href.clone(), num => matches!(self.x, X::N(..)) }
    }
}

/// A table of a view: shown on the page and written as one Excel sheet.
#[derive(Clone, Debug)]
struct Sheet {
    name: String,
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Sheet {
    fn new(name: &str, headers: &[&str]) -> Sheet {
        Sheet {
            name: name.to_string(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: vec![],
        }
    }
    fn ctx(&self) -> minijinja::Value {
        let rows: Vec<Vec<minijinja::Value>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::ctx).collect())
            .collect();
        context! { name => self.name.clone(), headers => self.headers.clone(), rows => rows }
    }
}

/// A built view: its page context and its tables.
struct Built {
    file: String,
    sheets: Vec<Sheet>,
    ctx: minijinja::Value,
}

fn sheet_name(name: &str, used: &mut Vec<String>) -> String {
    let mut n: String = name
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\'))
        .take(28)
        .collect();
    if n.is_empty() {
        n = "Sheet".into();
    }
    let base = n.clone();
    let mut i = 2;
    while used.contains(&n) {
        n = format!("{base}{i}");
        i += 1;
    }
    used.push(n.clone());
    n
}

/// The sheets as an xlsx workbook: Chinese headers in bold, numbers as
/// numbers with their format (money 0.00, shares as percentages).
fn xlsx(sheets: &[Sheet]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let mut used = vec![];
    for s in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(sheet_name(&s.name, &mut used))?;
        let mut widths: Vec<usize> = s.headers.iter().map(|h| h.chars().count() * 2).collect();
        for (c, h) in s.headers.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &bold)?;
        }
        for (r, row) in s.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                match &cell.x {
                    X::N(v, fmt) => {
                        ws.write_number_with_format(
                            r,
                            c as u16,
                            *v,
                            &Format::new().set_num_format(*fmt),
                        )?;
                    }
                    X::S => {
                        ws.write_string(r, c as u16, &cell.text)?;
                    }
                }
                let w = cell
                    .text
                    .chars()
                    .map(|ch| if ch.is_ascii() { 1 } else { 2 })
                    .sum::<usize>();
                if widths.len() <= c {
                    widths.resize(c + 1, 8);
                }
                widths[c] = widths[c].max(w);
            }
        }
        for (c, w) in widths.iter().enumerate() {
            ws.set_column_width(c as u16, (*w).clamp(8, 60) as f64 + 1.0)?;
        }
        ws.set_freeze_panes(1, 0)?;
    }
    wb.save_to_buffer()
}

// ---------------------------------------------------------------------------
// Subjects and scope
// ---------------------------------------------------------------------------

/// Whom a page is about: the county, a community or an institution.
#[derive(Clone, Debug)]
struct Subj {
    subject: Subject,
    /// The organisation id (`None` for the county).
    org: Option<String>,
    name: String,
    level: ILevel,
}

impl Subj {
    /// The `subject` query parameter that names it.
    fn param(&self) -> String {
        self.org
            .as_ref()
            .map(|o| format!("Organization/{o}"))
            .unwrap_or_default()
    }
    fn child_level(&self) -> Option<(OrgLevel, ILevel)> {
        match self.level {
            ILevel::County => Some((OrgLevel::Community, ILevel::Community)),
            ILevel::Community => Some((OrgLevel::Institution, ILevel::Institution)),
            ILevel::Institution => None,
        }
    }
}

fn county_name(tree: &[TreeNode]) -> String {
    tree.iter()
        .find(|n| n.kind.as_deref() == Some("county"))
        .map_or_else(|| "全县".to_string(), |n| n.name.clone())
}

fn subj_of(tree: &[TreeNode], s: &Scope) -> Subj {
    let name = |id: &str| {
        tree.iter()
            .find(|n| n.id == id)
            .map_or(id.to_string(), |n| n.name.clone())
    };
    match s {
        Scope::County => Subj {
            subject: Subject::County,
            org: None,
            name: county_name(tree),
            level: ILevel::County,
        },
        Scope::Community(c) => Subj {
            subject: Subject::Community(c.clone()),
            org: Some(c.clone()),
            name: name(c),
            level: ILevel::Community,
        },
        Scope::Institution(i) => Subj {
            subject: Subject::Institution(i.clone()),
            org: Some(i.clone()),
            name: name(i),
            level: ILevel::Institution,
        },
    }
}

/// The subject a page asks for (`Organization/<id>` or a bare id), checked
/// against the user's scope; without one, the user's own scope.
fn resolve(tree: &[TreeNode], p: &Principal, param: Option<&str>) -> Result<Subj, Fail> {
    let Some(param) = param.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(subj_of(tree, &p.0.scope));
    };
    let id = param.strip_prefix("Organization/").unwrap_or(param);
    let Some(mut node) = tree.iter().find(|n| n.id == id) else {
        return Err((StatusCode::NOT_FOUND, format!("机构 {id} 不存在")));
    };
    if node.kind.as_deref() == Some("department")
        && let Some(parent) = node
            .parent
            .as_deref()
            .and_then(|pid| tree.iter().find(|n| n.id == pid))
    {
        node = parent;
    }
    let s = match node.kind.as_deref() {
        Some("county") => Scope::County,
        Some("community") => Scope::Community(node.id.clone()),
        _ => Scope::Institution(node.id.clone()),
    };
    let allowed = match (&p.0.scope, &s) {
        (Scope::County, _) => true,
        (Scope::Community(c), Scope::Community(x)) => c == x,
        (Scope::Community(c), Scope::Institution(i)) => tree
            .iter()
            .any(|n| &n.id == i && n.comm.as_deref() == Some(c.as_str())),
        (Scope::Institution(a), Scope::Institution(b)) => a == b,
        _ => false,
    };
    if !allowed {
        return Err((
            StatusCode::FORBIDDEN,
            format!("“{}”不在您的管辖范围内", node.name),
        ));
    }
    Ok(subj_of(tree, &s))
}

/// The organisations one level below a subject.
fn children<'t>(tree: &'t [TreeNode], s: &Subj) -> Vec<&'t TreeNode> {
    match &s.subject {
        Subject::County => tree
            .iter()
            .filter(|n| n.kind.as_deref() == Some("community"))
            .collect(),
        Subject::Community(c) => {
            let mut v: Vec<&TreeNode> = tree
                .iter()
                .filter(|n| is_inst(n) && n.comm.as_deref() == Some(c.as_str()))
                .collect();
            v.sort_by_key(|n| (!n.lead, n.tier.clone(), n.id.clone()));
            v
        }
        Subject::Institution(_) => vec![],
    }
}

/// The path from the county to a subject, for the breadcrumb (only the
/// levels the user may open).
fn crumbs(tree: &[TreeNode], s: &Subj, p: &Principal) -> Vec<minijinja::Value> {
    let mut out = vec![];
    if p.0.scope == Scope::County {
        out.push(context! { name => county_name(tree), param => "" });
    }
    let node = s
        .org
        .as_deref()
        .and_then(|o| tree.iter().find(|n| n.id == o));
    if let Some(n) = node {
        if s.level == ILevel::Institution
            && !matches!(p.0.scope, Scope::Institution(_))
            && let Some(c) = n
                .comm
                .as_deref()
                .and_then(|c| tree.iter().find(|x| x.id == c))
        {
            out.push(
                context! { name => c.name.clone(), param => format!("Organization/{}", c.id) },
            );
        }
        out.push(context! { name => n.name.clone(), param => format!("Organization/{}", n.id) });
    }
    out
}

/// The communities a user may open community pages for (evaluation, budget).
fn communities_in_scope<'t>(tree: &'t [TreeNode], p: &Principal) -> Vec<&'t TreeNode> {
    tree.iter()
        .filter(|n| n.kind.as_deref() == Some("community"))
        .filter(|n| match &p.0.scope {
            Scope::County => true,
            Scope::Community(c) => *c == n.id,
            Scope::Institution(_) => false,
        })
        .collect()
}

fn pick_community(
    tree: &[TreeNode],
    p: &Principal,
    asked: Option<&str>,
) -> Result<(String, String), Fail> {
    let list = communities_in_scope(tree, p);
    if let Scope::Institution(_) = p.0.scope {
        return Err((
            StatusCode::FORBIDDEN,
            "医共体层面的评判与医保预算仅对医共体及县级用户开放".into(),
        ));
    }
    let id = asked.map(|a| a.strip_prefix("Organization/").unwrap_or(a));
    match id {
        Some(id) => {
            if let Some(n) = list.iter().find(|n| n.id == id) {
                Ok((n.id.clone(), n.name.clone()))
            } else if tree
                .iter()
                .any(|n| n.id == id && n.kind.as_deref() == Some("community"))
            {
                Err((
                    StatusCode::FORBIDDEN,
                    format!("医共体 {id} 不在您的管辖范围内"),
                ))
            } else {
                Err((StatusCode::NOT_FOUND, format!("医共体 {id} 不存在")))
            }
        }
        None => list
            .first()
            .map(|n| (n.id.clone(), n.name.clone()))
            .ok_or_else(|| (StatusCode::NOT_FOUND, "还没有医共体".to_string())),
    }
}

fn tree_of(st: &AppState) -> Arc<Vec<TreeNode>> {
    st.svc.org_tree()
}

// ---------------------------------------------------------------------------
// Indicator arithmetic over counter sums
// ---------------------------------------------------------------------------

type Sums = HashMap<String, i64>;

fn sum_of(s: &Sums, c: &str) -> i64 {
    s.get(c).copied().unwrap_or(0)
}

/// An indicator's figure from the sums of a period and (for growth) of the
/// same period a year earlier.
fn value_of(ind: &Indicator, now: &Sums, before: &Sums) -> IValue {
    let n = |c: &str| sum_of(now, c);
    if ind.compare.is_some() {
        let b = |c: &str| sum_of(before, c);
        indicators::value_growth(ind, &n, &b)
    } else {
        indicators::value(ind, &n)
    }
}

fn comps_of<'a>(inds: impl IntoIterator<Item = &'a Indicator>) -> Vec<String> {
    let mut v: Vec<String> = vec![];
    for i in inds {
        for c in i
            .numerator_components
            .iter()
            .chain(&i.denominator_components)
        {
            if !v.contains(c) {
                v.push(c.clone());
            }
        }
    }
    v
}

/// Month sums of a `metric_monthly` answer, summed over several months.
fn fold_months(monthly: &BTreeMap<String, Sums>, list: &[String]) -> Sums {
    let mut out = Sums::new();
    for m in list {
        if let Some(s) = monthly.get(m) {
            for (k, v) in s {
                *out.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
    out
}

/// The target a figure is judged against: the catalogue's, else an active
/// escalation rule's (the operations centre's own target).
fn target_of(ind: &Indicator, rules: &[RuleRow]) -> Option<i64> {
    ind.target.or_else(|| {
        rules
            .iter()
            .find(|r| r.active && r.rule.indicator == ind.id)
            .map(|r| r.rule.target)
    })
}

fn status(ind: &Indicator, score: Option<i64>, target: Option<i64>) -> &'static str {
    match (score, target) {
        (Some(v), Some(t)) if ind.direction.meets(v, t) => "ok",
        (Some(_), Some(_)) => "bad",
        (None, Some(_)) => "na",
        _ => "",
    }
}

fn op(d: Direction) -> &'static str {
    match d {
        Direction::HigherIsBetter => "≥",
        Direction::LowerIsBetter => "≤",
    }
}

fn target_text(ind: &Indicator, t: Option<i64>) -> String {
    t.map_or_else(
        || "未设定".into(),
        |t| format!("{} {}", op(ind.direction), ind.format(Some(t))),
    )
}

/// A score in display units for a chart (percent, yuan, …).
fn chart_value(ind: &Indicator, v: Option<i64>) -> Option<f64> {
    let v = v? as f64;
    Some(match ind.unit {
        Unit::Permille => v / 10.0,
        Unit::Bp => v / 100.0,
        Unit::Count if ind.numerator_kind() == CompKind::Fen && ind.compare.is_none() => v / 100.0,
        Unit::Count => v / 10f64.powi(ind.decimals as i32),
    })
}

fn axis_label(ind: &Indicator) -> String {
    match ind.unit {
        Unit::Permille | Unit::Bp => "%".into(),
        Unit::Count if ind.numerator_kind() == CompKind::Fen => "元".into(),
        Unit::Count => ind.unit_label.clone(),
    }
}

fn unit_label(ind: &Indicator) -> String {
    match ind.unit {
        Unit::Permille => "百分比（按千分位计算，显示一位小数）".into(),
        Unit::Bp => "百分比（按万分位计算，显示两位小数）".into(),
        Unit::Count if ind.numerator_kind() == CompKind::Fen => "元（以分计算）".into(),
        Unit::Count => {
            if ind.unit_label.is_empty() {
                "数值".into()
            } else {
                ind.unit_label.clone()
            }
        }
    }
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::HigherIsBetter => "越高越好",
        Direction::LowerIsBetter => "越低越好",
    }
}

fn level_label(l: ILevel) -> &'static str {
    match l {
        ILevel::County => "县",
        ILevel::Community => "医共体",
        ILevel::Institution => "机构",
    }
}

fn measure_id(ind: &Indicator) -> String {
    ind.id.replace('_', "-")
}

/// The indicators shown as tiles, in order (each only at the levels it is
/// defined for); the growth indicator is shown inside its base's tile.
const KEY: [&str; 10] = [
    "primary_visit_share",
    "inpatient_in_county_share",
    "fund_in_county_share",
    "inpatient_cost_in_county",
    "drug_share",
    "rx_intervention_rate",
    "referrals_up",
    "referrals_down",
    "outpatient_visits",
    "cost_per_visit",
];
const GROWTH_OF: (&str, &str) = (
    "inpatient_cost_in_county",
    "inpatient_cost_in_county_growth",
);

fn key_indicators(level: ILevel) -> Vec<&'static Indicator> {
    let cat = catalogue();
    KEY.iter()
        .filter_map(|id| cat.get(id))
        .filter(|i| i.available && i.levels.contains(&level))
        .collect()
}

fn growth_indicator(level: ILevel) -> Option<&'static Indicator> {
    catalogue()
        .get(GROWTH_OF.1)
        .filter(|i| i.available && i.levels.contains(&level))
}

// ---------------------------------------------------------------------------
// The cockpit
// ---------------------------------------------------------------------------

fn ind_href(id: &str, s: &Subj, from: &str, to: &str) -> String {
    format!(
        "/cockpit/indicators/{id}?subject={}&from={from}&to={to}",
        pct_encode(&s.param())
    )
}

/// The counters behind the tiles, read once per page: month by month from
/// `first` (at most the year's January) to `month`, and for the growth
/// indicator the same months a year earlier.
struct TileData {
    now: BTreeMap<String, Sums>,
    before: BTreeMap<String, Sums>,
    month: String,
    yfirst: String,
}

impl TileData {
    fn load(st: &AppState, s: &Subj, first: &str, month: &str) -> Result<TileData, Fail> {
        let store = &st.svc.store;
        let keys = key_indicators(s.level);
        let growth = growth_indicator(s.level);
        let yfirst = format!("{}-01", &month[..4]);
        let first = first.min(yfirst.as_str()).to_string();
        let now = store
            .metric_monthly(
                &s.subject,
                &comps_of(keys.iter().copied().chain(growth)),
                &first,
                month,
            )
            .map_err(sf)?;
        let before = match growth {
            Some(g) => store
                .metric_monthly(
                    &s.subject,
                    &comps_of([g]),
                    &shift(&yfirst, -12),
                    &shift(month, -12),
                )
                .map_err(sf)?,
            None => BTreeMap::new(),
        };
        Ok(TileData {
            now,
            before,
            month: month.to_string(),
            yfirst,
        })
    }
    fn month_sums(&self) -> (Sums, Sums) {
        (
            self.now.get(&self.month).cloned().unwrap_or_default(),
            self.before
                .get(&shift(&self.month, -12))
                .cloned()
                .unwrap_or_default(),
        )
    }
    fn ytd_sums(&self) -> (Sums, Sums) {
        (
            fold_months(&self.now, &months(&self.yfirst, &self.month)),
            fold_months(
                &self.before,
                &months(&shift(&self.yfirst, -12), &shift(&self.month, -12)),
            ),
        )
    }
}

/// The live tiles: each key indicator this month and year to date.
fn tiles_ctx(d: &TileData, s: &Subj, rules: &[RuleRow]) -> minijinja::Value {
    let month = d.month.as_str();
    let keys = key_indicators(s.level);
    let growth = growth_indicator(s.level);
    let (m_sums, pm_sums) = d.month_sums();
    let (y_sums, py_sums) = d.ytd_sums();
    let tiles: Vec<minijinja::Value> = keys
        .iter()
        .map(|ind| {
            let target = target_of(ind, rules);
            let mv = value_of(ind, &m_sums, &Sums::new());
            let yv = value_of(ind, &y_sums, &Sums::new());
            let sub = match growth {
                Some(g) if ind.id == GROWTH_OF.0 => {
                    let gm = value_of(g, &m_sums, &pm_sums);
                    let gy = value_of(g, &y_sums, &py_sums);
                    Some(format!(
                        "同比增幅：本月 {}，年初至今 {}",
                        g.format(gm.score),
                        g.format(gy.score)
                    ))
                }
                _ => None,
            };
            context! {
                id => ind.id.clone(), name => ind.name.clone(),
                month => Cell::score(ind, mv.score).ctx(), ytd => Cell::score(ind, yv.score).ctx(),
                month_class => status(ind, mv.score, target), class => status(ind, yv.score, target),
                target => target_text(ind, target), sub => sub,
                href => ind_href(&ind.id, s, &d.yfirst, month),
            }
        })
        .collect();
    let now = Utc::now()
        .with_timezone(&Shanghai)
        .format("%H:%M:%S")
        .to_string();
    context! { tiles => tiles, month => month, month_label => month_label(month), updated => now }
}

fn build_cockpit(st: &AppState, p: &Principal, q: &Q) -> Result<Built, Fail> {
    let tree = tree_of(st);
    let s = resolve(&tree, p, nonempty(&q.subject))?;
    let live = nonempty(&q.month).is_none();
    let month = month_param(&q.month, current_month(), "月份")?;
    let store = &st.svc.store;
    let rules = store.ops_rules().map_err(sf)?;
    let yfirst = format!("{}-01", &month[..4]);
    let keys = key_indicators(s.level);
    let growth = growth_indicator(s.level);
    // Trends: the last 12 months of each key indicator against its target.
    let first12 = shift(&month, -11);
    let data = TileData::load(st, &s, &first12, &month)?;
    let tiles = tiles_ctx(&data, &s, &rules);
    let monthly = &data.now;
    let mlist = months(&first12, &month);
    let mut trend_sheet = Sheet::new(
        "月度趋势",
        &std::iter::once("月份")
            .chain(keys.iter().map(|i| i.name.as_str()))
            .collect::<Vec<_>>(),
    );
    for m in &mlist {
        let sums = monthly.get(m).cloned().unwrap_or_default();
        let mut row = vec![Cell::s(m.clone())];
        for ind in &keys {
            row.push(Cell::score(ind, value_of(ind, &sums, &Sums::new()).score));
        }
        trend_sheet.rows.push(row);
    }
    let charts: Vec<serde_json::Value> = keys
        .iter()
        .map(|ind| {
            let data: Vec<Option<f64>> = mlist
                .iter()
                .map(|m| {
                    let sums = monthly.get(m).cloned().unwrap_or_default();
                    chart_value(ind, value_of(ind, &sums, &Sums::new()).score)
                })
                .collect();
            let t = target_of(ind, &rules);
            json!({ "id": ind.id, "name": ind.name, "unit": axis_label(ind), "data": data,
                    "max": ind.is_proportion().then_some(100),
                    "target": chart_value(ind, t), "target_text": target_text(ind, t) })
        })
        .collect();

    // Drill-down: the same indicators, year to date, for each child.
    let kids = children(&tree, &s);
    let mut child_sheet = None;
    if let Some((olevel, ilevel)) = s.child_level() {
        let cinds: Vec<&Indicator> = key_indicators(ilevel);
        let cgrowth = growth_indicator(ilevel);
        let ccomps = comps_of(cinds.iter().copied().chain(cgrowth));
        let now = store
            .metric_by_org(olevel, &s.subject, &ccomps, &yfirst, &month, false)
            .map_err(sf)?;
        let before = match cgrowth {
            Some(g) => store
                .metric_by_org(
                    olevel,
                    &s.subject,
                    &comps_of([g]),
                    &shift(&yfirst, -12),
                    &shift(&month, -12),
                    false,
                )
                .map_err(sf)?,
            None => BTreeMap::new(),
        };
        let mut headers = vec![format!(
            "{}（年初至今）",
            if olevel == OrgLevel::Community {
                "医共体"
            } else {
                "机构"
            }
        )];
        headers.extend(cinds.iter().map(|i| i.name.clone()));
        if let Some(g) = cgrowth {
            headers.push(g.name.clone());
        }
        let mut sheet = Sheet {
            name: format!("下级{}", olevel.label_zh()),
            headers,
            rows: vec![],
        };
        for k in &kids {
            let empty = Sums::new();
            let sums = now.get(&k.id).and_then(|m| m.get("")).unwrap_or(&empty);
            let prev = before.get(&k.id).and_then(|m| m.get("")).unwrap_or(&empty);
            let ks = Subj {
                subject: if olevel == OrgLevel::Community {
                    Subject::Community(k.id.clone())
                } else {
                    Subject::Institution(k.id.clone())
                },
                org: Some(k.id.clone()),
                name: k.name.clone(),
                level: ilevel,
            };
            let mut row = vec![Cell::s(k.name.clone()).link(format!(
                "/cockpit?subject={}{}",
                pct_encode(&ks.param()),
                if live {
                    String::new()
                } else {
                    format!("&month={month}")
                }
            ))];
            for ind in &cinds {
                let v = value_of(ind, sums, &empty);
                row.push(
                    Cell::score(ind, v.score)
                        .class(status(ind, v.score, target_of(ind, &rules)))
                        .link(ind_href(&ind.id, &ks, &yfirst, &month)),
                );
            }
            if let Some(g) = cgrowth {
                row.push(Cell::score(g, value_of(g, sums, prev).score));
            }
            sheet.rows.push(row);
        }
        child_sheet = Some(sheet);
    }

    // The tiles as a sheet, for the export.
    let keys_all: Vec<&Indicator> = keys.iter().copied().chain(growth).collect();
    let (m_sums, pm) = data.month_sums();
    let (y_sums, py) = data.ytd_sums();
    let mut tile_sheet = Sheet::new(
        "核心指标",
        &["指标", "本月", "年初至今", "目标", "年初至今是否达标"],
    );
    for ind in &keys_all {
        let t = target_of(ind, &rules);
        let yv = value_of(ind, &y_sums, &py).score;
        tile_sheet.rows.push(vec![
            Cell::s(ind.name.clone()).link(ind_href(&ind.id, &s, &yfirst, &month)),
            Cell::score(ind, value_of(ind, &m_sums, &pm).score),
            Cell::score(ind, yv).class(status(ind, yv, t)),
            Cell::s(target_text(ind, t)),
            Cell::s(match status(ind, yv, t) {
                "ok" => "达标",
                "bad" => "未达标",
                "na" => "无数据",
                _ => "—",
            }),
        ]);
    }

    let mut sheets = vec![tile_sheet];
    if let Some(c) = &child_sheet {
        sheets.push(c.clone());
    }
    sheets.push(trend_sheet);
    let tiles_url = format!(
        "/cockpit/tiles?subject={}{}",
        pct_encode(&s.param()),
        if live {
            String::new()
        } else {
            format!("&month={month}")
        }
    );
    let export = format!(
        "/cockpit/export.xlsx?view=cockpit&subject={}&month={month}",
        pct_encode(&s.param())
    );
    let ctx = context! {
        title => "运营驾驶舱", nav => "cockpit", user => user_ctx(st, p),
        subject => context! { name => s.name.clone(), param => s.param(), q => pct_encode(&s.param()), level => level_label(s.level) },
        crumbs => crumbs(&tree, &s, p), month => month.clone(), month_label => month_label(&month), live => live,
        tiles => tiles, tiles_url => tiles_url, charts => charts, months => mlist.clone(),
        children => child_sheet.as_ref().map(Sheet::ctx), export => export,
        community => match &s.subject { Subject::Community(c) => Some(c.clone()), _ => None },
        may_edit => may_edit(p),
    };
    Ok(Built {
        file: format!("驾驶舱-{}-{month}.xlsx", s.name),
        sheets,
        ctx,
    })
}

async fn home(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    page(st, p, q, build_cockpit, "cockpit_home.html").await
}

/// The tiles only: polled every second by the cockpit (htmx), so a new
/// encounter shows within a second of its write.
async fn tiles_fragment(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let (st2, p2) = (st.clone(), p.clone());
    let res = blocking(move || -> Result<minijinja::Value, Fail> {
        let tree = tree_of(&st2);
        let s = resolve(&tree, &p2, nonempty(&q.subject))?;
        let month = month_param(&q.month, current_month(), "月份")?;
        let rules = st2.svc.store.ops_rules().map_err(sf)?;
        let data = TileData::load(&st2, &s, &month, &month)?;
        Ok(tiles_ctx(&data, &s, &rules))
    })
    .await;
    match res {
        Ok(ctx) => render(&st, "cockpit_tiles.html", context! { tiles => ctx }),
        Err((s, m)) => (s, m).into_response(),
    }
}

type Builder = fn(&AppState, &Principal, &Q) -> Result<Built, Fail>;

async fn page(
    st: AppState,
    p: Principal,
    q: Q,
    build: Builder,
    template: &'static str,
) -> Response {
    let (st2, p2) = (st.clone(), p.clone());
    match blocking(move || build(&st2, &p2, &q)).await {
        Ok(b) => render(&st, template, b.ctx),
        Err((s, m)) => error_page(&st, &p, s, &m),
    }
}

// ---------------------------------------------------------------------------
// One indicator
// ---------------------------------------------------------------------------

/// The records behind a figure, when they are Encounters, reports or flows.
fn record_kind(ind: &Indicator) -> Option<&'static str> {
    let c = ind.numerator_components.first()?;
    let enc = [
        "visits",
        "admissions",
        "discharges",
        "inpatient",
        "charges",
        "revenue",
        "fund_paid",
        "visit_charges",
    ];
    if enc.iter().any(|p| c.starts_with(p)) {
        Some("Encounter")
    } else if c.starts_with("reports_") || c.starts_with("ecg_reports") {
        Some("DiagnosticReport")
    } else if c.starts_with("referral") {
        Some("Task")
    } else {
        None
    }
}

fn fhir_search(kind: &str, org: &str, from: &str, to: &str) -> String {
    let lo = pct_encode(&format!("ge{from}-01T00:00:00+08:00"));
    let hi = pct_encode(&format!("lt{}-01T00:00:00+08:00", shift(to, 1)));
    let param = match kind {
        "Encounter" => "service-provider",
        "DiagnosticReport" => "performer",
        _ => "requester",
    };
    let date = if kind == "Task" {
        "authored-on"
    } else {
        "date"
    };
    format!("/fhir/{kind}?{param}=Organization/{org}&{date}={lo}&{date}={hi}&_count=200")
}

fn build_indicator(st: &AppState, p: &Principal, q: &Q) -> Result<Built, Fail> {
    let tree = tree_of(st);
    let id = q.id.clone().unwrap_or_default();
    let Some(ind) = catalogue().get(&id) else {
        return Err((StatusCode::NOT_FOUND, format!("指标 {id} 不存在")));
    };
    let s = resolve(&tree, p, nonempty(&q.subject))?;
    let cm = current_month();
    let to = month_param(&q.to, cm.clone(), "截止月份")?;
    let from = month_param(&q.from, format!("{}-01", &to[..4]), "起始月份")?;
    if from > to {
        return Err(bad(format!("起始月份 {from} 晚于截止月份 {to}")));
    }
    let mlist = months(&from, &to);
    if mlist.len() > 60 {
        return Err(bad("统计期间最长 60 个月"));
    }
    let store = &st.svc.store;
    let rules = store.ops_rules().map_err(sf)?;
    let target = target_of(ind, &rules);
    let applicable = ind.available && ind.levels.contains(&s.level);
    // A ranking indicator's family (`visits_dx:*`) is read member by member
    // through its key range; its total is the sum of the members.
    let family = ind.family();
    let comps: Vec<String> = comps_of([ind])
        .into_iter()
        .filter(|c| !c.ends_with(":*"))
        .collect();
    let members = match family {
        Some(fam) if applicable => store
            .metric_family_range(&s.subject, fam, &from, &to)
            .map_err(sf)?,
        _ => vec![],
    };
    let growth = ind.compare.is_some();
    let (pfrom, pto) = (shift(&from, -12), shift(&to, -12));

    // The figure for the period.
    let (value, sums) = if applicable {
        let mut now = store
            .metric_sums(&s.subject, &comps, &from, &to)
            .map_err(sf)?;
        if let Some(fam) = family {
            now.insert(format!("{fam}:*"), members.iter().map(|m| m.1).sum());
        }
        let before = if growth {
            store
                .metric_sums(&s.subject, &comps, &pfrom, &pto)
                .map_err(sf)?
        } else {
            Sums::new()
        };
        (value_of(ind, &now, &before), now)
    } else {
        (IValue::NONE, Sums::new())
    };

    // Month by month.
    let (num_kind, den_kind) = if growth {
        (ind.numerator_kind(), Some(ind.numerator_kind()))
    } else {
        (ind.numerator_kind(), ind.denominator_kind())
    };
    let part = |kind: CompKind, v: i64| -> Cell {
        if growth && kind != CompKind::Fen && ind.decimals > 0 {
            Cell::s(indicators::decimal(v, ind.decimals))
        } else {
            Cell::part(kind, v)
        }
    };
    let mut month_sheet = Sheet::new(
        "月度",
        &[
            "月份",
            if growth { "本期基数" } else { "分子" },
            if growth {
                "上年同期基数"
            } else {
                "分母"
            },
            "指标值",
            "原始记录",
        ],
    );
    let mut chart_data = vec![];
    if applicable && family.is_none() {
        let first = if growth { pfrom.clone() } else { from.clone() };
        let monthly = store
            .metric_monthly(&s.subject, &comps, &first, &to)
            .map_err(sf)?;
        for m in &mlist {
            let now = monthly.get(m).cloned().unwrap_or_default();
            let before = monthly.get(&shift(m, -12)).cloned().unwrap_or_default();
            let v = value_of(ind, &now, &before);
            chart_data.push(chart_value(ind, v.score));
            let records = match (record_kind(ind), &s.subject) {
                (Some("Encounter"), Subject::Institution(i)) => Cell::s("查看就诊记录")
                    .link(format!("/cockpit/records?org={i}&from={m}&to={m}")),
                (Some(k), Subject::Institution(i)) => {
                    Cell::s(format!("FHIR {k}")).link(fhir_search(k, i, m, m))
                }
                _ => Cell::s(""),
            };
            month_sheet.rows.push(vec![
                Cell::s(m.clone()),
                part(num_kind, v.numerator),
                v.denominator.map_or_else(
                    || Cell::s("—"),
                    |d| den_kind.map_or(Cell::int(d), |k| part(k, d)),
                ),
                Cell::score(ind, v.score).class(status(ind, v.score, target)),
                records,
            ]);
        }
    }

    // Breakdown by the organisations one level down.
    let mut breakdown = None;
    if applicable
        && family.is_none()
        && let Some((olevel, ilevel)) = s.child_level()
        && ind.levels.contains(&ilevel)
    {
        let now = store
            .metric_by_org(olevel, &s.subject, &comps, &from, &to, false)
            .map_err(sf)?;
        let before = if growth {
            store
                .metric_by_org(olevel, &s.subject, &comps, &pfrom, &pto, false)
                .map_err(sf)?
        } else {
            BTreeMap::new()
        };
        let mut sheet = Sheet::new(
            &format!("按{}", olevel.label_zh()),
            &[
                olevel.label_zh(),
                if growth { "本期基数" } else { "分子" },
                if growth {
                    "上年同期基数"
                } else {
                    "分母"
                },
                "指标值",
                "原始记录",
            ],
        );
        let empty = Sums::new();
        for k in children(&tree, &s) {
            let a = now.get(&k.id).and_then(|m| m.get("")).unwrap_or(&empty);
            let b = before.get(&k.id).and_then(|m| m.get("")).unwrap_or(&empty);
            let v = value_of(ind, a, b);
            let ks = Subj {
                subject: Subject::County,
                org: Some(k.id.clone()),
                name: k.name.clone(),
                level: ilevel,
            };
            let records = match record_kind(ind) {
                Some("Encounter") if olevel == OrgLevel::Institution => Cell::s("查看就诊记录")
                    .link(format!("/cockpit/records?org={}&from={from}&to={to}", k.id)),
                Some(kind) if olevel == OrgLevel::Institution => {
                    Cell::s(format!("FHIR {kind}")).link(fhir_search(kind, &k.id, &from, &to))
                }
                _ => Cell::s(""),
            };
            sheet.rows.push(vec![
                Cell::s(k.name.clone()).link(ind_href(&ind.id, &ks, &from, &to)),
                part(num_kind, v.numerator),
                v.denominator.map_or_else(
                    || Cell::s("—"),
                    |d| den_kind.map_or(Cell::int(d), |kd| part(kd, d)),
                ),
                Cell::score(ind, v.score).class(status(ind, v.score, target)),
                records,
            ]);
        }
        breakdown = Some(sheet);
    }

    // Ranking indicators: the ten largest members.
    let mut top = None;
    if applicable && family.is_some() {
        let sum = |c: &str| sum_of(&sums, c);
        let mut sheet = Sheet::new("前十位", &["位次", "ICD-10 类目", "人次", "占比"]);
        for (i, r) in indicators::top(ind, &members, &sum, 10)
            .into_iter()
            .enumerate()
        {
            sheet.rows.push(vec![
                Cell::int(i as i64 + 1),
                Cell::s(r.key.clone()),
                Cell::int(r.value.numerator),
                Cell::score(ind, r.value.score),
            ]);
        }
        top = Some(sheet);
    }

    // The written definition.
    let comp_desc: Vec<String> = ind
        .numerator_components
        .iter()
        .map(|c| ("分子", c))
        .chain(ind.denominator_components.iter().map(|c| ("分母", c)))
        .map(|(side, c)| {
            let zh = indicators::components()
                .iter()
                .find(|(id, _)| *id == c.as_str())
                .map_or("", |(_, z)| *z);
            format!("{side}：{c}（{zh}）")
        })
        .collect();
    let mut def = Sheet::new("定义", &["项目", "内容"]);
    let rows: Vec<(&str, String)> = vec![
        ("指标名称", ind.name.clone()),
        ("编号", ind.id.clone()),
        ("分组", ind.group.label_zh().to_string()),
        ("分子", ind.numerator.clone()),
        (
            "分母",
            if ind.denominator.is_empty() {
                "—（合计类指标）".into()
            } else {
                ind.denominator.clone()
            },
        ),
        ("纳入标准", ind.inclusion.clone()),
        ("数据来源", ind.source_data.clone()),
        ("统计周期", ind.period.clone()),
        ("单位", unit_label(ind)),
        (
            "目标",
            match (ind.target, target) {
                (Some(_), t) => target_text(ind, t),
                (None, Some(t)) => format!("{}（运营管理中心预警规则）", target_text(ind, Some(t))),
                (None, None) => "未设定".into(),
            },
        ),
        ("方向", direction_label(ind.direction).into()),
        (
            "统计层级",
            ind.levels
                .iter()
                .map(|l| level_label(*l))
                .collect::<Vec<_>>()
                .join("、"),
        ),
        (
            "比较",
            if growth {
                "与上年同期比较（同比增幅）".into()
            } else {
                "—".into()
            },
        ),
        ("计算口径", comp_desc.join("；")),
        (
            "说明",
            if ind.note.is_empty() {
                "—".into()
            } else {
                ind.note.clone()
            },
        ),
        ("依据", ind.source.clone()),
    ];
    for (k, v) in rows {
        def.rows.push(vec![Cell::s(k), Cell::s(v)]);
    }

    let period = format!("{from} 至 {to}");
    let mut value_sheet = Sheet::new(
        "指标值",
        &["对象", "统计期间", "指标值", "分子", "分母", "目标"],
    );
    value_sheet.rows.push(vec![
        Cell::s(s.name.clone()),
        Cell::s(period.clone()),
        Cell::score(ind, value.score).class(status(ind, value.score, target)),
        part(num_kind, value.numerator),
        value.denominator.map_or_else(
            || Cell::s("—"),
            |d| den_kind.map_or(Cell::int(d), |k| part(k, d)),
        ),
        Cell::s(target_text(ind, target)),
    ]);

    let mut sheets = vec![value_sheet.clone(), def.clone(), month_sheet.clone()];
    sheets.extend(breakdown.clone());
    sheets.extend(top.clone());
    let chart = json!({ "months": mlist, "data": chart_data, "name": ind.name, "unit": axis_label(ind),
                        "max": ind.is_proportion().then_some(100),
                        "target": chart_value(ind, target), "target_text": target_text(ind, target) });
    let export = format!(
        "/cockpit/export.xlsx?view=indicator&id={}&subject={}&from={from}&to={to}",
        ind.id,
        pct_encode(&s.param())
    );
    let ctx = context! {
        title => ind.name.clone(), nav => "cockpit", user => user_ctx(st, p),
        ind => context! { id => ind.id.clone(), name => ind.name.clone(), group => ind.group.label_zh(), measure => measure_id(ind),
                          available => ind.available, note => ind.note.clone() },
        subject => context! { name => s.name.clone(), param => s.param(), q => pct_encode(&s.param()), level => level_label(s.level) },
        crumbs => crumbs(&tree, &s, p), from => from, to => to, period => period,
        applicable => applicable, has_monthly => applicable && family.is_none(),
        value => Cell::score(ind, value.score).class(status(ind, value.score, target)).ctx(),
        value_sheet => value_sheet.ctx(), definition => def.ctx(), monthly => month_sheet.ctx(),
        breakdown => breakdown.as_ref().map(Sheet::ctx), top => top.as_ref().map(Sheet::ctx),
        chart => chart, export => export,
    };
    Ok(Built {
        file: format!("{}-{}-{from}至{to}.xlsx", ind.name, s.name),
        sheets,
        ctx,
    })
}

async fn indicator_page(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(mut q): Query<Q>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    q.id = Some(id);
    page(st, p, q, build_indicator, "cockpit_indicator.html").await
}

/// The encounters behind a figure: one institution's Encounters whose visit
/// (or admission) started in the months asked, through the same scoped FHIR
/// search the API runs.
async fn records(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let (st2, p2) = (st.clone(), p.clone());
    let res = blocking(move || -> Result<minijinja::Value, Fail> {
        let tree = tree_of(&st2);
        let org = nonempty(&q.org).ok_or_else(|| bad("缺少机构参数 org"))?;
        let s = resolve(&tree, &p2, Some(org))?;
        let Subject::Institution(inst) = &s.subject else {
            return Err(bad("原始记录按机构查看，请选择一个机构"));
        };
        let cm = current_month();
        let to = month_param(&q.to, cm.clone(), "截止月份")?;
        let from = month_param(&q.from, to.clone(), "起始月份")?;
        if from > to {
            return Err(bad(format!("起始月份 {from} 晚于截止月份 {to}")));
        }
        let pairs = vec![
            ("service-provider".to_string(), format!("Organization/{inst}")),
            ("date".to_string(), format!("ge{from}-01T00:00:00+08:00")),
            ("date".to_string(), format!("lt{}-01T00:00:00+08:00", shift(&to, 1))),
            ("_sort".to_string(), "date".to_string()),
            ("_count".to_string(), "200".to_string()),
            ("_total".to_string(), "accurate".to_string()),
        ];
        let spec = yigong_fhir::search::parse("Encounter", &pairs).map_err(|i| bad(i.zh))?;
        let (total, found) = st2.svc.search(&p2, &spec).map_err(|i| {
            (
                StatusCode::from_u16(i.status).unwrap_or(StatusCode::BAD_REQUEST),
                i.zh,
            )
        })?;
        let rows: Vec<minijinja::Value> = found
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .map(|e| {
                let ch = extension(&e, EXT_CHARGES);
                let total: Fen = ch
                    .map(|c| {
                        ["drugs", "consumables", "exams", "services"]
                            .iter()
                            .map(|k| money_of(c, k))
                            .sum::<Fen>()
                    })
                    .unwrap_or(Fen::ZERO);
                let ins = ch.map_or(Fen::ZERO, |c| money_of(c, "insurance-paid"));
                let dx: Vec<String> = e["reasonCode"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| str_of(r, &["coding", "0", "code"]).to_string())
                    .collect();
                let class = str_of(&e, &["class", "code"]);
                context! {
                    id => str_of(&e, &["id"]), start => local_time(str_of(&e, &["period", "start"])),
                    end => local_time(str_of(&e, &["period", "end"])),
                    class => yigong_core::EncounterClass::from_act_code(class).map_or(class, |c| c.label_zh()),
                    status => str_of(&e, &["status"]), patient => reference_id(&e["subject"]),
                    dx => dx.join("、"), total => yuan(total), insurance => yuan(ins),
                }
            })
            .collect();
        let fhir = fhir_search("Encounter", inst, &from, &to);
        Ok(context! {
            title => "原始记录", nav => "cockpit", user => user_ctx(&st2, &p2),
            subject => context! { name => s.name.clone(), param => s.param(), q => pct_encode(&s.param()) },
            from => from, to => to, rows => rows, total => total.unwrap_or(0), fhir => fhir,
        })
    })
    .await;
    match res {
        Ok(ctx) => render(&st, "cockpit_records.html", ctx),
        Err((s, m)) => error_page(&st, &p, s, &m),
    }
}

// ---------------------------------------------------------------------------
// Escalation levels computed from the monthly figures
// ---------------------------------------------------------------------------

/// One organisation's escalation under one rule.
struct EscRow {
    rule: RuleRow,
    ind: &'static Indicator,
    org: String,
    name: String,
    esc: escalation::Escalation<String>,
    latest: Option<i64>,
    recorded: Vec<StepRow>,
}

/// The organisations a rule applies to inside `within`.
fn rule_subjects<'t>(tree: &'t [TreeNode], level: OrgLevel, within: &Subject) -> Vec<&'t TreeNode> {
    tree.iter()
        .filter(|n| match level {
            OrgLevel::Community => {
                n.kind.as_deref() == Some("community")
                    && match within {
                        Subject::County => true,
                        Subject::Community(c) => *c == n.id,
                        Subject::Institution(_) => false,
                    }
            }
            OrgLevel::Institution => {
                is_inst(n)
                    && n.comm.is_some()
                    && match within {
                        Subject::County => true,
                        Subject::Community(c) => n.comm.as_deref() == Some(c.as_str()),
                        Subject::Institution(i) => *i == n.id,
                    }
            }
        })
        .collect()
}

/// Every active rule applied to the twelve months ending `month` of each
/// organisation at its level inside `within` (one grouped read per rule).
fn escalation_rows(
    st: &AppState,
    tree: &[TreeNode],
    within: &Subject,
    rules: &[RuleRow],
    month: &str,
    steps: &[StepRow],
) -> Result<Vec<EscRow>, Fail> {
    let mut out = vec![];
    let span = months(&shift(month, -11), month);
    for r in rules.iter().filter(|r| r.active) {
        let Some(ind) = catalogue().get(&r.rule.indicator) else {
            continue;
        };
        let subjects = rule_subjects(tree, r.level, within);
        if subjects.is_empty() {
            continue;
        }
        let comps = comps_of([ind]);
        let first = shift(month, if ind.compare.is_some() { -23 } else { -11 });
        let data = st
            .svc
            .store
            .metric_by_org(r.level, within, &comps, &first, month, true)
            .map_err(sf)?;
        let empty = Sums::new();
        for n in subjects {
            let by_month = data.get(&n.id);
            let sums = |m: &str| by_month.and_then(|b| b.get(m)).unwrap_or(&empty);
            let history: Vec<(String, Option<i64>)> = span
                .iter()
                .map(|m| {
                    (
                        m.clone(),
                        value_of(ind, sums(m), sums(&shift(m, -12))).score,
                    )
                })
                .collect();
            let esc = escalation::escalation(&history, &r.rule).map_err(|e| bad(e.to_string()))?;
            out.push(EscRow {
                rule: r.clone(),
                ind,
                org: n.id.clone(),
                name: n.name.clone(),
                latest: history.last().and_then(|h| h.1),
                recorded: steps
                    .iter()
                    .filter(|s| s.rule_id == r.id && s.org == n.id)
                    .cloned()
                    .collect(),
                esc,
            });
        }
    }
    Ok(out)
}

fn level_name(l: Option<EscLevel>) -> &'static str {
    l.map_or("—", EscLevel::name_zh)
}

fn level_class(l: Option<EscLevel>) -> &'static str {
    match l {
        None => "",
        Some(EscLevel::Notify) => "notify",
        Some(EscLevel::Warn) => "warn",
        Some(EscLevel::Summon) => "bad",
    }
}

// ---------------------------------------------------------------------------
// The monthly report
// ---------------------------------------------------------------------------

fn change_cell(ind: &Indicator, now: Option<i64>, before: Option<i64>) -> Cell {
    let (Some(a), Some(b)) = (now, before) else {
        return Cell::s("—");
    };
    let d = a - b;
    let sign = if d > 0 { "+" } else { "" };
    match ind.unit {
        Unit::Permille | Unit::Bp => {
            let scale = if ind.unit == Unit::Permille {
                1000.0
            } else {
                10_000.0
            };
            Cell {
                text: format!(
                    "{sign}{} 个百分点",
                    ind.unit.format(d).trim_end_matches('%')
                ),
                x: X::N(
                    d as f64 / scale,
                    if ind.unit == Unit::Permille {
                        "+0.0%;-0.0%;0.0%"
                    } else {
                        "+0.00%;-0.00%;0.00%"
                    },
                ),
                class: "",
                href: None,
            }
        }
        Unit::Count => match yigong_metrics::share_permille(d, b) {
            Some(r) => Cell {
                text: format!(
                    "{}{}",
                    if r > 0 { "+" } else { "" },
                    Unit::Permille.format(r)
                ),
                x: X::N(r as f64 / 1000.0, "+0.0%;-0.0%;0.0%"),
                class: "",
                href: None,
            },
            None => Cell::s("—"),
        },
    }
}

/// The previous year's spending, when it can carry the seasonal profile:
/// every month has spending (a year the platform only partly covered would
/// distort the seasonal forecast).
fn complete(prev: budget::YearSpending) -> Option<budget::YearSpending> {
    (prev.months().len() == 12
        && prev
            .months()
            .iter()
            .all(|m| m.inside.0 + m.county.0 + m.outside.0 > 0))
    .then_some(prev)
}

/// A community's budget execution through `through` (month number).
struct Execution {
    net: Fen,
    spent: Fen,
    execution_bp: Option<i64>,
    time_bp: i64,
    balance: Option<Fen>,
    outside_bp: Option<i64>,
}

fn execution_of(
    st: &AppState,
    comm: &str,
    year: i32,
    through: u32,
) -> Result<Result<Execution, String>, Fail> {
    let store = &st.svc.store;
    let Some(cfg) = store.ops_budget(comm, year).map_err(sf)? else {
        return Ok(Err("未配置".into()));
    };
    let enrollees = match cfg.input.enrollees {
        Some(n) => n,
        None => store.ops_enrollees(comm).map_err(sf)?,
    };
    let b = match yigong_metrics::Budget::new(enrollees, cfg.input.per_capita, cfg.input.reserve_bp)
    {
        Ok(b) => b,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let sp = store.ops_year_spending(comm, year, through).map_err(sf)?;
    let prev = if year > 2000 {
        complete(store.ops_year_spending(comm, year - 1, 12).map_err(sf)?)
    } else {
        None
    };
    let last = budget::execution(&b, &sp).last().copied();
    let fc = budget::forecast(&b, &sp, prev.as_ref()).map_err(|e| bad(e.to_string()))?;
    Ok(Ok(Execution {
        net: b.net,
        spent: sp.ytd().total,
        execution_bp: last.and_then(|l| l.execution_bp),
        time_bp: last.map_or(0, |l| l.time_progress_bp),
        balance: fc.map(|f| f.balance),
        outside_bp: sp.ytd().outside_bp,
    }))
}

fn build_report(st: &AppState, p: &Principal, q: &Q) -> Result<Built, Fail> {
    let tree = tree_of(st);
    let s = resolve(&tree, p, nonempty(&q.subject))?;
    let month = month_param(&q.month, shift(&current_month(), -1), "月份")?;
    let (year, mnum) = ym(&month).unwrap_or((2000, 1));
    let yfirst = format!("{year:04}-01");
    let store = &st.svc.store;
    let rules = store.ops_rules().map_err(sf)?;
    let inds: Vec<&Indicator> = catalogue()
        .all()
        .iter()
        .filter(|i| i.available && i.family().is_none() && i.levels.contains(&s.level))
        .collect();
    let comps = comps_of(inds.iter().copied());
    let monthly = store
        .metric_monthly(&s.subject, &comps, &shift(&month, -24), &month)
        .map_err(sf)?;
    let at = |m: &str| monthly.get(m).cloned().unwrap_or_default();
    let ytd = fold_months(&monthly, &months(&yfirst, &month));
    let pytd = fold_months(&monthly, &months(&shift(&yfirst, -12), &shift(&month, -12)));
    let mut head = Sheet::new(
        "核心指标",
        &[
            "指标",
            "本月",
            "上月",
            "环比",
            "去年同月",
            "同比",
            "年初至今",
            "目标",
            "年初至今达标",
        ],
    );
    let mut headline = vec![];
    for ind in &inds {
        let v = |m: &str| value_of(ind, &at(m), &at(&shift(m, -12))).score;
        let (now, last, ly) = (v(&month), v(&shift(&month, -1)), v(&shift(&month, -12)));
        let y = value_of(ind, &ytd, &pytd).score;
        let t = target_of(ind, &rules);
        let row = vec![
            Cell::s(ind.name.clone()).link(ind_href(&ind.id, &s, &yfirst, &month)),
            Cell::score(ind, now).class(status(ind, now, t)),
            Cell::score(ind, last),
            change_cell(ind, now, last),
            Cell::score(ind, ly),
            change_cell(ind, now, ly),
            Cell::score(ind, y).class(status(ind, y, t)),
            Cell::s(target_text(ind, t)),
            Cell::s(match status(ind, y, t) {
                "ok" => "达标",
                "bad" => "未达标",
                "na" => "无数据",
                _ => "—",
            }),
        ];
        if KEY.contains(&ind.id.as_str()) || ind.id == GROWTH_OF.1 {
            headline.push(context! { name => ind.name.clone(), value => Cell::score(ind, now).class(status(ind, now, t)).ctx(),
                                     mom => change_cell(ind, now, last).text, yoy => change_cell(ind, now, ly).text });
        }
        head.rows.push(row);
    }

    // Targets missed and the escalation level reached.
    let steps = store.ops_steps(&p.0.scope, 1000).map_err(sf)?;
    let esc = escalation_rows(st, &tree, &s.subject, &rules, &month, &steps)?;
    let mut missed = Sheet::new(
        "未达标与预警",
        &[
            "预警规则",
            "指标",
            "对象",
            "本月值",
            "目标",
            "连续未达标期数",
            "预警级别",
            "已记录处置",
        ],
    );
    for e in esc.iter().filter(|e| {
        e.esc.level.is_some()
            || e.latest
                .is_some_and(|v| !e.rule.rule.direction.meets(v, e.rule.rule.target))
    }) {
        missed.rows.push(vec![
            Cell::s(e.rule.id.clone()),
            Cell::s(e.ind.name.clone()),
            Cell::s(e.name.clone()),
            Cell::score(e.ind, e.latest).class("bad"),
            Cell::s(target_text(e.ind, Some(e.rule.rule.target))),
            Cell::int(i64::from(e.esc.streak)),
            Cell::s(level_name(e.esc.level)).class(level_class(e.esc.level)),
            Cell::s(
                e.recorded
                    .iter()
                    .map(|r| format!("{} {}", r.level.name_zh(), local_time(&r.at)))
                    .collect::<Vec<_>>()
                    .join("；"),
            ),
        ]);
    }

    // The evaluation verdict and the budget execution of the communities.
    let comms: Vec<&TreeNode> = match &s.subject {
        Subject::County => tree
            .iter()
            .filter(|n| n.kind.as_deref() == Some("community"))
            .collect(),
        Subject::Community(c) => tree.iter().filter(|n| n.id == *c).collect(),
        Subject::Institution(_) => vec![],
    };
    let (std, _) = store.ops_standard().map_err(sf)?;
    let mut eval = Sheet::new(
        "评判结果",
        &["医共体", "判定", "A 级项数", "阻碍判定的原因"],
    );
    let mut exec = Sheet::new(
        "医保基金执行",
        &[
            "医共体",
            "预算净额",
            "累计支出",
            "执行进度",
            "时间进度",
            "预测年末结余",
            "县域外支出占比",
        ],
    );
    for c in &comms {
        let (r, _) = store
            .ops_evaluate(&c.id, &std, &yfirst, &month)
            .map_err(sf)?;
        eval.rows.push(vec![
            Cell::s(c.name.clone()).link(format!(
                "/cockpit/evaluation?community={}&year={year}",
                c.id
            )),
            Cell::s(r.verdict_label()).class(if r.tight { "ok" } else { "bad" }),
            Cell::int(r.a_count as i64),
            Cell::s(
                r.blockers
                    .iter()
                    .map(|b| b.message.clone())
                    .collect::<Vec<_>>()
                    .join("；"),
            ),
        ]);
        let link = format!("/cockpit/budget?community={}&year={year}", c.id);
        match execution_of(st, &c.id, year, mnum)? {
            Ok(x) => exec.rows.push(vec![
                Cell::s(c.name.clone()).link(link),
                Cell::fen(x.net),
                Cell::fen(x.spent),
                Cell::bp(x.execution_bp).class(match x.execution_bp {
                    Some(e) if e > x.time_bp => "bad",
                    Some(_) => "ok",
                    None => "",
                }),
                Cell::bp(Some(x.time_bp)),
                x.balance.map_or_else(
                    || Cell::s("无数据"),
                    |b| Cell::fen(b).class(if b.0 < 0 { "bad" } else { "" }),
                ),
                Cell::bp(x.outside_bp),
            ]),
            Err(why) => exec.rows.push(vec![
                Cell::s(c.name.clone()).link(link),
                Cell::s(why),
                Cell::s("—"),
                Cell::s("—"),
                Cell::s("—"),
                Cell::s("—"),
                Cell::s("—"),
            ]),
        }
    }
    let mut sheets = vec![head.clone(), missed.clone()];
    if !comms.is_empty() {
        sheets.push(eval.clone());
        sheets.push(exec.clone());
    }
    let export = format!(
        "/cockpit/export.xlsx?view=report&subject={}&month={month}",
        pct_encode(&s.param())
    );
    let ctx = context! {
        title => format!("{} 运营月报", month_label(&month)), nav => "cockpit", user => user_ctx(st, p),
        subject => context! { name => s.name.clone(), param => s.param(), q => pct_encode(&s.param()), level => level_label(s.level) },
        month => month.clone(), month_label => month_label(&month), headline => headline,
        head => head.ctx(), missed => missed.ctx(),
        eval => (!comms.is_empty()).then(|| eval.ctx()), exec => (!comms.is_empty()).then(|| exec.ctx()),
        standard => std.title(), export => export,
        generated => Utc::now().with_timezone(&Shanghai).format("%Y-%m-%d %H:%M").to_string(),
    };
    Ok(Built {
        file: format!("运营月报-{}-{month}.xlsx", s.name),
        sheets,
        ctx,
    })
}

async fn report(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    page(st, p, q, build_report, "cockpit_report.html").await
}

// ---------------------------------------------------------------------------
// The evaluation standard
// ---------------------------------------------------------------------------

/// The last month of a year's evaluation period (year to date for this year).
fn year_last_month(year: i32) -> Result<String, Fail> {
    let cm = current_month();
    let cy: i32 = cm[..4].parse().unwrap_or(2000);
    if year > cy {
        return Err(bad(format!("{year} 年尚未开始")));
    }
    Ok(if year == cy {
        cm
    } else {
        format!("{year:04}-12")
    })
}

fn build_evaluation(st: &AppState, p: &Principal, q: &Q) -> Result<Built, Fail> {
    let tree = tree_of(st);
    let (comm, cname) = pick_community(&tree, p, nonempty(&q.community))?;
    let year = year_param(&q.year)?;
    let last = year_last_month(year)?;
    let first = format!("{year:04}-01");
    let store = &st.svc.store;
    let (std, info) = store.ops_standard().map_err(sf)?;
    let (report, attested) = store.ops_evaluate(&comm, &std, &first, &last).map_err(sf)?;
    let dim_name = |id: &str| {
        std.dimensions()
            .iter()
            .find(|d| d.id == id)
            .map_or(id.to_string(), |d| d.name.clone())
    };
    let grade_class = |g: Option<Grade>| match g {
        Some(Grade::A) => "ok",
        Some(Grade::B) => "",
        Some(Grade::C) => "bad",
        None => "na",
    };
    let mut sheet = Sheet::new(
        "评判结果",
        &[
            "编号",
            "维度",
            "评判标准",
            "类型",
            "等级",
            "依据",
            "佐证材料",
        ],
    );
    let mut rows = vec![];
    for (c, r) in std.criteria().iter().zip(&report.criteria) {
        let a = attested.iter().find(|a| a.criterion == c.id);
        let (kind, indicator) = match &c.kind {
            evaluation::Kind::Computed(m) => ("计算", Some(m.indicator.clone())),
            evaluation::Kind::Attested => ("人工评定", None),
        };
        let evidence: Vec<minijinja::Value> = a
            .map(|a| {
                a.evidence
                    .iter()
                    .map(|e| context! { id => e.id.clone(), name => e.file_name.clone(), size => e.size, by => e.uploaded_by.clone(), at => local_time(&e.uploaded_at) })
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<String> = a
            .map(|a| a.evidence.iter().map(|e| e.file_name.clone()).collect())
            .unwrap_or_default();
        sheet.rows.push(vec![
            Cell::s(c.id.clone()),
            Cell::s(dim_name(&c.dimension)),
            Cell::s(c.name.clone()),
            Cell::s(kind),
            Cell::s(evaluation::grade_label(r.grade)).class(grade_class(r.grade)),
            Cell::s(r.basis.clone()),
            Cell::s(names.join("、")),
        ]);
        rows.push(context! {
            id => c.id.clone(), dimension => dim_name(&c.dimension), name => c.name.clone(), content => c.content.clone(),
            kind => kind, attested => indicator.is_none(),
            indicator => indicator.clone(),
            indicator_href => indicator.as_ref().map(|i| format!("/cockpit/indicators/{i}?subject=Organization/{comm}&from={first}&to={last}")),
            grade => evaluation::grade_label(r.grade), class => grade_class(r.grade), basis => r.basis.clone(),
            texts => context! { a => c.grades.a.clone(), b => c.grades.b.clone(), c => c.grades.c.clone() },
            evidence => evidence, version => a.map_or(0, |a| a.version), note => a.map(|a| a.note.clone()).unwrap_or_default(),
            by => a.map(|a| a.updated_by.clone()), at => a.map(|a| local_time(&a.updated_at)),
            decision => c.decision_authority,
        });
    }
    let mut gaps = Sheet::new("差距与改进", &["类型", "说明"]);
    for b in &report.blockers {
        gaps.rows
            .push(vec![Cell::s("阻碍判定"), Cell::s(b.message.clone())]);
    }
    for w in &report.what_if {
        gaps.rows
            .push(vec![Cell::s("最少改进"), Cell::s(w.message.clone())]);
    }
    let rule = std.rule();
    let rule_text = format!(
        "所有评判标准达到 {} 及以上；至少 {} 项达到 A；每个维度至少 {} 项达到 A；医共体决策权达到 {}",
        rule.min_grade, rule.min_a, rule.min_a_per_dimension, rule.decision_authority_grade
    );
    let standards: Vec<minijinja::Value> = store
        .ops_standards()
        .map_err(sf)?
        .into_iter()
        .map(|r| context! { title => r.title, version => r.version, id => r.id, by => r.uploaded_by, at => local_time(&r.uploaded_at) })
        .collect();
    let choices: Vec<minijinja::Value> = communities_in_scope(&tree, p)
        .iter()
        .map(|n| context! { id => n.id.clone(), name => n.name.clone() })
        .collect();
    let export = format!("/cockpit/export.xlsx?view=evaluation&community={comm}&year={year}");
    let ctx = context! {
        title => "医共体建设评判", nav => "cockpit", user => user_ctx(st, p),
        comm => comm.clone(), comm_name => cname.clone(), year => year, period => format!("{first} 至 {last}"),
        standard => context! { id => std.id(), title => std.title(), version => std.version(), issued_by => std.issued_by(),
                               document => std.document(), note => std.note(),
                               uploaded => info.as_ref().map(|i| format!("{} 于 {} 上传", i.uploaded_by, local_time(&i.uploaded_at))) },
        rule => rule_text, criteria => rows, tight => report.tight, verdict => report.verdict_label(), a_count => report.a_count,
        blockers => report.blockers.iter().map(|b| b.message.clone()).collect::<Vec<_>>(),
        what_if => report.what_if.iter().map(|w| w.message.clone()).collect::<Vec<_>>(),
        standards => standards, choices => choices, may_edit => may_edit(p),
        may_upload => may_edit(p) && p.0.scope == Scope::County,
        max_mb => ops::MAX_EVIDENCE_BYTES / (1024 * 1024), export => export,
    };
    let mut verdict = Sheet::new(
        "判定",
        &["医共体", "年度", "评判标准", "判定", "A 级项数", "判定规则"],
    );
    verdict.rows.push(vec![
        Cell::s(cname.clone()),
        Cell::int(i64::from(year)),
        Cell::s(std.title()),
        Cell::s(report.verdict_label()),
        Cell::int(report.a_count as i64),
        Cell::s(rule_text),
    ]);
    Ok(Built {
        file: format!("评判-{cname}-{year}.xlsx"),
        sheets: vec![verdict, sheet, gaps],
        ctx,
    })
}

async fn evaluation_page(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    page(st, p, q, build_evaluation, "cockpit_evaluation.html").await
}

fn json_status(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// `POST /cockpit/evaluation/standard`: a provincial standard file (JSON) is
/// put in force after the whole file is checked; a refused file changes
/// nothing and the parser's Chinese message is returned.
async fn standard_upload(
    State(st): State<AppState>,
    p: Principal,
    body: axum::body::Bytes,
) -> Response {
    if let Err((s, m)) = edit_guard(&p) {
        return json_status(s, json!({ "error": m }));
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return json_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": "评判标准文件须为 UTF-8 编码的 JSON" }),
        );
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    match blocking_write(move || store.ops_standard_upload(&actor, &text)).await {
        Ok(std) => json_status(
            StatusCode::OK,
            json!({ "ok": true, "id": std.id(), "version": std.version(), "title": std.title() }),
        ),
        Err(e) => {
            let (s, m) = sf(e);
            json_status(s, json!({ "error": m }))
        }
    }
}

fn parse_version(v: &str) -> Result<Option<i64>, Fail> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<i64>()
        .map(Some)
        .map_err(|_| bad(format!("版本号“{v}”无效")))
}

/// `POST /cockpit/evaluation/attest` (multipart): the attested grade of a
/// criterion with evidence files.
async fn attest(State(st): State<AppState>, p: Principal, mut mp: Multipart) -> Response {
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut files = vec![];
    loop {
        match mp.next_field().await {
            Ok(Some(f)) => {
                let name = f.name().unwrap_or("").to_string();
                let file_name = f.file_name().map(str::to_string);
                let ctype = f.content_type().unwrap_or("").to_string();
                match f.bytes().await {
                    Ok(bytes) => match file_name {
                        Some(fname) if name == "evidence" => {
                            if !bytes.is_empty() || !fname.is_empty() {
                                files.push(NewEvidence {
                                    file_name: fname,
                                    content_type: ctype,
                                    bytes: bytes.to_vec(),
                                });
                            }
                        }
                        _ => {
                            fields.insert(name, String::from_utf8_lossy(&bytes).to_string());
                        }
                    },
                    Err(e) => {
                        return error_page(
                            &st,
                            &p,
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!("上传失败（单个文件不超过 5 MB）：{e}"),
                        );
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                return error_page(
                    &st,
                    &p,
                    StatusCode::BAD_REQUEST,
                    &format!("上传内容格式错误：{e}"),
                );
            }
        }
    }
    // A browser sends an empty file part when no file was chosen.
    files.retain(|f| !(f.bytes.is_empty() && f.file_name.is_empty()));
    edit_write(st, p, move |st2, p2| {
        let f = |k: &str| {
            fields
                .get(k)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let comm = f("community");
        let year = f("year");
        let grade = Grade::from_name(&f("grade")).ok_or_else(|| bad("等级须为 A、B 或 C"))?;
        let version = parse_version(&f("version"))?.filter(|v| *v > 0);
        let store = &st2.svc.store;
        let (std, _) = store.ops_standard().map_err(sf)?;
        store
            .ops_attest(
                &p2.actor(),
                &comm,
                &std,
                &f("criterion"),
                grade,
                &f("note"),
                files,
                version,
            )
            .map_err(sf)?;
        Ok(format!("/cockpit/evaluation?community={comm}&year={year}"))
    })
    .await
}

fn done(st: &AppState, p: &Principal, res: Result<String, Fail>) -> Response {
    match res {
        Ok(to) => Redirect::to(&to).into_response(),
        Err((s, m)) => error_page(st, p, s, &m),
    }
}

/// Runs an editor's change off the async runtime, then redirects to the
/// address it returns (or shows the failure).
async fn edit_write(
    st: AppState,
    p: Principal,
    change: impl FnOnce(&AppState, &Principal) -> Result<String, Fail> + Send + 'static,
) -> Response {
    let (st2, p2) = (st.clone(), p.clone());
    let res = blocking_write(move || {
        edit_guard(&p2)?;
        change(&st2, &p2)
    })
    .await;
    done(&st, &p, res)
}
/// `GET /cockpit/evidence/{id}`: an evidence file, within the user's scope.
async fn evidence(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    match blocking(move || store.ops_evidence(&scope, &id)).await {
        Ok(Some((e, bytes))) => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&e.content_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            );
            if let Ok(v) = HeaderValue::from_str(&format!(
                "attachment; filename=\"evidence\"; filename*=UTF-8''{}",
                pct_encode(&e.file_name).replace('+', "%20")
            )) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Ok(None) => error_page(&st, &p, StatusCode::NOT_FOUND, "佐证材料不存在"),
        Err(e) => {
            let (s, m) = sf(e);
            error_page(&st, &p, s, &m)
        }
    }
}

// ---------------------------------------------------------------------------
// The insurance global budget
// ---------------------------------------------------------------------------

fn method_label(m: budget::Method) -> &'static str {
    match m {
        budget::Method::YearToDate => "按年初至今日均支出",
        budget::Method::LastThreeMonths => "按近 3 个月日均支出",
        budget::Method::Seasonal => "按上年月度分布（季节调整）",
    }
}

fn build_budget(st: &AppState, p: &Principal, q: &Q) -> Result<Built, Fail> {
    let tree = tree_of(st);
    let (comm, cname) = pick_community(&tree, p, nonempty(&q.community))?;
    let year = year_param(&q.year)?;
    let store = &st.svc.store;
    let t = today();
    let through: u32 = match year.cmp(&t.year()) {
        std::cmp::Ordering::Less => 12,
        std::cmp::Ordering::Equal => t.month(),
        std::cmp::Ordering::Greater => 0,
    };
    let cfg = store.ops_budget(&comm, year).map_err(sf)?;
    let counted = store.ops_enrollees(&comm).map_err(sf)?;
    let spending = store.ops_year_spending(&comm, year, through).map_err(sf)?;
    let prev = if year > 2000 {
        complete(store.ops_year_spending(&comm, year - 1, 12).map_err(sf)?)
    } else {
        None
    };
    let enrollees = cfg.as_ref().map(|c| c.input.enrollees.unwrap_or(counted));
    let budget = cfg.as_ref().map(|c| {
        yigong_metrics::Budget::new(
            enrollees.unwrap_or(0),
            c.input.per_capita,
            c.input.reserve_bp,
        )
        .map_err(|e| e.to_string())
    });
    let time_now = match year.cmp(&t.year()) {
        std::cmp::Ordering::Less => 10_000,
        std::cmp::Ordering::Equal => budget::time_progress_bp(t),
        std::cmp::Ordering::Greater => 0,
    };

    let mut summary = Sheet::new("预算", &["项目", "数值"]);
    let mut monthly = Sheet::new(
        "月度执行",
        &[
            "月份",
            "医共体内",
            "县域内其他机构",
            "县域外",
            "合计",
            "累计支出",
            "执行进度",
            "时间进度",
            "执行超前",
        ],
    );
    let mut fsheet = Sheet::new("预测与结算", &["项目", "点估计", "区间下限", "区间上限"]);
    let mut chart = json!(null);
    let mut budget_error = None;
    let mut forecast_ctx = None;
    if let Some(Ok(b)) = &budget {
        summary
            .rows
            .push(vec![Cell::s("参保人数"), Cell::int(b.enrollees)]);
        summary
            .rows
            .push(vec![Cell::s("人均定额"), Cell::fen(b.per_capita)]);
        summary
            .rows
            .push(vec![Cell::s("预算总额"), Cell::fen(b.gross)]);
        summary
            .rows
            .push(vec![Cell::s("风险金"), Cell::fen(b.reserve)]);
        summary
            .rows
            .push(vec![Cell::s("打包预算净额"), Cell::fen(b.net)]);
        summary.rows.push(vec![
            Cell::s("年初至今支出"),
            Cell::fen(spending.ytd().total),
        ]);
        summary.rows.push(vec![
            Cell::s("其中县域外"),
            Cell::fen(spending.ytd().outside),
        ]);
        summary.rows.push(vec![
            Cell::s("县域外占比"),
            Cell::bp(spending.ytd().outside_bp),
        ]);
        summary
            .rows
            .push(vec![Cell::s("当前时间进度"), Cell::bp(Some(time_now))]);
        let exec = budget::execution(b, &spending);
        let mut labels = vec![];
        let (mut s_in, mut s_cty, mut s_out, mut e_line, mut t_line) =
            (vec![], vec![], vec![], vec![], vec![]);
        for e in &exec {
            let ahead = e.ahead_bp;
            monthly.rows.push(vec![
                Cell::s(format!("{year}-{:02}", e.month)),
                Cell::fen(e.spent.inside),
                Cell::fen(e.spent.county),
                Cell::fen(e.spent.outside),
                Cell::fen(e.spent.total),
                Cell::fen(e.cumulative),
                Cell::bp(e.execution_bp),
                Cell::bp(Some(e.time_progress_bp)),
                Cell::bp(ahead).class(match ahead {
                    Some(a) if a > 0 => "bad",
                    Some(_) => "ok",
                    None => "",
                }),
            ]);
            labels.push(format!("{}月", e.month));
            s_in.push(e.spent.inside.0 as f64 / 100.0);
            s_cty.push(e.spent.county.0 as f64 / 100.0);
            s_out.push(e.spent.outside.0 as f64 / 100.0);
            e_line.push(e.execution_bp.map(|v| v as f64 / 100.0));
            t_line.push(e.time_progress_bp as f64 / 100.0);
        }
        chart = json!({ "months": labels, "inside": s_in, "county": s_cty, "outside": s_out, "execution": e_line, "time": t_line });
        let fc = budget::forecast(b, &spending, prev.as_ref()).map_err(|e| bad(e.to_string()))?;
        if let Some(f) = fc {
            fsheet.rows.push(vec![
                Cell::s("年末支出预测"),
                Cell::fen(f.spending),
                Cell::fen(f.spending_low),
                Cell::fen(f.spending_high),
            ]);
            fsheet.rows.push(vec![
                Cell::s("年末结余预测（负数为超支）"),
                Cell::fen(f.balance),
                Cell::fen(f.balance_low),
                Cell::fen(f.balance_high),
            ]);
            let rule = cfg
                .as_ref()
                .map(|c| c.input.rule)
                .unwrap_or(SettlementRule {
                    surplus_retained_bp: 10_000,
                    overspend: Overspend::NotCompensated,
                });
            let point = budget::settle(b, f.spending, &rule).map_err(|e| bad(e.to_string()))?;
            let low = budget::settle(b, f.spending_high, &rule).map_err(|e| bad(e.to_string()))?;
            let high = budget::settle(b, f.spending_low, &rule).map_err(|e| bad(e.to_string()))?;
            for (label, get) in [
                (
                    "结余留用（医共体留用）",
                    (|s: &budget::Settlement| s.retained) as fn(&budget::Settlement) -> Fen,
                ),
                ("结余返还基金", |s| s.returned),
                ("超支由基金分担", |s| s.fund_covers),
                ("超支由医共体承担", |s| s.community_bears),
                ("结算给医共体的金额", |s| s.amount),
                ("基金年度支付合计", |s| s.fund_total),
            ] {
                fsheet.rows.push(vec![
                    Cell::s(label),
                    Cell::fen(get(&point)),
                    Cell::fen(get(&low)),
                    Cell::fen(get(&high)),
                ]);
            }
            forecast_ctx = Some(context! {
                months => f.months,
                projections => f.projections.iter().map(|pj| context! { method => method_label(pj.method), spending => yuan(pj.spending) }).collect::<Vec<_>>(),
                balance => yuan(f.balance), low => yuan(f.balance_low), high => yuan(f.balance_high),
                over => f.balance.0 < 0,
            });
        }
    } else if let Some(Err(e)) = &budget {
        budget_error = Some(e.clone());
    }

    // Special funds.
    let fund = store.ops_fund(&comm, year).map_err(sf)?;
    let mut purposes = Sheet::new("专项资金", &["用途编号", "用途", "分配", "支出", "剩余"]);
    let mut ledger = Sheet::new(
        "专项资金流水",
        &["时间", "操作", "用途", "金额", "说明", "经办人"],
    );
    if let Some(f) = &fund {
        for pu in f.fund.purposes() {
            purposes.rows.push(vec![
                Cell::s(pu.id.clone()),
                Cell::s(pu.name.clone()),
                Cell::fen(pu.allocated),
                Cell::fen(pu.spent),
                Cell::fen(pu.remaining()),
            ]);
        }
        for e in &f.entries {
            ledger.rows.push(vec![
                Cell::s(local_time(&e.at)),
                Cell::s(if e.kind == "allocate" {
                    "分配"
                } else {
                    "支出"
                }),
                Cell::s(e.name.clone()),
                Cell::fen(e.amount),
                Cell::s(e.note.clone()),
                Cell::s(e.actor.clone()),
            ]);
        }
    }
    let form = match &cfg {
        Some(c) => {
            let (kind, share, cap) = match c.input.rule.overspend {
                Overspend::NotCompensated => ("not_compensated", 0, Fen::ZERO),
                Overspend::Shared { fund_share_bp, cap } => ("shared", fund_share_bp, cap),
            };
            context! {
                enrollees => c.input.enrollees, per_capita => c.input.per_capita.yuan_string(), reserve_bp => c.input.reserve_bp,
                retained_bp => c.input.rule.surplus_retained_bp, overspend => kind, fund_share_bp => share, cap => cap.yuan_string(),
                version => c.version, by => c.updated_by.clone(), at => local_time(&c.updated_at),
            }
        }
        None => context! {
            enrollees => None::<i64>, per_capita => "", reserve_bp => ops::DEFAULT_RESERVE_BP, retained_bp => 10_000,
            overspend => "not_compensated", fund_share_bp => 0, cap => "0.00", version => 0,
        },
    };
    let choices: Vec<minijinja::Value> = communities_in_scope(&tree, p)
        .iter()
        .map(|n| context! { id => n.id.clone(), name => n.name.clone() })
        .collect();
    let export = format!("/cockpit/export.xlsx?view=budget&community={comm}&year={year}");
    let ctx = context! {
        title => "医保基金总额预算", nav => "cockpit", user => user_ctx(st, p),
        comm => comm.clone(), comm_name => cname.clone(), year => year, choices => choices,
        configured => cfg.is_some(), counted => counted, form => form, budget_error => budget_error,
        summary => summary.ctx(), monthly => monthly.ctx(), forecast_sheet => fsheet.ctx(), forecast => forecast_ctx,
        chart => chart, time_now => bp_text(Some(time_now)),
        fund => fund.as_ref().map(|f| context! {
            total => yuan(f.fund.total()), allocated => yuan(f.fund.allocated()), spent => yuan(f.fund.spent()),
            unallocated => yuan(f.fund.unallocated()), total_yuan => f.fund.total().yuan_string(), version => f.version,
            purposes => f.fund.purposes().iter().map(|p| context! { id => p.id.clone(), name => p.name.clone() }).collect::<Vec<_>>(),
        }),
        purposes => purposes.ctx(), ledger => ledger.ctx(),
        may_edit => may_edit(p), export => export,
    };
    let mut sheets = vec![summary, monthly, fsheet];
    if fund.is_some() {
        sheets.push(purposes);
        sheets.push(ledger);
    }
    Ok(Built {
        file: format!("医保预算-{cname}-{year}.xlsx"),
        sheets,
        ctx,
    })
}

async fn budget_page(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    page(st, p, q, build_budget, "cockpit_budget.html").await
}

type FormMap = HashMap<String, String>;

fn field<'a>(f: &'a FormMap, k: &str) -> &'a str {
    f.get(k).map_or("", |s| s.trim())
}

fn money_field(f: &FormMap, k: &str, what: &str) -> Result<Fen, Fail> {
    let v = field(f, k);
    if v.is_empty() {
        return Err(bad(format!("请填写{what}")));
    }
    Fen::parse_yuan(v).ok_or_else(|| bad(format!("{what}“{v}”格式错误（单位元，最多两位小数）")))
}

fn int_field(f: &FormMap, k: &str, what: &str, default: Option<i64>) -> Result<i64, Fail> {
    let v = field(f, k);
    if v.is_empty() {
        return default.ok_or_else(|| bad(format!("请填写{what}")));
    }
    v.parse::<i64>()
        .map_err(|_| bad(format!("{what}“{v}”须为整数")))
}

fn year_field(f: &FormMap) -> Result<i32, Fail> {
    year_param(&Some(field(f, "year").to_string()))
}

/// `POST /cockpit/budget`: a community's budget configuration for a year.
async fn budget_post(State(st): State<AppState>, p: Principal, Form(f): Form<FormMap>) -> Response {
    edit_write(st, p, move |st2, p2| {
        let comm = field(&f, "community").to_string();
        let year = year_field(&f)?;
        let enrollees = match field(&f, "enrollees") {
            "" => None,
            v => Some(
                v.parse::<i64>()
                    .map_err(|_| bad(format!("参保人数“{v}”须为整数")))?,
            ),
        };
        let per_capita = money_field(&f, "per_capita", "人均定额")?;
        let reserve_bp = int_field(
            &f,
            "reserve_bp",
            "风险金比例",
            Some(ops::DEFAULT_RESERVE_BP),
        )?;
        let retained = int_field(&f, "surplus_retained_bp", "结余留用比例", Some(10_000))?;
        let overspend = match field(&f, "overspend") {
            "" | "not_compensated" => Overspend::NotCompensated,
            "shared" => Overspend::Shared {
                fund_share_bp: int_field(&f, "fund_share_bp", "超支分担比例", None)?,
                cap: money_field(&f, "cap", "超支分担上限")?,
            },
            o => return Err(bad(format!("超支处理方式“{o}”无效"))),
        };
        let input = BudgetInput {
            enrollees,
            per_capita,
            reserve_bp,
            rule: SettlementRule {
                surplus_retained_bp: retained,
                overspend,
            },
        };
        let version = parse_version(field(&f, "version"))?.filter(|v| *v > 0);
        st2.svc
            .store
            .ops_budget_put(&p2.actor(), &comm, year, &input, version)
            .map_err(sf)?;
        Ok(format!("/cockpit/budget?community={comm}&year={year}"))
    })
    .await
}

/// `POST /cockpit/budget/fund`: a special fund's total.
async fn fund_total(State(st): State<AppState>, p: Principal, Form(f): Form<FormMap>) -> Response {
    edit_write(st, p, move |st2, p2| {
        let comm = field(&f, "community").to_string();
        let year = year_field(&f)?;
        let total = money_field(&f, "total", "专项资金总额")?;
        let version = parse_version(field(&f, "version"))?.filter(|v| *v > 0);
        st2.svc
            .store
            .ops_fund_total(&p2.actor(), &comm, year, total, version)
            .map_err(sf)?;
        Ok(format!(
            "/cockpit/budget?community={comm}&year={year}#funds"
        ))
    })
    .await
}

/// `POST /cockpit/budget/fund/entry`: allocate to a purpose or record spending.
async fn fund_entry(State(st): State<AppState>, p: Principal, Form(f): Form<FormMap>) -> Response {
    edit_write(st, p, move |st2, p2| {
        let comm = field(&f, "community").to_string();
        let year = year_field(&f)?;
        let amount = money_field(&f, "amount", "金额")?;
        st2.svc
            .store
            .ops_fund_entry(
                &p2.actor(),
                &comm,
                year,
                field(&f, "kind"),
                field(&f, "purpose"),
                field(&f, "name"),
                amount,
                field(&f, "note"),
            )
            .map_err(sf)?;
        Ok(format!(
            "/cockpit/budget?community={comm}&year={year}#funds"
        ))
    })
    .await
}

// ---------------------------------------------------------------------------
// Notify / warn / summon and the assessment cycle
// ---------------------------------------------------------------------------

fn missing_label(m: MissingData) -> &'static str {
    match m {
        MissingData::CountAsMissed => "计为未达标",
        MissingData::Skip => "跳过",
    }
}

fn build_escalation(st: &AppState, p: &Principal, q: &Q) -> Result<Built, Fail> {
    let tree = tree_of(st);
    let month = month_param(&q.month, shift(&current_month(), -1), "月份")?;
    let year = year_param(&q.year)?;
    let store = &st.svc.store;
    let within = subj_of(&tree, &p.0.scope).subject;
    let rules = store.ops_rules().map_err(sf)?;
    let steps = store.ops_steps(&p.0.scope, 500).map_err(sf)?;
    let rows = escalation_rows(st, &tree, &within, &rules, &month, &steps)?;
    let edit = may_edit(p);

    let mut levels = Sheet::new(
        "当前预警级别",
        &[
            "预警规则",
            "指标",
            "对象",
            "本月值",
            "目标",
            "连续未达标期数",
            "当前级别",
            "各级别首次达到",
            "已记录处置",
        ],
    );
    let mut level_rows = vec![];
    let mut met = 0usize;
    for e in &rows {
        if e.esc.level.is_none() {
            met += 1;
            continue;
        }
        let reached = e
            .esc
            .steps
            .iter()
            .map(|(l, m)| format!("{} {m}", l.name_zh()))
            .collect::<Vec<_>>()
            .join("、");
        let recorded = e
            .recorded
            .iter()
            .map(|r| {
                format!(
                    "{}：{}（{}，{}）",
                    r.level.name_zh(),
                    r.notified,
                    r.actor,
                    local_time(&r.at)
                )
            })
            .collect::<Vec<_>>();
        // The steps reached in this run and not yet recorded.
        let pending: Vec<minijinja::Value> = e
            .esc
            .steps
            .iter()
            .filter(|(l, since)| !e.recorded.iter().any(|r| r.level == *l && &r.since == since))
            .map(|(l, since)| context! { level => ops::level_code(*l), name => l.name_zh(), since => since.clone() })
            .collect();
        levels.rows.push(vec![
            Cell::s(e.rule.id.clone()),
            Cell::s(e.ind.name.clone()),
            Cell::s(e.name.clone()),
            Cell::score(e.ind, e.latest),
            Cell::s(target_text(e.ind, Some(e.rule.rule.target))),
            Cell::int(i64::from(e.esc.streak)),
            Cell::s(level_name(e.esc.level)).class(level_class(e.esc.level)),
            Cell::s(reached.clone()),
            Cell::s(recorded.join("；")),
        ]);
        level_rows.push(context! {
            rule => e.rule.id.clone(), indicator => e.ind.name.clone(), org => e.org.clone(), name => e.name.clone(),
            value => Cell::score(e.ind, e.latest).ctx(), target => target_text(e.ind, Some(e.rule.rule.target)),
            streak => e.esc.streak, level => level_name(e.esc.level), class => level_class(e.esc.level),
            missed => e.esc.missed.join("、"), reached => reached, recorded => recorded, pending => pending,
            href => format!("/cockpit/indicators/{}?subject=Organization/{}&from={}&to={month}", e.ind.id, e.org, shift(&month, -11)),
        });
    }

    let mut rule_sheet = Sheet::new(
        "预警规则",
        &[
            "编号",
            "指标",
            "对象层级",
            "目标",
            "方向",
            "通报（连续期数）",
            "预警",
            "约谈",
            "无数据",
            "启用",
            "版本",
        ],
    );
    let rule_rows: Vec<minijinja::Value> = rules
        .iter()
        .map(|r| {
            let ind = catalogue().get(&r.rule.indicator);
            rule_sheet.rows.push(vec![
                Cell::s(r.id.clone()),
                Cell::s(ind.map_or(r.rule.indicator.clone(), |i| i.name.clone())),
                Cell::s(r.level.label_zh()),
                ind.map_or(Cell::int(r.rule.target), |i| Cell::score(i, Some(r.rule.target))),
                Cell::s(direction_label(r.rule.direction)),
                Cell::int(i64::from(r.rule.notify_after)),
                Cell::int(i64::from(r.rule.warn_after)),
                Cell::int(i64::from(r.rule.summon_after)),
                Cell::s(missing_label(r.rule.missing)),
                Cell::s(if r.active { "是" } else { "否" }),
                Cell::int(r.version),
            ]);
            context! {
                id => r.id.clone(), level => r.level.code(), level_label => r.level.label_zh(), indicator => r.rule.indicator.clone(),
                indicator_name => ind.map_or(r.rule.indicator.clone(), |i| i.name.clone()),
                target => r.rule.target, target_text => ind.map_or(r.rule.target.to_string(), |i| i.format(Some(r.rule.target))),
                direction => if r.rule.direction == Direction::HigherIsBetter { "higher_is_better" } else { "lower_is_better" },
                direction_label => direction_label(r.rule.direction),
                notify => r.rule.notify_after, warn => r.rule.warn_after, summon => r.rule.summon_after,
                missing => if r.rule.missing == MissingData::Skip { "skip" } else { "count_as_missed" },
                missing_label => missing_label(r.rule.missing), active => r.active, version => r.version,
                by => r.updated_by.clone(), at => if r.updated_at.is_empty() { "系统默认".to_string() } else { local_time(&r.updated_at) },
            }
        })
        .collect();
    let names = st.svc.org_names();
    let name = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut step_sheet = Sheet::new(
        "处置记录",
        &[
            "记录时间",
            "预警规则",
            "对象",
            "级别",
            "达到级别的月份",
            "评估月份",
            "通报/约谈对象",
            "说明",
            "记录人",
        ],
    );
    for r in &steps {
        step_sheet.rows.push(vec![
            Cell::s(local_time(&r.at)),
            Cell::s(r.rule_id.clone()),
            Cell::s(name(&r.org)),
            Cell::s(r.level.name_zh()),
            Cell::s(r.since.clone()),
            Cell::s(r.period.clone()),
            Cell::s(r.notified.clone()),
            Cell::s(r.note.clone()),
            Cell::s(r.actor.clone()),
        ]);
    }

    // Assessment cycles of the year.
    let t = today();
    let mut cycle_sheet = Sheet::new(
        "考核周期",
        &[
            "医共体",
            "年度",
            "开始日期",
            "当前环节",
            "本环节截止",
            "逾期天数",
            "转换记录",
        ],
    );
    let mut cycles = vec![];
    for c in communities_in_scope(&tree, p) {
        let row = store.ops_cycle(&c.id, year).map_err(sf)?;
        match row {
            None => {
                cycle_sheet.rows.push(vec![
                    Cell::s(c.name.clone()),
                    Cell::int(i64::from(year)),
                    Cell::s("未排期"),
                    Cell::s("—"),
                    Cell::s("—"),
                    Cell::s("—"),
                    Cell::s(""),
                ]);
                cycles.push(
                    context! { comm => c.id.clone(), name => c.name.clone(), planned => false },
                );
            }
            Some(r) => {
                let step = r.cycle.step();
                let due = r.cycle.due(step);
                let overdue = r.cycle.overdue_days(t);
                let log: Vec<String> = r
                    .steps
                    .iter()
                    .map(|s| {
                        format!(
                            "{} → {}（{}{}，{}）",
                            s.from.name_zh(),
                            s.to.name_zh(),
                            s.on,
                            if s.late_days > 0 {
                                format!("，逾期 {} 天", s.late_days)
                            } else {
                                String::new()
                            },
                            s.actor
                        )
                    })
                    .collect();
                let dues: Vec<minijinja::Value> = Step::WORKING
                    .iter()
                    .map(|s| context! { name => s.name_zh(), due => r.cycle.due(*s).map(|d| d.to_string()), current => *s == step })
                    .collect();
                cycle_sheet.rows.push(vec![
                    Cell::s(c.name.clone()),
                    Cell::int(i64::from(year)),
                    Cell::s(r.cycle.start().to_string()),
                    Cell::s(step.name_zh()),
                    Cell::s(due.map_or("—".into(), |d| d.to_string())),
                    overdue.map_or_else(|| Cell::s("—"), |d| Cell::int(d).class("bad")),
                    Cell::s(log.join("；")),
                ]);
                cycles.push(context! {
                    comm => c.id.clone(), name => c.name.clone(), planned => true, start => r.cycle.start().to_string(),
                    step => step.name_zh(), due => due.map(|d| d.to_string()), overdue => overdue, log => log, dues => dues,
                    next => step.next().map(|n| context! { code => ops::step_code(n), name => n.name_zh() }),
                    version => r.version, started => !r.steps.is_empty(),
                    days => context! { a => r.days.self_evaluation, b => r.days.assessment, c => r.days.result, d => r.days.feedback },
                });
            }
        }
    }
    let indicators: Vec<minijinja::Value> = catalogue()
        .all()
        .iter()
        .filter(|i| i.available && i.family().is_none())
        .map(|i| context! { id => i.id.clone(), name => i.name.clone() })
        .collect();
    let export = format!("/cockpit/export.xlsx?view=escalation&month={month}&year={year}");
    let ctx = context! {
        title => "通报预警约谈与考核", nav => "cockpit", user => user_ctx(st, p),
        month => month.clone(), month_label => month_label(&month), year => year,
        levels => level_rows, evaluated => rows.len(), met => met, rules => rule_rows,
        steps => step_sheet.ctx(), cycles => cycles, indicators => indicators, today => t.to_string(),
        may_edit => edit, may_edit_rules => edit && p.0.scope == Scope::County, export => export,
    };
    Ok(Built {
        file: format!("通报预警约谈-{month}.xlsx"),
        sheets: vec![levels, rule_sheet, step_sheet, cycle_sheet],
        ctx,
    })
}

async fn escalation_page(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    page(st, p, q, build_escalation, "cockpit_escalation.html").await
}

fn u32_field(f: &FormMap, k: &str, what: &str) -> Result<u32, Fail> {
    let v = field(f, k);
    v.parse::<u32>()
        .map_err(|_| bad(format!("{what}“{v}”须为非负整数")))
}

/// `POST /cockpit/escalation/rules`: creates or changes a rule.
async fn rule_post(State(st): State<AppState>, p: Principal, Form(f): Form<FormMap>) -> Response {
    edit_write(st, p, move |st2, p2| {
        let level = OrgLevel::from_code(field(&f, "level"))
            .ok_or_else(|| bad("对象层级须为医共体或机构"))?;
        let direction = match field(&f, "direction") {
            "higher_is_better" => Direction::HigherIsBetter,
            "lower_is_better" => Direction::LowerIsBetter,
            d => return Err(bad(format!("方向“{d}”无效"))),
        };
        let missing = match field(&f, "missing") {
            "count_as_missed" => MissingData::CountAsMissed,
            "" | "skip" => MissingData::Skip,
            m => return Err(bad(format!("无数据处理方式“{m}”无效"))),
        };
        let rule = EscalationRule {
            indicator: field(&f, "indicator").to_string(),
            target: int_field(&f, "target", "目标值", None)?,
            direction,
            notify_after: u32_field(&f, "notify_after", "通报期数")?,
            warn_after: u32_field(&f, "warn_after", "预警期数")?,
            summon_after: u32_field(&f, "summon_after", "约谈期数")?,
            missing,
        };
        let active = matches!(field(&f, "active"), "on" | "true" | "1");
        let version = parse_version(field(&f, "version"))?;
        st2.svc
            .store
            .ops_rule_put(&p2.actor(), field(&f, "id"), level, &rule, active, version)
            .map_err(sf)?;
        Ok("/cockpit/escalation#rules".into())
    })
    .await
}

/// `POST /cockpit/escalation/steps`: records a step taken (who notified whom).
async fn step_post(State(st): State<AppState>, p: Principal, Form(f): Form<FormMap>) -> Response {
    edit_write(st, p, move |st2, p2| {
        let level = ops::level_from_code(field(&f, "level"))
            .ok_or_else(|| bad("级别须为通报、预警或约谈"))?;
        let s = NewStep {
            rule_id: field(&f, "rule").to_string(),
            org: field(&f, "org").to_string(),
            level,
            since: field(&f, "since").to_string(),
            period: field(&f, "period").to_string(),
            notified: field(&f, "notified").to_string(),
            note: field(&f, "note").to_string(),
        };
        st2.svc.store.ops_step_record(&p2.actor(), &s).map_err(sf)?;
        Ok(format!("/cockpit/escalation?month={}", s.period))
    })
    .await
}

fn date_field(f: &FormMap, k: &str, what: &str) -> Result<NaiveDate, Fail> {
    let v = field(f, k);
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| bad(format!("{what}“{v}”格式错误（应为 YYYY-MM-DD）")))
}

/// `POST /cockpit/cycles`: plans a community's assessment cycle.
async fn cycle_plan(State(st): State<AppState>, p: Principal, Form(f): Form<FormMap>) -> Response {
    edit_write(st, p, move |st2, p2| {
        let comm = field(&f, "community").to_string();
        let year = year_field(&f)?;
        let start = date_field(&f, "start", "开始日期")?;
        let days = StepDays {
            self_evaluation: u32_field(&f, "self_evaluation", "自评天数")?,
            assessment: u32_field(&f, "assessment", "考核天数")?,
            result: u32_field(&f, "result", "结果评定天数")?,
            feedback: u32_field(&f, "feedback", "反馈改进天数")?,
        };
        let version = parse_version(field(&f, "version"))?.filter(|v| *v > 0);
        st2.svc
            .store
            .ops_cycle_plan(&p2.actor(), &comm, year, start, days, version)
            .map_err(sf)?;
        Ok(format!("/cockpit/escalation?year={year}#cycles"))
    })
    .await
}

/// `POST /cockpit/cycles/advance`: moves a cycle to its next step.
async fn cycle_advance(
    State(st): State<AppState>,
    p: Principal,
    Form(f): Form<FormMap>,
) -> Response {
    edit_write(st, p, move |st2, p2| {
        let comm = field(&f, "community").to_string();
        let year = year_field(&f)?;
        let to = ops::step_from_code(field(&f, "to")).ok_or_else(|| bad("目标环节无效"))?;
        let on = date_field(&f, "on", "转换日期")?;
        let version = int_field(&f, "version", "版本号", None)?;
        st2.svc
            .store
            .ops_cycle_advance(&p2.actor(), &comm, year, to, on, field(&f, "note"), version)
            .map_err(sf)?;
        Ok(format!("/cockpit/escalation?year={year}#cycles"))
    })
    .await
}

// ---------------------------------------------------------------------------
// Excel export
// ---------------------------------------------------------------------------

/// `GET /cockpit/export.xlsx?view=cockpit|indicator|report|evaluation|budget|escalation&…`:
/// the tables of a view as an xlsx workbook (the same builders as the pages).
async fn export(State(st): State<AppState>, Query(q): Query<Q>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let build: Builder = match q.view.as_deref().unwrap_or("cockpit") {
        "cockpit" => build_cockpit,
        "indicator" => build_indicator,
        "report" => build_report,
        "evaluation" => build_evaluation,
        "budget" => build_budget,
        "escalation" => build_escalation,
        v => {
            return error_page(
                &st,
                &p,
                StatusCode::BAD_REQUEST,
                &format!(
                    "无法导出“{v}”：可导出的视图为 cockpit、indicator、report、evaluation、budget、escalation"
                ),
            );
        }
    };
    let (st2, p2) = (st.clone(), p.clone());
    let res = blocking(move || -> Result<(String, Vec<u8>), Fail> {
        let b = build(&st2, &p2, &q)?;
        let bytes = xlsx(&b.sheets).map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("生成 Excel 文件失败：{e}"),
            )
        })?;
        Ok((b.file, bytes))
    })
    .await;
    match res {
        Ok((file, bytes)) => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&format!(
                "attachment; filename=\"cockpit.xlsx\"; filename*=UTF-8''{}",
                pct_encode(&file).replace('+', "%20")
            )) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err((s, m)) => error_page(&st, &p, s, &m),
    }
}
