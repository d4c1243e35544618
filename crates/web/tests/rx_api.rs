//! The prescription workflow over the JSON API, on SQLite and PostgreSQL:
//! rules → pharmacist return → prescriber fix → pass; deadlines; committee
//! decisions changing the formulary; post-hoc review; scope, bad input and
//! concurrent reviewers.

mod common;

use common::*;
use serde_json::{Value, json};
use yigong_store::{Role, Scope, Store};

fn setup(s: &TestServer) {
    seed_county(s);
    add_users(
        s,
        [
            (
                "pharm",
                Role::Pharmacist,
                Scope::Community("com1".into()),
                Some("t1"),
            ),
            (
                "pharm_b",
                Role::Pharmacist,
                Scope::Community("com1".into()),
                Some("t1"),
            ),
            (
                "pharm2",
                Role::Pharmacist,
                Scope::Community("com2".into()),
                Some("t2"),
            ),
            ("ops", Role::OperationsCentre, Scope::County, None),
        ],
    );
    let admin = s.token("admin");
    let r = s.put(
        &admin,
        "/fhir/Patient/p1",
        &json!({ "resourceType": "Patient", "id": "p1", "name": [{ "text": "赵大山" }], "gender": "male", "birthDate": "1970-03-02", "managingOrganization": { "reference": "Organization/t1" } }).to_string(),
        None,
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
}

/// An oral drug with an adult single-dose maximum, not an antimicrobial or
/// controlled drug, to write clean and overdosed prescriptions with.
fn oral_drug(store: &Store) -> yigong_rx::Drug {
    store
        .rx_state()
        .knowledge
        .drugs
        .iter()
        .find(|d| {
            d.routes.iter().any(|r| r == "po")
                && d.adult.max_dose.is_some()
                && d.antimicrobial.is_none()
                && d.controlled.is_none()
                && !d.skin_test
                && d.elderly.is_none()
                && d.frequencies.iter().any(|f| f == "qd")
                && d.strength_unit == d.dose_unit
                && d.adult.max_dose.unwrap() >= d.strength
                && d.adult.max_daily.is_none_or(|m| m >= d.strength)
        })
        .cloned()
        .expect("an oral drug with a dose limit in the formulary")
}

fn rx_body(drug: &yigong_rx::Drug, dose: f64) -> Value {
    json!({
        "patient": "p1",
        "setting": "outpatient",
        "diagnoses": [drug.indications[0]],
        "items": [{ "drug": drug.code, "dose": dose, "unit": drug.dose_unit, "frequency": "qd", "route": "po", "days": 3 }]
    })
}

fn workflow(s: &TestServer) {
    setup(s);
    let doc = s.token("doc1");
    let pharm = s.token("pharm");
    let drug = oral_drug(&s.store);

    // A clean prescription is passed by the rules at once.
    let r = s.post(
        &doc,
        "/rx/api/prescriptions",
        &rx_body(&drug, drug.strength).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let clean = r.json();
    assert_ne!(clean["verdict"], "blocked", "{}", clean["findings"]);

    // An overdose is blocked and queued.
    let over = drug.adult.max_dose.unwrap() * 3.0;
    let r = s.post(
        &doc,
        "/rx/api/prescriptions",
        &rx_body(&drug, over).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let rx = r.json();
    let id = rx["id"].as_str().unwrap().to_string();
    assert_eq!(rx["status"], "pending");
    assert_eq!(rx["verdict"], "blocked");
    assert!(
        rx["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "DOSE-SINGLE"),
        "{}",
        rx["findings"]
    );
    let queue = s.get(&pharm, "/rx/api/prescriptions?status=pending").json();
    assert!(
        queue["prescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id.as_str())
    );

    // Only a pharmacist reviews; one outside the community does not even see it.
    let r = s.post(
        &doc,
        &format!("/rx/api/prescriptions/{id}/review"),
        &json!({ "version": 1, "action": "pass", "note": "x" }).to_string(),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s.post(
        &s.token("pharm2"),
        &format!("/rx/api/prescriptions/{id}/review"),
        &json!({ "version": 1, "action": "pass", "note": "x" }).to_string(),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(
        s.get(&s.token("doc2"), &format!("/rx/api/prescriptions/{id}"))
            .status,
        404
    );

    // Passing a blocked prescription without a reason, or an unknown action: refused, nothing changes.
    let before = s.snapshot();
    let r = s.post(
        &pharm,
        &format!("/rx/api/prescriptions/{id}/review"),
        &json!({ "version": 1, "action": "pass" }).to_string(),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("理由"), "{}", r.text);
    let r = s.post(
        &pharm,
        &format!("/rx/api/prescriptions/{id}/review"),
        &json!({ "version": 1, "action": "approve" }).to_string(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(s.snapshot(), before);

    // Return → the prescriber fixes the dose → the rules pass it.
    let r = s.post(
        &pharm,
        &format!("/rx/api/prescriptions/{id}/review"),
        &json!({ "version": 1, "action": "return", "note": "单次剂量超过极量,请减量" }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "returned");
    let mine = s
        .get(&doc, "/rx/api/prescriptions?status=returned&mine=true")
        .json();
    assert_eq!(
        mine["prescriptions"][0]["review_note"],
        "单次剂量超过极量,请减量"
    );
    // A stale version is refused.
    let r = s.put(
        &doc,
        &format!("/rx/api/prescriptions/{id}"),
        &rx_body(&drug, drug.strength).to_string(),
        Some("W/\"1\""),
    );
    assert_eq!(r.status, 412, "{}", r.text);
    let r = s.put(
        &doc,
        &format!("/rx/api/prescriptions/{id}"),
        &rx_body(&drug, drug.strength).to_string(),
        Some("W/\"2\""),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let fixed = r.json();
    assert_eq!(fixed["version"], 3);
    assert_ne!(fixed["verdict"], "blocked");
    let events: Vec<String> = s
        .store
        .rx_events(&id)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(&events[..3], ["submit", "return", "resubmit"]);
    // Every transition left an audit row.
    let audit = s
        .store
        .audit_log(Some(("Prescription", &id)), 0, 10)
        .unwrap();
    assert!(audit.len() >= 3, "{audit:?}");

    // Bad input: no items, unknown patient, not JSON.
    let before = s.snapshot();
    let mut b = rx_body(&drug, drug.strength);
    b["items"] = json!([]);
    assert_eq!(
        s.post(&doc, "/rx/api/prescriptions", &b.to_string()).status,
        422
    );
    let mut b = rx_body(&drug, drug.strength);
    b["patient"] = json!("nobody");
    let r = s.post(&doc, "/rx/api/prescriptions", &b.to_string());
    assert_eq!(r.status, 422);
    assert!(r.text.contains("不存在"), "{}", r.text);
    assert_eq!(s.post(&doc, "/rx/api/prescriptions", "{").status, 400);
    assert_eq!(s.snapshot(), before);

    concurrent_reviewers(s, &drug);
    committee(s, &drug);
    deadlines(s, &drug);
    post_hoc(s, clean["id"].as_str().unwrap());
}

/// Two pharmacists act on the same version: exactly one wins, the other gets 412.
fn concurrent_reviewers(s: &TestServer, drug: &yigong_rx::Drug) {
    let doc = s.token("doc1");
    let over = drug.adult.max_dose.unwrap() * 3.0;
    let id = s
        .post(
            &doc,
            "/rx/api/prescriptions",
            &rx_body(drug, over).to_string(),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (a, b) = (s.token("pharm"), s.token("pharm_b"));
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let h1 = sc.spawn(|| {
            s.post(
                &a,
                &format!("/rx/api/prescriptions/{id}/review"),
                &json!({ "version": 1, "action": "return", "note": "请减量" }).to_string(),
            )
            .status
        });
        let h2 = sc.spawn(|| {
            s.post(
                &b,
                &format!("/rx/api/prescriptions/{id}/review"),
                &json!({ "version": 1, "action": "pass", "note": "患者耐受" }).to_string(),
            )
            .status
        });
        vec![h1.join().unwrap(), h2.join().unwrap()]
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, vec![200, 412], "{statuses:?}");
    assert_eq!(
        s.store
            .rx_get(&Scope::County, &id)
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

/// Committee decisions change the formulary on their effective date.
fn committee(s: &TestServer, drug: &yigong_rx::Drug) {
    let doc = s.token("doc1");
    let pharm = s.token("pharm");
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    // A clinician may not decide; a decision without a meeting is refused.
    let d = json!({ "meeting": "2026年第4次药事会", "kind": "restrict", "drug": drug.code, "effective": today, "reason": "限二级以上医院使用", "entry": { "min_tier": "county", "note": "需上级医院评估" } });
    assert_eq!(
        s.post(&doc, "/rx/api/formulary/decisions", &d.to_string())
            .status,
        403
    );
    let mut bad = d.clone();
    bad["meeting"] = json!("");
    assert_eq!(
        s.post(&pharm, "/rx/api/formulary/decisions", &bad.to_string())
            .status,
        422
    );
    let mut bad = d.clone();
    bad["drug"] = json!("NOPE.01");
    assert_eq!(
        s.post(&pharm, "/rx/api/formulary/decisions", &bad.to_string())
            .status,
        422
    );
    let r = s.post(&pharm, "/rx/api/formulary/decisions", &d.to_string());
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["formulary_version"], 1);
    // A township centre now meets the restriction.
    let rx = s
        .post(
            &doc,
            "/rx/api/prescriptions",
            &rx_body(drug, drug.strength).to_string(),
        )
        .json();
    assert!(
        rx["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "LEG-RESTRICTED"),
        "{}",
        rx["findings"]
    );
    // A removal effective next year is recorded but not yet in force.
    let later = json!({ "meeting": "2026年第4次药事会", "kind": "remove", "drug": drug.code, "effective": "2099-01-01", "reason": "被带量采购品种替代" });
    let r = s.post(&pharm, "/rx/api/formulary/decisions", &later.to_string());
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(s.store.rx_state().knowledge.drug(&drug.code).is_some());
    let list = s.get(&pharm, "/rx/api/formulary/decisions").json();
    assert_eq!(list["decisions"][1]["in_force"], false);
    // Lift the restriction for the rest of the test.
    let lift = json!({ "meeting": "2026年第5次药事会", "kind": "unrestrict", "drug": drug.code, "effective": today, "reason": "取消限制" });
    assert_eq!(
        s.post(&pharm, "/rx/api/formulary/decisions", &lift.to_string())
            .status,
        201
    );
    assert!(
        s.store
            .rx_state()
            .knowledge
            .drug(&drug.code)
            .unwrap()
            .restriction
            .is_none()
    );
}

/// Past the deadline, warnings-only prescriptions pass and blocked ones are escalated.
fn deadlines(s: &TestServer, drug: &yigong_rx::Drug) {
    let doc = s.token("doc1");
    let over = drug.adult.max_dose.unwrap() * 3.0;
    let blocked = s
        .post(
            &doc,
            "/rx/api/prescriptions",
            &rx_body(drug, over).to_string(),
        )
        .json();
    // Eight days' supply in outpatient care is a warning (needs a reason), not a block.
    let mut b = rx_body(drug, drug.strength);
    b["items"][0]["days"] = json!(8);
    let warned = s.post(&doc, "/rx/api/prescriptions", &b.to_string()).json();
    assert_eq!(warned["verdict"], "review", "{}", warned["findings"]);
    let later = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    s.store.rx_sweep(&later).unwrap();
    let w = s
        .store
        .rx_get(&Scope::County, warned["id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(w.status, "passed");
    assert_eq!(w.reviewer.as_deref(), Some("system"));
    let b = s
        .store
        .rx_get(&Scope::County, blocked["id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(b.status, "pending");
    assert!(b.overdue);
    // Settings: bad values are refused.
    let admin = s.token("admin");
    let mut st = s.get(&admin, "/rx/api/settings").json();
    st["minutes_outpatient"] = json!(0);
    assert_eq!(
        s.put(&admin, "/rx/api/settings", &st.to_string(), None)
            .status,
        422
    );
    assert_eq!(
        s.put(&doc, "/rx/api/settings", &st.to_string(), None)
            .status,
        403
    );
}

fn post_hoc(s: &TestServer, clean: &str) {
    let pharm = s.token("pharm");
    let month = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string();
    let r = s.post(
        &pharm,
        "/rx/api/comments/sample",
        &json!({ "month": month, "institution": "t1", "count": 100, "seed": 7 }).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let n = r.json()["sampled"].as_i64().unwrap();
    assert!(n >= 2, "sampled {n}");
    // Sampling again finds nothing new.
    let r = s.post(
        &pharm,
        "/rx/api/comments/sample",
        &json!({ "month": month, "institution": "t1", "count": 100, "seed": 7 }).to_string(),
    );
    assert_eq!(r.json()["sampled"], 0);
    let r = s.post(
        &pharm,
        &format!("/rx/api/comments/{clean}"),
        &json!({ "version": 1, "result": "inappropriate", "codes": ["N7"] }).to_string(),
    );
    assert_eq!(r.status, 422, "a category of another result");
    let r = s.post(
        &pharm,
        &format!("/rx/api/comments/{clean}"),
        &json!({ "version": 1, "result": "rational" }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.post(
        &pharm,
        &format!("/rx/api/comments/{clean}"),
        &json!({ "version": 1, "result": "rational" }).to_string(),
    );
    assert_eq!(r.status, 412);
    let rep = s
        .get(&pharm, &format!("/rx/api/comments?month={month}"))
        .json();
    assert_eq!(rep["report"][0]["key"], "t1");
    assert_eq!(rep["report"][0]["reviewed"], 1);
    assert_eq!(rep["report"][0]["rational_permille"], 1000);
    let by = s
        .get(
            &pharm,
            &format!("/rx/api/comments?month={month}&by=prescriber"),
        )
        .json();
    assert_eq!(by["report"][0]["key"], "doc1");
}

#[test]
fn prescription_workflow_on_sqlite() {
    workflow(&TestServer::start());
}

#[test]
fn prescription_workflow_on_postgres() {
    on_postgres("rx", |s| workflow(&s));
}
