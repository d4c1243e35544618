//! The Task that tracks a flow: reading its facts and moving it to a new state.

use crate::codes::*;
use crate::{CareError, Flow, state_label};
use serde_json::{Value, json};
use yigong_fhir::extract::parse_reference;

/// What the store and the pages need to know about a Task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub flow: Flow,
    pub state: String,
    pub priority: String,
    /// Organization ids.
    pub requester: Option<String>,
    pub owner: Option<String>,
    pub patient: Option<String>,
    /// `Type/id` of what the Task is about (a ServiceRequest or DiagnosticReport).
    pub focus: Option<String>,
    pub deadline: Option<String>,
    pub escalated: Option<String>,
    pub reason: Option<String>,
    pub authored: Option<String>,
    /// Practitioner id of the expert who took a consultation, or the clinician
    /// to be told of a critical value.
    pub assignee: Option<String>,
}

fn reference<'a>(v: &'a Value, key: &str) -> Option<(&'a str, &'a str)> {
    parse_reference(v.get(key)?.get("reference")?.as_str()?)
}

fn org_of(v: &Value, key: &str) -> Option<String> {
    reference(v, key)
        .filter(|(t, _)| *t == "Organization")
        .map(|(_, id)| id.to_string())
}

fn ext<'a>(v: &'a Value, url: &str) -> Option<&'a Value> {
    v.get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(url))
}

fn coded<'a>(v: Option<&'a Value>, system: &str) -> Option<&'a str> {
    v?.get("coding")?
        .as_array()?
        .iter()
        .find(|c| c.get("system").and_then(Value::as_str) == Some(system))?
        .get("code")?
        .as_str()
}

/// The flow a Task tracks, if it is one of ours.
pub fn flow_of(task: &Value) -> Option<Flow> {
    coded(task.get("code"), CS_FLOW).and_then(Flow::from_code)
}

/// Reads a Task of ours; `Ok(None)` for a Task that tracks no flow of ours.
pub fn read(task: &Value) -> Result<Option<TaskView>, CareError> {
    let Some(code) = coded(task.get("code"), CS_FLOW) else {
        return Ok(None);
    };
    let flow = Flow::from_code(code)
        .ok_or_else(|| CareError::invalid("unknown-flow", format!("未知的流程类型“{code}”")))?;
    let state = coded(task.get("businessStatus"), CS_FLOW_STATE).ok_or_else(|| {
        CareError::invalid(
            "missing-state",
            format!(
                "{}任务缺少业务状态(Task.businessStatus,代码系统 {CS_FLOW_STATE})",
                flow.label()
            ),
        )
    })?;
    if !flow.is_state(state) {
        return Err(CareError::invalid(
            "unknown-state",
            format!("{}没有状态“{state}”", flow.label()),
        ));
    }
    let status = task.get("status").and_then(Value::as_str).unwrap_or("");
    if status != flow.task_status(state) {
        return Err(CareError::invalid(
            "status-mismatch",
            format!(
                "Task.status 应为“{}”以对应业务状态“{}”,收到“{status}”",
                flow.task_status(state),
                state_label(state)
            ),
        ));
    }
    let requester = org_of(task, "requester");
    let owner = org_of(task, "owner");
    if requester.is_none() || owner.is_none() {
        return Err(CareError::invalid(
            "missing-parties",
            format!(
                "{}任务必须以机构(Organization)填写 requester 与 owner",
                flow.label()
            ),
        ));
    }
    let priority = task
        .get("priority")
        .and_then(Value::as_str)
        .unwrap_or("routine");
    if !matches!(priority, "routine" | "urgent" | "asap" | "stat") {
        return Err(CareError::invalid(
            "bad-priority",
            format!("优先级“{priority}”无效,应为 routine/urgent/asap/stat"),
        ));
    }
    if state == "rejected" && reason(task).is_none() {
        return Err(CareError::invalid(
            "reason-required",
            "拒绝时必须填写理由(Task.statusReason)",
        ));
    }
    Ok(Some(TaskView {
        flow,
        state: state.to_string(),
        priority: priority.to_string(),
        requester,
        owner,
        patient: reference(task, "for")
            .filter(|(t, _)| *t == "Patient")
            .map(|(_, id)| id.to_string()),
        focus: task
            .get("focus")
            .and_then(|f| f.get("reference"))
            .and_then(Value::as_str)
            .map(str::to_string),
        deadline: task
            .get("restriction")
            .and_then(|r| r.get("period"))
            .and_then(|p| p.get("end"))
            .and_then(Value::as_str)
            .map(str::to_string),
        escalated: ext(task, EXT_ESCALATED)
            .and_then(|e| e.get("valueDateTime"))
            .and_then(Value::as_str)
            .map(str::to_string),
        reason: reason(task),
        authored: task
            .get("authoredOn")
            .and_then(Value::as_str)
            .map(str::to_string),
        assignee: ext(task, EXT_ASSIGNEE)
            .and_then(|e| e.get("valueReference"))
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)
            .and_then(parse_reference)
            .map(|(_, id)| id.to_string()),
    }))
}

fn reason(task: &Value) -> Option<String> {
    let r = task.get("statusReason")?;
    r.get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
}

/// A new Task for a flow, in its first state.
#[allow(clippy::too_many_arguments)]
pub fn new_task(
    flow: Flow,
    id: &str,
    focus: &str,
    patient: &str,
    requester_org: &str,
    owner_org: &str,
    priority: &str,
    state: &str,
    at: &str,
) -> Value {
    let mut t = json!({
        "resourceType": "Task",
        "id": id,
        "status": flow.task_status(state),
        "businessStatus": state_concept(state),
        "intent": "order",
        "priority": priority,
        "code": {"coding": [{"system": CS_FLOW, "code": flow.code(), "display": flow.label()}]},
        "focus": {"reference": focus},
        "for": {"reference": format!("Patient/{patient}")},
        "authoredOn": at,
        "lastModified": at,
        "requester": {"reference": format!("Organization/{requester_org}")},
        "owner": {"reference": format!("Organization/{owner_org}")},
    });
    record_step(&mut t, state, at, None);
    t
}

fn state_concept(state: &str) -> Value {
    json!({"coding": [{"system": CS_FLOW_STATE, "code": state, "display": state_label(state)}], "text": state_label(state)})
}

fn extensions(task: &mut Value) -> &mut Vec<Value> {
    let obj = task.as_object_mut().expect("a Task is an object");
    let e = obj.entry("extension").or_insert_with(|| json!([]));
    if !e.is_array() {
        *e = json!([]);
    }
    e.as_array_mut().expect("array")
}

/// Records a step (state, time, actor) without changing the Task's status: for a
/// Task whose status already says the state (the server records steps a client
/// did not).
pub fn record_step(task: &mut Value, state: &str, at: &str, by: Option<&str>) {
    let mut parts = vec![
        json!({"url": "state", "valueCode": state}),
        json!({"url": "at", "valueDateTime": at}),
    ];
    if let Some(by) = by {
        parts.push(json!({"url": "by", "valueString": by}));
    }
    extensions(task).push(json!({"url": EXT_STEP, "extension": parts}));
}

/// Moves a Task to `to` (no legality check: see [`Flow::step`]): sets status,
/// businessStatus and lastModified and records the step with its time and actor.
pub fn set_state(task: &mut Value, flow: Flow, to: &str, at: &str, by: Option<&str>) {
    task["status"] = json!(flow.task_status(to));
    task["businessStatus"] = state_concept(to);
    task["lastModified"] = json!(at);
    record_step(task, to, at, by);
}

/// The practitioner a Task names as its recipient (the ordering clinician of a
/// critical value).
pub fn recipient(task: &Value) -> Option<String> {
    task.get("restriction")?
        .get("recipient")?
        .get(0)?
        .get("reference")?
        .as_str()?
        .strip_prefix("Practitioner/")
        .map(str::to_string)
}

/// The recorded steps (state, at), oldest first.
pub fn steps(task: &Value) -> Vec<(String, String)> {
    task.get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| e.get("url").and_then(Value::as_str) == Some(EXT_STEP))
        .filter_map(|e| {
            let parts = e.get("extension")?.as_array()?;
            let get = |k: &str, f: &str| {
                parts
                    .iter()
                    .find(|p| p.get("url").and_then(Value::as_str) == Some(k))
                    .and_then(|p| p.get(f))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            Some((get("state", "valueCode")?, get("at", "valueDateTime")?))
        })
        .collect()
}

pub fn set_deadline(task: &mut Value, end: &str) {
    if !task.get("restriction").is_some_and(Value::is_object) {
        task["restriction"] = json!({});
    }
    task["restriction"]["period"] = json!({"end": end});
}

pub fn clear_deadline(task: &mut Value) {
    if let Some(r) = task.get_mut("restriction").and_then(Value::as_object_mut) {
        r.remove("period");
        if r.is_empty() {
            task.as_object_mut().map(|o| o.remove("restriction"));
        }
    }
}

pub fn set_reason(task: &mut Value, text: &str) {
    task["statusReason"] = json!({"text": text});
}

pub fn set_escalated(task: &mut Value, at: &str) {
    extensions(task).push(json!({"url": EXT_ESCALATED, "valueDateTime": at}));
}

pub fn set_assignee(task: &mut Value, practitioner: &str) {
    let exts = extensions(task);
    exts.retain(|e| e.get("url").and_then(Value::as_str) != Some(EXT_ASSIGNEE));
    exts.push(json!({"url": EXT_ASSIGNEE, "valueReference": {"reference": format!("Practitioner/{practitioner}")}}));
}

/// Adds a Task.output of one of our output types (`value` is e.g.
/// `("valueString", "…")`).
pub fn add_output(task: &mut Value, code: &str, display: &str, value: (&str, Value)) {
    let obj = task.as_object_mut().expect("object");
    let outs = obj.entry("output").or_insert_with(|| json!([]));
    let mut o = json!({"type": {"coding": [{"system": CS_TASK_OUTPUT, "code": code, "display": display}], "text": display}});
    o[value.0] = value.1;
    if let Some(a) = outs.as_array_mut() {
        a.retain(|x| coded(x.get("type"), CS_TASK_OUTPUT) != Some(code));
        a.push(o);
    }
}

/// The id of the Task that tracks a ServiceRequest.
pub fn task_id(request_id: &str) -> String {
    format!("{request_id}-task")
}

/// The id of the acknowledgement Task of a report's critical value.
pub fn ack_task_id(report_id: &str) -> String {
    format!("{report_id}-ack")
}

/// The Task a critical value raises: owned by the ordering institution, naming
/// the ordering clinician, due `minutes` after the report was issued.
pub fn critical_ack(
    report_id: &str,
    patient: &str,
    centre_org: &str,
    ordering_org: &str,
    clinician: Option<&str>,
    issued: &str,
    minutes: i64,
) -> Value {
    let mut t = new_task(
        Flow::CriticalAck,
        &ack_task_id(report_id),
        &format!("DiagnosticReport/{report_id}"),
        patient,
        centre_org,
        ordering_org,
        "stat",
        "requested",
        issued,
    );
    if let Some(end) = crate::plus_minutes(issued, minutes) {
        set_deadline(&mut t, &end);
    }
    if let Some(c) = clinician {
        t["restriction"]["recipient"] = json!([{"reference": format!("Practitioner/{c}")}]);
    }
    t
}

/// Completes an exam Task with its report (the server does this when the
/// report is signed).
pub fn mark_reported(task: &mut Value, report_id: &str, at: &str) {
    set_state(task, Flow::Exam, "reported", at, None);
    clear_deadline(task);
    add_output(
        task,
        "report",
        "报告",
        (
            "valueReference",
            json!({"reference": format!("DiagnosticReport/{report_id}")}),
        ),
    );
}

/// The value of a Task.output of one of our types.
pub fn output<'a>(task: &'a Value, code: &str) -> Option<&'a Value> {
    task.get("output")?
        .as_array()?
        .iter()
        .find(|o| coded(o.get("type"), CS_TASK_OUTPUT) == Some(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A routine Task from a to b about p1, requested at the start of November.
    fn fixture(flow: Flow, id: &str) -> Value {
        new_task(
            flow,
            id,
            "ServiceRequest/s1",
            "p1",
            "a",
            "b",
            "routine",
            "requested",
            "2026-11-01T00:00:00Z",
        )
    }

    #[test]
    fn a_new_task_reads_back() {
        let t = new_task(
            Flow::Referral,
            "t1",
            "ServiceRequest/s1",
            "p1",
            "town",
            "county",
            "stat",
            "requested",
            "2026-11-01T00:00:00Z",
        );
        let v = read(&t).unwrap().unwrap();
        assert_eq!(v.flow, Flow::Referral);
        assert_eq!(v.state, "requested");
        assert_eq!(v.requester.as_deref(), Some("town"));
        assert_eq!(v.owner.as_deref(), Some("county"));
        assert_eq!(v.patient.as_deref(), Some("p1"));
        assert_eq!(v.priority, "stat");
    }

    #[test]
    fn moving_records_each_step() {
        let mut t = fixture(Flow::Referral, "t1");
        set_state(
            &mut t,
            Flow::Referral,
            "scheduled",
            "2026-11-01T01:00:00Z",
            Some("u"),
        );
        assert_eq!(t["status"], "ready");
        assert_eq!(read(&t).unwrap().unwrap().state, "scheduled");
        assert_eq!(steps(&t).len(), 2);
        assert_eq!(
            steps(&t)[1],
            ("scheduled".into(), "2026-11-01T01:00:00Z".into())
        );
    }

    #[test]
    fn inconsistent_tasks_are_refused() {
        let mut t = fixture(Flow::Exam, "t1");
        t["status"] = json!("completed");
        assert_eq!(read(&t).unwrap_err().code, "status-mismatch");
        t["status"] = json!("requested");
        t["priority"] = json!("whenever");
        assert_eq!(read(&t).unwrap_err().code, "bad-priority");
        let plain = json!({"resourceType": "Task", "status": "draft"});
        assert_eq!(read(&plain).unwrap(), None);
        let mut r = fixture(Flow::Referral, "t2");
        set_state(
            &mut r,
            Flow::Referral,
            "rejected",
            "2026-11-01T00:00:00Z",
            None,
        );
        assert_eq!(read(&r).unwrap_err().code, "reason-required");
        set_reason(&mut r, "床位已满");
        assert!(read(&r).is_ok());
    }
}
