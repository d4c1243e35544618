//! The FHIR R4 REST API under `/fhir`.

use crate::auth::Principal;
use crate::error::{ApiError, FHIR_JSON};
use crate::service::WriteOutcome;
use crate::{AppState, blocking, blocking_write, point_read};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use yigong_fhir::Issue;
use yigong_fhir::bundle::{SearchPage, parse_etag, subset};
use yigong_fhir::extract::{is_resource_type, is_valid_id};
use yigong_store::Stored;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route(
            "/fhir",
            axum::routing::post(transaction).layer(DefaultBodyLimit::max(256 * 1024 * 1024)),
        )
        .route("/fhir/Patient/$match", axum::routing::post(patient_match))
        .route("/fhir/Person/{id}", get(person_read))
        .route("/fhir/{rtype}", get(search).post(create))
        .route("/fhir/{rtype}/{id}", get(read).put(update))
        .route("/fhir/{rtype}/{id}/{op}", get(instance_operation))
        .route("/fhir/{rtype}/{id}/_history/{vid}", get(vread))
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}/fhir")
}

pub(crate) fn fhir_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

fn resource_response(status: StatusCode, s: &Stored, location: bool) -> Response {
    let mut r = fhir_response(status, s.body.clone());
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", s.version)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&s.updated)
        && let Ok(v) =
            HeaderValue::from_str(&t.to_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    if location
        && let Ok(v) = HeaderValue::from_str(&format!(
            "/fhir/{}/{}/_history/{}",
            s.rtype, s.id, s.version
        ))
    {
        h.insert(header::LOCATION, v);
    }
    r
}

fn check_type(rtype: &str) -> Result<(), ApiError> {
    if is_resource_type(rtype) {
        Ok(())
    } else {
        Err(Issue::new(
            404,
            "not-supported",
            "unknown-type",
            format!("未知的资源类型 {rtype}"),
        )
        .into())
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(Issue::invalid("invalid-id", format!("资源 id {id} 格式错误")).into())
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(Issue::new(
            400,
            "structure",
            "malformed-json",
            format!(
                "请求体不是合法的JSON(第{}行第{}列):{e}",
                e.line(),
                e.column()
            ),
        ))
    })
}

async fn metadata(headers: HeaderMap) -> Response {
    let cs = yigong_fhir::capability::capability_statement(
        &base_url(&headers),
        env!("CARGO_PKG_VERSION"),
    );
    fhir_response(StatusCode::OK, cs.to_string())
}

async fn read(
    State(st): State<AppState>,
    p: Principal,
    Path((rtype, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_type(&rtype)?;
    check_id(&id)?;
    let s = point_read(&st.svc, move |svc| svc.read(&p, &rtype, &id)).await?;
    Ok(resource_response(StatusCode::OK, &s, false))
}

async fn vread(
    State(st): State<AppState>,
    p: Principal,
    Path((rtype, id, vid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    check_type(&rtype)?;
    check_id(&id)?;
    let v: i64 = vid
        .parse()
        .map_err(|_| Issue::invalid("invalid-version", format!("版本号 {vid} 应为正整数")))?;
    let s = blocking(move || st.svc.vread(&p, &rtype, &id, v)).await?;
    Ok(resource_response(StatusCode::OK, &s, false))
}

async fn history(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path((rtype, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_type(&rtype)?;
    check_id(&id)?;
    let base = base_url(&headers);
    let h = blocking(move || st.svc.history(&p, &rtype, &id)).await?;
    let entries: Vec<Value> = h
        .iter()
        .map(|s| {
            serde_json::json!({
                "fullUrl": format!("{base}/{}/{}", s.rtype, s.id),
                "resource": serde_json::from_str::<Value>(&s.body).unwrap_or(Value::Null),
                "request": { "method": if s.version == 1 { "POST" } else { "PUT" }, "url": format!("{}/{}", s.rtype, s.id) },
                "response": { "status": if s.version == 1 { "201" } else { "200" }, "etag": format!("W/\"{}\"", s.version), "lastModified": s.updated }
            })
        })
        .collect();
    let b = serde_json::json!({ "resourceType": "Bundle", "type": "history", "total": entries.len(), "entry": entries });
    Ok(fhir_response(StatusCode::OK, b.to_string()))
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn page_link(base: &str, rtype: &str, pairs: &[(String, String)], offset: i64) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "_offset") {
        ser.append_pair(k, v);
    }
    ser.append_pair("_offset", &offset.to_string());
    format!("{base}/{rtype}?{}", ser.finish())
}

async fn search(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    check_type(&rtype)?;
    let pairs = query_pairs(&q);
    let spec = yigong_fhir::search::parse(&rtype, &pairs)?;
    let base = base_url(&headers);
    let spec2 = spec.clone();
    let (total, rows) = blocking(move || st.svc.search(&p, &spec2)).await?;
    let mut links = vec![("self", page_link(&base, &rtype, &pairs, spec.offset))];
    if !spec.summary_count {
        if rows.len() as i64 == spec.count && spec.count > 0 {
            links.push((
                "next",
                page_link(&base, &rtype, &pairs, spec.offset + spec.count),
            ));
        }
        if spec.offset > 0 {
            links.push((
                "previous",
                page_link(&base, &rtype, &pairs, (spec.offset - spec.count).max(0)),
            ));
        }
    }
    let entries = rows
        .into_iter()
        .map(|s| {
            let body = match &spec.elements {
                Some(el) => subset(&s.body, el),
                None => s.body,
            };
            (s.rtype, s.id, body)
        })
        .collect();
    let page = SearchPage {
        base: &base,
        total,
        entries,
        links,
    };
    Ok(fhir_response(StatusCode::OK, page.to_json()))
}

fn write_response(w: WriteOutcome) -> Response {
    let status = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    resource_response(status, &w.stored, true)
}

async fn create(
    State(st): State<AppState>,
    p: Principal,
    Path(rtype): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_type(&rtype)?;
    let v = parse_body(&body)?;
    let w = blocking_write(move || st.svc.create(&p, &rtype, v)).await?;
    Ok(write_response(w))
}

async fn update(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path((rtype, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_type(&rtype)?;
    check_id(&id)?;
    let if_match =
        match headers.get(header::IF_MATCH) {
            None => None,
            Some(h) => Some(h.to_str().ok().and_then(parse_etag).ok_or_else(|| {
                Issue::invalid("if-match", "If-Match 格式错误,应为 W/\"版本号\"")
            })?),
        };
    let v = parse_body(&body)?;
    let w = blocking_write(move || st.svc.update(&p, &rtype, &id, v, if_match)).await?;
    Ok(write_response(w))
}

async fn transaction(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = parse_body(&body)?;
    let base = base_url(&headers);
    let (resp, _) = blocking_write(move || {
        st.svc
            .transaction(&p.actor(), Some(p.role()), v, &base, true)
    })
    .await?;
    Ok(fhir_response(StatusCode::OK, resp.to_string()))
}

/// `GET /fhir/{type}/{id}/_history` and `GET /fhir/Patient/{id}/$everything`.
async fn instance_operation(
    st: State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path((rtype, id, op)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    match (rtype.as_str(), op.as_str()) {
        (_, "_history") => history(st, p, headers, Path((rtype, id))).await,
        ("Patient", "$everything") => everything(st, p, headers, id).await,
        _ => Err(Issue::new(
            404,
            "not-supported",
            "unknown-operation",
            format!("不支持的操作 {rtype}/{{id}}/{op}"),
        )
        .into()),
    }
}

async fn everything(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    id: String,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let base = base_url(&headers);
    let all = blocking(move || st.svc.everything(&p, &id)).await?.records;
    let n = all.len() as i64;
    let page = SearchPage {
        base: &base,
        total: Some(n),
        entries: all.into_iter().map(|s| (s.rtype, s.id, s.body)).collect(),
        links: vec![],
    };
    Ok(fhir_response(StatusCode::OK, page.to_json()))
}

/// `POST /fhir/Patient/$match` (FHIR R4 Patient-match): Parameters with
/// `resource` (a Patient), optional `count` and `onlyCertainMatches`; answers
/// a searchset Bundle scored by the master patient index.
async fn patient_match(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = parse_body(&body)?;
    if params["resourceType"] != "Parameters" {
        return Err(Issue::invalid(
            "match-parameters",
            "请求体应为 Parameters 资源,含 resource 参数(Patient)",
        )
        .into());
    }
    let find = |name: &str| {
        params["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["name"] == name)
            .cloned()
    };
    let patient = find("resource")
        .map(|x| x["resource"].clone())
        .filter(|r| r["resourceType"] == "Patient")
        .ok_or_else(|| {
            Issue::invalid("match-resource", "缺少 resource 参数,或其不是 Patient 资源")
        })?;
    let count = find("count")
        .and_then(|x| x["valueInteger"].as_u64())
        .unwrap_or(10)
        .clamp(1, 100) as usize;
    let only_certain = find("onlyCertainMatches")
        .and_then(|x| x["valueBoolean"].as_bool())
        .unwrap_or(false);
    let base = base_url(&headers);
    let found = blocking(move || st.svc.match_patient(&p, &patient, count, only_certain)).await?;
    let entries: Vec<Value> = found
        .into_iter()
        .map(|(s, c)| {
            let grade = match c.decision {
                yigong_empi::Decision::Link => "certain",
                yigong_empi::Decision::Review if c.probability >= 0.9 => "probable",
                _ => "possible",
            };
            serde_json::json!({
                "fullUrl": format!("{base}/Patient/{}", s.id),
                "resource": serde_json::from_str::<Value>(&s.body).unwrap_or(Value::Null),
                "search": {
                    "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/match-grade", "valueCode": grade }],
                    "mode": "match",
                    "score": (c.probability * 10_000.0).round() / 10_000.0
                }
            })
        })
        .collect();
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "entry": entries,
    });
    Ok(fhir_response(StatusCode::OK, bundle.to_string()))
}

/// `GET /fhir/Person/{id}`: the master person.
async fn person_read(
    State(st): State<AppState>,
    _p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let v = blocking(move || st.svc.person(&id)).await?;
    Ok(fhir_response(StatusCode::OK, v.to_string()))
}
