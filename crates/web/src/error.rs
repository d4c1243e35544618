//! Errors returned by the API as OperationOutcome with a Chinese message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use yigong_fhir::Issue;
use yigong_store::StoreError;

#[derive(Debug)]
pub struct ApiError(pub Issue);

impl From<Issue> for ApiError {
    fn from(i: Issue) -> Self {
        ApiError(i)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let zh = e.to_string();
        ApiError(match e {
            StoreError::VersionConflict { .. } => {
                Issue::new(412, "conflict", "version-conflict", zh)
            }
            StoreError::VersionRequired => Issue::new(428, "required", "if-match-required", zh),
            StoreError::NotFound(_) => Issue::new(404, "not-found", "not-found", zh),
            StoreError::MissingReference(_) => {
                Issue::new(422, "processing", "reference-not-found", zh)
            }
            StoreError::Forbidden(_) => Issue::new(403, "forbidden", "out-of-scope", zh),
            StoreError::Conflict(_) => Issue::new(409, "conflict", "conflict", zh),
            StoreError::Invalid(_) => Issue::new(422, "business-rule", "refused", zh),
            StoreError::Database(_) => {
                tracing::error!("database error: {zh}");
                Issue::new(500, "exception", "database", "服务器内部错误,请稍后重试")
            }
        })
    }
}

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = (status, self.0.to_outcome().to_string()).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        r
    }
}
