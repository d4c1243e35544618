//! The prescription-review JSON API under `/rx/api`: what the pages do, for
//! clinic systems, tests and benchmarks. Versions travel in `If-Match` (PUT) or
//! in the body (`version`), and a stale one gets 412.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::{AppState, blocking, blocking_write, json_response};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use yigong_fhir::Issue;
use yigong_store::rx::{Decision, ReviewAction, RxInput, RxRow, RxSettings};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rx/api/prescriptions", post(submit).get(list))
        .route("/rx/api/prescriptions/{id}", get(read).put(resubmit))
        .route("/rx/api/prescriptions/{id}/review", post(review))
        .route("/rx/api/prescriptions/{id}/dispense", post(dispense))
        .route("/rx/api/prescriptions/{id}/cancel", post(cancel))
        .route("/rx/api/check", post(check))
        .route("/rx/api/formulary", get(formulary))
        .route("/rx/api/formulary/decisions", get(decisions).post(decide))
        .route("/rx/api/settings", get(settings).put(set_settings))
        .route("/rx/api/prescribers/{user}", put(set_prescriber))
        .route("/rx/api/comments/sample", post(sample))
        .route("/rx/api/comments/{rx}", post(comment))
        .route("/rx/api/comments", get(comments))
}

fn row_response(status: StatusCode, row: &RxRow) -> Response {
    let mut r = json_response(status, &json!(row));
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", row.version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(Issue::new(
            400,
            "structure",
            "malformed-json",
            format!("请求内容格式错误:{e}"),
        ))
    })
}

fn if_match(h: &HeaderMap) -> Result<i64, ApiError> {
    h.get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(yigong_fhir::bundle::parse_etag)
        .ok_or_else(|| {
            ApiError(Issue::new(
                428,
                "required",
                "if-match-required",
                "修改处方必须提供 If-Match 版本号",
            ))
        })
}

async fn submit(
    State(st): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: RxInput = parse(&body)?;
    let store = st.svc.store.clone();
    let row =
        blocking_write(move || store.rx_submit(&p.actor(), &p.0.display, p.role(), &input)).await?;
    Ok(row_response(StatusCode::CREATED, &row))
}

/// Runs the rules without storing anything (a prescriber's "check before signing").
async fn check(
    State(st): State<AppState>,
    _signed_in: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let rx: yigong_rx::Prescription = parse(&body)?;
    let store = st.svc.store.clone();
    let out = blocking(move || {
        let state = store.rx_state();
        let findings = yigong_rx::review(&state.knowledge, &rx);
        json!({ "verdict": yigong_store::rx::verdict_code(yigong_rx::verdict(&findings)), "findings": findings })
    })
    .await;
    Ok(json_response(StatusCode::OK, &out))
}

async fn read(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = st.svc.store.clone();
    let scope = p.0.scope.clone();
    let id2 = id.clone();
    let row = blocking(move || store.rx_get(&scope, &id2)).await?;
    match row {
        Some(r) => Ok(row_response(StatusCode::OK, &r)),
        None => Err(ApiError(Issue::new(
            404,
            "not-found",
            "not-found",
            format!("处方 {id} 不存在"),
        ))),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    mine: Option<bool>,
    limit: Option<i64>,
}

async fn list(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let store = st.svc.store.clone();
    let rows = blocking(move || {
        let mine = q.mine.unwrap_or(false).then_some(p.0.name.as_str());
        store.rx_list(
            &p.0.scope,
            q.status.as_deref(),
            mine,
            q.limit.unwrap_or(50).clamp(1, 500),
        )
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "prescriptions": rows }),
    ))
}

async fn resubmit(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let version = if_match(&headers)?;
    let input: RxInput = parse(&body)?;
    let store = st.svc.store.clone();
    let row = blocking_write(move || store.rx_resubmit(&p.actor(), p.role(), &id, version, &input))
        .await?;
    Ok(row_response(StatusCode::OK, &row))
}

#[derive(Deserialize)]
struct ReviewBody {
    version: i64,
    action: String,
    #[serde(default)]
    note: String,
}

async fn review(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: ReviewBody = parse(&body)?;
    let action = match b.action.as_str() {
        "pass" => ReviewAction::Pass,
        "return" => ReviewAction::Return,
        a => {
            return Err(ApiError(Issue::invalid(
                "bad-action",
                format!("审核动作 {a} 无效(应为 pass 或 return)"),
            )));
        }
    };
    let store = st.svc.store.clone();
    let row = blocking_write(move || {
        store.rx_review(&p.actor(), p.role(), &id, b.version, action, &b.note)
    })
    .await?;
    Ok(row_response(StatusCode::OK, &row))
}

#[derive(Deserialize)]
struct VersionBody {
    version: i64,
    #[serde(default)]
    reason: String,
}

async fn dispense(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: VersionBody = parse(&body)?;
    let store = st.svc.store.clone();
    let row =
        blocking_write(move || store.rx_dispense(&p.actor(), p.role(), &id, b.version)).await?;
    Ok(row_response(StatusCode::OK, &row))
}

async fn cancel(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: VersionBody = parse(&body)?;
    let store = st.svc.store.clone();
    let row =
        blocking_write(move || store.rx_cancel(&p.actor(), &id, b.version, &b.reason)).await?;
    Ok(row_response(StatusCode::OK, &row))
}

#[derive(Deserialize)]
struct FormularyQuery {
    q: Option<String>,
}

async fn formulary(
    State(st): State<AppState>,
    _p: Principal,
    Query(q): Query<FormularyQuery>,
) -> Result<Response, ApiError> {
    let state = st.svc.store.rx_state();
    let needle = q.q.unwrap_or_default().trim().to_lowercase();
    let drugs: Vec<&yigong_rx::Drug> = state
        .knowledge
        .drugs
        .iter()
        .filter(|d| {
            needle.is_empty()
                || d.name.contains(&needle)
                || d.generic.contains(&needle)
                || d.en.contains(&needle)
                || d.code.to_lowercase().starts_with(&needle)
                || d.atc.to_lowercase().starts_with(&needle)
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "version": state.version, "count": drugs.len(), "drugs": drugs }),
    ))
}

async fn decisions(State(st): State<AppState>, _p: Principal) -> Result<Response, ApiError> {
    let store = st.svc.store.clone();
    let rows = blocking(move || store.rx_decisions()).await?;
    Ok(json_response(StatusCode::OK, &json!({ "decisions": rows })))
}

async fn decide(
    State(st): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d: Decision = parse(&body)?;
    let store = st.svc.store.clone();
    let seq = blocking_write(move || store.rx_decide(&p.actor(), p.role(), &d)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "seq": seq, "formulary_version": st.svc.store.rx_state().version }),
    ))
}

async fn settings(State(st): State<AppState>, _p: Principal) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &json!(st.svc.store.rx_state().settings),
    ))
}

fn admin_only(p: &Principal) -> Result<(), ApiError> {
    if matches!(
        p.role(),
        yigong_store::Role::SystemAdmin | yigong_store::Role::OperationsCentre
    ) {
        Ok(())
    } else {
        Err(ApiError(Issue::new(
            403,
            "forbidden",
            "admin-only",
            "只有管理员或运营管理中心可以修改审方设置和处方权",
        )))
    }
}

async fn set_settings(
    State(st): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&p)?;
    let s: RxSettings = parse(&body)?;
    let store = st.svc.store.clone();
    blocking_write(move || store.rx_set_settings(&p.actor(), s)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!(st.svc.store.rx_state().settings),
    ))
}

async fn set_prescriber(
    State(st): State<AppState>,
    p: Principal,
    Path(user): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&p)?;
    let rights: yigong_rx::model::Prescriber = parse(&body)?;
    let store = st.svc.store.clone();
    blocking_write(move || store.rx_set_prescriber(&p.actor(), &user, &rights)).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

#[derive(Deserialize)]
struct SampleBody {
    month: String,
    institution: String,
    count: usize,
    #[serde(default)]
    seed: u64,
}

async fn sample(
    State(st): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: SampleBody = parse(&body)?;
    let store = st.svc.store.clone();
    let n = blocking_write(move || {
        store.rx_sample(&p.actor(), &b.month, &b.institution, b.count, b.seed)
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, &json!({ "sampled": n })))
}

#[derive(Deserialize)]
struct CommentBody {
    version: i64,
    #[serde(flatten)]
    verdict: yigong_store::rx::CommentVerdict,
}

async fn comment(
    State(st): State<AppState>,
    p: Principal,
    Path(rx): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: CommentBody = parse(&body)?;
    let store = st.svc.store.clone();
    blocking_write(move || store.rx_comment(&p.actor(), p.role(), &rx, b.version, &b.verdict))
        .await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

#[derive(Deserialize)]
struct CommentsQuery {
    month: String,
    by: Option<String>,
}

async fn comments(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<CommentsQuery>,
) -> Result<Response, ApiError> {
    let store = st.svc.store.clone();
    let out = blocking(move || -> Result<Value, yigong_store::StoreError> {
        let rows = store.rx_comments(&p.0.scope, &q.month, None)?;
        let report =
            store.rx_comment_report(&p.0.scope, &q.month, q.by.as_deref() == Some("prescriber"))?;
        Ok(json!({ "comments": rows, "report": report }))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &out))
}
