//! Versioned FHIR resources: write (with audit, scope and optimistic concurrency),
//! read, vread, history and search.

use crate::db::{Dialect, Sql, Val};
use crate::{Actor, AuditRow, Scope, Store, StoreError, now_string};
use serde_json::Value;

/// Extra facts about an Organization resource, kept in `org_tree` for scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgNode {
    pub name: String,
    pub kind: Option<String>,
    pub tier: Option<String>,
    pub parent: Option<String>,
    /// True for institutions (hospitals, centres, clinics): they own departments.
    pub is_institution: bool,
    pub is_community: bool,
    pub sub_centre: bool,
    pub lead: bool,
}

/// A resource ready to store: the body plus what the FHIR layer extracted from it.
#[derive(Debug, Clone)]
pub struct Doc {
    pub rtype: String,
    pub id: String,
    /// The full resource; the store sets `meta.versionId` and `meta.lastUpdated`.
    pub body: Value,
    pub org: Option<String>,
    pub patient: Option<String>,
    pub date: Option<String>,
    /// Search parameter values (name, normalised value).
    pub index: Vec<(String, String)>,
    /// References that must resolve to existing resources (type, id).
    pub refs: Vec<(String, String)>,
    pub org_node: Option<OrgNode>,
    /// The institution a request or task is addressed to: it sees and acts on
    /// the record too.
    pub performer: Option<String>,
}

impl Doc {
    /// Checks a resource (yigong-fhir) and builds the document to store. References
    /// in `exclude_refs` (resolved inside the same transaction Bundle) are not
    /// required to exist beforehand.
    pub fn from_resource(
        rtype: &str,
        id: &str,
        mut body: Value,
        exclude_refs: Option<&std::collections::HashSet<(String, String)>>,
    ) -> Result<Doc, yigong_fhir::Issue> {
        if rtype == "Patient" {
            yigong_fhir::extract::demote_unverified_ids(&mut body);
        }
        let ex = yigong_fhir::check_and_extract(rtype, &body, chrono::Utc::now())?;
        let refs = ex
            .refs
            .into_iter()
            .filter(|r| exclude_refs.is_none_or(|x| !x.contains(r)))
            .collect();
        Ok(Doc {
            rtype: rtype.to_string(),
            id: id.to_string(),
            body,
            org: ex.org,
            patient: ex.patient,
            date: ex.date,
            index: ex.index,
            refs,
            org_node: ex.org_facts.map(|f| OrgNode {
                name: f.name,
                kind: f.kind,
                tier: f.tier,
                parent: f.parent,
                is_institution: f.is_institution,
                is_community: f.is_community,
                sub_centre: f.sub_centre,
                lead: f.lead,
            }),
            performer: ex.performer,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Create a new resource; fails if the id is taken.
    Create,
    /// Update only if the current version is this one (If-Match).
    IfMatch(i64),
    /// Create, or update when the content differs (imports; idempotent by id).
    Upsert,
    /// Create if absent; an update of an existing resource requires If-Match.
    CreateOrRequireVersion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub rtype: String,
    pub id: String,
    pub version: i64,
    pub updated: String,
    pub deleted: bool,
    /// The JSON text served to clients.
    pub body: String,
    pub inst: Option<String>,
    pub comm: Option<String>,
    pub patient: Option<String>,
    pub pinst: Option<String>,
    pub pcomm: Option<String>,
    /// The institution the record is addressed to (and its community).
    pub finst: Option<String>,
    pub fcomm: Option<String>,
}

impl Stored {
    pub fn visible_to(&self, scope: &Scope) -> bool {
        is_public(&self.rtype)
            || scope.allows(
                self.inst.as_deref(),
                self.comm.as_deref(),
                self.pinst.as_deref(),
                self.pcomm.as_deref(),
            )
            || (self.finst.is_some()
                && scope.allows(self.finst.as_deref(), self.fcomm.as_deref(), None, None))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteResult {
    pub stored: Stored,
    pub created: bool,
    /// False when an upsert found identical content and wrote nothing.
    pub changed: bool,
}

/// A free slot as its index entry gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSlot {
    pub id: String,
    pub start: String,
    /// Held for referrals until this instant.
    pub held_until: Option<String>,
}

/// Directory resources (the organisation tree and staff) are visible to every
/// signed-in user of the county; everything else is scoped.
pub fn is_directory(rtype: &str) -> bool {
    matches!(
        rtype,
        "Organization" | "Practitioner" | "PractitionerRole" | "Location" | "HealthcareService"
    )
}

/// Records every signed-in user may read: the directory, and the clinics'
/// schedules and slots (号源), which members book for their patients. Writes of
/// schedules and slots stay scoped to their institution.
pub fn is_public(rtype: &str) -> bool {
    is_directory(rtype) || matches!(rtype, "Schedule" | "Slot")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Eq(String),
    /// Values starting with the prefix.
    Prefix(String),
    /// lo inclusive, hi exclusive; either may be open.
    Range(Option<String>, Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Patient,
    Org,
    Date,
    Id,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// Any of the values of an indexed parameter (OR); all clauses are ANDed.
    Param(String, Vec<Match>),
    Column(Column, Vec<Match>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    LastUpdated,
    Id,
    Date,
    /// The first `name` search value.
    Name,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub rtype: String,
    pub clauses: Vec<Clause>,
    pub sort: Vec<Sort>,
    pub limit: i64,
    pub offset: i64,
    pub want_total: bool,
    pub count_only: bool,
}

impl Query {
    pub fn new(rtype: &str) -> Query {
        Query {
            rtype: rtype.to_string(),
            clauses: vec![],
            sort: vec![],
            limit: 20,
            offset: 0,
            want_total: false,
            count_only: false,
        }
    }
}

const SELECT_COLS: &str = "r.rtype, r.id, r.version, r.updated, r.deleted, r.body, r.inst, r.comm, r.patient, r.pinst, r.pcomm, r.finst, r.fcomm";

fn stored_from_row(r: Vec<Val>) -> Stored {
    let mut it = r.into_iter();
    let mut next = || it.next().unwrap_or(Val::Null);
    Stored {
        rtype: next().into_string().unwrap_or_default(),
        id: next().into_string().unwrap_or_default(),
        version: next().as_int().unwrap_or(0),
        updated: next().into_string().unwrap_or_default(),
        deleted: next().as_int().unwrap_or(0) != 0,
        body: next().into_string().unwrap_or_default(),
        inst: next().into_string(),
        comm: next().into_string(),
        patient: next().into_string(),
        pinst: next().into_string(),
        pcomm: next().into_string(),
        finst: next().into_string(),
        fcomm: next().into_string(),
    }
}

/// A version from `resource_history` (version, updated, deleted, body); the
/// scope columns come from the current row.
fn older_version(cur: &Stored, r: Vec<Val>) -> Stored {
    let mut it = r.into_iter();
    Stored {
        version: it.next().and_then(|v| v.as_int()).unwrap_or(0),
        updated: it.next().and_then(Val::into_string).unwrap_or_default(),
        deleted: it.next().and_then(|v| v.as_int()).unwrap_or(0) != 0,
        body: it.next().and_then(Val::into_string).unwrap_or_default(),
        ..cur.clone()
    }
}

/// Local (Asia/Shanghai, UTC+8 with no daylight saving since 1991) month of an
/// ISO date or date-time, for the per-month counters.
fn local_month(date: &str) -> Option<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(date) {
        let local = t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600)?);
        return Some(local.format("%Y-%m").to_string());
    }
    (date.len() >= 7).then(|| date[..7].to_string())
}

impl Store {
    /// Writes one resource in its own transaction.
    pub fn put(
        &self,
        actor: &Actor,
        doc: Doc,
        pre: Precondition,
        reason: Option<&str>,
    ) -> Result<WriteResult, StoreError> {
        let mut out = self.transaction(actor, vec![(doc, pre)], reason)?;
        Ok(out.pop().expect("one result per doc"))
    }

    /// Writes all docs in one transaction: all or nothing.
    pub fn transaction(
        &self,
        actor: &Actor,
        docs: Vec<(Doc, Precondition)>,
        reason: Option<&str>,
    ) -> Result<Vec<WriteResult>, StoreError> {
        let now = now_string();
        let rules = self.care_rules();
        let ctx = WriteCtx {
            actor,
            mpi: Some(&self.mpi),
            now: &now,
            reason,
            audit_each: true,
            trusted: false,
            bulk: false,
            rules: &rules,
        };
        self.db().write(|tx| {
            let mut cache = TxCache::default();
            let mut out = Vec::with_capacity(docs.len());
            for (doc, pre) in docs {
                let r = write_doc(tx, &mut cache, &ctx, doc, pre)?;
                cache
                    .exists
                    .insert((r.stored.rtype.clone(), r.stored.id.clone()));
                out.push(r);
            }
            cache.flush(tx)?;
            Ok(out)
        })
    }

    /// Bulk load (generator, large imports): batches of docs, each batch one
    /// transaction with a single audit row that names the batch.
    pub fn bulk_upsert(
        &self,
        actor: &Actor,
        docs: Vec<Doc>,
        action_reason: &str,
    ) -> Result<usize, StoreError> {
        let now = now_string();
        let rules = self.care_rules();
        let ctx = WriteCtx {
            actor,
            mpi: None,
            now: &now,
            reason: None,
            audit_each: false,
            trusted: true,
            bulk: true,
            rules: &rules,
        };
        self.db().write(|tx| {
            let n = docs.len();
            let mut changed = 0;
            let mut cache = TxCache::default();
            for doc in docs {
                let r = write_doc(tx, &mut cache, &ctx, doc, Precondition::Upsert)?;
                cache.exists.insert((r.stored.rtype, r.stored.id));
                if r.changed {
                    changed += 1;
                }
            }
            cache.flush(tx)?;
            let summary = format!("{action_reason}:{n} 条,变更 {changed} 条");
            AuditRow::by(actor, &now, "bulk-load")
                .reason(Some(&summary))
                .append(tx)?;
            Ok(changed)
        })
    }

    pub fn read(&self, rtype: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        self.db().read(|c| {
            Ok(c.query_one(
                &format!("SELECT {SELECT_COLS} FROM resource r WHERE r.rtype = ? AND r.id = ?"),
                &[rtype.into(), id.into()],
            )?
            .map(stored_from_row))
        })
    }

    /// A specific version: the current row or one from history. The scope columns
    /// always come from the current row.
    pub fn vread(&self, rtype: &str, id: &str, version: i64) -> Result<Option<Stored>, StoreError> {
        let Some(cur) = self.read(rtype, id)? else {
            return Ok(None);
        };
        if cur.version == version {
            return Ok(Some(cur));
        }
        self.db().read(|c| {
            Ok(c.query_one(
                "SELECT version, updated, deleted, body FROM resource_history WHERE rtype = ? AND id = ? AND version = ?",
                &[rtype.into(), id.into(), Val::Int(version)],
            )?
            .map(|r| older_version(&cur, r)))
        })
    }

    /// Every version, newest first.
    pub fn history(&self, rtype: &str, id: &str) -> Result<Vec<Stored>, StoreError> {
        let Some(cur) = self.read(rtype, id)? else {
            return Ok(vec![]);
        };
        let older = self.db().read(|c| {
            c.query(
                "SELECT version, updated, deleted, body FROM resource_history WHERE rtype = ? AND id = ? ORDER BY version DESC",
                &[rtype.into(), id.into()],
            )
        })?;
        let mut out: Vec<Stored> = older.into_iter().map(|r| older_version(&cur, r)).collect();
        out.insert(0, cur);
        Ok(out)
    }

    /// Runs a search within `scope`. Returns the total (when asked) and one page.
    pub fn search(
        &self,
        q: &Query,
        scope: &Scope,
    ) -> Result<(Option<i64>, Vec<Stored>), StoreError> {
        let composite = with_composite(q);
        let q = composite.as_ref().unwrap_or(q);
        self.db().read(|c| {
            let driver = pick_driver(c, q)?;
            let (where_sql, params) = build_where(q, scope, driver);
            let total = if q.want_total || q.count_only {
                Some(c.scalar_int(&format!("SELECT count(*) FROM resource r WHERE {where_sql}"), &params)?)
            } else {
                None
            };
            if q.count_only {
                return Ok((total, vec![]));
            }
            // In id order (no other sort), one exact indexed value walks its index
            // entries in id order and stops at the page: `ServiceRequest?performer=X`
            // no longer sorts a lead hospital's whole year to show twenty.
            let lead = driver.or_else(|| {
                q.clauses.iter().position(|c| matches!(c, Clause::Param(..)))
            });
            if q.sort.is_empty()
                && let Some(li) = lead
                && let Clause::Param(name, ms) = &q.clauses[li]
                && let [Match::Eq(value)] = ms.as_slice()
            {
                let mut rest = q.clone();
                rest.clauses.remove(li);
                // Every remaining indexed parameter is probed per row.
                let (rest_sql, rest_params) = build_where(&rest, scope, Some(usize::MAX));
                let mut p: Vec<Val> = vec![q.rtype.as_str().into(), name.as_str().into(), value.as_str().into()];
                p.extend(rest_params);
                p.push(Val::Int(q.limit));
                p.push(Val::Int(q.offset));
                let sql = format!(
                    "SELECT {SELECT_COLS} FROM search_index d JOIN resource r ON r.rtype = d.rtype AND r.id = d.id \
                     WHERE d.rtype = ? AND d.param = ? AND d.value = ? AND {rest_sql} ORDER BY d.id LIMIT ? OFFSET ?"
                );
                let rows = c.query(&sql, &p)?;
                return Ok((total, rows.into_iter().map(stored_from_row).collect()));
            }
            let mut params = params.clone();
            // With an exact patient or organisation, its index finds the few rows
            // and a sort orders them. Left alone, SQLite walks the whole type in
            // the sort's order to spare that sort (every Schedule of the county
            // for one hospital's clinics, every Observation for one patient);
            // `+` makes the order an expression no index gives.
            let exact_owner = c.dialect() == Dialect::Sqlite
                && q.clauses.iter().any(|cl| {
                    matches!(cl, Clause::Column(Column::Patient | Column::Org, ms)
                        if !ms.is_empty() && ms.iter().all(|m| matches!(m, Match::Eq(_))))
                });
            let plus = if exact_owner { "+" } else { "" };
            let mut order = Vec::new();
            for s in &q.sort {
                let dir = if s.descending { "DESC" } else { "ASC" };
                let expr = match &s.key {
                    SortKey::LastUpdated => "r.updated".to_string(),
                    SortKey::Id => "r.id".to_string(),
                    SortKey::Date => "r.sdate".to_string(),
                    SortKey::Name => "r.sname".to_string(),
                };
                order.push(format!("{plus}{expr} {dir}"));
            }
            order.push(format!("{plus}r.id ASC"));
            params.push(Val::Int(q.limit));
            params.push(Val::Int(q.offset));
            let sql = format!(
                "SELECT {SELECT_COLS} FROM resource r WHERE {where_sql} ORDER BY {} LIMIT ? OFFSET ?",
                order.join(", ")
            );
            let rows = c.query(&sql, &params)?;
            Ok((total, rows.into_iter().map(stored_from_row).collect()))
        })
    }

    /// The display names (the first `name` search value) of some resources, by id:
    /// one query for a page's worth of patients instead of reading each record.
    pub fn display_names(
        &self,
        rtype: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        self.db().read(|c| {
            let mut p: Vec<Val> = vec![rtype.into()];
            p.extend(ids.iter().map(|i| Val::from(i.as_str())));
            let rows = c.query(
                &format!(
                    "SELECT id, sname FROM resource WHERE rtype = ? AND id IN ({}) AND sname IS NOT NULL",
                    vec!["?"; ids.len()].join(", ")
                ),
                &p,
            )?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let mut it = r.into_iter();
                    Some((it.next()?.into_string()?, it.next()?.into_string()?))
                })
                .collect())
        })
    }

    /// The next free slots of each schedule (a hospital's clinics) from `from`
    /// on, in time order, read from the `free-start` index entries alone (every
    /// free Slot carries one), on one connection: one list per schedule, in the
    /// order given.
    pub fn free_slots(
        &self,
        schedules: &[&str],
        from: &str,
        limit: i64,
    ) -> Result<Vec<Vec<FreeSlot>>, StoreError> {
        self.db().read(|c| {
            let mut lists = Vec::with_capacity(schedules.len());
            for schedule in schedules {
                let rows = c.query(
                    "SELECT s.id, s.value FROM search_index s WHERE s.rtype = 'Slot' AND s.param = 'free-start' AND s.value >= ? AND s.value < ? ORDER BY s.value LIMIT ?",
                    &[format!("{schedule}|{from}").into(), format!("{schedule}|\u{10FFFF}").into(), Val::Int(limit)],
                )?;
                lists.push(
                    rows.into_iter()
                        .filter_map(|r| {
                            let mut it = r.into_iter();
                            let id = it.next()?.into_string()?;
                            let value = it.next()?.into_string()?;
                            let mut parts = value.split('|').skip(1);
                            let start = parts.next()?.to_string();
                            let held_until = parts.next().filter(|h| !h.is_empty()).map(str::to_string);
                            Some(FreeSlot { id, start, held_until })
                        })
                        .collect(),
                );
            }
            Ok(lists)
        })
    }

    /// Version and scope of some resources without their bodies (for lists that
    /// show what they already know and need only the version for If-Match).
    pub fn heads(&self, rtype: &str, ids: &[String]) -> Result<Vec<Stored>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        self.db().read(|c| {
            let mut p: Vec<Val> = vec![rtype.into()];
            p.extend(ids.iter().map(|i| Val::from(i.as_str())));
            let rows = c.query(
                &format!(
                    "SELECT r.rtype, r.id, r.version, r.updated, r.deleted, '' AS body, r.inst, r.comm, r.patient, r.pinst, r.pcomm, r.finst, r.fcomm \
                     FROM resource r WHERE r.rtype = ? AND r.deleted = 0 AND r.id IN ({})",
                    vec!["?"; ids.len()].join(", ")
                ),
                &p,
            )?;
            Ok(rows.into_iter().map(stored_from_row).collect())
        })
    }

    /// Every resource about one patient (for $everything), oldest first.
    pub fn patient_compartment(
        &self,
        patient: &str,
        limit: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        self.db().read(|c| {
            let rows = c.query(
                &format!("SELECT {SELECT_COLS} FROM resource r WHERE r.patient = ? AND r.deleted = 0 ORDER BY r.sdate, r.rtype, r.id LIMIT ?"),
                &[patient.into(), Val::Int(limit)],
            )?;
            Ok(rows.into_iter().map(stored_from_row).collect())
        })
    }

    /// Streams every current resource of a type in id order (for export).
    pub fn scan(
        &self,
        rtype: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Stored>, StoreError> {
        self.db().read(|c| {
            let rows = c.query(
                &format!("SELECT {SELECT_COLS} FROM resource r WHERE r.rtype = ? AND r.deleted = 0 AND r.id > ? ORDER BY r.id LIMIT ?"),
                &[rtype.into(), after.unwrap_or("").into(), Val::Int(limit)],
            )?;
            Ok(rows.into_iter().map(stored_from_row).collect())
        })
    }

    pub fn resource_types(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.db().read(|c| {
            let rows = c.query("SELECT rtype, count(*) FROM resource WHERE deleted = 0 GROUP BY rtype ORDER BY rtype", &[])?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut it = r.into_iter();
                    (it.next().and_then(Val::into_string).unwrap_or_default(), it.next().and_then(|v| v.as_int()).unwrap_or(0))
                })
                .collect())
        })
    }

    /// Ids of existing resources of a type among `ids` (for reference checks before a write).
    pub fn exists(&self, rtype: &str, id: &str) -> Result<bool, StoreError> {
        self.db().read(|c| {
            Ok(c.query_one(
                "SELECT 1 FROM resource WHERE rtype = ? AND id = ? AND deleted = 0",
                &[rtype.into(), id.into()],
            )?
            .is_some())
        })
    }
}

fn push_match(sql: &mut String, params: &mut Vec<Val>, col: &str, m: &Match) {
    match m {
        Match::Eq(v) => {
            sql.push_str(&format!("{col} = ?"));
            params.push(v.as_str().into());
        }
        Match::Prefix(p) => {
            sql.push_str(&format!("({col} >= ? AND {col} < ?)"));
            params.push(p.as_str().into());
            params.push(format!("{p}\u{10FFFF}").into());
        }
        Match::Range(lo, hi) => {
            let mut parts = vec![];
            if let Some(lo) = lo {
                parts.push(format!("{col} >= ?"));
                params.push(lo.as_str().into());
            }
            if let Some(hi) = hi {
                parts.push(format!("{col} < ?"));
                params.push(hi.as_str().into());
            }
            if parts.is_empty() {
                parts.push(format!("{col} IS NOT NULL"));
            }
            sql.push('(');
            sql.push_str(&parts.join(" AND "));
            sql.push(')');
        }
    }
}

/// A search with exact values for both parameters of a composite index entry
/// (`yigong_fhir::extract::COMPOSITES`) becomes one lookup of that entry:
/// `Task?owner=X&business-status=S` reads `owner-state = X|S`.
fn with_composite(q: &Query) -> Option<Query> {
    let eq_values = |name: &str| -> Option<(usize, Vec<String>)> {
        q.clauses.iter().enumerate().find_map(|(i, c)| match c {
            Clause::Param(n, ms) if n == name => ms
                .iter()
                .map(|m| match m {
                    Match::Eq(v) if !v.contains('|') => Some(v.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| (i, v)),
            _ => None,
        })
    };
    for (_, first, second, name) in yigong_fhir::extract::COMPOSITES
        .iter()
        .filter(|c| c.0 == q.rtype)
    {
        let (Some((ai, a)), Some((bi, b))) = (eq_values(first), eq_values(second)) else {
            continue;
        };
        let values = a
            .iter()
            .flat_map(|x| b.iter().map(move |y| Match::Eq(format!("{x}|{y}"))))
            .collect();
        let mut out = q.clone();
        out.clauses = q
            .clauses
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != ai && *i != bi)
            .map(|(_, c)| c.clone())
            .collect();
        out.clauses.push(Clause::Param(name.to_string(), values));
        return Some(out);
    }
    None
}

/// With several indexed parameters, the one matching the fewest entries drives
/// the search (`r.id IN (…)`) and the others are checked per candidate
/// (`EXISTS`, a primary-key probe for an exact value). Without this, SQLite
/// builds every parameter's full id list: `Task?owner=X&business-status=requested`
/// listed all of a lead hospital's tasks to find the few still requested. The
/// estimate counts index entries up to a bound, so it stays cheap.
fn pick_driver(c: &mut dyn Sql, q: &Query) -> Result<Option<usize>, StoreError> {
    let params: Vec<usize> = q
        .clauses
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Clause::Param(..)))
        .map(|(i, _)| i)
        .collect();
    if params.len() < 2 {
        return Ok(None);
    }
    let mut best: Option<(i64, usize)> = None;
    for i in params {
        let Clause::Param(name, matches) = &q.clauses[i] else {
            continue;
        };
        let mut sql = String::from("SELECT count(*) FROM (SELECT 1 FROM search_index s WHERE ");
        let mut p: Vec<Val> = vec![];
        push_param(&mut sql, &mut p, &q.rtype, name, matches);
        sql.push_str(" LIMIT 5000)");
        let n = c.scalar_int(&sql, &p)?;
        if best.is_none_or(|(b, _)| n < b) {
            best = Some((n, i));
        }
    }
    Ok(best.map(|(_, i)| i))
}

/// `s.rtype = ? AND s.param = ? AND (value matches …)` of one indexed parameter.
fn push_param(sql: &mut String, params: &mut Vec<Val>, rtype: &str, name: &str, matches: &[Match]) {
    sql.push_str("s.rtype = ? AND s.param = ? AND (");
    params.push(rtype.into());
    params.push(name.into());
    for (i, m) in matches.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        push_match(sql, params, "s.value", m);
    }
    sql.push(')');
}

fn build_where(q: &Query, scope: &Scope, driver: Option<usize>) -> (String, Vec<Val>) {
    let mut sql = String::from("r.rtype = ? AND r.deleted = 0");
    let mut params: Vec<Val> = vec![q.rtype.as_str().into()];
    for (ci, clause) in q.clauses.iter().enumerate() {
        match clause {
            Clause::Param(name, matches) => {
                // The driving parameter lists ids; the others probe per candidate.
                let probe = driver.is_some_and(|d| d != ci);
                sql.push_str(if probe {
                    " AND EXISTS (SELECT 1 FROM search_index s WHERE s.id = r.id AND "
                } else {
                    " AND r.id IN (SELECT s.id FROM search_index s WHERE "
                });
                push_param(&mut sql, &mut params, &q.rtype, name, matches);
                sql.push(')');
            }
            Clause::Column(col, matches) => {
                let c = match col {
                    Column::Patient => "r.patient",
                    Column::Org => "r.org",
                    Column::Date => "r.sdate",
                    Column::Id => "r.id",
                };
                sql.push_str(" AND (");
                for (i, m) in matches.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(" OR ");
                    }
                    push_match(&mut sql, &mut params, c, m);
                }
                sql.push(')');
            }
        }
    }
    if !is_public(&q.rtype) {
        match scope {
            Scope::County => {}
            Scope::Community(c) => {
                sql.push_str(" AND (r.comm = ? OR r.pcomm = ? OR r.fcomm = ?)");
                params.extend([c.as_str().into(), c.as_str().into(), c.as_str().into()]);
            }
            Scope::Institution(i) => {
                sql.push_str(" AND (r.inst = ? OR r.pinst = ? OR r.finst = ?)");
                params.extend([i.as_str().into(), i.as_str().into(), i.as_str().into()]);
            }
        }
    }
    (sql, params)
}

type ScopePair = (Option<String>, Option<String>);

/// What one transaction has already looked up or written, so a bundle that
/// names the same organisation or patient a thousand times asks once, and the
/// monthly counters are written once per (month, institution).
#[derive(Default)]
struct TxCache {
    exists: std::collections::HashSet<(String, String)>,
    org_scope: std::collections::HashMap<String, ScopePair>,
    patient_scope: std::collections::HashMap<String, ScopePair>,
    months: std::collections::BTreeMap<(String, String), i64>,
    /// Registered residents (Patient rows) per community.
    residents: std::collections::BTreeMap<String, i64>,
    metrics: crate::metrics::TxMetrics,
}

impl TxCache {
    fn require(&mut self, tx: &mut dyn Sql, t: &str, id: &str) -> Result<(), StoreError> {
        let key = (t.to_string(), id.to_string());
        if self.exists.contains(&key) {
            return Ok(());
        }
        if tx
            .query_one(
                "SELECT 1 FROM resource WHERE rtype = ? AND id = ? AND deleted = 0",
                &[t.into(), id.into()],
            )?
            .is_none()
        {
            return Err(StoreError::MissingReference(format!("{t}/{id}")));
        }
        self.exists.insert(key);
        Ok(())
    }

    fn org(&mut self, tx: &mut dyn Sql, org: &str) -> Result<ScopePair, StoreError> {
        if let Some(s) = self.org_scope.get(org) {
            return Ok(s.clone());
        }
        let s = org_scope(tx, org)?;
        self.org_scope.insert(org.to_string(), s.clone());
        Ok(s)
    }

    fn patient(&mut self, tx: &mut dyn Sql, patient: &str) -> Result<ScopePair, StoreError> {
        if let Some(s) = self.patient_scope.get(patient) {
            return Ok(s.clone());
        }
        let s = match tx.query_one(
            "SELECT pinst, pcomm FROM resource WHERE rtype = 'Patient' AND id = ?",
            &[patient.into()],
        )? {
            Some(r) => {
                let mut it = r.into_iter();
                (
                    it.next().and_then(Val::into_string),
                    it.next().and_then(Val::into_string),
                )
            }
            None => (None, None),
        };
        self.patient_scope.insert(patient.to_string(), s.clone());
        Ok(s)
    }

    fn bump(&mut self, month: String, inst: String, by: i64) {
        *self.months.entry((month, inst)).or_default() += by;
    }

    /// Writes the accumulated monthly counters (end of the transaction).
    fn flush(self, tx: &mut dyn Sql) -> Result<(), StoreError> {
        for ((month, inst), by) in self.months {
            if by != 0 {
                bump_month(tx, &month, &inst, by)?;
            }
        }
        for (comm, by) in self.residents {
            if by != 0 {
                tx.exec(
                    "INSERT INTO resident_count (comm, n) VALUES (?, ?) ON CONFLICT (comm) DO UPDATE SET n = resident_count.n + excluded.n",
                    &[comm.into(), Val::Int(by)],
                )?;
            }
        }
        self.metrics.flush(tx)
    }
}

/// (institution, community) of an organisation node.
pub(crate) fn org_scope(
    tx: &mut dyn Sql,
    org: &str,
) -> Result<(Option<String>, Option<String>), StoreError> {
    Ok(
        match tx.query_one(
            "SELECT inst, comm FROM org_tree WHERE id = ?",
            &[org.into()],
        )? {
            Some(r) => {
                let mut it = r.into_iter();
                (
                    it.next().and_then(Val::into_string),
                    it.next().and_then(Val::into_string),
                )
            }
            None => (None, None),
        },
    )
}

/// Strips `meta.versionId` / `meta.lastUpdated` so two bodies can be compared by content.
fn content_of(body: &Value) -> Value {
    let mut v = body.clone();
    if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            v.as_object_mut().map(|o| o.remove("meta"));
        }
    }
    v
}

/// Who writes, when, why, and whether each resource gets its own audit row
/// (bulk loads write one per batch instead).
struct WriteCtx<'a> {
    actor: &'a Actor,
    /// Set for ordinary writes: each Patient resolves in the index at once.
    /// Bulk loads leave it unset and resolve in batch afterwards.
    mpi: Option<&'a crate::mpi::MpiEngine>,
    now: &'a str,
    reason: Option<&'a str>,
    audit_each: bool,
    /// Bulk loads and the server's own follow-on writes: the care rules take the
    /// body as it is (no side, transition or scope checks).
    trusted: bool,
    /// A bulk load: the indicator counters are left to one recompute at the
    /// end, which is cheaper than moving them record by record. (The server's
    /// follow-on writes of an ordinary write move them like any write.)
    bulk: bool,
    rules: &'a yigong_care::Rules,
}

fn write_doc(
    tx: &mut dyn Sql,
    cache: &mut TxCache,
    ctx: &WriteCtx<'_>,
    mut doc: Doc,
    pre: Precondition,
) -> Result<WriteResult, StoreError> {
    let WriteCtx {
        actor,
        mpi,
        now,
        reason,
        audit_each,
        trusted,
        bulk,
        rules: _,
    } = *ctx;
    for (t, id) in &doc.refs {
        cache.require(tx, t, id)?;
    }
    if doc.org.is_none() && matches!(doc.rtype.as_str(), "Slot" | "Appointment") {
        doc.org = crate::care::owner_of(tx, &doc)?;
    }

    // Scope of the record: its organisation, and its patient's.
    let (mut inst, mut comm) = match &doc.org {
        Some(o) => cache.org(tx, o)?,
        None => (None, None),
    };
    if let Some(node) = &doc.org_node {
        // A new organisation node derives its own scope from its parent.
        let (pinst, pcomm) = match &node.parent {
            Some(p) => cache.org(tx, p)?,
            None => (None, None),
        };
        inst = if node.is_institution {
            Some(doc.id.clone())
        } else {
            pinst
        };
        comm = if node.is_community {
            Some(doc.id.clone())
        } else {
            pcomm
        };
        cache
            .org_scope
            .insert(doc.id.clone(), (inst.clone(), comm.clone()));
    }
    let (pinst, pcomm) = if doc.rtype == "Patient" {
        cache
            .patient_scope
            .insert(doc.id.clone(), (inst.clone(), comm.clone()));
        (inst.clone(), comm.clone())
    } else if let Some(p) = &doc.patient {
        cache.patient(tx, p)?
    } else {
        (None, None)
    };

    let (finst, fcomm) = match &doc.performer {
        Some(o) => cache.org(tx, o)?,
        None => (None, None),
    };
    let writable = if is_directory(&doc.rtype) {
        actor.scope == Scope::County
    } else {
        trusted
            || actor.scope.allows(
                inst.as_deref(),
                comm.as_deref(),
                pinst.as_deref(),
                pcomm.as_deref(),
            )
            || (finst.is_some()
                && actor
                    .scope
                    .allows(finst.as_deref(), fcomm.as_deref(), None, None))
    };
    if !writable {
        return Err(StoreError::Forbidden(format!(
            "无权在本人管辖范围之外写入 {}/{}",
            doc.rtype, doc.id
        )));
    }

    let lock = if tx.dialect() == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let existing = tx.query_one(
        &format!(
            "SELECT version, body, sdate, inst, idx, org, patient, pcomm FROM resource WHERE rtype = ? AND id = ?{lock}"
        ),
        &[doc.rtype.as_str().into(), doc.id.as_str().into()],
    )?;
    let existing = existing.map(|r| {
        let mut it = r.into_iter();
        (
            it.next().and_then(|v| v.as_int()).unwrap_or(0),
            it.next().and_then(Val::into_string).unwrap_or_default(),
            it.next().and_then(Val::into_string),
            it.next().and_then(Val::into_string),
            it.next().and_then(Val::into_string),
            // The indexed columns (org, patient, pcomm; sdate above).
            [
                it.next().and_then(Val::into_string),
                it.next().and_then(Val::into_string),
                it.next().and_then(Val::into_string),
            ],
        )
    });

    match (&existing, pre) {
        (Some(_), Precondition::Create) => {
            return Err(StoreError::Conflict(format!(
                "资源 {}/{} 已存在",
                doc.rtype, doc.id
            )));
        }
        (Some(_), Precondition::CreateOrRequireVersion) => return Err(StoreError::VersionRequired),
        (Some((v, ..)), Precondition::IfMatch(want)) if *v != want => {
            return Err(StoreError::VersionConflict { current: *v });
        }
        (None, Precondition::IfMatch(_)) => {
            return Err(StoreError::NotFound(format!(
                "资源 {}/{} 不存在,无法按版本更新",
                doc.rtype, doc.id
            )));
        }
        _ => {}
    }

    if let Some(obj) = doc.body.as_object_mut() {
        obj.insert("id".into(), Value::String(doc.id.clone()));
    }
    // The old version, parsed once for the unchanged-content check, the care
    // flow rules and the indicators.
    let old_value: Option<Value> = match &existing {
        Some((_, old_body, ..))
            if pre == Precondition::Upsert
                || crate::care::is_care_type(&doc.rtype)
                || (crate::metrics::is_metric_type(&doc.rtype) && !bulk) =>
        {
            serde_json::from_str(old_body).ok()
        }
        _ => None,
    };
    if let (Some(old), Precondition::Upsert) = (&old_value, pre)
        && content_of(old) == content_of(&doc.body)
    {
        let cur = tx
            .query_one(
                &format!("SELECT {SELECT_COLS} FROM resource r WHERE r.rtype = ? AND r.id = ?"),
                &[doc.rtype.as_str().into(), doc.id.as_str().into()],
            )?
            .map(stored_from_row)
            .ok_or_else(|| StoreError::NotFound(doc.id.clone()))?;
        return Ok(WriteResult {
            stored: cur,
            created: false,
            changed: false,
        });
    }

    if crate::metrics::is_metric_type(&doc.rtype) {
        // Money and dates that would corrupt the indicators are refused here.
        let at = chrono::DateTime::parse_from_rfc3339(now)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        yigong_metrics::indicators::check(&doc.rtype, &doc.body, at)
            .map_err(StoreError::Invalid)?;
    }

    let derived = if crate::care::is_care_type(&doc.rtype) {
        let w = crate::care::Write {
            actor,
            now,
            trusted,
            rules: ctx.rules,
        };
        crate::care::on_write(tx, &w, &mut doc, old_value.as_ref())?
    } else {
        vec![]
    };

    let version = existing.as_ref().map_or(1, |(v, ..)| v + 1);
    if let Some(obj) = doc.body.as_object_mut() {
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            m.insert("versionId".into(), Value::String(version.to_string()));
            m.insert("lastUpdated".into(), Value::String(now.to_string()));
        }
    }
    let body = serde_json::to_string(&doc.body).map_err(|e| StoreError::Database(e.to_string()))?;
    let patient = if doc.rtype == "Patient" {
        Some(doc.id.clone())
    } else {
        doc.patient.clone()
    };

    let rt: Val = doc.rtype.as_str().into();
    let id: Val = doc.id.as_str().into();
    let mut seen = std::collections::HashSet::new();
    doc.index
        .retain(|(p, v)| seen.insert((p.clone(), v.clone())));
    let idx = encode_index(&doc.index);
    let sname = doc
        .index
        .iter()
        .find(|(p, _)| p == "name")
        .map(|(_, v)| v.clone());
    let mut kept: std::collections::HashSet<(String, String)> = Default::default();
    if let Some((old_v, _, old_date, old_inst, old_idx, old_indexed)) = &existing {
        tx.exec(
            "INSERT INTO resource_history (rtype, id, version, updated, deleted, body) SELECT rtype, id, version, updated, deleted, body FROM resource WHERE rtype = ? AND id = ?",
            &[rt.clone(), id.clone()],
        )?;
        // SQLite rewrites every index whose columns appear in SET, changed or
        // not: the indexed columns are set only when they change.
        let mut set = String::from(
            "UPDATE resource SET version = ?, updated = ?, deleted = 0, inst = ?, comm = ?, pinst = ?, finst = ?, fcomm = ?, sname = ?, idx = ?, body = ?",
        );
        let mut params: Vec<Val> = vec![
            Val::Int(version),
            now.into(),
            inst.clone().into(),
            comm.clone().into(),
            pinst.clone().into(),
            finst.clone().into(),
            fcomm.clone().into(),
            sname.clone().into(),
            idx.as_str().into(),
            body.as_str().into(),
        ];
        for (col, new, old) in [
            ("org", &doc.org, &old_indexed[0]),
            ("patient", &patient, &old_indexed[1]),
            ("pcomm", &pcomm, &old_indexed[2]),
            ("sdate", &doc.date, old_date),
        ] {
            if new != old {
                set.push_str(&format!(", {col} = ?"));
                params.push(new.clone().into());
            }
        }
        set.push_str(" WHERE rtype = ? AND id = ? AND version = ?");
        params.extend([rt.clone(), id.clone(), Val::Int(*old_v)]);
        let n = tx.exec(&set, &params)?;
        if n != 1 {
            return Err(StoreError::VersionConflict {
                current: *old_v + 1,
            });
        }
        // Only the entries that changed: an update that moves a Task's state
        // rewrites two index entries, not all of them.
        for (param, value) in decode_index(old_idx.as_deref().unwrap_or("")) {
            if doc.index.iter().any(|(p, v)| p == param && v == value) {
                kept.insert((param.to_string(), value.to_string()));
                continue;
            }
            tx.exec(
                "DELETE FROM search_index WHERE rtype = ? AND param = ? AND value = ? AND id = ?",
                &[rt.clone(), param.into(), value.into(), id.clone()],
            )?;
        }
        if doc.rtype == "Encounter"
            && let (Some(d), Some(i)) = (old_date.as_deref().and_then(local_month), old_inst)
        {
            cache.bump(d, i.clone(), -1);
        }
    } else {
        tx.exec(
            "INSERT INTO resource (rtype, id, version, updated, deleted, org, inst, comm, patient, pinst, pcomm, finst, fcomm, sdate, sname, idx, body) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                rt.clone(), id.clone(), Val::Int(version), now.into(), doc.org.clone().into(), inst.clone().into(), comm.clone().into(),
                patient.clone().into(), pinst.clone().into(), pcomm.clone().into(), finst.clone().into(), fcomm.clone().into(), doc.date.clone().into(), sname.clone().into(), idx.as_str().into(), body.as_str().into(),
            ],
        )?;
    }
    for (param, value) in &doc.index {
        if kept.contains(&(param.clone(), value.clone())) {
            continue;
        }
        tx.exec(
            "INSERT INTO search_index (rtype, param, value, id) VALUES (?, ?, ?, ?)",
            &[
                rt.clone(),
                param.as_str().into(),
                value.as_str().into(),
                id.clone(),
            ],
        )?;
    }
    if doc.rtype == "Encounter"
        && let (Some(d), Some(i)) = (doc.date.as_deref().and_then(local_month), &inst)
    {
        cache.bump(d, i.clone(), 1);
    }
    if doc.rtype == "Patient" {
        // A new record counts for its community; a record moved between
        // communities counts for the new one only.
        let old_comm = existing.as_ref().map(|(.., indexed)| &indexed[2]);
        if old_comm != Some(&pcomm) {
            if let Some(Some(c)) = old_comm {
                *cache.residents.entry(c.clone()).or_default() -= 1;
            }
            if let Some(c) = &pcomm {
                *cache.residents.entry(c.clone()).or_default() += 1;
            }
        }
    }
    if let Some(input) = yigong_metrics::input::input_text(&doc.rtype, &doc.body, &body) {
        crate::metrics::put_input(tx, &doc.rtype, &doc.id, pcomm.as_deref(), &input)?;
    }
    if crate::metrics::is_metric_type(&doc.rtype) && !bulk {
        let old = existing
            .as_ref()
            .and_then(|(.., indexed)| old_value.as_ref().map(|v| (v, indexed[2].as_deref())));
        cache
            .metrics
            .on_write(tx, &doc.rtype, old, Some((&doc.body, pcomm.as_deref())))?;
    }
    if let Some(node) = &doc.org_node {
        cache.metrics.org_changed();
        tx.exec(
            "INSERT INTO org_tree (id, name, kind, tier, parent, inst, comm, sub_centre, lead) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, tier = excluded.tier, parent = excluded.parent,
             inst = excluded.inst, comm = excluded.comm, sub_centre = excluded.sub_centre, lead = excluded.lead",
            &[
                id.clone(), node.name.as_str().into(), node.kind.clone().into(), node.tier.clone().into(), node.parent.clone().into(),
                inst.clone().into(), comm.clone().into(), Val::Int(node.sub_centre as i64), Val::Int(node.lead as i64),
            ],
        )?;
    }
    if let (Some(engine), "Patient") = (mpi, doc.rtype.as_str()) {
        crate::mpi::on_patient_write(tx, engine, actor, now, &doc.id, version, &doc.body)?;
    }
    if audit_each {
        let action = if existing.is_some() {
            "update"
        } else {
            "create"
        };
        AuditRow::by(actor, now, action)
            .on(&doc.rtype, &doc.id)
            .version(version)
            .reason(reason)
            .append(tx)?;
    }
    // The server's follow-on writes (a report completes its exam, a booking
    // takes its slot) in the same transaction, each with its own audit row.
    let follow = WriteCtx {
        trusted: true,
        ..*ctx
    };
    for (d, pre) in derived {
        let r = write_doc(tx, cache, &follow, d, pre)?;
        cache.exists.insert((r.stored.rtype, r.stored.id));
    }
    Ok(WriteResult {
        stored: Stored {
            rtype: doc.rtype,
            id: doc.id,
            version,
            updated: now.to_string(),
            deleted: false,
            body,
            inst,
            comm,
            patient,
            pinst,
            pcomm,
            finst,
            fcomm,
        },
        created: existing.is_none(),
        changed: true,
    })
}

/// Encodes index entries for the `idx` column (unit and record separators
/// never occur in FHIR strings we index).
fn encode_index(index: &[(String, String)]) -> String {
    index
        .iter()
        .map(|(p, v)| format!("{p}\u{1F}{v}"))
        .collect::<Vec<_>>()
        .join("\u{1E}")
}

fn decode_index(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split('\u{1E}').filter_map(|e| e.split_once('\u{1F}'))
}

fn bump_month(tx: &mut dyn Sql, month: &str, inst: &str, by: i64) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO encounter_month (month, inst, n) VALUES (?, ?, ?) ON CONFLICT (month, inst) DO UPDATE SET n = encounter_month.n + excluded.n",
        &[month.into(), inst.into(), Val::Int(by)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_month_uses_china_time() {
        assert_eq!(
            local_month("2026-01-31T17:00:00Z").as_deref(),
            Some("2026-02")
        );
        assert_eq!(
            local_month("2026-01-31T15:00:00Z").as_deref(),
            Some("2026-01")
        );
        assert_eq!(local_month("2026-03-05").as_deref(), Some("2026-03"));
    }
}
