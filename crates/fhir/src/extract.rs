//! Checks an incoming resource and extracts what storage needs: references,
//! scope-relevant organisation and patient, the main date and search values.

use crate::Issue;
use crate::codes::*;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use yigong_core::{Charges, Fen, Icd10, OrgKind, ResidentId, Sex};

/// Longest string accepted in any element (narrative and attachments excepted).
pub const MAX_STRING_CHARS: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgFacts {
    pub name: String,
    pub kind: Option<String>,
    pub tier: Option<String>,
    pub parent: Option<String>,
    pub is_institution: bool,
    pub is_community: bool,
    pub sub_centre: bool,
    pub lead: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    pub org: Option<String>,
    pub patient: Option<String>,
    pub date: Option<String>,
    pub index: Vec<(String, String)>,
    /// Every `Type/id` reference in the resource.
    pub refs: Vec<(String, String)>,
    pub org_facts: Option<OrgFacts>,
    /// The institution a request or task is addressed to (ServiceRequest.performer,
    /// Task.owner): it sees the record too.
    pub performer: Option<String>,
}

pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub fn is_resource_type(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Splits `Type/id` (optionally absolute or with `/_history/n`) into its parts.
pub fn parse_reference(r: &str) -> Option<(&str, &str)> {
    let r = r.split("/_history/").next()?;
    let (head, id) = r.rsplit_once('/')?;

    let rtype = head.rsplit('/').next()?;
    (is_resource_type(rtype) && is_valid_id(id)).then_some((rtype, id))
}

/// Normalises text for string search: lower case, no spaces, full-width ASCII folded.
pub fn normalize_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Normalises a FHIR date/dateTime/instant to a sortable UTC text.
pub fn normalize_date(s: &str) -> Option<String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(
            t.with_timezone(&Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    let ok = match s.len() {
        4 => s.parse::<u16>().is_ok(),
        7 => NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").is_ok(),
        10 => NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        _ => false,
    };
    ok.then(|| s.to_string())
}

fn walk_strings<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut dyn FnMut(&[String], &'a str)) {
    match v {
        Value::String(s) => out(path, s),
        Value::Array(a) => {
            for x in a {
                walk_strings(x, path, out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                path.push(k.clone());
                walk_strings(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn ref_id<'a>(v: &'a Value, key: &str, rtype: &str) -> Option<&'a str> {
    let r = v.get(key)?;
    let r = if let Some(a) = r.as_array() {
        a.first()?
    } else {
        r
    };
    let (t, id) = parse_reference(r.get("reference")?.as_str()?)?;
    (t == rtype).then_some(id)
}

fn extension<'a>(v: &'a Value, url: &str) -> Option<&'a Value> {
    v.get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(url))
}

fn codings(v: &Value) -> impl Iterator<Item = &Value> {
    v.get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn push_token(index: &mut Vec<(String, String)>, param: &str, system: Option<&str>, value: &str) {
    index.push((param.to_string(), value.to_string()));
    if let Some(s) = system {
        index.push((param.to_string(), token_key(s, value)));
    }
}

/// Systems common enough to index under a short alias: index keys stay short,
/// which keeps B-tree comparisons cheap. Must never change once data exists.
const SYSTEM_ALIASES: [(&str, &str); 9] = [
    (CS_ICD10, "~icd10"),
    (SID_RESIDENT_ID, "~rid"),
    (SID_INSURANCE, "~ins"),
    (SID_HOUSEHOLD, "~hh"),
    (SID_ORG_CODE, "~uscc"),
    (SID_LICENCE, "~lic"),
    (CS_ORG_KIND, "~kind"),
    (CS_ORG_TIER, "~tier"),
    (CS_PRACTITIONER_ROLE, "~role"),
];

/// The index key of a `system|code` token.
pub fn token_key(system: &str, value: &str) -> String {
    let s = SYSTEM_ALIASES
        .iter()
        .find(|(url, _)| *url == system)
        .map_or(system, |(_, alias)| alias);
    format!("{s}|{value}")
}

fn index_names(index: &mut Vec<(String, String)>, v: &Value) {
    for n in v
        .get("name")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut parts = vec![];
        if let Some(t) = n.get("text").and_then(Value::as_str) {
            parts.push(t.to_string());
        }
        if let Some(f) = n.get("family").and_then(Value::as_str) {
            index.push(("family".into(), normalize_text(f)));
            parts.push(f.to_string());
        }
        for g in n
            .get("given")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            index.push(("given".into(), normalize_text(g)));
            parts.push(g.to_string());
        }
        for p in parts {
            index.push(("name".into(), normalize_text(&p)));
        }
    }
}

fn index_common(index: &mut Vec<(String, String)>, v: &Value) {
    for id in v
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(val) = id.get("value").and_then(Value::as_str) {
            push_token(
                index,
                "identifier",
                id.get("system").and_then(Value::as_str),
                val,
            );
        }
    }
    if let Some(s) = v.get("status").and_then(Value::as_str) {
        index.push(("status".into(), s.to_string()));
    }
    if let Some(code) = v.get("code") {
        for c in codings(code) {
            if let Some(val) = c.get("code").and_then(Value::as_str) {
                push_token(index, "code", c.get("system").and_then(Value::as_str), val);
            }
        }
    }
}

/// The patient taking part in an Appointment (`participant.actor`).
pub fn appointment_patient(v: &Value) -> Option<&str> {
    v.get("participant")?
        .as_array()?
        .iter()
        .filter_map(|p| p.get("actor")?.get("reference")?.as_str())
        .filter_map(parse_reference)
        .find(|(t, _)| *t == "Patient")
        .map(|(_, id)| id)
}

/// Composite index entries `(type, first parameter, second parameter, name)`:
/// the entry `a|b` for every pair of exact values of the two parameters.
/// Worklists ask for one institution's tasks in one state; the composite answers
/// that with one index range instead of intersecting an institution's whole
/// history with a state's. The store rewrites such searches to use it.
pub const COMPOSITES: &[(&str, &str, &str, &str)] = &[
    ("Task", "owner", "business-status", "owner-state"),
    ("Task", "requester", "business-status", "requester-state"),
];

/// Exact values (no `system|` form) of a parameter among the index entries.
fn plain_values<'a>(
    index: &'a [(String, String)],
    param: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    index
        .iter()
        .filter(move |(p, v)| p == param && !v.contains('|'))
        .map(|(_, v)| v.as_str())
}

fn add_composites(index: &mut Vec<(String, String)>, rtype: &str) {
    let mut extra = vec![];
    for (_, first, second, name) in COMPOSITES.iter().filter(|c| c.0 == rtype) {
        for a in plain_values(index, first) {
            for b in plain_values(index, second) {
                extra.push((name.to_string(), format!("{a}|{b}")));
            }
        }
    }
    index.extend(extra);
}

/// The `recorded-at` extension: the institution a record was made at.
fn recorded_at(v: &Value) -> Option<String> {
    extension(v, EXT_RECORDED_AT)
        .and_then(|e| e.get("valueReference")?.get("reference")?.as_str())
        .and_then(parse_reference)
        .filter(|(t, _)| *t == "Organization")
        .map(|(_, id)| id.to_string())
}

/// Reference search parameters of the workflow resources (index value: the id).
fn index_references(index: &mut Vec<(String, String)>, rtype: &str, v: &Value) {
    let params: &[(&str, &str)] = match rtype {
        "Task" => &[
            ("owner", "owner"),
            ("requester", "requester"),
            ("focus", "focus"),
        ],
        "ServiceRequest" => &[("requester", "requester"), ("performer", "performer")],
        "DiagnosticReport" => &[
            ("basedOn", "based-on"),
            ("performer", "performer"),
            ("result", "result"),
        ],
        "Observation" => &[("basedOn", "based-on"), ("performer", "performer")],
        "Slot" => &[("schedule", "schedule")],
        "Appointment" => &[("slot", "slot"), ("basedOn", "based-on")],
        "Schedule" => &[("actor", "actor")],
        _ => &[],
    };
    for (key, param) in params {
        let items: Vec<&Value> = match v.get(*key) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(one) => vec![one],
            None => vec![],
        };
        for r in items {
            if let Some((_, id)) = r
                .get("reference")
                .and_then(Value::as_str)
                .and_then(parse_reference)
            {
                index.push((param.to_string(), id.to_string()));
            }
        }
    }
    if rtype == "Appointment" {
        for p in v
            .get("participant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some((_, id)) = p
                .get("actor")
                .and_then(|a| a.get("reference"))
                .and_then(Value::as_str)
                .and_then(parse_reference)
            {
                index.push(("actor".into(), id.to_string()));
            }
        }
    }
    if rtype == "ServiceRequest"
        && let Some(org) = recorded_at(v)
    {
        // `requester=Organization/x` finds what an institution asked for.
        index.push(("requester".into(), org));
    }
    if rtype == "Slot"
        && v.get("status").and_then(Value::as_str) == Some("free")
        && let (Some((_, schedule)), Some(start)) = (
            v.get("schedule")
                .and_then(|r| r.get("reference"))
                .and_then(Value::as_str)
                .and_then(parse_reference),
            v.get("start")
                .and_then(Value::as_str)
                .and_then(normalize_date),
        )
    {
        // A clinic's free slots in time order, straight from the index (号源列表):
        // `schedule|start|held-until`, so the list needs no record bodies.
        let held = extension(
            v,
            "https://yigong.org.cn/fhir/StructureDefinition/held-for-referral",
        )
        .and_then(|e| e.get("valueDateTime")?.as_str())
        .and_then(normalize_date)
        .unwrap_or_default();
        index.push(("free-start".into(), format!("{schedule}|{start}|{held}")));
    }
    if matches!(rtype, "Task" | "ServiceRequest")
        && let Some(p) = v.get("priority").and_then(Value::as_str)
    {
        index.push(("priority".into(), p.to_string()));
    }
    let concepts: &[(&str, &str)] = match rtype {
        "Task" => &[("businessStatus", "business-status")],
        "ServiceRequest" | "DiagnosticReport" | "Observation" => &[("category", "category")],
        "Schedule" | "Slot" | "Appointment" => &[("serviceType", "service-type")],
        _ => &[],
    };
    for (key, param) in concepts {
        let items: Vec<&Value> = match v.get(*key) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(one) => vec![one],
            None => vec![],
        };
        for c in items.into_iter().flat_map(codings) {
            if let Some(code) = c.get("code").and_then(Value::as_str) {
                push_token(index, param, c.get("system").and_then(Value::as_str), code);
            }
        }
    }
}

/// The first date-like element, by the priority FHIR search uses for `date`.
fn main_date(rtype: &str, v: &Value) -> Option<String> {
    let candidates: &[&[&str]] = match rtype {
        "Patient" => &[&["birthDate"]],
        "Encounter" => &[&["period", "start"]],
        "Condition" => &[
            &["onsetDateTime"],
            &["onsetPeriod", "start"],
            &["recordedDate"],
        ],
        _ => &[
            &["effectiveDateTime"],
            &["effectivePeriod", "start"],
            &["start"],
            &["period", "start"],
            &["onsetDateTime"],
            &["recordedDate"],
            &["authoredOn"],
            &["occurrenceDateTime"],
            &["performedDateTime"],
            &["performedPeriod", "start"],
            &["issued"],
            &["date"],
            &["created"],
            &["billablePeriod", "start"],
        ],
    };
    candidates
        .iter()
        .find_map(|p| str_at(v, p))
        .and_then(normalize_date)
}

/// Validates `v` as a resource of type `rtype` and extracts its storage facts.
/// `now` is the server's clock (future birth dates and visit times are refused).
pub fn check_and_extract(rtype: &str, v: &Value, now: DateTime<Utc>) -> Result<Extracted, Issue> {
    let obj = v
        .as_object()
        .ok_or_else(|| Issue::new(400, "structure", "not-object", "资源必须是JSON对象"))?;
    let declared = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if declared != rtype {
        return Err(Issue::new(
            400,
            "invalid",
            "wrong-resource-type",
            format!(
                "资源类型不符:地址要求 {rtype},请求体为 {}",
                if declared.is_empty() {
                    "(缺失)"
                } else {
                    declared
                }
            ),
        )
        .at("resourceType"));
    }
    if let Some(id) = obj.get("id")
        && !id.as_str().is_some_and(is_valid_id)
    {
        return Err(Issue::invalid(
            "invalid-id",
            "资源 id 只能包含字母、数字、'-'、'.',长度1-64",
        )
        .at("id"));
    }

    let mut too_long: Option<String> = None;
    let mut refs = vec![];
    walk_strings(v, &mut vec![], &mut |path, s| {
        let last = path.last().map(String::as_str).unwrap_or("");
        let exempt = last == "div" || last == "data";
        if !exempt && s.chars().count() > MAX_STRING_CHARS && too_long.is_none() {
            too_long = Some(path.join("."));
        }
        if last == "reference"
            && let Some((t, id)) = parse_reference(s)
            && !s.starts_with("http")
        {
            refs.push((t.to_string(), id.to_string()));
        }
    });
    if let Some(p) = too_long {
        return Err(Issue::new(
            422,
            "too-long",
            "too-long",
            format!("字段 {p} 过长(最多 {MAX_STRING_CHARS} 字)"),
        )
        .at(p));
    }
    refs.sort();
    refs.dedup();

    let mut ex = Extracted {
        refs,
        date: main_date(rtype, v),
        ..Default::default()
    };
    let mut index = vec![];
    index_common(&mut index, v);
    ex.patient = ["subject", "patient", "beneficiary", "for"]
        .iter()
        .find_map(|k| ref_id(v, k, "Patient"))
        .map(str::to_string);
    if ex.patient.is_none() && rtype == "Appointment" {
        ex.patient = appointment_patient(v).map(str::to_string);
    }
    ex.org = [
        "managingOrganization",
        "serviceProvider",
        "partOf",
        "organization",
        "provider",
        "requester",
    ]
    .iter()
    .find_map(|k| ref_id(v, k, "Organization"))
    .map(str::to_string);
    if ex.org.is_none() && rtype != "Patient" && rtype != "Organization" {
        ex.org = recorded_at(v);
    }
    index_references(&mut index, rtype, v);
    ex.performer = match rtype {
        "Task" => ref_id(v, "owner", "Organization"),
        "ServiceRequest" => v
            .get("performer")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("reference")?.as_str())
            .filter_map(parse_reference)
            .find(|(t, _)| *t == "Organization")
            .map(|(_, id)| id),
        _ => None,
    }
    .map(str::to_string);

    match rtype {
        "Patient" => check_patient(v, now, &mut index)?,
        "Practitioner" => {
            index_names(&mut index, v);
            if let Some(g) = v.get("gender").and_then(Value::as_str) {
                index.push(("gender".into(), g.to_string()));
            }
        }
        "Organization" => ex.org_facts = Some(check_organization(v, &mut index)?),
        "PractitionerRole" => {
            if let Some(p) = ref_id(v, "practitioner", "Practitioner") {
                index.push(("practitioner".into(), p.to_string()));
            }
            for c in v
                .get("code")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(codings)
            {
                if let Some(code) = c.get("code").and_then(Value::as_str) {
                    index.push(("role".into(), code.to_string()));
                }
            }
        }
        "Encounter" => check_encounter(v, now, &mut index)?,
        "Condition" => {
            check_condition(v, now, &mut index)?;
        }
        _ => {}
    }
    if rtype != "Patient"
        && rtype != "Organization"
        && let Some(e) = ref_id(v, "encounter", "Encounter")
    {
        index.push(("encounter".into(), e.to_string()));
    }
    add_composites(&mut index, rtype);
    ex.index = index;
    Ok(ex)
}

fn check_patient(
    v: &Value,
    now: DateTime<Utc>,
    index: &mut Vec<(String, String)>,
) -> Result<(), Issue> {
    index_names(index, v);
    for n in v
        .get("name")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let full = n
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                let f = n.get("family").and_then(Value::as_str).unwrap_or("");
                let g: Vec<&str> = n
                    .get("given")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                format!("{f}{}", g.join(""))
            });
        yigong_core::patient::validate_name(&full)
            .map_err(|e| Issue::from_domain(e, "Patient.name"))?;
    }
    let gender = v.get("gender").and_then(Value::as_str);
    if let Some(g) = gender {
        if !matches!(g, "male" | "female" | "other" | "unknown") {
            return Err(Issue::invalid(
                "gender",
                format!("性别代码 {g} 无效,应为 male/female/other/unknown"),
            )
            .at("Patient.gender"));
        }
        index.push(("gender".into(), g.to_string()));
    }
    let birth = match v.get("birthDate") {
        None => None,
        Some(b) => {
            let s = b.as_str().unwrap_or("");
            if !matches!(s.len(), 4 | 7 | 10) || normalize_date(s).is_none() {
                return Err(Issue::invalid(
                    "birthdate-format",
                    format!("出生日期 {s} 格式错误,应为 YYYY-MM-DD"),
                )
                .at("Patient.birthDate"));
            }
            let today = now.format("%Y-%m-%d").to_string();
            if s > &today[..s.len()] {
                return Err(Issue::new(
                    422,
                    "value",
                    "birthdate-future",
                    format!("出生日期 {s} 晚于今天,请核对"),
                )
                .at("Patient.birthDate"));
            }
            index.push(("birthdate".into(), s.to_string()));
            NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
        }
    };
    let mut chinese_resident = false;
    for (i, id) in v
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if id.get("system").and_then(Value::as_str) != Some(SID_RESIDENT_ID) {
            continue;
        }
        chinese_resident = true;
        let raw = id.get("value").and_then(Value::as_str).unwrap_or("");
        let at = format!("Patient.identifier[{i}]");
        let rid = ResidentId::parse(raw).map_err(|e| Issue::from_domain(e, &at))?;
        if raw != rid.as_str() {
            return Err(Issue::new(
                422,
                "value",
                "resident-id-not-normalised",
                format!("身份证号请使用18位标准格式:{}", rid.as_str()),
            )
            .at(at));
        }
        if let Some(b) = birth
            && rid.birth_date() != Some(b)
        {
            return Err(Issue::new(
                422,
                "value",
                "resident-id-birthdate-mismatch",
                format!(
                    "身份证号中的出生日期({})与登记的出生日期({b})不一致",
                    rid.birth_date().map(|d| d.to_string()).unwrap_or_default()
                ),
            )
            .at(at));
        }
        if let Some(sex) = gender.and_then(Sex::from_fhir)
            && rid.sex() != sex
        {
            return Err(Issue::new(
                422,
                "value",
                "resident-id-sex-mismatch",
                format!(
                    "身份证号显示性别为{},与登记的性别({})不一致",
                    rid.sex().label_zh(),
                    sex.label_zh()
                ),
            )
            .at(at));
        }
    }
    for t in v
        .get("telecom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(val) = t.get("value").and_then(Value::as_str) {
            if chinese_resident && t.get("system").and_then(Value::as_str) == Some("phone") {
                yigong_core::patient::validate_phone(val)
                    .map_err(|e| Issue::from_domain(e, "Patient.telecom"))?;
            }
            index.push(("telecom".into(), normalize_text(val)));
            index.push((
                "phone".into(),
                val.chars().filter(char::is_ascii_digit).collect(),
            ));
        }
    }
    Ok(())
}

fn check_organization(v: &Value, index: &mut Vec<(String, String)>) -> Result<OrgFacts, Issue> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    if name.is_empty() {
        return Err(
            Issue::new(422, "required", "org-name", "机构名称不能为空").at("Organization.name")
        );
    }
    index.push(("name".into(), normalize_text(&name)));
    let mut facts = OrgFacts {
        name,
        ..Default::default()
    };
    for t in v
        .get("type")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(codings)
    {
        let system = t.get("system").and_then(Value::as_str);
        let Some(code) = t.get("code").and_then(Value::as_str) else {
            continue;
        };
        push_token(index, "type", system, code);
        match system {
            Some(CS_ORG_KIND) => {
                let kind = OrgKind::from_code(code).ok_or_else(|| {
                    Issue::invalid("org-kind", format!("机构类别 {code} 无效"))
                        .at("Organization.type")
                })?;
                facts.kind = Some(code.to_string());
                facts.is_institution = kind.is_institution();
                facts.is_community = kind == OrgKind::Community;
                facts.tier = kind.tier().map(|t| t.code().to_string());
            }
            Some(CS_HL7_ORG_TYPE) if facts.kind.is_none() => {
                facts.is_institution = code == "prov";
            }
            _ => {}
        }
    }
    if let Some(p) = ref_id(v, "partOf", "Organization") {
        facts.parent = Some(p.to_string());
        index.push(("partof".into(), p.to_string()));
    }
    facts.sub_centre = extension(v, EXT_SUB_CENTRE)
        .and_then(|e| e.get("valueBoolean")?.as_bool())
        .unwrap_or(false);
    facts.lead = extension(v, EXT_LEAD_HOSPITAL)
        .and_then(|e| e.get("valueBoolean")?.as_bool())
        .unwrap_or(false);
    if facts.sub_centre && facts.kind.as_deref() != Some("township-centre") {
        return Err(Issue::new(
            422,
            "value",
            "org-subcentre",
            "只有乡镇卫生院可以标记为县域医疗次中心",
        ));
    }
    Ok(facts)
}

fn check_icd10(c: &Value, at: &str) -> Result<(), Issue> {
    if c.get("system").and_then(Value::as_str) == Some(CS_ICD10) {
        let code = c.get("code").and_then(Value::as_str).unwrap_or("");
        Icd10::parse(code).map_err(|e| Issue::from_domain(e, at))?;
    }
    Ok(())
}

fn parse_money(v: &Value) -> Option<Fen> {
    let value = v.get("valueMoney")?.get("value")?;
    Fen::parse_yuan(&value.to_string())
}

fn check_encounter(
    v: &Value,
    now: DateTime<Utc>,
    index: &mut Vec<(String, String)>,
) -> Result<(), Issue> {
    if let Some(c) = v.get("class")
        && let Some(code) = c.get("code").and_then(Value::as_str)
    {
        index.push(("class".into(), code.to_string()));
    }
    let start = str_at(v, &["period", "start"]);
    let end = str_at(v, &["period", "end"]);
    let parse = |s: &str, what: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                Issue::invalid(
                    "date-format",
                    format!("{what} {s} 格式错误,应为带时区的时间"),
                )
                .at("Encounter.period")
            })
    };
    let start_t = start.map(|s| parse(s, "开始时间")).transpose()?;
    let end_t = end.map(|s| parse(s, "结束时间")).transpose()?;
    if let Some(s) = start_t
        && s > now + chrono::Duration::minutes(5)
    {
        return Err(
            Issue::new(422, "value", "encounter-future", "就诊时间晚于当前时间")
                .at("Encounter.period.start"),
        );
    }
    if let (Some(s), Some(e)) = (start_t, end_t)
        && e < s
    {
        return Err(Issue::new(
            422,
            "value",
            "encounter-period",
            "出院(结束)时间早于入院(开始)时间",
        )
        .at("Encounter.period"));
    }
    for (i, rc) in v
        .get("reasonCode")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for c in codings(rc) {
            check_icd10(c, &format!("Encounter.reasonCode[{i}]"))?;
            if let Some(code) = c.get("code").and_then(Value::as_str) {
                push_token(
                    index,
                    "reason-code",
                    c.get("system").and_then(Value::as_str),
                    code,
                );
            }
        }
    }
    if let Some(ch) = extension(v, EXT_CHARGES) {
        let parts = ch
            .get("extension")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let get = |name: &str| -> Result<Fen, Issue> {
            match parts
                .iter()
                .find(|p| p.get("url").and_then(Value::as_str) == Some(name))
            {
                None => Ok(Fen::ZERO),
                Some(p) => parse_money(p).ok_or_else(|| {
                    Issue::invalid(
                        "charge-format",
                        format!("费用 {name} 金额格式错误(单位元,最多两位小数)"),
                    )
                    .at("Encounter.extension")
                }),
            }
        };
        let charges = Charges {
            drugs: get("drugs")?,
            consumables: get("consumables")?,
            exams: get("exams")?,
            services: get("services")?,
            insurance_paid: get("insurance-paid")?,
        };
        charges
            .validate()
            .map_err(|e| Issue::from_domain(e, "Encounter.extension"))?;
    }
    Ok(())
}

fn check_condition(
    v: &Value,
    now: DateTime<Utc>,
    _index: &mut Vec<(String, String)>,
) -> Result<(), Issue> {
    if let Some(code) = v.get("code") {
        for c in codings(code) {
            check_icd10(c, "Condition.code")?;
        }
    }
    if let Some(onset) = v.get("onsetDateTime").and_then(Value::as_str) {
        let d = normalize_date(onset)
            .ok_or_else(|| Issue::invalid("date-format", format!("发病时间 {onset} 格式错误")))?;
        if d[..10.min(d.len())] > *now.format("%Y-%m-%d").to_string() {
            return Err(Issue::new(422, "value", "onset-future", "发病日期晚于今天")
                .at("Condition.onsetDateTime"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(parse_reference("Patient/p1"), Some(("Patient", "p1")));
        assert_eq!(
            parse_reference("http://x/fhir/Patient/p1/_history/2"),
            Some(("Patient", "p1"))
        );
        assert_eq!(parse_reference("urn:uuid:123"), None);
        assert_eq!(parse_reference("#contained"), None);
    }

    #[test]
    fn text_normalisation() {
        assert_eq!(normalize_text(" Ｗang  Xiao "), "wangxiao");
        assert_eq!(normalize_text("王 小明"), "王小明");
    }

    #[test]
    fn dates_normalise_to_utc() {
        assert_eq!(
            normalize_date("2026-03-01T08:00:00+08:00").as_deref(),
            Some("2026-03-01T00:00:00Z")
        );
        assert_eq!(normalize_date("2026-03").as_deref(), Some("2026-03"));
        assert_eq!(normalize_date("2026-13-01"), None);
    }
}

/// Tag on a Patient registered with a resident ID that fails its check digit.
pub const TAG_IDENTITY_UNVERIFIED: &str = "identity-unverified";

/// A clinic must still see a patient whose ID card number was mistyped: a
/// resident ID failing only its GB 11643 check digit is kept under the
/// unverified system (never trusted for linking) and the record is tagged.
/// Returns the Chinese warning when that happened.
pub fn demote_unverified_ids(v: &mut Value) -> Option<String> {
    let ids = v.get_mut("identifier")?.as_array_mut()?;
    let mut demoted = vec![];
    for id in ids.iter_mut() {
        if id.get("system").and_then(Value::as_str) != Some(SID_RESIDENT_ID) {
            continue;
        }
        let raw = id.get("value").and_then(Value::as_str).unwrap_or("");
        if let Err(yigong_core::DomainError::Invalid {
            code: "resident-id-checksum",
            ..
        }) = ResidentId::parse(raw)
        {
            demoted.push(raw.to_string());
            id["system"] = Value::String(SID_RESIDENT_ID_UNVERIFIED.into());
            id["use"] = Value::String("temp".into());
        }
    }
    if demoted.is_empty() {
        return None;
    }
    let warning = format!(
        "身份证号 {} 校验位错误,已按“身份未核验”登记,不会据此与他人的档案关联;请核对证件后更正",
        demoted.join("、")
    );
    let meta = v
        .as_object_mut()?
        .entry("meta")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(m) = meta.as_object_mut() {
        let tags = m.entry("tag").or_insert_with(|| serde_json::json!([]));
        if let Some(t) = tags.as_array_mut()
            && !t.iter().any(|x| x["code"] == TAG_IDENTITY_UNVERIFIED)
        {
            t.push(serde_json::json!({
                "system": CS_IDENTITY_STATUS,
                "code": TAG_IDENTITY_UNVERIFIED,
                "display": warning,
            }));
        }
    }
    Some(warning)
}

#[cfg(test)]
mod unverified_tests {
    use super::*;

    #[test]
    fn a_bad_check_digit_is_demoted_and_tagged() {
        let mut p = serde_json::json!({"resourceType": "Patient", "identifier": [
            {"system": SID_RESIDENT_ID, "value": "510521199001011233"}]});
        let w = demote_unverified_ids(&mut p).expect("warned");
        assert!(w.contains("校验位"));
        assert_eq!(p["identifier"][0]["system"], SID_RESIDENT_ID_UNVERIFIED);
        assert_eq!(p["meta"]["tag"][0]["code"], TAG_IDENTITY_UNVERIFIED);
        let mut ok = serde_json::json!({"resourceType": "Patient", "identifier": [
            {"system": SID_RESIDENT_ID, "value": "510521199001011239"}]});
        assert!(demote_unverified_ids(&mut ok).is_none());
    }
}
