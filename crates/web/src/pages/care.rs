//! Pages of care across the community: the institution's workbench (what waits
//! for it, what it sent, notifications), worklists per flow, a flow's detail with
//! the steps the user's side may take, new referrals / exam orders /
//! consultations (with the mutual-recognition prompt), the exam report form of a
//! centre, clinic slots and bookings, and turnaround / recognition statistics.
//!
//! Every change goes through the same service calls as the FHIR API, so the
//! store's flow rules decide; a refusal is shown as the page's Chinese message.

use super::*;
use axum::routing::post;
use serde_json::json;
use yigong_care::requests::{self, Parties, ResultValue};
use yigong_care::{Flow, exams, slots, state_label, task};
use yigong_store::care::{CareItem, Direction, WORKLIST_COUNT_CAP, Worklist};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/care", get(workbench))
        .route("/care/list", get(worklist))
        .route("/care/tasks/{id}", get(detail))
        .route("/care/tasks/{id}/step", post(step))
        .route("/care/tasks/{id}/report", post(report))
        .route("/care/new", get(new_form).post(create))
        .route("/care/recognise", post(recognise))
        .route("/care/slots", get(slot_list))
        .route("/care/book", post(book))
        .route("/care/sessions", post(publish_session))
        .route("/care/appointments/{id}/status", post(appointment_status))
        .route("/care/notices/{seq}/read", post(notice_read))
        .route("/care/stats", get(stats))
        .route("/care/notices", get(notices_fragment))
        .route("/care/rules", get(rules_get).put(rules_put))
}

fn fail(st: &AppState, p: &Principal, issue: yigong_fhir::Issue) -> Response {
    let status = StatusCode::from_u16(issue.status).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(st, p, status, &issue.zh)
}

fn store_fail(st: &AppState, p: &Principal, e: yigong_store::StoreError) -> Response {
    fail(st, p, crate::service::store_issue(e))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const KINDS: [(&str, &str); 5] = [
    ("referral", "转诊"),
    ("exam", "检查检验"),
    ("critical-ack", "危急值"),
    ("consult", "远程会诊"),
    ("appointment", "预约"),
];

fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("协同", |(_, l)| l)
}

fn state_name(kind: &str, state: &str) -> &'static str {
    if kind == "appointment" {
        return slots::status_label(state);
    }
    state_label(state)
}

fn priority_label(p: &str) -> &'static str {
    match p {
        "stat" => "危急",
        "asap" => "尽快",
        "urgent" => "紧急",
        _ => "普通",
    }
}

fn epoch_local(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|t| t.with_timezone(&Shanghai).format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

#[derive(Deserialize, Default)]
struct InstQuery {
    inst: Option<String>,
}

/// The institution a page acts for: the user's own, or one chosen within the
/// user's scope (commission and community users look at any of theirs).
fn acting_inst(st: &AppState, p: &Principal, asked: Option<&str>) -> Option<String> {
    if let Some(i) = &p.0.institution {
        return Some(i.clone());
    }
    let asked = asked.filter(|a| !a.is_empty())?;
    let tree = st.svc.org_tree();
    let node = tree.iter().find(|n| n.id == asked)?;
    match &p.0.scope {
        Scope::County => Some(asked.to_string()),
        Scope::Community(c) => (node.comm.as_deref() == Some(c)).then(|| asked.to_string()),
        Scope::Institution(i) => (i == asked).then(|| asked.to_string()),
    }
}

fn is_institution(n: &TreeNode) -> bool {
    !matches!(
        n.kind.as_deref(),
        Some("county" | "community" | "department") | None
    )
}

fn notice_rows(notices: Vec<yigong_store::care::Notice>) -> Vec<minijinja::Value> {
    notices
        .into_iter()
        .map(|n| context! { seq => n.seq, text => n.text, at => local_time(&n.at), item => n.item, unread => n.read_at.is_none(), kind => n.kind })
        .collect()
}

/// Institutions a user without one of their own may choose from.
fn choosable(st: &AppState, p: &Principal) -> Vec<minijinja::Value> {
    if p.0.institution.is_some() {
        return vec![];
    }
    let tree = st.svc.org_tree();
    tree.iter()
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

async fn workbench(
    State(st): State<AppState>,
    Query(q): Query<InstQuery>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let inst = acting_inst(&st2, &p2, q.inst.as_deref());
        let choices = choosable(&st2, &p2);
        let Some(inst) = inst else {
            return Ok((None, choices, vec![], vec![], vec![]));
        };
        let incoming = st2.svc.store.care_counts(&inst, Direction::Incoming)?;
        let outgoing = st2.svc.store.care_counts(&inst, Direction::Outgoing)?;
        let notices = st2.svc.store.care_notices(&inst, false, 30)?;
        Ok((Some(inst), choices, incoming, outgoing, notices))
    })
    .await;
    let (inst, choices, incoming, outgoing, notices) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, e),
    };
    let names = st.svc.org_names();
    let boxes = |counts: &[(String, String, i64)], dir: &str| -> Vec<minijinja::Value> {
        KINDS
            .iter()
            .map(|(k, label)| {
                let states: Vec<minijinja::Value> = counts
                    .iter()
                    .filter(|(kind, _, _)| kind == k)
                    .map(|(_, s, n)| context! { state => s, label => state_name(k, s), n => n })
                    .collect();
                context! { kind => k, label => label, dir => dir, states => states }
            })
            .collect()
    };
    let notices = notice_rows(notices);
    render(
        &st,
        "care_home.html",
        context! {
            title => "协同工作台", nav => "care", user => user_ctx(&st, &p),
            inst => inst.clone(), inst_name => inst.as_ref().and_then(|i| names.get(i).cloned()),
            choices => choices, incoming => boxes(&incoming, "in"), outgoing => boxes(&outgoing, "out"),
            notices => notices,
        },
    )
}

#[derive(Deserialize)]
struct ListQuery {
    kind: String,
    dir: Option<String>,
    state: Option<String>,
    inst: Option<String>,
    page: Option<i64>,
}

const PAGE: i64 = 30;

/// A worklist's size as counted (see `Store::care_worklist`): "1000+" past the cap.
fn total_label(total: i64) -> String {
    if total > WORKLIST_COUNT_CAP {
        format!("{WORKLIST_COUNT_CAP}+")
    } else {
        total.to_string()
    }
}

/// Whether a page follows: past the counted cap, a full page may have one.
fn has_next(page: i64, total: i64, shown: usize) -> bool {
    (page + 1) * PAGE < total || (total > WORKLIST_COUNT_CAP && shown as i64 == PAGE)
}

async fn worklist(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    if !KINDS.iter().any(|(k, _)| *k == q.kind) {
        return error_page(&st, &p, StatusCode::BAD_REQUEST, "未知的工作类型");
    }
    let direction = if q.dir.as_deref() == Some("out") {
        Direction::Outgoing
    } else {
        Direction::Incoming
    };
    let page = q.page.unwrap_or(0).max(0);
    let st2 = st.clone();
    let p2 = p.clone();
    let kind = q.kind.clone();
    let state = q.state.clone().filter(|s| !s.is_empty());
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let Some(inst) = acting_inst(&st2, &p2, q.inst.as_deref()) else {
            return Ok(None);
        };
        let wl = Worklist {
            kind,
            inst: inst.clone(),
            direction,
            states: state.into_iter().collect(),
            limit: PAGE,
            offset: page * PAGE,
        };
        let (total, items) = st2.svc.store.care_worklist(&wl, &p2.0.scope)?;
        let names = patient_names(&st2, &items);
        Ok(Some((inst, total, items, names)))
    })
    .await;
    let (inst, total, items, patients) = match res {
        Ok(Some(v)) => v,
        Ok(None) => return Redirect::to("/care").into_response(),
        Err(e) => return store_fail(&st, &p, e),
    };
    let orgs = st.svc.org_names();
    let now_s = Utc::now().timestamp();
    let rows: Vec<minijinja::Value> = items
        .iter()
        .map(|it| row_ctx(it, &orgs, &patients, now_s))
        .collect();
    let states: Vec<minijinja::Value> = if q.kind == "appointment" {
        ["booked", "arrived", "fulfilled", "cancelled", "noshow"].to_vec()
    } else {
        Flow::from_code(&q.kind)
            .map(|f| f.states().to_vec())
            .unwrap_or_default()
    }
    .into_iter()
    .map(|s| context! { code => s, label => state_name(&q.kind, s) })
    .collect();
    let next = has_next(page, total, rows.len()).then_some(page + 1);
    render(
        &st,
        "care_list.html",
        context! {
            title => format!("{}工作列表", kind_label(&q.kind)), nav => "care", user => user_ctx(&st, &p),
            kind => q.kind.clone(), kind_label => kind_label(&q.kind), dir => if direction == Direction::Outgoing { "out" } else { "in" },
            state => q.state.clone().unwrap_or_default(), states => states, inst => inst.clone(),
            inst_name => orgs.get(&inst).cloned(), total => total_label(total), rows => rows, page => page,
            prev => (page > 0).then(|| page - 1), next => next,
        },
    )
}

fn patient_names(st: &AppState, items: &[CareItem]) -> HashMap<String, String> {
    let mut ids: Vec<String> = items.iter().filter_map(|it| it.patient.clone()).collect();
    ids.sort();
    ids.dedup();
    st.svc
        .store
        .display_names("Patient", &ids)
        .unwrap_or_default()
}

fn row_ctx(
    it: &CareItem,
    orgs: &HashMap<String, String>,
    patients: &HashMap<String, String>,
    now_s: i64,
) -> minijinja::Value {
    let name = |o: &Option<String>| {
        o.as_ref()
            .map(|i| orgs.get(i).cloned().unwrap_or_else(|| i.clone()))
    };
    let item_label = it.item.as_deref().map(|i| match i {
        "up" => "上转".to_string(),
        "down" => "下转".to_string(),
        "out" => "转县外".to_string(),
        code => exams::item(code).map_or_else(|| code.to_string(), |x| x.name.to_string()),
    });
    context! {
        id => it.id.clone(), kind => it.kind.clone(), state => it.state.clone(),
        state_label => state_name(&it.kind, &it.state),
        priority => it.priority.clone(), priority_label => priority_label(&it.priority),
        green => matches!(it.priority.as_str(), "stat" | "urgent" | "asap"),
        from => name(&it.req_inst), to => name(&it.perf_inst),
        patient => it.patient.clone(), patient_name => it.patient.as_ref().and_then(|p| patients.get(p).cloned()),
        item => item_label, created => epoch_local(it.created),
        due => it.due.map(epoch_local), overdue => it.due.is_some_and(|d| d < now_s),
        escalated => it.escalated.is_some(),
        tat => it.done.map(|d| format!("{:.0} 分钟", (d - it.created) as f64 / 60.0)),
    }
}

/// The steps the user's side may take from the current state.
fn actions(
    flow: Flow,
    state: &str,
    view: &yigong_care::TaskView,
    inst: Option<&str>,
) -> Vec<minijinja::Value> {
    flow.states()
        .iter()
        .filter_map(|to| {
            let side = flow.step(state, to).ok()?;
            let ok = match side {
                yigong_care::Side::Requester => inst.is_some() && view.requester.as_deref() == inst,
                yigong_care::Side::Performer => inst.is_some() && view.owner.as_deref() == inst,
                yigong_care::Side::Server => false,
            };
            ok.then(|| context! { to => to, label => action_label(flow, to) })
        })
        .collect()
}

fn action_label(flow: Flow, to: &str) -> &'static str {
    match (flow, to) {
        (_, "requested") => "提交申请",
        (Flow::Referral, "accepted") => "接收转诊",
        (Flow::Consult, "accepted") => "接受会诊",
        (_, "rejected") => "拒绝",
        (_, "scheduled") => "安排就诊",
        (_, "arrived") => "患者已到院",
        (_, "completed") => "完成",
        (_, "cancelled") => "取消",
        (_, "collected") => "已采集/已检查",
        (_, "in-transit") => "送检",
        (_, "received") => "签收",
        (_, "answered") => "提交会诊意见",
        (_, "closed") => "结束并评价",
        (_, "acknowledged") => "确认危急值",
        _ => "执行",
    }
}

async fn detail(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let svc = st.svc.clone();
    let p2 = p.clone();
    let res = blocking(move || -> Result<_, yigong_fhir::Issue> {
        let t = svc.read(&p2, "Task", &id)?;
        let body: Value = serde_json::from_str(&t.body).unwrap_or(Value::Null);
        let focus = body["focus"]["reference"]
            .as_str()
            .and_then(yigong_fhir::extract::parse_reference)
            .map(|(a, b)| (a.to_string(), b.to_string()));
        let focus_body = match &focus {
            Some((rt, fid)) => svc
                .store
                .read(rt, fid)
                .ok()
                .flatten()
                .and_then(|s| serde_json::from_str::<Value>(&s.body).ok()),
            None => None,
        };
        let report = task::output(&body, "report")
            .and_then(|o| o["valueReference"]["reference"].as_str())
            .and_then(|r| r.strip_prefix("DiagnosticReport/"))
            .and_then(|r| svc.store.read("DiagnosticReport", r).ok().flatten())
            .and_then(|s| serde_json::from_str::<Value>(&s.body).ok());
        let report = report.or_else(|| {
            (focus.as_ref().map(|f| f.0.as_str()) == Some("DiagnosticReport"))
                .then(|| focus_body.clone())
                .flatten()
        });
        let results: Vec<Value> = report
            .as_ref()
            .map(requests::report_results)
            .unwrap_or_default()
            .iter()
            .filter_map(|o| svc.store.read("Observation", o).ok().flatten())
            .filter_map(|s| serde_json::from_str(&s.body).ok())
            .collect();
        let patient = body["for"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/"))
            .and_then(|pid| svc.store.read("Patient", pid).ok().flatten())
            .and_then(|s| serde_json::from_str::<Value>(&s.body).ok());
        Ok((t.version, body, focus_body, report, results, patient))
    })
    .await;
    let (version, body, focus, report, results, patient) = match res {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, e),
    };
    let view = match task::read(&body) {
        Ok(Some(v)) => v,
        _ => return error_page(&st, &p, StatusCode::NOT_FOUND, "该任务不属于协同流程"),
    };
    let orgs = st.svc.org_names();
    let org = |o: &Option<String>| {
        o.as_ref()
            .map(|i| orgs.get(i).cloned().unwrap_or_else(|| i.clone()))
    };
    let steps: Vec<minijinja::Value> = task::steps(&body)
        .into_iter()
        .map(|(s, at)| context! { label => state_label(&s), at => local_time(&at) })
        .collect();
    let inst = p.0.institution.clone();
    let acts = actions(view.flow, &view.state, &view, inst.as_deref());
    let item = focus
        .as_ref()
        .and_then(|f| requests::read(f).ok().flatten())
        .and_then(|r| r.item)
        .and_then(|c| exams::item(&c));
    let can_report =
        view.flow == Flow::Exam && view.state == "received" && inst.is_some() && view.owner == inst;
    let analytes: Vec<minijinja::Value> = item
        .map(|i| i.analytes.iter().map(|a| context! { code => a.code, name => a.name, unit => a.unit, low => a.low, high => a.high }).collect())
        .unwrap_or_default();
    let results: Vec<minijinja::Value> = results
        .iter()
        .map(|o| {
            let value = o["valueQuantity"]["value"].as_f64().map(|v| format!("{v} {}", o["valueQuantity"]["unit"].as_str().unwrap_or(""))).or_else(|| o["valueString"].as_str().map(str::to_string));
            context! { name => o["code"]["text"].as_str().unwrap_or(""), value => value, flag => o["interpretation"][0]["coding"][0]["code"].as_str().unwrap_or(""), critical => requests::is_critical(o) }
        })
        .collect();
    let outputs: Vec<minijinja::Value> = body["output"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let v = o
                .get("valueString")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    o.get("valueDateTime")
                        .and_then(Value::as_str)
                        .map(local_time)
                })
                .or_else(|| o.get("valueInteger").map(|v| v.to_string()))
                .or_else(|| {
                    o["valueReference"]["reference"]
                        .as_str()
                        .map(str::to_string)
                });
            context! { label => o["type"]["text"].as_str().unwrap_or(""), value => v }
        })
        .collect();
    render(
        &st,
        "care_task.html",
        context! {
            title => format!("{} {}", view.flow.label(), body["id"].as_str().unwrap_or("")), nav => "care", user => user_ctx(&st, &p),
            id => body["id"].clone(), version => version, flow => view.flow.code(), flow_label => view.flow.label(),
            state => view.state.clone(), state_label => state_label(&view.state),
            priority_label => priority_label(&view.priority), green => matches!(view.priority.as_str(), "stat" | "urgent" | "asap"),
            from => org(&view.requester), to => org(&view.owner),
            deadline => view.deadline.as_deref().map(local_time), escalated => view.escalated.as_deref().map(local_time),
            reason => view.reason.clone(), steps => steps, actions => acts, outputs => outputs,
            patient_id => view.patient.clone(), patient_name => patient.as_ref().and_then(|v| v["name"][0]["text"].as_str().map(str::to_string)),
            request_text => focus.as_ref().map(request_summary), item_name => item.map(|i| i.name),
            can_report => can_report, analytes => analytes, report => report.as_ref().map(|r| r["conclusion"].clone()), results => results,
        },
    )
}

fn request_summary(sr: &Value) -> String {
    let mut parts = vec![];
    if let Some(t) = sr["code"]["text"].as_str() {
        parts.push(t.to_string());
    }
    for r in sr["reasonCode"].as_array().into_iter().flatten() {
        let code = r["coding"][0]["code"].as_str().unwrap_or("");
        parts.push(format!("{} {}", code, r["text"].as_str().unwrap_or("")));
    }
    for n in sr["note"].as_array().into_iter().flatten() {
        parts.push(n["text"].as_str().unwrap_or("").to_string());
    }
    if let Some((no, by)) = requests::out_of_county_filing(sr) {
        parts.push(format!(
            "转往县外:{}(备案号 {no},审批 {by})",
            sr["performer"][0]["display"].as_str().unwrap_or("")
        ));
    }
    parts.join(";")
}

#[derive(Deserialize)]
struct StepForm {
    to: String,
    version: i64,
    reason: Option<String>,
    when: Option<String>,
    assignee: Option<String>,
    opinion: Option<String>,
    rating: Option<i64>,
}

/// A local date-time from a form (`2026-11-21T09:30`) as UTC RFC 3339.
fn form_time(s: &str) -> Option<String> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").ok()?;
    let local = t.and_local_timezone(Shanghai).single()?;
    Some(
        local
            .with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

async fn step(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Form(f): Form<StepForm>,
) -> Response {
    let svc = st.svc.clone();
    let p2 = p.clone();
    let tid = id.clone();
    let res = blocking_write(move || -> Result<(), yigong_fhir::Issue> {
        let cur = svc.read(&p2, "Task", &tid)?;
        let mut body: Value = serde_json::from_str(&cur.body).unwrap_or(Value::Null);
        let flow = task::flow_of(&body)
            .ok_or_else(|| yigong_fhir::Issue::invalid("not-a-flow", "该任务不属于协同流程"))?;
        let at = now();
        if let Some(r) = f.reason.as_deref().filter(|r| !r.trim().is_empty()) {
            task::set_reason(&mut body, r.trim());
        }
        if let Some(w) = f.when.as_deref().filter(|w| !w.is_empty()) {
            let t = form_time(w)
                .ok_or_else(|| yigong_fhir::Issue::invalid("bad-time", "就诊时间格式错误"))?;
            task::add_output(
                &mut body,
                "scheduled-time",
                "就诊时间",
                ("valueDateTime", json!(t)),
            );
        }
        if let Some(a) = f.assignee.as_deref().filter(|a| !a.trim().is_empty()) {
            task::set_assignee(&mut body, a.trim());
        }
        if let Some(o) = f.opinion.as_deref().filter(|o| !o.trim().is_empty()) {
            task::add_output(
                &mut body,
                "opinion",
                "会诊意见",
                ("valueString", json!(o.trim())),
            );
        }
        if let Some(r) = f.rating {
            task::add_output(&mut body, "rating", "评分", ("valueInteger", json!(r)));
        }
        task::set_state(&mut body, flow, &f.to, &at, Some(&p2.0.name));
        svc.update(&p2, "Task", &tid, body, Some(f.version))?;
        Ok(())
    })
    .await;
    match res {
        Ok(()) => Redirect::to(&format!("/care/tasks/{id}")).into_response(),
        Err(e) => fail(&st, &p, e),
    }
}

/// The centre's report form: one value per analyte, a finding and a conclusion.
async fn report(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let svc = st.svc.clone();
    let p2 = p.clone();
    let tid = id.clone();
    let res = blocking_write(move || -> Result<(), yigong_fhir::Issue> {
        let cur = svc.read(&p2, "Task", &tid)?;
        let body: Value = serde_json::from_str(&cur.body).unwrap_or(Value::Null);
        let view = task::read(&body)
            .ok()
            .flatten()
            .ok_or_else(|| yigong_fhir::Issue::invalid("not-a-flow", "该任务不属于协同流程"))?;
        let order = view
            .focus
            .as_deref()
            .and_then(|f| f.strip_prefix("ServiceRequest/"))
            .unwrap_or("")
            .to_string();
        let sr = svc.read(&p2, "ServiceRequest", &order)?;
        let srv: Value = serde_json::from_str(&sr.body).unwrap_or(Value::Null);
        let rv = requests::read(&srv)
            .ok()
            .flatten()
            .ok_or_else(|| yigong_fhir::Issue::invalid("not-an-order", "不是检查申请"))?;
        let item = rv
            .item
            .as_deref()
            .and_then(exams::item)
            .ok_or_else(|| yigong_fhir::Issue::invalid("unknown-item", "检查项目不在目录中"))?;
        let centre = view.owner.clone().unwrap_or_default();
        let patient = view.patient.clone().unwrap_or_default();
        let at = now();
        let rid = format!("{order}-r{}", cur.version);
        let mut resources = vec![];
        let mut obs_ids = vec![];
        for a in item.analytes {
            let raw = f
                .get(&format!("a_{}", a.code))
                .map(|s| s.trim())
                .unwrap_or("");
            if raw.is_empty() {
                continue;
            }
            let x: f64 = raw
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    yigong_fhir::Issue::unprocessable(
                        "bad-value",
                        format!("“{}”的结果“{raw}”不是有效数值", a.name),
                    )
                })?;
            let oid = format!("{rid}-{}", a.code.to_ascii_lowercase());
            resources.push(requests::observation(
                &oid,
                &patient,
                &order,
                item,
                Some(a),
                &ResultValue::Number(x),
                &centre,
                &at,
            ));
            obs_ids.push(oid);
        }
        let finding = f
            .get("finding")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if !finding.is_empty() {
            let oid = format!("{rid}-finding");
            let critical = f.get("critical").is_some_and(|v| v == "on" || v == "true");
            resources.push(requests::observation(
                &oid,
                &patient,
                &order,
                item,
                None,
                &ResultValue::Text {
                    text: finding.clone(),
                    critical,
                },
                &centre,
                &at,
            ));
            obs_ids.push(oid);
        }
        if obs_ids.is_empty() {
            return Err(yigong_fhir::Issue::unprocessable(
                "empty-report",
                "报告至少需要一项结果或检查所见",
            ));
        }
        let conclusion = f
            .get("conclusion")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(&finding)
            .to_string();
        resources.push(requests::report(
            &rid,
            &patient,
            &order,
            item,
            &centre,
            None,
            &obs_ids,
            &conclusion,
            &at,
        ));
        svc.write_all(&p2, resources)?;
        Ok(())
    })
    .await;
    match res {
        Ok(()) => Redirect::to(&format!("/care/tasks/{id}")).into_response(),
        Err(e) => fail(&st, &p, e),
    }
}

#[derive(Deserialize, Default)]
struct NewQuery {
    kind: Option<String>,
    patient: Option<String>,
}

/// Institutions a request from `inst` may go to, by flow.
fn targets(st: &AppState, inst: &str, kind: &str, direction: &str) -> Vec<minijinja::Value> {
    let tree = st.svc.org_tree();
    let Some(me) = tree.iter().find(|n| n.id == inst) else {
        return vec![];
    };
    let rank = |t: Option<&str>| t.and_then(Tier::from_code).map_or(0, Tier::level);
    let mine = rank(me.tier.as_deref());
    tree.iter()
        .filter(|n| is_institution(n) && n.id != inst && n.comm == me.comm)
        .filter(|n| match kind {
            "referral" if direction == "down" => {
                rank(n.tier.as_deref()) < mine && rank(n.tier.as_deref()) > 0
            }
            "referral" => rank(n.tier.as_deref()) > mine,
            _ => n.lead,
        })
        .map(|n| context! { id => n.id.clone(), name => n.name.clone() })
        .collect()
}

async fn new_form(State(st): State<AppState>, Query(q): Query<NewQuery>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let kind = q.kind.clone().unwrap_or_else(|| "referral".into());
    render_new(
        &st,
        &p,
        &kind,
        q.patient.as_deref().unwrap_or(""),
        None,
        None,
        &HashMap::new(),
    )
    .await
}

async fn render_new(
    st: &AppState,
    p: &Principal,
    kind: &str,
    patient: &str,
    message: Option<String>,
    prior: Option<minijinja::Value>,
    form: &HashMap<String, String>,
) -> Response {
    let Some(inst) = p.0.institution.clone() else {
        return error_page(
            st,
            p,
            StatusCode::FORBIDDEN,
            "只有医疗机构的医生可以发起协同申请",
        );
    };
    let st2 = st.clone();
    let (k, i, dir) = (
        kind.to_string(),
        inst.clone(),
        form.get("direction")
            .cloned()
            .unwrap_or_else(|| "up".into()),
    );
    let (up, down, leads) = blocking(move || {
        (
            targets(&st2, &i, &k, "up"),
            targets(&st2, &i, &k, "down"),
            targets(&st2, &i, "exam", ""),
        )
    })
    .await;
    let items: Vec<minijinja::Value> = exams::CATALOGUE
        .iter()
        .map(|i| context! { code => i.code, name => i.name, centre => i.kind.label(), fee => Fen(i.fee_fen).to_string() })
        .collect();
    let mut r = render(
        st,
        "care_new.html",
        context! {
            title => "发起协同申请", nav => "care", user => user_ctx(st, p), kind => kind, patient => patient,
            up => up, down => down, leads => leads, items => items, message => message.clone(), prior => prior,
            form => form.clone(), direction => dir,
        },
    );
    if message.is_some() && r.status() == StatusCode::OK {
        // The form comes back with the reason it was not accepted.
        *r.status_mut() = StatusCode::CONFLICT;
    }
    r
}

async fn create(
    State(st): State<AppState>,
    p: Principal,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let kind = f.get("kind").cloned().unwrap_or_default();
    let patient = f
        .get("patient")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let Some(inst) = p.0.institution.clone() else {
        return error_page(
            &st,
            &p,
            StatusCode::FORBIDDEN,
            "只有医疗机构的医生可以发起协同申请",
        );
    };
    let svc = st.svc.clone();
    let p2 = p.clone();
    let form = f.clone();
    let (k, pid, i) = (kind.clone(), patient.clone(), inst.clone());
    let res = blocking_write(move || build_and_write(&svc, &p2, &k, &pid, &i, &form)).await;
    match res {
        Ok(task_id) => Redirect::to(&format!("/care/tasks/{task_id}")).into_response(),
        Err(e)
            if e.code == "recognised-result-exists"
                || (e.status == 409 && kind == "exam" && e.zh.contains("互认")) =>
        {
            let item = f.get("item").cloned().unwrap_or_default();
            let store = st.svc.store.clone();
            let (pid, it, i) = (patient.clone(), item.clone(), inst.clone());
            let prior = blocking(move || store.recognised_result(&pid, &it, &i, &now()))
                .await
                .ok()
                .flatten();
            let prior = prior.map(|pr| context! { report => pr.report, date => local_time(&pr.date), inst => st.svc.org_names().get(&pr.institution).cloned().unwrap_or(pr.institution), item => item, days => pr.validity_days });
            render_new(&st, &p, &kind, &patient, Some(e.zh), prior, &f).await
        }
        Err(e) => fail(&st, &p, e),
    }
}

/// Builds the request (and its Task, and for a down-referral the discharge
/// summary and follow-up plan) from the form and writes them in one transaction.
fn build_and_write(
    svc: &crate::service::Service,
    p: &Principal,
    kind: &str,
    patient: &str,
    inst: &str,
    f: &HashMap<String, String>,
) -> Result<String, yigong_fhir::Issue> {
    let get = |k: &str| f.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let bad = |msg: &str| yigong_fhir::Issue::unprocessable("form", msg.to_string());
    if patient.is_empty() {
        return Err(bad("请填写患者编号"));
    }
    svc.read(p, "Patient", patient)?;
    let id = crate::service::new_id();
    let at = now();
    let priority = get("priority").unwrap_or("routine");
    let to = get("to").unwrap_or("");
    let parties = Parties {
        id: &id,
        patient,
        requester_org: inst,
        requester: get("practitioner"),
        performer_org: to,
        priority,
        at: &at,
    };
    let mut resources = vec![];
    let flow = match kind {
        "referral" => {
            let direction = get("direction").unwrap_or("up");
            let icd = get("icd10").ok_or_else(|| bad("请填写转诊诊断(ICD-10)"))?;
            let reason = get("reason").unwrap_or("");
            let mut supporting = vec![];
            if direction == "down" {
                let summary = get("summary").ok_or_else(|| bad("下转须填写出院小结"))?;
                let plan = get("plan").ok_or_else(|| bad("下转须填写随访计划"))?;
                let (did, pid) = (format!("{id}-summary"), format!("{id}-plan"));
                resources.push(requests::discharge_summary(
                    &did, patient, inst, summary, &at,
                ));
                resources.push(requests::follow_up_plan(&pid, patient, inst, plan, &at));
                supporting = vec![
                    format!("DocumentReference/{did}"),
                    format!("CarePlan/{pid}"),
                ];
            }
            let mut sr = requests::referral(&parties, direction, icd, reason, &supporting);
            if get("out_of_county").is_some() {
                let hospital = get("hospital").ok_or_else(|| bad("转往县外须填写接收医院"))?;
                requests::file_out_of_county(
                    &mut sr,
                    hospital,
                    get("approval_number").unwrap_or(""),
                    get("approved_by").unwrap_or(""),
                );
            }
            resources.push(sr);
            Flow::Referral
        }
        "exam" => {
            let item = get("item")
                .and_then(exams::item)
                .ok_or_else(|| bad("请选择检查项目"))?;
            let barcode =
                format!("{}{}", &at[2..10].replace('-', ""), &id[..8]).to_ascii_uppercase();
            resources.push(requests::exam_order(
                &parties,
                item,
                &barcode,
                get("repeat_reason"),
            ));
            Flow::Exam
        }
        "consult" => {
            let question = get("question").ok_or_else(|| bad("请填写会诊目的与病情摘要"))?;
            let mut attachments = vec![];
            if let Some(summary) = get("attachment") {
                // The case summary travels as a document the experts open.
                let did = format!("{id}-case");
                let mut doc = requests::discharge_summary(&did, patient, inst, summary, &at);
                doc["type"] = json!({ "text": "会诊病历摘要" });
                doc["content"][0]["attachment"]["title"] = json!("会诊病历摘要");
                resources.push(doc);
                attachments.push(format!("DocumentReference/{did}"));
            }
            resources.push(requests::consult(&parties, question, &attachments));
            Flow::Consult
        }
        _ => return Err(bad("未知的申请类型")),
    };
    let sr = resources.last().expect("request built");
    let rv = requests::read(sr).map_err(|e| bad(&e.zh))?.expect("ours");
    let owner = if rv.out_of_county {
        inst.to_string()
    } else {
        to.to_string()
    };
    if owner.is_empty() {
        return Err(bad("请选择接收机构"));
    }
    let tid = task::task_id(&id);
    resources.push(task::new_task(
        flow,
        &tid,
        &format!("ServiceRequest/{id}"),
        patient,
        inst,
        &owner,
        priority,
        "requested",
        &at,
    ));
    svc.write_all(p, resources)?;
    Ok(tid)
}

#[derive(Deserialize)]
struct RecogniseForm {
    patient: String,
    item: String,
    report: String,
}

async fn recognise(
    State(st): State<AppState>,
    p: Principal,
    Form(f): Form<RecogniseForm>,
) -> Response {
    let store = st.svc.store.clone();
    let actor = p.actor();
    let pid = f.patient.clone();
    match blocking(move || store.recognise_result(&actor, &f.patient, &f.item, &f.report)).await {
        Ok(()) => Redirect::to(&format!("/patients/{pid}?recognised=1")).into_response(),
        Err(e) => store_fail(&st, &p, e),
    }
}

#[derive(Deserialize, Default)]
struct SlotQuery {
    inst: Option<String>,
    patient: Option<String>,
    referral: Option<String>,
}

async fn slot_list(
    State(st): State<AppState>,
    Query(q): Query<SlotQuery>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    let svc = st.svc.clone();
    let p2 = p.clone();
    let inst = q
        .inst
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| p.0.institution.clone())
        .unwrap_or_default();
    let i2 = inst.clone();
    let st2 = st.clone();
    let res = blocking(move || -> Result<_, yigong_fhir::Issue> {
        // The lead hospitals a member may book at (the organisation tree, cached).
        let leads = match p2.0.institution.as_deref() {
            Some(own) => targets(&st2, own, "exam", ""),
            None => vec![],
        };
        let schedules = svc.search(&p2, &spec("Schedule", &[("organization", &i2)], 50)?)?.1;
        let from = now();
        // A clinic that is no longer held (Schedule.active false) offers nothing.
        let schedules: Vec<(String, Value)> = schedules
            .into_iter()
            .map(|s| (s.id, serde_json::from_str(&s.body).unwrap_or(Value::Null)))
            .filter(|(_, sv)| sv["active"].as_bool() != Some(false))
            .collect();
        let ids: Vec<&str> = schedules.iter().map(|(id, _)| id.as_str()).collect();
        let free = svc.store.free_slots(&ids, &from, 12).map_err(crate::service::store_issue)?;
        let mut out = vec![];
        for ((id, sv), free) in schedules.iter().zip(free) {
            let slots: Vec<minijinja::Value> = free
                .into_iter()
                .map(|x| context! { id => x.id, start => local_time(&x.start), held => x.held_until.as_deref().map(local_time) })
                .collect();
            out.push(context! { id => id.clone(), service => sv["serviceType"][0]["text"].clone(), comment => sv["comment"].clone(), slots => slots });
        }
        // The institution's upcoming bookings from its worklist rows (indexed by
        // institution and time), each read by id and checked against the scope.
        let today = chrono::Utc::now().timestamp() - 86_400;
        let upcoming = svc.store.care_upcoming_appointments(&i2, today, 20).map_err(crate::service::store_issue)?;
        let ids: Vec<String> = upcoming.iter().map(|it| it.id.clone()).collect();
        let heads = svc.store.heads("Appointment", &ids).map_err(crate::service::store_issue)?;
        let appts: Vec<minijinja::Value> = upcoming
            .iter()
            .filter_map(|it| {
                let head = heads.iter().find(|h| h.id == it.id && h.visible_to(&p2.0.scope))?;
                Some(context! {
                    id => it.id.clone(), version => head.version, start => epoch_local(it.created),
                    status => it.state.clone(), status_label => state_name("appointment", &it.state), patient => it.patient.clone(),
                })
            })
            .collect();
        Ok((out, appts, leads))
    })
    .await;
    let (schedules, appointments, leads) = match res {
        Ok(v) => v,
        Err(e) => return fail(&st, &p, e),
    };
    let names = st.svc.org_names();
    render(
        &st,
        "care_slots.html",
        context! {
            title => "号源与预约", nav => "care", user => user_ctx(&st, &p), inst => inst.clone(), inst_name => names.get(&inst).cloned(), leads => leads,
            schedules => schedules, appointments => appointments, patient => q.patient.unwrap_or_default(), referral => q.referral.unwrap_or_default(),
        },
    )
}

fn spec(
    rtype: &str,
    params: &[(&str, &str)],
    count: i64,
) -> Result<SearchSpec, yigong_fhir::Issue> {
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("_count".to_string(), count.to_string())])
        .collect();
    yigong_fhir::search::parse(rtype, &pairs)
}

#[derive(Deserialize)]
struct BookForm {
    slot: String,
    patient: String,
    referral: Option<String>,
}

async fn book(State(st): State<AppState>, p: Principal, Form(f): Form<BookForm>) -> Response {
    let svc = st.svc.clone();
    let p2 = p.clone();
    let res = blocking_write(move || -> Result<String, yigong_fhir::Issue> {
        let s = svc.read(&p2, "Slot", &f.slot)?;
        let sv = slots::read_slot(&serde_json::from_str(&s.body).unwrap_or(Value::Null))
            .map_err(|e| yigong_fhir::Issue::unprocessable(e.code, e.zh))?;
        svc.read(&p2, "Patient", f.patient.trim())?;
        let id = crate::service::new_id();
        let referral = f
            .referral
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let a = slots::appointment(&id, &sv, &f.slot, f.patient.trim(), referral);
        // The booking belongs to the clinic's institution: back to its slot page.
        let w = svc.update(&p2, "Appointment", &id, a, None)?;
        Ok(w.stored.inst.unwrap_or_default())
    })
    .await;
    match res {
        Ok(inst) => Redirect::to(&format!("/care/slots?inst={inst}")).into_response(),
        Err(e) => fail(&st, &p, e),
    }
}

#[derive(Deserialize)]
struct AppointmentForm {
    to: String,
    version: i64,
}

async fn appointment_status(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Form(f): Form<AppointmentForm>,
) -> Response {
    let svc = st.svc.clone();
    let p2 = p.clone();
    let res = blocking_write(move || -> Result<String, yigong_fhir::Issue> {
        let cur = svc.read(&p2, "Appointment", &id)?;
        let mut a: Value = serde_json::from_str(&cur.body).unwrap_or(Value::Null);
        a["status"] = json!(f.to);
        let w = svc.update(&p2, "Appointment", &id, a, Some(f.version))?;
        Ok(w.stored.inst.unwrap_or_default())
    })
    .await;
    match res {
        Ok(inst) => Redirect::to(&format!("/care/slots?inst={inst}")).into_response(),
        Err(e) => fail(&st, &p, e),
    }
}

async fn notice_read(State(st): State<AppState>, p: Principal, Path(seq): Path<i64>) -> Response {
    let Some(inst) = p.0.institution.clone() else {
        return Redirect::to("/care").into_response();
    };
    let store = st.svc.store.clone();
    match blocking(move || store.care_notice_read(&inst, seq)).await {
        Ok(_) => Redirect::to("/care").into_response(),
        Err(e) => store_fail(&st, &p, e),
    }
}

#[derive(Deserialize, Default)]
struct StatsQuery {
    days: Option<i64>,
}

async fn stats(State(st): State<AppState>, Query(q): Query<StatsQuery>, req: Request) -> Response {
    let (p, _) = signed_in!(st, req);
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    let until = Utc::now().timestamp() + 1;
    let since = until - days * 86_400;
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        let since_s = chrono::DateTime::from_timestamp(since, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        Ok((
            store.care_turnaround("exam", since, until, &scope)?,
            store.care_turnaround("referral", since, until, &scope)?,
            store.care_turnaround("critical-ack", since, until, &scope)?,
            store.care_turnaround("consult", since, until, &scope)?,
            store.recognition_stats(&since_s, &scope)?,
        ))
    })
    .await;
    let (exam, referral, critical, consult, recog) = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, e),
    };
    let names = st.svc.org_names();
    let name = |i: &str| names.get(i).cloned().unwrap_or_else(|| i.to_string());
    let tat = |rows: Vec<yigong_store::care::Turnaround>| -> Vec<minijinja::Value> {
        rows.into_iter()
            .map(|t| {
                let item = exams::item(&t.item).map_or_else(|| match t.item.as_str() { "up" => "上转".into(), "down" => "下转".into(), "" => "—".into(), o => o.to_string() }, |i| i.name.to_string());
                context! { inst => name(&t.inst), item => item, n => t.n, median => format!("{:.0}", t.median_min), p90 => format!("{:.0}", t.p90_min), late => t.late }
            })
            .collect()
    };
    let recog: Vec<minijinja::Value> = recog
        .into_iter()
        .map(|r| {
            let total = r.recognised + r.repeated;
            context! { inst => name(&r.inst), recognised => r.recognised, repeated => r.repeated,
                rate => if total > 0 { format!("{:.1}%", 100.0 * r.recognised as f64 / total as f64) } else { "无数据".into() },
                saved => Fen(r.saved_fen).to_string() }
        })
        .collect();
    render(
        &st,
        "care_stats.html",
        context! { title => "协同统计", nav => "care", user => user_ctx(&st, &p), days => days, exam => tat(exam), referral => tat(referral), critical => tat(critical), consult => tat(consult), recog => recog },
    )
}

/// The notification rows of the workbench, polled every few seconds (htmx), so
/// a critical value reaches the ordering clinician without reloading.
async fn notices_fragment(
    State(st): State<AppState>,
    Query(q): Query<InstQuery>,
    req: Request,
) -> Response {
    let (p, _) = signed_in!(st, req);
    let st2 = st.clone();
    let p2 = p.clone();
    let res = blocking(move || -> Result<_, yigong_store::StoreError> {
        match acting_inst(&st2, &p2, q.inst.as_deref()) {
            Some(inst) => st2.svc.store.care_notices(&inst, false, 30),
            None => Ok(vec![]),
        }
    })
    .await;
    let notices = match res {
        Ok(v) => v,
        Err(e) => return store_fail(&st, &p, e),
    };
    let notices = notice_rows(notices);
    render(&st, "care_notices.html", context! { notices => notices })
}

/// Who may change the community's flow rules (deadlines, centres, recognition catalogue).
fn may_configure(p: &Principal) -> bool {
    matches!(
        p.role(),
        yigong_store::Role::SystemAdmin | yigong_store::Role::HealthCommission
    )
}

/// `GET /care/rules`: the flow rules as JSON.
async fn rules_get(State(st): State<AppState>, _signed_in: Principal) -> Response {
    let rules = st.svc.store.care_rules();
    axum::Json(serde_json::to_value(&*rules).unwrap_or(Value::Null)).into_response()
}

/// `PUT /care/rules`: replaces the flow rules (checked whole; a bad file changes nothing).
async fn rules_put(State(st): State<AppState>, p: Principal, body: axum::body::Bytes) -> Response {
    let json_error = |status: StatusCode, msg: String| {
        (status, axum::Json(json!({ "error": msg }))).into_response()
    };
    if !may_configure(&p) {
        return json_error(
            StatusCode::FORBIDDEN,
            "只有管理员或卫健委可以修改协同规则".into(),
        );
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let rules = match yigong_care::Rules::from_json(&text) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::UNPROCESSABLE_ENTITY, e.zh),
    };
    let store = st.svc.store.clone();
    let actor = p.actor();
    match blocking(move || store.set_care_rules(&actor, rules)).await {
        Ok(()) => rules_get(State(st), p).await,
        Err(e) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

#[derive(Deserialize)]
struct SessionForm {
    /// Where the clinic is held (the lead hospital, or a township centre for an expert's clinic there).
    inst: String,
    practitioner: String,
    service: String,
    /// Local date and first slot time, `2026-12-05T08:30`.
    start: String,
    slots: u32,
    minutes: i64,
    /// Percent of the slots held for referrals from member units.
    held_percent: u32,
    /// Hours before the session at which held slots open to everyone.
    release_hours: i64,
}

/// Publishes one clinic session: its Schedule (one per practitioner, service and
/// place) and its Slots, a share held for referrals until the release time (号源下沉).
async fn publish_session(
    State(st): State<AppState>,
    p: Principal,
    Form(f): Form<SessionForm>,
) -> Response {
    let svc = st.svc.clone();
    let p2 = p.clone();
    let inst = f.inst.clone();
    let res = blocking_write(move || -> Result<(), yigong_fhir::Issue> {
        let bad = |msg: &str| yigong_fhir::Issue::unprocessable("session", msg.to_string());
        if !(1..=60).contains(&f.slots)
            || !(5..=120).contains(&f.minutes)
            || f.held_percent > 100
            || !(0..=24 * 14).contains(&f.release_hours)
        {
            return Err(bad(
                "号源数须为1–60,每号5–120分钟,预留比例0–100%,提前开放0–336小时",
            ));
        }
        let first = form_time(&f.start).ok_or_else(|| bad("出诊时间格式错误"))?;
        let first = chrono::DateTime::parse_from_rfc3339(&first)
            .map_err(|_| bad("出诊时间格式错误"))?
            .with_timezone(&Utc);
        if first <= Utc::now() {
            return Err(bad("只能发布未来的出诊"));
        }
        svc.read(&p2, "Practitioner", f.practitioner.trim())?;
        let ascii = |s: &str| {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        };
        let schedule_id = format!("sch-{}-{}", ascii(&f.inst), ascii(f.practitioner.trim()));
        let mut resources = vec![];
        if svc
            .store
            .read("Schedule", &schedule_id)
            .map_err(crate::service::store_issue)?
            .is_none()
        {
            resources.push(slots::schedule(
                &schedule_id,
                f.practitioner.trim(),
                &f.inst,
                f.service.trim(),
                "专家出诊",
            ));
        }
        let release = (first - chrono::Duration::hours(f.release_hours))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let held = (f.slots * f.held_percent).div_ceil(100);
        let stamp = first.format("%Y%m%d%H%M").to_string();
        for i in 0..f.slots {
            let start = first + chrono::Duration::minutes(f.minutes * i as i64);
            let end = start + chrono::Duration::minutes(f.minutes);
            let fmt =
                |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let id = format!("{schedule_id}-{stamp}-{i:02}");
            resources.push(slots::slot(
                &id,
                &schedule_id,
                &fmt(start),
                &fmt(end),
                (i < held).then_some(release.as_str()),
            ));
        }
        svc.write_all(&p2, resources)?;
        Ok(())
    })
    .await;
    match res {
        Ok(()) => Redirect::to(&format!("/care/slots?inst={inst}")).into_response(),
        Err(e) => fail(&st, &p, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worklist_sizes_past_the_cap_keep_paging() {
        assert_eq!(total_label(35), "35");
        assert_eq!(total_label(WORKLIST_COUNT_CAP), "1000");
        assert_eq!(total_label(WORKLIST_COUNT_CAP + 1), "1000+");
        // Counted exactly: the last page has no successor.
        assert!(has_next(0, 35, 30));
        assert!(!has_next(1, 35, 5));
        // Past the cap the count says nothing about page 40: a full page may
        // have a successor, a short one has none.
        assert!(has_next(40, WORKLIST_COUNT_CAP + 1, PAGE as usize));
        assert!(!has_next(40, WORKLIST_COUNT_CAP + 1, 7));
    }
}
