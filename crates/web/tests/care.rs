//! Care across the community through the FHIR API: referral, shared diagnostic
//! centres with critical values, mutual recognition, consultation, appointments,
//! and the refusals and races the issue names.

mod common;

use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use yigong_care::requests::{self, Parties, ResultValue};
use yigong_care::{Flow, exams, slots, task};
use yigong_store::{Role, Scope};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn lead(mut o: Value) -> Value {
    o["extension"] = json!([{ "url": "https://yigong.org.cn/fhir/StructureDefinition/lead-hospital", "valueBoolean": true }]);
    o
}

/// County → two communities, each with a lead hospital and a township centre;
/// users at each institution; a senior expert at the first lead hospital.
fn seed(s: &TestServer) {
    let users = [
        ("admin", Role::SystemAdmin, Scope::County, None),
        (
            "tdoc",
            Role::Clinician,
            Scope::Institution("t1".into()),
            Some("t1"),
        ),
        (
            "hdoc",
            Role::Clinician,
            Scope::Institution("h1".into()),
            Some("h1"),
        ),
        (
            "hdoc2",
            Role::Clinician,
            Scope::Institution("h1".into()),
            Some("h1"),
        ),
        (
            "t2doc",
            Role::Clinician,
            Scope::Institution("t2".into()),
            Some("t2"),
        ),
    ];
    add_users(s, users);
    let admin = s.token("admin");
    let mut entries: Vec<Value> = [
        org("county", "测试县", "county", None, None),
        org("com1", "第一医共体", "community", None, Some("county")),
        org("com2", "第二医共体", "community", None, Some("county")),
        lead(org(
            "h1",
            "县人民医院",
            "general-hospital",
            Some("county"),
            Some("com1"),
        )),
        org(
            "t1",
            "甲镇卫生院",
            "township-centre",
            Some("township"),
            Some("com1"),
        ),
        lead(org(
            "h2",
            "县中医医院",
            "tcm-hospital",
            Some("county"),
            Some("com2"),
        )),
        org(
            "t2",
            "乙镇卫生院",
            "township-centre",
            Some("township"),
            Some("com2"),
        ),
    ]
    .into_iter()
    .collect();
    entries.push(json!({
        "resourceType": "Practitioner", "id": "expert1",
        "name": [{ "text": "李主任", "family": "李", "given": ["主任"] }],
        "qualification": [{ "code": { "coding": [{ "system": "https://yigong.org.cn/fhir/CodeSystem/professional-title", "code": "chief" }] } }]
    }));
    entries.push(json!({
        "resourceType": "Practitioner", "id": "junior1",
        "name": [{ "text": "赵医生", "family": "赵", "given": ["医生"] }],
        "qualification": [{ "code": { "coding": [{ "system": "https://yigong.org.cn/fhir/CodeSystem/professional-title", "code": "resident" }] } }]
    }));
    for p in ["expert1", "junior1"] {
        entries.push(json!({
            "resourceType": "PractitionerRole", "id": format!("{p}-h1"),
            "practitioner": { "reference": format!("Practitioner/{p}") },
            "organization": { "reference": "Organization/h1" }
        }));
    }
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|o| {
            let url = format!(
                "{}/{}",
                o["resourceType"].as_str().unwrap(),
                o["id"].as_str().unwrap()
            );
            json!({ "resource": o, "request": { "method": "PUT", "url": url } })
        })
        .collect();
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
    let r = s.post(&admin, "/fhir", &bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    let tdoc = s.token("tdoc");
    let r = s.put(
        &tdoc,
        "/fhir/Patient/pt1",
        &{
            let mut p = patient("t1");
            p["id"] = json!("pt1");
            p
        }
        .to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// One token per user per server (issuing one writes an audit row).
fn token(s: &TestServer, user: &str) -> String {
    static TOKENS: std::sync::Mutex<Vec<(std::net::SocketAddr, String, String)>> =
        std::sync::Mutex::new(Vec::new());
    let mut t = TOKENS.lock().unwrap();
    if let Some((_, _, tok)) = t.iter().find(|(a, u, _)| *a == s.addr && u == user) {
        return tok.clone();
    }
    let tok = s.token(user);
    t.push((s.addr, user.to_string(), tok.clone()));
    tok
}

fn put_entry(v: &Value) -> Value {
    let url = format!(
        "{}/{}",
        v["resourceType"].as_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    json!({ "resource": v, "request": { "method": "PUT", "url": url } })
}

fn bundle(s: &TestServer, token: &str, resources: &[Value]) -> Resp {
    let b = json!({ "resourceType": "Bundle", "type": "transaction",
        "entry": resources.iter().map(put_entry).collect::<Vec<_>>() });
    s.post(token, "/fhir", &b.to_string())
}

fn parties<'a>(
    id: &'a str,
    from: &'a str,
    to: &'a str,
    priority: &'a str,
    at: &'a str,
) -> Parties<'a> {
    Parties {
        id,
        patient: "pt1",
        requester_org: from,
        requester: None,
        performer_org: to,
        priority,
        at,
    }
}

/// The Task of a request `id` about pt1, in its first state.
fn flow_task(flow: Flow, id: &str, from: &str, to: &str, priority: &str, at: &str) -> Value {
    task::new_task(
        flow,
        &task::task_id(id),
        &format!("ServiceRequest/{id}"),
        "pt1",
        from,
        to,
        priority,
        "requested",
        at,
    )
}

/// An up-referral of pt1 from t1 to a hospital outside the county, filed (转外备案).
fn out_of_county_referral(id: &str, at: &str) -> Value {
    let mut sr = requests::referral(
        &parties(id, "t1", "h1", "routine", at),
        "up",
        "C34.9",
        "肺部占位待查",
        &[],
    );
    requests::file_out_of_county(&mut sr, "四川大学华西医院", "LX-2026-0042", "县医保局 张三");
    sr
}

/// Sends a referral (ServiceRequest + Task in one transaction).
fn refer(s: &TestServer, token: &str, id: &str, from: &str, to: &str, priority: &str) -> Resp {
    let at = now();
    let sr = requests::referral(
        &parties(id, from, to, priority, &at),
        "up",
        "I21.9",
        "急性心肌梗死",
        &[],
    );
    let t = flow_task(Flow::Referral, id, from, to, priority, &at);
    bundle(s, token, &[sr, t])
}

fn get_task(s: &TestServer, token: &str, id: &str) -> (Value, String) {
    let r = s.get(token, &format!("/fhir/Task/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    let etag = r.header("ETag").unwrap().to_string();
    (r.json(), etag)
}

/// Moves a Task as a client would: GET, change state, PUT with If-Match.
fn step(s: &TestServer, token: &str, id: &str, to: &str, edit: impl FnOnce(&mut Value)) -> Resp {
    let (mut t, etag) = get_task(s, token, id);
    let flow = task::flow_of(&t).unwrap();
    t["status"] = json!(flow.task_status(to));
    t["businessStatus"] =
        json!({ "coding": [{ "system": yigong_care::codes::CS_FLOW_STATE, "code": to }] });
    edit(&mut t);
    s.put(
        token,
        &format!("/fhir/Task/{id}"),
        &t.to_string(),
        Some(&etag),
    )
}

#[test]
fn up_referral_on_the_green_channel_then_down_with_a_plan() {
    let s = TestServer::start();
    seed(&s);
    let (tdoc, hdoc) = (s.token("tdoc"), s.token("hdoc"));

    // Before any referral the lead hospital cannot see the township's patient.
    assert_eq!(s.get(&hdoc, "/fhir/Patient/pt1").status, 403);

    let r = refer(&s, &tdoc, "ref1", "t1", "h1", "stat");
    assert_eq!(r.status, 200, "{}", r.text);
    let (t, _) = get_task(&s, &hdoc, "ref1-task");
    // The server set the green-channel deadline (30 minutes) and recorded the step.
    assert!(t["restriction"]["period"]["end"].is_string(), "{t}");
    assert_eq!(task::steps(&t).len(), 1);
    let notices = s.store.care_notices("h1", true, 10).unwrap();
    assert!(
        notices.iter().any(|n| n.text.contains("绿色通道")),
        "{notices:?}"
    );

    // Register once: the receiving hospital now sees the patient.
    assert_eq!(s.get(&hdoc, "/fhir/Patient/pt1").status, 200);
    // The worklists of both sides.
    let r = s.get(
        &hdoc,
        "/fhir/Task?owner=Organization/h1&business-status=requested",
    );
    assert_eq!(
        r.json()["entry"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );

    // Only the receiving side may accept; an illegal step is a 409.
    assert_eq!(step(&s, &tdoc, "ref1-task", "accepted", |_| {}).status, 403);
    let r = step(&s, &hdoc, "ref1-task", "arrived", |_| {});
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("不能从"), "{}", r.text);
    let r = step(&s, &hdoc, "ref1-task", "accepted", |_| {});
    assert_eq!(r.status, 200, "{}", r.text);
    let r = step(&s, &hdoc, "ref1-task", "scheduled", |_| {});
    assert_eq!(r.status, 422, "scheduling needs a time: {}", r.text);
    let r = step(&s, &hdoc, "ref1-task", "scheduled", |t| {
        task::add_output(
            t,
            "scheduled-time",
            "就诊时间",
            ("valueDateTime", json!("2026-11-21T01:00:00Z")),
        );
    });
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        s.store
            .care_notices("t1", true, 10)
            .unwrap()
            .iter()
            .any(|n| n.text.contains("已预约"))
    );
    assert_eq!(step(&s, &hdoc, "ref1-task", "arrived", |_| {}).status, 200);
    // The patient arrives registered: the hospital records the admission on the same Patient.
    let mut enc = encounter("pt1", "h1");
    enc["period"]["start"] = json!(now());
    assert_eq!(
        s.post(&hdoc, "/fhir/Encounter", &enc.to_string()).status,
        201
    );
    assert_eq!(
        step(&s, &hdoc, "ref1-task", "completed", |_| {}).status,
        200
    );
    let (t, _) = get_task(&s, &tdoc, "ref1-task");
    let states: Vec<String> = task::steps(&t).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        states,
        ["requested", "accepted", "scheduled", "arrived", "completed"]
    );
    let item = s.store.care_item("ref1-task").unwrap().unwrap();
    assert!(item.responded.is_some() && item.done.is_some());

    // Down-referral: without a discharge summary and a plan it is refused.
    let at = now();
    let down = requests::referral(
        &parties("down1", "h1", "t1", "routine", &at),
        "down",
        "I21.9",
        "心梗恢复期",
        &[],
    );
    let down_task = flow_task(Flow::Referral, "down1", "h1", "t1", "routine", &at);
    let before = s.snapshot();
    let r = bundle(&s, &hdoc, &[down.clone(), down_task.clone()]);
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("出院小结"), "{}", r.text);
    assert_eq!(s.snapshot(), before);
    let summary = json!({ "resourceType": "DocumentReference", "id": "dsum1", "status": "current",
        "subject": { "reference": "Patient/pt1" },
        "extension": [{ "url": yigong_care::codes::EXT_RECORDED_AT, "valueReference": { "reference": "Organization/h1" } }],
        "content": [{ "attachment": { "contentType": "text/plain;charset=utf-8", "data": "5Ye66Zmi5bCP57uT" } }] });
    let plan = json!({ "resourceType": "CarePlan", "id": "plan1", "status": "active", "intent": "plan",
        "subject": { "reference": "Patient/pt1" },
        "extension": [{ "url": yigong_care::codes::EXT_RECORDED_AT, "valueReference": { "reference": "Organization/h1" } }],
        "description": "出院后每周随访血压,两周后复查心电图" });
    let down = requests::referral(
        &parties("down1", "h1", "t1", "routine", &at),
        "down",
        "I21.9",
        "心梗恢复期",
        &["DocumentReference/dsum1".into(), "CarePlan/plan1".into()],
    );
    let r = bundle(&s, &hdoc, &[summary, plan, down, down_task]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        step(&s, &tdoc, "down1-task", "accepted", |_| {}).status,
        200
    );
}

#[test]
fn two_users_accepting_the_same_referral_one_wins() {
    let s = Arc::new(TestServer::start());
    seed(&s);
    let tdoc = s.token("tdoc");
    assert_eq!(refer(&s, &tdoc, "ref2", "t1", "h1", "urgent").status, 200);
    let (t, etag) = get_task(&s, &tdoc, "ref2-task");
    let mut accepted = t.clone();
    accepted["status"] = json!("accepted");
    accepted["businessStatus"] =
        json!({ "coding": [{ "system": yigong_care::codes::CS_FLOW_STATE, "code": "accepted" }] });
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = ["hdoc", "hdoc2"]
        .into_iter()
        .map(|u| {
            let (s, body, etag, barrier) = (
                s.clone(),
                accepted.to_string(),
                etag.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                let token = s.token(u);
                barrier.wait();
                s.put(&token, "/fhir/Task/ref2-task", &body, Some(&etag))
                    .status
            })
        })
        .collect();
    let mut codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [200, 412]);
    let (t, _) = get_task(&s, &tdoc, "ref2-task");
    assert_eq!(task::steps(&t).len(), 2, "exactly one acceptance recorded");
}

#[test]
fn referrals_leave_the_community_only_with_a_filing() {
    let s = TestServer::start();
    seed(&s);
    let tdoc = s.token("tdoc");
    let before = s.snapshot();
    let r = refer(&s, &tdoc, "ref3", "t1", "h2", "routine");
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.text.contains("不在本医共体内") && r.text.contains("转外备案"),
        "{}",
        r.text
    );
    assert_eq!(s.snapshot(), before, "a refused referral changes nothing");

    // Out of county with its filing: recorded, tracked by the sender itself.
    let at = now();
    let sr = out_of_county_referral("ref4", &at);
    let t = flow_task(Flow::Referral, "ref4", "t1", "t1", "routine", &at);
    let r = bundle(&s, &tdoc, &[sr.clone(), t.clone()]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.store
            .care_item("ref4-task")
            .unwrap()
            .unwrap()
            .item
            .as_deref(),
        Some("out")
    );
    // Without the approval it is refused.
    let mut bare = requests::referral(
        &parties("ref5", "t1", "h1", "routine", &at),
        "up",
        "C34.9",
        "肺部占位待查",
        &[],
    );
    bare["performer"] = json!([{ "display": "四川大学华西医院" }]);
    let t5 = flow_task(Flow::Referral, "ref5", "t1", "t1", "routine", &at);
    let r = bundle(&s, &tdoc, &[bare, t5]);
    assert_eq!(r.status, 422, "{}", r.text);
}

/// Orders an exam (t1 → h1) and moves it to "received" at the centre.
fn order_and_receive(s: &TestServer, id: &str, item: &str, reason: Option<&str>) -> Resp {
    let (tdoc, hdoc) = (token(s, "tdoc"), token(s, "hdoc"));
    let at = now();
    let mut p = parties(id, "t1", "h1", "routine", &at);
    p.requester = Some("junior1");
    let sr = requests::exam_order(&p, exams::item(item).unwrap(), &format!("BC{id}"), reason);
    let t = flow_task(Flow::Exam, id, "t1", "h1", "routine", &at);
    let r = bundle(s, &tdoc, &[sr, t]);
    if r.status != 200 {
        return r;
    }
    let tid = task::task_id(id);
    assert_eq!(step(s, &tdoc, &tid, "collected", |_| {}).status, 200);
    let r = step(s, &hdoc, &tid, "received", |_| {});
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

fn ecg_report(id: &str, order: &str, hr: f64, finding: &str, critical: bool) -> Vec<Value> {
    let item = exams::item("ECG12").unwrap();
    let at = now();
    let o1 = requests::observation(
        &format!("{id}-hr"),
        "pt1",
        order,
        item,
        Some(&item.analytes[0]),
        &ResultValue::Number(hr),
        "h1",
        &at,
    );
    let o2 = requests::observation(
        &format!("{id}-f"),
        "pt1",
        order,
        item,
        None,
        &ResultValue::Text {
            text: finding.into(),
            critical,
        },
        "h1",
        &at,
    );
    let r = requests::report(
        id,
        "pt1",
        order,
        item,
        "h1",
        Some("expert1"),
        &[format!("{id}-hr"), format!("{id}-f")],
        finding,
        &at,
    );
    vec![o1, o2, r]
}

#[test]
fn ecg_read_centrally_raises_a_critical_value_that_the_orderer_acknowledges() {
    let s = TestServer::start();
    seed(&s);
    let (tdoc, hdoc, t2doc) = (s.token("tdoc"), s.token("hdoc"), s.token("t2doc"));
    order_and_receive(&s, "ecg1", "ECG12", None);
    // The centre's reading worklist.
    let r = s.get(
        &hdoc,
        "/fhir/Task?owner=Organization/h1&business-status=received",
    );
    assert_eq!(
        r.json()["entry"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    // A report from the ordering side is refused.
    let r = bundle(
        &s,
        &tdoc,
        &ecg_report("rep0", "ecg1", 38.0, "三度房室传导阻滞", true),
    );
    assert_eq!(r.status, 403, "{}", r.text);

    let r = bundle(
        &s,
        &hdoc,
        &ecg_report("rep1", "ecg1", 38.0, "三度房室传导阻滞", true),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // The order is complete, pointing at its report; the critical value is raised.
    let (t, _) = get_task(&s, &tdoc, "ecg1-task");
    assert_eq!(t["businessStatus"]["coding"][0]["code"], "reported");
    assert_eq!(
        task::output(&t, "report").unwrap()["valueReference"]["reference"],
        "DiagnosticReport/rep1"
    );
    let (ack, _) = get_task(&s, &tdoc, "rep1-ack");
    assert_eq!(ack["owner"]["reference"], "Organization/t1");
    assert_eq!(
        ack["restriction"]["recipient"][0]["reference"],
        "Practitioner/junior1"
    );
    let n = s.store.care_notices("t1", true, 10).unwrap();
    assert!(
        n.iter()
            .any(|n| n.text.contains("危急值") && n.practitioner.as_deref() == Some("junior1")),
        "{n:?}"
    );
    // The report reaches the patient's record at the ordering institution.
    let r = s.get(&tdoc, "/fhir/DiagnosticReport?patient=pt1");
    assert_eq!(r.json()["entry"].as_array().map(Vec::len), Some(1));

    // Only the ordering institution acknowledges: the centre and another township cannot.
    let before = s.snapshot();
    assert_eq!(
        step(&s, &hdoc, "rep1-ack", "acknowledged", |_| {}).status,
        403
    );
    let (mut t, etag) = get_task(&s, &tdoc, "rep1-ack");
    task::set_state(&mut t, Flow::CriticalAck, "acknowledged", &now(), None);
    let r = s.put(&t2doc, "/fhir/Task/rep1-ack", &t.to_string(), Some(&etag));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(s.snapshot(), before);
    let r = step(&s, &tdoc, "rep1-ack", "acknowledged", |_| {});
    assert_eq!(r.status, 200, "{}", r.text);
    let item = s.store.care_item("rep1-ack").unwrap().unwrap();
    assert_eq!(item.state, "acknowledged");
    let tat = s
        .store
        .care_turnaround("exam", 0, i64::MAX, &Scope::County)
        .unwrap();
    assert_eq!(tat.len(), 1);
    assert_eq!(
        (tat[0].inst.as_str(), tat[0].item.as_str(), tat[0].n),
        ("h1", "ECG12", 1)
    );
}

#[test]
fn a_report_for_a_cancelled_order_is_refused() {
    let s = TestServer::start();
    seed(&s);
    let (tdoc, hdoc) = (s.token("tdoc"), s.token("hdoc"));
    order_and_receive(&s, "ecg2", "ECG12", None);
    assert_eq!(
        step(&s, &hdoc, "ecg2-task", "cancelled", |t| task::set_reason(
            t,
            "导联脱落,图形无法判读"
        ))
        .status,
        200
    );
    let before = s.snapshot();
    let r = bundle(
        &s,
        &hdoc,
        &ecg_report("rep2", "ecg2", 72.0, "窦性心律", false),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("已取消"), "{}", r.text);
    assert_eq!(s.snapshot(), before);
    // A report cannot be forced through the Task either.
    let r = step(&s, &tdoc, "ecg2-task", "reported", |_| {});
    assert_eq!(r.status, 409, "{}", r.text);
}

#[test]
fn a_still_valid_result_is_offered_and_a_repeat_needs_a_reason() {
    let s = TestServer::start();
    seed(&s);
    let hdoc = token(&s, "hdoc");
    order_and_receive(&s, "ecg3", "ECG12", None);
    assert_eq!(
        bundle(
            &s,
            &hdoc,
            &ecg_report("rep3", "ecg3", 72.0, "窦性心律", false)
        )
        .status,
        200
    );

    let prior = s
        .store
        .recognised_result("pt1", "ECG12", "t1", &now())
        .unwrap()
        .unwrap();
    assert_eq!(prior.report, "rep3");
    // Only a report of the same item counts: the ECG offers nothing for a blood count.
    assert!(
        s.store
            .recognised_result("pt1", "CBC", "t1", &now())
            .unwrap()
            .is_none()
    );
    let before = s.snapshot();
    let r = order_and_receive(&s, "ecg4", "ECG12", None);
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.text.contains("互认") && r.text.contains("rep3"),
        "{}",
        r.text
    );
    assert_eq!(s.snapshot(), before);
    let r = order_and_receive(&s, "ecg5", "ECG12", Some("胸痛加重,需复查"));
    assert_eq!(r.status, 200, "{}", r.text);
    // Next time the clinician takes the offered result instead of ordering again.
    let tdoc_actor = yigong_store::Actor {
        user: "tdoc".into(),
        institution: Some("t1".into()),
        scope: Scope::Institution("t1".into()),
    };
    s.store
        .recognise_result(&tdoc_actor, "pt1", "ECG12", "rep3")
        .unwrap();
    assert!(
        s.store
            .recognise_result(&tdoc_actor, "pt1", "ECG12", "nope")
            .is_err()
    );
    let stats = s
        .store
        .recognition_stats("2000-01-01", &Scope::County)
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].recognised, stats[0].repeated, stats[0].saved_fen),
        (1, 1, 2_500)
    );
}

#[test]
fn remote_consultation_by_an_expert_of_the_pool() {
    let s = TestServer::start();
    seed(&s);
    let (tdoc, hdoc) = (s.token("tdoc"), s.token("hdoc"));
    let at = now();
    let sr = requests::consult(
        &parties("con1", "t1", "h1", "routine", &at),
        "患者反复胸闷,心电图ST段改变,请心内科会诊",
        &[],
    );
    let t = flow_task(Flow::Consult, "con1", "t1", "h1", "routine", &at);
    assert_eq!(bundle(&s, &tdoc, &[sr, t]).status, 200);
    assert_eq!(step(&s, &hdoc, "con1-task", "accepted", |_| {}).status, 422);
    let r = step(&s, &hdoc, "con1-task", "accepted", |t| {
        task::set_assignee(t, "junior1")
    });
    assert_eq!(
        r.status, 422,
        "a resident is not in the expert pool: {}",
        r.text
    );
    assert_eq!(
        step(&s, &hdoc, "con1-task", "accepted", |t| task::set_assignee(
            t, "expert1"
        ))
        .status,
        200
    );
    let r = step(&s, &hdoc, "con1-task", "answered", |t| {
        task::add_output(
            t,
            "opinion",
            "会诊意见",
            (
                "valueString",
                json!("考虑不稳定型心绞痛,建议上转行冠脉造影"),
            ),
        );
    });
    assert_eq!(r.status, 200, "{}", r.text);
    let r = step(&s, &tdoc, "con1-task", "closed", |t| {
        task::add_output(t, "rating", "评分", ("valueInteger", json!(9)))
    });
    assert_eq!(r.status, 422);
    let r = step(&s, &tdoc, "con1-task", "closed", |t| {
        task::add_output(t, "rating", "评分", ("valueInteger", json!(5)))
    });
    assert_eq!(r.status, 200, "{}", r.text);
    let item = s.store.care_item("con1-task").unwrap().unwrap();
    assert_eq!(item.assignee.as_deref(), Some("expert1"));
    assert!(item.responded.unwrap() >= item.created);
}

#[test]
fn unanswered_green_channel_referrals_escalate() {
    let s = TestServer::start();
    seed(&s);
    let tdoc = s.token("tdoc");
    assert_eq!(refer(&s, &tdoc, "ref6", "t1", "h1", "stat").status, 200);
    assert_eq!(s.store.care_escalate(&now()).unwrap(), 0, "not due yet");
    let later = (chrono::Utc::now() + chrono::Duration::minutes(31))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(s.store.care_escalate(&later).unwrap(), 1);
    assert_eq!(s.store.care_escalate(&later).unwrap(), 0, "escalated once");
    let (t, _) = get_task(&s, &tdoc, "ref6-task");
    assert!(t.to_string().contains("escalated"), "{t}");
    assert!(
        s.store
            .care_notices("h1", true, 10)
            .unwrap()
            .iter()
            .any(|n| n.text.contains("超过响应时限"))
    );
}

fn slot_fixture(s: &TestServer, held_until: Option<&str>) {
    let admin = s.token("admin");
    let start = (chrono::Utc::now() + chrono::Duration::days(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let end = (chrono::Utc::now() + chrono::Duration::days(3) + chrono::Duration::minutes(15))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let sch = slots::schedule("sch1", "expert1", "h1", "心内科专家门诊", "逢5坐诊");
    let mut sl = vec![sch];
    for i in 1..=3 {
        sl.push(slots::slot(
            &format!("slot{i}"),
            "sch1",
            &start,
            &end,
            if i == 1 { held_until } else { None },
        ));
    }
    let r = bundle(s, &admin, &sl);
    assert_eq!(r.status, 200, "{}", r.text);
}

fn book(s: &TestServer, token: &str, id: &str, slot: &str, referral: Option<&str>) -> Resp {
    let r = s.get(token, &format!("/fhir/Slot/{slot}"));
    let sv = slots::read_slot(&r.json()).unwrap();
    let a = slots::appointment(id, &sv, slot, "pt1", referral);
    s.put(
        token,
        &format!("/fhir/Appointment/{id}"),
        &a.to_string(),
        None,
    )
}

#[test]
fn slots_held_for_referrals_are_booked_once() {
    let s = TestServer::start();
    seed(&s);
    let (tdoc, hdoc) = (s.token("tdoc"), s.token("hdoc"));
    let release = (chrono::Utc::now() + chrono::Duration::days(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    slot_fixture(&s, Some(&release));
    let before = s.snapshot();
    let r = book(&s, &hdoc, "ap1", "slot1", None);
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("预留"), "{}", r.text);
    assert_eq!(s.snapshot(), before);
    assert_eq!(refer(&s, &tdoc, "ref7", "t1", "h1", "routine").status, 200);
    let r = book(&s, &tdoc, "ap1", "slot1", Some("ref7"));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(s.get(&hdoc, "/fhir/Slot/slot1").json()["status"], "busy");
    let r = book(&s, &hdoc, "ap2", "slot1", None);
    assert_eq!(r.status, 409, "{}", r.text);
    // Cancelling frees the slot; check-in and no-show move the booking.
    let r = s.get(&hdoc, "/fhir/Appointment/ap1");
    let etag = r.header("ETag").unwrap().to_string();
    let mut a = r.json();
    a["status"] = json!("cancelled");
    assert_eq!(
        s.put(&hdoc, "/fhir/Appointment/ap1", &a.to_string(), Some(&etag))
            .status,
        200
    );
    assert_eq!(s.get(&hdoc, "/fhir/Slot/slot1").json()["status"], "free");
    let r = s.get(&hdoc, "/fhir/Appointment/ap1");
    let etag = r.header("ETag").unwrap().to_string();
    a = r.json();
    a["status"] = json!("booked");
    assert_eq!(
        s.put(&hdoc, "/fhir/Appointment/ap1", &a.to_string(), Some(&etag))
            .status,
        409
    );
    assert_eq!(book(&s, &hdoc, "ap3", "slot2", None).status, 201);
    let r = s.get(&hdoc, "/fhir/Appointment/ap3");
    let etag = r.header("ETag").unwrap().to_string();
    let mut a = r.json();
    a["status"] = json!("arrived");
    assert_eq!(
        s.put(&hdoc, "/fhir/Appointment/ap3", &a.to_string(), Some(&etag))
            .status,
        200
    );
    let r = s.get(&hdoc, "/fhir/Appointment?slot=Slot/slot2&status=arrived");
    assert_eq!(
        r.json()["entry"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}

/// Two desks book the same slot at the same moment: exactly one booking.
fn race_for_a_slot(s: Arc<TestServer>) {
    seed(&s);
    slot_fixture(&s, None);
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = [("hdoc", "apA"), ("hdoc2", "apB")]
        .into_iter()
        .map(|(u, id)| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                let token = s.token(u);
                barrier.wait();
                book(&s, &token, id, "slot3", None).status
            })
        })
        .collect();
    let mut codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [201, 409]);
    let hdoc = s.token("hdoc");
    let r = s.get(&hdoc, "/fhir/Appointment?slot=Slot/slot3");
    assert_eq!(
        r.json()["entry"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}

#[test]
fn a_slot_is_never_double_booked_sqlite() {
    race_for_a_slot(Arc::new(TestServer::start()));
}

#[test]
fn a_slot_is_never_double_booked_postgres() {
    on_postgres("care", |s| race_for_a_slot(Arc::new(s)));
}

/// Story (a): a township doctor refers a patient up on the green channel; the
/// lead hospital accepts, schedules, receives the patient and completes; later
/// it refers the patient down with a discharge summary and a follow-up plan.
/// Story (b): the township orders an ECG, the county's ECG centre reads it, a
/// critical value is raised and the township acknowledges it.
#[test]
fn browser_referral_and_ecg_stories() {
    use common::driver::Driver;
    if Driver::skip_without_browser() {
        return;
    }
    let s = TestServer::start();
    seed(&s);
    let d = Driver::start();

    // (a) Up on the green channel.
    d.login(&s, "tdoc");
    d.go(&s.url("/care/new?kind=referral&patient=pt1"));
    d.set("#direction", "up");
    d.set("#to", "h1");
    d.set("#priority", "stat");
    d.type_into("#icd10", "I21.9");
    d.type_into("#reason", "胸痛3小时,心电图ST段抬高");
    d.click("#submit");
    d.wait_text("#state", "已申请");
    d.wait_text("main h1", "绿色通道");
    d.screenshot("care-referral-requested");

    d.login(&s, "hdoc");
    d.click("#nav-care");
    d.wait_text("main", "待本机构处理");
    d.go(&s.url("/care/list?kind=referral&dir=in&state=requested"));
    d.wait_text("#worklist", "王晓红");
    d.wait_text("#worklist", "绿色通道");
    d.screenshot("care-referral-worklist");
    d.click("#worklist tbody a");
    d.click("#do-accepted");
    d.wait_text("#state", "已接收");
    d.set("input[name=when]", "2026-11-26T09:30");
    d.click("#do-scheduled");
    d.wait_text("#state", "已预约");
    d.click("#do-arrived");
    d.wait_text("#state", "已到院");
    d.click("#do-completed");
    d.wait_text("#state", "已完成");
    d.screenshot("care-referral-completed");

    // Down with a plan.
    d.go(&s.url("/care/new?kind=referral&patient=pt1"));
    d.set("#direction", "down");
    d.set("#to", "t1");
    d.type_into("#icd10", "I21.9");
    d.type_into("#summary", "急性下壁心肌梗死,PCI术后第5天,病情稳定出院。");
    d.type_into(
        "#plan",
        "阿司匹林+氯吡格雷双抗12个月;每周随访血压心率,两周后复查心电图。",
    );
    d.click("#submit");
    d.wait_text("#state", "已申请");
    d.wait_text("main", "下转");

    // (b) An ECG read centrally, with a critical value.
    d.login(&s, "tdoc");
    d.go(&s.url("/care/new?kind=exam&patient=pt1"));
    d.set("#item", "ECG12");
    d.set("#to", "h1");
    d.type_into("#practitioner", "junior1");
    d.click("#submit");
    d.wait_text("#state", "已申请");
    d.click("#do-collected");
    d.wait_text("#state", "已采集");
    let order_page = d.text("main h1");
    assert!(order_page.contains("检查检验申请"), "{order_page}");

    d.login(&s, "hdoc");
    d.go(&s.url("/care/list?kind=exam&dir=in"));
    d.click("#worklist tbody a");
    d.click("#do-received");
    d.wait_text("#state", "已签收");
    d.type_into("#a_HR", "36");
    d.type_into("#finding", "三度房室传导阻滞,心室率36次/分");
    d.set("#critical", "on");
    d.type_into("#conclusion", "三度房室传导阻滞");
    d.screenshot("care-ecg-reading");
    d.click("#sign-report");
    d.wait_text("#state", "已报告");
    d.wait_text("#report", "危急值");

    d.login(&s, "tdoc");
    d.click("#nav-care");
    d.wait_text("#notices", "危急值");
    d.screenshot("care-critical-notice");
    d.go(&s.url("/care/list?kind=critical-ack&dir=in&state=requested"));
    d.click("#worklist tbody a");
    d.click("#do-acknowledged");
    d.wait_text("#state", "已确认");
    d.screenshot("care-critical-acknowledged");
}

#[test]
fn pages_refuse_what_the_api_refuses() {
    let s = TestServer::start();
    seed(&s);
    let agent = &s.agent;
    let tdoc = token(&s, "tdoc");
    let post = |path: &str, form: &str| {
        let mut r = agent
            .post(s.url(path))
            .header("Cookie", format!("yigong_session={tdoc}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    // Referral to the other community's hospital: a clear message, nothing written.
    let before = s.snapshot();
    let (status, body) = post(
        "/care/new",
        "kind=referral&patient=pt1&direction=up&to=h2&priority=routine&icd10=I21.9",
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("不在本医共体内"), "{body}");
    assert_eq!(s.snapshot(), before);
    // Worklist and workbench pages render for the institution.
    let get = |path: &str| {
        let mut r = agent
            .get(s.url(path))
            .header("Cookie", format!("yigong_session={tdoc}"))
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    assert_eq!(refer(&s, &tdoc, "ref9", "t1", "h1", "urgent").status, 200);
    let (status, body) = get("/care/list?kind=referral&dir=out");
    assert_eq!(status, 200);
    assert!(
        body.contains("王晓红") && body.contains("绿色通道"),
        "{body}"
    );
    let (status, body) = get("/care");
    assert_eq!(status, 200);
    assert!(body.contains("本机构发出"), "{body}");
    let (status, body) = get("/care/tasks/ref9-task");
    assert_eq!(status, 200);
    assert!(body.contains("急性心肌梗死"), "{body}");
    let (status, _) = get("/care/stats");
    assert_eq!(status, 200);
    let (status, _) = get("/care/list?kind=bogus");
    assert_eq!(status, 400);

    // Ordering an exam whose result is still valid shows the result and the
    // choice to recognise it; recognising it is recorded.
    order_and_receive(&s, "ecg8", "ECG12", None);
    assert_eq!(
        bundle(
            &s,
            &token(&s, "hdoc"),
            &ecg_report("rep8", "ecg8", 70.0, "窦性心律", false)
        )
        .status,
        200
    );
    let (status, body) = post(
        "/care/new",
        "kind=exam&patient=pt1&item=ECG12&to=h1&priority=routine",
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("可互认的有效结果")
            && body.contains("rep8")
            && body.contains("repeat_reason"),
        "{body}"
    );
    let (status, _) = post("/care/recognise", "patient=pt1&item=ECG12&report=rep8");
    assert_eq!(status, 303);
    let (status, body) = post(
        "/care/new",
        "kind=exam&patient=pt1&item=ECG12&to=h1&priority=routine&repeat_reason=%E7%97%87%E7%8A%B6%E5%8F%98%E5%8C%96",
    );
    assert_eq!(status, 303, "{body}");
    let stats = s
        .store
        .recognition_stats("2000-01-01", &Scope::County)
        .unwrap();
    assert_eq!((stats[0].recognised, stats[0].repeated), (1, 1));
    let (status, body) = get("/care/stats?days=7");
    assert_eq!(status, 200);
    assert!(body.contains("50.0%") && body.contains("¥25.00"), "{body}");

    // The slot page lists the lead hospital's free slots; booking from it works.
    slot_fixture(&s, None);
    let (status, body) = get("/care/slots?inst=h1&patient=pt1");
    assert_eq!(status, 200);
    assert!(
        body.contains("心内科专家门诊") && body.contains("slot2"),
        "{body}"
    );
    let (status, _) = post("/care/book", "slot=slot2&patient=pt1&referral=");
    assert_eq!(status, 303);
    let (status, body) = post("/care/book", "slot=slot2&patient=pt1&referral=");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("已被预约"), "{body}");
    // Check-in from the same page.
    let r = s.get(&tdoc, "/fhir/Appointment?slot=Slot/slot2");
    let id = r.json()["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = post(
        &format!("/care/appointments/{id}/status"),
        "to=arrived&version=1",
    );
    assert_eq!(status, 303, "{body}");
    let (status, _) = post(
        &format!("/care/appointments/{id}/status"),
        "to=arrived&version=1",
    );
    assert_eq!(status, 412, "a stale form is refused");
    let (_, body) = get("/care/slots?inst=h1");
    assert!(body.contains("完成就诊"), "{body}");
    // A clinic that is closed (Schedule.active false) offers no slots any more.
    let admin = s.token("admin");
    let mut sch = s.get(&admin, "/fhir/Schedule/sch1").json();
    sch["active"] = serde_json::json!(false);
    let r = s.put(
        &admin,
        "/fhir/Schedule/sch1",
        &sch.to_string(),
        Some("W/\"1\""),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, body) = get("/care/slots?inst=h1");
    assert!(
        !body.contains("逢5坐诊") && !body.contains("slot3"),
        "{body}"
    );
}

/// Every kind of flow resource the server stores and serves validates as FHIR R4.
#[test]
fn care_resources_validate_as_fhir_r4() {
    let Some(python) = fhir_validator() else {
        return;
    };
    let s = TestServer::start();
    seed(&s);
    let (tdoc, hdoc) = (token(&s, "tdoc"), token(&s, "hdoc"));
    // A referral through its states, an out-of-county filing, an ECG with a
    // critical value, a consultation, slots and a booking.
    assert_eq!(refer(&s, &tdoc, "v1", "t1", "h1", "stat").status, 200);
    assert_eq!(
        step(&s, &hdoc, "v1-task", "rejected", |t| task::set_reason(
            t,
            "床位已满,建议转县中医院"
        ))
        .status,
        200
    );
    let at = now();
    let sr = out_of_county_referral("v2", &at);
    let t = flow_task(Flow::Referral, "v2", "t1", "t1", "routine", &at);
    assert_eq!(bundle(&s, &tdoc, &[sr, t]).status, 200);
    order_and_receive(&s, "v3", "ECG12", None);
    assert_eq!(
        bundle(
            &s,
            &hdoc,
            &ecg_report("v3r", "v3", 36.0, "三度房室传导阻滞", true)
        )
        .status,
        200
    );
    order_and_receive(&s, "v4", "K", None);
    let k = exams::item("K").unwrap();
    let o = requests::observation(
        "v4o",
        "pt1",
        "v4",
        k,
        Some(&k.analytes[0]),
        &ResultValue::Number(6.9),
        "h1",
        &at,
    );
    let r = requests::report(
        "v4r",
        "pt1",
        "v4",
        k,
        "h1",
        None,
        &["v4o".into()],
        "高钾血症",
        &at,
    );
    assert_eq!(bundle(&s, &hdoc, &[o, r]).status, 200);
    let sr = requests::consult(&parties("v5", "t1", "h1", "routine", &at), "请会诊", &[]);
    let t = flow_task(Flow::Consult, "v5", "t1", "h1", "routine", &at);
    assert_eq!(bundle(&s, &tdoc, &[sr, t]).status, 200);
    assert_eq!(
        step(&s, &hdoc, "v5-task", "accepted", |t| task::set_assignee(
            t, "expert1"
        ))
        .status,
        200
    );
    assert_eq!(
        step(&s, &hdoc, "v5-task", "answered", |t| task::add_output(
            t,
            "opinion",
            "会诊意见",
            ("valueString", json!("建议上转"))
        ))
        .status,
        200
    );
    slot_fixture(&s, Some(&at));
    assert_eq!(book(&s, &hdoc, "v6", "slot2", None).status, 201);
    let summary = requests::discharge_summary("v7s", "pt1", "h1", "出院小结", &at);
    let plan = requests::follow_up_plan("v7p", "pt1", "h1", "随访计划", &at);
    let down = requests::referral(
        &parties("v7", "h1", "t1", "routine", &at),
        "down",
        "I21.9",
        "恢复期",
        &["DocumentReference/v7s".into(), "CarePlan/v7p".into()],
    );
    let t = flow_task(Flow::Referral, "v7", "h1", "t1", "routine", &at);
    assert_eq!(bundle(&s, &hdoc, &[summary, plan, down, t]).status, 200);

    let out = tempfile::tempdir().unwrap();
    let mut n = 0;
    let admin = token(&s, "admin");
    for rtype in [
        "ServiceRequest",
        "Task",
        "DiagnosticReport",
        "Observation",
        "Schedule",
        "Slot",
        "Appointment",
        "CarePlan",
        "DocumentReference",
    ] {
        let r = s.get(&admin, &format!("/fhir/{rtype}?_count=100"));
        assert_eq!(r.status, 200, "{}", r.text);
        std::fs::write(
            out.path().join(format!("{n:03}-{rtype}-searchset.json")),
            &r.text,
        )
        .unwrap();
        n += 1;
        for e in r.json()["entry"].as_array().unwrap() {
            std::fs::write(
                out.path().join(format!("{n:03}-{rtype}.json")),
                e["resource"].to_string(),
            )
            .unwrap();
            n += 1;
        }
    }
    assert!(n > 30, "{n} resources");
    let r = s.get(&admin, "/fhir/metadata");
    std::fs::write(out.path().join("999-metadata.json"), &r.text).unwrap();
    validate_fhir_dir(&python, out.path(), n + 1);
}

#[test]
fn flow_rules_are_configured_whole_or_not_at_all() {
    let s = TestServer::start();
    seed(&s);
    let (admin, tdoc) = (token(&s, "admin"), token(&s, "tdoc"));
    let r = s.get(&tdoc, "/care/rules");
    assert_eq!(r.status, 200);
    let mut rules = r.json();
    assert_eq!(rules["critical_ack_minutes"], 30);
    assert_eq!(
        s.put(&tdoc, "/care/rules", &rules.to_string(), None).status,
        403
    );
    let before = s.get(&admin, "/care/rules").text;
    let mut bad = rules.clone();
    bad["recognition"][0]["item"] = json!("NO-SUCH-ITEM");
    let r = s.put(&admin, "/care/rules", &bad.to_string(), None);
    assert_eq!(r.status, 422);
    assert!(r.text.contains("NO-SUCH-ITEM"), "{}", r.text);
    assert_eq!(s.put(&admin, "/care/rules", "{not json", None).status, 422);
    assert_eq!(
        s.get(&admin, "/care/rules").text,
        before,
        "a refused file changes nothing"
    );
    // A community's ECG centre configured elsewhere: orders must go there.
    rules["centres"] = json!({ "com1": { "ecg": "t1" } });
    rules["critical_ack_minutes"] = json!(15);
    let r = s.put(&admin, "/care/rules", &rules.to_string(), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = order_and_receive(&s, "ecg9", "ECG12", None);
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("心电中心"), "{}", r.text);
}

#[test]
fn a_clinic_session_is_published_with_slots_held_for_referrals() {
    let s = TestServer::start();
    seed(&s);
    let hdoc = token(&s, "hdoc");
    let post = |form: &str| {
        let mut r = s
            .agent
            .post(s.url("/care/sessions"))
            .header("Cookie", format!("yigong_session={hdoc}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let day =
        (chrono::Utc::now() + chrono::Duration::days(5)).with_timezone(&chrono_tz::Asia::Shanghai);
    let start = day.format("%Y-%m-%dT08:30").to_string();
    let before = s.snapshot();
    let (status, body) = post(&format!(
        "inst=h1&practitioner=expert1&service=%E5%BF%83%E5%86%85%E7%A7%91&start={start}&slots=0&minutes=15&held_percent=30&release_hours=48"
    ));
    assert_eq!(status, 422, "{body}");
    assert_eq!(s.snapshot(), before);
    let (status, body) = post(&format!(
        "inst=h1&practitioner=expert1&service=%E5%BF%83%E5%86%85%E7%A7%91&start={start}&slots=10&minutes=15&held_percent=30&release_hours=48"
    ));
    assert_eq!(status, 303, "{body}");
    let r = s.get(
        &hdoc,
        "/fhir/Slot?schedule=Schedule/sch-h1-expert1&_count=50",
    );
    let slots: Vec<Value> = r.json()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect();
    assert_eq!(slots.len(), 10);
    let held = slots
        .iter()
        .filter(|x| x.to_string().contains("held-for-referral"))
        .count();
    assert_eq!(held, 3);
    // A township user books a held slot only with a referral.
    let tdoc = token(&s, "tdoc");
    let held_id = slots
        .iter()
        .find(|x| x.to_string().contains("held-for-referral"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(book(&s, &tdoc, "ap-h", &held_id, None).status, 409);
    assert_eq!(refer(&s, &tdoc, "ref-h", "t1", "h1", "routine").status, 200);
    assert_eq!(book(&s, &tdoc, "ap-h", &held_id, Some("ref-h")).status, 201);
}

#[test]
fn malformed_flows_are_refused_and_change_nothing() {
    let s = TestServer::start();
    seed(&s);
    let (tdoc, hdoc) = (token(&s, "tdoc"), token(&s, "hdoc"));
    let at = now();
    let before = s.snapshot();
    // A Task may not be created already accepted, nor point at another flow's request.
    let sr = requests::referral(
        &parties("m1", "t1", "h1", "routine", &at),
        "up",
        "I10",
        "高血压",
        &[],
    );
    let mut t = flow_task(Flow::Referral, "m1", "t1", "h1", "routine", &at);
    task::set_state(&mut t, Flow::Referral, "accepted", &at, None);
    let r = bundle(&s, &tdoc, &[sr.clone(), t]);
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("已申请"), "{}", r.text);
    let wrong = flow_task(Flow::Consult, "m1", "t1", "h1", "routine", &at);
    let r = bundle(&s, &tdoc, &[sr, wrong]);
    assert_eq!(r.status, 422, "{}", r.text);
    // A Task whose status disagrees with its business status.
    let sr = requests::referral(
        &parties("m2", "t1", "h1", "routine", &at),
        "up",
        "I10",
        "高血压",
        &[],
    );
    let mut t = flow_task(Flow::Referral, "m2", "t1", "h1", "routine", &at);
    t["status"] = json!("completed");
    let r = bundle(&s, &tdoc, &[sr, t]);
    assert_eq!(r.status, 422, "{}", r.text);
    // An exam item that is not in the catalogue.
    let mut ex = requests::exam_order(
        &parties("m3", "t1", "h1", "routine", &at),
        exams::item("CBC").unwrap(),
        "B-m3",
        None,
    );
    ex["code"]["coding"][0]["code"] = json!("NOT-AN-ITEM");
    let r = bundle(
        &s,
        &tdoc,
        &[ex, flow_task(Flow::Exam, "m3", "t1", "h1", "routine", &at)],
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("NOT-AN-ITEM"), "{}", r.text);
    assert_eq!(s.snapshot(), before);

    // A report before the centre has received the exam.
    let sr = requests::exam_order(
        &parties("m4", "t1", "h1", "routine", &at),
        exams::item("ECG12").unwrap(),
        "B-m4",
        None,
    );
    assert_eq!(
        bundle(
            &s,
            &tdoc,
            &[sr, flow_task(Flow::Exam, "m4", "t1", "h1", "routine", &at)]
        )
        .status,
        200
    );
    let before = s.snapshot();
    let r = bundle(&s, &hdoc, &ecg_report("m4r", "m4", 70.0, "窦性心律", false));
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("尚未被检查中心签收"), "{}", r.text);
    // A booking of a slot that does not exist.
    let a = json!({ "resourceType": "Appointment", "id": "m5", "status": "booked",
        "slot": [{ "reference": "Slot/nope" }],
        "participant": [{ "actor": { "reference": "Patient/pt1" }, "status": "accepted" }] });
    let r = s.put(&hdoc, "/fhir/Appointment/m5", &a.to_string(), None);
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(s.snapshot(), before);
}

/// The indicators the flows move (reports per centre, turnaround, referrals
/// up) are kept live, and a full recompute gives the same counters on SQLite
/// (also with every report and task read apart from its order) and PostgreSQL.
fn flows_move_the_indicators_exactly(s: &TestServer) {
    seed(s);
    let (tdoc, hdoc) = (s.token("tdoc"), s.token("hdoc"));
    assert_eq!(order_and_receive(s, "ecg9", "ECG12", None).status, 200);
    let r = bundle(
        s,
        &hdoc,
        &ecg_report("rep9", "ecg9", 72.0, "窦性心律", false),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(refer(s, &tdoc, "ref9", "t1", "h1", "routine").status, 200);
    assert_eq!(step(s, &hdoc, "ref9-task", "accepted", |_| {}).status, 200);
    let comps: Vec<String> = [
        "reports_ecg",
        "exam_tat_count",
        "ecg_tat_count",
        "referrals_up",
        "referral_responses",
    ]
    .map(String::from)
    .to_vec();
    let sums = |s: &TestServer| {
        s.store
            .metric_sums(
                &yigong_store::metrics::Subject::County,
                &comps,
                "2000-01",
                "2100-12",
            )
            .unwrap()
    };
    let live = sums(s);
    for c in &comps {
        assert_eq!(live.get(c).copied(), Some(1), "{c}: {live:?}");
    }
    for rows_per_slice in [1, 8_192] {
        let r = s.store.metrics_recompute_sliced(rows_per_slice).unwrap();
        assert_eq!(
            r.differing, 0,
            "recompute in slices of {rows_per_slice} rows"
        );
    }
    assert_eq!(sums(s), live);
}

#[test]
fn flows_move_the_indicators_exactly_on_sqlite() {
    flows_move_the_indicators_exactly(&TestServer::start());
}

#[test]
fn flows_move_the_indicators_exactly_on_postgres() {
    on_postgres("care", |s| flows_move_the_indicators_exactly(&s));
}
