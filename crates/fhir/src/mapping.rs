//! Domain → FHIR R4 JSON for the resources the county owns.

use crate::codes::*;
use serde_json::{Value, json};
use yigong_core::patient::split_chinese_name;
use yigong_core::{Condition, Encounter, Fen, Organization, Patient, Practitioner, Tier};

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

fn reference(rtype: &str, id: &str) -> Value {
    json!({ "reference": format!("{rtype}/{id}") })
}

/// FHIR Money for an amount in fen (yuan with two decimals, CNY).
pub fn money(f: Fen) -> Value {
    let value: Value = serde_json::from_str(&f.yuan_string()).unwrap_or(json!(0));
    json!({ "value": value, "currency": "CNY" })
}

pub fn organization(o: &Organization) -> Value {
    let mut types =
        vec![json!({ "coding": [coding(CS_ORG_KIND, o.kind.code(), o.kind.label_zh())] })];
    if let Some(t) = o.tier() {
        types.push(json!({ "coding": [coding(CS_ORG_TIER, t.code(), t.label_zh())] }));
    }
    let hl7 = if o.kind == yigong_core::OrgKind::Department {
        ("dept", "Hospital Department")
    } else if o.kind.is_institution() {
        ("prov", "Healthcare Provider")
    } else {
        ("govt", "Government")
    };
    types.push(json!({ "coding": [coding(CS_HL7_ORG_TYPE, hl7.0, hl7.1)] }));
    let mut r = json!({
        "resourceType": "Organization",
        "id": o.id,
        "active": true,
        "type": types,
        "name": o.name,
    });
    let mut ext = vec![];
    if o.lead {
        ext.push(json!({ "url": EXT_LEAD_HOSPITAL, "valueBoolean": true }));
    }
    if o.sub_centre {
        ext.push(json!({ "url": EXT_SUB_CENTRE, "valueBoolean": true }));
    }
    if let Some(d) = &o.division {
        ext.push(json!({ "url": EXT_DIVISION, "valueCode": d.as_str() }));
    }
    if !ext.is_empty() {
        r["extension"] = Value::Array(ext);
    }
    if let Some(code) = &o.code {
        r["identifier"] = json!([{ "system": SID_ORG_CODE, "value": code }]);
    }
    if let Some(p) = &o.parent {
        r["partOf"] = reference("Organization", p);
    }
    r
}

fn human_name(full: &str) -> Value {
    let (family, given) = split_chinese_name(full);
    let mut n = json!({ "use": "official", "text": full, "family": family });
    if !given.is_empty() {
        n["given"] = json!([given]);
    }
    n
}

pub fn patient(p: &Patient) -> Value {
    let mut ids = vec![];
    if let Some(rid) = &p.resident_id {
        ids.push(json!({
            "use": "official",
            "type": { "coding": [coding("http://terminology.hl7.org/CodeSystem/v2-0203", "NI", "National unique individual identifier")], "text": "居民身份证" },
            "system": SID_RESIDENT_ID, "value": rid.as_str()
        }));
    }
    if let Some(raw) = &p.unverified_id {
        ids.push(json!({ "use": "temp", "system": SID_RESIDENT_ID_UNVERIFIED, "value": raw }));
    }
    if let Some(ins) = &p.insurance {
        ids.push(json!({ "use": "secondary", "system": SID_INSURANCE, "value": ins.number }));
    }
    if let Some(h) = &p.household {
        ids.push(json!({ "use": "secondary", "system": SID_HOUSEHOLD, "value": h }));
    }
    let mut r = json!({
        "resourceType": "Patient",
        "id": p.id,
        "active": true,
        "name": [human_name(&p.name)],
        "gender": p.sex.fhir(),
        "birthDate": p.birth_date.to_string(),
    });
    if !ids.is_empty() {
        r["identifier"] = Value::Array(ids);
    }
    if let Some(phone) = &p.phone {
        r["telecom"] = json!([{ "system": "phone", "value": phone, "use": "mobile" }]);
    }
    if let Some(a) = &p.address {
        r["address"] = json!([{ "use": "home", "text": a, "country": "CN" }]);
    }
    let mut ext = vec![];
    if let Some(v) = &p.village {
        ext.push(json!({ "url": EXT_VILLAGE, "valueCode": v }));
    }
    if let Some(ins) = &p.insurance {
        ext.push(json!({ "url": EXT_INSURANCE, "extension": [
            { "url": "scheme", "valueCoding": coding(CS_INSURANCE_SCHEME, ins.scheme.code(), ins.scheme.label_zh()) },
            { "url": "year", "valueInteger": ins.year }
        ]}));
    }
    if !ext.is_empty() {
        r["extension"] = Value::Array(ext);
    }
    if let Some(m) = &p.managing_institution {
        r["managingOrganization"] = reference("Organization", m);
    }
    r
}

pub fn practitioner(p: &Practitioner) -> Value {
    let mut r = json!({
        "resourceType": "Practitioner",
        "id": p.id,
        "active": true,
        "name": [human_name(&p.name)],
        "gender": p.sex.fhir(),
        "qualification": [{ "code": { "coding": [coding(CS_TITLE, p.title.code(), p.title.label_zh())], "text": p.title.label_zh() } }],
    });
    if let Some(l) = &p.licence {
        r["identifier"] = json!([{ "system": SID_LICENCE, "value": l }]);
    }
    r
}

/// One PractitionerRole for the primary institution and one per secondment (派驻).
pub fn practitioner_roles(p: &Practitioner) -> Vec<Value> {
    let role =
        json!([{ "coding": [coding(CS_PRACTITIONER_ROLE, p.role.code(), p.role.label_zh())] }]);
    let mut out = vec![];
    let mut primary = json!({
        "resourceType": "PractitionerRole",
        "id": format!("{}-primary", p.id),
        "active": true,
        "practitioner": reference("Practitioner", &p.id),
        "organization": reference("Organization", &p.primary_institution),
        "code": role,
    });
    if let Some(d) = &p.department {
        primary["extension"] = json!([{ "url": format!("{BASE}/StructureDefinition/department"), "valueReference": reference("Organization", d) }]);
    }
    out.push(primary);
    for (i, s) in p.secondments.iter().enumerate() {
        let mut period = json!({ "start": s.start.to_string() });
        if let Some(e) = s.end {
            period["end"] = json!(e.to_string());
        }
        out.push(json!({
            "resourceType": "PractitionerRole",
            "id": format!("{}-s{}", p.id, i + 1),
            "active": true,
            "extension": [{ "url": EXT_SECONDMENT, "valueBoolean": true }],
            "period": period,
            "practitioner": reference("Practitioner", &p.id),
            "organization": reference("Organization", &s.institution),
            "code": role,
        }));
    }
    out
}

pub fn encounter(e: &Encounter) -> Value {
    let mut period = json!({ "start": e.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) });
    if let Some(end) = e.end {
        period["end"] = json!(end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let status = match (e.class, e.end) {
        (yigong_core::EncounterClass::Inpatient, None) => "in-progress",
        _ => "finished",
    };
    let c = &e.charges;
    let parts = [
        c.drugs,
        c.consumables,
        c.exams,
        c.services,
        c.insurance_paid,
    ];
    let charges: Vec<Value> = CHARGE_PARTS
        .iter()
        .zip(parts)
        .map(|(name, f)| json!({ "url": name, "valueMoney": money(f) }))
        .collect();
    let mut r = json!({
        "resourceType": "Encounter",
        "id": e.id,
        "extension": [
            { "url": EXT_IN_COUNTY, "valueBoolean": e.in_county },
            { "url": EXT_CHARGES, "extension": charges }
        ],
        "status": status,
        "class": { "system": CS_ACT_CODE, "code": e.class.act_code(), "display": e.class.label_zh() },
        "subject": reference("Patient", &e.patient),
        "period": period,
        "serviceProvider": reference("Organization", &e.institution),
    });
    if !e.diagnoses.is_empty() {
        r["reasonCode"] = Value::Array(
            e.diagnoses
                .iter()
                .map(|d| json!({ "coding": [{ "system": CS_ICD10, "code": d.as_str() }] }))
                .collect(),
        );
    }
    if let Some(p) = &e.practitioner {
        r["participant"] = json!([{ "individual": reference("Practitioner", p) }]);
    }
    if let Some(d) = &e.department {
        r["location"] = json!([{ "location": { "display": d } }]);
        if let Some(a) = r["extension"].as_array_mut() {
            a.push(json!({ "url": format!("{BASE}/StructureDefinition/department"), "valueReference": reference("Organization", d) }))
        }
    }
    if e.class == yigong_core::EncounterClass::Inpatient
        && let Some(los) = e.length_of_stay_days()
    {
        r["length"] = json!({ "value": los, "unit": "天", "system": "http://unitsofmeasure.org", "code": "d" });
    }
    r
}

pub fn condition(c: &Condition) -> Value {
    let mut r = json!({
        "resourceType": "Condition",
        "id": c.id,
        "extension": [
            { "url": EXT_RECORDED_AT, "valueReference": reference("Organization", &c.institution) },
            { "url": EXT_CHRONIC, "valueBoolean": c.chronic }
        ],
        "clinicalStatus": { "coding": [{ "system": CS_CONDITION_CLINICAL, "code": "active" }] },
        "category": [{ "coding": [{ "system": CS_CONDITION_CATEGORY, "code": if c.chronic { "problem-list-item" } else { "encounter-diagnosis" } }] }],
        "code": { "coding": [{ "system": CS_ICD10, "code": c.code.as_str(), "display": c.display }], "text": c.display },
        "subject": reference("Patient", &c.patient),
        "onsetDateTime": c.onset.to_string(),
    });
    if let Some(e) = &c.encounter {
        r["encounter"] = reference("Encounter", e);
    }
    r
}

/// Label of a tier code for pages.
pub fn tier_label(code: &str) -> &'static str {
    Tier::from_code(code).map_or("其他", Tier::label_zh)
}
