//! CDS Hooks shapes: a prescription sent as an order-sign request (as an EHR
//! would) reads back to the same prescription, so the service reviews exactly
//! what the client drafted; and bad requests are refused with a reason.

use chrono::NaiveDate;
use serde_json::json;
use yigong_rx::Knowledge;
use yigong_rx::cds::{
    missing_prefetch, order_sign_request, parse_request, patient_facts, prescription,
};
use yigong_rx::model::{
    Allergy, Item, PatientFacts, Prescriber, Prescription, Setting, Sex, SkinTest, Tier,
};

fn sample(k: &Knowledge) -> Prescription {
    let amox = k.drug("J01CA04").expect("amoxicillin in the formulary");
    let aml = k.drug("C08CA01").expect("amlodipine in the formulary");
    Prescription {
        date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        setting: Setting::Emergency,
        long_term: false,
        tier: Tier::Township,
        prescriber: Prescriber::default(),
        patient: PatientFacts {
            birth_date: NaiveDate::from_ymd_opt(1990, 4, 1),
            sex: Some(Sex::Female),
            weight_kg: Some(58.5),
            pregnant: Some(true),
            lactating: Some(false),
            egfr: Some(52.0),
            hepatic: None,
            allergies: vec![Allergy {
                code: None,
                text: "磺胺".into(),
            }],
        },
        diagnoses: vec!["J02.9".into(), "I10".into()],
        items: vec![
            Item {
                drug: amox.code.clone(),
                dose: 500.0,
                unit: "mg".into(),
                frequency: "tid".into(),
                route: "po".into(),
                days: 3,
                group: None,
                skin_test: SkinTest::Negative,
            },
            Item {
                drug: aml.code.clone(),
                dose: 5.0,
                unit: "mg".into(),
                frequency: "qd".into(),
                route: "po".into(),
                days: 3,
                group: Some(2),
                skin_test: SkinTest::NotRecorded,
            },
        ],
    }
}

#[test]
fn a_prescription_round_trips_through_order_sign() {
    let k = Knowledge::shipped().unwrap();
    let rx = sample(&k);
    let req = order_sign_request("1f5cbd0e-7a1c-4b7e-9d5e-1a2b3c4d5e6f", "p9", &rx);
    let o = parse_request(&req, &k).unwrap();
    assert!(missing_prefetch(&o).is_empty());
    let (facts, diagnoses) = patient_facts(&o.prefetch);
    let back = prescription(
        &o,
        facts,
        diagnoses,
        rx.date,
        rx.tier,
        rx.prescriber.clone(),
    );
    assert_eq!(back, rx);
    assert_eq!(yigong_rx::review(&k, &back), yigong_rx::review(&k, &rx));
}

#[test]
fn atc_codes_chinese_names_and_units_are_understood() {
    let k = Knowledge::shipped().unwrap();
    let req = json!({
        "hook": "order-sign", "hookInstance": "x",
        "context": { "userId": "Practitioner/1", "patientId": "Patient/p1", "draftOrders": { "resourceType": "Bundle", "entry": [
            { "resource": { "resourceType": "MedicationRequest", "status": "draft", "intent": "order",
                "medicationCodeableConcept": { "text": "阿莫西林" },
                "dosageInstruction": [{ "timing": { "repeat": { "frequency": 1, "period": 8, "periodUnit": "h" } }, "route": { "text": "口服" },
                    "doseAndRate": [{ "doseQuantity": { "value": 0.5, "unit": "g" } }] }],
                "dispenseRequest": { "expectedSupplyDuration": { "value": 1, "unit": "wk" } },
                "courseOfTherapyType": { "coding": [{ "code": "continuous" }] } } }
        ] } }
    });
    let o = parse_request(&req, &k).unwrap();
    assert_eq!(o.patient_id, "p1");
    let d = &o.drafts[0];
    assert!(d.item.drug.starts_with("J01CA04"), "{}", d.item.drug);
    assert_eq!(
        (
            d.item.frequency.as_str(),
            d.item.route.as_str(),
            d.item.days
        ),
        ("q8h", "po", 7)
    );
    assert!(d.long_term);
    assert_eq!(missing_prefetch(&o).len(), 4);
}

#[test]
fn bad_requests_say_what_is_wrong() {
    let k = Knowledge::shipped().unwrap();
    let ok = || json!({ "hook": "order-sign", "hookInstance": "x", "context": { "userId": "Practitioner/1", "patientId": "p1", "draftOrders": { "resourceType": "Bundle", "entry": [ { "resource": { "resourceType": "MedicationRequest", "medicationCodeableConcept": { "text": "x" } } } ] } } });
    assert!(parse_request(&ok(), &k).is_ok());
    for (mutate, needle) in [
        (
            Box::new(|v: &mut serde_json::Value| v["hook"] = json!("patient-view"))
                as Box<dyn Fn(&mut serde_json::Value)>,
            "order-sign",
        ),
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("hookInstance");
            }),
            "hookInstance",
        ),
        (
            Box::new(|v| {
                v["context"].as_object_mut().unwrap().remove("patientId");
            }),
            "patientId",
        ),
        (
            Box::new(|v| v["context"]["draftOrders"] = json!({ "resourceType": "List" })),
            "Bundle",
        ),
        (
            Box::new(|v| v["context"]["draftOrders"]["entry"] = json!([])),
            "MedicationRequest",
        ),
        (
            Box::new(|v| {
                v["context"]["draftOrders"]["entry"][0]["resource"]["dispenseRequest"] =
                    json!({ "expectedSupplyDuration": { "value": 3, "unit": "fortnight" } })
            }),
            "单位",
        ),
    ] {
        let mut v = ok();
        mutate(&mut v);
        let e = parse_request(&v, &k).unwrap_err();
        assert!(e.0.contains(needle), "{} should mention {needle}", e.0);
    }
    assert!(parse_request(&json!([1, 2]), &k).is_err());
}
