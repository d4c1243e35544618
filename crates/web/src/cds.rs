//! CDS Hooks 2.0: discovery at `/cds-services` and the `order-sign` service
//! running the prescription review engine over draft MedicationRequests.
//!
//! Patient facts come from the request's prefetch; what is missing is fetched
//! on demand — from the client's `fhirServer` with its `fhirAuthorization`
//! token, or, when the client names no server, from this server's own record
//! under the caller's scope.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{AppState, blocking, blocking_write, json_response};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use yigong_fhir::Issue;
use yigong_rx::cds::{self, OrderSign};
use yigong_rx::model::{Prescriber, Tier};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cds-services", get(discovery))
        .route("/cds-services/order-sign", post(order_sign))
        .route("/cds-services/order-sign/feedback", post(feedback))
}

async fn discovery() -> Response {
    json_response(StatusCode::OK, &cds::discovery())
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(Issue::new(400, "invalid", "cds-request", msg.into()))
}

async fn order_sign(
    State(st): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: Value = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("请求体不是有效的 JSON:{e}")))?;
    let store = st.svc.store.clone();
    let svc = st.svc.clone();
    let out = blocking(move || -> Result<Value, ApiError> {
        let state = store.rx_state();
        let k = &state.knowledge;
        let mut o = cds::parse_request(&req, k).map_err(|e| bad_request(e.0))?;
        fetch_missing(&svc, &p, &mut o)?;
        let (facts, diagnoses) = cds::patient_facts(&o.prefetch);
        let (tier, rights, verified) = caller_rights(&svc, &p);
        let date = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
        let rx = cds::prescription(&o, facts, diagnoses, date, tier, rights);
        let findings = yigong_rx::review(k, &rx);
        let mut resp = cds::cards(k, &o, &findings);
        if !verified
            && let Some(cards) = resp["cards"].as_array_mut()
        {
            cards.push(json!({
                "summary": "未能核验处方医师的处方权限(调用账号不属于医疗机构),合法性规则按最高权限审核",
                "indicator": "info",
                "source": { "label": "yigong 集中审方" }
            }));
        }
        Ok(resp)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &out))
}

/// The caller's tier and prescribing rights; unverified when the caller is not
/// a clinician of an institution (an integration account).
fn caller_rights(svc: &crate::Service, p: &Principal) -> (Tier, Prescriber, bool) {
    let inst = p.0.institution.as_deref();
    let tier = inst.and_then(|i| {
        svc.org_tree()
            .iter()
            .find(|n| n.id == i)
            .and_then(|n| n.tier.as_deref().and_then(Tier::from_code))
    });
    match (tier, svc.store.rx_prescriber(&p.0.name, p.role())) {
        (Some(t), Ok(r))
            if matches!(
                p.role(),
                yigong_store::Role::Clinician | yigong_store::Role::VillageDoctor
            ) =>
        {
            (t, r, true)
        }
        _ => (
            Tier::County,
            Prescriber {
                antimicrobial: Some(yigong_rx::knowledge::AntimicrobialGrade::Special),
                narcotic_right: true,
            },
            false,
        ),
    }
}

/// Fetches the prefetch the client did not send.
fn fetch_missing(svc: &crate::Service, p: &Principal, o: &mut OrderSign) -> Result<(), ApiError> {
    for (key, query) in cds::missing_prefetch(o) {
        let v = match &o.fhir_server {
            Some(base) => fetch_remote(base, o.access_token.as_deref(), &query),
            None => fetch_local(svc, p, &query),
        }
        .map_err(|m| {
            ApiError(Issue::new(
                412,
                "incomplete",
                "prefetch-unavailable",
                format!("缺少预取数据 {key},且无法获取:{m}"),
            ))
        })?;
        o.prefetch.insert(key.to_string(), v);
    }
    Ok(())
}

fn fetch_remote(base: &str, token: Option<&str>, query: &str) -> Result<Value, String> {
    let url = format!("{}/{}", base.trim_end_matches('/'), query);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(&url).header("Accept", "application/fhir+json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().map_err(|e| format!("访问 {url} 失败:{e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url} 返回 HTTP {}", resp.status().as_u16()));
    }
    resp.body_mut()
        .read_json::<Value>()
        .map_err(|e| format!("{url} 返回的不是 JSON:{e}"))
}

/// Runs a prefetch query against this server's own record, in the caller's scope.
fn fetch_local(svc: &crate::Service, p: &Principal, query: &str) -> Result<Value, String> {
    let (path, qs) = query.split_once('?').unwrap_or((query, ""));
    if let Some((rtype, id)) = path.split_once('/') {
        return svc
            .read(p, rtype, id)
            .map_err(|i| i.zh)
            .and_then(|s| serde_json::from_str(&s.body).map_err(|e| e.to_string()));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(qs.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let spec = yigong_fhir::search::parse(path, &pairs).map_err(|i| i.zh)?;
    let (_, rows) = svc.search(p, &spec).map_err(|i| i.zh)?;
    let entries: Vec<Value> = rows
        .into_iter()
        .filter_map(|s| serde_json::from_str::<Value>(&s.body).ok())
        .map(|r| json!({ "resource": r }))
        .collect();
    Ok(json!({ "resourceType": "Bundle", "type": "searchset", "entry": entries }))
}

/// CDS Hooks feedback: which cards were accepted or overridden, and why. Kept
/// in the audit log so post-hoc review can see overridden warnings.
async fn feedback(
    State(st): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("请求体不是有效的 JSON:{e}")))?;
    let items = v
        .get("feedback")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("缺少 feedback 数组"))?
        .clone();
    let mut rows = Vec::new();
    for (i, f) in items.iter().enumerate() {
        let card = f.get("card").and_then(Value::as_str).unwrap_or("");
        let outcome = f.get("outcome").and_then(Value::as_str).unwrap_or("");
        if card.is_empty() || !matches!(outcome, "accepted" | "overridden") {
            return Err(bad_request(format!(
                "第 {} 条反馈须有 card 和 outcome(accepted 或 overridden)",
                i + 1
            )));
        }
        let reason = f
            .pointer("/overrideReason/reason/display")
            .or_else(|| f.pointer("/overrideReason/reason/code"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let comment = f
            .pointer("/overrideReason/userComment")
            .and_then(Value::as_str)
            .unwrap_or("");
        rows.push((
            card.to_string(),
            format!("{outcome} {reason} {comment}").trim().to_string(),
        ));
    }
    let store = st.svc.store.clone();
    let actor = p.actor();
    blocking_write(move || store.record_feedback(&actor, "cds-feedback", &rows)).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}
