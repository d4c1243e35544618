//! CDS Hooks 2.0 `order-sign`: discovery, cards from the review engine, prefetch
//! and fetch-on-demand (local and from the client's FHIR server), feedback, and
//! bad requests — every document checked against the CDS Hooks JSON schemas.

mod common;

use common::*;
use serde_json::{Value, json};

const ATC: &str = "http://www.whocc.no/atc";

/// A draft MedicationRequest: (dose, unit, GTS frequency code, route, days).
fn med(
    id: &str,
    atc: &str,
    text: &str,
    (dose, unit, freq, route, days): (f64, &str, &str, &str, u32),
) -> Value {
    let route_code = match route {
        "po" => "26643006",
        "iv" => "47625008",
        _ => "78421000",
    };
    json!({
        "resourceType": "MedicationRequest",
        "id": id,
        "status": "draft",
        "intent": "order",
        "subject": { "reference": "Patient/p1" },
        "medicationCodeableConcept": { "coding": [{ "system": ATC, "code": atc }], "text": text },
        "dosageInstruction": [{
            "timing": { "code": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": freq }] } },
            "route": { "coding": [{ "system": "http://snomed.info/sct", "code": route_code }] },
            "doseAndRate": [{ "doseQuantity": { "value": dose, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit } }]
        }],
        "dispenseRequest": { "expectedSupplyDuration": { "value": days, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d" } }
    })
}

fn request(patient: &str, meds: Vec<Value>, prefetch: Option<Value>) -> Value {
    let mut r = json!({
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/doc1",
            "patientId": patient,
            "draftOrders": { "resourceType": "Bundle", "type": "collection", "entry": meds.into_iter().map(|m| json!({ "resource": m })).collect::<Vec<_>>() }
        }
    });
    if let Some(p) = prefetch {
        r["prefetch"] = p;
    }
    r
}

fn bundle(resources: Vec<Value>) -> Value {
    json!({ "resourceType": "Bundle", "type": "searchset", "entry": resources.into_iter().map(|r| json!({ "resource": r })).collect::<Vec<_>>() })
}

fn adult_prefetch(allergy_text: Option<&str>) -> Value {
    let allergies = allergy_text
        .map(|t| vec![json!({ "resourceType": "AllergyIntolerance", "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active" }] }, "code": { "text": t }, "patient": { "reference": "Patient/p1" } })])
        .unwrap_or_default();
    json!({
        "patient": { "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-05-01" },
        "conditions": bundle(vec![
            json!({ "resourceType": "Condition", "code": { "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "J02.9" }] }, "subject": { "reference": "Patient/p1" } }),
            json!({ "resourceType": "Condition", "code": { "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I48" }] }, "subject": { "reference": "Patient/p1" } }),
            json!({ "resourceType": "Condition", "code": { "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "M54.5" }] }, "subject": { "reference": "Patient/p1" } })
        ]),
        "allergies": bundle(allergies),
        "labs": bundle(vec![json!({ "resourceType": "Observation", "status": "final", "code": { "coding": [{ "system": "http://loinc.org", "code": "29463-7" }] }, "effectiveDateTime": "2026-11-01T08:00:00+08:00", "valueQuantity": { "value": 60, "unit": "kg", "code": "kg" } })])
    })
}

fn rules(resp: &Value) -> Vec<(String, String)> {
    resp["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["source"]["topic"]["code"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                c["indicator"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn server() -> (TestServer, String) {
    let s = TestServer::start();
    seed_county(&s);
    let t = s.token("doc1");
    (s, t)
}

#[test]
fn discovery_is_public_and_valid() {
    let (s, _) = server();
    let r = s.get("", "/cds-services");
    assert_eq!(r.status, 200);
    let d = r.json();
    assert_eq!(d["services"][0]["hook"], "order-sign");
    assert_eq!(d["services"][0]["id"], "order-sign");
    validate_cds_json("discovery-response", &[d]);
}

#[test]
fn order_sign_cards_for_allergy_and_interaction() {
    let (s, t) = server();
    let req = request(
        "p1",
        vec![
            med("m1", "J01CA04", "阿莫西林", (500.0, "mg", "TID", "po", 5)),
            med("m2", "B01AA03", "华法林", (3.0, "mg", "QD", "po", 7)),
            med("m3", "M01AE01", "布洛芬", (400.0, "mg", "TID", "po", 3)),
        ],
        Some(adult_prefetch(Some("青霉素"))),
    );
    validate_cds_json("order-sign-request", std::slice::from_ref(&req));
    let r = s.post(&t, "/cds-services/order-sign", &req.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    let resp = r.json();
    let got = rules(&resp);
    assert!(
        got.contains(&("ALLERGY".into(), "critical".into())),
        "{got:?}"
    );
    assert!(
        got.iter().any(|(r, _)| r == "DDI"),
        "warfarin × ibuprofen: {got:?}"
    );
    // The most severe card comes first, and the allergy card offers to delete the draft.
    assert_eq!(resp["cards"][0]["indicator"], "critical");
    let allergy = resp["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"]["topic"]["code"] == "ALLERGY")
        .unwrap();
    assert_eq!(
        allergy["suggestions"][0]["actions"][0]["resourceId"][0],
        "MedicationRequest/m1"
    );
    validate_cds_json("response", &[resp]);
    // The same drugs for a patient without the allergy: no allergy card.
    let req = request(
        "p1",
        vec![med(
            "m1",
            "J01CA04",
            "阿莫西林",
            (500.0, "mg", "TID", "po", 5),
        )],
        Some(adult_prefetch(None)),
    );
    let resp = s
        .post(&t, "/cds-services/order-sign", &req.to_string())
        .json();
    assert!(
        !rules(&resp).iter().any(|(r, _)| r == "ALLERGY"),
        "{:?}",
        rules(&resp)
    );
    validate_cds_json("response", &[resp]);
}

#[test]
fn bad_requests_get_400_and_bad_orders_get_findings() {
    let (s, t) = server();
    let r = s.post(&t, "/cds-services/order-sign", "{not json");
    assert_eq!(r.status, 400);
    assert!(r.text.contains("JSON"), "{}", r.text);
    let mut req = request(
        "p1",
        vec![med(
            "m1",
            "J01CA04",
            "阿莫西林",
            (500.0, "mg", "TID", "po", 5),
        )],
        Some(adult_prefetch(None)),
    );
    req["hook"] = json!("patient-view");
    let r = s.post(&t, "/cds-services/order-sign", &req.to_string());
    assert_eq!(r.status, 400);
    assert!(r.text.contains("order-sign"), "{}", r.text);
    let mut req = request("p1", vec![], Some(adult_prefetch(None)));
    req["context"]
        .as_object_mut()
        .unwrap()
        .remove("draftOrders");
    assert_eq!(
        s.post(&t, "/cds-services/order-sign", &req.to_string())
            .status,
        400
    );
    let r = s.post(
        "",
        "/cds-services/order-sign",
        &request("p1", vec![], None).to_string(),
    );
    assert_eq!(r.status, 401);

    // An unknown drug code and an impossible dose are findings, never a silent pass.
    let req = request(
        "p1",
        vec![
            med("m1", "Z99ZZ99", "不存在的药", (1.0, "mg", "QD", "po", 3)),
            med("m2", "M01AE01", "布洛芬", (0.0, "mg", "TID", "po", 3)),
            med("m3", "B01AA03", "华法林", (-2.0, "mg", "QD", "po", 3)),
        ],
        Some(adult_prefetch(None)),
    );
    let resp = s
        .post(&t, "/cds-services/order-sign", &req.to_string())
        .json();
    let got = rules(&resp);
    assert!(
        got.contains(&("FMT-UNKNOWN-DRUG".into(), "critical".into())),
        "{got:?}"
    );
    assert_eq!(
        got.iter()
            .filter(|(r, i)| r == "FMT-DOSE" && i == "critical")
            .count(),
        2,
        "{got:?}"
    );
    validate_cds_json("response", &[resp]);
}

#[test]
fn child_dosed_per_kg_without_weight_is_blocked() {
    let (s, t) = server();
    let k = s.store.rx_state();
    let d = k
        .knowledge
        .drugs
        .iter()
        .find(|d| {
            d.child_per_kg.is_some()
                && d.routes.iter().any(|r| r == "po")
                && d.child_min_age_days.is_none()
        })
        .expect("the formulary has a drug dosed per kg in children");
    let mut pf = adult_prefetch(None);
    pf["patient"]["birthDate"] = json!("2022-03-01");
    pf["labs"] = bundle(vec![]);
    let dose = d.adult.min_dose.unwrap_or(d.strength);
    let req = request(
        "p1",
        vec![med(
            "m1",
            &d.code,
            &d.generic,
            (dose, &d.dose_unit, "BID", "po", 3),
        )],
        Some(pf.clone()),
    );
    let resp = s
        .post(&t, "/cds-services/order-sign", &req.to_string())
        .json();
    assert!(
        rules(&resp).contains(&("FMT-WEIGHT".into(), "critical".into())),
        "{}: {:?}",
        d.code,
        rules(&resp)
    );
    validate_cds_json("response", &[resp]);
}

/// Without prefetch the service fetches the facts itself: from this server's
/// record when the client names no FHIR server, from the client's server otherwise.
#[test]
fn fetch_on_demand_local_and_remote() {
    let (s, t) = server();
    let admin = s.token("admin");
    let r = s.put(&admin, "/fhir/Patient/p1", &json!({ "resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1960-01-01", "managingOrganization": { "reference": "Organization/t1" } }).to_string(), None);
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    let allergy = json!({ "resourceType": "AllergyIntolerance", "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active" }] }, "code": { "text": "青霉素类" }, "patient": { "reference": "Patient/p1" } });
    let r = s.post(&t, "/fhir/AllergyIntolerance", &allergy.to_string());
    assert_eq!(r.status, 201, "{}", r.text);
    let draft = || {
        vec![med(
            "m1",
            "J01CA04",
            "阿莫西林",
            (500.0, "mg", "TID", "po", 5),
        )]
    };

    let resp = s.post(
        &t,
        "/cds-services/order-sign",
        &request("p1", draft(), None).to_string(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(
        rules(&resp.json()).contains(&("ALLERGY".into(), "critical".into())),
        "local fetch: {:?}",
        rules(&resp.json())
    );

    let mut req = request("p1", draft(), None);
    req["fhirServer"] = json!(s.url("/fhir"));
    req["fhirAuthorization"] = json!({ "access_token": t, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "yigong-test" });
    validate_cds_json("order-sign-request", std::slice::from_ref(&req));
    let resp = s.post(&t, "/cds-services/order-sign", &req.to_string());
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(
        rules(&resp.json()).contains(&("ALLERGY".into(), "critical".into())),
        "remote fetch: {:?}",
        rules(&resp.json())
    );

    // A server that refuses the token: the service says it cannot get the data.
    req["fhirAuthorization"]["access_token"] = json!("wrong-token");
    let resp = s.post(&t, "/cds-services/order-sign", &req.to_string());
    assert_eq!(resp.status, 412, "{}", resp.text);
    assert!(resp.text.contains("预取"), "{}", resp.text);
}

#[test]
fn feedback_is_recorded() {
    let (s, t) = server();
    let before = s.store.audit_count().unwrap();
    let fb = json!({ "feedback": [{
        "card": "9b9b9b9b-1111-4222-8333-444455556666",
        "outcome": "overridden",
        "overrideReason": { "reason": { "system": "https://yigong.org.cn/fhir/CodeSystem/rx-override-reason", "code": "tolerated-before", "display": "患者既往使用耐受良好" }, "userComment": "长期服用" },
        "outcomeTimestamp": "2026-11-25T08:00:00Z"
    }] });
    validate_cds_json("feedback", std::slice::from_ref(&fb));
    let r = s.post(&t, "/cds-services/order-sign/feedback", &fb.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.store.audit_count().unwrap(), before + 1);
    let log = s.store.audit_log(None, 0, 1).unwrap();
    assert_eq!(log[0].action, "cds-feedback");
    assert!(log[0].reason.as_deref().unwrap().contains("耐受"));
    let r = s.post(
        &t,
        "/cds-services/order-sign/feedback",
        &json!({ "feedback": [{ "card": "x" }] }).to_string(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(s.store.audit_count().unwrap(), before + 1);
}
