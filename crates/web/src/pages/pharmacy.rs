//! Pharmacy pages: stock, requisitions and transfers, shortages, VBP progress.
//!
//! Every page works for one institution: the user's own, or one chosen within
//! the user's scope (the commission, the operations centre and community users
//! look at any of theirs). Pharmacists and village doctors (for their own
//! clinic) take the steps; clinicians, the operations centre and the
//! commission read. The store decides who may take which step for which
//! institution; a refusal is shown as the page's Chinese message, or as JSON
//! (`{"error", "code"}`) when the request was JSON. Every POST accepts a form
//! or a JSON body and answers a form with a redirect, JSON with JSON.

use super::*;
use axum::body::Bytes;
use axum::routing::post;
use serde_json::json;
use yigong_fhir::Issue;
use yigong_rx::{Drug, Knowledge};
use yigong_store::Role;
use yigong_store::pharmacy::{
    self as ph, DispenseLine, ExpiryStatus, Qty, ReqFilter, ReqSide, ReqState, Requisition,
    Shortage, StockLine,
};

pub fn add_templates(env: &mut Environment<'static>) {
    for (name, src) in [
        (
            "pharmacy_nav.html",
            include_str!("../../templates/pharmacy_nav.html"),
        ),
        (
            "pharmacy_home.html",
            include_str!("../../templates/pharmacy_home.html"),
        ),
        (
            "pharmacy_stock.html",
            include_str!("../../templates/pharmacy_stock.html"),
        ),
        (
            "pharmacy_requisitions.html",
            include_str!("../../templates/pharmacy_requisitions.html"),
        ),
        (
            "pharmacy_requisition.html",
            include_str!("../../templates/pharmacy_requisition.html"),
        ),
        (
            "pharmacy_shortages.html",
            include_str!("../../templates/pharmacy_shortages.html"),
        ),
        (
            "pharmacy_vbp.html",
            include_str!("../../templates/pharmacy_vbp.html"),
        ),
    ] {
        env.add_template(name, src).expect("template parses");
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pharmacy", get(home))
        .route("/pharmacy/stock", get(stock))
        .route("/pharmacy/stock/receive", post(receive))
        .route("/pharmacy/stock/min", post(set_min))
        .route("/pharmacy/stock/{batch}/writeoff", post(write_off))
        .route("/pharmacy/stock/{batch}/adjust", post(adjust))
        .route("/pharmacy/api/stock", get(stock_json))
        .route(
            "/pharmacy/requisitions",
            get(requisitions).post(create_requisition),
        )
        .route("/pharmacy/requisitions/{id}", get(requisition))
        .route(
            "/pharmacy/requisitions/{id}/{action}",
            post(requisition_step),
        )
        .route("/pharmacy/shortages", get(shortages).post(report_shortage))
        .route("/pharmacy/shortages/count", get(shortage_count))
        .route("/pharmacy/shortages/{id}/resolve", post(resolve_shortage))
        .route("/pharmacy/vbp", get(vbp))
        .route("/pharmacy/vbp/volume", post(set_volume))
}

// ---------- shared ----------

fn today() -> chrono::NaiveDate {
    Utc::now().with_timezone(&Shanghai).date_naive()
}

fn wants_json(h: &HeaderMap) -> bool {
    let get = |k| {
        h.get(k)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
    };
    get(header::CONTENT_TYPE).starts_with("application/json")
        || get(header::ACCEPT).contains("application/json")
}

fn fail(st: &AppState, p: &Principal, h: &HeaderMap, issue: Issue) -> Response {
    let status = StatusCode::from_u16(issue.status).unwrap_or(StatusCode::BAD_REQUEST);
    if wants_json(h) {
        (
            status,
            axum::Json(json!({ "error": issue.zh, "code": issue.code })),
        )
            .into_response()
    } else {
        error_page(st, p, status, &issue.zh)
    }
}

fn store_fail(
    st: &AppState,
    p: &Principal,
    h: &HeaderMap,
    e: yigong_store::StoreError,
) -> Response {
    fail(st, p, h, crate::service::store_issue(e))
}

/// A successful step: JSON answers with `body`, a form is sent to `location`.
fn done(h: &HeaderMap, status: StatusCode, body: Value, location: &str) -> Response {
    if wants_json(h) {
        (status, axum::Json(body)).into_response()
    } else {
        Redirect::to(location).into_response()
    }
}

/// The tail of a step: a store error becomes a failure page or JSON error,
/// a success is answered by `ok` (usually through `done`).
fn answer<T>(
    st: &AppState,
    p: &Principal,
    h: &HeaderMap,
    res: Result<T, yigong_store::StoreError>,
    ok: impl FnOnce(T) -> Response,
) -> Response {
    match res {
        Ok(v) => ok(v),
        Err(e) => store_fail(st, p, h, e),
    }
}

fn forbidden(msg: String) -> Issue {
    Issue::new(403, "forbidden", "role", msg)
}

/// Pharmacists, village doctors (their clinic) and administrators take steps.
fn may_operate(p: &Principal) -> Result<(), Issue> {
    match p.role() {
        Role::Pharmacist | Role::VillageDoctor | Role::SystemAdmin => Ok(()),
        r => Err(forbidden(format!(
            "{}只能查看药房信息,不能办理药房业务",
            r.label_zh()
        ))),
    }
}

/// Agreed VBP volumes: the central pharmacy's pharmacists, the operations centre, administrators.
fn may_set_volume(p: &Principal) -> Result<(), Issue> {
    match p.role() {
        Role::Pharmacist | Role::OperationsCentre | Role::SystemAdmin => Ok(()),
        r => Err(forbidden(format!("{}不能设定带量采购协议量", r.label_zh()))),
    }
}

/// A form or JSON body.
enum Input {
    Json(serde_json::Map<String, Value>),
    Form(Vec<(String, String)>),
}

impl Input {
    fn parse(h: &HeaderMap, body: &[u8]) -> Result<Input, Issue> {
        let ct = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => Ok(Input::Json(m)),
                _ => Err(Issue::invalid("bad-json", "请求体不是有效的 JSON 对象")),
            }
        } else {
            Ok(Input::Form(
                form_urlencoded::parse(body)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ))
        }
    }
    fn text(&self, key: &str) -> Option<String> {
        let v = match self {
            Input::Json(m) => match m.get(key)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            },
            Input::Form(f) => f.iter().find(|(k, _)| k == key)?.1.clone(),
        };
        Some(v.trim().to_string()).filter(|s| !s.is_empty())
    }
    fn int(&self, key: &str, label: &str) -> Result<Option<i64>, Issue> {
        match self.text(key) {
            None => Ok(None),
            Some(t) => t
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Issue::invalid("bad-number", format!("{label}必须是整数,收到“{t}”"))),
        }
    }
    fn need_int(&self, key: &str, label: &str) -> Result<i64, Issue> {
        self.int(key, label)?
            .ok_or_else(|| Issue::invalid("missing", format!("缺少{label}({key})")))
    }
    /// Every value of a repeated form field (or a JSON array).
    fn all(&self, key: &str) -> Vec<String> {
        match self {
            Input::Json(m) => m
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            Input::Form(f) => f
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_string())
                .collect(),
        }
    }
}

/// A drug typed or picked: its code (first word), or a name the formulary knows.
fn drug_code(k: &Knowledge, text: &str) -> String {
    let text = text.trim();
    let first = text.split_whitespace().next().unwrap_or("");
    if k.drug(first).is_some() {
        return first.to_string();
    }
    k.by_name(text)
        .map(|i| k.drugs[i].code.clone())
        .unwrap_or_else(|| first.to_string())
}

/// "5mg × 28片/盒".
/// The institution a step is for: the form's `inst`, else the user's own.
fn need_inst(i: &Input, p: &Principal, missing: &str) -> Result<String, Issue> {
    i.text("inst")
        .or_else(|| p.0.institution.clone())
        .ok_or_else(|| Issue::invalid("missing", missing))
}

/// The drug a step names, as a catalogue code.
fn need_drug(i: &Input, k: &Knowledge, missing: &str) -> Result<String, Issue> {
    let text = i
        .text("drug")
        .ok_or_else(|| Issue::invalid("missing", missing))?;
    Ok(drug_code(k, &text))
}

fn spec(d: &Drug) -> String {
    let strength = if d.strength > 0.0 {
        format!("{}{} × ", d.strength, d.strength_unit)
    } else {
        String::new()
    };
    format!("{strength}{}{}/{}", d.package, d.unit, d.package_unit)
}

/// "65片(2盒+5片)".
fn qty_text(units: i64, package: i64, unit: &str, package_unit: &str) -> String {
    if package <= 1 || units < package {
        return format!("{units}{unit}");
    }
    let (whole, rest) = (units / package, units % package);
    if rest == 0 {
        format!("{units}{unit}({whole}{package_unit})")
    } else {
        format!("{units}{unit}({whole}{package_unit}+{rest}{unit})")
    }
}

fn drug_qty(k: &Knowledge, code: &str, units: i64) -> String {
    match k.drug(code) {
        Some(d) => qty_text(units, d.package as i64, &d.unit, &d.package_unit),
        None => units.to_string(),
    }
}

fn drug_name(k: &Knowledge, code: &str) -> String {
    k.drug(code)
        .map_or_else(|| code.to_string(), |d| d.name.clone())
}

/// The formulary for a datalist.
fn drug_options(k: &Knowledge, only_vbp: bool) -> Vec<Value> {
    k.drugs
        .iter()
        .filter(|d| !only_vbp || d.vbp.is_some())
        .map(|d| json!({ "code": d.code, "label": format!("{} {}", d.name, spec(d)) }))
        .collect()
}

fn in_scope(scope: &Scope, n: &TreeNode) -> bool {
    match scope {
        Scope::County => true,
        Scope::Community(c) => n.comm.as_deref() == Some(c),
        Scope::Institution(i) => *i == n.id,
    }
}

fn is_institution(n: &TreeNode) -> bool {
    !matches!(
        n.kind.as_deref(),
        Some("county" | "community" | "department" | "external") | None
    )
}

/// The institution a page works for: the one asked for if it is in the
/// user's scope, else the user's own.
fn pick_inst(st: &AppState, p: &Principal, asked: Option<&str>) -> Option<TreeNode> {
    let tree = st.svc.org_tree();
    let asked = asked.filter(|a| !a.is_empty());
    if let Some(a) = asked
        && let Some(n) = tree.iter().find(|n| n.id == a && is_institution(n))
        && in_scope(&p.0.scope, n)
    {
        return Some(n.clone());
    }
    let own = p.0.institution.as_deref()?;
    tree.iter().find(|n| n.id == own).cloned()
}

/// Institutions in the user's scope, for the chooser (none for users of one institution).
fn choices(st: &AppState, p: &Principal) -> Vec<Value> {
    if matches!(p.0.scope, Scope::Institution(_)) {
        return vec![];
    }
    st.svc
        .org_tree()
        .iter()
        .filter(|n| is_institution(n) && in_scope(&p.0.scope, n))
        .map(|n| json!({ "id": n.id, "name": n.name }))
        .collect()
}

fn central_of(st: &AppState, n: &TreeNode) -> Option<TreeNode> {
    let comm = n.comm.as_deref()?;
    st.svc
        .org_tree()
        .iter()
        .find(|x| x.lead && x.comm.as_deref() == Some(comm) && is_institution(x))
        .cloned()
}

fn is_primary(n: &TreeNode) -> bool {
    !n.lead && matches!(n.tier.as_deref(), Some("township" | "village"))
}

/// What every pharmacy page shows above its content.
fn frame(st: &AppState, p: &Principal, inst: Option<&TreeNode>, tab: &str, alerts: i64) -> Value {
    let central = inst.and_then(|n| central_of(st, n));
    json!({
        "tab": tab,
        "inst": inst.map(|n| n.id.clone()),
        "inst_name": inst.map(|n| n.name.clone()),
        "is_central": inst.is_some_and(|n| n.lead),
        "is_primary": inst.is_some_and(is_primary),
        "central": central.as_ref().map(|c| c.id.clone()),
        "central_name": central.as_ref().map(|c| c.name.clone()),
        "choices": choices(st, p),
        "alerts": alerts,
        "may_operate": may_operate(p).is_ok(),
        "may_set_volume": may_set_volume(p).is_ok(),
    })
}

fn show(st: &AppState, p: &Principal, name: &str, title: &str, v: Value) -> Response {
    let extra = minijinja::Value::from_serialize(&v);
    render(
        st,
        name,
        context! { title => title, nav => "pharmacy", user => user_ctx(st, p), ..extra },
    )
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn open_alerts(st: &AppState, p: &Principal, inst: Option<&TreeNode>) -> i64 {
    st.svc
        .store
        .pharmacy_open_shortage_count(&p.0.scope, inst.map(|n| n.id.as_str()))
        .unwrap_or(0)
}

#[derive(Deserialize, Default)]
struct InstQuery {
    inst: Option<String>,
}

// ---------- the workbench ----------

async fn home(State(st): State<AppState>, Query(q): Query<InstQuery>, req: Request) -> Response {
    let (p, parts) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let inst = pick_inst(&st2, &p2, q.inst.as_deref());
        let alerts = open_alerts(&st2, &p2, inst.as_ref());
        let Some(n) = inst else {
            return Ok((None, alerts, None, vec![], vec![]));
        };
        let lines = st2
            .svc
            .store
            .pharmacy_stock(&p2.0.scope, &n.id, None, today())?;
        let incoming = st2
            .svc
            .store
            .pharmacy_requisition_counts(&n.id, ReqSide::Central)?;
        let outgoing = st2
            .svc
            .store
            .pharmacy_requisition_counts(&n.id, ReqSide::Requester)?;
        Ok((Some(n), alerts, Some(lines), incoming, outgoing))
    })
    .await;
    let (inst, alerts, lines, incoming, outgoing) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, &parts.headers, e),
    };
    let mut v = frame(&st, &p, inst.as_ref(), "home", alerts);
    if let Some(lines) = lines {
        let batches = || lines.iter().flat_map(|l| l.batches.iter());
        let count = |s: ExpiryStatus| batches().filter(|b| b.status == s).count();
        let counts = |c: &[(ReqState, i64)]| -> Vec<Value> {
            c.iter()
                .map(|(s, n)| json!({ "state": s.code(), "label": s.label(), "n": n }))
                .collect()
        };
        v = merge(
            v,
            json!({
                "summary": {
                    "drugs": lines.iter().filter(|l| l.usable > 0).count(),
                    "value": Fen(lines.iter().map(|l| l.value_fen).sum()).to_string(),
                    "near": count(ExpiryStatus::Near),
                    "expired": count(ExpiryStatus::Expired),
                    "low": lines.iter().filter(|l| l.low).count(),
                    "open": lines.iter().map(|l| l.open_packages).sum::<i64>(),
                },
                "incoming": counts(&incoming),
                "outgoing": counts(&outgoing),
            }),
        );
    }
    show(&st, &p, "pharmacy_home.html", "药房", v)
}

// ---------- stock ----------

#[derive(Deserialize, Default)]
struct StockQuery {
    inst: Option<String>,
    q: Option<String>,
}

/// At most this many drugs on one stock page (a filter narrows it).
const STOCK_ROWS: usize = 200;

fn line_json(l: &StockLine) -> Value {
    let q = |u: i64| qty_text(u, l.package, &l.unit, &l.package_unit);
    let batches: Vec<Value> = l
        .batches
        .iter()
        .map(|b| {
            json!({
                "id": b.id, "lot": b.lot, "expiry": b.expiry, "days_left": b.days_left,
                "qty": b.qty, "qty_text": q(b.qty), "cost": Fen(b.unit_cost_fen).to_string(),
                "unit_cost_fen": b.unit_cost_fen, "status": b.status.code(), "status_label": b.status.label(),
                "open_units": b.open_units, "version": b.version,
            })
        })
        .collect();
    json!({
        "drug": l.drug, "name": l.name, "form": l.form, "unit": l.unit, "package": l.package,
        "package_unit": l.package_unit, "splittable": l.splittable, "vbp": l.vbp,
        "usable": l.usable, "usable_text": q(l.usable), "expired": l.expired, "near": l.near,
        "open_packages": l.open_packages, "open_units": l.open_units,
        "value": Fen(l.value_fen).to_string(), "value_fen": l.value_fen,
        "min": l.min, "min_text": l.min.map(q), "low": l.low, "batches": batches,
    })
}

async fn stock(State(st): State<AppState>, Query(q): Query<StockQuery>, req: Request) -> Response {
    let (p, parts) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let filter = q.q.clone().filter(|s| !s.trim().is_empty());
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let inst = pick_inst(&st2, &p2, q.inst.as_deref());
        let alerts = open_alerts(&st2, &p2, inst.as_ref());
        let Some(n) = inst else {
            return Ok((None, alerts, vec![], vec![]));
        };
        let lines = st2
            .svc
            .store
            .pharmacy_stock(&p2.0.scope, &n.id, filter.as_deref(), today())?;
        // The movements of the one drug shown, or the latest of the institution.
        let one = (lines.len() == 1).then(|| lines[0].drug.clone());
        let moves = st2.svc.store.pharmacy_movements(
            &p2.0.scope,
            &n.id,
            one.as_deref(),
            if one.is_some() { 50 } else { 20 },
        )?;
        Ok((Some(n), alerts, lines, moves))
    })
    .await;
    let (inst, alerts, lines, moves) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, &parts.headers, e),
    };
    let rx = st.svc.store.rx_state();
    let k = &rx.knowledge;
    let expired: Vec<Value> = lines
        .iter()
        .flat_map(|l| {
            l.batches
                .iter()
                .filter(|b| b.status == ExpiryStatus::Expired)
                .map(move |b| {
                    json!({ "id": b.id, "version": b.version, "name": l.name, "lot": b.lot, "expiry": b.expiry,
                        "qty_text": qty_text(b.qty, l.package, &l.unit, &l.package_unit),
                        "value": Fen(b.qty * b.unit_cost_fen).to_string() })
                })
        })
        .collect();
    let total = lines.len();
    let rows: Vec<Value> = lines.iter().take(STOCK_ROWS).map(line_json).collect();
    let moves: Vec<Value> = moves
        .iter()
        .map(|m| {
            json!({ "at": local_time(&m.at), "drug": drug_name(k, &m.drug), "kind": ph::movement_label(&m.kind),
                "units": if m.kind == "split-open" { String::new() } else { format!("{:+}", m.units) },
                "cost": if m.cost_fen == 0 { String::new() } else { Fen(m.cost_fen.abs()).to_string() },
                "reference": m.reference, "actor": m.actor, "note": m.note })
        })
        .collect();
    let is_central = inst.as_ref().is_some_and(|n| n.lead);
    let v = merge(
        frame(&st, &p, inst.as_ref(), "stock", alerts),
        json!({
            "q": q.q.clone().unwrap_or_default(), "rows": rows, "total": total,
            "truncated": total > STOCK_ROWS, "expired_batches": expired, "moves": moves,
            "drugs": if is_central || !rows.is_empty() { drug_options(k, false) } else { vec![] },
            "near_days": ph::NEAR_EXPIRY_DAYS,
        }),
    );
    show(&st, &p, "pharmacy_stock.html", "药品库存", v)
}

/// `GET /pharmacy/api/stock?inst=&q=`: the stock of an institution as JSON.
async fn stock_json(
    State(st): State<AppState>,
    Query(q): Query<StockQuery>,
    req: Request,
) -> Response {
    let (p, parts) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let res = blocking(move || {
        let inst = q
            .inst
            .clone()
            .or_else(|| p2.0.institution.clone())
            .unwrap_or_default();
        st2.svc
            .store
            .pharmacy_stock(&p2.0.scope, &inst, q.q.as_deref(), today())
    })
    .await;
    match res {
        Ok(lines) => {
            axum::Json(json!({ "lines": lines.iter().map(line_json).collect::<Vec<_>>() }))
                .into_response()
        }
        Err(e) => {
            let mut h = parts.headers.clone();
            h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            store_fail(&st, &p, &h, e)
        }
    }
}

async fn receive(State(st): State<AppState>, p: Principal, h: HeaderMap, body: Bytes) -> Response {
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        let i = Input::parse(&h, &body)?;
        let rx = st.svc.store.rx_state();
        let inst = need_inst(&i, &p, "请选择入库机构")?;
        let drug = need_drug(&i, &rx.knowledge, "请选择药品")?;
        let lot = i.text("batch").unwrap_or_default();
        let expiry = i
            .text("expiry")
            .and_then(|e| chrono::NaiveDate::parse_from_str(&e, "%Y-%m-%d").ok())
            .ok_or_else(|| Issue::invalid("bad-date", "有效期须为 YYYY-MM-DD 格式的日期"))?;
        let n = i.need_int("qty", "入库数量")?;
        let qty = match i.text("per").as_deref() {
            Some("unit") => Qty::Units(n),
            _ => Qty::Packages(n),
        };
        // Unit cost: fen as an integer (JSON `unit_cost_fen`) or yuan as text (form `unit_cost`).
        let fen = match i.int("unit_cost_fen", "单位成本(分)")? {
            Some(f) => f,
            None => {
                let t = i
                    .text("unit_cost")
                    .ok_or_else(|| Issue::invalid("missing", "请填写单位成本(元)"))?;
                Fen::parse_yuan(&t)
                    .ok_or_else(|| {
                        Issue::invalid(
                            "bad-money",
                            format!("单位成本“{t}”不是有效金额(元,最多两位小数)"),
                        )
                    })?
                    .0
            }
        };
        Ok((inst, drug, lot, expiry, qty, fen, i.text("reason")))
    })();
    let (inst, drug, lot, expiry, qty, fen, reason) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let i2 = inst.clone();
    let res = blocking_write(move || {
        store.pharmacy_receive(
            &actor,
            &i2,
            &drug,
            &lot,
            expiry,
            qty,
            fen,
            reason.as_deref(),
        )
    })
    .await;
    answer(&st, &p, &h, res, |id| {
        done(
            &h,
            StatusCode::CREATED,
            json!({ "batch": id }),
            &format!("/pharmacy/stock?inst={inst}"),
        )
    })
}

async fn set_min(State(st): State<AppState>, p: Principal, h: HeaderMap, body: Bytes) -> Response {
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        let i = Input::parse(&h, &body)?;
        let rx = st.svc.store.rx_state();
        let inst = need_inst(&i, &p, "请选择机构")?;
        let drug = need_drug(&i, &rx.knowledge, "请选择药品")?;
        Ok((inst, drug, i.int("min", "库存下限")?))
    })();
    let (inst, drug, min) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let i2 = inst.clone();
    let res = blocking_write(move || store.pharmacy_set_min_stock(&actor, &i2, &drug, min)).await;
    answer(&st, &p, &h, res, |_| {
        done(
            &h,
            StatusCode::OK,
            json!({ "ok": true }),
            &format!("/pharmacy/stock?inst={inst}"),
        )
    })
}

async fn write_off(
    State(st): State<AppState>,
    p: Principal,
    Path(batch): Path<i64>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        let i = Input::parse(&h, &body)?;
        Ok((
            i.need_int("version", "版本号")?,
            i.text("reason"),
            i.text("inst"),
        ))
    })();
    let (version, reason, inst) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let res =
        blocking_write(move || store.pharmacy_write_off(&actor, batch, version, reason.as_deref()))
            .await;
    answer(&st, &p, &h, res, |units| {
        done(
            &h,
            StatusCode::OK,
            json!({ "written_off": units }),
            &format!("/pharmacy/stock?inst={}", inst.unwrap_or_default()),
        )
    })
}

async fn adjust(
    State(st): State<AppState>,
    p: Principal,
    Path(batch): Path<i64>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        let i = Input::parse(&h, &body)?;
        Ok((
            i.need_int("version", "版本号")?,
            i.need_int("counted", "实盘数量")?,
            i.text("reason").unwrap_or_default(),
            i.text("inst"),
        ))
    })();
    let (version, counted, reason, inst) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let res =
        blocking_write(move || store.pharmacy_adjust(&actor, batch, version, counted, &reason))
            .await;
    answer(&st, &p, &h, res, |_| {
        done(
            &h,
            StatusCode::OK,
            json!({ "ok": true }),
            &format!("/pharmacy/stock?inst={}", inst.unwrap_or_default()),
        )
    })
}

// ---------- requisitions ----------

#[derive(Deserialize, Default)]
struct ReqQuery {
    inst: Option<String>,
    state: Option<String>,
    side: Option<String>,
}

fn req_json(k: &Knowledge, r: &Requisition, names: &HashMap<String, String>) -> Value {
    let name = |i: &str| names.get(i).cloned().unwrap_or_else(|| i.to_string());
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| {
            let d = k.drug(&l.drug);
            json!({
                "line": l.line, "drug": l.drug, "name": drug_name(k, &l.drug),
                "spec": d.map(spec).unwrap_or_default(), "unit": d.map(|d| d.unit.clone()).unwrap_or_default(),
                "requested": l.requested, "approved": l.approved, "shipped": l.shipped,
                "requested_text": drug_qty(k, &l.drug, l.requested),
                "approved_text": l.approved.map(|u| drug_qty(k, &l.drug, u)),
                "shipped_text": l.shipped.map(|u| drug_qty(k, &l.drug, u)),
                "cut": l.approved.is_some_and(|a| a < l.requested),
            })
        })
        .collect();
    let shipments: Vec<Value> = r
        .shipments
        .iter()
        .map(|s| {
            json!({ "line": s.line, "drug": s.drug, "name": drug_name(k, &s.drug), "lot": s.lot, "expiry": s.expiry,
                "units": s.units, "units_text": drug_qty(k, &s.drug, s.units),
                "unit_cost_fen": s.unit_cost_fen, "value": Fen(s.units * s.unit_cost_fen).to_string() })
        })
        .collect();
    let t = |s: &Option<String>| s.as_deref().map(local_time);
    json!({
        "id": r.id, "inst": r.inst, "inst_name": name(&r.inst), "central": r.central, "central_name": name(&r.central),
        "comm": r.comm, "state": r.state.code(), "state_label": r.state.label(), "open": r.state.is_open(),
        "note": r.note, "reason": r.reason, "version": r.version,
        "created": local_time(&r.created), "created_by": r.created_by,
        "decided": t(&r.decided), "decided_by": r.decided_by,
        "shipped": t(&r.shipped), "shipped_by": r.shipped_by,
        "received": t(&r.received), "received_by": r.received_by,
        "lines": lines, "shipments": shipments, "value": Fen(r.shipped_value_fen()).to_string(),
    })
}

async fn requisitions(
    State(st): State<AppState>,
    Query(q): Query<ReqQuery>,
    req: Request,
) -> Response {
    let (p, parts) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let state = q.state.as_deref().and_then(ReqState::from_code);
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let inst = pick_inst(&st2, &p2, q.inst.as_deref());
        let alerts = open_alerts(&st2, &p2, inst.as_ref());
        let side = match (q.side.as_deref(), &inst) {
            (Some("central"), _) => ReqSide::Central,
            (Some("requester"), _) => ReqSide::Requester,
            (_, Some(n)) if n.lead => ReqSide::Central,
            (_, Some(_)) => ReqSide::Requester,
            _ => ReqSide::Either,
        };
        let f = ReqFilter {
            inst: inst.as_ref().map(|n| n.id.clone()),
            side,
            state,
            limit: 100,
        };
        let list = st2.svc.store.pharmacy_requisitions(&p2.0.scope, &f)?;
        Ok((inst, alerts, side, list))
    })
    .await;
    let (inst, alerts, side, list) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, &parts.headers, e),
    };
    let rx = st.svc.store.rx_state();
    let k = &rx.knowledge;
    let names = st.svc.org_names();
    let rows: Vec<Value> = list.iter().map(|r| req_json(k, r, &names)).collect();
    if wants_json(&parts.headers) {
        return axum::Json(json!({ "requisitions": rows })).into_response();
    }
    let can_request = inst.as_ref().is_some_and(is_primary) && may_operate(&p).is_ok();
    let states: Vec<Value> = ReqState::ALL
        .iter()
        .map(|s| json!({ "code": s.code(), "label": s.label() }))
        .collect();
    let v = merge(
        frame(&st, &p, inst.as_ref(), "requisitions", alerts),
        json!({
            "rows": rows, "states": states, "state": q.state.clone().unwrap_or_default(),
            "side": match side { ReqSide::Central => "central", ReqSide::Requester => "requester", ReqSide::Either => "" },
            "can_request": can_request, "drugs": if can_request { drug_options(k, false) } else { vec![] },
            "blank_lines": [1, 2, 3, 4, 5],
        }),
    );
    show(&st, &p, "pharmacy_requisitions.html", "请领与调拨", v)
}

/// Requisition lines from a JSON `lines` array or the repeated form fields
/// `drug`, `qty` and `per` (unit | package).
fn read_lines(i: &Input, k: &Knowledge) -> Result<Vec<DispenseLine>, Issue> {
    if let Input::Json(m) = i {
        let Some(arr) = m.get("lines").and_then(Value::as_array) else {
            return Err(Issue::invalid("missing", "缺少请领明细(lines)"));
        };
        return arr
            .iter()
            .enumerate()
            .map(|(n, l)| {
                let drug = l["drug"].as_str().map(|d| drug_code(k, d));
                let units = l["units"].as_i64();
                match (drug, units) {
                    (Some(drug), Some(units)) => Ok(DispenseLine { drug, units }),
                    _ => Err(Issue::invalid(
                        "bad-line",
                        format!("第 {} 行须有药品编码(drug)和整数数量(units)", n + 1),
                    )),
                }
            })
            .collect();
    }
    let drugs = i.all("drug");
    let qtys = i.all("qty");
    let pers = i.all("per");
    let mut out = vec![];
    for (n, d) in drugs.iter().enumerate() {
        let q = qtys.get(n).map(String::as_str).unwrap_or("");
        if d.is_empty() && q.is_empty() {
            continue;
        }
        if d.is_empty() {
            return Err(Issue::invalid(
                "bad-line",
                format!("第 {} 行没有选择药品", n + 1),
            ));
        }
        let code = drug_code(k, d);
        let qty: i64 = q.parse().map_err(|_| {
            Issue::invalid("bad-number", format!("第 {} 行的数量“{q}”不是整数", n + 1))
        })?;
        let per_package = pers.get(n).is_some_and(|p| p == "package");
        let units = match (per_package, k.drug(&code)) {
            (true, Some(dr)) => qty.saturating_mul(dr.package as i64),
            _ => qty,
        };
        out.push(DispenseLine { drug: code, units });
    }
    Ok(out)
}

async fn create_requisition(
    State(st): State<AppState>,
    p: Principal,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let rx = st.svc.store.rx_state();
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        let i = Input::parse(&h, &body)?;
        let inst = need_inst(&i, &p, "请选择请领机构")?;
        Ok((inst, read_lines(&i, &rx.knowledge)?, i.text("note")))
    })();
    let (inst, lines, note) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let res =
        blocking_write(move || store.pharmacy_request(&actor, &inst, &lines, note.as_deref()))
            .await;
    answer(&st, &p, &h, res, |r| {
        let names = st.svc.org_names();
        done(
            &h,
            StatusCode::CREATED,
            req_json(&rx.knowledge, &r, &names),
            &format!("/pharmacy/requisitions/{}", r.id),
        )
    })
}

async fn requisition(State(st): State<AppState>, Path(id): Path<i64>, req: Request) -> Response {
    let (p, parts) = signed_in!(st, req);
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    let res = blocking(move || store.pharmacy_requisition(&scope, id)).await;
    let r = match res {
        Ok(Some(r)) => r,
        Ok(None) => {
            return fail(
                &st,
                &p,
                &parts.headers,
                Issue::not_found(format!("请领单 #{id} 不存在")),
            );
        }
        Err(e) => return store_fail(&st, &p, &parts.headers, e),
    };
    let rx = st.svc.store.rx_state();
    let names = st.svc.org_names();
    let body = req_json(&rx.knowledge, &r, &names);
    if wants_json(&parts.headers) {
        return axum::Json(body).into_response();
    }
    // The steps this user's side may take now.
    let own = p.0.institution.as_deref();
    let operate = may_operate(&p).is_ok();
    let central = operate
        && (own == Some(r.central.as_str()) || (own.is_none() && p.0.scope == Scope::County));
    let requester =
        operate && (own == Some(r.inst.as_str()) || (own.is_none() && p.0.scope == Scope::County));
    let st2 = st.clone();
    let p2 = p.clone();
    // Shown in the context of the user's own side, else of the requester.
    let inst_id = match own {
        Some(o) if o == r.central => r.central.clone(),
        _ => r.inst.clone(),
    };
    let inst = blocking(move || pick_inst(&st2, &p2, Some(&inst_id))).await;
    let alerts = open_alerts(&st, &p, inst.as_ref());
    let v = merge(
        frame(&st, &p, inst.as_ref(), "requisitions", alerts),
        json!({
            "r": body,
            "can_decide": central && r.state == ReqState::Requested,
            "can_ship": central && r.state == ReqState::Approved,
            "can_receive": requester && r.state == ReqState::Shipped,
        }),
    );
    show(
        &st,
        &p,
        "pharmacy_requisition.html",
        &format!("请领单 #{id}"),
        v,
    )
}

async fn requisition_step(
    State(st): State<AppState>,
    p: Principal,
    Path((id, action)): Path<(i64, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        if !matches!(action.as_str(), "approve" | "reject" | "ship" | "receive") {
            return Err(Issue::not_found(format!("未知的请领单操作“{action}”")));
        }
        let i = Input::parse(&h, &body)?;
        let version = i.need_int("version", "版本号")?;
        // Approved units per line: JSON `approved: [{line, units}]` or form `approved_<line>`.
        let mut approved: Vec<(i64, i64)> = vec![];
        match &i {
            Input::Json(m) => {
                for a in m
                    .get("approved")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match (a["line"].as_i64(), a["units"].as_i64()) {
                        (Some(l), Some(u)) => approved.push((l, u)),
                        _ => {
                            return Err(Issue::invalid(
                                "bad-line",
                                "批准明细须为 {line, units} 整数对",
                            ));
                        }
                    }
                }
            }
            Input::Form(f) => {
                for (k, v) in f {
                    if let Some(l) = k
                        .strip_prefix("approved_")
                        .and_then(|l| l.parse::<i64>().ok())
                    {
                        let u = v.trim().parse::<i64>().map_err(|_| {
                            Issue::invalid(
                                "bad-number",
                                format!("第 {l} 行的批准数量“{v}”不是整数"),
                            )
                        })?;
                        approved.push((l, u));
                    }
                }
            }
        }
        Ok((version, approved, i.text("note"), i.text("reason")))
    })();
    let (version, approved, note, reason) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let res = blocking_write(move || match action.as_str() {
        "approve" => store.pharmacy_approve(&actor, id, version, &approved, note.as_deref()),
        "reject" => store.pharmacy_reject(&actor, id, version, reason.as_deref().unwrap_or("")),
        "ship" => store.pharmacy_ship(&actor, id, version),
        _ => store.pharmacy_confirm_receipt(&actor, id, version),
    })
    .await;
    answer(&st, &p, &h, res, |r| {
        let rx = st.svc.store.rx_state();
        let names = st.svc.org_names();
        done(
            &h,
            StatusCode::OK,
            req_json(&rx.knowledge, &r, &names),
            &format!("/pharmacy/requisitions/{id}"),
        )
    })
}

// ---------- shortages ----------

#[derive(Deserialize, Default)]
struct ShortageQuery {
    inst: Option<String>,
    all: Option<String>,
}

fn shortage_json(k: &Knowledge, s: &Shortage, names: &HashMap<String, String>) -> Value {
    json!({
        "id": s.id, "inst": s.inst, "inst_name": names.get(&s.inst).cloned().unwrap_or_else(|| s.inst.clone()),
        "drug": s.drug, "name": drug_name(k, &s.drug),
        "source": s.source, "source_label": if s.source == "low-stock" { "低库存自动预警" } else { "基层登记" },
        "note": s.note, "at": local_time(&s.at), "by": s.by, "open": s.resolved.is_none(),
        "resolved": s.resolved.as_deref().map(local_time), "resolved_by": s.resolved_by, "resolution": s.resolution,
        "version": s.version,
    })
}

async fn shortages(
    State(st): State<AppState>,
    Query(q): Query<ShortageQuery>,
    req: Request,
) -> Response {
    let (p, parts) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let open_only = q.all.as_deref() != Some("1");
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let inst = pick_inst(&st2, &p2, q.inst.as_deref());
        let alerts = open_alerts(&st2, &p2, inst.as_ref());
        let list = st2.svc.store.pharmacy_shortages(
            &p2.0.scope,
            inst.as_ref().map(|n| n.id.as_str()),
            open_only,
            200,
        )?;
        Ok((inst, alerts, list))
    })
    .await;
    let (inst, alerts, list) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, &parts.headers, e),
    };
    let rx = st.svc.store.rx_state();
    let k = &rx.knowledge;
    let names = st.svc.org_names();
    let rows: Vec<Value> = list.iter().map(|s| shortage_json(k, s, &names)).collect();
    if wants_json(&parts.headers) {
        return axum::Json(json!({ "open": alerts, "shortages": rows })).into_response();
    }
    let can_report = inst.is_some() && may_operate(&p).is_ok();
    let v = merge(
        frame(&st, &p, inst.as_ref(), "shortages", alerts),
        json!({
            "rows": rows, "all": !open_only, "can_report": can_report,
            "drugs": if can_report { drug_options(k, false) } else { vec![] },
        }),
    );
    show(&st, &p, "pharmacy_shortages.html", "缺药登记与预警", v)
}

/// `GET /pharmacy/shortages/count?inst=`: the open-shortage badge (JSON, or a
/// fragment for htmx).
async fn shortage_count(
    State(st): State<AppState>,
    Query(q): Query<InstQuery>,
    req: Request,
) -> Response {
    let (p, parts) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let n = blocking(move || {
        let inst = pick_inst(&st2, &p2, q.inst.as_deref());
        open_alerts(&st2, &p2, inst.as_ref())
    })
    .await;
    if wants_json(&parts.headers) {
        return axum::Json(json!({ "open": n })).into_response();
    }
    Html(if n > 0 {
        format!("<span class=\"badge warn\" id=\"shortage-badge\">缺药 {n}</span>")
    } else {
        String::new()
    })
    .into_response()
}

async fn report_shortage(
    State(st): State<AppState>,
    p: Principal,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let rx = st.svc.store.rx_state();
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        let i = Input::parse(&h, &body)?;
        let inst = need_inst(&i, &p, "请选择登记机构")?;
        let drug = need_drug(&i, &rx.knowledge, "请选择缺少的药品")?;
        Ok((inst, drug, i.text("note")))
    })();
    let (inst, drug, note) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let i2 = inst.clone();
    let res =
        blocking_write(move || store.pharmacy_report_shortage(&actor, &i2, &drug, note.as_deref()))
            .await;
    answer(&st, &p, &h, res, |s| {
        let names = st.svc.org_names();
        done(
            &h,
            StatusCode::CREATED,
            shortage_json(&rx.knowledge, &s, &names),
            &format!("/pharmacy/shortages?inst={inst}"),
        )
    })
}

async fn resolve_shortage(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = (|| -> Result<_, Issue> {
        may_operate(&p)?;
        let i = Input::parse(&h, &body)?;
        Ok((
            i.need_int("version", "版本号")?,
            i.text("note").unwrap_or_default(),
            i.text("inst"),
        ))
    })();
    let (version, note, inst) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let res =
        blocking_write(move || store.pharmacy_resolve_shortage(&actor, id, version, &note)).await;
    answer(&st, &p, &h, res, |s| {
        let rx = st.svc.store.rx_state();
        let names = st.svc.org_names();
        done(
            &h,
            StatusCode::OK,
            shortage_json(&rx.knowledge, &s, &names),
            &format!("/pharmacy/shortages?inst={}", inst.unwrap_or_default()),
        )
    })
}

// ---------- volume-based procurement ----------

#[derive(Deserialize, Default)]
struct VbpQuery {
    inst: Option<String>,
    /// A community or institution id; by default the institution's community.
    owner: Option<String>,
}

async fn vbp(State(st): State<AppState>, Query(q): Query<VbpQuery>, req: Request) -> Response {
    let (p, parts) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let inst = pick_inst(&st2, &p2, q.inst.as_deref());
        let alerts = open_alerts(&st2, &p2, inst.as_ref());
        let tree = st2.svc.org_tree();
        // The owners this user may look at: communities in scope and the institution.
        let mut owners: Vec<(String, String)> = tree
            .iter()
            .filter(|n| n.kind.as_deref() == Some("community"))
            .filter(|n| match &p2.0.scope {
                Scope::County => true,
                Scope::Community(c) => *c == n.id,
                Scope::Institution(_) => false,
            })
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect();
        if let Some(n) = &inst {
            owners.push((n.id.clone(), n.name.clone()));
        }
        let owner = q
            .owner
            .clone()
            .filter(|o| !o.is_empty())
            .or_else(|| {
                inst.as_ref()
                    .and_then(|n| n.comm.clone())
                    .filter(|c| owners.iter().any(|(o, _)| o == c))
            })
            .or_else(|| owners.first().map(|o| o.0.clone()));
        let progress = match &owner {
            Some(o) => Some(
                st2.svc
                    .store
                    .pharmacy_vbp_progress(&p2.0.scope, o, today())?,
            ),
            None => None,
        };
        Ok((inst, alerts, owners, progress))
    })
    .await;
    let (inst, alerts, owners, progress) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, &parts.headers, e),
    };
    let rx = st.svc.store.rx_state();
    let k = &rx.knowledge;
    let prog = progress.as_ref().map(|g| {
        let rows: Vec<Value> = g
            .rows
            .iter()
            .map(|r| {
                json!({
                    "drug": r.drug, "name": r.name, "unit": r.unit, "batch": r.vbp_batch,
                    "target": r.target, "target_text": r.target.map(|t| drug_qty(k, &r.drug, t)),
                    "source": r.target_source, "used": r.used, "used_text": drug_qty(k, &r.drug, r.used),
                    "percent": r.percent.map(|x| format!("{x:.1}%")), "bar": r.percent.map(|x| x.min(100.0).round() as i64),
                    "expected": r.expected, "on_track": r.on_track,
                })
            })
            .collect();
        let with_target = g.rows.iter().filter(|r| r.target.is_some()).count();
        let on_track = g.rows.iter().filter(|r| r.on_track == Some(true)).count();
        json!({
            "owner": g.owner, "owner_name": g.owner_name, "is_community": g.is_community, "year": g.year,
            "as_of": g.as_of.to_string(), "elapsed": format!("{:.1}%", g.elapsed_percent()),
            "elapsed_days": g.elapsed_days, "year_days": g.year_days,
            "rows": rows, "with_target": with_target, "on_track": on_track,
        })
    });
    if wants_json(&parts.headers) {
        return axum::Json(prog.unwrap_or(Value::Null)).into_response();
    }
    let owners: Vec<Value> = owners
        .iter()
        .map(|(id, name)| json!({ "id": id, "name": name }))
        .collect();
    let v = merge(
        frame(&st, &p, inst.as_ref(), "vbp", alerts),
        json!({ "owners": owners, "progress": prog, "drugs": drug_options(k, true) }),
    );
    show(&st, &p, "pharmacy_vbp.html", "带量采购进度", v)
}

async fn set_volume(
    State(st): State<AppState>,
    p: Principal,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let rx = st.svc.store.rx_state();
    let parsed = (|| -> Result<_, Issue> {
        may_set_volume(&p)?;
        let i = Input::parse(&h, &body)?;
        let owner = i
            .text("owner")
            .ok_or_else(|| Issue::invalid("missing", "请选择医共体或机构"))?;
        let drug = need_drug(&i, &rx.knowledge, "请选择集采药品")?;
        Ok((owner, drug, i.int("units", "协议采购量")?, i.text("inst")))
    })();
    let (owner, drug, units, inst) = match parsed {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, &h, e),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    let o2 = owner.clone();
    let res =
        blocking_write(move || store.pharmacy_set_vbp_volume(&actor, &o2, &drug, units)).await;
    answer(&st, &p, &h, res, |_| {
        done(
            &h,
            StatusCode::OK,
            json!({ "ok": true }),
            &format!(
                "/pharmacy/vbp?owner={owner}&inst={}",
                inst.unwrap_or_default()
            ),
        )
    })
}
