//! Who is calling: a bearer token (API) or a session cookie (pages).

use crate::{AppState, blocking, error::ApiError};
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use yigong_fhir::Issue;
use yigong_store::{Actor, Role, User};

pub const SESSION_COOKIE: &str = "yigong_session";

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Principal(pub User);

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.0.name.clone(),
            institution: self.0.institution.clone(),
            scope: self.0.scope.clone(),
        }
    }
    pub fn role(&self) -> Role {
        self.0.role
    }
}

pub fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn credential(parts: &Parts) -> Option<String> {
    if let Some(v) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    cookie_value(parts, SESSION_COOKIE).map(str::to_string)
}

pub async fn principal_of(parts: &Parts, state: &AppState) -> Result<Option<Principal>, ApiError> {
    let Some(token) = credential(parts) else {
        return Ok(None);
    };
    let store = state.svc.store.clone();
    if let Some(u) = store.cached_user(&token) {
        return Ok(Some(Principal(u)));
    }
    let user = blocking(move || store.user_for_credential(&token)).await?;
    Ok(user.map(Principal))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal_of(parts, state).await?.ok_or_else(|| {
            ApiError(Issue::new(
                401,
                "login",
                "unauthenticated",
                "未登录或令牌已失效:请提供有效的 Bearer 令牌",
            ))
        })
    }
}
