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
//! `metric_monthly`, `metric_family`, `metric_by_org`): a page never scans
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
use yigong_metrics::budget::{self, Overspend, SettlementRule};
use yigong_metrics::escalation::{self, EscalationRule, Level as EscLevel, MissingData, Step, StepDays};
use yigong_metrics::evaluation::{self, Grade};
use yigong_metrics::indicators::{self, Indicator, Kind as CompKind, Level as ILevel, Value as IValue};
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
        let text = ind.format(score);
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
                        ws.write_number_with_format(r, c as u16, *v, &Format::new().set_num_format(*fmt))?;
                    }
                    X::S => {
                        ws.write_string(r, c as u16, &cell.text)?;
                    }
                }
                let w = cell.text.chars().map(|ch| if ch.is_ascii() { 1 } else { 2 }).sum::<usize>();
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
        && let Some(parent) = node.parent.as_deref().and_then(|pid| tree.iter().find(|n| n.id == pid))
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
    let node = s.org.as_deref().and_then(|o| tree.iter().find(|n| n.id == o));
    if let Some(n) = node {
        if s.level == ILevel::Institution
            && !matches!(p.0.scope, Scope::Institution(_))
            && let Some(c) = n.comm.as_deref().and_then(|c| tree.iter().find(|x| x.id == c))
        {
            out.push(context! { name => c.name.clone(), param => format!("Organization/{}", c.id) });
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

fn pick_community(tree: &[TreeNode], p: &Principal, asked: Option<&str>) -> Result<(String, String), Fail> {
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
            } else if tree.iter().any(|n| n.id == id && n.kind.as_deref() == Some("community")) {
                Err((StatusCode::FORBIDDEN, format!("医共体 {id} 不在您的管辖范围内")))
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

fn get(s: &Sums, c: &str) -> i64 {
    s.get(c).copied().unwrap_or(0)
}

/// An indicator's figure from the sums of a period and (for growth) of the
/// same period a year earlier.
fn value_of(ind: &Indicator, now: &Sums, before: &Sums) -> IValue {
    let n = |c: &str| get(now, c);
    if ind.compare.is_some() {
        let b = |c: &str| get(before, c);
        indicators::value_growth(ind, &n, &b)
    } else {
        indicators::value(ind, &n)
    }
}

fn comps_of<'a>(inds: impl IntoIterator<Item = &'a Indicator>) -> Vec<String> {
    let mut v: Vec<String> = vec![];
    for i in inds {
        for c in i.numerator_components.iter().chain(&i.denominator_components) {
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
const GROWTH_OF: (&str, &str) = ("inpatient_cost_in_county", "inpatient_cost_in_county_growth");

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

/// The live tiles: each key indicator this month and year to date.
fn tiles_ctx(st: &AppState, s: &Subj, month: &str, rules: &[RuleRow]) -> Result<minijinja::Value, Fail> {
    let store = &st.svc.store;
    let keys = key_indicators(s.level);
    let growth = growth_indicator(s.level);
    let comps = comps_of(keys.iter().copied().chain(growth));
    let yfirst = format!("{}-01", &month[..4]);
    let m_sums = store.metric_sums(&s.subject, &comps, month, month).map_err(sf)?;
    let y_sums = store.metric_sums(&s.subject, &comps, &yfirst, month).map_err(sf)?;
    let (py_sums, pm_sums) = match growth {
        Some(g) => {
            let c = comps_of([g]);
            (
                store
                    .metric_sums(&s.subject, &c, &shift(&yfirst, -12), &shift(month, -12))
                    .map_err(sf)?,
                store
                    .metric_sums(&s.subject, &c, &shift(month, -12), &shift(month, -12))
                    .map_err(sf)?,
            )
        }
        None => (Sums::new(), Sums::new()),
    };
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
                href => ind_href(&ind.id, s, &yfirst, month),
            }
        })
        .collect();
    let now = Utc::now().with_timezone(&Shanghai).format("%H:%M:%S").to_string();
    Ok(context! { tiles => tiles, month => month, month_label => month_label(month), updated => now })
}

fn build_cockpit(st: &AppState, p: &Principal, q: &Q) -> Result<Built, Fail> {
    let tree = tree_of(st);
    let s = resolve(&tree, p, nonempty(&q.subject))?;
    let live = nonempty(&q.month).is_none();
    let month = month_param(&q.month, current_month(), "月份")?;
    let store = &st.svc.store;
    let rules = store.ops_rules().map_err(sf)?;
    let tiles = tiles_ctx(st, &s, &month, &rules)?;
    let yfirst = format!("{}-01", &month[..4]);
    let keys = key_indicators(s.level);
    let growth = growth_indicator(s.level);

    // Trends: the last 12 months of each key indicator against its target.
    let first12 = shift(&month, -11);
    let comps = comps_of(keys.iter().copied());
    let monthly = store
        .metric_monthly(&s.subject, &comps, &first12, &month)
        .map_err(sf)?;
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
                .metric_by_org(olevel, &s.subject, &comps_of([g]), &shift(&yfirst, -12), &shift(&month, -12), false)
                .map_err(sf)?,
            None => BTreeMap::new(),
        };
        let mut headers = vec![format!(
            "{}（年初至今）",
            if olevel == OrgLevel::Community { "医共体" } else { "机构" }
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
                if live { String::new() } else { format!("&month={month}") }
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
    let comps_all = comps_of(keys_all.iter().copied());
    let m_sums = store.metric_sums(&s.subject, &comps_all, &month, &month).map_err(sf)?;
    let y_sums = store.metric_sums(&s.subject, &comps_all, &yfirst, &month).map_err(sf)?;
    let pm = store
        .metric_sums(&s.subject, &comps_all, &shift(&month, -12), &shift(&month, -12))
        .map_err(sf)?;
    let py = store
        .metric_sums(&s.subject, &comps_all, &shift(&yfirst, -12), &shift(&month, -12))
        .map_err(sf)?;
    let mut tile_sheet = Sheet::new("核心指标", &["指标", "本月", "年初至今", "目标", "年初至今是否达标"]);
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
        if live { String::new() } else { format!("&month={month}") }
    );
    let export = format!(
        "/cockpit/export.xlsx?view=cockpit&subject={}&month={month}",
        pct_encode(&s.param())
    );
    let ctx = context! {
        title => "运营驾驶舱", nav => "cockpit", user => user_ctx(st, p),
        subject => context! { name => s.name.clone(), param => s.param(), level => level_label(s.level) },
        crumbs => crumbs(&tree, &s, p), month => month.clone(), month_label => month_label(&month), live => live,
        tiles => tiles, tiles_url => tiles_url, charts => charts,
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
        tiles_ctx(&st2, &s, &month, &rules)
    })
    .await;
    match res {
        Ok(ctx) => render(&st, "cockpit_tiles.html", context! { tiles => ctx }),
        Err((s, m)) => (s, m).into_response(),
    }
}

type Builder = fn(&AppState, &Principal, &Q) -> Result<Built, Fail>;

async fn page(st: AppState, p: Principal, q: Q, build: Builder, template: &'static str) -> Response {
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
        "visits", "admissions", "discharges", "inpatient", "charges", "revenue", "fund_paid",
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
    let date = if kind == "Task" { "authored-on" } else { "date" };
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
    let comps = comps_of([ind]);
    let growth = ind.compare.is_some();
    let (pfrom, pto) = (shift(&from, -12), shift(&to, -12));

    // The figure for the period.
    let (value, sums) = if applicable {
        let now = store.metric_sums(&s.subject, &comps, &from, &to).map_err(sf)?;
        let before = if growth {
            store.metric_sums(&s.subject, &comps, &pfrom, &pto).map_err(sf)?
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
            if growth { "上年同期基数" } else { "分母" },
            "指标值",
            "原始记录",
        ],
    );
    let mut chart_data = vec![];
    if applicable {
        let first = if growth { pfrom.clone() } else { from.clone() };
        let monthly = store.metric_monthly(&s.subject, &comps, &first, &to).map_err(sf)?;
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
                v.denominator
                    .map_or_else(|| Cell::s("—"), |d| den_kind.map_or(Cell::int(d), |k| part(k, d))),
                Cell::score(ind, v.score).class(status(ind, v.score, target)),
                records,
            ]);
        }
    }

    // Breakdown by the organisations one level down.
    let mut breakdown = None;
    if applicable
        && ind.family().is_none()
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
                if growth { "上年同期基数" } else { "分母" },
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
                v.denominator
                    .map_or_else(|| Cell::s("—"), |d| den_kind.map_or(Cell::int(d), |kd| part(kd, d))),
                Cell::score(ind, v.score).class(status(ind, v.score, target)),
                records,
            ]);
        }
        breakdown = Some(sheet);
    }

    // Ranking indicators: the ten largest members.
    let mut top = None;
    if applicable && let Some(fam) = ind.family() {
        let members = store
            .metric_family(&s.subject, fam, &from, &to)
            .map_err(sf)?;
        let sum = |c: &str| get(&sums, c);
        let mut sheet = Sheet::new("前十位", &["位次", "ICD-10 类目", "人次", "占比"]);
        for (i, r) in indicators::top(ind, &members, &sum, 10).into_iter().enumerate() {
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
        ("分母", if ind.denominator.is_empty() { "—（合计类指标）".into() } else { ind.denominator.clone() }),
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
            ind.levels.iter().map(|l| level_label(*l)).collect::<Vec<_>>().join("、"),
        ),
        (
            "比较",
            if growth { "与上年同期比较（同比增幅）".into() } else { "—".into() },
        ),
        ("计算口径", comp_desc.join("；")),
        ("说明", if ind.note.is_empty() { "—".into() } else { ind.note.clone() }),
        ("依据", ind.source.clone()),
    ];
    for (k, v) in rows {
        def.rows.push(vec![Cell::s(k), Cell::s(v)]);
    }

    let period = format!("{from} 至 {to}");
    let mut value_sheet = Sheet::new("指标值", &["对象", "统计期间", "指标值", "分子", "分母", "目标"]);
    value_sheet.rows.push(vec![
        Cell::s(s.name.clone()),
        Cell::s(period.clone()),
        Cell::score(ind, value.score).class(status(ind, value.score, target)),
        part(num_kind, value.numerator),
        value
            .denominator
            .map_or_else(|| Cell::s("—"), |d| den_kind.map_or(Cell::int(d), |k| part(k, d))),
        Cell::s(target_text(ind, target)),
    ]);

    let mut sheets = vec![value_sheet.clone(), def.clone(), month_sheet.clone()];
    sheets.extend(breakdown.clone());
    sheets.extend(top.clone());
    let chart = json!({ "months": mlist, "data": chart_data, "name": ind.name, "unit": axis_label(ind),
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
        subject => context! { name => s.name.clone(), param => s.param(), level => level_label(s.level) },
        crumbs => crumbs(&tree, &s, p), from => from, to => to, period => period,
        applicable => applicable,
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
            subject => context! { name => s.name.clone(), param => s.param() },
            from => from, to => to, rows => rows, total => total.unwrap_or(0), fhir => fhir,
        })
    })
    .await;
    match res {
        Ok(ctx) => render(&st, "cockpit_records.html", ctx),
        Err((s, m)) => error_page(&st, &p, s, &m),
    }
}
