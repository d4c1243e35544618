//! The operations centre's own records (issue 6): the evaluation standard in
//! force and the attested grades with their evidence, the insurance global
//! budget configuration per community and year, special funds, the
//! notify / warn / summon rules with the record of each step taken, and the
//! assessment cycles. The arithmetic is `yigong_metrics` (pure); this module
//! keeps its inputs, checks them with the same rules before anything is
//! written, and groups the live counters (`metric_fact`) by organisation for
//! drill-down tables.
//!
//! Every write is one transaction with its audit row. Rows that are edited
//! (budget, fund total, attested grade, rule, cycle) carry a version: a
//! change names the version it was made from (412 when stale, 428 when an
//! existing row is changed without one). Ledgers (fund entries, escalation
//! steps, cycle transitions) are append-only and replayed through the pure
//! rules, so a refused operation changes nothing.

use crate::db::{Dialect, Sql, Val};
use crate::metrics::Subject;
use crate::{Actor, AuditRow, Scope, Store, StoreError, now_string};
use base64::Engine;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use yigong_core::Fen;
use yigong_metrics::Unit;
use yigong_metrics::budget::{MonthSpending, SettlementRule, SpecialFund, YearSpending};
use yigong_metrics::escalation::{Cycle, EscalationRule, Level, Step, StepDays};
use yigong_metrics::evaluation::{self, Grade, Input, Report, Standard};
use yigong_metrics::indicators;

/// Largest evidence attachment accepted (5 MiB).
pub const MAX_EVIDENCE_BYTES: usize = 5 * 1024 * 1024;

/// Reserve withheld by default (3%, Luxian).
pub const DEFAULT_RESERVE_BP: i64 = 300;

fn for_update(tx: &dyn Sql) -> &'static str {
    if tx.dialect() == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// Reads a row column by column.
struct Cols(std::vec::IntoIter<Val>);

impl Cols {
    fn new(r: Vec<Val>) -> Cols {
        Cols(r.into_iter())
    }
    fn s(&mut self) -> String {
        self.os().unwrap_or_default()
    }
    fn os(&mut self) -> Option<String> {
        self.0.next().and_then(Val::into_string)
    }
    fn i(&mut self) -> i64 {
        self.oi().unwrap_or(0)
    }
    fn oi(&mut self) -> Option<i64> {
        self.0.next().and_then(|v| v.as_int())
    }
}

/// The version a change must name, and the version it writes.
fn next_version(current: Option<i64>, expected: Option<i64>) -> Result<i64, StoreError> {
    match (current, expected) {
        (None, None | Some(0)) => Ok(1),
        (None, Some(_)) => Err(StoreError::VersionConflict { current: 0 }),
        (Some(_), None) => Err(StoreError::VersionRequired),
        (Some(c), Some(e)) if c == e => Ok(c + 1),
        (Some(c), Some(_)) => Err(StoreError::VersionConflict { current: c }),
    }
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

impl Store {
    /// Runs `change` on a community's record for `year` in one transaction
    /// (the community in the actor's scope first), then audits it as
    /// `rtype` `comm/year` with the version and reason `change` returns.
    fn ops_year_write(
        &self,
        actor: &Actor,
        comm: &str,
        year: i32,
        action: &str,
        rtype: &str,
        change: impl FnOnce(&mut dyn Sql, &str) -> Result<(i64, String), StoreError>,
    ) -> Result<(), StoreError> {
        let now = now_string();
        self.db().write(|tx| {
            community_in_scope(tx, &actor.scope, comm)?;
            let (version, reason) = change(tx, &now)?;
            let rid = format!("{comm}/{year}");
            AuditRow::by(actor, &now, action)
                .on(rtype, &rid)
                .version(version)
                .reason(Some(&reason))
                .append(tx)
        })
    }
}

/// A row just written, read back (its absence is a database fault).
fn written<T>(row: Option<T>, what: &str) -> Result<T, StoreError> {
    row.ok_or_else(|| StoreError::Database(format!("{what}写入后未找到")))
}

/// A community node that the actor's scope contains; its name.
fn community_in_scope(tx: &mut dyn Sql, scope: &Scope, comm: &str) -> Result<String, StoreError> {
    let row = tx.query_one(
        "SELECT name, kind FROM org_tree WHERE id = ?",
        &[comm.into()],
    )?;
    let Some(mut r) = row.map(Cols::new) else {
        return Err(StoreError::NotFound(format!("医共体 {comm} 不存在")));
    };
    let name = r.s();
    if r.os().as_deref() != Some("community") {
        return Err(invalid(format!("{name}（{comm}）不是医共体")));
    }
    let ok = match scope {
        Scope::County => true,
        Scope::Community(c) => c == comm,
        Scope::Institution(_) => false,
    };
    if !ok {
        return Err(StoreError::Forbidden(format!(
            "医共体“{name}”不在您的管辖范围内"
        )));
    }
    Ok(name)
}

fn county_only(actor: &Actor, what: &str) -> Result<(), StoreError> {
    if actor.scope == Scope::County {
        Ok(())
    } else {
        Err(StoreError::Forbidden(format!(
            "只有全县范围的用户可以{what}"
        )))
    }
}

fn check_year(year: i32) -> Result<(), StoreError> {
    if (2000..=2100).contains(&year) {
        Ok(())
    } else {
        Err(invalid(format!("年份 {year} 无效（应在 2000–2100 之间）")))
    }
}

fn json_text<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Database(e.to_string()))
}

// ---------------------------------------------------------------------------
// Live counters grouped by organisation
// ---------------------------------------------------------------------------

/// Which organisations a grouped sum is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgLevel {
    /// Per community: the facts of its member institutions plus those keyed by
    /// the community itself (enrollee-based), as `metric_sums(Community)`.
    Community,
    /// Per institution: the facts keyed by the institution, as
    /// `metric_sums(Institution)`.
    Institution,
}

impl OrgLevel {
    pub fn code(self) -> &'static str {
        match self {
            OrgLevel::Community => "community",
            OrgLevel::Institution => "institution",
        }
    }
    pub fn from_code(s: &str) -> Option<OrgLevel> {
        match s {
            "community" => Some(OrgLevel::Community),
            "institution" => Some(OrgLevel::Institution),
            _ => None,
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            OrgLevel::Community => "医共体",
            OrgLevel::Institution => "机构",
        }
    }
}

/// Counter sums grouped by organisation (and month): org → month → component
/// → sum. The month key is `""` unless `by_month`.
pub type Grouped = BTreeMap<String, BTreeMap<String, HashMap<String, i64>>>;

impl Store {
    /// Sums of `components` over months `first..=last`, one entry per
    /// community or institution inside `within`, from the live counters in one
    /// query per component (never a scan of resources). Each group's sums equal
    /// `metric_sums` of that community or institution. Family wildcards are
    /// not accepted here (use `metric_family`).
    pub fn metric_by_org(
        &self,
        level: OrgLevel,
        within: &Subject,
        components: &[String],
        first: &str,
        last: &str,
        by_month: bool,
    ) -> Result<Grouped, StoreError> {
        let mut out: Grouped = BTreeMap::new();
        if components.is_empty() {
            return Ok(out);
        }
        self.db().read(|c| {
            let month = if by_month { "f.month" } else { "''" };
            // The database sums per organisation (and month); the tree then
            // says which institution or community each organisation counts
            // for (a join per counter row cost more than the sums).
            let tree: HashMap<String, (Option<String>, Option<String>)> = c
                .query("SELECT id, inst, comm FROM org_tree", &[])?
                .into_iter()
                .map(|r| {
                    let mut r = Cols::new(r);
                    (r.s(), (r.os(), r.os()))
                })
                .collect();
            for comp in components.iter().filter(|c| !c.ends_with(":*")) {
                let mut p: Vec<Val> = vec![comp.as_str().into(), first.into(), last.into()];
                let filter = match within {
                    Subject::County => "",
                    Subject::Institution(i) => {
                        p.push(i.as_str().into());
                        " AND f.org = ?"
                    }
                    Subject::Community(cm) => {
                        p.push(cm.as_str().into());
                        p.push(cm.as_str().into());
                        " AND f.org IN (SELECT id FROM org_tree WHERE comm = ? UNION ALL SELECT ?)"
                    }
                };
                let sql = format!(
                    "SELECT f.org, {month}, sum(f.value) FROM metric_fact f \
                     WHERE f.component = ? AND f.month >= ? AND f.month <= ?{filter} GROUP BY 1, 2"
                );
                for r in c.query(&sql, &p)? {
                    let mut r = Cols::new(r);
                    let (org, m, v) = (r.s(), r.os().unwrap_or_default(), r.i());
                    let org = match level {
                        // Organisations outside the tree (and communities
                        // themselves) count as they are.
                        OrgLevel::Community => match tree.get(&org) {
                            Some((_, Some(comm))) => comm.clone(),
                            _ => org,
                        },
                        OrgLevel::Institution => {
                            let Some((inst, comm)) = tree.get(&org) else {
                                continue;
                            };
                            let inside = match within {
                                Subject::Community(cm) => comm.as_deref() == Some(cm.as_str()),
                                _ => true,
                            };
                            if !inside || inst.as_deref() != Some(org.as_str()) {
                                continue;
                            }
                            org
                        }
                    };
                    let cell = out.entry(org).or_default().entry(m).or_default();
                    match cell.get_mut(comp.as_str()) {
                        Some(x) => *x += v,
                        None => {
                            cell.insert(comp.clone(), v);
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The members of a component family (`visits_dx` → every
    /// `visits_dx:<code>`) with their sums for a subject and months
    /// `first..=last`, largest first. Reads the family's key range of the
    /// counters' primary key (`component >= 'visits_dx:' AND < 'visits_dx;'`),
    /// never the whole table.
    pub fn metric_family_range(
        &self,
        subject: &Subject,
        family: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let lo = format!("{family}:");
        let hi = format!("{family};");
        let mut p: Vec<Val> = vec![lo.into(), hi.into(), first.into(), last.into()];
        let w = match subject {
            Subject::County => "",
            Subject::Community(c) => {
                p.push(c.as_str().into());
                p.push(c.as_str().into());
                " AND (f.org = ? OR f.org IN (SELECT id FROM org_tree WHERE comm = ?))"
            }
            Subject::Institution(i) => {
                p.push(i.as_str().into());
                " AND f.org = ?"
            }
        };
        let mut rows: Vec<(String, i64)> = self.db().read(|c| {
            Ok(c.query(
                &format!(
                    "SELECT f.component, sum(f.value) FROM metric_fact f \
                     WHERE f.component >= ? AND f.component < ? AND f.month >= ? AND f.month <= ?{w} GROUP BY f.component"
                ),
                &p,
            )?
            .into_iter()
            .map(|r| {
                let mut r = Cols::new(r);
                (r.s(), r.i())
            })
            .collect())
        })?;
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(rows)
    }

    /// The number of registered residents (Patient records) of a community:
    /// the default number of enrollees of its insurance budget. Kept per
    /// community in `resident_count` by every Patient write (counting the
    /// index took 40-80 ms per community at a million residents; resources
    /// are never deleted, only superseded, so every row is a live record).
    pub fn ops_enrollees(&self, comm: &str) -> Result<i64, StoreError> {
        self.db().read(|c| {
            c.scalar_int(
                "SELECT COALESCE(sum(n), 0) FROM resident_count WHERE comm = ?",
                &[comm.into()],
            )
        })
    }
}

// ---------------------------------------------------------------------------
// The evaluation standard and attested grades
// ---------------------------------------------------------------------------

/// Who uploaded the standard in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardRow {
    pub seq: i64,
    pub id: String,
    pub version: String,
    pub title: String,
    pub uploaded_by: String,
    pub uploaded_at: String,
}

/// The key attested grades are kept under: a standard's id and version.
pub fn standard_key(s: &Standard) -> String {
    format!("{}@{}", s.id(), s.version())
}

/// Checks that a standard's computed criteria name indicators of the
/// catalogue that can be computed for a community, in the same unit.
pub fn check_standard_indicators(s: &Standard) -> Result<(), String> {
    let cat = crate::metrics::catalogue();
    for c in s.criteria() {
        if let evaluation::Kind::Computed(m) = &c.kind {
            let Some(ind) = cat.get(&m.indicator) else {
                return Err(format!(
                    "评判标准 {} 的指标“{}”不在指标目录中",
                    c.id, m.indicator
                ));
            };
            if !ind.available {
                return Err(format!(
                    "评判标准 {} 的指标“{}”（{}）暂无数据来源，不能作为计算项",
                    c.id, m.indicator, ind.name
                ));
            }
            if ind.unit != m.unit {
                return Err(format!(
                    "评判标准 {} 的单位 {} 与指标“{}”的单位 {} 不一致",
                    c.id,
                    m.unit.name(),
                    ind.name,
                    ind.unit.name()
                ));
            }
            if !ind.levels.contains(&indicators::Level::Community) {
                return Err(format!(
                    "评判标准 {} 的指标“{}”不在医共体层级统计",
                    c.id, ind.name
                ));
            }
        }
    }
    Ok(())
}

/// Metadata of one evidence attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub id: String,
    pub comm: String,
    pub criterion: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub uploaded_by: String,
    pub uploaded_at: String,
}

/// A file to attach.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// An attested grade with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attestation {
    pub comm: String,
    pub std_key: String,
    pub criterion: String,
    pub grade: Grade,
    pub note: String,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: String,
    pub evidence: Vec<Evidence>,
}

fn clean_file_name(name: &str) -> Result<String, StoreError> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if base.is_empty() {
        return Err(invalid("佐证材料缺少文件名"));
    }
    if base.chars().count() > 200 || base.chars().any(char::is_control) {
        return Err(invalid(format!(
            "佐证材料文件名“{base}”不合规（最长 200 字）"
        )));
    }
    Ok(base.to_string())
}

fn evidence_from(r: Vec<Val>) -> Evidence {
    let mut r = Cols::new(r);
    Evidence {
        id: r.s(),
        comm: r.s(),
        criterion: r.s(),
        file_name: r.s(),
        content_type: r.s(),
        size: r.i(),
        uploaded_by: r.s(),
        uploaded_at: r.s(),
    }
}

const EVIDENCE_COLS: &str =
    "id, comm, criterion, file_name, content_type, size, uploaded_by, uploaded_at";

impl Store {
    /// The evaluation standard in force: the newest uploaded file, or the
    /// shipped national 2020 standard (with `None`).
    pub fn ops_standard(&self) -> Result<(Standard, Option<StandardRow>), StoreError> {
        let row = self.db().read(|c| {
            c.query_one(
                "SELECT seq, std_id, std_version, title, uploaded_by, uploaded_at, body FROM ops_standard ORDER BY seq DESC LIMIT 1",
                &[],
            )
        })?;
        let Some(r) = row else {
            return Ok((Standard::national_2020(), None));
        };
        let mut r = Cols::new(r);
        let info = StandardRow {
            seq: r.i(),
            id: r.s(),
            version: r.s(),
            title: r.s(),
            uploaded_by: r.s(),
            uploaded_at: r.s(),
        };
        let body = r.s();
        let std = Standard::parse(&body).map_err(|e| StoreError::Database(e.to_string()))?;
        Ok((std, Some(info)))
    }

    /// Every uploaded standard, newest first.
    pub fn ops_standards(&self) -> Result<Vec<StandardRow>, StoreError> {
        self.db().read(|c| {
            Ok(c.query(
                "SELECT seq, std_id, std_version, title, uploaded_by, uploaded_at FROM ops_standard ORDER BY seq DESC",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let mut r = Cols::new(r);
                StandardRow {
                    seq: r.i(),
                    id: r.s(),
                    version: r.s(),
                    title: r.s(),
                    uploaded_by: r.s(),
                    uploaded_at: r.s(),
                }
            })
            .collect())
        })
    }

    /// Puts a provincial (or revised) standard file in force. The file is
    /// checked whole first (`Standard::parse`, and its computed criteria
    /// against the indicator catalogue); a refused file changes nothing and
    /// the standard in force stays. County scope only.
    pub fn ops_standard_upload(&self, actor: &Actor, json: &str) -> Result<Standard, StoreError> {
        county_only(actor, "上传评判标准")?;
        let std = Standard::parse(json).map_err(|e| invalid(e.to_string()))?;
        check_standard_indicators(&std).map_err(invalid)?;
        let now = now_string();
        self.db().write(|tx| {
            tx.exec(
                "INSERT INTO ops_standard (std_id, std_version, title, body, uploaded_by, uploaded_at) VALUES (?, ?, ?, ?, ?, ?)",
                &[std.id().into(), std.version().into(), std.title().into(), json.into(), actor.user.as_str().into(), now.as_str().into()],
            )?;
            let key = standard_key(&std);
            let reason = format!("启用评判标准 {}", std.title());
            AuditRow::by(actor, &now, "ops-standard")
                .on("OpsStandard", &key)
                .reason(Some(&reason))
                .append(tx)
        })?;
        Ok(std)
    }

    /// Records (or changes) the attested grade of a criterion for a community,
    /// attaching new evidence files. At least one evidence file must exist
    /// after the change; each file is at most [`MAX_EVIDENCE_BYTES`].
    #[allow(clippy::too_many_arguments)]
    pub fn ops_attest(
        &self,
        actor: &Actor,
        comm: &str,
        std: &Standard,
        criterion: &str,
        grade: Grade,
        note: &str,
        evidence: Vec<NewEvidence>,
        expected: Option<i64>,
    ) -> Result<Attestation, StoreError> {
        let c = std.criterion(criterion).ok_or_else(|| {
            invalid(
                evaluation::EvalError::UnknownCriterion {
                    criterion: criterion.to_string(),
                    standard: std.id().to_string(),
                }
                .to_string(),
            )
        })?;
        if !matches!(c.kind, evaluation::Kind::Attested) {
            return Err(invalid(format!(
                "评判标准 {criterion} 为计算项，等级由数据计算，不能人工填报"
            )));
        }
        if note.chars().count() > 2000 {
            return Err(invalid("说明最长 2000 字"));
        }
        let mut files = Vec::with_capacity(evidence.len());
        for e in evidence {
            let name = clean_file_name(&e.file_name)?;
            if e.bytes.is_empty() {
                return Err(invalid(format!("佐证材料“{name}”是空文件")));
            }
            if e.bytes.len() > MAX_EVIDENCE_BYTES {
                return Err(invalid(format!(
                    "佐证材料“{name}”过大（{} 字节，单个文件不超过 5 MB）",
                    e.bytes.len()
                )));
            }
            let ctype = e.content_type.trim();
            let ctype =
                if ctype.is_empty() || ctype.len() > 100 || ctype.chars().any(char::is_control) {
                    "application/octet-stream".to_string()
                } else {
                    ctype.to_string()
                };
            files.push((name, ctype, e.bytes));
        }
        let key = standard_key(std);
        let now = now_string();
        self.db().write(|tx| {
            community_in_scope(tx, &actor.scope, comm)?;
            let current = tx
                .query_one(
                    &format!(
                        "SELECT version FROM ops_attest WHERE comm = ? AND std_key = ? AND criterion = ?{}",
                        for_update(tx)
                    ),
                    &[comm.into(), key.as_str().into(), criterion.into()],
                )?
                .and_then(|r| r.first().and_then(Val::as_int));
            let version = next_version(current, expected)?;
            let existing = tx.scalar_int(
                "SELECT count(*) FROM ops_evidence WHERE comm = ? AND std_key = ? AND criterion = ?",
                &[comm.into(), key.as_str().into(), criterion.into()],
            )?;
            if existing == 0 && files.is_empty() {
                return Err(invalid(
                    evaluation::EvalError::MissingEvidence(criterion.to_string()).to_string(),
                ));
            }
            tx.exec(
                "INSERT INTO ops_attest (comm, std_key, criterion, grade, note, version, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (comm, std_key, criterion) DO UPDATE SET grade = excluded.grade, note = excluded.note, version = excluded.version,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                &[comm.into(), key.as_str().into(), criterion.into(), grade.as_str().into(), note.into(), Val::Int(version), actor.user.as_str().into(), now.as_str().into()],
            )?;
            for (name, ctype, bytes) in &files {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                tx.exec(
                    &format!("INSERT INTO ops_evidence ({EVIDENCE_COLS}, std_key, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    &[id.as_str().into(), comm.into(), criterion.into(), name.as_str().into(), ctype.as_str().into(), Val::Int(bytes.len() as i64),
                      actor.user.as_str().into(), now.as_str().into(), key.as_str().into(), data.into()],
                )?;
                let reason = format!("佐证材料 {name}（{} 字节）", bytes.len());
                AuditRow::by(actor, &now, "ops-evidence")
                    .on("OpsEvidence", &id)
                    .reason(Some(&reason))
                    .append(tx)?;
            }
            let rid = format!("{comm}/{key}/{criterion}");
            let reason = format!("人工评定 {grade}，新增佐证材料 {} 份", files.len());
            AuditRow::by(actor, &now, "ops-attest")
                .on("OpsAttestation", &rid)
                .version(version)
                .reason(Some(&reason))
                .append(tx)
        })?;
        written(
            self.ops_attestations(comm, &key)?
                .into_iter()
                .find(|a| a.criterion == criterion),
            "评定记录",
        )
    }

    /// The attested grades of a community under a standard key, with evidence.
    pub fn ops_attestations(
        &self,
        comm: &str,
        std_key: &str,
    ) -> Result<Vec<Attestation>, StoreError> {
        self.db().read(|c| {
            let mut evidence: HashMap<String, Vec<Evidence>> = HashMap::new();
            for r in c.query(
                &format!("SELECT {EVIDENCE_COLS} FROM ops_evidence WHERE comm = ? AND std_key = ? ORDER BY uploaded_at, id"),
                &[comm.into(), std_key.into()],
            )? {
                let e = evidence_from(r);
                evidence.entry(e.criterion.clone()).or_default().push(e);
            }
            let rows = c.query(
                "SELECT comm, std_key, criterion, grade, note, version, updated_by, updated_at FROM ops_attest WHERE comm = ? AND std_key = ? ORDER BY criterion",
                &[comm.into(), std_key.into()],
            )?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let mut r = Cols::new(r);
                    let comm = r.s();
                    let std_key = r.s();
                    let criterion = r.s();
                    let grade = Grade::from_name(&r.s())?;
                    Some(Attestation {
                        evidence: evidence.remove(&criterion).unwrap_or_default(),
                        comm,
                        std_key,
                        criterion,
                        grade,
                        note: r.s(),
                        version: r.i(),
                        updated_by: r.s(),
                        updated_at: r.s(),
                    })
                })
                .collect())
        })
    }

    /// One evidence file (metadata and bytes), if the scope contains its community.
    pub fn ops_evidence(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<(Evidence, Vec<u8>)>, StoreError> {
        let row = self.db().read(|c| {
            c.query_one(
                &format!("SELECT {EVIDENCE_COLS}, data FROM ops_evidence WHERE id = ?"),
                &[id.into()],
            )
        })?;
        let Some(mut r) = row else { return Ok(None) };
        let data = r.pop().and_then(Val::into_string).unwrap_or_default();
        let e = evidence_from(r);
        let visible = match scope {
            Scope::County => true,
            Scope::Community(c) => *c == e.comm,
            Scope::Institution(_) => false,
        };
        if !visible {
            return Err(StoreError::Forbidden("该佐证材料不在您的管辖范围内".into()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(Some((e, bytes)))
    }

    /// Evaluates a community against a standard: computed criteria from the
    /// live indicators over `first..=last` (year to date), attested ones from
    /// the recorded grades. Also returns the attestations.
    pub fn ops_evaluate(
        &self,
        comm: &str,
        std: &Standard,
        first: &str,
        last: &str,
    ) -> Result<(Report, Vec<Attestation>), StoreError> {
        let attested = self.ops_attestations(comm, &standard_key(std))?;
        let mut inputs = BTreeMap::new();
        let subject = Subject::Community(comm.to_string());
        for c in std.criteria() {
            match &c.kind {
                evaluation::Kind::Computed(m) => {
                    let v = self.indicator_value(&m.indicator, &subject, first, last)?;
                    let (lo, hi) = m.unit.range();
                    let score = v.score.map(|s| s.clamp(lo, hi));
                    inputs.insert(c.id.clone(), Input::Value(score));
                }
                evaluation::Kind::Attested => {
                    if let Some(a) = attested.iter().find(|a| a.criterion == c.id)
                        && !a.evidence.is_empty()
                    {
                        inputs.insert(
                            c.id.clone(),
                            Input::Attested {
                                grade: a.grade,
                                evidence: a.evidence.iter().map(|e| e.id.clone()).collect(),
                            },
                        );
                    }
                }
            }
        }
        let report = evaluation::evaluate(std, &inputs).map_err(|e| invalid(e.to_string()))?;
        Ok((report, attested))
    }
}

// ---------------------------------------------------------------------------
// The insurance global budget
// ---------------------------------------------------------------------------

/// What the operations centre sets for a community's budget year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetInput {
    /// `None`: the number of the community's registered residents.
    pub enrollees: Option<i64>,
    /// The per-capita standard in fen.
    pub per_capita: Fen,
    pub reserve_bp: i64,
    pub rule: SettlementRule,
}

/// A stored budget configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetConfig {
    pub comm: String,
    pub year: i32,
    pub input: BudgetInput,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: String,
}

/// Checks a budget configuration with the pure rules (Chinese message).
pub fn check_budget(b: &BudgetInput) -> Result<(), String> {
    if let Some(n) = b.enrollees
        && n <= 0
    {
        return Err(yigong_metrics::BudgetError::Enrollees(n).to_string());
    }
    if b.per_capita.0 < 0 {
        return Err(format!("人均定额不能为负数（收到 {}）", b.per_capita));
    }
    let budget = yigong_metrics::Budget::new(b.enrollees.unwrap_or(1), b.per_capita, b.reserve_bp)
        .map_err(|e| e.to_string())?;
    yigong_metrics::budget::settle(&budget, Fen::ZERO, &b.rule).map_err(|e| e.to_string())?;
    Ok(())
}

impl Store {
    pub fn ops_budget(&self, comm: &str, year: i32) -> Result<Option<BudgetConfig>, StoreError> {
        let row = self.db().read(|c| {
            c.query_one(
                "SELECT enrollees, per_capita, reserve_bp, rule, version, updated_by, updated_at FROM ops_budget WHERE comm = ? AND yr = ?",
                &[comm.into(), Val::Int(i64::from(year))],
            )
        })?;
        let Some(r) = row else { return Ok(None) };
        let mut r = Cols::new(r);
        let enrollees = r.oi();
        let per_capita = Fen(r.i());
        let reserve_bp = r.i();
        let rule: SettlementRule = serde_json::from_str(&r.s())
            .map_err(|e| StoreError::Database(format!("结算规则数据损坏：{e}")))?;
        Ok(Some(BudgetConfig {
            comm: comm.to_string(),
            year,
            input: BudgetInput {
                enrollees,
                per_capita,
                reserve_bp,
                rule,
            },
            version: r.i(),
            updated_by: r.s(),
            updated_at: r.s(),
        }))
    }

    /// Sets a community's budget configuration for a year (checked first: a
    /// refused configuration changes nothing).
    pub fn ops_budget_put(
        &self,
        actor: &Actor,
        comm: &str,
        year: i32,
        input: &BudgetInput,
        expected: Option<i64>,
    ) -> Result<BudgetConfig, StoreError> {
        check_year(year)?;
        check_budget(input).map_err(invalid)?;
        let rule = json_text(&input.rule)?;
        self.ops_year_write(actor, comm, year, "ops-budget", "OpsBudget", |tx, now| {
            let current = tx
                .query_one(
                    &format!("SELECT version FROM ops_budget WHERE comm = ? AND yr = ?{}", for_update(tx)),
                    &[comm.into(), Val::Int(i64::from(year))],
                )?
                .and_then(|r| r.first().and_then(Val::as_int));
            let version = next_version(current, expected)?;
            tx.exec(
                "INSERT INTO ops_budget (comm, yr, enrollees, per_capita, reserve_bp, rule, version, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (comm, yr) DO UPDATE SET enrollees = excluded.enrollees, per_capita = excluded.per_capita, reserve_bp = excluded.reserve_bp,
                 rule = excluded.rule, version = excluded.version, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                &[comm.into(), Val::Int(i64::from(year)), input.enrollees.map(Val::Int).into(), Val::Int(input.per_capita.0), Val::Int(input.reserve_bp),
                  rule.as_str().into(), Val::Int(version), actor.user.as_str().into(), now.into()],
            )?;
            let reason = format!(
                "参保人数 {}，人均定额 {}，风险金 {} 基点",
                input.enrollees.map_or("按建档居民数".to_string(), |n| n.to_string()),
                input.per_capita,
                input.reserve_bp
            );
            Ok((version, reason))
        })?;
        written(self.ops_budget(comm, year)?, "预算配置")
    }

    /// The monthly spending charged to a community's package for months
    /// `1..=through` of `year`, from the live enrollee fund counters (inside
    /// the community, elsewhere in the county, out of county).
    pub fn ops_year_spending(
        &self,
        comm: &str,
        year: i32,
        through: u32,
    ) -> Result<YearSpending, StoreError> {
        let through = through.min(12);
        let comps: Vec<String> = [
            "enrollee_fund_inside",
            "enrollee_fund_county",
            "enrollee_fund_outside",
        ]
        .map(String::from)
        .to_vec();
        let monthly = if through == 0 {
            BTreeMap::new()
        } else {
            self.metric_monthly(
                &Subject::Community(comm.to_string()),
                &comps,
                &format!("{year:04}-01"),
                &format!("{year:04}-{through:02}"),
            )?
        };
        let months: Vec<MonthSpending> = (1..=through)
            .map(|m| {
                let got = monthly.get(&format!("{year:04}-{m:02}"));
                let v = |c: &str| Fen(got.and_then(|g| g.get(c)).copied().unwrap_or(0).max(0));
                MonthSpending {
                    month: m,
                    inside: v("enrollee_fund_inside"),
                    county: v("enrollee_fund_county"),
                    outside: v("enrollee_fund_outside"),
                }
            })
            .collect();
        YearSpending::new(year, &months).map_err(|e| invalid(e.to_string()))
    }
}

// ---------------------------------------------------------------------------
// Special funds
// ---------------------------------------------------------------------------

/// One line of a special fund's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FundEntry {
    pub seq: i64,
    /// `allocate` or `spend`.
    pub kind: String,
    pub purpose: String,
    pub name: String,
    pub amount: Fen,
    pub note: String,
    pub actor: String,
    pub at: String,
}

/// A special fund with its ledger replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FundState {
    pub comm: String,
    pub year: i32,
    pub fund: SpecialFund,
    pub entries: Vec<FundEntry>,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: String,
}

fn replay(total: Fen, entries: &[FundEntry]) -> Result<SpecialFund, StoreError> {
    let mut f = SpecialFund::new(total).map_err(|e| invalid(e.to_string()))?;
    for e in entries {
        let r = if e.kind == "allocate" {
            f.allocate(&e.purpose, &e.name, e.amount)
        } else {
            f.spend(&e.purpose, e.amount)
        };
        r.map_err(|e| invalid(e.to_string()))?;
    }
    Ok(f)
}

/// A fund row: total, version, who and when it was last changed, its ledger.
type FundRow = (Fen, i64, String, String, Vec<FundEntry>);

fn load_fund(
    tx: &mut dyn Sql,
    comm: &str,
    year: i32,
    lock: bool,
) -> Result<Option<FundRow>, StoreError> {
    let lock = if lock { for_update(tx) } else { "" };
    let Some(r) = tx.query_one(
        &format!("SELECT total, version, updated_by, updated_at FROM ops_fund WHERE comm = ? AND yr = ?{lock}"),
        &[comm.into(), Val::Int(i64::from(year))],
    )?
    else {
        return Ok(None);
    };
    let mut r = Cols::new(r);
    let (total, version, by, at) = (Fen(r.i()), r.i(), r.s(), r.s());
    let entries = tx
        .query(
            "SELECT seq, kind, purpose, name, amount, note, actor, at FROM ops_fund_entry WHERE comm = ? AND yr = ? ORDER BY seq",
            &[comm.into(), Val::Int(i64::from(year))],
        )?
        .into_iter()
        .map(|r| {
            let mut r = Cols::new(r);
            FundEntry {
                seq: r.i(),
                kind: r.s(),
                purpose: r.s(),
                name: r.s(),
                amount: Fen(r.i()),
                note: r.s(),
                actor: r.s(),
                at: r.s(),
            }
        })
        .collect();
    Ok(Some((total, version, by, at, entries)))
}

impl Store {
    pub fn ops_fund(&self, comm: &str, year: i32) -> Result<Option<FundState>, StoreError> {
        let Some((total, version, updated_by, updated_at, entries)) =
            self.db().read(|c| load_fund(c, comm, year, false))?
        else {
            return Ok(None);
        };
        Ok(Some(FundState {
            comm: comm.to_string(),
            year,
            fund: replay(total, &entries)?,
            entries,
            version,
            updated_by,
            updated_at,
        }))
    }

    /// Sets a special fund's total (never below what is already allocated).
    pub fn ops_fund_total(
        &self,
        actor: &Actor,
        comm: &str,
        year: i32,
        total: Fen,
        expected: Option<i64>,
    ) -> Result<FundState, StoreError> {
        check_year(year)?;
        if total.0 < 0 {
            return Err(invalid(format!("专项资金总额不能为负数（收到 {total}）")));
        }
        self.ops_year_write(actor, comm, year, "ops-fund-total", "OpsFund", |tx, now| {
            let current = load_fund(tx, comm, year, true)?;
            let version = next_version(current.as_ref().map(|c| c.1), expected)?;
            if let Some((_, _, _, _, entries)) = &current {
                let allocated = replay(Fen(i64::MAX), entries)?.allocated();
                if total < allocated {
                    return Err(invalid(format!(
                        "专项资金总额 {total} 不能低于已分配的 {allocated}"
                    )));
                }
            }
            tx.exec(
                "INSERT INTO ops_fund (comm, yr, total, version, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (comm, yr) DO UPDATE SET total = excluded.total, version = excluded.version, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                &[comm.into(), Val::Int(i64::from(year)), Val::Int(total.0), Val::Int(version), actor.user.as_str().into(), now.into()],
            )?;
            let reason = format!("专项资金总额 {total}");
            Ok((version, reason))
        })?;
        written(self.ops_fund(comm, year)?, "专项资金")
    }

    /// Allocates `amount` to a purpose (`kind = "allocate"`, refused beyond the
    /// unallocated total) or records spending on it (`kind = "spend"`, refused
    /// beyond what remains of its allocation).
    #[allow(clippy::too_many_arguments)]
    pub fn ops_fund_entry(
        &self,
        actor: &Actor,
        comm: &str,
        year: i32,
        kind: &str,
        purpose: &str,
        name: &str,
        amount: Fen,
        note: &str,
    ) -> Result<FundState, StoreError> {
        if kind != "allocate" && kind != "spend" {
            return Err(invalid(format!(
                "专项资金操作“{kind}”无效（只能是分配或支出）"
            )));
        }
        let purpose = purpose.trim();
        if purpose.chars().count() > 64 || name.chars().count() > 100 || note.chars().count() > 500
        {
            return Err(invalid(
                "用途编号最长 64 字，名称最长 100 字，说明最长 500 字",
            ));
        }
        self.ops_year_write(actor, comm, year, &format!("ops-fund-{kind}"), "OpsFund", |tx, now| {
            let Some((total, version, _, _, entries)) = load_fund(tx, comm, year, true)? else {
                return Err(StoreError::NotFound(format!("{year} 年尚未设置专项资金总额")));
            };
            let mut fund = replay(total, &entries)?;
            let name = if name.trim().is_empty() {
                fund.purposes()
                    .iter()
                    .find(|p| p.id == purpose)
                    .map_or(purpose.to_string(), |p| p.name.clone())
            } else {
                name.trim().to_string()
            };
            let r = if kind == "allocate" {
                fund.allocate(purpose, &name, amount)
            } else {
                fund.spend(purpose, amount)
            };
            r.map_err(|e| invalid(e.to_string()))?;
            tx.exec(
                "INSERT INTO ops_fund_entry (comm, yr, kind, purpose, name, amount, note, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[comm.into(), Val::Int(i64::from(year)), kind.into(), purpose.into(), name.as_str().into(), Val::Int(amount.0), note.into(),
                  actor.user.as_str().into(), now.into()],
            )?;
            tx.exec(
                "UPDATE ops_fund SET version = ?, updated_by = ?, updated_at = ? WHERE comm = ? AND yr = ?",
                &[Val::Int(version + 1), actor.user.as_str().into(), now.into(), comm.into(), Val::Int(i64::from(year))],
            )?;
            let what = if kind == "allocate" { "分配" } else { "支出" };
            let reason = format!("{what} {name} {amount}");
            Ok((version + 1, reason))
        })?;
        written(self.ops_fund(comm, year)?, "专项资金")
    }
}

// ---------------------------------------------------------------------------
// Escalation rules and steps
// ---------------------------------------------------------------------------

/// A stored (or shipped default) escalation rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRow {
    pub id: String,
    pub level: OrgLevel,
    pub rule: EscalationRule,
    pub active: bool,
    /// 0 for a shipped default not yet stored.
    pub version: i64,
    pub updated_by: String,
    pub updated_at: String,
}

#[derive(Deserialize)]
struct DefaultRule {
    id: String,
    subject_level: OrgLevel,
    rule: EscalationRule,
}

/// The rules in force until the operations centre changes them.
const DEFAULT_RULES: &str = r#"[
  {"id": "inpatient-in-county", "subject_level": "community",
   "rule": {"indicator": "inpatient_in_county_share", "target": 850, "direction": "higher_is_better",
            "notify_after": 1, "warn_after": 2, "summon_after": 3, "missing": "skip"}},
  {"id": "primary-visits", "subject_level": "community",
   "rule": {"indicator": "primary_visit_share", "target": 650, "direction": "higher_is_better",
            "notify_after": 1, "warn_after": 2, "summon_after": 3, "missing": "skip"}},
  {"id": "drug-share", "subject_level": "institution",
   "rule": {"indicator": "drug_share", "target": 400, "direction": "lower_is_better",
            "notify_after": 2, "warn_after": 3, "summon_after": 4, "missing": "skip"}}
]"#;

fn default_rules() -> Vec<RuleRow> {
    serde_json::from_str::<Vec<DefaultRule>>(DEFAULT_RULES)
        .unwrap_or_default()
        .into_iter()
        .map(|d| RuleRow {
            id: d.id,
            level: d.subject_level,
            rule: d.rule,
            active: true,
            version: 0,
            updated_by: String::new(),
            updated_at: String::new(),
        })
        .collect()
}

/// Checks a rule against the catalogue (Chinese message).
pub fn check_rule(id: &str, level: OrgLevel, rule: &EscalationRule) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("规则编号“{id}”不合规（1–64 个字母、数字、- 或 _）"));
    }
    rule.check().map_err(|e| e.to_string())?;
    let cat = crate::metrics::catalogue();
    let ind = cat
        .get(&rule.indicator)
        .ok_or_else(|| format!("预警规则的指标“{}”不在指标目录中", rule.indicator))?;
    if !ind.available {
        return Err(format!("指标“{}”暂无数据来源，不能设置预警", ind.name));
    }
    if ind.family().is_some() {
        return Err(format!("“{}”是排名类指标，不能设置预警", ind.name));
    }
    let lv = match level {
        OrgLevel::Community => indicators::Level::Community,
        OrgLevel::Institution => indicators::Level::Institution,
    };
    if !ind.levels.contains(&lv) {
        return Err(format!(
            "指标“{}”不在{}层级统计",
            ind.name,
            level.label_zh()
        ));
    }
    if ind.direction != rule.direction {
        return Err(format!(
            "预警方向须与指标“{}”的定义一致（{}）",
            ind.name,
            match ind.direction {
                yigong_metrics::Direction::HigherIsBetter => "越高越好",
                yigong_metrics::Direction::LowerIsBetter => "越低越好",
            }
        ));
    }
    if ind.is_proportion() {
        let (lo, hi) = ind.unit.range();
        if rule.target < lo || rule.target > hi {
            return Err(format!(
                "目标值 {} 超出单位范围 {lo}–{hi}（{}）",
                rule.target,
                match ind.unit {
                    Unit::Permille => "千分比，85% 写作 850",
                    Unit::Bp => "万分比，85% 写作 8500",
                    Unit::Count => "整数",
                }
            ));
        }
    }
    Ok(())
}

/// One recorded escalation step: who notified whom, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    pub seq: i64,
    pub rule_id: String,
    pub org: String,
    pub comm: Option<String>,
    pub level: Level,
    /// The month the level was reached.
    pub since: String,
    /// The month evaluated when the step was taken.
    pub period: String,
    /// Whom the step was addressed to.
    pub notified: String,
    pub note: String,
    pub actor: String,
    pub at: String,
}

/// A step to record.
#[derive(Debug, Clone)]
pub struct NewStep {
    pub rule_id: String,
    pub org: String,
    pub level: Level,
    pub since: String,
    pub period: String,
    pub notified: String,
    pub note: String,
}

pub fn level_code(l: Level) -> &'static str {
    match l {
        Level::Notify => "notify",
        Level::Warn => "warn",
        Level::Summon => "summon",
    }
}

pub fn level_from_code(s: &str) -> Option<Level> {
    match s {
        "notify" => Some(Level::Notify),
        "warn" => Some(Level::Warn),
        "summon" => Some(Level::Summon),
        _ => None,
    }
}

fn step_row(r: Vec<Val>) -> Option<StepRow> {
    let mut r = Cols::new(r);
    Some(StepRow {
        seq: r.i(),
        rule_id: r.s(),
        org: r.s(),
        comm: r.os(),
        level: level_from_code(&r.s())?,
        since: r.s(),
        period: r.s(),
        notified: r.s(),
        note: r.s(),
        actor: r.s(),
        at: r.s(),
    })
}

impl Store {
    /// The escalation rules: the stored ones, and the shipped defaults not
    /// yet stored (version 0), ordered by id.
    pub fn ops_rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        let stored = self.db().read(|c| {
            c.query(
                "SELECT id, subject_level, body, active, version, updated_by, updated_at FROM ops_rule ORDER BY id",
                &[],
            )
        })?;
        let mut out: Vec<RuleRow> = stored
            .into_iter()
            .filter_map(|r| {
                let mut r = Cols::new(r);
                let id = r.s();
                let level = OrgLevel::from_code(&r.s())?;
                let rule = serde_json::from_str(&r.s()).ok()?;
                Some(RuleRow {
                    id,
                    level,
                    rule,
                    active: r.i() != 0,
                    version: r.i(),
                    updated_by: r.s(),
                    updated_at: r.s(),
                })
            })
            .collect();
        for d in default_rules() {
            if !out.iter().any(|r| r.id == d.id) {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Creates or changes a rule (county scope; checked against the catalogue
    /// first). A shipped default not yet stored has version 0.
    pub fn ops_rule_put(
        &self,
        actor: &Actor,
        id: &str,
        level: OrgLevel,
        rule: &EscalationRule,
        active: bool,
        expected: Option<i64>,
    ) -> Result<RuleRow, StoreError> {
        county_only(actor, "修改预警规则")?;
        check_rule(id, level, rule).map_err(invalid)?;
        let body = json_text(rule)?;
        let now = now_string();
        self.db().write(|tx| {
            let current = tx
                .query_one(
                    &format!("SELECT version FROM ops_rule WHERE id = ?{}", for_update(tx)),
                    &[id.into()],
                )?
                .and_then(|r| r.first().and_then(Val::as_int));
            let version = next_version(current, expected)?;
            tx.exec(
                "INSERT INTO ops_rule (id, subject_level, body, active, version, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET subject_level = excluded.subject_level, body = excluded.body, active = excluded.active,
                 version = excluded.version, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                &[id.into(), level.code().into(), body.as_str().into(), Val::Int(i64::from(active)), Val::Int(version), actor.user.as_str().into(), now.as_str().into()],
            )?;
            let reason = format!(
                "{} 目标 {}，连续 {}/{}/{} 期通报/预警/约谈{}",
                rule.indicator,
                rule.target,
                rule.notify_after,
                rule.warn_after,
                rule.summon_after,
                if active { "" } else { "（停用）" }
            );
            AuditRow::by(actor, &now, "ops-rule")
                .on("OpsRule", id)
                .version(version)
                .reason(Some(&reason))
                .append(tx)
        })?;
        self.ops_rules()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| StoreError::Database("规则写入后未找到".into()))
    }

    /// Records an escalation step taken (once per rule, organisation, level
    /// and the month the level was reached). The organisation must be in the
    /// actor's scope.
    pub fn ops_step_record(&self, actor: &Actor, s: &NewStep) -> Result<StepRow, StoreError> {
        if !self.ops_rules()?.iter().any(|r| r.id == s.rule_id) {
            return Err(StoreError::NotFound(format!(
                "预警规则 {} 不存在",
                s.rule_id
            )));
        }
        for (what, m) in [("达到该级别的月份", &s.since), ("评估月份", &s.period)] {
            if !indicators::is_month(m) {
                return Err(invalid(format!("{what}“{m}”格式错误（应为 YYYY-MM）")));
            }
        }
        if s.notified.trim().is_empty() {
            return Err(invalid("请填写通报、预警或约谈的对象"));
        }
        if s.notified.chars().count() > 200 || s.note.chars().count() > 2000 {
            return Err(invalid("对象最长 200 字，说明最长 2000 字"));
        }
        let now = now_string();
        let seq = self.db().write(|tx| {
            let Some(mut r) = tx
                .query_one("SELECT name, comm FROM org_tree WHERE id = ?", &[s.org.as_str().into()])?
                .map(Cols::new)
            else {
                return Err(StoreError::NotFound(format!("机构 {} 不存在", s.org)));
            };
            let name = r.s();
            let comm = r.os();
            let ok = match &actor.scope {
                Scope::County => true,
                Scope::Community(c) => comm.as_deref() == Some(c),
                Scope::Institution(i) => *i == s.org,
            };
            if !ok {
                return Err(StoreError::Forbidden(format!("“{name}”不在您的管辖范围内")));
            }
            let dup = tx.scalar_int(
                "SELECT count(*) FROM ops_step WHERE rule_id = ? AND org = ? AND step_level = ? AND since = ?",
                &[s.rule_id.as_str().into(), s.org.as_str().into(), level_code(s.level).into(), s.since.as_str().into()],
            )?;
            if dup > 0 {
                return Err(StoreError::Conflict(format!(
                    "“{name}”自 {} 起的{}已经记录过",
                    s.since,
                    s.level.name_zh()
                )));
            }
            tx.exec(
                "INSERT INTO ops_step (rule_id, org, comm, step_level, since, period, notified, note, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[s.rule_id.as_str().into(), s.org.as_str().into(), comm.clone().into(), level_code(s.level).into(), s.since.as_str().into(),
                  s.period.as_str().into(), s.notified.trim().into(), s.note.as_str().into(), actor.user.as_str().into(), now.as_str().into()],
            )?;
            let seq = tx.scalar_int(
                "SELECT max(seq) FROM ops_step WHERE rule_id = ? AND org = ? AND step_level = ? AND since = ?",
                &[s.rule_id.as_str().into(), s.org.as_str().into(), level_code(s.level).into(), s.since.as_str().into()],
            )?;
            let rid = format!("{}/{}", s.rule_id, s.org);
            let reason = format!("{}：{}（自 {} 起）", s.level.name_zh(), s.notified.trim(), s.since);
            AuditRow::by(actor, &now, "ops-escalation-step")
                .on("OpsEscalationStep", &rid)
                .reason(Some(&reason))
                .append(tx)?;
            Ok(seq)
        })?;
        self.ops_steps(&Scope::County, 100_000)?
            .into_iter()
            .find(|r| r.seq == seq)
            .ok_or_else(|| StoreError::Database("记录写入后未找到".into()))
    }

    /// Recorded steps within a scope, newest first.
    pub fn ops_steps(&self, scope: &Scope, limit: i64) -> Result<Vec<StepRow>, StoreError> {
        let cols = "seq, rule_id, org, comm, step_level, since, period, notified, note, actor, at";
        self.db().read(|c| {
            let rows = match scope {
                Scope::County => c.query(
                    &format!("SELECT {cols} FROM ops_step ORDER BY seq DESC LIMIT ?"),
                    &[Val::Int(limit)],
                )?,
                Scope::Community(cm) => c.query(
                    &format!("SELECT {cols} FROM ops_step WHERE comm = ? OR org = ? ORDER BY seq DESC LIMIT ?"),
                    &[cm.as_str().into(), cm.as_str().into(), Val::Int(limit)],
                )?,
                Scope::Institution(i) => c.query(
                    &format!("SELECT {cols} FROM ops_step WHERE org = ? ORDER BY seq DESC LIMIT ?"),
                    &[i.as_str().into(), Val::Int(limit)],
                )?,
            };
            Ok(rows.into_iter().filter_map(step_row).collect())
        })
    }
}

// ---------------------------------------------------------------------------
// Assessment cycles
// ---------------------------------------------------------------------------

pub fn step_code(s: Step) -> &'static str {
    match s {
        Step::SelfEvaluation => "self_evaluation",
        Step::Assessment => "assessment",
        Step::Result => "result",
        Step::Feedback => "feedback",
        Step::Closed => "closed",
    }
}

pub fn step_from_code(s: &str) -> Option<Step> {
    [
        Step::SelfEvaluation,
        Step::Assessment,
        Step::Result,
        Step::Feedback,
        Step::Closed,
    ]
    .into_iter()
    .find(|x| step_code(*x) == s)
}

/// One recorded transition of a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleStep {
    pub seq: i64,
    pub from: Step,
    pub to: Step,
    pub on: NaiveDate,
    pub late_days: i64,
    pub note: String,
    pub actor: String,
    pub at: String,
}

/// A community's assessment cycle for a year, replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleRow {
    pub comm: String,
    pub year: i32,
    pub days: StepDays,
    pub cycle: Cycle,
    pub steps: Vec<CycleStep>,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: String,
}

fn load_cycle(
    tx: &mut dyn Sql,
    comm: &str,
    year: i32,
    lock: bool,
) -> Result<Option<CycleRow>, StoreError> {
    let lock = if lock { for_update(tx) } else { "" };
    let Some(r) = tx.query_one(
        &format!("SELECT start_date, days, version, updated_by, updated_at FROM ops_cycle WHERE comm = ? AND yr = ?{lock}"),
        &[comm.into(), Val::Int(i64::from(year))],
    )?
    else {
        return Ok(None);
    };
    let mut r = Cols::new(r);
    let bad = |e: String| StoreError::Database(format!("考核周期数据损坏：{e}"));
    let start = NaiveDate::parse_from_str(&r.s(), "%Y-%m-%d").map_err(|e| bad(e.to_string()))?;
    let days: StepDays = serde_json::from_str(&r.s()).map_err(|e| bad(e.to_string()))?;
    let (version, updated_by, updated_at) = (r.i(), r.s(), r.s());
    let mut cycle = Cycle::new(start, days).map_err(|e| bad(e.to_string()))?;
    let mut steps = Vec::new();
    for r in tx.query(
        "SELECT seq, from_step, to_step, on_date, late_days, note, actor, at FROM ops_cycle_step WHERE comm = ? AND yr = ? ORDER BY seq",
        &[comm.into(), Val::Int(i64::from(year))],
    )? {
        let mut r = Cols::new(r);
        let seq = r.i();
        let from = step_from_code(&r.s()).ok_or_else(|| bad("环节".into()))?;
        let to = step_from_code(&r.s()).ok_or_else(|| bad("环节".into()))?;
        let on = NaiveDate::parse_from_str(&r.s(), "%Y-%m-%d").map_err(|e| bad(e.to_string()))?;
        cycle.advance(to, on).map_err(|e| bad(e.to_string()))?;
        steps.push(CycleStep {
            seq,
            from,
            to,
            on,
            late_days: r.i(),
            note: r.s(),
            actor: r.s(),
            at: r.s(),
        });
    }
    Ok(Some(CycleRow {
        comm: comm.to_string(),
        year,
        days,
        cycle,
        steps,
        version,
        updated_by,
        updated_at,
    }))
}

impl Store {
    pub fn ops_cycle(&self, comm: &str, year: i32) -> Result<Option<CycleRow>, StoreError> {
        self.db().read(|c| load_cycle(c, comm, year, false))
    }

    /// The cycles of a year for the communities in a scope.
    pub fn ops_cycles(&self, scope: &Scope, year: i32) -> Result<Vec<CycleRow>, StoreError> {
        let comms: Vec<String> = self.db().read(|c| {
            Ok(c.query(
                "SELECT comm FROM ops_cycle WHERE yr = ? ORDER BY comm",
                &[Val::Int(i64::from(year))],
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next().and_then(Val::into_string))
            .collect())
        })?;
        let mut out = Vec::new();
        for comm in comms {
            let visible = match scope {
                Scope::County => true,
                Scope::Community(c) => *c == comm,
                Scope::Institution(_) => false,
            };
            if visible && let Some(c) = self.ops_cycle(&comm, year)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Plans (or re-plans, before its first transition) a community's cycle.
    pub fn ops_cycle_plan(
        &self,
        actor: &Actor,
        comm: &str,
        year: i32,
        start: NaiveDate,
        days: StepDays,
        expected: Option<i64>,
    ) -> Result<CycleRow, StoreError> {
        check_year(year)?;
        Cycle::new(start, days).map_err(|e| invalid(e.to_string()))?;
        let days_json = json_text(&days)?;
        self.ops_year_write(actor, comm, year, "ops-cycle-plan", "OpsCycle", |tx, now| {
            let current = load_cycle(tx, comm, year, true)?;
            if current.as_ref().is_some_and(|c| !c.steps.is_empty()) {
                return Err(invalid("考核周期已进入后续环节，不能重新排期"));
            }
            let version = next_version(current.as_ref().map(|c| c.version), expected)?;
            tx.exec(
                "INSERT INTO ops_cycle (comm, yr, start_date, days, version, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (comm, yr) DO UPDATE SET start_date = excluded.start_date, days = excluded.days, version = excluded.version,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                &[comm.into(), Val::Int(i64::from(year)), start.to_string().into(), days_json.as_str().into(), Val::Int(version),
                  actor.user.as_str().into(), now.into()],
            )?;
            let reason = format!(
                "{start} 开始：自评 {} 天，考核 {} 天，结果评定 {} 天，反馈改进 {} 天",
                days.self_evaluation, days.assessment, days.result, days.feedback
            );
            Ok((version, reason))
        })?;
        written(self.ops_cycle(comm, year)?, "考核周期")
    }

    /// Moves a cycle to its next step on `on` (the only legal next step; a
    /// late transition records its days late).
    #[allow(clippy::too_many_arguments)]
    pub fn ops_cycle_advance(
        &self,
        actor: &Actor,
        comm: &str,
        year: i32,
        to: Step,
        on: NaiveDate,
        note: &str,
        expected: i64,
    ) -> Result<CycleRow, StoreError> {
        if note.chars().count() > 2000 {
            return Err(invalid("说明最长 2000 字"));
        }
        self.ops_year_write(actor, comm, year, "ops-cycle-step", "OpsCycle", |tx, now| {
            let Some(mut c) = load_cycle(tx, comm, year, true)? else {
                return Err(StoreError::NotFound(format!("{year} 年的考核周期尚未排期")));
            };
            let version = next_version(Some(c.version), Some(expected))?;
            let from = c.cycle.step();
            let t = c.cycle.advance(to, on).map_err(|e| invalid(e.to_string()))?.clone();
            tx.exec(
                "INSERT INTO ops_cycle_step (comm, yr, from_step, to_step, on_date, late_days, note, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[comm.into(), Val::Int(i64::from(year)), step_code(from).into(), step_code(to).into(), on.to_string().into(),
                  Val::Int(t.late_days), note.into(), actor.user.as_str().into(), now.into()],
            )?;
            tx.exec(
                "UPDATE ops_cycle SET version = ?, updated_by = ?, updated_at = ? WHERE comm = ? AND yr = ?",
                &[Val::Int(version), actor.user.as_str().into(), now.into(), comm.into(), Val::Int(i64::from(year))],
            )?;
            let reason = format!(
                "{} → {}（{on}{}）",
                from.name_zh(),
                to.name_zh(),
                if t.late_days > 0 { format!("，逾期 {} 天", t.late_days) } else { String::new() }
            );
            Ok((version, reason))
        })?;
        written(self.ops_cycle(comm, year)?, "考核周期")
    }
}
