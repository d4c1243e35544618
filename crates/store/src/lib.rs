//! Persistence for yigong behind one API over two backends: SQLite (embedded
//! default, WAL, one file) and PostgreSQL (production).
//!
//! Everything the server stores goes through [`Store`]: versioned FHIR resources
//! with their search index, the organisation tree used for scope, the audit log,
//! the access log of patient-record reads, users and credentials.

mod auth;
pub mod care;
pub mod db;
pub mod metrics;
pub mod mpi;
pub mod ops;
pub mod pharmacy;
mod resources;
pub mod rx;
mod stats;

pub use auth::{Role, User};
pub use db::{Db, Dialect, Sql, Val};
pub use resources::{
    Clause, Column, Doc, FreeSlot, Match, OrgNode, Precondition, Query, Sort, SortKey, Stored,
    WriteResult, is_directory,
};
/// Everything a caller needs to build documents and queries.
pub mod resources_api {
    pub use crate::resources::{
        Clause, Column, Doc, Match, OrgNode, Precondition, Query, Sort, SortKey, Stored,
        WriteResult, is_directory,
    };
}
pub use stats::{MonthCount, Overview, TreeNode};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::{Mutex, RwLock};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A precondition failed: stale version (If-Match) → HTTP 412.
    #[error("版本冲突:资源已被他人修改(当前版本 {current}),请刷新后重试")]
    VersionConflict { current: i64 },
    /// Update of an existing resource without If-Match → HTTP 428.
    #[error("更新已存在的资源必须提供 If-Match 版本号")]
    VersionRequired,
    #[error("{0}")]
    NotFound(String),
    /// A reference to a resource that does not exist → HTTP 422.
    #[error("引用的资源 {0} 不存在")]
    MissingReference(String),
    /// Outside the actor's scope → HTTP 403.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// A request the domain refuses as it stands → HTTP 422.
    #[error("{0}")]
    Invalid(String),
    #[error("数据库错误: {0}")]
    Database(String),
}

impl From<r2d2_sqlite::rusqlite::Error> for StoreError {
    fn from(e: r2d2_sqlite::rusqlite::Error) -> Self {
        if let r2d2_sqlite::rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == r2d2_sqlite::rusqlite::ErrorCode::ConstraintViolation
        {
            return StoreError::Conflict(format!("数据冲突: {e}"));
        }
        StoreError::Database(e.to_string())
    }
}
impl From<r2d2_postgres::postgres::Error> for StoreError {
    fn from(e: r2d2_postgres::postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            if code == "23505" || code == "40001" || code == "40P01" {
                return StoreError::Conflict(format!("并发冲突,请重试: {}", db.message()));
            }
        }
        StoreError::Database(e.to_string())
    }
}
impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// Where a user's view of the county ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole county (health commission, operations centre, administrators).
    County,
    /// One medical community and everything in it.
    Community(String),
    /// One institution and its departments.
    Institution(String),
}

impl Scope {
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::County => "county",
            Scope::Community(_) => "community",
            Scope::Institution(_) => "institution",
        }
    }
    pub fn id(&self) -> Option<&str> {
        match self {
            Scope::County => None,
            Scope::Community(c) | Scope::Institution(c) => Some(c),
        }
    }
    pub fn from_parts(kind: &str, id: Option<String>) -> Option<Scope> {
        match (kind, id) {
            ("county", _) => Some(Scope::County),
            ("community", Some(c)) => Some(Scope::Community(c)),
            ("institution", Some(i)) => Some(Scope::Institution(i)),
            _ => None,
        }
    }
    /// Whether a record owned by (inst, comm) and about a patient of (pinst, pcomm)
    /// is visible in this scope.
    pub fn allows(
        &self,
        inst: Option<&str>,
        comm: Option<&str>,
        pinst: Option<&str>,
        pcomm: Option<&str>,
    ) -> bool {
        match self {
            Scope::County => true,
            Scope::Community(c) => comm == Some(c) || pcomm == Some(c),
            Scope::Institution(i) => inst == Some(i) || pinst == Some(i),
        }
    }
}

/// Who is acting, for scope checks and the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub institution: Option<String>,
    pub scope: Scope,
}

impl Actor {
    /// The system itself (generator, importer run by an administrator on the host).
    pub fn system(name: &str) -> Actor {
        Actor {
            user: name.to_string(),
            institution: None,
            scope: Scope::County,
        }
    }
}

/// One read of a patient's record, kept for the resident's "who looked at my record".
#[derive(Debug, Clone)]
pub struct Access {
    pub at: String,
    pub actor: String,
    pub institution: Option<String>,
    pub rtype: String,
    pub rid: String,
    pub patient: Option<String>,
}

pub struct Store {
    db: Db,
    /// Pending access-log rows, flushed in batches so reads never wait on a write.
    access_buf: Mutex<Vec<Access>>,
    /// Bearer tokens and session cookies already verified: hash → (user, expiry).
    credential_cache: RwLock<HashMap<String, (User, String)>>,
    /// The master patient index's schema and model.
    mpi: mpi::MpiEngine,
    /// Deadlines, centres and the mutual-recognition catalogue (`meta.care_rules`).
    care_rules: RwLock<Arc<yigong_care::Rules>>,
    /// The formulary in force (shipped data + committee decisions) and the review settings.
    rx: RwLock<Arc<rx::RxState>>,
}

const SQLITE_SCHEMA: &str = include_str!("migrations/001_sqlite.sql");
const POSTGRES_SCHEMA: &str = include_str!("migrations/001_postgres.sql");
const SQLITE_MPI: &str = include_str!("migrations/002_mpi_sqlite.sql");
const POSTGRES_MPI: &str = include_str!("migrations/002_mpi_postgres.sql");
const SQLITE_CARE: &str = include_str!("migrations/003_care_sqlite.sql");
const POSTGRES_CARE: &str = include_str!("migrations/003_care_postgres.sql");
const SQLITE_RX: &str = include_str!("migrations/004_rx_sqlite.sql");
const POSTGRES_RX: &str = include_str!("migrations/004_rx_postgres.sql");
const SQLITE_METRICS: &str = include_str!("migrations/006_metrics_sqlite.sql");
const POSTGRES_METRICS: &str = include_str!("migrations/006_metrics_postgres.sql");
const SQLITE_OPS: &str = include_str!("migrations/007_ops_sqlite.sql");
const POSTGRES_OPS: &str = include_str!("migrations/007_ops_postgres.sql");
const SQLITE_PHARMACY: &str = include_str!("migrations/005_pharmacy_sqlite.sql");
const POSTGRES_PHARMACY: &str = include_str!("migrations/005_pharmacy_postgres.sql");
pub const SCHEMA_VERSION: i64 = 1;

impl Store {
    /// Opens (creating if needed) the SQLite database `yigong.db` under `data_dir`.
    pub fn open_sqlite_dir(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Database(format!("无法创建数据目录: {e}")))?;
        Self::init(Db::open_sqlite(&data_dir.join("yigong.db"))?)
    }
    pub fn open_postgres(url: &str) -> Result<Store, StoreError> {
        Self::init(Db::open_postgres(url)?)
    }
    /// Opens by URL: `postgres://…` or `sqlite:PATH` / a plain directory path.
    pub fn open(url_or_dir: &str) -> Result<Store, StoreError> {
        if url_or_dir.starts_with("postgres://") || url_or_dir.starts_with("postgresql://") {
            Self::open_postgres(url_or_dir)
        } else {
            Self::open_sqlite_dir(Path::new(url_or_dir.trim_start_matches("sqlite:")))
        }
    }

    fn init(db: Db) -> Result<Store, StoreError> {
        let store = Store {
            db,
            access_buf: Mutex::new(Vec::new()),
            credential_cache: RwLock::new(HashMap::new()),
            mpi: mpi::MpiEngine::new(None),
            care_rules: RwLock::new(Arc::new(yigong_care::Rules::default())),
            rx: RwLock::new(Arc::new(rx::RxState::shipped())),
        };
        store.migrate()?;
        store.load_mpi_model()?;
        store.load_care_rules()?;
        store.load_rx()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let schemas = match self.db.dialect() {
            Dialect::Sqlite => [
                SQLITE_SCHEMA,
                SQLITE_MPI,
                SQLITE_CARE,
                SQLITE_RX,
                SQLITE_PHARMACY,
                SQLITE_METRICS,
                SQLITE_OPS,
            ],
            Dialect::Postgres => [
                POSTGRES_SCHEMA,
                POSTGRES_MPI,
                POSTGRES_CARE,
                POSTGRES_RX,
                POSTGRES_PHARMACY,
                POSTGRES_METRICS,
                POSTGRES_OPS,
            ],
        };
        self.db.write(|tx| {
            if tx.dialect() == Dialect::Postgres {
                // Serialise concurrent migrations of the same database.
                tx.exec("SELECT pg_advisory_xact_lock(7041)", &[])?;
            }
            for stmt in schemas.iter().flat_map(|s| split_sql(s)) {
                tx.exec(&stmt, &[])?;
            }
            // Columns added after the first schema: who a record is addressed to.
            for col in ["finst", "fcomm"] {
                match tx.dialect() {
                    Dialect::Postgres => {
                        tx.exec(&format!("ALTER TABLE resource ADD COLUMN IF NOT EXISTS {col} TEXT COLLATE \"C\""), &[])?;
                    }
                    Dialect::Sqlite => {
                        let has = tx.scalar_int(
                            "SELECT count(*) FROM pragma_table_info('resource') WHERE name = ?",
                            &[col.into()],
                        )?;
                        if has == 0 {
                            tx.exec(&format!("ALTER TABLE resource ADD COLUMN {col} TEXT"), &[])?;
                        }
                    }
                }
            }
            metrics::mark_inputs_of_empty(tx)?;
            // A database from before resident_count: count its residents once.
            if tx
                .query_one("SELECT 1 FROM meta WHERE key = 'resident_count'", &[])?
                .is_none()
            {
                tx.exec("DELETE FROM resident_count", &[])?;
                tx.exec(
                    "INSERT INTO resident_count (comm, n) SELECT pcomm, count(*) FROM resource WHERE rtype = 'Patient' AND pcomm IS NOT NULL GROUP BY pcomm",
                    &[],
                )?;
                tx.exec("INSERT INTO meta (key, value) VALUES ('resident_count', '1')", &[])?;
            }
            tx.exec(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
                &[Val::Text(SCHEMA_VERSION.to_string())],
            )?;
            Ok(())
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Tunes the SQLite writer for a large initial load (no fsync, a big page
    /// cache, rare checkpoints) or back to normal operation. Only for loading a
    /// fresh database that can simply be regenerated if the machine crashes.
    pub fn set_bulk_load(&self, on: bool) -> Result<(), StoreError> {
        if let Db::Sqlite { writer, .. } = &self.db {
            let st = writer.idle();
            let c = st.conn();
            if on {
                c.execute_batch(
                    "PRAGMA synchronous=OFF; PRAGMA cache_size=-1048576; PRAGMA wal_autocheckpoint=65536;",
                )?;
            } else {
                c.execute_batch(
                    "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA wal_checkpoint(TRUNCATE);",
                )?;
                db::writer_settings(c)?;
            }
        }
        Ok(())
    }
    /// SQLite: runs a passive checkpoint and returns (frames in the WAL, frames
    /// copied into the database); equal when the WAL is fully checkpointed.
    /// `None` on PostgreSQL.
    pub fn wal_checkpoint(&self) -> Result<Option<(i64, i64)>, StoreError> {
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let st = writer.idle();
                Ok(Some(st.conn().query_row(
                    "PRAGMA wal_checkpoint(PASSIVE)",
                    [],
                    |r| Ok((r.get(1)?, r.get(2)?)),
                )?))
            }
            Db::Postgres { .. } => Ok(None),
        }
    }
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Removes every row (used by tests against a shared PostgreSQL database).
    pub fn wipe_all(&self) -> Result<(), StoreError> {
        self.db.write(|tx| {
            for t in [
                "ops_cycle_step",
                "ops_cycle",
                "ops_step",
                "ops_rule",
                "ops_fund_entry",
                "ops_fund",
                "ops_budget",
                "ops_evidence",
                "ops_attest",
                "ops_standard",
                "metric_fact",
                "metric_input",
                "ph_ledger",
                "ph_transit",
                "ph_req_line",
                "ph_req",
                "ph_batch",
                "ph_usage",
                "ph_shortage",
                "ph_min_stock",
                "ph_vbp_volume",
                "rx_comment",
                "rx_event",
                "rx_decision",
                "rx_prescriber",
                "rx_prescription",
                "mpi_merge",
                "mpi_review",
                "mpi_key",
                "mpi_link",
                "mpi_person",
                "credentials",
                "users",
                "access_log",
                "audit",
                "org_tree",
                "search_index",
                "resource_history",
                "resource",
                "encounter_month",
                "resident_count",
            ] {
                tx.exec(&format!("DELETE FROM {t}"), &[])?;
            }
            Ok(())
        })?;
        self.credential_cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.db.read(|c| {
            Ok(
                c.query_one("SELECT value FROM meta WHERE key = ?", &[key.into()])?
                    .and_then(|r| r.into_iter().next())
                    .and_then(Val::into_string),
            )
        })
    }
    pub fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.db.write(|tx| {
            tx.exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[key.into(), value.into()],
            )?;
            Ok(())
        })
    }

    /// Queues a patient-record read for the access log.
    pub fn log_access(&self, a: Access) {
        let mut buf = self.access_buf.lock().unwrap_or_else(|p| p.into_inner());
        buf.push(a);
    }

    /// Writes queued access-log rows in one transaction. Called periodically by the
    /// server and before any query of the log, so the log is never stale to a reader.
    pub fn flush_access_log(&self) -> Result<usize, StoreError> {
        let batch = std::mem::take(&mut *self.access_buf.lock().unwrap_or_else(|p| p.into_inner()));
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        self.db.write(|tx| {
            for a in &batch {
                tx.exec(
                    "INSERT INTO access_log (at, actor, institution, rtype, rid, patient) VALUES (?, ?, ?, ?, ?, ?)",
                    &[(&a.at).into(), (&a.actor).into(), a.institution.clone().into(), (&a.rtype).into(), (&a.rid).into(), a.patient.clone().into()],
                )?;
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Who read this patient's record, newest first.
    pub fn access_history(&self, patient: &str, limit: i64) -> Result<Vec<Access>, StoreError> {
        self.flush_access_log()?;
        self.db.read(|c| {
            let rows = c.query(
                "SELECT at, actor, institution, rtype, rid, patient FROM access_log WHERE patient = ? ORDER BY seq DESC LIMIT ?",
                &[patient.into(), Val::Int(limit)],
            )?;
            Ok(rows.into_iter().map(access_from_row).collect())
        })
    }

    /// The audit log, newest first, optionally for one resource.
    pub fn audit_log(
        &self,
        resource: Option<(&str, &str)>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.db.read(|c| {
            let rows = match resource {
                Some((t, id)) => c.query(
                    "SELECT seq, at, actor, institution, action, rtype, rid, version, reason FROM audit WHERE rtype = ? AND rid = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                    &[t.into(), id.into(), Val::Int(limit), Val::Int(offset)],
                )?,
                None => c.query(
                    "SELECT seq, at, actor, institution, action, rtype, rid, version, reason FROM audit ORDER BY seq DESC LIMIT ? OFFSET ?",
                    &[Val::Int(limit), Val::Int(offset)],
                )?,
            };
            Ok(rows.into_iter().map(audit_from_row).collect())
        })
    }

    pub fn audit_count(&self) -> Result<i64, StoreError> {
        self.db
            .read(|c| c.scalar_int("SELECT count(*) FROM audit", &[]))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub institution: Option<String>,
    pub action: String,
    pub rtype: Option<String>,
    pub rid: Option<String>,
    pub version: Option<i64>,
    pub reason: Option<String>,
}

fn audit_from_row(r: Vec<Val>) -> AuditEntry {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Val::Null);
    AuditEntry {
        seq: next().as_int().unwrap_or(0),
        at: next().into_string().unwrap_or_default(),
        actor: next().into_string().unwrap_or_default(),
        institution: next().into_string(),
        action: next().into_string().unwrap_or_default(),
        rtype: next().into_string(),
        rid: next().into_string(),
        version: next().as_int(),
        reason: next().into_string(),
    }
}

fn access_from_row(r: Vec<Val>) -> Access {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Val::Null);
    Access {
        at: next().into_string().unwrap_or_default(),
        actor: next().into_string().unwrap_or_default(),
        institution: next().into_string(),
        rtype: next().into_string().unwrap_or_default(),
        rid: next().into_string().unwrap_or_default(),
        patient: next().into_string(),
    }
}

/// Splits a migration file into statements (no semicolons inside our statements).
fn split_sql(s: &str) -> Vec<String> {
    s.split(';')
        .map(|stmt| {
            stmt.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|stmt| stmt.trim().to_string())
        .filter(|stmt| !stmt.is_empty())
        .collect()
}

/// One row of the audit log, appended inside the transaction it describes.
#[derive(Default)]
pub(crate) struct AuditRow<'a> {
    at: &'a str,
    actor: &'a str,
    institution: Option<&'a str>,
    action: &'a str,
    rtype: Option<&'a str>,
    rid: Option<&'a str>,
    version: Option<i64>,
    reason: Option<&'a str>,
}

impl<'a> AuditRow<'a> {
    /// `actor` (with their institution) did `action` at `at`.
    pub(crate) fn by(actor: &'a Actor, at: &'a str, action: &'a str) -> Self {
        AuditRow {
            at,
            actor: &actor.user,
            institution: actor.institution.as_deref(),
            action,
            ..Default::default()
        }
    }
    /// A row for a named user without an institution (account management).
    pub(crate) fn by_user(user: &'a str, at: &'a str, action: &'a str) -> Self {
        AuditRow {
            at,
            actor: user,
            action,
            ..Default::default()
        }
    }
    pub(crate) fn on(mut self, rtype: &'a str, rid: &'a str) -> Self {
        self.rtype = Some(rtype);
        self.rid = Some(rid);
        self
    }
    pub(crate) fn version(mut self, v: i64) -> Self {
        self.version = Some(v);
        self
    }
    pub(crate) fn reason(mut self, r: Option<&'a str>) -> Self {
        self.reason = r;
        self
    }
    pub(crate) fn append(self, tx: &mut dyn Sql) -> Result<(), StoreError> {
        tx.exec(
            "INSERT INTO audit (at, actor, institution, action, rtype, rid, version, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[self.at.into(), self.actor.into(), self.institution.into(), self.action.into(), self.rtype.into(), self.rid.into(), self.version.map(Val::Int).into(), self.reason.into()],
        )?;
        Ok(())
    }
}

/// Current time as stored: RFC 3339 UTC with milliseconds (sorts as text).
pub fn now_string() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
