//! A thin, synchronous SQL layer over two drivers (rusqlite and postgres), so the
//! repository code is written once. SQL uses `?` placeholders; for PostgreSQL they
//! are rewritten to `$n`. Values are limited to NULL, 64-bit integers and text,
//! which is all the schema uses.

use crate::StoreError;
use r2d2_postgres::postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use r2d2_postgres::{PostgresConnectionManager, postgres};
use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
}

impl Val {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn into_string(self) -> Option<String> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Text(s.to_string())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Text(s)
    }
}
impl From<&String> for Val {
    fn from(s: &String) -> Val {
        Val::Text(s.clone())
    }
}
impl From<i64> for Val {
    fn from(i: i64) -> Val {
        Val::Int(i)
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(o: Option<T>) -> Val {
        o.map_or(Val::Null, Into::into)
    }
}

pub type Row = Vec<Val>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// One connection, possibly inside a transaction.
pub trait Sql {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError>;
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError>;
    fn dialect(&self) -> Dialect;
    fn query_one(&mut self, sql: &str, params: &[Val]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    fn scalar_int(&mut self, sql: &str, params: &[Val]) -> Result<i64, StoreError> {
        Ok(self
            .query_one(sql, params)?
            .and_then(|r| r.into_iter().next())
            .and_then(|v| v.as_int())
            .unwrap_or(0))
    }
}

// ---------- SQLite ----------

impl rusqlite::types::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn sqlite_row(row: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Row> {
    use rusqlite::types::ValueRef;
    (0..n)
        .map(|i| {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(i) => Val::Int(i),
                ValueRef::Real(f) => Val::Int(f as i64),
                ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Val::Text(String::from_utf8_lossy(b).into_owned()),
            })
        })
        .collect()
}

impl Sql for rusqlite::Connection {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let mut st = self.prepare_cached(sql)?;
        Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        let mut st = self.prepare_cached(sql)?;
        let n = st.column_count();
        let rows = st.query_map(rusqlite::params_from_iter(params.iter()), |r| {
            sqlite_row(r, n)
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

// ---------- PostgreSQL ----------

#[derive(Debug)]
struct PgNull;
impl ToSql for PgNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Val::Null => Box::new(PgNull),
                Val::Int(i) => Box::new(*i),
                Val::Text(s) => Box::new(s.clone()),
            }
        })
        .collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?
                .map_or(Val::Null, Val::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map_or(Val::Null, |x| Val::Int(x as i64))
        } else if *t == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map_or(Val::Null, |x| Val::Int(x as i64))
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map_or(Val::Null, |x| Val::Int(x as i64))
        } else if *t == Type::NUMERIC {
            // Sums over BIGINT come back as NUMERIC; the schema never stores fractions.
            row.try_get::<_, Option<PgNumericText>>(i)?
                .map_or(Val::Null, |x| Val::Int(x.0))
        } else {
            row.try_get::<_, Option<String>>(i)?
                .map_or(Val::Null, Val::Text)
        };
        out.push(v);
    }
    Ok(out)
}

/// Minimal decoder for integral NUMERIC values (binary format).
struct PgNumericText(i64);
impl<'a> r2d2_postgres::postgres::types::FromSql<'a> for PgNumericText {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let rd = |i: usize| i16::from_be_bytes([raw[i], raw[i + 1]]);
        let ndigits = rd(0) as usize;
        let weight = rd(2) as i32;
        let sign = rd(4) as u16;
        let mut v: i64 = 0;
        for d in 0..ndigits {
            let digit = rd(8 + 2 * d) as i64;
            let pos = weight - d as i32;
            if pos >= 0 {
                v += digit * 10_000i64.pow(pos as u32);
            }
        }
        Ok(PgNumericText(if sign == 0x4000 { -v } else { v }))
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::NUMERIC
    }
}

impl Sql for postgres::Client {
    fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, StoreError> {
        let p = pg_params(params);
        let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|b| b.as_ref()).collect();
        Ok(self.execute(pg_sql(sql).as_str(), &refs)?)
    }
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Row>, StoreError> {
        let p = pg_params(params);
        let refs: Vec<&(dyn ToSql + Sync)> = p.iter().map(|b| b.as_ref()).collect();
        self.query(pg_sql(sql).as_str(), &refs)?
            .iter()
            .map(pg_row)
            .collect()
    }
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

// ---------- Pools ----------

type PgPool = r2d2::Pool<PostgresConnectionManager<postgres::NoTls>>;
type LitePool = r2d2::Pool<SqliteConnectionManager>;

/// The database: SQLite (one writer connection plus a pool of readers, WAL) or a
/// PostgreSQL pool.
pub enum Db {
    Sqlite {
        /// Boxed: the writer's state is large beside a PostgreSQL pool handle.
        writer: Box<Writer>,
        readers: LitePool,
        /// Moves WAL pages into the database file off the request path.
        checkpointer: Checkpointer,
    },
    Postgres {
        pool: PgPool,
    },
}

/// SQLite keeps global memory statistics by default, behind one process-wide
/// mutex taken on every allocation: with 32 reader connections busy it was a
/// fifth of the server's CPU. Nothing here reads those statistics.
fn disable_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int argument; sqlite3_config
        // may only run before SQLite is initialised, which this first call of
        // the process precedes (if something initialised it earlier, the call
        // returns SQLITE_MISUSE and changes nothing).
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

/// Reader connections: enough for every blocking thread that serves a request
/// at 32 concurrent clients, so none waits for a connection.
const READERS: u32 = 32;

fn sqlite_init(c: &mut rusqlite::Connection, cache_kib: u32) -> rusqlite::Result<()> {
    // WAL lets readers run beside the writer; NORMAL sync keeps every committed
    // transaction across a process kill (only an OS crash may lose the last ones).
    // No mmap: the OS page cache serves reads either way, and mapped pages would
    // count against every connection's resident memory.
    c.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;
         PRAGMA busy_timeout=10000; PRAGMA cache_size=-{cache_kib}; PRAGMA temp_store=MEMORY;"
    ))
}

/// The writer never checkpoints a large WAL while committing: a checkpoint
/// copies thousands of pages and syncs the file, which used to land inside one
/// unlucky request every few dozen writes (registration at 1M residents: p90
/// 15 ms, p99 20 ms for a write whose median is 0.7 ms). This thread copies
/// frames passively on its own connection instead, beside the writer and the
/// readers, and goes again at once while its passes copy frames. Under
/// sustained writing it can never catch up with the last commit, so the WAL
/// would only grow (845 MB in a 30 s burst), and every new frame would land in
/// fresh file blocks that the kernel zeroes first; the writer therefore
/// finishes the copy itself once the WAL passes [`WAL_RESTART_FRAMES`] (see
/// [`finish_checkpoint`]): only the frames since this thread's last pass are
/// left, and the next write restarts the WAL at its start, over file pages
/// already cached.
pub struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// The pause between passes while writes keep arriving.
const CHECKPOINT_BEHIND: std::time::Duration = std::time::Duration::from_millis(5);

/// WAL frames (about 4 kB each, so 256 MB) beyond which the writer completes
/// the checkpoint after its commit, so the WAL restarts. Completing it syncs
/// both files while every write waits (about 35 ms on the benchmark machine),
/// so it should be rare: at the 100 MB/s of WAL of a sustained burst, every
/// few seconds.
#[cfg(not(test))]
const WAL_RESTART_FRAMES: std::ffi::c_int = 65536;
#[cfg(test)]
const WAL_RESTART_FRAMES: std::ffi::c_int = 64;

/// The writer's checkpoint settings in normal operation (also restored after a
/// bulk load): no automatic checkpoints, [`finish_checkpoint`] after each
/// commit, and a WAL file kept up to a little more than [`WAL_RESTART_FRAMES`]
/// when it restarts (larger ones, after a bulk load, are cut back), so that
/// restarted WAL writes overwrite cached pages.
pub(crate) fn writer_settings(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    c.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=335544320;")?;
    c.wal_hook(Some(finish_checkpoint));
    Ok(())
}

/// The writer's WAL hook, called after each commit with the frames in the WAL.
fn finish_checkpoint(wal: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    if frames >= WAL_RESTART_FRAMES {
        // Busy while the checkpointer is in a pass: the next commit tries again.
        let _ = wal.checkpoint_v2(rusqlite::hooks::CheckpointMode::PASSIVE);
    }
    Ok(())
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch("PRAGMA busy_timeout=10000;")?;
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut wait = CHECKPOINT_EVERY;
                let mut last_copied = 0;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
                    // (busy, frames in the WAL, frames copied so far)
                    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    });
                    // Again at once only while a pass copies something: frames
                    // a long reader still needs wait for the next regular pass.
                    wait = match result {
                        Ok((log, copied)) => {
                            let moved = copied != last_copied;
                            last_copied = copied;
                            if log > copied && moved {
                                CHECKPOINT_BEHIND
                            } else {
                                CHECKPOINT_EVERY
                            }
                        }
                        Err(e) => {
                            tracing::warn!("WAL checkpoint: {e}");
                            CHECKPOINT_EVERY
                        }
                    };
                }
            })
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Db {
    pub fn open_sqlite(path: &Path) -> Result<Db, StoreError> {
        disable_memory_statistics();
        let mut writer = rusqlite::Connection::open(path)?;
        sqlite_init(&mut writer, 65_536)?;
        writer_settings(&writer)?;
        writer.set_prepared_statement_cache_capacity(256);
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            sqlite_init(c, 8_192)?;
            c.set_prepared_statement_cache_capacity(256);
            Ok(())
        });
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(2))
            .build(manager)?;
        Ok(Db::Sqlite {
            writer: Box::new(Writer::new(writer)),
            readers,
            checkpointer: Checkpointer::start(path)?,
        })
    }

    pub fn open_postgres(url: &str) -> Result<Db, StoreError> {
        let config: postgres::Config = url.parse()?;
        let manager = PostgresConnectionManager::new(config, postgres::NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .min_idle(Some(1))
            .build(manager)?;
        Ok(Db::Postgres { pool })
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// Runs `f` inside one transaction: committed if it returns Ok, rolled back otherwise.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Db::Sqlite { writer, .. } => writer.write(f),
            Db::Postgres { pool } => {
                let mut c = pool.get()?;
                run_tx(&mut *c, "BEGIN", f)
            }
        }
    }

    /// A SQLite reader connection for bulk scans that borrow each row instead
    /// of copying it (`None` on PostgreSQL).
    pub(crate) fn sqlite_reader(
        &self,
    ) -> Option<Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError>> {
        match self {
            Db::Sqlite { readers, .. } => Some(readers.get().map_err(Into::into)),
            Db::Postgres { .. } => None,
        }
    }

    /// Runs `f` on a read connection (no transaction guarantees across statements).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Db::Sqlite { readers, .. } => {
                let mut c = readers.get()?;
                f(&mut *c)
            }
            Db::Postgres { pool } => {
                let mut c = pool.get()?;
                f(&mut *c)
            }
        }
    }
}

/// The single SQLite writer, with group commit: each write runs in its own
/// savepoint inside a shared transaction, and the transaction commits when no
/// other write is queued for the connection (or after [`MAX_BATCH`] writes).
/// Under concurrent writing one commit then carries several writes, so the hot
/// pages (index roots, the audit tail, counters) go to the WAL once per batch
/// instead of once per write; with one writer at a time every write commits on
/// its own as before. A write returns only after the commit that carries it, so
/// an acknowledged write is as durable as before; a failed write rolls back to
/// its savepoint and leaves the others of its batch untouched.
pub struct Writer {
    state: Mutex<WriterState>,
    commits: Commits,
    /// Writes waiting for the connection.
    queued: AtomicUsize,
}

pub(crate) struct WriterState {
    conn: rusqlite::Connection,
    /// A batch transaction is open.
    open: bool,
    /// Successful writes in the open batch.
    members: usize,
    /// Id of the open (or next) batch.
    batch: u64,
    /// Why the open batch failed as a whole, once it has.
    error: Option<String>,
}

/// Finished batches, published apart from the connection, so that the writes
/// of a batch waking up after its commit do not queue for the connection's
/// lock against the writes of the next batch.
#[derive(Default)]
struct Commits {
    progress: Mutex<Progress>,
    finished: Condvar,
}

#[derive(Default)]
struct Progress {
    /// Batches below this one are finished.
    done: u64,
    /// Finished batches that failed as a whole, with the error (the last few).
    failed: std::collections::VecDeque<(u64, String)>,
}

impl Commits {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn publish(&self, batch: u64, error: Option<String>) {
        let mut p = self.lock();
        if let Some(why) = error {
            p.failed.push_back((batch, why));
            if p.failed.len() > 64 {
                p.failed.pop_front();
            }
        }
        p.done = batch + 1;
        self.finished.notify_all();
    }
    /// Waits for `batch` to finish: Ok when it committed.
    fn wait(&self, batch: u64) -> Result<(), StoreError> {
        let mut p = self.lock();
        while p.done <= batch {
            p = self.finished.wait(p).unwrap_or_else(|p| p.into_inner());
        }
        match p.failed.iter().find(|(b, _)| *b == batch) {
            Some((_, why)) => Err(StoreError::Database(why.clone())),
            None => Ok(()),
        }
    }
}

const MAX_BATCH: usize = 64;

impl WriterState {
    pub(crate) fn conn(&self) -> &rusqlite::Connection {
        &self.conn
    }
    /// Ends the open batch: commit (or roll back when nothing succeeded).
    fn finish(&mut self, commits: &Commits) {
        let verb = if self.members > 0 {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        if let Err(e) = self.conn.execute_batch(verb) {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.fail(format!("提交失败:{e}"));
        }
        self.close(commits);
    }
    /// SQLite already rolled the whole transaction back (I/O error, disk full):
    /// every write of the batch failed.
    fn fail(&mut self, why: String) {
        self.error.get_or_insert(why);
    }
    fn close(&mut self, commits: &Commits) {
        self.open = false;
        self.members = 0;
        commits.publish(self.batch, self.error.take());
        self.batch += 1;
    }
}

impl Writer {
    fn new(conn: rusqlite::Connection) -> Writer {
        Writer {
            state: Mutex::new(WriterState {
                conn,
                open: false,
                members: 0,
                batch: 0,
                error: None,
            }),
            commits: Commits::default(),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection with no batch open (for PRAGMAs and checkpoints): an open
    /// batch is committed first.
    pub(crate) fn idle(&self) -> MutexGuard<'_, WriterState> {
        let mut st = self.lock();
        if st.open {
            st.finish(&self.commits);
        }
        st
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut st = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        // Only a write that joins earlier writes of the batch needs a savepoint
        // (to fail alone); the first write of a batch rolls back the whole
        // transaction instead. Savepoints are not free: with the 1 GB cache of a
        // bulk load each one cost more than the write.
        let joining = st.open && st.members > 0;
        if !st.open {
            st.conn.execute_batch("BEGIN IMMEDIATE")?;
            st.open = true;
        }
        let my_batch = st.batch;
        if joining && let Err(e) = st.conn.execute_batch("SAVEPOINT w") {
            st.fail(e.to_string());
            let _ = st.conn.execute_batch("ROLLBACK");
            st.close(&self.commits);
            return Err(e.into());
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut st.conn)));
        let ok = matches!(result, Ok(Ok(_)));
        if st.conn.is_autocommit() {
            // SQLite rolled the whole batch back: everyone in it failed.
            st.fail("事务被数据库回滚".into());
            st.close(&self.commits);
        } else if ok {
            match joining.then(|| st.conn.execute_batch("RELEASE w")) {
                Some(Err(e)) => {
                    let _ = st.conn.execute_batch("ROLLBACK");
                    st.fail(e.to_string());
                    st.close(&self.commits);
                }
                _ => st.members += 1,
            }
        } else if joining {
            let _ = st.conn.execute_batch("ROLLBACK TO w; RELEASE w");
        } else {
            // Nothing else is in the batch: roll it back whole.
            let _ = st.conn.execute_batch("ROLLBACK");
            st.close(&self.commits);
        }
        if st.open && (self.queued.load(Ordering::SeqCst) == 0 || st.members >= MAX_BATCH) {
            st.finish(&self.commits);
        }
        let value = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e),
            Err(panic) => {
                drop(st);
                std::panic::resume_unwind(panic)
            }
        };
        drop(st);
        // Wait for the commit that carries this write (a later writer's).
        self.commits.wait(my_batch)?;
        Ok(value)
    }
}

fn run_tx<T>(
    c: &mut dyn Sql,
    begin: &str,
    f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.exec(begin, &[])?;
    match f(c) {
        Ok(v) => {
            c.exec("COMMIT", &[])?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.exec("ROLLBACK", &[]);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames in the WAL and frames already copied, without copying any.
    fn wal_frames(c: &rusqlite::Connection) -> i64 {
        c.query_row("PRAGMA wal_checkpoint(NOOP)", [], |r| r.get(1))
            .unwrap()
    }

    #[test]
    fn the_writer_restarts_a_long_wal() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        sqlite_init(&mut c, 1024).unwrap();
        c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        let write = |c: &rusqlite::Connection, k: i64| {
            // Two pages of blob per row: each commit adds a few frames.
            c.execute("INSERT INTO t VALUES (?, zeroblob(8000))", [k])
                .unwrap();
        };
        // Without the hook nothing copies frames, so the WAL only grows.
        c.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
        for k in 0..100 {
            write(&c, k);
        }
        assert!(wal_frames(&c) > 3 * WAL_RESTART_FRAMES as i64);
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();

        writer_settings(&c).unwrap();
        let mut longest = 0;
        for k in 100..400 {
            write(&c, k);
            longest = longest.max(wal_frames(&c));
        }
        // Each commit adds fewer than 8 frames past the threshold before the
        // hook copies them and the next write starts the WAL again.
        assert!(longest < WAL_RESTART_FRAMES as i64 + 8, "{longest}");
        let rows: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 400);
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE b=? AND c IN (?,?)"),
            "SELECT a FROM t WHERE b=$1 AND c IN ($2,$3)"
        );
    }
}
