//! The yigong HTTP server: FHIR R4 API under `/fhir`, server-rendered pages in
//! Simplified Chinese, authentication and scope.
//!
//! Every store call runs on the blocking pool; scope is enforced here and in the
//! store, never only in the pages.

mod auth;
mod cds;
mod error;
mod fhir_api;
mod measure_api;
mod pages;
mod rx_api;
mod service;

pub use auth::Principal;
pub use error::ApiError;
pub use service::{Service, WriteOutcome};

/// A JSON response (CDS Hooks and the app APIs; FHIR has its own media type).
pub(crate) fn json_response(
    status: axum::http::StatusCode,
    v: &serde_json::Value,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Building blocks shared with the command-line tools (generator, importer).
pub mod service_api {
    pub use crate::service::{import_bundle, new_id, run_transaction, to_query};
}

use axum::Router;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use yigong_store::Store;

#[derive(Clone)]
pub struct AppState {
    pub svc: Arc<Service>,
    pub templates: Arc<minijinja::Environment<'static>>,
}

/// Builds the application router over an opened store.
pub fn app(store: Arc<Store>) -> Router {
    let state = AppState {
        svc: Arc::new(Service::new(store)),
        templates: Arc::new(pages::templates()),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(fhir_api::routes())
        .merge(cds::routes())
        .merge(measure_api::routes())
        .merge(rx_api::routes())
        .merge(pages::routes())
        .with_state(state)
}

/// Serves until Ctrl-C / SIGTERM, flushing the access log periodically and at exit.
pub async fn serve(
    store: Arc<Store>,
    addr: SocketAddr,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let flusher = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
            loop {
                tick.tick().await;
                let s = store.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.flush_access_log()).await
                {
                    tracing::warn!("access log flush failed: {e}");
                }
            }
        })
    };
    // Flows whose response deadline passed unanswered are escalated (the sweep
    // is one indexed range scan when nothing is due).
    let escalator = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                let s = store.clone();
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                match tokio::task::spawn_blocking(move || s.care_escalate(&now)).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!("escalated {n} overdue flows"),
                    Ok(Err(e)) => tracing::warn!("escalation sweep failed: {e}"),
                    _ => {}
                }
                // Prescriptions past their review deadline.
                let s = store.clone();
                let now = yigong_store::now_string();
                match tokio::task::spawn_blocking(move || s.rx_sweep(&now)).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!("{n} prescriptions past their review deadline")
                    }
                    Ok(Err(e)) => tracing::warn!("prescription deadline sweep failed: {e}"),
                    _ => {}
                }
            }
        })
    };
    if let Some(tx) = ready {
        let _ = tx.send(local);
    }
    let router = app(store.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    flusher.abort();
    escalator.abort();
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.flush_access_log()).await??;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// At most this many database tasks run at once on the blocking pool. With two
/// cores, dozens of runnable threads only add scheduling delay to every request;
/// the rest wait in a fair (FIFO) queue, which keeps tail latency close to the median.
const DB_CONCURRENCY: usize = 4;

static DB_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(DB_CONCURRENCY);

/// Runs a blocking closure on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = DB_PERMITS.acquire().await.expect("semaphore never closed");
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

/// Writes wait for the one SQLite writer rather than for a core, and writes
/// queued together commit together (group commit), so they get their own, wider
/// gate: more of them queued means larger batches and fewer WAL pages per write.
const WRITE_CONCURRENCY: usize = 32;

static WRITE_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(WRITE_CONCURRENCY);

/// Runs a blocking closure that writes (see [`WRITE_CONCURRENCY`]).
pub(crate) async fn blocking_write<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = WRITE_PERMITS
        .acquire()
        .await
        .expect("semaphore never closed");
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

/// Runs a point read. On the embedded SQLite database a primary-key lookup takes
/// microseconds, less than handing the work to another thread and back, so it
/// runs in place; on PostgreSQL (a network round trip) it goes to the blocking pool.
pub(crate) async fn point_read<T: Send + 'static>(
    svc: &Arc<Service>,
    f: impl FnOnce(&Service) -> T + Send + 'static,
) -> T {
    if svc.store.dialect() == yigong_store::Dialect::Sqlite {
        f(svc)
    } else {
        let svc = svc.clone();
        blocking(move || f(&svc)).await
    }
}
