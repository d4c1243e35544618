//! One person, one file through the API and the steward pages: registration
//! through the index, unverified IDs, $match, Person, the lifelong record
//! across institutions, the review queue, merge, undo and the health card.

mod common;
use common::*;
use serde_json::{Value, json};

fn form(s: &TestServer, token: &str, path: &str, body: &str) -> (u16, String) {
    let mut r = s
        .agent
        .post(s.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)
        .unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn html(s: &TestServer, token: &str, path: &str) -> (u16, String) {
    let mut r = s
        .agent
        .get(s.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// Registered at t1 (with a visit `ea`) as `pa`, and again at t2 as `pb`:
/// the other community's centre types a homophone and no phone.
fn resident_at_two_centres(s: &TestServer, doc1: &str, doc2: &str) {
    let mut a = patient("t1");
    a["id"] = json!("pa");
    assert_eq!(
        s.put(doc1, "/fhir/Patient/pa", &a.to_string(), None).status,
        201
    );
    let mut e = encounter("pa", "t1");
    e["id"] = json!("ea");
    assert_eq!(
        s.put(doc1, "/fhir/Encounter/ea", &e.to_string(), None)
            .status,
        201
    );
    let mut b = patient("t2");
    b["id"] = json!("pb");
    b["name"] = json!([{ "text": "王小红" }]);
    b.as_object_mut().unwrap().remove("telecom");
    assert_eq!(
        s.put(doc2, "/fhir/Patient/pb", &b.to_string(), None).status,
        201
    );
}

#[test]
fn one_person_across_two_institutions() {
    let s = TestServer::start();
    seed_county(&s);
    let (doc1, doc2, admin) = (s.token("doc1"), s.token("doc2"), s.token("admin"));
    resident_at_two_centres(&s, &doc1, &doc2);
    let pa = s.store.mpi_person_of("pa").unwrap().unwrap();
    assert_eq!(s.store.mpi_person_of("pb").unwrap().unwrap().id, pa.id);

    // Her lifelong record at t2 includes what t1 recorded, and t1's record is
    // logged as read from outside.
    let all = s.get(&doc2, "/fhir/Patient/pb/$everything").json();
    let ids: Vec<&str> = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    assert!(ids.contains(&"pa") && ids.contains(&"ea"), "{ids:?}");
    s.store.flush_access_log().unwrap();
    let seen = s.store.access_history("pa", 10).unwrap();
    assert!(
        seen.iter().any(|x| x.actor == "doc2"),
        "who looked at my record: {seen:?}"
    );

    // $match, standard operation: scored searchset.
    let q = json!({ "resourceType": "Parameters", "parameter": [
        { "name": "resource", "resource": { "resourceType": "Patient", "name": [{ "text": "王晓红" }], "gender": "female", "birthDate": "1949-12-31" } },
        { "name": "count", "valueInteger": 5 }
    ]});
    let m = s.post(&doc1, "/fhir/Patient/$match", &q.to_string());
    assert_eq!(m.status, 200, "{}", m.text);
    let m = m.json();
    assert_eq!(m["type"], "searchset");
    let first = &m["entry"][0];
    assert_eq!(first["search"]["mode"], "match");
    assert!(first["search"]["score"].as_f64().unwrap() > 0.9);
    let bad = s.post(
        &doc1,
        "/fhir/Patient/$match",
        r#"{"resourceType":"Parameters"}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("resource"));

    // The master person as FHIR Person.
    let person = s.get(&doc1, &format!("/fhir/Person/{}", pa.id));
    assert_eq!(person.status, 200);
    let person = person.json();
    assert_eq!(person["link"].as_array().unwrap().len(), 2);
    assert_eq!(person["identifier"][0]["value"], pa.card);

    // The person page with the health card, and look-up by card.
    let (st, page) = html(&s, &admin, &format!("/mpi/persons/{}", pa.id));
    assert_eq!(st, 200);
    assert!(page.contains("<svg") && page.contains(&pa.card) && page.contains("自动关联"));
    let (st, _) = html(&s, &admin, &format!("/card?no={}", pa.card));
    assert_eq!(st, 303, "redirected to the person");
    let (st, page) = html(&s, &admin, "/card?no=123");
    assert_eq!(st, 400);
    assert!(page.contains("18位"));
}

#[test]
fn a_bad_check_digit_registers_as_unverified() {
    let s = TestServer::start();
    seed_county(&s);
    let doc1 = s.token("doc1");
    let mut p = patient("t1");
    p["id"] = json!("pu");
    p["identifier"][0]["value"] = json!("110105194912310021");
    let r = s.put(&doc1, "/fhir/Patient/pu", &p.to_string(), None);
    assert_eq!(r.status, 201, "{}", r.text);
    let v: Value = r.json();
    assert_eq!(
        v["identifier"][0]["system"],
        "https://yigong.org.cn/fhir/sid/resident-id-unverified"
    );
    assert!(
        v["meta"]["tag"][0]["display"]
            .as_str()
            .unwrap()
            .contains("校验位错误")
    );
}

#[test]
fn stewards_review_merge_and_undo() {
    let s = TestServer::start();
    seed_county(&s);
    let (doc1, admin) = (s.token("doc1"), s.token("admin"));
    // Twins without IDs: same household phone and birth date, different names.
    for (id, name) in [("k1", "陈欣怡"), ("k2", "陈雨涵")] {
        let k = json!({ "resourceType": "Patient", "id": id, "name": [{ "text": name }], "gender": "female",
            "birthDate": "2019-05-06", "telecom": [{ "system": "phone", "value": "13512340000" }],
            "managingOrganization": { "reference": "Organization/t1" } });
        assert_eq!(
            s.put(&doc1, &format!("/fhir/Patient/{id}"), &k.to_string(), None)
                .status,
            201
        );
    }
    let (st, _) = html(&s, &doc1, "/mpi");
    assert_eq!(st, 403, "clinicians do not steward the index");
    let (st, page) = html(&s, &admin, "/mpi");
    assert_eq!(st, 200);
    assert!(
        page.contains("欣怡") && page.contains("雨涵") && page.contains("同户相关信息折算"),
        "{}",
        &page[page.find("<main>").unwrap_or(0)..]
    );
    let item = s.store.mpi_reviews("open", 5).unwrap().remove(0);
    let (x, y) = (
        s.store.mpi_person_of("k1").unwrap().unwrap(),
        s.store.mpi_person_of("k2").unwrap().unwrap(),
    );
    // A stale form (versions older than now) is refused and changes nothing.
    let before = s.snapshot();
    let (st, page) = form(
        &s,
        &admin,
        &format!("/mpi/reviews/{}/merge", item.id),
        &format!(
            "survivor={}&survivor_version=0&merged={}&merged_version=0",
            x.id, y.id
        ),
    );
    assert_eq!(st, 409);
    assert!(page.contains("过期"));
    assert_eq!(s.snapshot(), before);
    let (st, _) = form(
        &s,
        &admin,
        &format!("/mpi/reviews/{}/merge", item.id),
        &format!(
            "survivor={}&survivor_version={}&merged={}&merged_version={}",
            x.id, x.version, y.id, y.version
        ),
    );
    assert_eq!(st, 303, "redirected to the surviving person");
    assert_eq!(s.store.mpi_person_of("k2").unwrap().unwrap().id, x.id);
    let merge = s.store.mpi_merges(&x.id).unwrap().remove(0);
    let (st, _) = form(
        &s,
        &admin,
        &format!("/mpi/merges/{}/undo", merge.id),
        &format!("survivor={}", x.id),
    );
    assert_eq!(st, 303);
    assert_eq!(
        s.store.mpi_person_of("k2").unwrap().unwrap().id,
        y.id,
        "undo restores the person"
    );
    assert_eq!(
        s.store.mpi_reviews("open", 5).unwrap().len(),
        1,
        "and the question is open again"
    );
}

fn consent(patient: &str, actors: &[&str]) -> Value {
    let mut provision = json!({ "type": "deny" });
    if !actors.is_empty() {
        provision["actor"] = Value::Array(
            actors
                .iter()
                .map(|o| json!({
                    "role": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" }] },
                    "reference": { "reference": format!("Organization/{o}") }
                }))
                .collect(),
        );
    }
    json!({
        "resourceType": "Consent",
        "id": "c1",
        "status": "active",
        "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0" }] }],
        "patient": { "reference": format!("Patient/{patient}") },
        "policyRule": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT" }] },
        "provision": provision
    })
}

fn everything_ids(s: &TestServer, token: &str, patient: &str) -> Vec<String> {
    s.get(token, &format!("/fhir/Patient/{patient}/$everything"))
        .json()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn consent_decides_what_other_institutions_see() {
    let s = TestServer::start();
    seed_county(&s);
    let (doc1, doc2) = (s.token("doc1"), s.token("doc2"));
    resident_at_two_centres(&s, &doc1, &doc2);

    // The two records know each other (Patient.link, derived from the index).
    let read = s.get(&doc1, "/fhir/Patient/pa").json();
    assert_eq!(read["link"][0]["other"]["reference"], "Patient/pb");
    assert_eq!(read["link"][0]["type"], "seealso");
    assert!(everything_ids(&s, &doc2, "pb").contains(&"ea".to_string()));

    // She denies sharing with every other institution.
    let c = s.put(
        &doc1,
        "/fhir/Consent/c1",
        &consent("pa", &[]).to_string(),
        None,
    );
    assert_eq!(c.status, 201, "{}", c.text);
    let seen = everything_ids(&s, &doc2, "pb");
    assert!(
        !seen.contains(&"ea".to_string()) && !seen.contains(&"pa".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"pb".to_string()),
        "t2 still sees its own record"
    );
    assert!(
        everything_ids(&s, &doc1, "pa").contains(&"ea".to_string()),
        "t1 sees what it holds"
    );
    let mut r = s
        .agent
        .get(s.url("/patients/pb"))
        .header("Authorization", format!("Bearer {doc2}"))
        .call()
        .unwrap();
    let page = r.body_mut().read_to_string().unwrap();
    assert!(
        page.contains("consent-withheld"),
        "the page says records were withheld"
    );

    // Narrowed to one named organisation (not t2): t2 sees her records again.
    let narrowed = consent("pa", &["com1"]);
    let c = s.put(
        &doc1,
        "/fhir/Consent/c1",
        &narrowed.to_string(),
        Some("W/\"1\""),
    );
    assert_eq!(c.status, 200, "{}", c.text);
    assert!(everything_ids(&s, &doc2, "pb").contains(&"ea".to_string()));
}
