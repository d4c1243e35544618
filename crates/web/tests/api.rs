//! The FHIR API end to end over HTTP: CRUD, search, transactions, scope, audit
//! and every kind of bad input (each must get a 4xx OperationOutcome in Chinese
//! and change nothing).

mod common;
use common::*;
use serde_json::{Value, json};

fn created_id(r: &Resp) -> String {
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

fn assert_outcome(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    let v = r.json();
    assert_eq!(v["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(
        v["issue"][0]["details"]["coding"][0]["code"], code,
        "{}",
        r.text
    );
    let msg = v["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        msg.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "message should be Chinese: {msg}"
    );
}

#[test]
fn metadata_health_and_authentication() {
    let s = TestServer::start();
    let r = s.agent.get(s.url("/healthz")).call().unwrap();
    assert_eq!(r.status(), 200);
    let r = s.get("x", "/fhir/metadata");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["fhirVersion"], "4.0.1");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/fhir+json")
    );
    seed_county(&s);
    assert_outcome(
        &s.get("not-a-token", "/fhir/Patient"),
        401,
        "unauthenticated",
    );
}

#[test]
fn create_read_update_vread_history() {
    let s = TestServer::start();
    seed_county(&s);
    let doc = s.token("doc1");
    let r = s.post(&doc, "/fhir/Patient", &patient("t1").to_string());
    let id = created_id(&r);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert!(
        r.header("location")
            .unwrap()
            .ends_with(&format!("/fhir/Patient/{id}/_history/1"))
    );
    let got = s.get(&doc, &format!("/fhir/Patient/{id}"));
    assert_eq!(got.status, 200);
    let mut v = got.json();
    assert_eq!(v["meta"]["versionId"], "1");
    v["telecom"][0]["value"] = json!("13900000000");
    let up = s.put(
        &doc,
        &format!("/fhir/Patient/{id}"),
        &v.to_string(),
        Some("W/\"1\""),
    );
    assert_eq!(up.status, 200, "{}", up.text);
    assert_eq!(up.header("etag"), Some("W/\"2\""));
    assert_eq!(
        s.get(&doc, &format!("/fhir/Patient/{id}/_history/1"))
            .json()["telecom"][0]["value"],
        "13812345678"
    );
    let h = s.get(&doc, &format!("/fhir/Patient/{id}/_history")).json();
    assert_eq!(h["type"], "history");
    assert_eq!(h["total"], 2);
    // Encounter with money in yuan; charges come back exactly.
    let e = created_id(&s.post(&doc, "/fhir/Encounter", &encounter(&id, "t1").to_string()));
    let ev = s.get(&doc, &format!("/fhir/Encounter/{e}")).json();
    assert_eq!(
        ev["extension"][0]["extension"][0]["valueMoney"]["value"],
        json!(35.5)
    );
    // $everything returns the patient and the encounter; both reads were logged.
    let all = s
        .get(&doc, &format!("/fhir/Patient/{id}/$everything"))
        .json();
    let types: Vec<&str> = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["Patient", "Encounter"]);
    let log = s.store.access_history(&id, 50).unwrap();
    assert!(
        log.iter()
            .any(|a| a.actor == "doc1" && a.rtype == "Patient")
    );
    // Every write left an audit row.
    let audit = s.store.audit_log(Some(("Patient", &id)), 0, 10).unwrap();
    assert_eq!(
        audit
            .iter()
            .map(|a| a.action.as_str())
            .filter(|a| !a.starts_with("mpi-"))
            .collect::<Vec<_>>(),
        vec!["update", "create"]
    );
    assert_eq!(audit[0].actor, "doc1");
    assert_eq!(audit[0].institution.as_deref(), Some("t1"));
}

#[test]
fn search_parameters_paging_and_summary() {
    let s = TestServer::start();
    seed_county(&s);
    let doc = s.token("doc1");
    for (name, birth, sex, phone) in [
        ("王小明", "1980-05-03", "male", "13800000001"),
        ("王晓红", "1990-01-20", "female", "13800000002"),
        ("李四", "1975-07-07", "male", "13800000003"),
    ] {
        let mut p = patient("t1");
        p["identifier"] = json!([]);
        p["name"] = json!([{ "text": name }]);
        p["birthDate"] = json!(birth);
        p["gender"] = json!(sex);
        p["telecom"] = json!([{ "system": "phone", "value": phone }]);
        created_id(&s.post(&doc, "/fhir/Patient", &p.to_string()));
    }
    let ids = |path: &str| -> Vec<String> {
        let v = s.get(&doc, path).json();
        v["entry"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        e["resource"]["name"][0]["text"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        ids("/fhir/Patient?name=%E7%8E%8B&_sort=birthdate"),
        vec!["王小明", "王晓红"]
    );
    assert_eq!(
        ids("/fhir/Patient?name=%E7%8E%8B&_sort=-birthdate"),
        vec!["王晓红", "王小明"]
    );
    assert_eq!(
        ids("/fhir/Patient?birthdate=ge1980&birthdate=lt1990"),
        vec!["王小明"]
    );
    assert_eq!(ids("/fhir/Patient?gender=female"), vec!["王晓红"]);
    assert_eq!(ids("/fhir/Patient?phone=13800000003"), vec!["李四"]);
    let mut p = patient("t1");
    p["name"] = json!([{ "text": "赵六" }]);
    created_id(&s.post(&doc, "/fhir/Patient", &p.to_string()));
    assert_eq!(
        ids(
            "/fhir/Patient?identifier=https://yigong.org.cn/fhir/sid/resident-id%7C11010519491231002X"
        ),
        vec!["赵六"]
    );
    assert_eq!(
        ids("/fhir/Patient?identifier=11010519491231002X"),
        vec!["赵六"]
    );
    assert!(
        ids("/fhir/Patient?identifier=http://other.example/sid%7C11010519491231002X").is_empty()
    );
    assert_eq!(
        ids("/fhir/Patient?organization=Organization/t1&_sort=birthdate&_count=1&_offset=2"),
        vec!["王小明"]
    );
    let v = s.get(&doc, "/fhir/Patient?_summary=count").json();
    assert_eq!(v["total"], 4);
    assert!(v.get("entry").is_none());
    let v = s
        .get(&doc, "/fhir/Patient?_count=3&_total=accurate&_sort=_id")
        .json();
    assert_eq!(v["total"], 4);
    let next = v["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.contains("_offset=3"));
    let path = next.split_once(&s.addr.to_string()).unwrap().1;
    assert_eq!(
        s.get(&doc, path).json()["entry"].as_array().unwrap().len(),
        1
    );
    let v = s
        .get(&doc, "/fhir/Patient?_elements=gender&_count=1")
        .json();
    let r = &v["entry"][0]["resource"];
    assert!(r.get("name").is_none() && r.get("gender").is_some());
    assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");
    let v = s.get(&doc, "/fhir/Organization?partof=com1").json();
    assert_eq!(v["entry"][0]["resource"]["id"], "t1");
    assert_outcome(
        &s.get(&doc, "/fhir/Patient?shoe=1"),
        400,
        "search-unknown-param",
    );
}

#[test]
fn scope_is_enforced_by_the_server() {
    let s = TestServer::start();
    seed_county(&s);
    let (doc1, doc2, village, boss) = (
        s.token("doc1"),
        s.token("doc2"),
        s.token("village"),
        s.token("weijian"),
    );
    let p1 = created_id(&s.post(&doc1, "/fhir/Patient", &patient("t1").to_string()));
    let r = s.get(&doc2, &format!("/fhir/Patient/{p1}"));
    assert_outcome(&r, 403, "out-of-scope");
    assert_eq!(
        s.get(&doc2, "/fhir/Patient?_summary=count").json()["total"],
        0
    );
    assert_eq!(
        s.get(&doc2, &format!("/fhir/Patient/{p1}/$everything"))
            .status,
        403
    );
    assert_eq!(s.get(&doc1, &format!("/fhir/Patient/{p1}")).status, 200);
    assert_eq!(s.get(&village, &format!("/fhir/Patient/{p1}")).status, 200);
    assert_eq!(s.get(&boss, &format!("/fhir/Patient/{p1}")).status, 200);
    // A clinician of community 2 cannot write into community 1; a read-only role cannot write at all.
    let before = s.snapshot();
    assert_outcome(
        &s.post(&doc2, "/fhir/Encounter", &encounter(&p1, "t1").to_string()),
        403,
        "out-of-scope",
    );
    assert_outcome(
        &s.post(&boss, "/fhir/Patient", &patient("t1").to_string()),
        403,
        "role-cannot-write",
    );
    assert_outcome(
        &s.post(
            &doc1,
            "/fhir/Organization",
            &org(
                "x",
                "某卫生院",
                "township-centre",
                Some("township"),
                Some("com1"),
            )
            .to_string(),
        ),
        403,
        "role-cannot-write",
    );
    assert_eq!(s.snapshot(), before);
}

#[test]
fn bad_input_gets_4xx_and_changes_nothing() {
    let s = TestServer::start();
    seed_county(&s);
    let doc = s.token("doc1");
    let p1 = created_id(&s.post(&doc, "/fhir/Patient", &patient("t1").to_string()));
    let before = s.snapshot();

    assert_outcome(
        &s.post(&doc, "/fhir/Patient", "{\"resourceType\": \"Patient\", "),
        400,
        "malformed-json",
    );
    assert_outcome(
        &s.post(
            &doc,
            "/fhir/Patient",
            &json!({ "resourceType": "Encounter" }).to_string(),
        ),
        400,
        "wrong-resource-type",
    );
    let mut p = patient("t1");
    p["identifier"] = json!([]);
    p["birthDate"] = json!("2999-01-01");
    assert_outcome(
        &s.post(&doc, "/fhir/Patient", &p.to_string()),
        422,
        "birthdate-future",
    );
    let mut p = patient("t1");
    p["birthDate"] = json!("1950-01-01");
    assert_outcome(
        &s.post(&doc, "/fhir/Patient", &p.to_string()),
        422,
        "resident-id-birthdate-mismatch",
    );
    let mut p = patient("t1");
    p["gender"] = json!("male");
    assert_outcome(
        &s.post(&doc, "/fhir/Patient", &p.to_string()),
        422,
        "resident-id-sex-mismatch",
    );
    // (A bad check digit alone is accepted as an unverified identity: tests/empi.rs.)
    assert_outcome(
        &s.post(&doc, "/fhir/Patient", &patient("no-such-org").to_string()),
        422,
        "reference-not-found",
    );
    let mut p = patient("t1");
    p["name"][0]["text"] = json!("王".repeat(51));
    assert_outcome(
        &s.post(&doc, "/fhir/Patient", &p.to_string()),
        422,
        "too-long",
    );
    let mut p = patient("t1");
    p["address"] = json!([{ "text": "村".repeat(5000) }]);
    assert_outcome(
        &s.post(&doc, "/fhir/Patient", &p.to_string()),
        422,
        "too-long",
    );
    let mut e = encounter(&p1, "t1");
    e["extension"][0]["extension"][2]["valueMoney"]["value"] = json!(999.0);
    assert_outcome(
        &s.post(&doc, "/fhir/Encounter", &e.to_string()),
        422,
        "charge-insurance-exceeds-total",
    );
    let mut e = encounter(&p1, "t1");
    e["extension"][0]["extension"][0]["valueMoney"]["value"] = json!(1.234);
    assert_outcome(
        &s.post(&doc, "/fhir/Encounter", &e.to_string()),
        400,
        "charge-format",
    );
    let mut e = encounter(&p1, "t1");
    e["reasonCode"][0]["coding"][0]["code"] = json!("高血压");
    assert_outcome(
        &s.post(&doc, "/fhir/Encounter", &e.to_string()),
        422,
        "icd10-format",
    );

    // Stale and missing If-Match.
    let mut v = s.get(&doc, &format!("/fhir/Patient/{p1}")).json();
    v["telecom"][0]["value"] = json!("13900000000");
    let body = v.to_string();
    assert_outcome(
        &s.put(&doc, &format!("/fhir/Patient/{p1}"), &body, Some("W/\"7\"")),
        412,
        "version-conflict",
    );
    assert_outcome(
        &s.put(&doc, &format!("/fhir/Patient/{p1}"), &body, None),
        428,
        "if-match-required",
    );
    assert_outcome(
        &s.put(&doc, &format!("/fhir/Patient/{p1}"), &body, Some("garbage")),
        400,
        "if-match",
    );

    // A bundle with one bad entry writes none of its entries.
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "fullUrl": "urn:uuid:a", "resource": patient("t1"), "request": { "method": "POST", "url": "Patient" } },
        { "fullUrl": "urn:uuid:b", "resource": encounter("urn:uuid:a", "t1"), "request": { "method": "POST", "url": "Encounter" } },
        { "resource": { "resourceType": "Patient", "birthDate": "2999-01-01" }, "request": { "method": "POST", "url": "Patient" } }
    ]});
    let mut bundle = bundle;
    bundle["entry"][1]["resource"]["subject"]["reference"] = json!("urn:uuid:a");
    assert_outcome(
        &s.post(&doc, "/fhir", &bundle.to_string()),
        422,
        "birthdate-future",
    );
    assert_outcome(
        &s.post(
            &doc,
            "/fhir",
            &json!({ "resourceType": "Bundle", "type": "batch" }).to_string(),
        ),
        400,
        "bundle-type",
    );
    assert_eq!(
        s.snapshot(),
        before,
        "no failed request may change the database"
    );
    assert_eq!(
        s.get(&doc, &format!("/fhir/Patient/{p1}")).json()["meta"]["versionId"],
        "1"
    );
}

#[test]
fn transaction_bundles_resolve_references_and_commit_whole() {
    let s = TestServer::start();
    seed_county(&s);
    let doc = s.token("doc1");
    let mut enc = encounter("x", "t1");
    enc["id"] = json!("enc-1");
    enc["subject"]["reference"] = json!("urn:uuid:11111111-1111-1111-1111-111111111111");
    let mut p = patient("t1");
    p["id"] = json!("pat-1");
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "fullUrl": "urn:uuid:11111111-1111-1111-1111-111111111111", "resource": p, "request": { "method": "POST", "url": "Patient" } },
        { "resource": enc, "request": { "method": "POST", "url": "Encounter" } }
    ]});
    let r = s.post(&doc, "/fhir", &bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["type"], "transaction-response");
    let loc = v["entry"][1]["response"]["location"].as_str().unwrap();
    let e = s
        .get(
            &doc,
            &format!("/fhir/{}", loc.split("/_history").next().unwrap()),
        )
        .json();
    assert_eq!(e["subject"]["reference"], "Patient/pat-1");
    // Posting the same bundle again changes nothing (idempotent by id).
    let before = s.snapshot();
    assert_eq!(s.post(&doc, "/fhir", &bundle.to_string()).status, 200);
    assert_eq!(s.snapshot().1, before.1);
}

#[test]
fn synthea_bundles_import_completely_and_read_back() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("shared/data/synthea-r4 beside the checkout")
        .map(|e| e.unwrap().path())
        .collect();
    // Hospitals and practitioners first, as their references require.
    files.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        (
            !(n.starts_with("hospital") || n.starts_with("practitioner")),
            n,
        )
    });
    assert_eq!(files.len(), 20);
    let s = TestServer::start();
    seed_county(&s);
    let admin = s.token("admin");
    let mut expected =
        std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let b: Value = serde_json::from_str(&text).unwrap();
        for e in b["entry"].as_array().unwrap() {
            expected
                .entry(e["resource"]["resourceType"].as_str().unwrap().into())
                .or_default()
                .insert(e["resource"]["id"].as_str().unwrap().into());
        }
        let r = s.post(&admin, "/fhir", &text);
        assert_eq!(
            r.status,
            200,
            "{}: {}",
            f.display(),
            &r.text[..r.text.len().min(500)]
        );
    }
    for (rtype, ids) in &expected {
        let v = s
            .get(&admin, &format!("/fhir/{rtype}?_summary=count"))
            .json();
        let extra = if rtype == "Organization" { 5 } else { 0 };
        assert_eq!(
            v["total"].as_u64().unwrap() as usize,
            ids.len() + extra,
            "{rtype}"
        );
        let id = ids.iter().next().unwrap();
        let r = s.get(&admin, &format!("/fhir/{rtype}/{id}"));
        assert_eq!(r.status, 200, "{rtype}/{id}");
    }
    // Patient-linked searches work on types without a domain table.
    let pid = expected["Patient"].iter().next().unwrap();
    let v = s
        .get(
            &admin,
            &format!("/fhir/Observation?patient={pid}&date=ge1900&_summary=count"),
        )
        .json();
    assert!(v["total"].as_i64().unwrap() > 0);
}

/// The same API over PostgreSQL (when `YIGONG_TEST_DATABASE_URL` is set): create,
/// read, search, a transaction bundle, If-Match and scope.
#[test]
fn postgres_backend_serves_the_same_api() {
    let Ok(url) = std::env::var("YIGONG_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: YIGONG_TEST_DATABASE_URL not set");
        return;
    };
    let schema = format!("api_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn =
        postgres::Client::connect(&url, postgres::NoTls).expect("PostgreSQL reachable");
    admin_conn
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = yigong_store::Store::open_postgres(&format!(
        "{url}{sep}options=-c%20search_path%3D{schema}"
    ))
    .unwrap();
    let s = TestServer::start_with(std::sync::Arc::new(store), tempfile::tempdir().unwrap());
    seed_county(&s);
    let (doc1, doc2) = (s.token("doc1"), s.token("doc2"));
    let p = created_id(&s.post(&doc1, "/fhir/Patient", &patient("t1").to_string()));
    created_id(&s.post(&doc1, "/fhir/Encounter", &encounter(&p, "t1").to_string()));
    assert_eq!(
        s.get(&doc1, "/fhir/Patient?name=%E7%8E%8B&_summary=count")
            .json()["total"],
        1
    );
    assert_eq!(
        s.get(
            &doc1,
            &format!("/fhir/Encounter?patient={p}&date=ge2026-03-01")
        )
        .json()["entry"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_outcome(
        &s.get(&doc2, &format!("/fhir/Patient/{p}")),
        403,
        "out-of-scope",
    );
    let mut v = s.get(&doc1, &format!("/fhir/Patient/{p}")).json();
    v["telecom"][0]["value"] = json!("13900000000");
    assert_eq!(
        s.put(
            &doc1,
            &format!("/fhir/Patient/{p}"),
            &v.to_string(),
            Some("W/\"1\"")
        )
        .status,
        200
    );
    assert_outcome(
        &s.put(
            &doc1,
            &format!("/fhir/Patient/{p}"),
            &v.to_string(),
            Some("W/\"1\""),
        ),
        412,
        "version-conflict",
    );
    let before = s.snapshot();
    let bad = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "resource": patient("t1"), "request": { "method": "POST", "url": "Patient" } },
        { "resource": patient("missing-org"), "request": { "method": "POST", "url": "Patient" } }
    ]});
    assert_outcome(
        &s.post(&doc1, "/fhir", &bad.to_string()),
        422,
        "reference-not-found",
    );
    assert_eq!(s.snapshot(), before);
    drop(s);
    let _ = admin_conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
}
