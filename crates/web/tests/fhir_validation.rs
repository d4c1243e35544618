//! Every kind of JSON the API emits is validated as FHIR R4 by an independent
//! validator (Python `fhir.resources` 6.5, R4 models). CI installs it; on a
//! machine without it the test says so and passes only outside CI.

mod common;
use common::*;
use serde_json::{Value, json};
use yigong_core::*;
use yigong_fhir::mapping;

#[test]
fn emitted_json_validates_as_fhir_r4() {
    let Some(python) = fhir_validator() else {
        return;
    };
    let s = TestServer::start();
    seed_county(&s);
    let admin = s.token("admin");
    let doc = s.token("doc1");
    let out = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut keep = |name: &str, body: &str| {
        let v: Value = serde_json::from_str(body).unwrap();
        std::fs::write(
            out.path().join(format!("{n:03}-{name}.json")),
            serde_json::to_string_pretty(&v).unwrap(),
        )
        .unwrap();
        n += 1;
    };

    // Domain objects through the mapping, written through the API.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let practitioner = Practitioner {
        id: "pr-1".into(),
        name: "欧阳明".into(),
        sex: Sex::Male,
        role: Role::Physician,
        title: Title::Attending,
        licence: Some("110510000012345".into()),
        primary_institution: "t1".into(),
        department: None,
        secondments: vec![Secondment {
            institution: "t2".into(),
            start: day,
            end: Some(day + chrono::Duration::days(364)),
        }],
    };
    let r = s.put(
        &admin,
        "/fhir/Practitioner/pr-1",
        &mapping::practitioner(&practitioner).to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    keep("practitioner", &r.text);
    for role in mapping::practitioner_roles(&practitioner) {
        let r = s.put(
            &admin,
            &format!("/fhir/PractitionerRole/{}", role["id"].as_str().unwrap()),
            &role.to_string(),
            None,
        );
        assert_eq!(r.status, 201, "{}", r.text);
        keep("practitioner-role", &r.text);
    }
    let org = Organization {
        id: "t3".into(),
        name: "丙镇中心卫生院".into(),
        kind: OrgKind::TownshipCentre,
        parent: Some("com1".into()),
        division: Some(DivisionCode::parse("510521113").unwrap()),
        lead: false,
        sub_centre: true,
        code: Some("12510521MB0000000X".into()),
    };
    let r = s.put(
        &admin,
        "/fhir/Organization/t3",
        &mapping::organization(&org).to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    keep("organization", &r.text);
    let patient = Patient {
        id: "pat-1".into(),
        name: "王晓红".into(),
        sex: Sex::Female,
        birth_date: chrono::NaiveDate::from_ymd_opt(1949, 12, 31).unwrap(),
        resident_id: Some(ResidentId::parse("11010519491231002X").unwrap()),
        phone: Some("13812345678".into()),
        village: Some("510521100201".into()),
        household: Some("H0001".into()),
        address: Some("四川省泸州市泸县福集镇龙华村3组25号".into()),
        insurance: Some(Insurance {
            scheme: InsuranceScheme::Resident,
            number: "51052100000001".into(),
            year: 2026,
        }),
        managing_institution: Some("t1".into()),
        unverified_id: None,
    };
    let r = s.put(
        &doc,
        "/fhir/Patient/pat-1",
        &mapping::patient(&patient).to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    keep("patient", &r.text);
    let enc = Encounter {
        id: "enc-1".into(),
        patient: "pat-1".into(),
        class: EncounterClass::Inpatient,
        institution: "t1".into(),
        department: None,
        practitioner: Some("pr-1".into()),
        start: "2026-03-01T01:00:00Z".parse().unwrap(),
        end: Some("2026-03-06T03:00:00Z".parse().unwrap()),
        in_county: true,
        diagnoses: vec![
            Icd10::parse("J18.9").unwrap(),
            Icd10::parse("I10.x00x002").unwrap(),
        ],
        charges: Charges {
            drugs: Fen(152_050),
            consumables: Fen(20_000),
            exams: Fen(50_001),
            services: Fen(80_000),
            insurance_paid: Fen(200_000),
        },
    };
    let r = s.put(
        &doc,
        "/fhir/Encounter/enc-1",
        &mapping::encounter(&enc).to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    keep("encounter", &r.text);
    let cond = Condition {
        id: "cond-1".into(),
        patient: "pat-1".into(),
        code: Icd10::parse("I10").unwrap(),
        display: "原发性高血压".into(),
        onset: day,
        institution: "t1".into(),
        encounter: Some("enc-1".into()),
        chronic: true,
    };
    let r = s.put(
        &doc,
        "/fhir/Condition/cond-1",
        &mapping::condition(&cond).to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    keep("condition", &r.text);

    // Reads, searches, history, $everything, metadata, a transaction response and errors.
    for path in [
        "/fhir/metadata",
        "/fhir/Patient/pat-1",
        "/fhir/Patient?name=%E7%8E%8B&_total=accurate&_count=1",
        "/fhir/Patient?_summary=count",
        "/fhir/Patient?_elements=name,gender",
        "/fhir/Encounter?patient=pat-1&date=ge2026-01",
        "/fhir/Organization?partof=com1",
        "/fhir/PractitionerRole?practitioner=pr-1",
        "/fhir/Patient/pat-1/_history",
        "/fhir/Patient/pat-1/$everything",
        "/fhir/Patient/nope",
        "/fhir/Patient?bad-param=1",
    ] {
        let r = s.get(&doc, path);
        keep("get", &r.text);
    }
    let tx = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
        { "fullUrl": "urn:uuid:x", "resource": patient_fixture(), "request": { "method": "POST", "url": "Patient" } }
    ]});
    keep(
        "transaction-response",
        &s.post(&doc, "/fhir", &tx.to_string()).text,
    );
    // The index: the fixture above is the same resident as pat-1, so pat-1 now
    // carries Patient.link; the master Person, a $match answer, a Consent and a
    // registration with an unverified ID.
    let person = s.store.mpi_person_of("pat-1").unwrap().unwrap();
    for path in [
        "/fhir/Patient/pat-1".to_string(),
        format!("/fhir/Person/{}", person.id),
    ] {
        let r = s.get(&doc, &path);
        assert_eq!(r.status, 200, "{}", r.text);
        keep("index", &r.text);
    }
    assert!(s.get(&doc, "/fhir/Patient/pat-1").json()["link"].is_array());
    let q = json!({ "resourceType": "Parameters", "parameter": [{ "name": "resource", "resource": patient_fixture() }] });
    keep(
        "match",
        &s.post(&doc, "/fhir/Patient/$match", &q.to_string()).text,
    );
    let consent = json!({
        "resourceType": "Consent", "id": "consent-1", "status": "active",
        "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0" }] }],
        "patient": { "reference": "Patient/pat-1" },
        "policyRule": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT" }] },
        "provision": { "type": "deny" }
    });
    let r = s.put(&doc, "/fhir/Consent/consent-1", &consent.to_string(), None);
    assert_eq!(r.status, 201, "{}", r.text);
    keep("consent", &r.text);
    let mut unverified = common::patient("t1");
    unverified["identifier"][0]["value"] = json!("110105194912310021");
    let r = s.post(&doc, "/fhir/Patient", &unverified.to_string());
    assert_eq!(r.status, 201, "{}", r.text);
    keep("unverified", &r.text);
    keep("malformed", &s.post(&doc, "/fhir/Patient", "{").text);
    keep("unauthenticated", &s.get("bad", "/fhir/Patient").text);

    validate_fhir_dir(&python, out.path(), n);
}

fn patient_fixture() -> Value {
    let mut p = patient("t1");
    p["identifier"] = json!([]);
    p
}
