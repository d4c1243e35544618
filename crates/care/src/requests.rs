//! ServiceRequests (referral, exam order, consultation) and the results of an
//! exam (DiagnosticReport with Observations): builders and readers.

use crate::codes::*;
use crate::exams::{self, CentreKind, ExamItem};
use crate::{CareError, Flow};
use serde_json::{Value, json};
use yigong_fhir::extract::parse_reference;

/// What the store checks on a ServiceRequest of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub flow: Flow,
    pub patient: Option<String>,
    /// The institution that asks (the `recorded-at` extension).
    pub requester_org: Option<String>,
    /// The institution asked (first performer that is an Organization).
    pub performer_org: Option<String>,
    /// Performer named only by text (a hospital outside the county).
    pub performer_display: Option<String>,
    pub priority: String,
    /// Referral: "up" or "down".
    pub direction: Option<String>,
    pub out_of_county: bool,
    /// Exam: the item code.
    pub item: Option<String>,
    pub repeat_reason: Option<String>,
    pub status: String,
    /// `Type/id` of supportingInfo references.
    pub supporting: Vec<String>,
}

fn ext<'a>(v: &'a Value, url: &str) -> Option<&'a Value> {
    v.get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(url))
}

fn codes_in<'a>(v: &'a Value, system: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    v.get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |c| c.get("system").and_then(Value::as_str) == Some(system))
        .filter_map(|c| c.get("code").and_then(Value::as_str))
}

/// The flow a ServiceRequest belongs to (its category coded in [`CS_FLOW`]).
pub fn flow_of(sr: &Value) -> Option<Flow> {
    sr.get("category")?
        .as_array()?
        .iter()
        .flat_map(|c| codes_in(c, CS_FLOW))
        .find_map(Flow::from_code)
}

fn ref_org(v: Option<&Value>) -> Option<String> {
    let (t, id) = parse_reference(v?.get("reference")?.as_str()?)?;
    (t == "Organization").then(|| id.to_string())
}

/// Reads a ServiceRequest of ours; `Ok(None)` for one that belongs to no flow.
pub fn read(sr: &Value) -> Result<Option<RequestView>, CareError> {
    let Some(flow) = flow_of(sr) else {
        return Ok(None);
    };
    let performers: Vec<&Value> = sr
        .get("performer")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let performer_org = performers.iter().find_map(|p| ref_org(Some(p)));
    let performer_display = performers
        .iter()
        .find_map(|p| p.get("display").and_then(Value::as_str))
        .map(str::to_string);
    let item = sr
        .get("code")
        .and_then(|c| codes_in(c, CS_EXAM_ITEM).next())
        .map(str::to_string);
    if flow == Flow::Exam {
        match item.as_deref() {
            None => {
                return Err(CareError::invalid(
                    "missing-item",
                    format!("检查申请必须以检查项目目录({CS_EXAM_ITEM})编码 ServiceRequest.code"),
                ));
            }
            Some(c) if exams::item(c).is_none() => {
                return Err(CareError::invalid(
                    "unknown-item",
                    format!("检查项目“{c}”不在目录中"),
                ));
            }
            _ => {}
        }
    }
    let direction = ext(sr, EXT_DIRECTION)
        .and_then(|e| e.get("valueCode"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if flow == Flow::Referral && !matches!(direction.as_deref(), Some("up" | "down")) {
        return Err(CareError::invalid(
            "missing-direction",
            "转诊申请必须注明方向(上转 up / 下转 down)",
        ));
    }
    Ok(Some(RequestView {
        flow,
        patient: sr
            .get("subject")
            .and_then(|s| s.get("reference"))
            .and_then(Value::as_str)
            .and_then(parse_reference)
            .filter(|(t, _)| *t == "Patient")
            .map(|(_, id)| id.to_string()),
        requester_org: ext(sr, EXT_RECORDED_AT).and_then(|e| ref_org(e.get("valueReference"))),
        performer_org,
        performer_display,
        priority: sr
            .get("priority")
            .and_then(Value::as_str)
            .unwrap_or("routine")
            .to_string(),
        direction,
        out_of_county: out_of_county_filing(sr).is_some(),
        item,
        repeat_reason: ext(sr, EXT_REPEAT_REASON)
            .and_then(|e| e.get("valueString"))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string),
        status: sr
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        supporting: sr
            .get("supportingInfo")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("reference").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
    }))
}

/// The out-of-county filing (approval number, approver), when complete.
pub fn out_of_county_filing(sr: &Value) -> Option<(String, String)> {
    let e = ext(sr, EXT_OUT_OF_COUNTY)?;
    let parts = e.get("extension")?.as_array()?;
    let get = |k: &str| {
        parts
            .iter()
            .find(|p| p.get("url").and_then(Value::as_str) == Some(k))
            .and_then(|p| p.get("valueString"))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    Some((get("approval-number")?, get("approved-by")?))
}

fn recorded_at(org: &str) -> Value {
    json!({"url": EXT_RECORDED_AT, "valueReference": {"reference": format!("Organization/{org}")}})
}

/// The parties and time of a request.
#[derive(Debug, Clone, Copy)]
pub struct Parties<'a> {
    pub id: &'a str,
    pub patient: &'a str,
    pub requester_org: &'a str,
    /// Practitioner id of the clinician asking.
    pub requester: Option<&'a str>,
    pub performer_org: &'a str,
    pub priority: &'a str,
    pub at: &'a str,
}

fn base(p: &Parties<'_>, flow: Flow, category: Value, code: Value) -> Value {
    let mut sr = json!({
        "resourceType": "ServiceRequest",
        "id": p.id,
        "extension": [recorded_at(p.requester_org)],
        "status": "active",
        "intent": "order",
        "category": [category, {"coding": [{"system": CS_FLOW, "code": flow.code(), "display": flow.label()}]}],
        "priority": p.priority,
        "code": code,
        "subject": {"reference": format!("Patient/{}", p.patient)},
        "authoredOn": p.at,
        "performer": [{"reference": format!("Organization/{}", p.performer_org)}],
    });
    if let Some(r) = p.requester {
        sr["requester"] = json!({"reference": format!("Practitioner/{r}")});
    }
    sr
}

/// A referral (up to the lead hospital, or down with a discharge summary and a
/// follow-up plan as `supporting` references).
pub fn referral(
    p: &Parties<'_>,
    direction: &str,
    reason_icd10: &str,
    reason_text: &str,
    supporting: &[String],
) -> Value {
    let mut sr = base(
        p,
        Flow::Referral,
        json!({"coding": [{"system": CS_SNOMED, "code": "3457005", "display": "Patient referral"}], "text": "转诊"}),
        json!({"coding": [{"system": CS_REFERRAL_DIRECTION, "code": direction, "display": if direction == "up" { "上转" } else { "下转" }}], "text": if direction == "up" { "上转" } else { "下转" }}),
    );
    sr["extension"]
        .as_array_mut()
        .expect("array")
        .push(json!({"url": EXT_DIRECTION, "valueCode": direction}));
    sr["reasonCode"] = json!([{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": reason_icd10}], "text": reason_text}]);
    if !supporting.is_empty() {
        sr["supportingInfo"] = supporting.iter().map(|r| json!({"reference": r})).collect();
    }
    sr
}

/// Marks a referral as going out of the county with its filing (转外备案).
pub fn file_out_of_county(
    sr: &mut Value,
    hospital: &str,
    approval_number: &str,
    approved_by: &str,
) {
    sr["performer"] = json!([{"display": hospital}]);
    sr["extension"].as_array_mut().expect("array").push(json!({
        "url": EXT_OUT_OF_COUNTY,
        "extension": [
            {"url": "approval-number", "valueString": approval_number},
            {"url": "approved-by", "valueString": approved_by},
        ]
    }));
}

/// A discharge summary a down-referral carries (DocumentReference with the text
/// as a plain-text attachment).
pub fn discharge_summary(id: &str, patient: &str, org: &str, text: &str, at: &str) -> Value {
    use base64::Engine;
    json!({
        "resourceType": "DocumentReference", "id": id, "status": "current",
        "extension": [recorded_at(org)],
        "type": {"text": "出院小结"}, "subject": {"reference": format!("Patient/{patient}")}, "date": at,
        "content": [{"attachment": {"contentType": "text/plain;charset=utf-8", "title": "出院小结",
            "data": base64::engine::general_purpose::STANDARD.encode(text.as_bytes())}}]
    })
}

/// The follow-up plan a down-referral carries (CarePlan).
pub fn follow_up_plan(id: &str, patient: &str, org: &str, text: &str, at: &str) -> Value {
    json!({
        "resourceType": "CarePlan", "id": id, "status": "active", "intent": "plan",
        "extension": [recorded_at(org)],
        "title": "下转随访计划", "description": text, "subject": {"reference": format!("Patient/{patient}")}, "created": at
    })
}

/// The code of an exam item.
pub fn item_code(item: &ExamItem) -> Value {
    let mut coding = vec![json!({"system": CS_EXAM_ITEM, "code": item.code, "display": item.name})];
    if let Some(l) = item.loinc {
        coding.push(json!({"system": CS_LOINC, "code": l}));
    }
    json!({"coding": coding, "text": item.name})
}

fn centre_category(kind: CentreKind) -> Value {
    json!({"coding": [{"system": CS_CENTRE_KIND, "code": kind.code(), "display": kind.label()}], "text": kind.label()})
}

/// An order to a shared centre, with its barcode.
pub fn exam_order(
    p: &Parties<'_>,
    item: &ExamItem,
    barcode: &str,
    repeat_reason: Option<&str>,
) -> Value {
    let mut sr = base(p, Flow::Exam, centre_category(item.kind), item_code(item));
    sr["identifier"] = json!([{"system": SID_BARCODE, "value": barcode}]);
    if let Some(r) = repeat_reason {
        sr["extension"]
            .as_array_mut()
            .expect("array")
            .push(json!({"url": EXT_REPEAT_REASON, "valueString": r}));
    }
    sr
}

/// A request for a remote consultation, with attachments as `supporting`
/// references (DocumentReference, Media, DiagnosticReport).
pub fn consult(p: &Parties<'_>, question: &str, supporting: &[String]) -> Value {
    let mut sr = base(
        p,
        Flow::Consult,
        json!({"coding": [{"system": CS_SNOMED, "code": "11429006", "display": "Consultation"}], "text": "远程会诊"}),
        json!({"text": "远程会诊"}),
    );
    sr["note"] = json!([{"text": question}]);
    if !supporting.is_empty() {
        sr["supportingInfo"] = supporting.iter().map(|r| json!({"reference": r})).collect();
    }
    sr
}

/// One result of a report.
#[derive(Debug, Clone)]
pub enum ResultValue {
    Number(f64),
    /// A finding in words (ECG or imaging conclusion); `critical` when the
    /// reader marks it a critical finding.
    Text {
        text: String,
        critical: bool,
    },
}

/// An Observation for an analyte (or a free finding when `analyte` is None).
#[allow(clippy::too_many_arguments)]
pub fn observation(
    id: &str,
    patient: &str,
    order: &str,
    item: &ExamItem,
    analyte: Option<&exams::Analyte>,
    value: &ResultValue,
    performer_org: &str,
    at: &str,
) -> Value {
    let code = match analyte {
        Some(a) => {
            let mut coding =
                vec![json!({"system": CS_EXAM_ITEM, "code": a.code, "display": a.name})];
            if let Some(l) = a.loinc {
                coding.push(json!({"system": CS_LOINC, "code": l}));
            }
            json!({"coding": coding, "text": a.name})
        }
        None => {
            json!({"coding": [{"system": CS_EXAM_ITEM, "code": format!("{}-FINDING", item.code), "display": "检查所见与结论"}], "text": "检查所见与结论"})
        }
    };
    let category = if item.kind == CentreKind::Lab {
        "laboratory"
    } else {
        "imaging"
    };
    let mut o = json!({
        "resourceType": "Observation",
        "id": id,
        "extension": [recorded_at(performer_org)],
        "basedOn": [{"reference": format!("ServiceRequest/{order}")}],
        "status": "final",
        "category": [{"coding": [{"system": CS_OBSERVATION_CATEGORY, "code": category}]}],
        "code": code,
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": at,
        "performer": [{"reference": format!("Organization/{performer_org}")}],
    });
    let interp = match (value, analyte) {
        (ResultValue::Number(x), Some(a)) => {
            o["valueQuantity"] =
                json!({"value": x, "unit": a.unit, "system": UCUM, "code": a.unit});
            o["referenceRange"] = json!([{"low": {"value": a.low, "unit": a.unit, "system": UCUM, "code": a.unit}, "high": {"value": a.high, "unit": a.unit, "system": UCUM, "code": a.unit}}]);
            a.interpret(*x)
        }
        (ResultValue::Number(x), None) => {
            o["valueQuantity"] = json!({"value": x});
            "N"
        }
        (ResultValue::Text { text, critical }, _) => {
            o["valueString"] = json!(text);
            if *critical { "AA" } else { "N" }
        }
    };
    o["interpretation"] = json!([{"coding": [{"system": CS_INTERPRETATION, "code": interp}]}]);
    o
}

/// Whether an Observation reports a critical value: interpretation LL/HH/AA,
/// or a quantity beyond the catalogue's critical limits for its analyte.
pub fn is_critical(obs: &Value) -> bool {
    let flagged = obs
        .get("interpretation")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| codes_in(c, CS_INTERPRETATION))
        .any(|c| matches!(c, "LL" | "HH" | "AA"));
    if flagged {
        return true;
    }
    let Some(x) = obs
        .get("valueQuantity")
        .and_then(|q| q.get("value"))
        .and_then(Value::as_f64)
    else {
        return false;
    };
    let Some(code) = obs
        .get("code")
        .and_then(|c| codes_in(c, CS_EXAM_ITEM).next())
    else {
        return false;
    };
    exams::CATALOGUE
        .iter()
        .flat_map(|i| i.analytes)
        .find(|a| a.code == code)
        .is_some_and(|a| matches!(a.interpret(x), "LL" | "HH"))
}

/// A signed report of an order.
#[allow(clippy::too_many_arguments)]
pub fn report(
    id: &str,
    patient: &str,
    order: &str,
    item: &ExamItem,
    performer_org: &str,
    reader: Option<&str>,
    observations: &[String],
    conclusion: &str,
    at: &str,
) -> Value {
    let mut r = json!({
        "resourceType": "DiagnosticReport",
        "id": id,
        "extension": [recorded_at(performer_org)],
        "basedOn": [{"reference": format!("ServiceRequest/{order}")}],
        "status": "final",
        "category": [{"coding": [{"system": CS_V2_0074, "code": item.kind.v2_section()}]}],
        "code": item_code(item),
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": at,
        "issued": at,
        "performer": [{"reference": format!("Organization/{performer_org}")}],
        "result": observations.iter().map(|o| json!({"reference": format!("Observation/{o}")})).collect::<Vec<_>>(),
        "conclusion": conclusion,
    });
    if let Some(p) = reader {
        r["resultsInterpreter"] = json!([{"reference": format!("Practitioner/{p}")}]);
    }
    r
}

/// What the store checks on a DiagnosticReport: the order it answers and its
/// result Observations.
pub fn report_order(report: &Value) -> Option<String> {
    report
        .get("basedOn")?
        .as_array()?
        .iter()
        .filter_map(|r| r.get("reference")?.as_str())
        .filter_map(parse_reference)
        .find(|(t, _)| *t == "ServiceRequest")
        .map(|(_, id)| id.to_string())
}

pub fn report_results(report: &Value) -> Vec<String> {
    report
        .get("result")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("reference")?.as_str())
        .filter_map(parse_reference)
        .filter(|(t, _)| *t == "Observation")
        .map(|(_, id)| id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parties() -> Parties<'static> {
        Parties {
            id: "sr1",
            patient: "p1",
            requester_org: "town",
            requester: Some("doc"),
            performer_org: "county",
            priority: "urgent",
            at: "2026-11-01T00:00:00Z",
        }
    }

    #[test]
    fn requests_read_back() {
        let r = referral(&parties(), "up", "I21.9", "急性心肌梗死", &[]);
        let v = read(&r).unwrap().unwrap();
        assert_eq!(v.flow, Flow::Referral);
        assert_eq!(v.direction.as_deref(), Some("up"));
        assert_eq!(v.requester_org.as_deref(), Some("town"));
        assert_eq!(v.performer_org.as_deref(), Some("county"));
        assert!(!v.out_of_county);

        let mut out = r.clone();
        file_out_of_county(&mut out, "四川大学华西医院", "LX-2026-001", "县医保局张三");
        let v = read(&out).unwrap().unwrap();
        assert!(v.out_of_county);
        assert_eq!(v.performer_org, None);
        assert_eq!(v.performer_display.as_deref(), Some("四川大学华西医院"));

        let e = exam_order(&parties(), exams::item("ECG12").unwrap(), "B1", None);
        let v = read(&e).unwrap().unwrap();
        assert_eq!((v.flow, v.item.as_deref()), (Flow::Exam, Some("ECG12")));

        let mut bad = e.clone();
        bad["code"]["coding"][0]["code"] = json!("XYZ");
        assert_eq!(read(&bad).unwrap_err().code, "unknown-item");
        assert_eq!(
            read(&json!({"resourceType": "ServiceRequest"})).unwrap(),
            None
        );
    }

    #[test]
    fn critical_values_are_recognised_by_flag_or_limit() {
        let k = exams::item("K").unwrap();
        let o = observation(
            "o1",
            "p1",
            "sr1",
            k,
            Some(&k.analytes[0]),
            &ResultValue::Number(6.8),
            "c",
            "2026-11-01T00:00:00Z",
        );
        assert!(is_critical(&o));
        let mut unflagged = o.clone();
        unflagged.as_object_mut().unwrap().remove("interpretation");
        assert!(is_critical(&unflagged));
        let n = observation(
            "o2",
            "p1",
            "sr1",
            k,
            Some(&k.analytes[0]),
            &ResultValue::Number(4.1),
            "c",
            "2026-11-01T00:00:00Z",
        );
        assert!(!is_critical(&n));
        let ecg = exams::item("ECG12").unwrap();
        let f = observation(
            "o3",
            "p1",
            "sr1",
            ecg,
            None,
            &ResultValue::Text {
                text: "急性下壁心肌梗死".into(),
                critical: true,
            },
            "c",
            "2026-11-01T00:00:00Z",
        );
        assert!(is_critical(&f));
    }
}
