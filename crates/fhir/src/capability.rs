//! The CapabilityStatement served at `/fhir/metadata`.

use crate::search::parameters;
use serde_json::{Value, json};

/// Resource types with first-class handling; any other type is still accepted
/// and stored as a versioned resource searchable by patient and date.
pub const CORE_TYPES: [&str; 12] = [
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "Encounter",
    "Condition",
    // Care across the community: referral, orders and results, consultations, appointments.
    "ServiceRequest",
    "Task",
    "DiagnosticReport",
    "Schedule",
    "Slot",
    "Appointment",
];

pub fn capability_statement(base: &str, version: &str) -> Value {
    let mut resources: Vec<Value> = CORE_TYPES
        .iter()
        .map(|t| {
            let params: Vec<Value> =
                parameters(t).into_iter().map(|(n, _, k)| json!({ "name": n, "type": k })).collect();
            let mut ops = vec![];
            if *t == "Patient" {
                ops.push(json!({ "name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything" }));
            }
            let mut r = json!({
                "type": t,
                "versioning": "versioned",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "interaction": [
                    { "code": "read" }, { "code": "vread" }, { "code": "update" }, { "code": "create" },
                    { "code": "search-type" }, { "code": "history-instance" }
                ],
                "searchParam": params,
            });
            if !ops.is_empty() {
                r["operation"] = Value::Array(ops);
            }
            r
        })
        .collect();
    let generic: Vec<Value> = parameters("Observation")
        .into_iter()
        .map(|(n, _, k)| json!({ "name": n, "type": k }))
        .collect();
    resources.push(json!({
        "type": "Observation",
        "versioning": "versioned",
        "interaction": [{ "code": "read" }, { "code": "vread" }, { "code": "update" }, { "code": "create" }, { "code": "search-type" }],
        "searchParam": generic,
        "documentation": "其他资源类型(如 Observation、Procedure、Immunization、Claim 等)同样可读写,支持按 patient、date、code 搜索"
    }));
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "yigong",
        "kind": "instance",
        "software": { "name": "yigong 医共", "version": version },
        "implementation": { "description": "紧密型县域医共体信息平台 FHIR R4 接口", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": { "cors": false, "description": "Bearer 令牌(yigong token 命令签发);所有查询按用户管辖范围过滤" },
            "resource": resources,
            "interaction": [{ "code": "transaction" }]
        }]
    })
}
