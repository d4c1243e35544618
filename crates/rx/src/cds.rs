//! CDS Hooks 2.0 `order-sign`: reading the request (draft MedicationRequests and
//! prefetched patient facts) into a [`Prescription`], and writing findings as
//! cards. Pure: fetching missing prefetch is the caller's job, guided by
//! [`PREFETCH`] and [`missing_prefetch`].

use crate::knowledge::{Knowledge, ROUTES};
use crate::model::{
    Allergy, Finding, Item, PatientFacts, Prescriber, Prescription, Setting, Severity, Sex,
    SkinTest, Tier,
};
use chrono::NaiveDate;
use serde_json::{Value, json};

pub const SERVICE_ID: &str = "order-sign";
pub const CS_ATC: &str = "http://www.whocc.no/atc";
pub const CS_FORMULARY: &str = "https://yigong.org.cn/fhir/CodeSystem/formulary";
pub const CS_ROUTE: &str = "https://yigong.org.cn/fhir/CodeSystem/route";
pub const CS_ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
pub const CS_RULE: &str = "https://yigong.org.cn/fhir/CodeSystem/rx-review-rule";
pub const CS_OVERRIDE: &str = "https://yigong.org.cn/fhir/CodeSystem/rx-override-reason";
pub const CS_SNOMED: &str = "http://snomed.info/sct";
pub const CS_LOINC: &str = "http://loinc.org";
pub const EXT_INFUSION_GROUP: &str =
    "https://yigong.org.cn/fhir/StructureDefinition/infusion-group";
pub const EXT_SKIN_TEST: &str = "https://yigong.org.cn/fhir/StructureDefinition/skin-test";
pub const EXT_SETTING: &str = "https://yigong.org.cn/fhir/StructureDefinition/rx-setting";

/// LOINC codes of the observations the rules use.
pub const LOINC_WEIGHT: &str = "29463-7";
pub const LOINC_PREGNANCY: &str = "82810-3";
pub const LOINC_EGFR: [&str; 2] = ["33914-3", "62238-1"];
pub const LOINC_BREASTFEEDING: &str = "63895-7";

/// Prefetch templates the service asks for in discovery.
pub const PREFETCH: [(&str, &str); 4] = [
    ("patient", "Patient/{{context.patientId}}"),
    ("conditions", "Condition?patient={{context.patientId}}"),
    (
        "allergies",
        "AllergyIntolerance?patient={{context.patientId}}",
    ),
    (
        "labs",
        "Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7,http://loinc.org|82810-3,http://loinc.org|33914-3,http://loinc.org|62238-1,http://loinc.org|63895-7&_sort=-date&_count=50",
    ),
];

/// The discovery document (`GET /cds-services`).
pub fn discovery() -> Value {
    let prefetch: serde_json::Map<String, Value> = PREFETCH
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({
        "services": [{
            "hook": "order-sign",
            "id": SERVICE_ID,
            "title": "集中审方:处方前置审核",
            "description": "按《医疗机构处方审核规范》(2018) 和《长期处方管理规范(试行)》(2021) 审核待签名的药品医嘱:合法性、规范性与适宜性(适应症、剂量、途径、重复用药、相互作用、配伍禁忌、特殊人群、过敏、皮试、长期处方)。",
            "prefetch": prefetch,
            "usageRequirements": "药品以 ATC(http://www.whocc.no/atc)或统一用药目录编码标识;剂量、频次、途径写在 dosageInstruction;天数写在 dispenseRequest.expectedSupplyDuration。"
        }]
    })
}

/// A request error: the client sent something that is not an order-sign request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CdsError(pub String);

/// One draft order as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// "MedicationRequest/<id>" when the draft has an id.
    pub reference: Option<String>,
    pub item: Item,
    /// Display name for cards.
    pub label: String,
    /// ICD-10 codes in reasonCode.
    pub reasons: Vec<String>,
    pub long_term: bool,
    pub setting: Option<Setting>,
}

/// The parts of an order-sign request the service needs.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSign {
    pub hook_instance: String,
    pub user_id: String,
    pub patient_id: String,
    pub fhir_server: Option<String>,
    pub access_token: Option<String>,
    pub drafts: Vec<Draft>,
    pub prefetch: serde_json::Map<String, Value>,
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Reads and checks an order-sign request.
pub fn parse_request(req: &Value, k: &Knowledge) -> Result<OrderSign, CdsError> {
    let bad = |m: &str| CdsError(m.to_string());
    if !req.is_object() {
        return Err(bad("请求体必须是 JSON 对象"));
    }
    match s(req, "hook") {
        Some("order-sign") => {}
        Some(h) => return Err(CdsError(format!("本服务只响应 order-sign 钩子,收到 {h}"))),
        None => return Err(bad("缺少 hook")),
    }
    let hook_instance = s(req, "hookInstance")
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| bad("缺少 hookInstance"))?
        .to_string();
    let ctx = req
        .get("context")
        .filter(|c| c.is_object())
        .ok_or_else(|| bad("缺少 context"))?;
    let user_id = s(ctx, "userId")
        .ok_or_else(|| bad("context 缺少 userId"))?
        .to_string();
    let patient_id = s(ctx, "patientId")
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| bad("context 缺少 patientId"))?
        .trim_start_matches("Patient/")
        .to_string();
    let orders = ctx
        .get("draftOrders")
        .ok_or_else(|| bad("context 缺少 draftOrders"))?;
    if s(orders, "resourceType") != Some("Bundle") {
        return Err(bad("draftOrders 必须是 FHIR Bundle"));
    }
    let entries = orders.get("entry").and_then(Value::as_array);
    let mut drafts = Vec::new();
    for (n, e) in entries.into_iter().flatten().enumerate() {
        let Some(r) = e.get("resource") else {
            return Err(CdsError(format!(
                "draftOrders 第 {} 条缺少 resource",
                n + 1
            )));
        };
        if s(r, "resourceType") == Some("MedicationRequest") {
            drafts.push(read_draft(r, n, k)?);
        }
    }
    if drafts.is_empty() {
        return Err(bad("draftOrders 中没有 MedicationRequest"));
    }
    let fhir_server = s(req, "fhirServer").map(str::to_string);
    let access_token = req
        .get("fhirAuthorization")
        .and_then(|a| s(a, "access_token"))
        .map(str::to_string);
    let prefetch = req
        .get("prefetch")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(OrderSign {
        hook_instance,
        user_id,
        patient_id,
        fhir_server,
        access_token,
        drafts,
        prefetch,
    })
}

/// Prefetch keys absent (or null) in the request, which the caller must fetch.
pub fn missing_prefetch(o: &OrderSign) -> Vec<(&'static str, String)> {
    PREFETCH
        .iter()
        .filter(|(key, _)| o.prefetch.get(*key).is_none_or(Value::is_null))
        .map(|(key, t)| (*key, t.replace("{{context.patientId}}", &o.patient_id)))
        .collect()
}

fn codings(cc: &Value) -> impl Iterator<Item = (&str, &str)> {
    cc.get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((s(c, "system").unwrap_or(""), s(c, "code")?)))
}

fn read_draft(r: &Value, n: usize, k: &Knowledge) -> Result<Draft, CdsError> {
    let line = n + 1;
    let med = r.get("medicationCodeableConcept");
    let text = med
        .and_then(|m| s(m, "text"))
        .unwrap_or("")
        .trim()
        .to_string();
    let mut drug = String::new();
    if let Some(m) = med {
        for (sys, code) in codings(m) {
            if sys == CS_FORMULARY || sys == CS_ATC {
                drug = code.trim().to_string();
                if k.lookup(&drug).is_some() {
                    break;
                }
            }
        }
    }
    if drug.is_empty()
        && let Some(i) = k.by_name(&text)
    {
        drug = k.drugs[i].code.clone();
    }
    if drug.is_empty() {
        // Left empty, the engine reports it as an unknown drug.
        drug = if text.is_empty() {
            format!("(第{line}条未编码)")
        } else {
            text.clone()
        };
    }
    let label = k.drug(&drug).map_or_else(
        || {
            if text.is_empty() {
                drug.clone()
            } else {
                text.clone()
            }
        },
        |d| d.name.clone(),
    );
    let di = r
        .get("dosageInstruction")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    let dq = di
        .and_then(|d| d.get("doseAndRate"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|d| d.get("doseQuantity"));
    let (dose, unit) = match dq {
        Some(q) => (
            q.get("value").and_then(Value::as_f64).unwrap_or(f64::NAN),
            s(q, "code")
                .or_else(|| s(q, "unit"))
                .unwrap_or("")
                .to_string(),
        ),
        None => (f64::NAN, String::new()),
    };
    let frequency = di.map(frequency_of).unwrap_or_default();
    let route = di
        .and_then(|d| d.get("route"))
        .map(route_of)
        .unwrap_or_default();
    let days = supply_days(r).map_err(|m| CdsError(format!("第 {line} 条医嘱:{m}")))?;
    let group = ext(r, EXT_INFUSION_GROUP)
        .and_then(|e| e.get("valueInteger"))
        .and_then(Value::as_u64)
        .map(|g| g as u32);
    let skin_test = match ext(r, EXT_SKIN_TEST).and_then(|e| s(e, "valueCode")) {
        Some("negative") => SkinTest::Negative,
        Some("positive") => SkinTest::Positive,
        Some("continuing") => SkinTest::Continuing,
        _ => SkinTest::NotRecorded,
    };
    let long_term = r
        .get("courseOfTherapyType")
        .is_some_and(|c| codings(c).any(|(_, code)| code == "continuous"));
    let setting = ext(r, EXT_SETTING)
        .and_then(|e| s(e, "valueCode"))
        .and_then(|c| serde_json::from_value(json!(c)).ok())
        .or_else(|| {
            r.get("category")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(codings)
                .find_map(|(_, c)| match c {
                    "inpatient" => Some(Setting::Inpatient),
                    "outpatient" | "community" => Some(Setting::Outpatient),
                    _ => None,
                })
        });
    let reasons = r
        .get("reasonCode")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(codings)
        .filter(|(sys, _)| *sys == CS_ICD10)
        .map(|(_, c)| c.to_string())
        .collect();
    Ok(Draft {
        reference: s(r, "id").map(|id| format!("MedicationRequest/{id}")),
        item: Item {
            drug,
            dose,
            unit,
            frequency,
            route,
            days,
            group,
            skin_test,
        },
        label,
        reasons,
        long_term,
        setting,
    })
}

fn ext<'a>(r: &'a Value, url: &str) -> Option<&'a Value> {
    r.get("extension")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| s(e, "url") == Some(url))
}

/// Days' supply from dispenseRequest.expectedSupplyDuration (d, wk, mo).
fn supply_days(r: &Value) -> Result<u32, String> {
    let Some(d) = r
        .get("dispenseRequest")
        .and_then(|d| d.get("expectedSupplyDuration"))
    else {
        return Ok(0);
    };
    let v = d
        .get("value")
        .and_then(Value::as_f64)
        .ok_or("expectedSupplyDuration 缺少数值")?;
    if v.is_nan() || !(0.0..=3650.0).contains(&v) {
        return Err(format!("供药天数 {v} 无效"));
    }
    let unit = s(d, "code").or_else(|| s(d, "unit")).unwrap_or("d");
    let days = match unit {
        "d" | "day" | "days" | "天" => v,
        "wk" | "week" | "weeks" | "周" => v * 7.0,
        "mo" | "month" | "months" | "月" => v * 30.0,
        other => return Err(format!("供药时长单位 {other} 无法识别(应为 d、wk 或 mo)")),
    };
    Ok(days.ceil() as u32)
}

/// Frequency code from timing.code (HL7 GTS abbreviations) or timing.repeat.
fn frequency_of(di: &Value) -> String {
    if di.get("asNeededBoolean").and_then(Value::as_bool) == Some(true) {
        return "prn".into();
    }
    let timing = di.get("timing");
    if let Some(code) = timing.and_then(|t| t.get("code")) {
        for (_, c) in codings(code) {
            let f = match c.to_ascii_uppercase().as_str() {
                "QD" | "AM" => "qd",
                "BID" => "bid",
                "TID" => "tid",
                "QID" => "qid",
                "Q4H" => "q4h",
                "Q6H" => "q6h",
                "Q8H" => "q8h",
                "Q12H" => "q12h",
                "QOD" => "qod",
                "PM" | "QN" => "qn",
                "WK" | "QW" => "qw",
                _ => continue,
            };
            return f.into();
        }
        if let Some(t) = s(code, "text") {
            return t.trim().to_ascii_lowercase();
        }
    }
    let Some(rep) = timing.and_then(|t| t.get("repeat")) else {
        return String::new();
    };
    let freq = rep.get("frequency").and_then(Value::as_f64).unwrap_or(1.0);
    let period = rep.get("period").and_then(Value::as_f64).unwrap_or(1.0);
    let per_day = match s(rep, "periodUnit") {
        Some("h") => freq * 24.0 / period,
        Some("d") => freq / period,
        Some("wk") => freq / (7.0 * period),
        _ => return String::new(),
    };
    let hourly = |h: f64| (per_day - 24.0 / h).abs() < 1e-6;
    let code = if s(rep, "periodUnit") == Some("h") {
        match () {
            _ if hourly(4.0) => "q4h",
            _ if hourly(6.0) => "q6h",
            _ if hourly(8.0) => "q8h",
            _ if hourly(12.0) => "q12h",
            _ if hourly(24.0) => "qd",
            _ => "",
        }
    } else {
        match per_day {
            x if (x - 1.0).abs() < 1e-6 => "qd",
            x if (x - 2.0).abs() < 1e-6 => "bid",
            x if (x - 3.0).abs() < 1e-6 => "tid",
            x if (x - 4.0).abs() < 1e-6 => "qid",
            x if (x - 0.5).abs() < 1e-6 => "qod",
            x if (x - 1.0 / 7.0).abs() < 1e-6 => "qw",
            x if (x - 2.0 / 7.0).abs() < 1e-6 => "biw",
            _ => "",
        }
    };
    if code.is_empty() {
        format!(
            "{}次/{}{}",
            freq,
            period,
            s(rep, "periodUnit").unwrap_or("")
        )
    } else {
        code.into()
    }
}

/// Route code from our code system, SNOMED CT, or the Chinese text.
fn route_of(route: &Value) -> String {
    for (sys, code) in codings(route) {
        if sys == CS_ROUTE {
            return code.to_string();
        }
        if sys == CS_SNOMED {
            let r = match code {
                "26643006" => "po",
                "47625008" => "iv",
                "78421000" => "im",
                "34206005" => "sc",
                "372464004" => "id",
                "447694001" | "18679011000001101" => "inh",
                "37839007" => "sl",
                "6064005" => "top",
                "37161004" => "pr",
                "16857009" => "pv",
                "54485002" => "eye",
                "10547007" => "ear",
                "46713006" => "nasal",
                "45890007" => "td",
                _ => continue,
            };
            return r.into();
        }
    }
    let text = s(route, "text").unwrap_or("").trim();
    ROUTES
        .iter()
        .find(|(c, l)| *l == text || *c == text)
        .map_or(text.to_string(), |(c, _)| c.to_string())
}

fn bundle_resources<'a>(b: Option<&'a Value>, rtype: &'a str) -> impl Iterator<Item = &'a Value> {
    b.and_then(|b| b.get("entry"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
        .filter(move |r| s(r, "resourceType") == Some(rtype))
}

fn active(r: &Value) -> bool {
    r.get("clinicalStatus").is_none_or(|c| {
        codings(c).any(|(_, code)| code == "active" || code == "recurrence" || code == "relapse")
    }) && r.get("verificationStatus").is_none_or(|c| {
        !codings(c).any(|(_, code)| code == "refuted" || code == "entered-in-error")
    })
}

/// Patient facts and active ICD-10 diagnoses from the (prefetched or fetched) resources.
pub fn patient_facts(prefetch: &serde_json::Map<String, Value>) -> (PatientFacts, Vec<String>) {
    let mut f = PatientFacts::default();
    if let Some(p) = prefetch.get("patient") {
        f.birth_date =
            s(p, "birthDate").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        f.sex = match s(p, "gender") {
            Some("male") => Some(Sex::Male),
            Some("female") => Some(Sex::Female),
            _ => None,
        };
    }
    let mut diagnoses = Vec::new();
    for c in bundle_resources(prefetch.get("conditions"), "Condition").filter(|c| active(c)) {
        if let Some(code) = c.get("code") {
            for (sys, code) in codings(code) {
                if sys == CS_ICD10 && !diagnoses.iter().any(|d| d == code) {
                    diagnoses.push(code.to_string());
                }
            }
        }
    }
    for a in bundle_resources(prefetch.get("allergies"), "AllergyIntolerance").filter(|a| active(a))
    {
        let code = a.get("code");
        let coded =
            code.and_then(|c| codings(c).find(|(sys, _)| *sys == CS_ATC || *sys == CS_FORMULARY));
        let text = code
            .and_then(|c| s(c, "text"))
            .or_else(|| {
                code.and_then(|c| c.get("coding"))
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find_map(|c| s(c, "display")))
            })
            .unwrap_or("");
        if coded.is_some() || !text.is_empty() {
            f.allergies.push(Allergy {
                code: coded.map(|(_, c)| c.to_string()),
                text: text.to_string(),
            });
        }
    }
    // Newest observation of each kind wins: sort by effective time, newest first.
    let mut labs: Vec<&Value> = bundle_resources(prefetch.get("labs"), "Observation")
        .filter(|o| !matches!(s(o, "status"), Some("entered-in-error" | "cancelled")))
        .collect();
    labs.sort_by(|a, b| effective(b).cmp(effective(a)));
    for o in labs {
        let Some(code) = o.get("code") else { continue };
        let loinc: Vec<&str> = codings(code)
            .filter(|(sys, _)| *sys == CS_LOINC)
            .map(|(_, c)| c)
            .collect();
        let q = o.get("valueQuantity");
        let qv = q.and_then(|q| q.get("value")).and_then(Value::as_f64);
        let qu = q
            .and_then(|q| s(q, "code").or_else(|| s(q, "unit")))
            .unwrap_or("");
        if loinc.contains(&LOINC_WEIGHT) && f.weight_kg.is_none() {
            f.weight_kg = qv.map(|v| if qu == "g" { v / 1000.0 } else { v });
        } else if LOINC_EGFR.iter().any(|c| loinc.contains(c)) && f.egfr.is_none() {
            f.egfr = qv;
        } else if loinc.contains(&LOINC_PREGNANCY) && f.pregnant.is_none() {
            f.pregnant = answer(o, &["LA15173-0"], &["LA26683-5"]);
        } else if loinc.contains(&LOINC_BREASTFEEDING) && f.lactating.is_none() {
            f.lactating = answer(o, &["LA33-6"], &["LA32-8"]);
        }
    }
    (f, diagnoses)
}

fn effective(o: &Value) -> &str {
    s(o, "effectiveDateTime")
        .or_else(|| o.get("effectivePeriod").and_then(|p| s(p, "start")))
        .or_else(|| s(o, "issued"))
        .unwrap_or("")
}

fn answer(o: &Value, yes: &[&str], no: &[&str]) -> Option<bool> {
    let v = o.get("valueCodeableConcept")?;
    for (_, c) in codings(v) {
        if yes.contains(&c) {
            return Some(true);
        }
        if no.contains(&c) {
            return Some(false);
        }
    }
    o.get("valueBoolean").and_then(Value::as_bool)
}

/// Builds the prescription the engine reviews.
pub fn prescription(
    o: &OrderSign,
    facts: PatientFacts,
    mut diagnoses: Vec<String>,
    date: NaiveDate,
    tier: Tier,
    prescriber: Prescriber,
) -> Prescription {
    for d in &o.drafts {
        for r in &d.reasons {
            if !diagnoses.contains(r) {
                diagnoses.push(r.clone());
            }
        }
    }
    Prescription {
        date,
        setting: o.drafts.iter().find_map(|d| d.setting).unwrap_or_default(),
        long_term: o.drafts.iter().any(|d| d.long_term),
        tier,
        prescriber,
        patient: facts,
        diagnoses,
        items: o.drafts.iter().map(|d| d.item.clone()).collect(),
    }
}

/// A deterministic UUID-shaped id for a card (FNV-1a over the parts).
fn card_uuid(parts: &[&str]) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u128;
            h = h.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }
    let x = format!("{h:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

fn truncate_chars(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The response: one card per finding, the most severe first.
pub fn cards(k: &Knowledge, o: &OrderSign, findings: &[Finding]) -> Value {
    let mut order: Vec<&Finding> = findings.iter().collect();
    order.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let cards: Vec<Value> = order
        .iter()
        .map(|f| {
            let indicator = match f.severity {
                Severity::Block => "critical",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let items: Vec<String> = f.items.iter().map(|i| i.to_string()).collect();
            let uuid = card_uuid(&[&o.hook_instance, f.rule, &items.join(","), &f.message]);
            let src = k.source(&f.source);
            let mut detail = format!("**{}**({},规则 {})\n\n{}", f.severity.label(), f.category.label(), f.rule, f.message);
            if let Some(src) = src {
                detail.push_str(&format!("\n\n依据:{}", src.title));
            }
            let mut source = json!({
                "label": format!("yigong 集中审方 · {}", src.map_or(f.source.as_str(), |s| s.title.as_str())),
                "topic": { "system": CS_RULE, "code": f.rule, "display": f.category.label() }
            });
            if let Some(url) = src.map(|s| s.url.as_str()).filter(|u| u.starts_with("http")) {
                source["url"] = json!(url);
            }
            let mut card = json!({
                "uuid": uuid,
                "summary": truncate_chars(&f.message, 139),
                "detail": detail,
                "indicator": indicator,
                "source": source,
            });
            // Removing the offending draft is the one safe suggestion for rules
            // where the drug itself must go.
            let removable = matches!(
                f.rule,
                "DUP-SAME" | "DUP-CLASS" | "ALLERGY" | "PREGNANCY" | "CHILD-AGE" | "DDI" | "INCOMPAT" | "LONG-DRUG"
            ) && f.severity >= Severity::Warning;
            let target = f.items.last().and_then(|i| o.drafts.get(*i));
            if removable && let Some(d) = target && let Some(r) = &d.reference {
                card["suggestions"] = json!([{
                    "label": format!("删除{}", d.label),
                    "uuid": card_uuid(&[&uuid, "delete"]),
                    "actions": [{ "type": "delete", "description": format!("从待签医嘱中删除{}", d.label), "resourceId": [r] }]
                }]);
                card["selectionBehavior"] = json!("at-most-one");
            }
            if f.severity >= Severity::Warning {
                card["overrideReasons"] = json!([
                    { "system": CS_OVERRIDE, "code": "benefit-outweighs-risk", "display": "获益大于风险,已告知患者" },
                    { "system": CS_OVERRIDE, "code": "tolerated-before", "display": "患者既往使用耐受良好" },
                    { "system": CS_OVERRIDE, "code": "data-incorrect", "display": "提示所依据的患者信息有误" }
                ]);
            }
            card
        })
        .collect();
    json!({ "cards": cards })
}

/// The order-sign request a client would send for a prescription, with full
/// prefetch (the inverse of [`parse_request`] + [`patient_facts`]); used by
/// benchmarks and tests to speak CDS Hooks exactly as an EHR does.
pub fn order_sign_request(hook_instance: &str, patient_id: &str, rx: &Prescription) -> Value {
    let p = &rx.patient;
    let drafts: Vec<Value> = rx
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let mut m = json!({
                "resourceType": "MedicationRequest",
                "id": format!("draft-{i}"),
                "status": "draft",
                "intent": "order",
                "subject": { "reference": format!("Patient/{patient_id}") },
                "medicationCodeableConcept": { "coding": [{ "system": CS_FORMULARY, "code": it.drug }] },
                "dosageInstruction": [{
                    "timing": { "code": { "text": it.frequency } },
                    "route": { "coding": [{ "system": CS_ROUTE, "code": it.route }] },
                    "doseAndRate": [{ "doseQuantity": { "value": it.dose, "unit": it.unit } }]
                }],
                "dispenseRequest": { "expectedSupplyDuration": { "value": it.days, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d" } },
                "extension": [{ "url": EXT_SETTING, "valueCode": match rx.setting { Setting::Outpatient => "outpatient", Setting::Emergency => "emergency", Setting::Inpatient => "inpatient" } }]
            });
            if rx.long_term {
                m["courseOfTherapyType"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "code": "continuous" }] });
            }
            let ext = m["extension"].as_array_mut().expect("built above");
            if let Some(g) = it.group {
                ext.push(json!({ "url": EXT_INFUSION_GROUP, "valueInteger": g }));
            }
            let st = match it.skin_test {
                SkinTest::Negative => Some("negative"),
                SkinTest::Positive => Some("positive"),
                SkinTest::Continuing => Some("continuing"),
                SkinTest::NotRecorded => None,
            };
            if let Some(st) = st {
                ext.push(json!({ "url": EXT_SKIN_TEST, "valueCode": st }));
            }
            json!({ "resource": m })
        })
        .collect();
    let mut patient = json!({ "resourceType": "Patient", "id": patient_id });
    if let Some(b) = p.birth_date {
        patient["birthDate"] = json!(b.format("%Y-%m-%d").to_string());
    }
    if let Some(s) = p.sex {
        patient["gender"] = json!(match s {
            Sex::Male => "male",
            Sex::Female => "female",
        });
    }
    let entry = |r: Value| json!({ "resource": r });
    let conditions: Vec<Value> = rx
        .diagnoses
        .iter()
        .map(|d| entry(json!({ "resourceType": "Condition", "subject": { "reference": format!("Patient/{patient_id}") }, "code": { "coding": [{ "system": CS_ICD10, "code": d }] } })))
        .collect();
    let allergies: Vec<Value> = p
        .allergies
        .iter()
        .map(|a| {
            let mut code = json!({ "text": a.text });
            if let Some(c) = &a.code {
                code["coding"] = json!([{ "system": CS_ATC, "code": c }]);
            }
            entry(json!({ "resourceType": "AllergyIntolerance", "patient": { "reference": format!("Patient/{patient_id}") }, "code": code }))
        })
        .collect();
    let obs = |loinc: &str, value: Value| {
        let mut o = json!({ "resourceType": "Observation", "status": "final", "subject": { "reference": format!("Patient/{patient_id}") }, "code": { "coding": [{ "system": CS_LOINC, "code": loinc }] } });
        for (k, v) in value.as_object().into_iter().flatten() {
            o[k] = v.clone();
        }
        entry(o)
    };
    let mut labs = Vec::new();
    if let Some(w) = p.weight_kg {
        labs.push(obs(LOINC_WEIGHT, json!({ "valueQuantity": { "value": w, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg" } })));
    }
    if let Some(e) = p.egfr {
        labs.push(obs(
            LOINC_EGFR[0],
            json!({ "valueQuantity": { "value": e, "unit": "mL/min/{1.73_m2}" } }),
        ));
    }
    if let Some(pr) = p.pregnant {
        let code = if pr { "LA15173-0" } else { "LA26683-5" };
        labs.push(obs(
            LOINC_PREGNANCY,
            json!({ "valueCodeableConcept": { "coding": [{ "system": CS_LOINC, "code": code }] } }),
        ));
    }
    if let Some(l) = p.lactating {
        let code = if l { "LA33-6" } else { "LA32-8" };
        labs.push(obs(
            LOINC_BREASTFEEDING,
            json!({ "valueCodeableConcept": { "coding": [{ "system": CS_LOINC, "code": code }] } }),
        ));
    }
    let bundle = |entries: Vec<Value>| json!({ "resourceType": "Bundle", "type": "searchset", "entry": entries });
    json!({
        "hook": "order-sign",
        "hookInstance": hook_instance,
        "context": {
            "userId": "Practitioner/prescriber",
            "patientId": patient_id,
            "draftOrders": { "resourceType": "Bundle", "type": "collection", "entry": drafts }
        },
        "prefetch": {
            "patient": patient,
            "conditions": bundle(conditions),
            "allergies": bundle(allergies),
            "labs": bundle(labs)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_from_timing_repeat_and_codes() {
        let rep = |f: f64, p: f64, u: &str| {
            frequency_of(
                &json!({"timing": {"repeat": {"frequency": f, "period": p, "periodUnit": u}}}),
            )
        };
        assert_eq!(rep(3.0, 1.0, "d"), "tid");
        assert_eq!(rep(1.0, 8.0, "h"), "q8h");
        assert_eq!(rep(1.0, 1.0, "wk"), "qw");
        assert_eq!(
            frequency_of(&json!({"timing": {"code": {"coding": [{"code": "BID"}]}}})),
            "bid"
        );
        assert_eq!(frequency_of(&json!({"asNeededBoolean": true})), "prn");
    }

    #[test]
    fn routes_from_snomed_and_chinese_text() {
        assert_eq!(
            route_of(&json!({"coding": [{"system": CS_SNOMED, "code": "26643006"}]})),
            "po"
        );
        assert_eq!(route_of(&json!({"text": "静脉滴注"})), "ivgtt");
    }

    #[test]
    fn card_ids_are_uuid_shaped_and_stable() {
        let a = card_uuid(&["x", "DDI"]);
        assert_eq!(a, card_uuid(&["x", "DDI"]));
        assert_ne!(a, card_uuid(&["x", "DDJ"]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
