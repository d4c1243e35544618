//! Live indicators: every write of a resource that counts (Encounter, Claim,
//! DiagnosticReport, Task, PractitionerRole) moves the `metric_fact` counters by
//! the difference between what its new and old versions contribute
//! (`yigong_metrics::indicators::contributions`), in the same transaction. An
//! indicator for any subject and period is then a few indexed sums, and a full
//! recompute from the resources gives exactly the same table.
//!
//! The recompute reads each resource's indicator input (`metric_input`, see
//! `yigong_metrics::input`: a short line with what the rules read, written
//! with the resource), about a twentieth of the resource table's bytes;
//! inputs of another format than the rules' are rebuilt from the resources
//! first.

use crate::db::{Sql, Val};
use crate::{Store, StoreError};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use yigong_core::org::Tier;
use yigong_metrics::indicators::{self, Catalogue, Context, Fact, OrgFacts};
use yigong_metrics::input;

/// Resource types whose writes move the counters: those the recompute reads,
/// except the orders (counted only through their reports and tasks).
pub(crate) fn is_metric_type(rtype: &str) -> bool {
    input::is_input_type(rtype) && rtype != "ServiceRequest"
}

/// Per-transaction state: the organisations looked up and the net change of
/// every counter, written once at the end of the transaction.
#[derive(Default)]
pub(crate) struct TxMetrics {
    orgs: HashMap<String, Option<OrgFacts>>,
    delta: BTreeMap<(String, String, String), i64>,
}

/// OrgFacts from an org_tree row's (tier, kind, comm, lead).
fn org_facts_of(r: &[Val]) -> OrgFacts {
    let kind = r[1].as_str().map(str::to_string);
    OrgFacts {
        tier: r[0].as_str().and_then(Tier::from_code),
        in_county: kind.as_deref() != Some("external"),
        kind,
        comm: r[2].as_str().map(str::to_string),
        lead: r[3].as_int() == Some(1),
    }
}

fn org_facts(tx: &mut dyn Sql, id: &str) -> Result<Option<OrgFacts>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT tier, kind, comm, lead FROM org_tree WHERE id = ?",
            &[id.into()],
        )?
        .map(|r| org_facts_of(&r)))
}

/// Every `Organization/<id>` reference in a resource.
fn org_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("reference")
                && let Some(id) = r.strip_prefix("Organization/")
            {
                out.push(id.to_string());
            }
            m.values().for_each(|x| org_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| org_refs(x, out)),
        _ => {}
    }
}

/// The ServiceRequest a report answers or a Task tracks.
fn fetch_request(tx: &mut dyn Sql, id: &str) -> Result<Option<Value>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT body FROM resource WHERE rtype = 'ServiceRequest' AND id = ?",
            &[id.into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(Val::into_string)
        .and_then(|b| serde_json::from_str(&b).ok()))
}

impl TxMetrics {
    fn facts(
        &mut self,
        tx: &mut dyn Sql,
        rtype: &str,
        body: &Value,
        request: Option<&Value>,
        pcomm: Option<&str>,
    ) -> Result<Vec<Fact>, StoreError> {
        let mut refs = Vec::new();
        org_refs(body, &mut refs);
        if let Some(r) = request {
            org_refs(r, &mut refs);
        }
        for id in refs {
            if let std::collections::hash_map::Entry::Vacant(e) = self.orgs.entry(id) {
                let f = org_facts(tx, e.key())?;
                e.insert(f);
            }
        }
        let orgs = &self.orgs;
        let lookup = |id: &str| orgs.get(id).cloned().flatten();
        let ctx = Context {
            org: &lookup,
            patient_comm: pcomm,
            request,
        };
        Ok(indicators::contributions(rtype, body, &ctx))
    }

    /// Records the change a write makes: what the new version contributes
    /// minus what the old one did.
    pub(crate) fn on_write(
        &mut self,
        tx: &mut dyn Sql,
        rtype: &str,
        old: Option<(&Value, Option<&str>)>,
        new: Option<(&Value, Option<&str>)>,
    ) -> Result<(), StoreError> {
        // The order a report or task counts with, read once when both
        // versions name the same one (a step of a Task).
        let old_id = old.and_then(|(b, _)| indicators::request_id(rtype, b));
        let new_id = new.and_then(|(b, _)| indicators::request_id(rtype, b));
        let new_req = match new_id {
            Some(id) => fetch_request(tx, id)?,
            None => None,
        };
        let other_req = match old_id {
            Some(id) if old_id != new_id => fetch_request(tx, id)?,
            _ => None,
        };
        let old_req = if old_id == new_id {
            new_req.as_ref()
        } else {
            other_req.as_ref()
        };
        let before = match old {
            Some((body, pcomm)) => self.facts(tx, rtype, body, old_req, pcomm)?,
            None => vec![],
        };
        let after = match new {
            Some((body, pcomm)) => self.facts(tx, rtype, body, new_req.as_ref(), pcomm)?,
            None => vec![],
        };
        for f in indicators::delta(&before, &after) {
            *self
                .delta
                .entry((f.component.into_owned(), f.org, f.month))
                .or_insert(0) += f.value;
        }
        Ok(())
    }

    /// Called when an Organization is written in the transaction: forget what
    /// was looked up, so later writes see the new tree.
    pub(crate) fn org_changed(&mut self) {
        self.orgs.clear();
    }

    pub(crate) fn flush(self, tx: &mut dyn Sql) -> Result<(), StoreError> {
        for ((component, org, month), v) in self.delta {
            if v != 0 {
                add_fact(tx, &component, &org, &month, v)?;
            }
        }
        Ok(())
    }
}

fn add_fact(
    tx: &mut dyn Sql,
    component: &str,
    org: &str,
    month: &str,
    v: i64,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO metric_fact (component, org, month, value) VALUES (?, ?, ?, ?)
         ON CONFLICT (component, org, month) DO UPDATE SET value = metric_fact.value + excluded.value",
        &[component.into(), org.into(), month.into(), Val::Int(v)],
    )?;
    Ok(())
}

/// Keeps a resource's indicator input beside it (same transaction).
pub(crate) fn put_input(
    tx: &mut dyn Sql,
    rtype: &str,
    id: &str,
    pcomm: Option<&str>,
    input: &str,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO metric_input (rtype, id, pcomm, body) VALUES (?, ?, ?, ?)
         ON CONFLICT (rtype, id) DO UPDATE SET pcomm = excluded.pcomm, body = excluded.body",
        &[rtype.into(), id.into(), pcomm.into(), input.into()],
    )?;
    Ok(())
}

pub const INPUT_VERSION_KEY: &str = "metric_input_version";

fn input_types_sql() -> String {
    input::INPUT_TYPES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// At migration: a database holding no resource a recompute reads has every
/// input already (none), so its inputs are marked current. Any other database
/// without the mark gets its inputs rebuilt by the first recompute.
pub(crate) fn mark_inputs_of_empty(tx: &mut dyn Sql) -> Result<(), StoreError> {
    let marked = tx
        .query_one(
            "SELECT 1 FROM meta WHERE key = ?",
            &[INPUT_VERSION_KEY.into()],
        )?
        .is_some();
    if marked {
        return Ok(());
    }
    let any = tx
        .query_one(
            &format!(
                "SELECT 1 FROM resource WHERE rtype IN ({}) LIMIT 1",
                input_types_sql()
            ),
            &[],
        )?
        .is_some();
    if !any {
        tx.exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            &[INPUT_VERSION_KEY.into(), input::input_version().into()],
        )?;
    }
    Ok(())
}

/// Adds counters the store itself owns (prescription review) in a transaction.
pub(crate) fn bump(
    tx: &mut dyn Sql,
    component: &str,
    org: &str,
    at: &str,
    v: i64,
) -> Result<(), StoreError> {
    match indicators::month_of(at) {
        Some(month) if !org.is_empty() => add_fact(tx, component, org, &month, v),
        _ => Ok(()),
    }
}

/// Whom an indicator is computed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    County,
    Community(String),
    Institution(String),
}

/// The SQL condition selecting one component, or a whole family for
/// `family:*` (a key range, not LIKE: SQLite would scan the table).
fn component_cond(comp: &str, p: &mut Vec<Val>) -> &'static str {
    match comp.strip_suffix(":*") {
        Some(fam) => {
            p.push(format!("{fam}:").into());
            p.push(format!("{fam};").into());
            "f.component >= ? AND f.component < ?"
        }
        None => {
            p.push(comp.into());
            "f.component = ?"
        }
    }
}

impl Subject {
    fn filter(&self, params: &mut Vec<Val>) -> String {
        match self {
            Subject::County => String::new(),
            Subject::Community(c) => {
                params.push(c.as_str().into());
                params.push(c.as_str().into());
                // One list of organisations (not an OR, which would make the
                // database test every row of the component).
                " AND f.org IN (SELECT id FROM org_tree WHERE comm = ? UNION ALL SELECT ?)".into()
            }
            Subject::Institution(i) => {
                params.push(i.as_str().into());
                " AND f.org = ?".into()
            }
        }
    }
}

/// What a full recompute found and did.
#[derive(Debug, Clone)]
pub struct Recompute {
    pub resources: usize,
    pub facts: usize,
    /// Counters whose live value differed from the recomputed one (0 when the
    /// incremental maintenance is exact).
    pub differing: usize,
    /// Indicator inputs rebuilt from the resources first (`None`: they were current).
    pub rebuilt_inputs: Option<usize>,
    pub seconds: f64,
}

impl Store {
    /// Sums of counters for a subject over months `first..=last` (YYYY-MM).
    /// A family wildcard (`visits_dx:*`) sums the family.
    pub fn metric_sums(
        &self,
        subject: &Subject,
        components: &[String],
        first: &str,
        last: &str,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let mut out = HashMap::new();
        if components.is_empty() {
            return Ok(out);
        }
        self.db().read(|c| {
            for comp in components {
                let mut p: Vec<Val> = vec![first.into(), last.into()];
                let cond = component_cond(comp, &mut p);
                let w = subject.filter(&mut p);
                let v = c.scalar_int(
                    &format!("SELECT COALESCE(sum(f.value), 0) FROM metric_fact f WHERE f.month >= ? AND f.month <= ? AND {cond}{w}"),
                    &p,
                )?;
                out.insert(comp.clone(), v);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Monthly sums (month → component → sum) for a subject.
    pub fn metric_monthly(
        &self,
        subject: &Subject,
        components: &[String],
        first: &str,
        last: &str,
    ) -> Result<BTreeMap<String, HashMap<String, i64>>, StoreError> {
        let mut out: BTreeMap<String, HashMap<String, i64>> = BTreeMap::new();
        self.db().read(|c| {
            for comp in components {
                let mut p: Vec<Val> = vec![first.into(), last.into()];
                let cond = component_cond(comp, &mut p);
                let w = subject.filter(&mut p);
                for r in c.query(
                    &format!("SELECT f.month, sum(f.value) FROM metric_fact f WHERE f.month >= ? AND f.month <= ? AND {cond}{w} GROUP BY f.month"),
                    &p,
                )? {
                    let month = r[0].as_str().unwrap_or("").to_string();
                    out.entry(month).or_default().insert(comp.clone(), r[1].as_int().unwrap_or(0));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Members of a family (e.g. every `visits_dx:<code>`) with their sums.
    pub fn metric_family(
        &self,
        subject: &Subject,
        family: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.db().read(|c| {
            let mut p: Vec<Val> = vec![first.into(), last.into()];
            let cond = component_cond(&format!("{family}:*"), &mut p);
            let w = subject.filter(&mut p);
            Ok(c.query(
                &format!("SELECT f.component, sum(f.value) FROM metric_fact f WHERE f.month >= ? AND f.month <= ? AND {cond}{w} GROUP BY f.component"),
                &p,
            )?
            .into_iter()
            .map(|r| (r[0].as_str().unwrap_or("").to_string(), r[1].as_int().unwrap_or(0)))
            .collect())
        })
    }

    /// An indicator's figure for a subject and period (growth indicators
    /// compare with the same months a year earlier).
    pub fn indicator_value(
        &self,
        id: &str,
        subject: &Subject,
        first: &str,
        last: &str,
    ) -> Result<indicators::Value, StoreError> {
        let cat = catalogue();
        let ind = cat
            .get(id)
            .ok_or_else(|| StoreError::NotFound(format!("指标 {id} 不存在")))?;
        let comps: Vec<String> = ind
            .numerator_components
            .iter()
            .chain(&ind.denominator_components)
            .cloned()
            .collect();
        let sums = self.metric_sums(subject, &comps, first, last)?;
        let sum = |c: &str| sums.get(c).copied().unwrap_or(0);
        if ind.compare == Some(indicators::Compare::PreviousYear) {
            let (Some(pf), Some(pl)) = (
                indicators::previous_year(first),
                indicators::previous_year(last),
            ) else {
                return Ok(indicators::Value::NONE);
            };
            let before = self.metric_sums(subject, &comps, &pf, &pl)?;
            let bsum = |c: &str| before.get(c).copied().unwrap_or(0);
            return Ok(indicators::value_growth(ind, &sum, &bsum));
        }
        Ok(indicators::value(ind, &sum))
    }

    /// Rebuilds every counter from the stored resources (and the prescription
    /// tables) and reports how many live counters differed.
    pub fn metrics_recompute(&self) -> Result<Recompute, StoreError> {
        self.metrics_recompute_sliced(SCAN_SLICE)
    }

    /// [`Store::metrics_recompute`] with the SQLite scan's slice of rowids set
    /// (tests use one row per slice, so that every report and task is read
    /// apart from its order); PostgreSQL ignores it.
    pub fn metrics_recompute_sliced(&self, rows_per_slice: i64) -> Result<Recompute, StoreError> {
        let rows_per_slice = rows_per_slice.max(1);
        let started = std::time::Instant::now();
        let rebuilt = self.ensure_metric_inputs()?;
        let known = self.db().read(|c| {
            let mut orgs = HashMap::new();
            for r in c.query("SELECT id, tier, kind, comm, lead FROM org_tree", &[])? {
                orgs.insert(
                    r[0].as_str().unwrap_or("").to_string(),
                    org_facts_of(&r[1..]),
                );
            }
            Ok(Known { orgs })
        })?;
        // The prescription review counters on a thread of their own, beside the scan.
        let tally = std::thread::scope(|s| {
            let reviews = s.spawn(|| self.tally_reviews());
            let resources = match self.db().dialect() {
                crate::db::Dialect::Sqlite => self.tally_sqlite(&known, rows_per_slice),
                crate::db::Dialect::Postgres => self.tally_paged(&known),
            };
            let reviews = reviews
                .join()
                .map_err(|_| StoreError::Database("重算线程崩溃".into()))?;
            Ok::<_, StoreError>(resources?.merge(reviews?))
        })?;
        let resources = tally.resources;
        let mut table = tally.into_table();
        table.retain(|_, v| *v != 0);
        let facts = table.len();
        let differing = self.db().write(|tx| {
            let live: BTreeMap<(String, String, String), i64> = tx
                .query("SELECT component, org, month, value FROM metric_fact WHERE value <> 0", &[])?
                .into_iter()
                .map(|r| {
                    (
                        (
                            r[0].as_str().unwrap_or("").to_string(),
                            r[1].as_str().unwrap_or("").to_string(),
                            r[2].as_str().unwrap_or("").to_string(),
                        ),
                        r[3].as_int().unwrap_or(0),
                    )
                })
                .collect();
            let differing = table.iter().filter(|(k, v)| live.get(*k) != Some(v)).count()
                + live.keys().filter(|k| !table.contains_key(*k)).count();
            if differing > 0 {
                tx.exec("DELETE FROM metric_fact", &[])?;
                for ((comp, org, month), v) in &table {
                    tx.exec(
                        "INSERT INTO metric_fact (component, org, month, value) VALUES (?, ?, ?, ?)",
                        &[comp.as_str().into(), org.as_str().into(), month.as_str().into(), Val::Int(*v)],
                    )?;
                }
            }
            Ok(differing)
        })?;
        Ok(Recompute {
            resources,
            facts,
            differing,
            rebuilt_inputs: rebuilt,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Rebuilds the indicator inputs from the resources when they are not of
    /// the current version (a database from before they existed, or rules
    /// that now read another key); returns how many it wrote, `None` when
    /// they were current.
    pub fn ensure_metric_inputs(&self) -> Result<Option<usize>, StoreError> {
        if self.meta_get(INPUT_VERSION_KEY)? == Some(input::input_version()) {
            return Ok(None);
        }
        self.rebuild_metric_inputs().map(Some)
    }

    /// Writes every resource's indicator input again, a page at a time: each
    /// page is cut outside the writer (in parallel) and written only where the
    /// resource is still at the version read (a write since has put its own).
    pub fn rebuild_metric_inputs(&self) -> Result<usize, StoreError> {
        use rayon::prelude::*;
        let types = input_types_sql();
        self.db().write(|tx| {
            tx.exec(
                &format!("DELETE FROM metric_input WHERE rtype NOT IN ({types})"),
                &[],
            )?;
            tx.exec(
                "DELETE FROM meta WHERE key = ?",
                &[INPUT_VERSION_KEY.into()],
            )?;
            Ok(())
        })?;
        let sqlite = self.db().dialect() == crate::db::Dialect::Sqlite;
        // SQLite pages by rowid (the table's own order, near write order);
        // PostgreSQL by (rtype, id).
        let page_sql = if sqlite {
            format!(
                "SELECT rowid, rtype, id, version, pcomm, body FROM resource WHERE rowid > ? AND deleted = 0 AND +rtype IN ({types}) ORDER BY rowid LIMIT 4096"
            )
        } else {
            format!(
                "SELECT 0, rtype, id, version, pcomm, body FROM resource WHERE (rtype, id) > (?, ?) AND deleted = 0 AND rtype IN ({types}) ORDER BY rtype, id LIMIT 4096"
            )
        };
        let mut after: (i64, String, String) = (0, String::new(), String::new());
        let mut written = 0;
        loop {
            let params: Vec<Val> = if sqlite {
                vec![Val::Int(after.0)]
            } else {
                vec![after.1.as_str().into(), after.2.as_str().into()]
            };
            let rows = self.db().read(|c| c.query(&page_sql, &params))?;
            let Some(last) = rows.last() else { break };
            after = (
                last[0].as_int().unwrap_or(0),
                last[1].as_str().unwrap_or("").to_string(),
                last[2].as_str().unwrap_or("").to_string(),
            );
            let cut: Vec<(&str, &str, i64, Option<&str>, String)> = rows
                .par_iter()
                .filter_map(|r| {
                    let (rtype, id, body) = (r[1].as_str()?, r[2].as_str()?, r[5].as_str()?);
                    let text = input::input_of_text(rtype, body)?.into_owned();
                    Some((rtype, id, r[3].as_int().unwrap_or(0), r[4].as_str(), text))
                })
                .collect();
            self.db().write(|tx| {
                for (rtype, id, version, pcomm, text) in &cut {
                    tx.exec(
                        "INSERT INTO metric_input (rtype, id, pcomm, body)
                         SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM resource WHERE rtype = ? AND id = ? AND version = ?)
                         ON CONFLICT (rtype, id) DO UPDATE SET pcomm = excluded.pcomm, body = excluded.body",
                        &[(*rtype).into(), (*id).into(), (*pcomm).into(), text.as_str().into(), (*rtype).into(), (*id).into(), Val::Int(*version)],
                    )?;
                }
                Ok(())
            })?;
            written += cut.len();
        }
        self.meta_set(INPUT_VERSION_KEY, &input::input_version())?;
        Ok(written)
    }
}

/// SQLite: the indicator inputs in rowid order, in parallel slices, each
/// row's text borrowed from SQLite (a sequential scan: the primary-key order
/// would visit the table's pages at random).
const SCAN_SQL: &str =
    "SELECT rowid, rtype, id, body, pcomm FROM metric_input WHERE rowid >= ?1 AND rowid < ?2";
const SCAN_SLICE: i64 = 8_192;
const DEFERRED_BATCH: usize = 1_024;

impl Store {
    /// One scanning thread per core, each with its own connection and tally,
    /// taking the next slice of rowids as it finishes one. Orders are only
    /// noted (id → rowid) and reports and tasks deferred by rowid: they are
    /// read again, with their orders, once the scan is done (keeping their
    /// text instead cost gigabytes at a million residents).
    fn tally_sqlite(&self, known: &Known, slice_rows: i64) -> Result<Tally, StoreError> {
        let max: i64 = self.scan_conn()?.query_row(
            "SELECT coalesce(max(rowid), 0) FROM metric_input",
            [],
            |r| r.get(0),
        )?;
        let next = AtomicI64::new(0);
        let scan = || -> Result<Tally, StoreError> {
            let conn = self.scan_conn()?;
            let mut stmt = conn.prepare_cached(SCAN_SQL)?;
            let mut tally = Tally::default();
            // The slice's orders: a report or task mostly follows its order closely.
            let mut nearby: HashMap<String, String> = HashMap::new();
            loop {
                let slice = next.fetch_add(1, Ordering::Relaxed);
                if slice * slice_rows > max {
                    return Ok(tally);
                }
                nearby.clear();
                let mut rows = stmt.query([slice * slice_rows, (slice + 1) * slice_rows])?;
                while let Some(r) = rows.next()? {
                    let rowid: i64 = r.get(0)?;
                    // NOT NULL text columns, and pcomm text or NULL.
                    let text = |i| {
                        r.get_ref(i)
                            .ok()
                            .and_then(|v| v.as_str_or_null().ok().flatten())
                    };
                    let (rtype, id, body) = (
                        text(1).unwrap_or(""),
                        text(2).unwrap_or(""),
                        text(3).unwrap_or(""),
                    );
                    match rtype {
                        "ServiceRequest" => {
                            tally.orders.push((id.to_string(), rowid));
                            nearby.insert(id.to_string(), body.to_string());
                        }
                        "DiagnosticReport" | "Task" => match input::order_of(rtype, body) {
                            Some(order) if !nearby.contains_key(&order) => {
                                tally.deferred.push(rowid)
                            }
                            _ => known.count(&mut tally, rtype, body, text(4), &|id| {
                                nearby.get(id).cloned()
                            }),
                        },
                        _ => known.count(&mut tally, rtype, body, text(4), &|_| None),
                    }
                }
            }
        };
        let mut total = self.on_scan_threads(scan)?;
        // The other reports and tasks, read again by rowid beside their orders.
        let orders: HashMap<String, i64> = std::mem::take(&mut total.orders).into_iter().collect();
        total.deferred.sort_unstable();
        let next = AtomicUsize::new(0);
        let deferred = &total.deferred;
        let later = || -> Result<Tally, StoreError> {
            let conn = self.scan_conn()?;
            let mut row =
                conn.prepare_cached("SELECT rtype, body, pcomm FROM metric_input WHERE rowid = ?")?;
            let order = std::cell::RefCell::new(
                conn.prepare_cached("SELECT body FROM metric_input WHERE rowid = ?")?,
            );
            let request = |id: &str| -> Option<String> {
                let rowid = orders.get(id)?;
                order.borrow_mut().query_row([rowid], |r| r.get(0)).ok()
            };
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(DEFERRED_BATCH, Ordering::Relaxed);
                let Some(batch) = deferred
                    .get(i..(i + DEFERRED_BATCH).min(deferred.len()))
                    .filter(|b| !b.is_empty())
                else {
                    return Ok(tally);
                };
                for rowid in batch {
                    let (rtype, body, pcomm): (String, String, Option<String>) =
                        row.query_row([rowid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    known.count(&mut tally, &rtype, &body, pcomm.as_deref(), &request);
                }
            }
        };
        let part = self.on_scan_threads(later)?;
        Ok(total.merge(part))
    }

    /// Prescription review counters from the review events.
    fn tally_reviews(&self) -> Result<Tally, StoreError> {
        let mut tally = Tally::default();
        self.db().read(|c| {
            for r in c.query(
                "SELECT p.inst, e.at, e.action FROM rx_event e JOIN rx_prescription p ON p.id = e.rx WHERE e.action IN ('pass', 'return', 'timeout-pass')",
                &[],
            )? {
                let (Some(inst), Some(at)) = (r[0].as_str(), r[1].as_str()) else { continue };
                let Some(month) = indicators::month_of(at) else { continue };
                tally.add("rx_reviewed", inst, &month, 1);
                if r[2].as_str() == Some("return") {
                    tally.add("rx_intervened", inst, &month, 1);
                }
            }
            Ok(())
        })?;
        Ok(tally)
    }

    /// Runs `work` on one thread per core and merges what they counted.
    fn on_scan_threads(
        &self,
        work: impl Fn() -> Result<Tally, StoreError> + Sync,
    ) -> Result<Tally, StoreError> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads).map(|_| s.spawn(&work)).collect();
            let mut total = Tally::default();
            for w in workers {
                let part = w
                    .join()
                    .map_err(|_| StoreError::Database("重算线程崩溃".into()))??;
                total = total.merge(part);
            }
            Ok(total)
        })
    }

    fn scan_conn(&self) -> Result<ScanConn, StoreError> {
        let conn = self
            .db()
            .sqlite_reader()
            .ok_or_else(|| StoreError::Database("不是 SQLite 数据库".into()))??;
        conn.execute_batch("PRAGMA mmap_size = 68719476736")?;
        Ok(ScanConn(conn))
    }

    /// Any database: each type in id order, a page at a time; orders first,
    /// kept as text for the reports and tasks that refer to them.
    fn tally_paged(&self, known: &Known) -> Result<Tally, StoreError> {
        use rayon::prelude::*;
        let mut tally = Tally::default();
        let mut orders: HashMap<String, String> = HashMap::new();
        self.db().read(|c| {
            for rtype in ["ServiceRequest", "Encounter", "Claim", "DiagnosticReport", "Task", "PractitionerRole"] {
                let mut after = String::new();
                loop {
                    let rows = c.query(
                        "SELECT id, body, pcomm FROM metric_input WHERE rtype = ? AND id > ? ORDER BY id LIMIT 20000",
                        &[rtype.into(), after.as_str().into()],
                    )?;
                    let Some(last) = rows.last() else { break };
                    after = last[0].as_str().unwrap_or("").to_string();
                    if rtype == "ServiceRequest" {
                        for r in rows {
                            let mut r = r.into_iter();
                            if let (Some(id), Some(body)) = (r.next().and_then(Val::into_string), r.next().and_then(Val::into_string)) {
                                orders.insert(id, body);
                            }
                        }
                        continue;
                    }
                    let request = |id: &str| orders.get(id).cloned();
                    let part = rows
                        .par_chunks(1024)
                        .fold(Tally::default, |mut t, chunk| {
                            for r in chunk {
                                known.count(&mut t, rtype, r[1].as_str().unwrap_or(""), r[2].as_str(), &request);
                            }
                            t
                        })
                        .reduce(Tally::default, Tally::merge);
                    tally = std::mem::take(&mut tally).merge(part);
                }
            }
            Ok(())
        })?;
        Ok(tally)
    }
}

/// A reader that maps the database file while it scans (no copy of every page
/// through `read`), and unmaps it when handed back to the pool.
struct ScanConn(r2d2::PooledConnection<r2d2_sqlite::SqliteConnectionManager>);

impl std::ops::Deref for ScanConn {
    type Target = r2d2_sqlite::rusqlite::Connection;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for ScanConn {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("PRAGMA mmap_size = 0");
    }
}

/// What the recompute knows besides each row: the organisation tree.
struct Known {
    orgs: HashMap<String, OrgFacts>,
}

impl Known {
    /// Adds what one stored indicator input contributes; `request` finds the
    /// input of the order (ServiceRequest) a report or task refers to.
    fn count(
        &self,
        tally: &mut Tally,
        rtype: &str,
        input: &str,
        pcomm: Option<&str>,
        request: &dyn Fn(&str) -> Option<String>,
    ) {
        tally.resources += 1;
        let lookup = |id: &str| self.orgs.get(id).cloned();
        let ctx = Context {
            org: &lookup,
            patient_comm: pcomm,
            request: None,
        };
        input::contributions(rtype, input, request, &ctx, &mut |c, o, m, v| {
            tally.add(c, o, m, v)
        });
    }
}

/// Counter sums of a full recompute, which adds tens of millions of facts:
/// names are interned, and the sums of one (org, month) are a vector indexed
/// by component, so a fact costs one look-up of its component's name.
#[derive(Default)]
struct Tally {
    /// Component names and their dense indexes.
    components: Interner,
    /// Organisation and month names.
    places: Interner,
    /// (org, month) → its cell: the sums of every component there, indexed
    /// by component (one resource's facts mostly fall in one or two cells, so
    /// a fact is an add into a vector already in cache).
    cells: HashMap<[u32; 2], u32, foldhash::fast::FixedState>,
    sums: Vec<([u32; 2], Vec<i64>)>,
    /// The last two cells used, by their names (never an empty month, so
    /// the empty default matches nothing).
    recent: [(String, String, u32); 2],
    resources: usize,
    /// Orders (id, rowid) and the reports and tasks (rowid) waiting for them.
    orders: Vec<(String, i64)>,
    deferred: Vec<i64>,
}

#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), i);
        i
    }

    fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
}

impl Tally {
    fn cell(&mut self, org: &str, month: &str) -> u32 {
        for k in 0..2 {
            let (o, m, c) = &self.recent[k];
            if o == org && m == month {
                let c = *c;
                // Keep the hit first: the next fact most likely lands there again.
                self.recent.swap(0, k);
                return c;
            }
        }
        let key = [self.places.id(org), self.places.id(month)];
        let n = self.sums.len() as u32;
        let cell = *self.cells.entry(key).or_insert(n);
        if cell == n {
            self.sums.push((key, Vec::new()));
        }
        self.recent.swap(0, 1);
        let first = &mut self.recent[0];
        first.0.clear();
        first.0.push_str(org);
        first.1.clear();
        first.1.push_str(month);
        first.2 = cell;
        cell
    }

    fn add(&mut self, component: &str, org: &str, month: &str, v: i64) {
        let comp = self.components.id(component) as usize;
        let cell = self.cell(org, month) as usize;
        let sums = &mut self.sums[cell].1;
        if sums.len() <= comp {
            sums.resize(comp + 1, 0);
        }
        sums[comp] += v;
    }

    /// Every (component, org, month) with its sum, zeros included.
    fn each(&self, mut f: impl FnMut(&str, &str, &str, i64)) {
        for ([org, month], sums) in &self.sums {
            let (org, month) = (self.places.name(*org), self.places.name(*month));
            for (comp, &v) in sums.iter().enumerate() {
                f(self.components.name(comp as u32), org, month, v);
            }
        }
    }

    fn merge(mut self, other: Tally) -> Tally {
        if self.sums.len() < other.sums.len() {
            return other.merge(self);
        }
        other.each(|c, o, m, v| {
            if v != 0 {
                self.add(c, o, m, v)
            }
        });
        self.resources += other.resources;
        self.orders.extend(other.orders);
        self.deferred.extend(other.deferred);
        self
    }

    fn into_table(self) -> BTreeMap<(String, String, String), i64> {
        let mut table = BTreeMap::new();
        self.each(|c, o, m, v| {
            if v != 0 {
                table.insert((c.to_string(), o.to_string(), m.to_string()), v);
            }
        });
        table
    }
}

/// The shipped indicator catalogue (parsed once).
pub fn catalogue() -> &'static Catalogue {
    static CAT: std::sync::OnceLock<Catalogue> = std::sync::OnceLock::new();
    CAT.get_or_init(Catalogue::shipped)
}
