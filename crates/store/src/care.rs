//! Care across the community in the store: every write of a flow resource
//! (ServiceRequest, Task, DiagnosticReport, Slot, Appointment) is checked against
//! the rules of `yigong-care` inside its own transaction, the server fills what
//! it owns (step times, deadlines), follow-on writes happen in the same
//! transaction (a signed report completes its exam and raises a critical value;
//! a booking takes its slot), and the worklist row (`care_item`) and the
//! notifications are kept with it.

use crate::db::{Dialect, Sql, Val};
use crate::resources::{Doc, Precondition};
use crate::{Actor, Scope, Store, StoreError};
use serde_json::Value;
use yigong_care::{
    CareError, Flow, Rules, Side, epoch, exams, plus_minutes, requests, slots, state_label, task,
};
use yigong_core::Tier;

impl From<CareError> for StoreError {
    fn from(e: CareError) -> StoreError {
        match e.status {
            409 => StoreError::Conflict(e.zh),
            403 => StoreError::Forbidden(e.zh),
            _ => StoreError::Invalid(e.zh),
        }
    }
}

/// Whether writes of this type go through the care rules.
pub(crate) fn is_care_type(rtype: &str) -> bool {
    matches!(
        rtype,
        "ServiceRequest" | "Task" | "DiagnosticReport" | "Slot" | "Appointment"
    )
}

/// What the hook needs from the write in progress.
pub(crate) struct Write<'a> {
    pub actor: &'a Actor,
    pub now: &'a str,
    /// Bulk loads and the server's own follow-on writes: no side or transition
    /// checks, no server-filled fields (the body is taken as it is).
    pub trusted: bool,
    pub rules: &'a Rules,
}

/// A current row: version, parsed body, institution, community.
type CurrentRow = (i64, Value, Option<String>, Option<String>);

/// An organisation node: community, tier, lead hospital, name.
type OrgFacts = (Option<String>, Option<String>, bool, String);

fn row_body(
    tx: &mut dyn Sql,
    rtype: &str,
    id: &str,
    lock: bool,
) -> Result<Option<CurrentRow>, StoreError> {
    let lock = if lock && tx.dialect() == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = tx.query_one(
        &format!("SELECT version, body, inst, comm FROM resource WHERE rtype = ? AND id = ? AND deleted = 0{lock}"),
        &[rtype.into(), id.into()],
    )?;
    Ok(row.map(|r| {
        let mut it = r.into_iter();
        let version = it.next().and_then(|v| v.as_int()).unwrap_or(0);
        let body = it
            .next()
            .and_then(Val::into_string)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        (
            version,
            body,
            it.next().and_then(Val::into_string),
            it.next().and_then(Val::into_string),
        )
    }))
}

/// (community, tier, lead, name) of an organisation node.
fn org_facts(tx: &mut dyn Sql, org: &str) -> Result<Option<OrgFacts>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT comm, tier, lead, name FROM org_tree WHERE id = ?",
            &[org.into()],
        )?
        .map(|r| {
            let mut it = r.into_iter();
            (
                it.next().and_then(Val::into_string),
                it.next().and_then(Val::into_string),
                it.next().and_then(|v| v.as_int()).unwrap_or(0) != 0,
                it.next().and_then(Val::into_string).unwrap_or_default(),
            )
        }))
}

fn tier_rank(tier: Option<&str>) -> u8 {
    tier.and_then(Tier::from_code).map_or(0, Tier::level)
}

fn org_name(tx: &mut dyn Sql, org: &str) -> String {
    org_facts(tx, org)
        .ok()
        .flatten()
        .map(|f| f.3)
        .unwrap_or_else(|| org.to_string())
}

/// Slot and Appointment records belong to the institution of their schedule;
/// the body does not say so, so it is looked up before the scope check.
pub(crate) fn owner_of(tx: &mut dyn Sql, doc: &Doc) -> Result<Option<String>, StoreError> {
    let (t, key) = match doc.rtype.as_str() {
        "Slot" => ("Schedule", "schedule"),
        "Appointment" => ("Slot", "slot"),
        _ => return Ok(None),
    };
    let Some(id) = doc
        .index
        .iter()
        .find(|(p, _)| p == key)
        .map(|(_, v)| v.clone())
    else {
        return Ok(None);
    };
    Ok(tx
        .query_one(
            "SELECT org FROM resource WHERE rtype = ? AND id = ?",
            &[t.into(), id.as_str().into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(Val::into_string))
}

fn notice(
    tx: &mut dyn Sql,
    inst: &str,
    practitioner: Option<&str>,
    kind: &str,
    item: &str,
    text: &str,
    at: &str,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO care_notice (inst, practitioner, kind, item, text, at) VALUES (?, ?, ?, ?, ?, ?)",
        &[inst.into(), practitioner.into(), kind.into(), item.into(), text.into(), at.into()],
    )?;
    Ok(())
}

/// Checks a write of a flow resource and returns the follow-on writes.
pub(crate) fn on_write(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &mut Doc,
    old: Option<&Value>,
) -> Result<Vec<(Doc, Precondition)>, StoreError> {
    match doc.rtype.as_str() {
        "ServiceRequest" => on_request(tx, w, doc, old).map(|_| vec![]),
        "Task" => on_task(tx, w, doc, old).map(|_| vec![]),
        "DiagnosticReport" => on_report(tx, w, doc),
        "Slot" => {
            slots::read_slot(&doc.body)?;
            Ok(vec![])
        }
        "Appointment" => on_appointment(tx, w, doc, old),
        _ => Ok(vec![]),
    }
}

/// The institution the actor acts for must be `inst` (users without an
/// institution act for the county only when their scope is the county).
fn acting_for(
    actor: &Actor,
    inst: Option<&str>,
    what: &str,
    strict: bool,
) -> Result<(), StoreError> {
    match (&actor.institution, inst) {
        (Some(a), Some(i)) if a == i => Ok(()),
        (None, _) if !strict && actor.scope == Scope::County => Ok(()),
        _ => Err(StoreError::Forbidden(format!(
            "只有{what}的人员可以进行此操作"
        ))),
    }
}

fn on_request(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &mut Doc,
    old: Option<&Value>,
) -> Result<(), StoreError> {
    let Some(v) = requests::read(&doc.body)? else {
        return Ok(());
    };
    let Some(req_org) = v.requester_org.clone() else {
        return Err(StoreError::Invalid(format!(
            "{}必须以扩展 recorded-at 注明申请机构",
            v.flow.label()
        )));
    };
    if w.trusted {
        return Ok(());
    }
    if old.is_none() {
        acting_for(w.actor, Some(&req_org), "申请机构", false)?;
    }
    let (req_comm, req_tier, _, _) = org_facts(tx, &req_org)?
        .ok_or_else(|| StoreError::Invalid(format!("申请机构 {req_org} 不在机构目录中")))?;
    match v.flow {
        Flow::Referral => {
            if v.out_of_county {
                return Ok(());
            }
            let Some(perf) = &v.performer_org else {
                return Err(StoreError::Invalid(
                    "转诊必须指定接收机构(performer);转往县外须填写转外备案(审批号与审批人)".into(),
                ));
            };
            let (perf_comm, perf_tier, _, perf_name) = org_facts(tx, perf)?
                .ok_or_else(|| StoreError::Invalid(format!("接收机构 {perf} 不在机构目录中")))?;
            if perf_comm != req_comm || req_comm.is_none() {
                return Err(StoreError::Invalid(format!(
                    "接收机构“{perf_name}”不在本医共体内:医共体外转诊须走转外备案流程(填写审批号与审批人)"
                )));
            }
            let (up, rank_ok) = match v.direction.as_deref() {
                Some("up") => (
                    true,
                    tier_rank(perf_tier.as_deref()) > tier_rank(req_tier.as_deref()),
                ),
                _ => (
                    false,
                    tier_rank(perf_tier.as_deref()) < tier_rank(req_tier.as_deref()),
                ),
            };
            if !rank_ok {
                return Err(StoreError::Invalid(if up {
                    format!("上转的接收机构“{perf_name}”必须是更高一级的机构")
                } else {
                    format!("下转的接收机构“{perf_name}”必须是更低一级的机构")
                }));
            }
            if !up {
                let has = |t: &str| v.supporting.iter().any(|r| r.starts_with(&format!("{t}/")));
                if !has("DocumentReference") || !has("CarePlan") {
                    return Err(StoreError::Invalid(
                        "下转必须附出院小结(DocumentReference)和随访计划(CarePlan)".into(),
                    ));
                }
            }
        }
        Flow::Exam => {
            let item = exams::item(v.item.as_deref().unwrap_or("")).expect("checked by read");
            let Some(perf) = &v.performer_org else {
                return Err(StoreError::Invalid(format!(
                    "检查申请必须指定{}",
                    item.kind.label()
                )));
            };
            let (perf_comm, _, lead, perf_name) = org_facts(tx, perf)?
                .ok_or_else(|| StoreError::Invalid(format!("执行机构 {perf} 不在机构目录中")))?;
            let configured = req_comm
                .as_deref()
                .and_then(|c| w.rules.centre(c, item.kind));
            let ok = match configured {
                Some(c) => c == perf,
                None => lead && perf_comm == req_comm,
            };
            if !ok {
                return Err(StoreError::Invalid(format!(
                    "“{perf_name}”不是本医共体的{}",
                    item.kind.label()
                )));
            }
            if old.is_none() {
                check_recognition(tx, w, doc, &v, &req_org, item)?;
            }
        }
        Flow::Consult => {
            if v.performer_org.is_none() {
                return Err(StoreError::Invalid(
                    "会诊申请必须指定受邀机构(performer)".into(),
                ));
            }
        }
        Flow::CriticalAck => {}
    }
    Ok(())
}

/// A still-valid recognised result of the same item for the same person
/// (every record linked to the patient in the master patient index).
pub(crate) fn valid_result(
    tx: &mut dyn Sql,
    rules: &Rules,
    patient: &str,
    item: &str,
    req_org: &str,
    now: &str,
) -> Result<Option<PriorResult>, StoreError> {
    let Some(rec) = rules.recognised(item) else {
        return Ok(None);
    };
    let Some(now_s) = epoch(now) else {
        return Ok(None);
    };
    let since = chrono::DateTime::from_timestamp(now_s - rec.validity_days * 86_400, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let mut patients = vec![patient.to_string()];
    if let Some(person) = tx
        .query_one(
            "SELECT person FROM mpi_link WHERE patient = ?",
            &[patient.into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(Val::into_string)
    {
        for r in tx.query(
            "SELECT patient FROM mpi_link WHERE person = ?",
            &[person.as_str().into()],
        )? {
            if let Some(p) = r.into_iter().next().and_then(Val::into_string)
                && p != patient
            {
                patients.push(p);
            }
        }
    }
    let key = yigong_fhir::extract::token_key(yigong_care::codes::CS_EXAM_ITEM, item);
    let req_comm = org_facts(tx, req_org)?.and_then(|f| f.0);
    let mut best: Option<PriorResult> = None;
    for p in &patients {
        // The patient's few recent reports, each probed for the item: an `IN`
        // list of every report with the item would be built per order (45k ids
        // for a common exam at 1M residents).
        let rows = tx.query(
            "SELECT r.id, r.sdate, r.inst, r.comm FROM resource r WHERE r.rtype = 'DiagnosticReport' AND r.patient = ? AND r.deleted = 0 AND r.sdate >= ? \
             AND EXISTS (SELECT 1 FROM search_index s WHERE s.rtype = 'DiagnosticReport' AND s.param = 'code' AND s.value = ? AND s.id = r.id)",
            &[p.as_str().into(), since.as_str().into(), key.as_str().into()],
        )?;
        for r in rows {
            let mut it = r.into_iter();
            let id = it.next().and_then(Val::into_string).unwrap_or_default();
            let date = it.next().and_then(Val::into_string).unwrap_or_default();
            let inst = it.next().and_then(Val::into_string).unwrap_or_default();
            let comm = it.next().and_then(Val::into_string);
            let accepted = match &rec.accept_from {
                yigong_care::rules::AcceptFrom::County => true,
                yigong_care::rules::AcceptFrom::Community => comm == req_comm,
                yigong_care::rules::AcceptFrom::Listed(l) => l.contains(&inst),
            };
            if accepted && best.as_ref().is_none_or(|b| b.date < date) {
                best = Some(PriorResult {
                    report: id,
                    date,
                    institution: inst,
                    patient: p.clone(),
                    validity_days: rec.validity_days,
                });
            }
        }
    }
    Ok(best)
}

/// A result that can be recognised instead of repeating an exam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorResult {
    pub report: String,
    pub date: String,
    pub institution: String,
    /// The record (of the same person) the result was filed under.
    pub patient: String,
    pub validity_days: i64,
}

fn check_recognition(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &Doc,
    v: &requests::RequestView,
    req_org: &str,
    item: &exams::ExamItem,
) -> Result<(), StoreError> {
    let Some(patient) = &v.patient else {
        return Ok(());
    };
    let Some(prior) = valid_result(tx, w.rules, patient, item.code, req_org, w.now)? else {
        return Ok(());
    };
    let Some(reason) = &v.repeat_reason else {
        let inst = org_name(tx, &prior.institution);
        return Err(StoreError::Conflict(format!(
            "患者已有 {} 在“{inst}”的“{}”结果(报告 {},{} 天内互认),请直接调阅;确需重复检查请填写理由",
            &prior.date[..prior.date.len().min(10)],
            item.name,
            prior.report,
            prior.validity_days
        )));
    };
    tx.exec(
        "INSERT INTO recognition_log (at, inst, actor, patient, item, outcome, reason, prior_report, order_id, fee_fen) VALUES (?, ?, ?, ?, ?, 'repeated', ?, ?, ?, ?)",
        &[w.now.into(), req_org.into(), w.actor.user.as_str().into(), patient.as_str().into(), item.code.into(), reason.as_str().into(), prior.report.as_str().into(), doc.id.as_str().into(), Val::Int(item.fee_fen)],
    )?;
    Ok(())
}

fn on_task(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &mut Doc,
    old: Option<&Value>,
) -> Result<(), StoreError> {
    let Some(mut view) = task::read(&doc.body)? else {
        return Ok(());
    };
    let old_view = match old {
        Some(o) => task::read(o)?,
        None => None,
    };
    // A new Task's request, when its check has already read it.
    let mut request = None;
    if !w.trusted {
        match &old_view {
            None => request = Some(check_new_task(tx, w, doc, &view)?),
            Some(ov) => check_task_step(tx, w, doc, ov, &view)?,
        }
        view = task::read(&doc.body)?.expect("still a flow task");
    }
    let id = doc.id.clone();
    upsert_item(
        tx,
        &id,
        &view,
        &doc.body,
        w.now,
        old.is_none(),
        request.as_ref(),
    )?;
    notify_task(tx, w, &id, &doc.body, old_view.as_ref(), &view)?;
    Ok(())
}

fn check_new_task(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &mut Doc,
    view: &yigong_care::TaskView,
) -> Result<requests::RequestView, StoreError> {
    if !view.flow.is_initial(&view.state) {
        return Err(StoreError::Invalid(format!(
            "新建{}任务的状态必须为“已申请”{},收到“{}”",
            view.flow.label(),
            if view.flow == Flow::Referral {
                "或“草稿”"
            } else {
                ""
            },
            state_label(&view.state)
        )));
    }
    if view.flow == Flow::CriticalAck {
        return Err(StoreError::Invalid(
            "危急值确认任务由系统在报告签发时创建".into(),
        ));
    }
    acting_for(w.actor, view.requester.as_deref(), "申请机构", false)?;
    // The Task must track a request of the same flow between the same parties.
    let focus = view
        .focus
        .as_deref()
        .and_then(|f| f.strip_prefix("ServiceRequest/"))
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "{}任务必须以 focus 引用其申请(ServiceRequest)",
                view.flow.label()
            ))
        })?;
    let (_, sr, _, _) = row_body(tx, "ServiceRequest", focus, false)?
        .ok_or_else(|| StoreError::MissingReference(format!("ServiceRequest/{focus}")))?;
    let rv = requests::read(&sr)?
        .ok_or_else(|| StoreError::Invalid("任务引用的申请不属于任何协同流程".into()))?;
    if rv.flow != view.flow {
        return Err(StoreError::Invalid(format!(
            "任务类型“{}”与申请类型“{}”不符",
            view.flow.label(),
            rv.flow.label()
        )));
    }
    let expected_owner = if rv.out_of_county {
        rv.requester_org.clone()
    } else {
        rv.performer_org.clone()
    };
    if view.requester != rv.requester_org
        || view.owner != expected_owner
        || view.patient != rv.patient
    {
        return Err(StoreError::Invalid(
            "任务的申请机构、接收机构和患者必须与其申请(ServiceRequest)一致".into(),
        ));
    }
    if task::steps(&doc.body).is_empty() {
        task::record_step(&mut doc.body, &view.state, w.now, Some(&w.actor.user));
    }
    if view.flow.awaits_response(&view.state) && view.deadline.is_none() {
        set_deadline(&mut doc.body, w, view.flow, &view.priority);
    }
    Ok(rv)
}

fn set_deadline(body: &mut Value, w: &Write<'_>, flow: Flow, priority: &str) {
    if let Some(end) = plus_minutes(w.now, w.rules.response_minutes(flow, priority)) {
        task::set_deadline(body, &end);
    }
}

fn check_task_step(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &mut Doc,
    old: &yigong_care::TaskView,
    new: &yigong_care::TaskView,
) -> Result<(), StoreError> {
    if old.flow != new.flow
        || old.requester != new.requester
        || old.owner != new.owner
        || old.patient != new.patient
        || old.focus != new.focus
    {
        return Err(StoreError::Invalid(
            "不能修改任务的类型、申请机构、接收机构、患者或所跟踪的申请".into(),
        ));
    }
    if old.state == new.state {
        // Notes and outputs may change; the deadline belongs to the server.
        match &old.deadline {
            Some(d) => task::set_deadline(&mut doc.body, d),
            None => task::clear_deadline(&mut doc.body),
        }
        return Ok(());
    }
    let side = new.flow.step(&old.state, &new.state)?;
    match side {
        Side::Server => {
            return Err(StoreError::Conflict(format!(
                "{}的“{}”只能由签发报告完成",
                new.flow.label(),
                state_label(&new.state)
            )));
        }
        Side::Requester => acting_for(w.actor, new.requester.as_deref(), "申请机构", false)?,
        Side::Performer => {
            let strict = new.flow == Flow::CriticalAck;
            let who = if strict {
                "开单机构"
            } else {
                "接收机构"
            };
            acting_for(w.actor, new.owner.as_deref(), who, strict)?
        }
    }
    match (new.flow, new.state.as_str()) {
        (Flow::Referral, "scheduled")
            if task::output(&doc.body, "scheduled-time").is_none()
                && task::output(&doc.body, "appointment").is_none() =>
        {
            return Err(StoreError::Invalid(
                "预约时须注明就诊时间(Task.output scheduled-time)或预约(appointment)".into(),
            ));
        }
        (Flow::Consult, "accepted") if new.assignee.is_none() => {
            return Err(StoreError::Invalid(
                "接收会诊须指定会诊专家(assignee 扩展)".into(),
            ));
        }
        (Flow::Consult, "accepted") => {
            let expert = new.assignee.as_deref().unwrap_or("");
            if !in_expert_pool(tx, expert, new.owner.as_deref().unwrap_or(""))? {
                return Err(StoreError::Invalid(format!(
                    "医师 {expert} 不在受邀机构的会诊专家库中(须为该机构副主任医师及以上)"
                )));
            }
        }
        (Flow::Consult, "answered") if task::output(&doc.body, "opinion").is_none() => {
            return Err(StoreError::Invalid(
                "出具会诊意见时须填写意见(Task.output opinion)".into(),
            ));
        }
        (Flow::Consult, "closed") => {
            if let Some(r) = task::output(&doc.body, "rating")
                .and_then(|o| o.get("valueInteger"))
                .and_then(Value::as_i64)
                && !(1..=5).contains(&r)
            {
                return Err(StoreError::Invalid("会诊评分须为 1 到 5".into()));
            }
        }
        _ => {}
    }
    // The server records the step (unless the client already did) and owns the deadline.
    if task::steps(&doc.body)
        .last()
        .is_none_or(|(s, _)| *s != new.state)
    {
        task::record_step(&mut doc.body, &new.state, w.now, Some(&w.actor.user));
    }
    if new.flow.awaits_response(&new.state) {
        set_deadline(&mut doc.body, w, new.flow, &new.priority);
    } else {
        task::clear_deadline(&mut doc.body);
    }
    Ok(())
}

/// The expert pool of an institution: its practitioners (by their roles) with a
/// senior title (副主任医师 and above).
fn in_expert_pool(tx: &mut dyn Sql, practitioner: &str, inst: &str) -> Result<bool, StoreError> {
    let Some((_, p, _, _)) = row_body(tx, "Practitioner", practitioner, false)? else {
        return Ok(false);
    };
    let senior = p
        .get("qualification")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|q| q.get("code")?.get("coding")?.as_array())
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str))
        .any(|c| matches!(c, "chief" | "associate-chief"));
    if !senior {
        return Ok(false);
    }
    let at_inst = tx
        .query_one(
            "SELECT 1 FROM resource r WHERE r.rtype = 'PractitionerRole' AND r.inst = ? AND EXISTS (SELECT 1 FROM search_index s WHERE s.rtype = 'PractitionerRole' AND s.param = 'practitioner' AND s.value = ? AND s.id = r.id)",
            &[inst.into(), practitioner.into()],
        )?
        .is_some();
    Ok(at_inst)
}

fn notify_task(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    id: &str,
    body: &Value,
    old: Option<&yigong_care::TaskView>,
    new: &yigong_care::TaskView,
) -> Result<(), StoreError> {
    if w.trusted && old.is_none() && new.flow != Flow::CriticalAck {
        // Bulk loads bring history, not news.
        return Ok(());
    }
    if old.is_some_and(|o| o.state == new.state && o.escalated == new.escalated) {
        return Ok(());
    }
    let urgent = matches!(new.priority.as_str(), "stat" | "urgent" | "asap");
    let green = if urgent && new.flow == Flow::Referral {
        "【绿色通道】"
    } else {
        ""
    };
    let (to, text) = if let Some(o) = old
        && o.escalated.is_none()
        && new.escalated.is_some()
    {
        (
            new.owner.clone(),
            format!(
                "{green}{}{} 已超过响应时限,已升级督办",
                new.flow.label(),
                id
            ),
        )
    } else if new.flow == Flow::CriticalAck && new.state == "requested" {
        (
            new.owner.clone(),
            format!(
                "【危急值】报告 {} 有危急值,请立即确认处置",
                new.focus.as_deref().unwrap_or("")
            ),
        )
    } else if new.flow.awaits_response(&new.state) || (old.is_none() && new.state == "requested") {
        (
            new.owner.clone(),
            format!("{green}新的{}:{id}(待处理)", new.flow.label()),
        )
    } else {
        (
            new.requester.clone(),
            format!(
                "{green}{} {id} {}",
                new.flow.label(),
                state_label(&new.state)
            ),
        )
    };
    if let Some(inst) = to {
        let practitioner = if new.flow == Flow::CriticalAck {
            task::recipient(body)
        } else {
            None
        };
        notice(
            tx,
            &inst,
            practitioner.as_deref(),
            new.flow.code(),
            id,
            &text,
            w.now,
        )?;
    }
    Ok(())
}

/// Keeps the worklist row of a flow Task.
fn upsert_item(
    tx: &mut dyn Sql,
    id: &str,
    v: &yigong_care::TaskView,
    body: &Value,
    now: &str,
    is_new: bool,
    request: Option<&requests::RequestView>,
) -> Result<(), StoreError> {
    let steps = task::steps(body);
    let created = steps
        .first()
        .and_then(|(_, at)| epoch(at))
        .or_else(|| v.authored.as_deref().and_then(epoch))
        .or_else(|| epoch(now))
        .unwrap_or(0);
    let responded = steps
        .windows(2)
        .find(|p| v.flow.awaits_response(&p[0].0))
        .and_then(|p| epoch(&p[1].1));
    let done = if v.flow.is_terminal(&v.state) {
        steps
            .last()
            .and_then(|(_, at)| epoch(at))
            .or_else(|| epoch(now))
    } else {
        None
    };
    let due = if v.flow.awaits_response(&v.state) {
        v.deadline.as_deref().and_then(epoch)
    } else {
        None
    };
    let assignee = v.assignee.clone().or_else(|| task::recipient(body));
    let escalated = v.escalated.as_deref().and_then(epoch);
    if !is_new {
        // The parties, patient and request of a flow never change: only its progress.
        let n = tx.exec(
            "UPDATE care_item SET state = ?, priority = ?, responded = ?, done = ?, due = ?, escalated = ?, assignee = ? WHERE id = ?",
            &[
                v.state.as_str().into(), v.priority.as_str().into(), responded.map(Val::Int).into(), done.map(Val::Int).into(),
                due.map(Val::Int).into(), escalated.map(Val::Int).into(), assignee.clone().into(), id.into(),
            ],
        )?;
        if n == 1 {
            return Ok(());
        }
    }
    let (req_comm, perf_comm) = (
        comm_of(tx, v.requester.as_deref())?,
        comm_of(tx, v.owner.as_deref())?,
    );
    let item = match request {
        Some(rv) => worklist_item(rv),
        None => item_of(tx, v)?,
    };
    let focus = v
        .focus
        .as_deref()
        .and_then(|f| f.split_once('/'))
        .map(|(_, id)| id.to_string());
    tx.exec(
        "INSERT INTO care_item (id, kind, state, priority, req_inst, req_comm, perf_inst, perf_comm, patient, focus, item, created, responded, done, due, escalated, assignee) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, priority = excluded.priority, responded = excluded.responded, done = excluded.done, \
         due = excluded.due, escalated = excluded.escalated, assignee = excluded.assignee, item = excluded.item",
        &[
            id.into(), v.flow.code().into(), v.state.as_str().into(), v.priority.as_str().into(),
            v.requester.clone().into(), req_comm.into(), v.owner.clone().into(), perf_comm.into(),
            v.patient.clone().into(), focus.into(), item.into(), Val::Int(created),
            responded.map(Val::Int).into(), done.map(Val::Int).into(), due.map(Val::Int).into(),
            escalated.map(Val::Int).into(), assignee.into(),
        ],
    )?;
    Ok(())
}

fn comm_of(tx: &mut dyn Sql, org: Option<&str>) -> Result<Option<String>, StoreError> {
    Ok(match org {
        Some(o) => crate::resources::org_scope(tx, o)?.1,
        None => None,
    })
}

/// The exam item or referral direction of the request a Task tracks.
fn item_of(tx: &mut dyn Sql, v: &yigong_care::TaskView) -> Result<Option<String>, StoreError> {
    let Some(focus) = v
        .focus
        .as_deref()
        .and_then(|f| f.strip_prefix("ServiceRequest/"))
    else {
        return Ok(None);
    };
    let Some((_, sr, _, _)) = row_body(tx, "ServiceRequest", focus, false)? else {
        return Ok(None);
    };
    Ok(requests::read(&sr)
        .ok()
        .flatten()
        .and_then(|r| worklist_item(&r)))
}

/// What a worklist row shows of its request: the exam item, the referral
/// direction, or "out" for an out-of-county referral.
fn worklist_item(r: &requests::RequestView) -> Option<String> {
    if r.out_of_county {
        Some("out".to_string())
    } else {
        r.item.clone().or_else(|| r.direction.clone())
    }
}

fn on_report(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &mut Doc,
) -> Result<Vec<(Doc, Precondition)>, StoreError> {
    let status = doc.body.get("status").and_then(Value::as_str).unwrap_or("");
    if !matches!(status, "final" | "amended" | "corrected" | "appended") {
        return Ok(vec![]);
    }
    let Some(order) = requests::report_order(&doc.body) else {
        return Ok(vec![]);
    };
    let Some((_, sr, _, _)) = row_body(tx, "ServiceRequest", &order, false)? else {
        return Ok(vec![]);
    };
    let Some(rv) = requests::read(&sr)? else {
        return Ok(vec![]);
    };
    if rv.flow != Flow::Exam {
        return Ok(vec![]);
    }
    let tid = task::task_id(&order);
    let Some((tver, mut t, _, _)) = row_body(tx, "Task", &tid, true)? else {
        return Err(StoreError::Invalid(format!(
            "检查申请 {order} 没有跟踪任务,不能出具报告"
        )));
    };
    let tv = task::read(&t)?.ok_or_else(|| StoreError::Invalid("检查任务已损坏".into()))?;
    match tv.state.as_str() {
        "cancelled" => {
            return Err(StoreError::Conflict(format!(
                "检查申请 {order} 已取消,不能出具报告"
            )));
        }
        "received" | "reported" => {}
        other => {
            return Err(StoreError::Conflict(format!(
                "检查申请 {order} 尚未被检查中心签收(当前:{}),不能出具报告",
                state_label(other)
            )));
        }
    }
    if !w.trusted {
        acting_for(w.actor, rv.performer_org.as_deref(), "检查中心", false)?;
    }
    if doc.org.is_some() && doc.org != rv.performer_org {
        return Err(StoreError::Invalid(
            "报告的出具机构必须是该申请的执行中心".into(),
        ));
    }
    let issued = doc
        .body
        .get("issued")
        .and_then(Value::as_str)
        .filter(|s| epoch(s).is_some())
        .unwrap_or(w.now)
        .to_string();
    let mut out = vec![];
    if tv.state == "received" {
        task::mark_reported(&mut t, &doc.id, &issued);
        out.push((derived_doc("Task", &tid, t)?, Precondition::IfMatch(tver)));
    }
    // Critical values: any result Observation flagged or beyond the limits.
    let critical = requests::report_results(&doc.body).iter().any(|o| {
        row_body(tx, "Observation", o, false)
            .ok()
            .flatten()
            .is_some_and(|(_, b, _, _)| requests::is_critical(&b))
    });
    let ack_id = task::ack_task_id(&doc.id);
    if critical && row_body(tx, "Task", &ack_id, false)?.is_none() {
        let clinician = sr
            .get("requester")
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("Practitioner/"));
        let ack = task::critical_ack(
            &doc.id,
            rv.patient.as_deref().unwrap_or(""),
            rv.performer_org.as_deref().unwrap_or(""),
            rv.requester_org.as_deref().unwrap_or(""),
            clinician,
            &issued,
            w.rules.critical_ack_minutes,
        );
        out.push((derived_doc("Task", &ack_id, ack)?, Precondition::Create));
    }
    Ok(out)
}

fn derived_doc(rtype: &str, id: &str, body: Value) -> Result<Doc, StoreError> {
    Doc::from_resource(rtype, id, body, None).map_err(|e| StoreError::Invalid(e.zh))
}

fn on_appointment(
    tx: &mut dyn Sql,
    w: &Write<'_>,
    doc: &mut Doc,
    old: Option<&Value>,
) -> Result<Vec<(Doc, Precondition)>, StoreError> {
    let a = slots::read_appointment(&doc.body);
    let old_a = old.map(slots::read_appointment);
    let Some(slot_id) = a.slot.clone() else {
        return Err(StoreError::Invalid(
            "预约必须引用号源(Appointment.slot)".into(),
        ));
    };
    if let Some(o) = &old_a
        && o.slot.as_deref() != Some(&slot_id)
    {
        return Err(StoreError::Invalid(
            "不能修改预约的号源;请取消后重新预约".into(),
        ));
    }
    if !w.trusted {
        slots::appointment_step(old_a.as_ref().map(|o| o.status.as_str()), &a.status)?;
    }
    // Lock the slot: two bookings of it serialise here and the second sees it taken.
    let (sver, mut slot, sinst, scomm) = row_body(tx, "Slot", &slot_id, true)?
        .ok_or_else(|| StoreError::MissingReference(format!("Slot/{slot_id}")))?;
    let sv = slots::read_slot(&slot)?;
    let was = old_a.as_ref().is_some_and(|o| slots::holds_slot(&o.status));
    let holds = slots::holds_slot(&a.status);
    let mut out = vec![];
    if holds && !was {
        let referral = match &a.referral {
            Some(r) => {
                let (_, sr, _, _) = row_body(tx, "ServiceRequest", r, false)?
                    .ok_or_else(|| StoreError::MissingReference(format!("ServiceRequest/{r}")))?;
                let rv = requests::read(&sr)?;
                rv.is_some_and(|rv| {
                    rv.flow == Flow::Referral && rv.performer_org.as_deref() == sinst.as_deref()
                })
            }
            None => false,
        };
        if w.trusted {
            if sv.status != "free" {
                return Err(StoreError::Conflict(format!("号源 {slot_id} 已被预约")));
            }
        } else {
            slots::may_book(&sv, w.now, referral)?;
        }
        slot["status"] = Value::String("busy".into());
        out.push((
            derived_doc("Slot", &slot_id, slot)?,
            Precondition::IfMatch(sver),
        ));
    } else if was && !holds {
        slot["status"] = Value::String("free".into());
        out.push((
            derived_doc("Slot", &slot_id, slot)?,
            Precondition::IfMatch(sver),
        ));
    }
    // Worklist row: the clinic's institution is the performer.
    let req_inst = w.actor.institution.clone();
    let req_comm = comm_of(tx, req_inst.as_deref())?;
    let created = epoch(&sv.start).unwrap_or(0);
    let done = matches!(a.status.as_str(), "fulfilled" | "cancelled" | "noshow")
        .then(|| epoch(w.now).unwrap_or(created));
    tx.exec(
        "INSERT INTO care_item (id, kind, state, priority, req_inst, req_comm, perf_inst, perf_comm, patient, focus, item, created, done) \
         VALUES (?, 'appointment', ?, 'routine', ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, done = excluded.done",
        &[
            doc.id.as_str().into(), a.status.as_str().into(), req_inst.into(), req_comm.into(), sinst.into(), scomm.into(),
            a.patient.into(), slot_id.as_str().into(), sv.schedule.as_str().into(), Val::Int(created), done.map(Val::Int).into(),
        ],
    )?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Queries and the escalation sweep.

/// One row of a worklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareItem {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub priority: String,
    pub req_inst: Option<String>,
    pub perf_inst: Option<String>,
    pub patient: Option<String>,
    pub focus: Option<String>,
    pub item: Option<String>,
    pub created: i64,
    pub responded: Option<i64>,
    pub done: Option<i64>,
    pub due: Option<i64>,
    pub escalated: Option<i64>,
    pub assignee: Option<String>,
}

/// Worklist sizes are counted up to this many items (see [`Store::care_worklist`]).
pub const WORKLIST_COUNT_CAP: i64 = 1000;

const ITEM_COLS: &str = "id, kind, state, priority, req_inst, perf_inst, patient, focus, item, created, responded, done, due, escalated, assignee";

fn item_from_row(r: Vec<Val>) -> CareItem {
    let mut it = r.into_iter();
    let mut s = || it.next().unwrap_or(Val::Null);
    CareItem {
        id: s().into_string().unwrap_or_default(),
        kind: s().into_string().unwrap_or_default(),
        state: s().into_string().unwrap_or_default(),
        priority: s().into_string().unwrap_or_default(),
        req_inst: s().into_string(),
        perf_inst: s().into_string(),
        patient: s().into_string(),
        focus: s().into_string(),
        item: s().into_string(),
        created: s().as_int().unwrap_or(0),
        responded: s().as_int(),
        done: s().as_int(),
        due: s().as_int(),
        escalated: s().as_int(),
        assignee: s().into_string(),
    }
}

/// Which side of the flows an institution's worklist shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Addressed to the institution (it must act).
    Incoming,
    /// Sent by the institution.
    Outgoing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worklist {
    pub kind: String,
    pub inst: String,
    pub direction: Direction,
    /// Empty: every state.
    pub states: Vec<String>,
    pub limit: i64,
    pub offset: i64,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub seq: i64,
    pub inst: String,
    pub practitioner: Option<String>,
    pub kind: String,
    pub item: Option<String>,
    pub text: String,
    pub at: String,
    pub read_at: Option<String>,
}

/// Turnaround of one centre and item.
#[derive(Debug, Clone, PartialEq)]
pub struct Turnaround {
    pub inst: String,
    pub item: String,
    pub n: usize,
    pub median_min: f64,
    pub p90_min: f64,
    /// Reported after the deadline or escalated.
    pub late: usize,
}

/// Mutual recognition per institution.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecognitionStats {
    pub inst: String,
    pub recognised: i64,
    pub repeated: i64,
    pub saved_fen: i64,
}

impl Store {
    pub fn care_rules(&self) -> std::sync::Arc<Rules> {
        self.care_rules.read().expect("rules lock").clone()
    }

    /// Replaces the community's flow configuration (checked whole, audited).
    pub fn set_care_rules(&self, actor: &Actor, rules: Rules) -> Result<(), StoreError> {
        rules.check()?;
        let text =
            serde_json::to_string(&rules).map_err(|e| StoreError::Database(e.to_string()))?;
        let now = crate::now_string();
        self.db().write(|tx| {
            tx.exec(
                "INSERT INTO meta (key, value) VALUES ('care_rules', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[text.as_str().into()],
            )?;
            crate::AuditRow::by(actor, &now, "care-rules").append(tx)
        })?;
        *self.care_rules.write().expect("rules lock") = std::sync::Arc::new(rules);
        Ok(())
    }

    pub(crate) fn load_care_rules(&self) -> Result<(), StoreError> {
        if let Some(t) = self.meta_get("care_rules")? {
            let r = Rules::from_json(&t)?;
            *self.care_rules.write().expect("rules lock") = std::sync::Arc::new(r);
        }
        Ok(())
    }

    /// One page of an institution's worklist, newest first, with the number of
    /// its items counted up to [`WORKLIST_COUNT_CAP`] + 1 (more than the cap:
    /// show "cap+"). The institution must be within `scope`.
    pub fn care_worklist(
        &self,
        q: &Worklist,
        scope: &Scope,
    ) -> Result<(i64, Vec<CareItem>), StoreError> {
        let col = match q.direction {
            Direction::Incoming => "perf_inst",
            Direction::Outgoing => "req_inst",
        };
        let comm_col = match q.direction {
            Direction::Incoming => "perf_comm",
            Direction::Outgoing => "req_comm",
        };
        let mut sql = format!("FROM care_item WHERE {col} = ? AND kind = ?");
        let mut params: Vec<Val> = vec![q.inst.as_str().into(), q.kind.as_str().into()];
        if !q.states.is_empty() {
            sql.push_str(&format!(
                " AND state IN ({})",
                vec!["?"; q.states.len()].join(", ")
            ));
            params.extend(q.states.iter().map(|s| Val::from(s.as_str())));
        }
        match scope {
            Scope::County => {}
            Scope::Community(c) => {
                sql.push_str(&format!(" AND {comm_col} = ?"));
                params.push(c.as_str().into());
            }
            Scope::Institution(i) => {
                if *i != q.inst {
                    return Ok((0, vec![]));
                }
            }
        }
        self.db().read(|c| {
            // Counted up to a bound: an institution's whole history of one kind
            // (tens of thousands of exams) is not read to print its size.
            let total = c.scalar_int(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 {sql} LIMIT {})",
                    WORKLIST_COUNT_CAP + 1
                ),
                &params,
            )?;
            let mut p = params.clone();
            p.push(Val::Int(q.limit));
            p.push(Val::Int(q.offset));
            let rows = c.query(
                &format!(
                    // Backwards along the index (state, created): no sort, the page stops early.
                    "SELECT {ITEM_COLS} {sql} ORDER BY state DESC, created DESC LIMIT ? OFFSET ?"
                ),
                &p,
            )?;
            Ok((total, rows.into_iter().map(item_from_row).collect()))
        })
    }

    /// Counts per (kind, state) of the open work addressed to or sent by an institution.
    pub fn care_counts(
        &self,
        inst: &str,
        direction: Direction,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let col = match direction {
            Direction::Incoming => "perf_inst",
            Direction::Outgoing => "req_inst",
        };
        self.db().read(|c| {
            // Open work only: an index range per (kind, state), not the institution's history.
            let open = ["draft", "requested", "accepted", "scheduled", "arrived", "collected", "in-transit", "received", "answered", "booked"];
            let kinds = ["referral", "exam", "consult", "critical-ack", "appointment"];
            let mut p: Vec<Val> = vec![inst.into()];
            p.extend(kinds.iter().map(|k| Val::from(*k)));
            p.extend(open.iter().map(|s| Val::from(*s)));
            let rows = c.query(
                &format!(
                    "SELECT kind, state, count(*) FROM care_item WHERE {col} = ? AND kind IN ({}) AND state IN ({}) GROUP BY kind, state ORDER BY kind, state",
                    vec!["?"; kinds.len()].join(", "),
                    vec!["?"; open.len()].join(", ")
                ),
                &p,
            )?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut it = r.into_iter();
                    (
                        it.next().and_then(Val::into_string).unwrap_or_default(),
                        it.next().and_then(Val::into_string).unwrap_or_default(),
                        it.next().and_then(|v| v.as_int()).unwrap_or(0),
                    )
                })
                .collect())
        })
    }

    /// The institution's next booked or checked-in appointments from `from` (epoch seconds), soonest first.
    pub fn care_upcoming_appointments(
        &self,
        inst: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<CareItem>, StoreError> {
        self.db().read(|c| {
            // One index range per state, each read in time order up to the limit,
            // then merged: `state IN (…) ORDER BY created` would read and sort every
            // future booking of a lead hospital (hundreds) to show twenty.
            let mut items = vec![];
            for state in ["booked", "arrived"] {
                let rows = c.query(
                    &format!("SELECT {ITEM_COLS} FROM care_item WHERE perf_inst = ? AND kind = 'appointment' AND state = ? AND created >= ? ORDER BY created LIMIT ?"),
                    &[inst.into(), state.into(), Val::Int(from), Val::Int(limit)],
                )?;
                items.extend(rows.into_iter().map(item_from_row));
            }
            items.sort_by(|a: &CareItem, b: &CareItem| (a.created, &a.id).cmp(&(b.created, &b.id)));
            items.truncate(usize::try_from(limit).unwrap_or(0));
            Ok(items)
        })
    }

    pub fn care_item(&self, id: &str) -> Result<Option<CareItem>, StoreError> {
        self.db().read(|c| {
            Ok(c.query_one(
                &format!("SELECT {ITEM_COLS} FROM care_item WHERE id = ?"),
                &[id.into()],
            )?
            .map(item_from_row))
        })
    }

    /// Whether an institution takes part in a flow about a patient (it may then
    /// see the patient's record: a referred patient arrives registered).
    pub fn care_shares_patient(&self, patient: &str, inst: &str) -> Result<bool, StoreError> {
        self.db().read(|c| {
            Ok(c.query_one(
                "SELECT 1 FROM care_item WHERE patient = ? AND (perf_inst = ? OR req_inst = ?) LIMIT 1",
                &[patient.into(), inst.into(), inst.into()],
            )?
            .is_some())
        })
    }

    /// Notifications of an institution, newest first.
    pub fn care_notices(
        &self,
        inst: &str,
        unread_only: bool,
        limit: i64,
    ) -> Result<Vec<Notice>, StoreError> {
        let filter = if unread_only {
            " AND read_at IS NULL"
        } else {
            ""
        };
        self.db().read(|c| {
            let rows = c.query(
                &format!("SELECT seq, inst, practitioner, kind, item, text, at, read_at FROM care_notice WHERE inst = ?{filter} ORDER BY seq DESC LIMIT ?"),
                &[inst.into(), Val::Int(limit)],
            )?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut it = r.into_iter();
                    let mut s = || it.next().unwrap_or(Val::Null);
                    Notice {
                        seq: s().as_int().unwrap_or(0),
                        inst: s().into_string().unwrap_or_default(),
                        practitioner: s().into_string(),
                        kind: s().into_string().unwrap_or_default(),
                        item: s().into_string(),
                        text: s().into_string().unwrap_or_default(),
                        at: s().into_string().unwrap_or_default(),
                        read_at: s().into_string(),
                    }
                })
                .collect())
        })
    }

    pub fn care_notice_read(&self, inst: &str, seq: i64) -> Result<bool, StoreError> {
        let now = crate::now_string();
        self.db().write(|tx| {
            Ok(tx.exec(
                "UPDATE care_notice SET read_at = ? WHERE seq = ? AND inst = ? AND read_at IS NULL",
                &[now.as_str().into(), Val::Int(seq), inst.into()],
            )? == 1)
        })
    }

    /// Escalates every awaited flow whose deadline passed before `now`: the Task
    /// gets the `escalated` extension (a new version, audited) and the awaited
    /// institution and the community's lead hospital are notified.
    pub fn care_escalate(&self, now: &str) -> Result<usize, StoreError> {
        let Some(now_s) = epoch(now) else {
            return Err(StoreError::Invalid("时间格式错误".into()));
        };
        let due: Vec<String> = self.db().read(|c| {
            Ok(c.query(
                "SELECT id FROM care_item WHERE due IS NOT NULL AND escalated IS NULL AND done IS NULL AND due < ? ORDER BY due LIMIT 500",
                &[Val::Int(now_s)],
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next().and_then(Val::into_string))
            .collect())
        })?;
        let actor = Actor::system("escalation");
        let mut n = 0;
        for id in due {
            let Some(cur) = self.read("Task", &id)? else {
                continue;
            };
            let Ok(mut body) = serde_json::from_str::<Value>(&cur.body) else {
                continue;
            };
            let Ok(Some(v)) = task::read(&body) else {
                continue;
            };
            if v.escalated.is_some() || !v.flow.awaits_response(&v.state) {
                continue;
            }
            task::set_escalated(&mut body, now);
            let doc = derived_doc("Task", &id, body)?;
            match self.put(
                &actor,
                doc,
                Precondition::IfMatch(cur.version),
                Some("超时未响应,自动升级"),
            ) {
                Ok(_) => {}
                // Answered meanwhile: nothing to escalate.
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(e) => return Err(e),
            }
            if let Some(comm) = v
                .owner
                .as_deref()
                .map(|o| self.db().read(|c| comm_of(c, Some(o))))
                .transpose()?
                .flatten()
                && let Some(lead) = self.db().read(|c| {
                    Ok(c.query_one(
                        "SELECT id FROM org_tree WHERE comm = ? AND lead = 1 ORDER BY id LIMIT 1",
                        &[comm.as_str().into()],
                    )?
                    .and_then(|r| r.into_iter().next())
                    .and_then(Val::into_string))
                })?
                && Some(lead.as_str()) != v.owner.as_deref()
            {
                let text = format!(
                    "【督办】{} {id} 超过响应时限未处理(接收机构 {})",
                    v.flow.label(),
                    v.owner.as_deref().unwrap_or("")
                );
                let at = now.to_string();
                self.db()
                    .write(|tx| notice(tx, &lead, None, "escalation", &id, &text, &at))?;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Median and 90th percentile turnaround (order to report, in minutes) per
    /// centre and item, for exams completed in [since, until).
    pub fn care_turnaround(
        &self,
        kind: &str,
        since: i64,
        until: i64,
        scope: &Scope,
    ) -> Result<Vec<Turnaround>, StoreError> {
        let (filter, mut params) = match scope {
            Scope::County => (String::new(), vec![]),
            Scope::Community(c) => (
                " AND (perf_comm = ? OR req_comm = ?)".to_string(),
                vec![Val::from(c.as_str()), Val::from(c.as_str())],
            ),
            Scope::Institution(i) => (
                " AND (perf_inst = ? OR req_inst = ?)".to_string(),
                vec![Val::from(i.as_str()), Val::from(i.as_str())],
            ),
        };
        let mut p = vec![Val::from(kind), Val::Int(since), Val::Int(until)];
        p.append(&mut params);
        let rows = self.db().read(|c| {
            c.query(
                &format!("SELECT perf_inst, item, done - created, escalated FROM care_item WHERE kind = ? AND done >= ? AND done < ? AND state IN ('reported', 'completed', 'acknowledged', 'closed'){filter}"),
                &p,
            )
        })?;
        let mut groups: std::collections::BTreeMap<(String, String), (Vec<i64>, usize)> =
            Default::default();
        for r in rows {
            let mut it = r.into_iter();
            let inst = it.next().and_then(Val::into_string).unwrap_or_default();
            let item = it.next().and_then(Val::into_string).unwrap_or_default();
            let secs = it.next().and_then(|v| v.as_int()).unwrap_or(0);
            let late = it.next().and_then(|v| v.as_int()).is_some();
            let g = groups.entry((inst, item)).or_default();
            g.0.push(secs);
            g.1 += late as usize;
        }
        Ok(groups
            .into_iter()
            .map(|((inst, item), (mut secs, late))| {
                secs.sort_unstable();
                let pct =
                    |p: f64| secs[((secs.len() - 1) as f64 * p).round() as usize] as f64 / 60.0;
                Turnaround {
                    inst,
                    item,
                    n: secs.len(),
                    median_min: pct(0.5),
                    p90_min: pct(0.9),
                    late,
                }
            })
            .collect())
    }

    /// A still-valid recognised result of `item` for the patient (any of the
    /// person's records), as the ordering clinician is shown it.
    pub fn recognised_result(
        &self,
        patient: &str,
        item: &str,
        req_org: &str,
        now: &str,
    ) -> Result<Option<PriorResult>, StoreError> {
        let rules = self.care_rules();
        self.db()
            .read(|c| valid_result(c, &rules, patient, item, req_org, now))
    }

    /// The clinician took the valid result instead of ordering again (互认).
    pub fn recognise_result(
        &self,
        actor: &Actor,
        patient: &str,
        item: &str,
        report: &str,
    ) -> Result<(), StoreError> {
        let inst = actor
            .institution
            .clone()
            .ok_or_else(|| StoreError::Forbidden("只有医疗机构的人员可以记录结果互认".into()))?;
        let fee = exams::item(item)
            .ok_or_else(|| StoreError::Invalid(format!("检查项目“{item}”不在目录中")))?
            .fee_fen;
        let now = crate::now_string();
        let prior = self.recognised_result(patient, item, &inst, &now)?;
        if prior.as_ref().map(|p| p.report.as_str()) != Some(report) {
            return Err(StoreError::Conflict(format!(
                "报告 {report} 不是该患者“{item}”当前有效的互认结果"
            )));
        }
        self.db().write(|tx| {
            tx.exec(
                "INSERT INTO recognition_log (at, inst, actor, patient, item, outcome, prior_report, fee_fen) VALUES (?, ?, ?, ?, ?, 'recognised', ?, ?)",
                &[now.as_str().into(), inst.as_str().into(), actor.user.as_str().into(), patient.into(), item.into(), report.into(), Val::Int(fee)],
            )?;
            crate::AuditRow::by(actor, &now, "recognise").on("DiagnosticReport", report).append(tx)
        })
    }

    /// Recognised vs repeated exams and the money recognition saved, per institution.
    pub fn recognition_stats(
        &self,
        since: &str,
        scope: &Scope,
    ) -> Result<Vec<RecognitionStats>, StoreError> {
        let rows = self.db().read(|c| {
            c.query(
                "SELECT l.inst, l.outcome, count(*), sum(l.fee_fen) FROM recognition_log l WHERE l.at >= ? GROUP BY l.inst, l.outcome ORDER BY l.inst",
                &[since.into()],
            )
        })?;
        let mut out: Vec<RecognitionStats> = vec![];
        for r in rows {
            let mut it = r.into_iter();
            let inst = it.next().and_then(Val::into_string).unwrap_or_default();
            let outcome = it.next().and_then(Val::into_string).unwrap_or_default();
            let n = it.next().and_then(|v| v.as_int()).unwrap_or(0);
            let fee = it.next().and_then(|v| v.as_int()).unwrap_or(0);
            let visible = match scope {
                Scope::County => true,
                Scope::Institution(i) => *i == inst,
                Scope::Community(c) => {
                    self.db().read(|tx| comm_of(tx, Some(&inst)))?.as_deref() == Some(c)
                }
            };
            if !visible {
                continue;
            }
            if out.last().is_none_or(|s| s.inst != inst) {
                out.push(RecognitionStats {
                    inst: inst.clone(),
                    ..Default::default()
                });
            }
            let s = out.last_mut().expect("pushed");
            if outcome == "recognised" {
                s.recognised += n;
                s.saved_fen += fee;
            } else {
                s.repeated += n;
            }
        }
        Ok(out)
    }
}
