//! Bundles: searchset assembly (from stored JSON text, without re-parsing) and
//! transaction parsing with `urn:uuid` reference resolution.

use crate::Issue;
use crate::extract::{is_resource_type, is_valid_id, parse_reference};
use serde_json::Value;
use std::collections::HashMap;

/// One page of a search, ready to serialise.
pub struct SearchPage<'a> {
    pub base: &'a str,
    pub total: Option<i64>,
    /// (resource type, id, JSON text) of each match.
    pub entries: Vec<(String, String, String)>,
    /// Links: (relation, url).
    pub links: Vec<(&'static str, String)>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl SearchPage<'_> {
    pub fn to_json(&self) -> String {
        let mut out =
            String::with_capacity(64 + self.entries.iter().map(|e| e.2.len() + 96).sum::<usize>());
        out.push_str(r#"{"resourceType":"Bundle","type":"searchset""#);
        if let Some(t) = self.total {
            out.push_str(&format!(r#","total":{t}"#));
        }
        if !self.links.is_empty() {
            out.push_str(r#","link":["#);
            for (i, (rel, url)) in self.links.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!(
                    r#"{{"relation":{},"url":{}}}"#,
                    json_str(rel),
                    json_str(url)
                ));
            }
            out.push(']');
        }
        if !self.entries.is_empty() {
            out.push_str(r#","entry":["#);
            for (i, (t, id, body)) in self.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!(
                    r#"{{"fullUrl":{},"resource":{body},"search":{{"mode":"match"}}}}"#,
                    json_str(&format!("{}/{t}/{id}", self.base))
                ));
            }
            out.push(']');
        }
        out.push('}');
        out
    }
}

/// Keeps only the listed top-level elements (plus the mandatory ones) and marks
/// the resource as SUBSETTED, as `_elements` requires.
pub fn subset(body: &str, elements: &[String]) -> String {
    let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    o.retain(|k, _| {
        k == "resourceType" || k == "id" || k == "meta" || elements.iter().any(|e| e == k)
    });
    let meta = o
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(m) = meta.as_object_mut() {
        let tags = m.entry("tag").or_insert_with(|| Value::Array(vec![]));
        if let Some(a) = tags.as_array_mut() {
            a.push(serde_json::json!({ "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED" }));
        }
    }
    serde_json::to_string(&Value::Object(o)).unwrap_or_else(|_| body.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

#[derive(Debug, Clone)]
pub struct TxEntry {
    pub method: Method,
    pub rtype: String,
    pub id: String,
    pub resource: Value,
    pub if_match: Option<i64>,
    /// A conditional create: the query string of `ifNoneExist`.
    pub if_none_exist: Option<String>,
}

/// Parses an ETag / If-Match value such as `W/"3"`, `"3"` or `3`.
pub fn parse_etag(s: &str) -> Option<i64> {
    s.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

fn rewrite_refs(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "reference" {
                    if let Some(s) = x.as_str()
                        && let Some(to) = map.get(s)
                    {
                        *x = Value::String(to.clone());
                    }
                } else {
                    rewrite_refs(x, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, map)),
        _ => {}
    }
}

/// Reads a transaction (or, for imports, batch/collection) Bundle into entries
/// with final ids, and rewrites references between entries (`urn:uuid:…`,
/// full URLs) to `Type/id`. POST entries keep a valid `resource.id` (so
/// re-importing the same bundle updates rather than duplicates); otherwise
/// `new_id` supplies one.
pub fn parse_transaction(
    mut bundle: Value,
    strict_transaction: bool,
    mut new_id: impl FnMut() -> String,
) -> Result<Vec<TxEntry>, Issue> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(Issue::invalid(
            "wrong-resource-type",
            "请求体必须是 Bundle 资源",
        ));
    }
    let btype = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let allowed = if strict_transaction {
        btype == "transaction"
    } else {
        matches!(btype, "transaction" | "batch" | "collection")
    };
    if !allowed {
        return Err(Issue::new(
            400,
            "not-supported",
            "bundle-type",
            format!("不支持的 Bundle 类型 {btype}:仅支持 transaction(全部成功或全部失败)"),
        ));
    }
    let raw = match bundle.get_mut("entry").map(Value::take) {
        Some(Value::Array(a)) => a,
        _ => vec![],
    };
    let mut entries = Vec::with_capacity(raw.len());
    let mut map = HashMap::new();
    for (i, mut e) in raw.into_iter().enumerate() {
        let at = format!("Bundle.entry[{i}]");
        let resource = e
            .get_mut("resource")
            .map(Value::take)
            .filter(|r| !r.is_null())
            .ok_or_else(|| {
                Issue::invalid("bundle-entry", format!("第 {} 条缺少 resource", i + 1)).at(&at)
            })?;
        let rtype = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !is_resource_type(&rtype) {
            return Err(Issue::invalid(
                "wrong-resource-type",
                format!("第 {} 条的 resourceType 无效", i + 1),
            )
            .at(&at));
        }
        let req = e.get("request");
        let method = match req
            .and_then(|r| r.get("method"))
            .and_then(Value::as_str)
            .unwrap_or("POST")
        {
            "POST" => Method::Post,
            "PUT" => Method::Put,
            m => {
                return Err(Issue::new(
                    400,
                    "not-supported",
                    "bundle-method",
                    format!("第 {} 条:暂不支持 {m} 操作", i + 1),
                )
                .at(&at));
            }
        };
        let url = req
            .and_then(|r| r.get("url"))
            .and_then(Value::as_str)
            .unwrap_or(&rtype);
        let id = match method {
            Method::Put => {
                let (t, id) = parse_reference(url).ok_or_else(|| {
                    Issue::invalid(
                        "bundle-url",
                        format!("第 {} 条的 PUT 地址 {url} 应为 类型/id", i + 1),
                    )
                    .at(&at)
                })?;
                if t != rtype {
                    return Err(Issue::invalid(
                        "wrong-resource-type",
                        format!("第 {} 条:地址类型 {t} 与资源类型 {rtype} 不符", i + 1),
                    )
                    .at(&at));
                }
                id.to_string()
            }
            Method::Post => match resource.get("id").and_then(Value::as_str) {
                Some(id) if is_valid_id(id) => id.to_string(),
                _ => new_id(),
            },
        };
        if let Some(full) = e.get("fullUrl").and_then(Value::as_str) {
            map.insert(full.to_string(), format!("{rtype}/{id}"));
        }
        let if_match = req
            .and_then(|r| r.get("ifMatch"))
            .and_then(Value::as_str)
            .map(|s| {
                parse_etag(s).ok_or_else(|| {
                    Issue::invalid("if-match", format!("第 {} 条的 ifMatch 格式错误", i + 1))
                })
            });
        entries.push(TxEntry {
            method,
            rtype,
            id,
            resource,
            if_match: if_match.transpose()?,
            if_none_exist: req
                .and_then(|r| r.get("ifNoneExist"))
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    for e in &mut entries {
        rewrite_refs(&mut e.resource, &map);
        if let Some(o) = e.resource.as_object_mut() {
            o.insert("id".into(), Value::String(e.id.clone()));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urn_references_are_resolved() {
        let b = json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                { "fullUrl": "urn:uuid:aaa", "resource": { "resourceType": "Patient" }, "request": { "method": "POST", "url": "Patient" } },
                { "fullUrl": "urn:uuid:bbb", "resource": { "resourceType": "Encounter", "subject": { "reference": "urn:uuid:aaa" } }, "request": { "method": "POST", "url": "Encounter" } },
                { "resource": { "resourceType": "Patient", "id": "x1" }, "request": { "method": "PUT", "url": "Patient/x1", "ifMatch": "W/\"2\"" } }
            ]
        });
        let mut n = 0;
        let e = parse_transaction(b.clone(), true, || {
            n += 1;
            format!("new{n}")
        })
        .unwrap();
        assert_eq!(e[0].id, "new1");
        assert_eq!(e[1].resource["subject"]["reference"], "Patient/new1");
        assert_eq!(e[2].if_match, Some(2));
    }

    #[test]
    fn non_transactions_are_refused() {
        let b = json!({ "resourceType": "Bundle", "type": "searchset" });
        assert_eq!(
            parse_transaction(b.clone(), true, String::new)
                .unwrap_err()
                .code,
            "bundle-type"
        );
    }

    #[test]
    fn searchset_is_valid_json() {
        let page = SearchPage {
            base: "http://h/fhir",
            total: Some(1),
            entries: vec![(
                "Patient".into(),
                "p1".into(),
                r#"{"resourceType":"Patient","id":"p1"}"#.into(),
            )],
            links: vec![("self", "http://h/fhir/Patient?name=x".into())],
        };
        let v: Value = serde_json::from_str(&page.to_json()).unwrap();
        assert_eq!(v["entry"][0]["resource"]["id"], "p1");
        assert_eq!(v["total"], 1);
    }
}
