//! Indicators as FHIR: every catalogue indicator is a `Measure`
//! (`GET /fhir/Measure`, `GET /fhir/Measure/{id}`), and its figure for an
//! organisation and period comes from the standard operation
//! `GET /fhir/Measure/{id}/$evaluate-measure?periodStart=…&periodEnd=…&subject=Organization/{id}&reportType=summary`
//! as a `MeasureReport`, computed from the live counters.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use yigong_fhir::Issue;
use yigong_metrics::{indicators, measure};
use yigong_store::Scope;
use yigong_store::metrics::{Subject, catalogue};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir/Measure", get(search))
        .route("/fhir/Measure/{id}", get(read))
        .route("/fhir/Measure/{id}/$evaluate-measure", get(evaluate))
}

fn fhir(status: StatusCode, v: &Value) -> Response {
    crate::fhir_api::fhir_response(status, v.to_string())
}

fn indicator(id: &str) -> Result<&'static indicators::Indicator, ApiError> {
    catalogue().by_measure_id(id).ok_or_else(|| {
        ApiError(Issue::new(
            404,
            "not-found",
            "not-found",
            format!("指标 Measure/{id} 不存在"),
        ))
    })
}

async fn search(_p: Principal) -> Response {
    let entries: Vec<Value> = catalogue()
        .all()
        .iter()
        .map(|i| json!({ "fullUrl": measure::canonical(i), "resource": measure::measure(i), "search": { "mode": "match" } }))
        .collect();
    fhir(
        StatusCode::OK,
        &json!({ "resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries }),
    )
}

async fn read(_p: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(fhir(StatusCode::OK, &measure::measure(indicator(&id)?)))
}

fn invalid(msg: String) -> ApiError {
    ApiError(Issue::invalid("invalid-parameter", msg))
}

async fn evaluate(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let ind = indicator(&id)?;
    let pairs: Vec<(String, String)> = q
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(start), Some(end)) = (get("periodStart"), get("periodEnd")) else {
        return Err(invalid(
            "$evaluate-measure 需要 periodStart 和 periodEnd".into(),
        ));
    };
    if let Some(t) = get("reportType")
        && t != "summary"
    {
        return Err(invalid(format!("仅支持 reportType=summary(收到 {t})")));
    }
    let (first, last) = indicators::month_range(&start, &end).ok_or_else(|| {
        invalid(format!(
            "统计期间无效:periodStart={start},periodEnd={end}(应为日期,且开始不晚于结束)"
        ))
    })?;
    let subject_ref = get("subject");
    // The tree may need loading from the database: off the async workers.
    let svc = st.svc.clone();
    let tree = blocking(move || svc.org_tree()).await;
    // Without a subject, the caller's own scope is meant.
    let subject_ref = subject_ref.or_else(|| match &p.0.scope {
        Scope::County => None,
        Scope::Community(c) | Scope::Institution(c) => Some(format!("Organization/{c}")),
    });
    let (subject, reference) = match subject_ref.as_deref() {
        None => {
            let county = tree.iter().find(|n| n.kind.as_deref() == Some("county"));
            (
                Subject::County,
                county.map_or("Organization/county".to_string(), |c| {
                    format!("Organization/{}", c.id)
                }),
            )
        }
        Some(r) => {
            let oid = r
                .strip_prefix("Organization/")
                .ok_or_else(|| invalid(format!("subject 必须是 Organization/<id>(收到 {r})")))?;
            let node = tree
                .iter()
                .find(|n| n.id == oid)
                .ok_or_else(|| invalid(format!("机构 {oid} 不存在")))?;
            let s = match node.kind.as_deref() {
                Some("county") => Subject::County,
                Some("community") => Subject::Community(node.id.clone()),
                _ => Subject::Institution(node.id.clone()),
            };
            (s, r.to_string())
        }
    };
    // The caller's scope must contain the subject.
    let allowed = match (&p.0.scope, &subject) {
        (Scope::County, _) => true,
        (Scope::Community(c), Subject::Community(s)) => c == s,
        (Scope::Community(c), Subject::Institution(i)) => tree
            .iter()
            .any(|n| &n.id == i && n.comm.as_deref() == Some(c.as_str())),
        (Scope::Institution(a), Subject::Institution(b)) => a == b,
        _ => false,
    };
    if !allowed {
        return Err(ApiError(Issue::new(
            403,
            "forbidden",
            "out-of-scope",
            "所选机构不在您的管辖范围内",
        )));
    }
    let store = st.svc.store.clone();
    let ind_id = ind.id.clone();
    let value = blocking(move || store.indicator_value(&ind_id, &subject, &first, &last)).await?;
    Ok(fhir(
        StatusCode::OK,
        &measure::measure_report(ind, &reference, &start, &end, &value),
    ))
}
