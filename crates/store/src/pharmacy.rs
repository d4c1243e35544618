//! The central pharmacy (中心药房): stock by batch and expiry per institution,
//! requisitions and transfers, split-package dispensing, shortages and
//! volume-based procurement progress.
//!
//! Stock is held per (institution, drug, batch number, expiry, unit cost) in
//! `ph_batch`, in dispensing units (拆零单位); every movement appends a row to
//! the stock ledger `ph_ledger` in the same transaction as the change and its
//! audit row. Units always leave first-expiry-first-out (FEFO) from unexpired
//! batches; an expired batch is never dispensed or shipped and waits to be
//! written off. Within a batch the open package is used up before another is
//! broken, so the units of the open (split) package are always `qty % package`,
//! and breaking a package for a quantity that is not a whole number of packages
//! is recorded as a `split-open` row.
//!
//! A primary institution (township centre, village clinic) requests drugs
//! from its community's central pharmacy (the lead hospital); the requisition
//! moves requested → approved | rejected → shipped → received, each step
//! version-checked, taken by the right side and audited. Shipping takes the
//! approved units FEFO out of the central pharmacy into transit; receiving
//! books them into the requester's stock batch by batch.

use crate::db::{Dialect, Sql, Val};
use crate::{Actor, AuditRow, Scope, Store, StoreError};
use chrono::{Datelike, NaiveDate};
use std::collections::{BTreeMap, HashMap, HashSet};
use yigong_core::{Fen, Tier};
use yigong_rx::{Drug, Knowledge};

/// A batch expiring within this many days is flagged as near expiry (近效期).
pub const NEAR_EXPIRY_DAYS: i64 = 90;
/// Upper bound of any quantity in one request, receipt or dispense.
const MAX_UNITS: i64 = 10_000_000;
/// Upper bound of a unit cost (¥100,000 per dispensing unit).
const MAX_COST_FEN: i64 = 10_000_000;
/// Lines of one requisition.
const MAX_LINES: usize = 50;
/// Free text (notes, reasons, batch numbers).
const MAX_TEXT: usize = 200;

/// One line of a dispense (or of a requisition): a formulary code and a
/// quantity in dispensing units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispenseLine {
    pub drug: String,
    pub units: i64,
}

/// A quantity received: whole packages or dispensing units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qty {
    Packages(i64),
    Units(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryStatus {
    Ok,
    /// Expires within [`NEAR_EXPIRY_DAYS`].
    Near,
    /// Past its expiry date: never dispensed, to be written off.
    Expired,
}

impl ExpiryStatus {
    pub fn code(self) -> &'static str {
        match self {
            ExpiryStatus::Ok => "ok",
            ExpiryStatus::Near => "near",
            ExpiryStatus::Expired => "expired",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            ExpiryStatus::Ok => "",
            ExpiryStatus::Near => "近效期",
            ExpiryStatus::Expired => "已过期",
        }
    }
}

/// One batch on hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    pub id: i64,
    pub drug: String,
    pub lot: String,
    /// Usable through this date (YYYY-MM-DD).
    pub expiry: String,
    pub qty: i64,
    pub unit_cost_fen: i64,
    pub received: String,
    pub version: i64,
    pub status: ExpiryStatus,
    /// Days from the reference date to expiry (negative once expired).
    pub days_left: i64,
    /// Units left in the opened (split) package, 0 when none is open.
    pub open_units: i64,
}

/// The stock of one drug at one institution.
#[derive(Debug, Clone, PartialEq)]
pub struct StockLine {
    pub drug: String,
    pub name: String,
    pub generic: String,
    pub form: String,
    pub unit: String,
    pub package: i64,
    pub package_unit: String,
    pub splittable: bool,
    pub vbp: bool,
    /// Units in unexpired batches.
    pub usable: i64,
    /// Units in expired batches (to be written off).
    pub expired: i64,
    /// Units in batches expiring within [`NEAR_EXPIRY_DAYS`].
    pub near: i64,
    /// Opened (split) packages and the units left in them.
    pub open_packages: i64,
    pub open_units: i64,
    /// Value of the usable stock at cost, fen.
    pub value_fen: i64,
    /// The institution's minimum stock for this drug, if set.
    pub min: Option<i64>,
    /// Usable stock below the minimum.
    pub low: bool,
    /// Batches with stock, first expiry first.
    pub batches: Vec<BatchInfo>,
}

/// One row of the stock ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub seq: i64,
    pub at: String,
    pub inst: String,
    pub drug: String,
    pub batch: Option<i64>,
    /// receive | transfer-out | transfer-in | dispense | split-open | adjust | expire-writeoff
    pub kind: String,
    /// Signed change of stock in units (0 for split-open).
    pub units: i64,
    /// Signed value of the change at cost, fen.
    pub cost_fen: i64,
    pub reference: Option<String>,
    pub actor: String,
    pub note: Option<String>,
}

/// Label of a ledger movement kind.
pub fn movement_label(kind: &str) -> &'static str {
    match kind {
        "receive" => "入库",
        "transfer-out" => "调拨出库",
        "transfer-in" => "调拨入库",
        "dispense" => "发药",
        "split-open" => "拆零",
        "adjust" => "盘点调整",
        "expire-writeoff" => "过期报损",
        _ => "其他",
    }
}

/// States of a requisition (请领单).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReqState {
    Requested,
    Approved,
    Rejected,
    Shipped,
    Received,
}

impl ReqState {
    pub const ALL: [ReqState; 5] = [
        ReqState::Requested,
        ReqState::Approved,
        ReqState::Rejected,
        ReqState::Shipped,
        ReqState::Received,
    ];
    pub fn code(self) -> &'static str {
        match self {
            ReqState::Requested => "requested",
            ReqState::Approved => "approved",
            ReqState::Rejected => "rejected",
            ReqState::Shipped => "shipped",
            ReqState::Received => "received",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            ReqState::Requested => "待审批",
            ReqState::Approved => "已批准",
            ReqState::Rejected => "已驳回",
            ReqState::Shipped => "已发货",
            ReqState::Received => "已收货",
        }
    }
    pub fn from_code(s: &str) -> Option<ReqState> {
        ReqState::ALL.into_iter().find(|x| x.code() == s)
    }
    /// Whether `self → to` is a step of the flow.
    pub fn can_go(self, to: ReqState) -> bool {
        matches!(
            (self, to),
            (ReqState::Requested, ReqState::Approved)
                | (ReqState::Requested, ReqState::Rejected)
                | (ReqState::Approved, ReqState::Shipped)
                | (ReqState::Shipped, ReqState::Received)
        )
    }
    /// Whether the step to this state is taken by the central pharmacy (else by the requester).
    pub fn by_central(self) -> bool {
        matches!(
            self,
            ReqState::Approved | ReqState::Rejected | ReqState::Shipped
        )
    }
    /// Still waiting for someone.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ReqState::Requested | ReqState::Approved | ReqState::Shipped
        )
    }
    fn verb(self) -> &'static str {
        match self {
            ReqState::Requested => "提交",
            ReqState::Approved => "批准",
            ReqState::Rejected => "驳回",
            ReqState::Shipped => "发货",
            ReqState::Received => "确认收货",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqLine {
    pub line: i64,
    pub drug: String,
    pub requested: i64,
    pub approved: Option<i64>,
    pub shipped: Option<i64>,
}

/// What a shipment took from the central pharmacy, batch by batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub line: i64,
    pub drug: String,
    pub lot: String,
    pub expiry: String,
    pub units: i64,
    pub unit_cost_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requisition {
    pub id: i64,
    /// The requesting institution.
    pub inst: String,
    /// The central pharmacy (the community's lead hospital).
    pub central: String,
    pub comm: String,
    pub state: ReqState,
    pub note: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub created: String,
    pub created_by: String,
    pub decided: Option<String>,
    pub decided_by: Option<String>,
    pub shipped: Option<String>,
    pub shipped_by: Option<String>,
    pub received: Option<String>,
    pub received_by: Option<String>,
    pub version: i64,
    pub lines: Vec<ReqLine>,
    pub shipments: Vec<Shipment>,
}

impl Requisition {
    /// Value of what was shipped, at cost.
    pub fn shipped_value_fen(&self) -> i64 {
        self.shipments
            .iter()
            .map(|s| s.units * s.unit_cost_fen)
            .sum()
    }
}

/// Which requisitions of an institution to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqSide {
    /// Those it sent.
    Requester,
    /// Those addressed to it as central pharmacy.
    Central,
    Either,
}

#[derive(Debug, Clone)]
pub struct ReqFilter {
    /// None: everything in the reader's scope.
    pub inst: Option<String>,
    pub side: ReqSide,
    pub state: Option<ReqState>,
    pub limit: i64,
}

/// A registered shortage (缺药登记).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub id: i64,
    pub inst: String,
    pub comm: Option<String>,
    pub drug: String,
    /// manual | low-stock
    pub source: String,
    pub note: Option<String>,
    pub at: String,
    pub by: String,
    pub resolved: Option<String>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
    pub version: i64,
}

/// Volume-based procurement progress of one drug.
#[derive(Debug, Clone, PartialEq)]
pub struct VbpRow {
    pub drug: String,
    pub name: String,
    pub unit: String,
    /// e.g. "第七批".
    pub vbp_batch: String,
    /// Agreed yearly volume in units, if any.
    pub target: Option<i64>,
    /// "set" (stored for this community or institution), "formulary" (the
    /// formulary's default for a community) or "none".
    pub target_source: &'static str,
    /// Units dispensed this year.
    pub used: i64,
    /// used / target in percent.
    pub percent: Option<f64>,
    /// Units that should have been used by now at an even pace.
    pub expected: Option<i64>,
    /// used ≥ the share of the year elapsed.
    pub on_track: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VbpProgress {
    pub owner: String,
    pub owner_name: String,
    pub is_community: bool,
    pub year: i32,
    pub as_of: NaiveDate,
    /// Days of the year elapsed (including `as_of`) and days in the year.
    pub elapsed_days: i64,
    pub year_days: i64,
    pub rows: Vec<VbpRow>,
}

impl VbpProgress {
    pub fn elapsed_percent(&self) -> f64 {
        100.0 * self.elapsed_days as f64 / self.year_days as f64
    }
}

// ---------- helpers ----------

struct Cols(std::vec::IntoIter<Val>);

impl Cols {
    fn new(r: Vec<Val>) -> Cols {
        Cols(r.into_iter())
    }
    fn s(&mut self) -> String {
        self.o().unwrap_or_default()
    }
    fn o(&mut self) -> Option<String> {
        self.0.next().and_then(Val::into_string)
    }
    fn i(&mut self) -> i64 {
        self.oi().unwrap_or(0)
    }
    fn oi(&mut self) -> Option<i64> {
        self.0.next().and_then(|v| v.as_int())
    }
}

fn for_update(tx: &dyn Sql) -> &'static str {
    if tx.dialect() == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// An institution of the organisation tree.
#[derive(Debug, Clone)]
struct Org {
    id: String,
    name: String,
    kind: Option<String>,
    tier: Option<Tier>,
    comm: Option<String>,
    lead: bool,
}

fn find_org(tx: &mut dyn Sql, id: &str) -> Result<Option<Org>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT id, name, kind, tier, comm, lead, inst FROM org_tree WHERE id = ?",
            &[id.into()],
        )?
        .map(|r| {
            let mut c = Cols::new(r);
            let org = Org {
                id: c.s(),
                name: c.s(),
                kind: c.o(),
                tier: c.o().as_deref().and_then(Tier::from_code),
                comm: c.o(),
                lead: c.i() == 1,
            };
            (org, c.o())
        })
        .and_then(|(org, inst)| (inst.as_deref() == Some(org.id.as_str())).then_some(org)))
}

fn inst_org(tx: &mut dyn Sql, id: &str) -> Result<Org, StoreError> {
    find_org(tx, id)?.ok_or_else(|| StoreError::Invalid(format!("机构 {id} 不在机构目录中")))
}

/// The central pharmacy of a community: its lead hospital.
fn central_of(tx: &mut dyn Sql, comm: &str) -> Result<Option<String>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT id FROM org_tree WHERE comm = ? AND lead = 1 AND inst = id ORDER BY id LIMIT 1",
            &[comm.into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(Val::into_string))
}

/// The actor works at this institution (or, without one of their own, has it in scope).
fn acting_for(actor: &Actor, org: &Org) -> bool {
    match &actor.institution {
        Some(a) => *a == org.id,
        None => actor
            .scope
            .allows(Some(&org.id), org.comm.as_deref(), None, None),
    }
}

fn require_acting(actor: &Actor, org: &Org, what: &str) -> Result<(), StoreError> {
    if acting_for(actor, org) {
        Ok(())
    } else {
        Err(StoreError::Forbidden(format!(
            "只有{}的人员可以{what}",
            org.name
        )))
    }
}

/// The actor acts for the institution itself or for its community's central pharmacy.
fn require_member_or_central(
    tx: &mut dyn Sql,
    actor: &Actor,
    org: &Org,
    what: &str,
) -> Result<(), StoreError> {
    if acting_for(actor, org) {
        return Ok(());
    }
    if let (Some(a), Some(comm)) = (&actor.institution, &org.comm)
        && central_of(tx, comm)?.as_deref() == Some(a.as_str())
    {
        return Ok(());
    }
    Err(StoreError::Forbidden(format!(
        "只有{}或本医共体中心药房的人员可以{what}",
        org.name
    )))
}

fn scope_allows(scope: &Scope, inst: &str, comm: Option<&str>) -> bool {
    scope.allows(Some(inst), comm, None, None)
}

fn drug<'k>(k: &'k Knowledge, code: &str) -> Result<&'k Drug, StoreError> {
    k.drug(code)
        .ok_or_else(|| StoreError::Invalid(format!("药品 {code} 不在统一用药目录中")))
}

fn package(d: &Drug) -> i64 {
    (d.package as i64).max(1)
}

/// "每盒24片".
fn package_text(d: &Drug) -> String {
    format!("每{}{}{}", d.package_unit, d.package, d.unit)
}

fn clean_text(s: Option<&str>, what: &str) -> Result<Option<String>, StoreError> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if s.chars().count() > MAX_TEXT {
        return Err(StoreError::Invalid(format!(
            "{what}不能超过 {MAX_TEXT} 个字"
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(StoreError::Invalid(format!("{what}含有非法字符")));
    }
    Ok(Some(s.to_string()))
}

/// The local (Asia/Shanghai, UTC+8) date of a stored time.
pub fn local_date(at: &str) -> Result<NaiveDate, StoreError> {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| (t.with_timezone(&chrono::Utc) + chrono::Duration::hours(8)).date_naive())
        .map_err(|_| StoreError::Invalid(format!("时间格式错误:{at}")))
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn expiry_status(expiry: &str, today: NaiveDate) -> (ExpiryStatus, i64) {
    let Ok(e) = NaiveDate::parse_from_str(expiry, "%Y-%m-%d") else {
        return (ExpiryStatus::Expired, -1);
    };
    let days = (e - today).num_days();
    let status = if days < 0 {
        ExpiryStatus::Expired
    } else if days <= NEAR_EXPIRY_DAYS {
        ExpiryStatus::Near
    } else {
        ExpiryStatus::Ok
    };
    (status, days)
}

/// A stock ledger row.
struct Move<'a> {
    at: &'a str,
    inst: &'a str,
    drug: &'a str,
    batch: Option<i64>,
    kind: &'a str,
    units: i64,
    cost: i64,
    reference: Option<&'a str>,
    actor: &'a str,
    note: Option<&'a str>,
}

fn ledger(tx: &mut dyn Sql, m: &Move<'_>) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO ph_ledger (at, inst, drug, batch, kind, units, cost, ref, actor, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[m.at.into(), m.inst.into(), m.drug.into(), m.batch.map(Val::Int).into(), m.kind.into(), Val::Int(m.units), Val::Int(m.cost), m.reference.into(), m.actor.into(), m.note.into()],
    )?;
    Ok(())
}

/// A batch row as the planner sees it.
#[derive(Debug, Clone)]
struct BatchRow {
    id: i64,
    lot: String,
    expiry: String,
    qty: i64,
    unit_cost: i64,
}

/// Unexpired batches with stock, first expiry first (locked on PostgreSQL).
fn usable_batches(
    tx: &mut dyn Sql,
    inst: &str,
    drug: &str,
    today: NaiveDate,
) -> Result<Vec<BatchRow>, StoreError> {
    let sql = format!(
        "SELECT id, lot, expiry, qty, unit_cost FROM ph_batch WHERE inst = ? AND drug = ? AND qty > 0 AND expiry >= ? ORDER BY expiry, id{}",
        for_update(tx)
    );
    Ok(tx
        .query(&sql, &[inst.into(), drug.into(), ymd(today).into()])?
        .into_iter()
        .map(|r| {
            let mut c = Cols::new(r);
            BatchRow {
                id: c.i(),
                lot: c.s(),
                expiry: c.s(),
                qty: c.i(),
                unit_cost: c.i(),
            }
        })
        .collect())
}

/// Units taken from one batch.
#[derive(Debug, Clone)]
struct Take {
    batch: i64,
    lot: String,
    expiry: String,
    units: i64,
    unit_cost: i64,
    /// A new package is broken to take these units.
    opened: bool,
}

/// Plans taking `units` FEFO; Err(available) when there are not enough.
/// A drug that may not be split is taken in whole packages only.
fn plan_fefo(d: &Drug, batches: &[BatchRow], units: i64) -> Result<Vec<Take>, i64> {
    let p = package(d);
    let takeable = |b: &BatchRow| {
        if d.splittable {
            b.qty
        } else {
            b.qty - b.qty % p
        }
    };
    let available: i64 = batches.iter().map(takeable).sum();
    if available < units {
        return Err(available);
    }
    let mut left = units;
    let mut out = vec![];
    for b in batches {
        if left == 0 {
            break;
        }
        let t = left.min(takeable(b));
        if t == 0 {
            continue;
        }
        // The open package (qty % p units) goes first; another is broken when
        // more than those are taken and what remains is not whole packages.
        let opened = p > 1 && t > b.qty % p && (b.qty - t) % p != 0;
        out.push(Take {
            batch: b.id,
            lot: b.lot.clone(),
            expiry: b.expiry.clone(),
            units: t,
            unit_cost: b.unit_cost,
            opened,
        });
        left -= t;
    }
    Ok(out)
}

fn shortage_message(d: &Drug, need: i64, available: i64) -> StoreError {
    StoreError::Conflict(format!(
        "库存不足:{} 需要 {need}{},可用 {available}{}",
        d.name, d.unit, d.unit
    ))
}

/// Applies a plan: stock leaves the batches, with split-open and movement rows.
/// Returns the value taken at cost (fen).
#[allow(clippy::too_many_arguments)]
fn apply_take(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    inst: &str,
    d: &Drug,
    plan: &[Take],
    kind: &str,
    reference: Option<&str>,
) -> Result<i64, StoreError> {
    let mut total = 0;
    for t in plan {
        let n = tx.exec(
            "UPDATE ph_batch SET qty = qty - ?, version = version + 1 WHERE id = ? AND qty >= ?",
            &[Val::Int(t.units), Val::Int(t.batch), Val::Int(t.units)],
        )?;
        if n != 1 {
            return Err(StoreError::Conflict("库存刚刚发生变化,请刷新后重试".into()));
        }
        if t.opened {
            let note = format!(
                "拆开1{}({}{}),批号 {}",
                d.package_unit, d.package, d.unit, t.lot
            );
            ledger(
                tx,
                &Move {
                    at,
                    inst,
                    drug: &d.code,
                    batch: Some(t.batch),
                    kind: "split-open",
                    units: 0,
                    cost: 0,
                    reference,
                    actor: &actor.user,
                    note: Some(&note),
                },
            )?;
        }
        let cost = t.units * t.unit_cost;
        ledger(
            tx,
            &Move {
                at,
                inst,
                drug: &d.code,
                batch: Some(t.batch),
                kind,
                units: -t.units,
                cost: -cost,
                reference,
                actor: &actor.user,
                note: None,
            },
        )?;
        total += cost;
    }
    Ok(total)
}

fn usable_units(
    tx: &mut dyn Sql,
    inst: &str,
    drug: &str,
    today: NaiveDate,
) -> Result<i64, StoreError> {
    tx.scalar_int(
        "SELECT COALESCE(SUM(qty), 0) FROM ph_batch WHERE inst = ? AND drug = ? AND qty > 0 AND expiry >= ?",
        &[inst.into(), drug.into(), ymd(today).into()],
    )
}

/// After stock left an institution: below its minimum → an open low-stock shortage.
fn check_low(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    org: &Org,
    d: &Drug,
    today: NaiveDate,
) -> Result<(), StoreError> {
    let Some(min) = tx
        .query_one(
            "SELECT units FROM ph_min_stock WHERE inst = ? AND drug = ?",
            &[org.id.as_str().into(), d.code.as_str().into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_int())
    else {
        return Ok(());
    };
    let have = usable_units(tx, &org.id, &d.code, today)?;
    if have >= min {
        return Ok(());
    }
    let note = format!("库存 {have}{} 低于下限 {min}{}", d.unit, d.unit);
    let id = tx
        .query_one(
            "INSERT INTO ph_shortage (inst, comm, drug, source, note, at, by_user, version) VALUES (?, ?, ?, 'low-stock', ?, ?, ?, 1) \
             ON CONFLICT (inst, drug) WHERE resolved IS NULL DO NOTHING RETURNING id",
            &[org.id.as_str().into(), org.comm.clone().into(), d.code.as_str().into(), note.as_str().into(), at.into(), actor.user.as_str().into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_int());
    if let Some(id) = id {
        let rid = id.to_string();
        AuditRow::by(actor, at, "pharmacy-shortage-auto")
            .on("PharmacyShortage", &rid)
            .version(1)
            .reason(Some(&note))
            .append(tx)?;
    }
    Ok(())
}

/// Resolves the open shortage of a drug at an institution (stock arrived).
fn resolve_open(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    inst: &str,
    drug: &str,
    resolution: &str,
) -> Result<(), StoreError> {
    let open = tx.query(
        "SELECT id, version FROM ph_shortage WHERE inst = ? AND drug = ? AND resolved IS NULL",
        &[inst.into(), drug.into()],
    )?;
    for r in open {
        let mut c = Cols::new(r);
        let (id, version) = (c.i(), c.i());
        tx.exec(
            "UPDATE ph_shortage SET resolved = ?, resolved_by = ?, resolution = ?, version = version + 1 WHERE id = ?",
            &[at.into(), actor.user.as_str().into(), resolution.into(), Val::Int(id)],
        )?;
        let rid = id.to_string();
        AuditRow::by(actor, at, "pharmacy-shortage-resolve")
            .on("PharmacyShortage", &rid)
            .version(version + 1)
            .reason(Some(resolution))
            .append(tx)?;
    }
    Ok(())
}

fn add_usage(
    tx: &mut dyn Sql,
    year: i32,
    org: &Org,
    drug: &str,
    units: i64,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO ph_usage (year, inst, drug, comm, units) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (year, inst, drug) DO UPDATE SET units = ph_usage.units + excluded.units",
        &[
            Val::Int(year as i64),
            org.id.as_str().into(),
            drug.into(),
            org.comm.clone().into(),
            Val::Int(units),
        ],
    )?;
    Ok(())
}

/// Checks a quantity of a drug: positive, bounded, whole packages unless splittable.
fn check_units(d: &Drug, units: i64, what: &str) -> Result<(), StoreError> {
    if units <= 0 || units > MAX_UNITS {
        return Err(StoreError::Invalid(format!(
            "{}的{what}数量须为 1 到 {MAX_UNITS} 之间的整数({})",
            d.name, d.unit
        )));
    }
    if !d.splittable && units % package(d) != 0 {
        return Err(StoreError::Invalid(format!(
            "{}:该药品不可拆零,请按整包装({})开具",
            d.name,
            package_text(d)
        )));
    }
    Ok(())
}

/// Books units into a batch of an institution (merging with the same batch
/// number, expiry and cost). Returns the batch id.
#[allow(clippy::too_many_arguments)]
fn book_in(
    tx: &mut dyn Sql,
    at: &str,
    org: &Org,
    drug: &str,
    lot: &str,
    expiry: &str,
    units: i64,
    unit_cost: i64,
) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            "INSERT INTO ph_batch (inst, comm, drug, lot, expiry, qty, unit_cost, received, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) \
             ON CONFLICT (inst, drug, lot, expiry, unit_cost) DO UPDATE SET qty = ph_batch.qty + excluded.qty, received = excluded.received, version = ph_batch.version + 1 \
             RETURNING id",
            &[org.id.as_str().into(), org.comm.clone().into(), drug.into(), lot.into(), expiry.into(), Val::Int(units), Val::Int(unit_cost), at.into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_int())
        .unwrap_or(0))
}

// ---------- dispensing ----------

/// Dispenses the lines of prescription `rx_id` at `institution` inside the
/// caller's transaction: units leave FEFO from unexpired batches (a package
/// broken for a quantity that is not whole packages is recorded as split
/// open), usage for volume-based procurement is counted, and stock falling
/// below its minimum raises a shortage. Returns the value at cost in fen.
///
/// Everything is checked before anything is written: a quantity that is not
/// whole packages of a drug that may not be split is `Invalid`, too little
/// stock is `Conflict("库存不足:…")`, and in both cases nothing changed.
pub(crate) fn dispense_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    institution: &str,
    rx_id: &str,
    lines: &[DispenseLine],
    knowledge: &Knowledge,
) -> Result<i64, StoreError> {
    let day = local_date(at)?;
    let org = inst_org(tx, institution)?;
    require_acting(actor, &org, "在本机构发药")?;
    if lines.is_empty() {
        return Err(StoreError::Invalid("发药明细为空".into()));
    }
    // One entry per drug, in the order of the prescription.
    let mut wanted: Vec<(&Drug, i64)> = vec![];
    for l in lines {
        let d = drug(knowledge, &l.drug)?;
        check_units(d, l.units, "发药")?;
        match wanted.iter_mut().find(|(w, _)| w.code == d.code) {
            Some(w) => w.1 += l.units,
            None => wanted.push((d, l.units)),
        }
    }
    let mut plans = Vec::with_capacity(wanted.len());
    for (d, n) in &wanted {
        let batches = usable_batches(tx, &org.id, &d.code, day)?;
        match plan_fefo(d, &batches, *n) {
            Ok(p) => plans.push(p),
            Err(available) => return Err(shortage_message(d, *n, available)),
        }
    }
    let mut total = 0;
    for ((d, n), plan) in wanted.iter().zip(&plans) {
        total += apply_take(tx, at, actor, &org.id, d, plan, "dispense", Some(rx_id))?;
        add_usage(tx, day.year(), &org, &d.code, *n)?;
        check_low(tx, at, actor, &org, d, day)?;
    }
    let reason = format!("{} 种药品,成本 {}", wanted.len(), Fen(total));
    AuditRow::by(actor, at, "pharmacy-dispense")
        .on("MedicationDispense", rx_id)
        .reason(Some(&reason))
        .append(tx)?;
    Ok(total)
}

// ---------- requisitions (transaction level) ----------

const REQ_COLS: &str = "id, inst, central, comm, state, note, reason, created, created_by, decided, decided_by, shipped, shipped_by, received, received_by, version";

fn req_from_row(r: Vec<Val>) -> Requisition {
    let mut c = Cols::new(r);
    Requisition {
        id: c.i(),
        inst: c.s(),
        central: c.s(),
        comm: c.s(),
        state: ReqState::from_code(&c.s()).unwrap_or(ReqState::Requested),
        note: c.o(),
        reason: c.o(),
        created: c.s(),
        created_by: c.s(),
        decided: c.o(),
        decided_by: c.o(),
        shipped: c.o(),
        shipped_by: c.o(),
        received: c.o(),
        received_by: c.o(),
        version: c.i(),
        lines: vec![],
        shipments: vec![],
    }
}

fn load_details(tx: &mut dyn Sql, reqs: &mut [Requisition]) -> Result<(), StoreError> {
    if reqs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Val> = reqs.iter().map(|r| Val::Int(r.id)).collect();
    let marks = vec!["?"; ids.len()].join(", ");
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    for (i, r) in reqs.iter().enumerate() {
        by_id.insert(r.id, i);
    }
    for r in tx.query(
        &format!("SELECT req, line, drug, requested, approved, shipped FROM ph_req_line WHERE req IN ({marks}) ORDER BY req, line"),
        &ids,
    )? {
        let mut c = Cols::new(r);
        let req = c.i();
        let line = ReqLine {
            line: c.i(),
            drug: c.s(),
            requested: c.i(),
            approved: c.oi(),
            shipped: c.oi(),
        };
        if let Some(&i) = by_id.get(&req) {
            reqs[i].lines.push(line);
        }
    }
    for r in tx.query(
        &format!("SELECT req, line, drug, lot, expiry, units, unit_cost FROM ph_transit WHERE req IN ({marks}) ORDER BY req, seq"),
        &ids,
    )? {
        let mut c = Cols::new(r);
        let req = c.i();
        let s = Shipment {
            line: c.i(),
            drug: c.s(),
            lot: c.s(),
            expiry: c.s(),
            units: c.i(),
            unit_cost_fen: c.i(),
        };
        if let Some(&i) = by_id.get(&req) {
            reqs[i].shipments.push(s);
        }
    }
    Ok(())
}

fn load_req(tx: &mut dyn Sql, id: i64, lock: bool) -> Result<Option<Requisition>, StoreError> {
    let lock = if lock { for_update(tx) } else { "" };
    let Some(row) = tx.query_one(
        &format!("SELECT {REQ_COLS} FROM ph_req WHERE id = ?{lock}"),
        &[Val::Int(id)],
    )?
    else {
        return Ok(None);
    };
    let mut r = [req_from_row(row)];
    load_details(tx, &mut r)?;
    let [r] = r;
    Ok(Some(r))
}

/// Loads (locked) a requisition about to move to `to` and checks who takes the
/// step, the version and that the step is legal.
fn begin_step(
    tx: &mut dyn Sql,
    actor: &Actor,
    id: i64,
    version: i64,
    to: ReqState,
) -> Result<(Requisition, Org), StoreError> {
    let r = load_req(tx, id, true)?
        .ok_or_else(|| StoreError::NotFound(format!("请领单 #{id} 不存在")))?;
    let side = if to.by_central() { &r.central } else { &r.inst };
    let org = inst_org(tx, side)?;
    let who = if to.by_central() {
        "中心药房"
    } else {
        "请领机构"
    };
    if !acting_for(actor, &org) {
        return Err(StoreError::Forbidden(format!(
            "只有{who}“{}”的人员可以{}此请领单",
            org.name,
            to.verb()
        )));
    }
    if r.version != version {
        return Err(StoreError::VersionConflict { current: r.version });
    }
    if !r.state.can_go(to) {
        return Err(StoreError::Conflict(format!(
            "请领单 #{id} 当前状态为“{}”,不能{}(“{}”→“{}”不是允许的流转)",
            r.state.label(),
            to.verb(),
            r.state.label(),
            to.label()
        )));
    }
    Ok((r, org))
}

fn req_ref(id: i64) -> String {
    format!("请领单#{id}")
}

fn request_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    institution_id: &str,
    lines: &[DispenseLine],
    note: Option<&str>,
    k: &Knowledge,
) -> Result<i64, StoreError> {
    let org = inst_org(tx, institution_id)?;
    require_acting(actor, &org, "为本机构请领药品")?;
    let tier = org.tier.filter(|t| t.is_primary()).filter(|_| !org.lead);
    let Some(tier) = tier else {
        return Err(StoreError::Invalid(format!(
            "“{}”不是基层机构:只有乡镇卫生院、社区卫生服务中心和村卫生室向中心药房请领",
            org.name
        )));
    };
    let comm = org
        .comm
        .clone()
        .ok_or_else(|| StoreError::Invalid(format!("“{}”不属于任何医共体,无法请领", org.name)))?;
    let central = central_of(tx, &comm)?
        .ok_or_else(|| StoreError::Invalid("本医共体没有牵头医院(中心药房),无法请领".into()))?;
    let note = clean_text(note, "备注")?;
    if lines.is_empty() {
        return Err(StoreError::Invalid("请领单至少需要一种药品".into()));
    }
    if lines.len() > MAX_LINES {
        return Err(StoreError::Invalid(format!(
            "一张请领单最多 {MAX_LINES} 种药品"
        )));
    }
    let mut seen = HashSet::new();
    for l in lines {
        let d = drug(k, l.drug.trim())?;
        if !seen.insert(d.code.clone()) {
            return Err(StoreError::Invalid(format!(
                "{}重复出现,请合并为一行",
                d.name
            )));
        }
        if l.units <= 0 || l.units > MAX_UNITS {
            return Err(StoreError::Invalid(format!(
                "{}的请领数量须为 1 到 {MAX_UNITS} 之间的整数({})",
                d.name, d.unit
            )));
        }
        if !d.splittable && l.units % package(d) != 0 {
            return Err(StoreError::Invalid(format!(
                "{}不可拆零,请领数量须为整包装({})的倍数",
                d.name,
                package_text(d)
            )));
        }
        if let Some(r) = &d.restriction
            && tier.level() < r.min_tier.level()
        {
            return Err(StoreError::Invalid(format!(
                "{}限{}及以上机构使用,本机构不能请领",
                d.name,
                r.min_tier.label_zh()
            )));
        }
    }
    let id = tx
        .query_one(
            "INSERT INTO ph_req (inst, central, comm, state, note, created, created_by, version) VALUES (?, ?, ?, 'requested', ?, ?, ?, 1) RETURNING id",
            &[org.id.as_str().into(), central.as_str().into(), comm.as_str().into(), note.clone().into(), at.into(), actor.user.as_str().into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_int())
        .ok_or_else(|| StoreError::Database("请领单编号生成失败".into()))?;
    for (i, l) in lines.iter().enumerate() {
        // Stored under the formulary code (a line may name the drug by ATC code).
        let code = drug(k, l.drug.trim())?.code.as_str();
        tx.exec(
            "INSERT INTO ph_req_line (req, line, drug, requested) VALUES (?, ?, ?, ?)",
            &[
                Val::Int(id),
                Val::Int(i as i64 + 1),
                code.into(),
                Val::Int(l.units),
            ],
        )?;
    }
    let rid = id.to_string();
    let reason = format!("{} 种药品", lines.len());
    AuditRow::by(actor, at, "pharmacy-request")
        .on("Requisition", &rid)
        .version(1)
        .reason(Some(&reason))
        .append(tx)?;
    Ok(id)
}

#[allow(clippy::too_many_arguments)]
fn approve_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    id: i64,
    version: i64,
    approved: &[(i64, i64)],
    note: Option<&str>,
    k: &Knowledge,
) -> Result<(), StoreError> {
    let (r, _) = begin_step(tx, actor, id, version, ReqState::Approved)?;
    let note = clean_text(note, "审批意见")?;
    for (line, _) in approved {
        if !r.lines.iter().any(|l| l.line == *line) {
            return Err(StoreError::Invalid(format!("请领单没有第 {line} 行")));
        }
    }
    let mut total = 0;
    let mut decided = vec![];
    for l in &r.lines {
        let units = approved
            .iter()
            .find(|(n, _)| *n == l.line)
            .map_or(l.requested, |(_, u)| *u);
        let name = k.drug(&l.drug).map_or(l.drug.as_str(), |d| d.name.as_str());
        if units < 0 || units > l.requested {
            return Err(StoreError::Invalid(format!(
                "第 {} 行({name})的批准数量须在 0 到申请数量 {} 之间",
                l.line, l.requested
            )));
        }
        if let Some(d) = k.drug(&l.drug)
            && !d.splittable
            && units % package(d) != 0
        {
            return Err(StoreError::Invalid(format!(
                "{}不可拆零,批准数量须为整包装({})的倍数",
                d.name,
                package_text(d)
            )));
        }
        total += units;
        decided.push((l.line, units));
    }
    if total == 0 {
        return Err(StoreError::Invalid(
            "批准数量全部为 0:不予供应请改为驳回并填写理由".into(),
        ));
    }
    for (line, units) in decided {
        tx.exec(
            "UPDATE ph_req_line SET approved = ? WHERE req = ? AND line = ?",
            &[Val::Int(units), Val::Int(id), Val::Int(line)],
        )?;
    }
    tx.exec(
        "UPDATE ph_req SET state = 'approved', decided = ?, decided_by = ?, reason = ?, version = version + 1 WHERE id = ?",
        &[at.into(), actor.user.as_str().into(), note.clone().into(), Val::Int(id)],
    )?;
    let rid = id.to_string();
    AuditRow::by(actor, at, "pharmacy-approve")
        .on("Requisition", &rid)
        .version(version + 1)
        .reason(note.as_deref())
        .append(tx)
}

fn reject_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    id: i64,
    version: i64,
    reason: &str,
) -> Result<(), StoreError> {
    begin_step(tx, actor, id, version, ReqState::Rejected)?;
    let reason = clean_text(Some(reason), "驳回理由")?
        .ok_or_else(|| StoreError::Invalid("驳回请领单必须填写理由".into()))?;
    tx.exec(
        "UPDATE ph_req SET state = 'rejected', decided = ?, decided_by = ?, reason = ?, version = version + 1 WHERE id = ?",
        &[at.into(), actor.user.as_str().into(), reason.as_str().into(), Val::Int(id)],
    )?;
    let rid = id.to_string();
    AuditRow::by(actor, at, "pharmacy-reject")
        .on("Requisition", &rid)
        .version(version + 1)
        .reason(Some(&reason))
        .append(tx)
}

fn ship_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    id: i64,
    version: i64,
    k: &Knowledge,
) -> Result<(), StoreError> {
    let (r, central) = begin_step(tx, actor, id, version, ReqState::Shipped)?;
    let day = local_date(at)?;
    let mut plans = vec![];
    for l in &r.lines {
        let units = l.approved.unwrap_or(0);
        if units == 0 {
            continue;
        }
        let d = drug(k, &l.drug)?;
        let batches = usable_batches(tx, &central.id, &d.code, day)?;
        match plan_fefo(d, &batches, units) {
            Ok(p) => plans.push((l.line, d, units, p)),
            Err(available) => return Err(shortage_message(d, units, available)),
        }
    }
    let reference = req_ref(id);
    let mut seq = 0;
    let mut value = 0;
    for (line, d, units, plan) in &plans {
        value += apply_take(
            tx,
            at,
            actor,
            &central.id,
            d,
            plan,
            "transfer-out",
            Some(&reference),
        )?;
        for t in plan {
            seq += 1;
            tx.exec(
                "INSERT INTO ph_transit (req, seq, line, drug, lot, expiry, units, unit_cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                &[Val::Int(id), Val::Int(seq), Val::Int(*line), d.code.as_str().into(), t.lot.as_str().into(), t.expiry.as_str().into(), Val::Int(t.units), Val::Int(t.unit_cost)],
            )?;
        }
        tx.exec(
            "UPDATE ph_req_line SET shipped = ? WHERE req = ? AND line = ?",
            &[Val::Int(*units), Val::Int(id), Val::Int(*line)],
        )?;
        check_low(tx, at, actor, &central, d, day)?;
    }
    tx.exec(
        "UPDATE ph_req SET state = 'shipped', shipped = ?, shipped_by = ?, version = version + 1 WHERE id = ?",
        &[at.into(), actor.user.as_str().into(), Val::Int(id)],
    )?;
    let rid = id.to_string();
    let reason = format!("{} 个批次,成本 {}", seq, Fen(value));
    AuditRow::by(actor, at, "pharmacy-ship")
        .on("Requisition", &rid)
        .version(version + 1)
        .reason(Some(&reason))
        .append(tx)
}

fn confirm_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    id: i64,
    version: i64,
) -> Result<(), StoreError> {
    let (r, org) = begin_step(tx, actor, id, version, ReqState::Received)?;
    let reference = req_ref(id);
    for s in &r.shipments {
        let batch = book_in(
            tx,
            at,
            &org,
            &s.drug,
            &s.lot,
            &s.expiry,
            s.units,
            s.unit_cost_fen,
        )?;
        ledger(
            tx,
            &Move {
                at,
                inst: &org.id,
                drug: &s.drug,
                batch: Some(batch),
                kind: "transfer-in",
                units: s.units,
                cost: s.units * s.unit_cost_fen,
                reference: Some(&reference),
                actor: &actor.user,
                note: None,
            },
        )?;
    }
    let resolution = format!("{reference} 已到货");
    let mut drugs: Vec<&str> = r.shipments.iter().map(|s| s.drug.as_str()).collect();
    drugs.dedup();
    for d in drugs {
        resolve_open(tx, at, actor, &org.id, d, &resolution)?;
    }
    tx.exec(
        "UPDATE ph_req SET state = 'received', received = ?, received_by = ?, version = version + 1 WHERE id = ?",
        &[at.into(), actor.user.as_str().into(), Val::Int(id)],
    )?;
    let rid = id.to_string();
    AuditRow::by(actor, at, "pharmacy-receive-transfer")
        .on("Requisition", &rid)
        .version(version + 1)
        .append(tx)
}

// ---------- shortages (transaction level) ----------

const SHORTAGE_COLS: &str =
    "id, inst, comm, drug, source, note, at, by_user, resolved, resolved_by, resolution, version";

fn shortage_from_row(r: Vec<Val>) -> Shortage {
    let mut c = Cols::new(r);
    Shortage {
        id: c.i(),
        inst: c.s(),
        comm: c.o(),
        drug: c.s(),
        source: c.s(),
        note: c.o(),
        at: c.s(),
        by: c.s(),
        resolved: c.o(),
        resolved_by: c.o(),
        resolution: c.o(),
        version: c.i(),
    }
}

fn report_shortage_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    institution_id: &str,
    drug_code: &str,
    note: Option<&str>,
    k: &Knowledge,
) -> Result<i64, StoreError> {
    let org = inst_org(tx, institution_id)?;
    require_acting(actor, &org, "为本机构登记缺药")?;
    let d = drug(k, drug_code.trim())?;
    let note = clean_text(note, "缺药说明")?;
    if let Some(open) = tx
        .query_one(
            "SELECT id FROM ph_shortage WHERE inst = ? AND drug = ? AND resolved IS NULL",
            &[org.id.as_str().into(), d.code.as_str().into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_int())
    {
        return Err(StoreError::Conflict(format!(
            "{}已有未处理的缺药登记(#{open}),无需重复登记",
            d.name
        )));
    }
    let id = tx
        .query_one(
            "INSERT INTO ph_shortage (inst, comm, drug, source, note, at, by_user, version) VALUES (?, ?, ?, 'manual', ?, ?, ?, 1) RETURNING id",
            &[org.id.as_str().into(), org.comm.clone().into(), d.code.as_str().into(), note.clone().into(), at.into(), actor.user.as_str().into()],
        )?
        .and_then(|r| r.into_iter().next())
        .and_then(|v| v.as_int())
        .ok_or_else(|| StoreError::Database("缺药登记编号生成失败".into()))?;
    let rid = id.to_string();
    AuditRow::by(actor, at, "pharmacy-shortage")
        .on("PharmacyShortage", &rid)
        .version(1)
        .reason(note.as_deref())
        .append(tx)?;
    Ok(id)
}

fn resolve_shortage_tx(
    tx: &mut dyn Sql,
    at: &str,
    actor: &Actor,
    id: i64,
    version: i64,
    note: &str,
) -> Result<(), StoreError> {
    let s = tx
        .query_one(
            &format!(
                "SELECT {SHORTAGE_COLS} FROM ph_shortage WHERE id = ?{}",
                for_update(tx)
            ),
            &[Val::Int(id)],
        )?
        .map(shortage_from_row)
        .ok_or_else(|| StoreError::NotFound(format!("缺药登记 #{id} 不存在")))?;
    let org = inst_org(tx, &s.inst)?;
    require_member_or_central(tx, actor, &org, "处理该缺药登记")?;
    if s.version != version {
        return Err(StoreError::VersionConflict { current: s.version });
    }
    if s.resolved.is_some() {
        return Err(StoreError::Conflict(format!(
            "缺药登记 #{id} 已处理,不能重复处理"
        )));
    }
    let note = clean_text(Some(note), "处理说明")?
        .ok_or_else(|| StoreError::Invalid("处理缺药登记必须填写处理说明".into()))?;
    tx.exec(
        "UPDATE ph_shortage SET resolved = ?, resolved_by = ?, resolution = ?, version = version + 1 WHERE id = ?",
        &[at.into(), actor.user.as_str().into(), note.as_str().into(), Val::Int(id)],
    )?;
    let rid = id.to_string();
    AuditRow::by(actor, at, "pharmacy-shortage-resolve")
        .on("PharmacyShortage", &rid)
        .version(version + 1)
        .reason(Some(&note))
        .append(tx)
}

// ---------- the store API ----------

impl Store {
    fn ph_knowledge(&self) -> std::sync::Arc<crate::rx::RxState> {
        self.rx_state()
    }

    /// Receives stock (入库) at a central pharmacy: a batch of a drug with its
    /// expiry and unit cost, in packages or dispensing units. Returns the batch id.
    #[allow(clippy::too_many_arguments)]
    pub fn pharmacy_receive(
        &self,
        actor: &Actor,
        institution_id: &str,
        drug_code: &str,
        batch: &str,
        expiry: NaiveDate,
        qty: Qty,
        unit_cost_fen: i64,
        reason: Option<&str>,
    ) -> Result<i64, StoreError> {
        let rx = self.ph_knowledge();
        let d = drug(&rx.knowledge, drug_code.trim())?;
        let lot = clean_text(Some(batch), "批号")?
            .ok_or_else(|| StoreError::Invalid("入库必须填写批号".into()))?;
        if lot.chars().count() > 40 {
            return Err(StoreError::Invalid("批号不能超过 40 个字符".into()));
        }
        let reason = clean_text(reason, "入库说明")?;
        let units = match qty {
            Qty::Packages(n) if n > 0 && n <= MAX_UNITS / package(d) => n * package(d),
            Qty::Packages(_) => {
                return Err(StoreError::Invalid(format!(
                    "入库数量须为正整数({})",
                    d.package_unit
                )));
            }
            Qty::Units(n) => n,
        };
        if units <= 0 || units > MAX_UNITS {
            return Err(StoreError::Invalid(format!(
                "入库数量须为 1 到 {MAX_UNITS} 之间的整数({})",
                d.unit
            )));
        }
        if !d.splittable && units % package(d) != 0 {
            return Err(StoreError::Invalid(format!(
                "{}不可拆零,入库数量须为整包装({})的倍数",
                d.name,
                package_text(d)
            )));
        }
        if !(0..=MAX_COST_FEN).contains(&unit_cost_fen) {
            return Err(StoreError::Invalid(format!(
                "单位成本须在 0 到 {} 之间(每{})",
                Fen(MAX_COST_FEN),
                d.unit
            )));
        }
        let at = crate::now_string();
        let day = local_date(&at)?;
        if expiry < day {
            return Err(StoreError::Invalid(format!(
                "批号 {lot} 已于 {} 过期,不能入库",
                ymd(expiry)
            )));
        }
        let expiry = ymd(expiry);
        self.db.write(|tx| {
            let org = inst_org(tx, institution_id)?;
            require_acting(actor, &org, "为本机构入库")?;
            if !org.lead {
                return Err(StoreError::Invalid(format!(
                    "“{}”不是中心药房:药品统一由医共体中心药房(牵头医院)采购入库,基层机构请通过请领获得",
                    org.name
                )));
            }
            if let Some(other) = tx
                .query_one(
                    "SELECT expiry FROM ph_batch WHERE inst = ? AND drug = ? AND lot = ? AND expiry <> ? LIMIT 1",
                    &[org.id.as_str().into(), d.code.as_str().into(), lot.as_str().into(), expiry.as_str().into()],
                )?
                .and_then(|r| r.into_iter().next())
                .and_then(Val::into_string)
            {
                return Err(StoreError::Invalid(format!(
                    "批号 {lot} 已登记的有效期为 {other},与本次填写的 {expiry} 不符"
                )));
            }
            let id = book_in(tx, &at, &org, &d.code, &lot, &expiry, units, unit_cost_fen)?;
            ledger(
                tx,
                &Move {
                    at: &at,
                    inst: &org.id,
                    drug: &d.code,
                    batch: Some(id),
                    kind: "receive",
                    units,
                    cost: units * unit_cost_fen,
                    reference: None,
                    actor: &actor.user,
                    note: reason.as_deref(),
                },
            )?;
            let resolution = format!("已入库 {units}{}(批号 {lot})", d.unit);
            resolve_open(tx, &at, actor, &org.id, &d.code, &resolution)?;
            let rid = id.to_string();
            let text = format!(
                "{} 批号 {lot} {units}{} 单位成本 {}{}",
                d.name,
                d.unit,
                Fen(unit_cost_fen),
                reason.as_deref().map(|r| format!(";{r}")).unwrap_or_default()
            );
            AuditRow::by(actor, &at, "pharmacy-receive")
                .on("PharmacyBatch", &rid)
                .reason(Some(&text))
                .append(tx)?;
            Ok(id)
        })
    }

    /// Dispenses a prescription's lines at an institution in its own transaction
    /// (see [`dispense_tx`]). Returns the value at cost in fen.
    pub fn pharmacy_dispense(
        &self,
        actor: &Actor,
        institution_id: &str,
        rx_id: &str,
        lines: &[DispenseLine],
    ) -> Result<i64, StoreError> {
        self.pharmacy_dispense_at(actor, &crate::now_string(), institution_id, rx_id, lines)
    }

    /// As [`Store::pharmacy_dispense`], recorded at `at` (RFC 3339): expiry is
    /// judged on that day's local date (for back-filled dispensing records).
    pub fn pharmacy_dispense_at(
        &self,
        actor: &Actor,
        at: &str,
        institution_id: &str,
        rx_id: &str,
        lines: &[DispenseLine],
    ) -> Result<i64, StoreError> {
        let rx = self.ph_knowledge();
        self.db
            .write(|tx| dispense_tx(tx, at, actor, institution_id, rx_id, lines, &rx.knowledge))
    }

    /// The central pharmacy (lead hospital) of an institution's community.
    pub fn pharmacy_central_of(&self, institution_id: &str) -> Result<Option<String>, StoreError> {
        self.db.read(|c| {
            let Some(org) = find_org(c, institution_id)? else {
                return Ok(None);
            };
            match org.comm {
                Some(comm) => central_of(c, &comm),
                None => Ok(None),
            }
        })
    }

    /// Units of a drug in unexpired batches of an institution on `day`.
    pub fn pharmacy_available(
        &self,
        institution_id: &str,
        drug_code: &str,
        day: NaiveDate,
    ) -> Result<i64, StoreError> {
        self.db
            .read(|c| usable_units(c, institution_id, drug_code, day))
    }

    /// The stock of an institution per drug with its batches, judged on `day`.
    /// `filter` matches a drug code or part of a name. Drugs with a minimum
    /// stock but none on hand are listed too.
    pub fn pharmacy_stock(
        &self,
        scope: &Scope,
        institution_id: &str,
        filter: Option<&str>,
        day: NaiveDate,
    ) -> Result<Vec<StockLine>, StoreError> {
        let rx = self.ph_knowledge();
        let k = &rx.knowledge;
        let (rows, mins) = self.db.read(|c| {
            let org = inst_org(c, institution_id)?;
            if !scope_allows(scope, &org.id, org.comm.as_deref()) {
                return Err(StoreError::Forbidden("该机构不在您的数据范围内".into()));
            }
            let rows = c.query(
                "SELECT id, drug, lot, expiry, qty, unit_cost, received, version FROM ph_batch WHERE inst = ? AND qty > 0 ORDER BY drug, expiry, id",
                &[institution_id.into()],
            )?;
            let mins = c.query(
                "SELECT drug, units FROM ph_min_stock WHERE inst = ?",
                &[institution_id.into()],
            )?;
            Ok((rows, mins))
        })?;
        let mins: HashMap<String, i64> = mins
            .into_iter()
            .map(|r| {
                let mut c = Cols::new(r);
                (c.s(), c.i())
            })
            .collect();
        let needle = filter
            .map(|f| f.trim().to_lowercase())
            .filter(|f| !f.is_empty());
        let matches = |code: &str| -> bool {
            let Some(n) = &needle else { return true };
            if code.to_lowercase().starts_with(n.as_str()) {
                return true;
            }
            k.drug(code).is_some_and(|d| {
                d.name.contains(n.as_str())
                    || d.generic.contains(n.as_str())
                    || d.en.contains(n.as_str())
            })
        };
        let mut lines: BTreeMap<String, StockLine> = BTreeMap::new();
        let new_line = |code: &str| -> StockLine {
            let d = k.drug(code);
            StockLine {
                drug: code.to_string(),
                name: d.map_or_else(|| code.to_string(), |d| d.name.clone()),
                generic: d.map(|d| d.generic.clone()).unwrap_or_default(),
                form: d.map(|d| d.form.clone()).unwrap_or_default(),
                unit: d.map_or_else(|| "单位".to_string(), |d| d.unit.clone()),
                package: d.map_or(1, package),
                package_unit: d.map(|d| d.package_unit.clone()).unwrap_or_default(),
                splittable: d.is_some_and(|d| d.splittable),
                vbp: d.is_some_and(|d| d.vbp.is_some()),
                usable: 0,
                expired: 0,
                near: 0,
                open_packages: 0,
                open_units: 0,
                value_fen: 0,
                min: mins.get(code).copied(),
                low: false,
                batches: vec![],
            }
        };
        for r in rows {
            let mut c = Cols::new(r);
            let (id, code) = (c.i(), c.s());
            if !matches(&code) {
                continue;
            }
            let line = lines.entry(code.clone()).or_insert_with(|| new_line(&code));
            let (lot, expiry, qty, unit_cost, received, version) =
                (c.s(), c.s(), c.i(), c.i(), c.s(), c.i());
            let (status, days_left) = expiry_status(&expiry, day);
            let open_units = qty % line.package;
            match status {
                ExpiryStatus::Expired => line.expired += qty,
                _ => {
                    line.usable += qty;
                    line.value_fen += qty * unit_cost;
                    if status == ExpiryStatus::Near {
                        line.near += qty;
                    }
                    if open_units > 0 {
                        line.open_packages += 1;
                        line.open_units += open_units;
                    }
                }
            }
            line.batches.push(BatchInfo {
                id,
                drug: code.clone(),
                lot,
                expiry,
                qty,
                unit_cost_fen: unit_cost,
                received,
                version,
                status,
                days_left,
                open_units,
            });
        }
        for code in mins.keys() {
            if matches(code) && !lines.contains_key(code) {
                lines.insert(code.clone(), new_line(code));
            }
        }
        Ok(lines
            .into_values()
            .map(|mut l| {
                l.low = l.min.is_some_and(|m| l.usable < m);
                l
            })
            .collect())
    }

    /// The latest stock movements of an institution (optionally of one drug), newest first.
    pub fn pharmacy_movements(
        &self,
        scope: &Scope,
        institution_id: &str,
        drug_code: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Movement>, StoreError> {
        self.db.read(|c| {
            let org = inst_org(c, institution_id)?;
            if !scope_allows(scope, &org.id, org.comm.as_deref()) {
                return Err(StoreError::Forbidden("该机构不在您的数据范围内".into()));
            }
            let cols = "seq, at, inst, drug, batch, kind, units, cost, ref, actor, note";
            let rows = match drug_code {
                Some(d) => c.query(
                    &format!("SELECT {cols} FROM ph_ledger WHERE inst = ? AND drug = ? ORDER BY seq DESC LIMIT ?"),
                    &[institution_id.into(), d.into(), Val::Int(limit)],
                )?,
                None => c.query(
                    &format!("SELECT {cols} FROM ph_ledger WHERE inst = ? ORDER BY seq DESC LIMIT ?"),
                    &[institution_id.into(), Val::Int(limit)],
                )?,
            };
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut c = Cols::new(r);
                    Movement {
                        seq: c.i(),
                        at: c.s(),
                        inst: c.s(),
                        drug: c.s(),
                        batch: c.oi(),
                        kind: c.s(),
                        units: c.i(),
                        cost_fen: c.i(),
                        reference: c.o(),
                        actor: c.s(),
                        note: c.o(),
                    }
                })
                .collect())
        })
    }

    /// A stocktaking correction (盘点): the batch holds `counted` units. Needs a reason.
    pub fn pharmacy_adjust(
        &self,
        actor: &Actor,
        batch_id: i64,
        version: i64,
        counted: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let rx = self.ph_knowledge();
        let reason = clean_text(Some(reason), "调整原因")?
            .ok_or_else(|| StoreError::Invalid("盘点调整必须填写原因".into()))?;
        if !(0..=MAX_UNITS).contains(&counted) {
            return Err(StoreError::Invalid(format!(
                "实盘数量须为 0 到 {MAX_UNITS} 之间的整数"
            )));
        }
        let at = crate::now_string();
        self.db.write(|tx| {
            let (org, code, qty, cost, current) = self.ph_batch_for_update(tx, batch_id)?;
            require_acting(actor, &org, "调整本机构库存")?;
            if current != version {
                return Err(StoreError::VersionConflict { current });
            }
            let delta = counted - qty;
            if delta == 0 {
                return Ok(());
            }
            tx.exec(
                "UPDATE ph_batch SET qty = ?, version = version + 1 WHERE id = ?",
                &[Val::Int(counted), Val::Int(batch_id)],
            )?;
            ledger(
                tx,
                &Move {
                    at: &at,
                    inst: &org.id,
                    drug: &code,
                    batch: Some(batch_id),
                    kind: "adjust",
                    units: delta,
                    cost: delta * cost,
                    reference: None,
                    actor: &actor.user,
                    note: Some(&reason),
                },
            )?;
            if delta < 0
                && let Some(d) = rx.knowledge.drug(&code)
            {
                check_low(tx, &at, actor, &org, d, local_date(&at)?)?;
            }
            let rid = batch_id.to_string();
            AuditRow::by(actor, &at, "pharmacy-adjust")
                .on("PharmacyBatch", &rid)
                .version(version + 1)
                .reason(Some(&reason))
                .append(tx)
        })
    }

    /// Writes off what is left of an expired batch (过期报损). Returns the units written off.
    pub fn pharmacy_write_off(
        &self,
        actor: &Actor,
        batch_id: i64,
        version: i64,
        reason: Option<&str>,
    ) -> Result<i64, StoreError> {
        let reason = clean_text(reason, "报损说明")?;
        let at = crate::now_string();
        let day = local_date(&at)?;
        self.db.write(|tx| {
            let (org, code, qty, cost, current) = self.ph_batch_for_update(tx, batch_id)?;
            require_acting(actor, &org, "为本机构报损")?;
            if current != version {
                return Err(StoreError::VersionConflict { current });
            }
            let expiry = tx
                .query_one(
                    "SELECT expiry, lot FROM ph_batch WHERE id = ?",
                    &[Val::Int(batch_id)],
                )?
                .map(Cols::new)
                .map(|mut c| (c.s(), c.s()))
                .unwrap_or_default();
            if expiry_status(&expiry.0, day).0 != ExpiryStatus::Expired {
                return Err(StoreError::Invalid(format!(
                    "批号 {} 有效期至 {},尚未过期,不能报损",
                    expiry.1, expiry.0
                )));
            }
            if qty == 0 {
                return Err(StoreError::Invalid("该批次已无库存".into()));
            }
            tx.exec(
                "UPDATE ph_batch SET qty = 0, version = version + 1 WHERE id = ?",
                &[Val::Int(batch_id)],
            )?;
            ledger(
                tx,
                &Move {
                    at: &at,
                    inst: &org.id,
                    drug: &code,
                    batch: Some(batch_id),
                    kind: "expire-writeoff",
                    units: -qty,
                    cost: -qty * cost,
                    reference: None,
                    actor: &actor.user,
                    note: reason.as_deref(),
                },
            )?;
            let rid = batch_id.to_string();
            let text = format!(
                "批号 {} 过期报损 {qty},成本 {}{}",
                expiry.1,
                Fen(qty * cost),
                reason
                    .as_deref()
                    .map(|r| format!(";{r}"))
                    .unwrap_or_default()
            );
            AuditRow::by(actor, &at, "pharmacy-write-off")
                .on("PharmacyBatch", &rid)
                .version(version + 1)
                .reason(Some(&text))
                .append(tx)?;
            Ok(qty)
        })
    }

    /// (institution, drug, qty, unit cost, version) of a batch, locked.
    fn ph_batch_for_update(
        &self,
        tx: &mut dyn Sql,
        batch_id: i64,
    ) -> Result<(Org, String, i64, i64, i64), StoreError> {
        let row = tx
            .query_one(
                &format!(
                    "SELECT inst, drug, qty, unit_cost, version FROM ph_batch WHERE id = ?{}",
                    for_update(tx)
                ),
                &[Val::Int(batch_id)],
            )?
            .ok_or_else(|| StoreError::NotFound(format!("批次 {batch_id} 不存在")))?;
        let mut c = Cols::new(row);
        let inst = c.s();
        let org = inst_org(tx, &inst)?;
        Ok((org, c.s(), c.i(), c.i(), c.i()))
    }

    /// Sets (or with `None` clears) the minimum stock of a drug at an institution;
    /// below it, a dispense or transfer raises a shortage. The institution itself
    /// or its central pharmacy may set it.
    pub fn pharmacy_set_min_stock(
        &self,
        actor: &Actor,
        institution_id: &str,
        drug_code: &str,
        min: Option<i64>,
    ) -> Result<(), StoreError> {
        let rx = self.ph_knowledge();
        let d = drug(&rx.knowledge, drug_code.trim())?;
        if let Some(m) = min
            && !(1..=MAX_UNITS).contains(&m)
        {
            return Err(StoreError::Invalid(format!(
                "库存下限须为 1 到 {MAX_UNITS} 之间的整数({})",
                d.unit
            )));
        }
        let at = crate::now_string();
        self.db.write(|tx| {
            let org = inst_org(tx, institution_id)?;
            require_member_or_central(tx, actor, &org, "设定库存下限")?;
            match min {
                Some(m) => tx.exec(
                    "INSERT INTO ph_min_stock (inst, drug, units) VALUES (?, ?, ?) ON CONFLICT (inst, drug) DO UPDATE SET units = excluded.units",
                    &[org.id.as_str().into(), d.code.as_str().into(), Val::Int(m)],
                )?,
                None => tx.exec(
                    "DELETE FROM ph_min_stock WHERE inst = ? AND drug = ?",
                    &[org.id.as_str().into(), d.code.as_str().into()],
                )?,
            };
            let rid = format!("{}|{}", org.id, d.code);
            let text = match min {
                Some(m) => format!("{} 库存下限 {m}{}", d.name, d.unit),
                None => format!("{} 取消库存下限", d.name),
            };
            AuditRow::by(actor, &at, "pharmacy-min-stock")
                .on("PharmacyMinStock", &rid)
                .reason(Some(&text))
                .append(tx)
        })
    }

    /// A primary institution requests drugs from its community's central pharmacy.
    pub fn pharmacy_request(
        &self,
        actor: &Actor,
        institution_id: &str,
        lines: &[DispenseLine],
        note: Option<&str>,
    ) -> Result<Requisition, StoreError> {
        let rx = self.ph_knowledge();
        let at = crate::now_string();
        let id = self
            .db
            .write(|tx| request_tx(tx, &at, actor, institution_id, lines, note, &rx.knowledge))?;
        self.ph_requisition_unchecked(id)
    }

    /// The central pharmacy approves a requisition, each line in full unless
    /// `approved` lists (line, units) with fewer (0 = not supplied).
    pub fn pharmacy_approve(
        &self,
        actor: &Actor,
        id: i64,
        version: i64,
        approved: &[(i64, i64)],
        note: Option<&str>,
    ) -> Result<Requisition, StoreError> {
        let rx = self.ph_knowledge();
        let at = crate::now_string();
        self.db
            .write(|tx| approve_tx(tx, &at, actor, id, version, approved, note, &rx.knowledge))?;
        self.ph_requisition_unchecked(id)
    }

    /// The central pharmacy rejects a requisition with a reason.
    pub fn pharmacy_reject(
        &self,
        actor: &Actor,
        id: i64,
        version: i64,
        reason: &str,
    ) -> Result<Requisition, StoreError> {
        let at = crate::now_string();
        self.db
            .write(|tx| reject_tx(tx, &at, actor, id, version, reason))?;
        self.ph_requisition_unchecked(id)
    }

    /// The central pharmacy ships the approved units, taken FEFO batch by batch
    /// from its unexpired stock, in one transaction.
    pub fn pharmacy_ship(
        &self,
        actor: &Actor,
        id: i64,
        version: i64,
    ) -> Result<Requisition, StoreError> {
        let rx = self.ph_knowledge();
        let at = crate::now_string();
        self.db
            .write(|tx| ship_tx(tx, &at, actor, id, version, &rx.knowledge))?;
        self.ph_requisition_unchecked(id)
    }

    /// The requester confirms receipt: the shipped batches enter its stock and
    /// its open shortages of those drugs are resolved.
    pub fn pharmacy_confirm_receipt(
        &self,
        actor: &Actor,
        id: i64,
        version: i64,
    ) -> Result<Requisition, StoreError> {
        let at = crate::now_string();
        self.db
            .write(|tx| confirm_tx(tx, &at, actor, id, version))?;
        self.ph_requisition_unchecked(id)
    }

    fn ph_requisition_unchecked(&self, id: i64) -> Result<Requisition, StoreError> {
        self.db
            .read(|c| load_req(c, id, false))?
            .ok_or_else(|| StoreError::NotFound(format!("请领单 #{id} 不存在")))
    }

    /// One requisition with its lines and shipment, if visible in `scope`.
    pub fn pharmacy_requisition(
        &self,
        scope: &Scope,
        id: i64,
    ) -> Result<Option<Requisition>, StoreError> {
        let r = self.db.read(|c| load_req(c, id, false))?;
        match r {
            Some(r) if !req_visible(scope, &r) => {
                Err(StoreError::Forbidden("该请领单不在您的数据范围内".into()))
            }
            r => Ok(r),
        }
    }

    /// Requisitions in `scope`, newest first.
    pub fn pharmacy_requisitions(
        &self,
        scope: &Scope,
        f: &ReqFilter,
    ) -> Result<Vec<Requisition>, StoreError> {
        let mut sql = format!("SELECT {REQ_COLS} FROM ph_req WHERE 1 = 1");
        let mut p: Vec<Val> = vec![];
        if let Some(i) = &f.inst {
            match f.side {
                ReqSide::Requester => sql.push_str(" AND inst = ?"),
                ReqSide::Central => sql.push_str(" AND central = ?"),
                ReqSide::Either => {
                    sql.push_str(" AND (inst = ? OR central = ?)");
                    p.push(i.as_str().into());
                }
            }
            p.push(i.as_str().into());
        }
        if let Some(s) = f.state {
            sql.push_str(" AND state = ?");
            p.push(s.code().into());
        }
        match scope {
            Scope::County => {}
            Scope::Community(c) => {
                sql.push_str(" AND comm = ?");
                p.push(c.as_str().into());
            }
            Scope::Institution(i) => {
                sql.push_str(" AND (inst = ? OR central = ?)");
                p.push(i.as_str().into());
                p.push(i.as_str().into());
            }
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        p.push(Val::Int(f.limit.clamp(1, 500)));
        self.db.read(|c| {
            let mut reqs: Vec<Requisition> =
                c.query(&sql, &p)?.into_iter().map(req_from_row).collect();
            load_details(c, &mut reqs)?;
            Ok(reqs)
        })
    }

    /// Open requisitions per state addressed to (`central`) or sent by an institution.
    pub fn pharmacy_requisition_counts(
        &self,
        institution_id: &str,
        side: ReqSide,
    ) -> Result<Vec<(ReqState, i64)>, StoreError> {
        let col = match side {
            ReqSide::Central => "central",
            _ => "inst",
        };
        self.db.read(|c| {
            let rows = c.query(
                &format!("SELECT state, count(*) FROM ph_req WHERE {col} = ? AND state IN ('requested', 'approved', 'shipped') GROUP BY state"),
                &[institution_id.into()],
            )?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    let mut c = Cols::new(r);
                    let s = ReqState::from_code(&c.s())?;
                    Some((s, c.i()))
                })
                .collect())
        })
    }

    /// A primary institution registers a drug it is missing (缺药登记).
    pub fn pharmacy_report_shortage(
        &self,
        actor: &Actor,
        institution_id: &str,
        drug_code: &str,
        note: Option<&str>,
    ) -> Result<Shortage, StoreError> {
        let rx = self.ph_knowledge();
        let at = crate::now_string();
        let id = self.db.write(|tx| {
            report_shortage_tx(
                tx,
                &at,
                actor,
                institution_id,
                drug_code,
                note,
                &rx.knowledge,
            )
        })?;
        self.ph_shortage_unchecked(id)
    }

    /// Resolves a shortage with a note (the institution or its central pharmacy).
    pub fn pharmacy_resolve_shortage(
        &self,
        actor: &Actor,
        id: i64,
        version: i64,
        note: &str,
    ) -> Result<Shortage, StoreError> {
        let at = crate::now_string();
        self.db
            .write(|tx| resolve_shortage_tx(tx, &at, actor, id, version, note))?;
        self.ph_shortage_unchecked(id)
    }

    fn ph_shortage_unchecked(&self, id: i64) -> Result<Shortage, StoreError> {
        self.db
            .read(|c| {
                c.query_one(
                    &format!("SELECT {SHORTAGE_COLS} FROM ph_shortage WHERE id = ?"),
                    &[Val::Int(id)],
                )
            })?
            .map(shortage_from_row)
            .ok_or_else(|| StoreError::NotFound(format!("缺药登记 #{id} 不存在")))
    }

    /// Shortages as an institution sees them: a central pharmacy (lead
    /// hospital) sees its whole community's, any other institution its own;
    /// without an institution, everything in `scope`. Newest first.
    pub fn pharmacy_shortages(
        &self,
        scope: &Scope,
        institution_id: Option<&str>,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<Shortage>, StoreError> {
        let (filter, p) = self.ph_shortage_filter(scope, institution_id, open_only)?;
        let mut p = p;
        p.push(Val::Int(limit.clamp(1, 1000)));
        self.db.read(|c| {
            Ok(c.query(
                &format!("SELECT {SHORTAGE_COLS} FROM ph_shortage WHERE {filter} ORDER BY resolved IS NOT NULL, id DESC LIMIT ?"),
                &p,
            )?
            .into_iter()
            .map(shortage_from_row)
            .collect())
        })
    }

    /// The number of open shortages an institution is alerted to (see
    /// [`Store::pharmacy_shortages`]), for a badge.
    pub fn pharmacy_open_shortage_count(
        &self,
        scope: &Scope,
        institution_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        let (filter, p) = self.ph_shortage_filter(scope, institution_id, true)?;
        self.db.read(|c| {
            c.scalar_int(
                &format!("SELECT count(*) FROM ph_shortage WHERE {filter}"),
                &p,
            )
        })
    }

    fn ph_shortage_filter(
        &self,
        scope: &Scope,
        institution_id: Option<&str>,
        open_only: bool,
    ) -> Result<(String, Vec<Val>), StoreError> {
        let mut sql = String::from(if open_only {
            "resolved IS NULL"
        } else {
            "1 = 1"
        });
        let mut p: Vec<Val> = vec![];
        if let Some(i) = institution_id {
            let org = self.db.read(|c| inst_org(c, i))?;
            if !scope_allows(scope, &org.id, org.comm.as_deref()) {
                return Err(StoreError::Forbidden("该机构不在您的数据范围内".into()));
            }
            match (&org.comm, org.lead) {
                (Some(comm), true) => {
                    sql.push_str(" AND comm = ?");
                    p.push(comm.as_str().into());
                }
                _ => {
                    sql.push_str(" AND inst = ?");
                    p.push(org.id.as_str().into());
                }
            }
        }
        match scope {
            Scope::County => {}
            Scope::Community(c) => {
                sql.push_str(" AND comm = ?");
                p.push(c.as_str().into());
            }
            Scope::Institution(i) => {
                // An institution-scoped user of a central pharmacy sees its community.
                let comm = self
                    .db
                    .read(|c| find_org(c, i))?
                    .filter(|o| o.lead)
                    .and_then(|o| o.comm);
                match comm {
                    Some(comm) => {
                        sql.push_str(" AND comm = ?");
                        p.push(comm.into());
                    }
                    None => {
                        sql.push_str(" AND inst = ?");
                        p.push(i.as_str().into());
                    }
                }
            }
        }
        Ok((sql, p))
    }

    /// Sets (or with `None` clears) the agreed yearly volume of a volume-based
    /// procurement drug for a community or one of its institutions. The
    /// community's central pharmacy, or a user without an institution who has
    /// the owner in scope (operations centre), may set it.
    pub fn pharmacy_set_vbp_volume(
        &self,
        actor: &Actor,
        owner: &str,
        drug_code: &str,
        units: Option<i64>,
    ) -> Result<(), StoreError> {
        let rx = self.ph_knowledge();
        let d = drug(&rx.knowledge, drug_code.trim())?;
        if d.vbp.is_none() {
            return Err(StoreError::Invalid(format!(
                "{}不是国家集中带量采购药品",
                d.name
            )));
        }
        if let Some(u) = units
            && !(0..=MAX_UNITS * 100).contains(&u)
        {
            return Err(StoreError::Invalid(format!(
                "协议采购量须为非负整数({})",
                d.unit
            )));
        }
        let at = crate::now_string();
        self.db.write(|tx| {
            let node = tx
                .query_one(
                    "SELECT kind, comm, inst, name FROM org_tree WHERE id = ?",
                    &[owner.into()],
                )?
                .map(Cols::new)
                .map(|mut c| (c.o(), c.o(), c.o(), c.s()))
                .ok_or_else(|| StoreError::Invalid(format!("机构 {owner} 不在机构目录中")))?;
            let (kind, comm, inst, name) = node;
            let is_comm = kind.as_deref() == Some("community");
            if !is_comm && inst.as_deref() != Some(owner) {
                return Err(StoreError::Invalid(format!(
                    "“{name}”既不是医共体也不是医疗机构"
                )));
            }
            let allowed = match &actor.institution {
                Some(a) => match &comm {
                    Some(c) => central_of(tx, c)?.as_deref() == Some(a.as_str()),
                    None => false,
                },
                None => actor.scope.allows(
                    (!is_comm).then_some(owner),
                    comm.as_deref(),
                    None,
                    None,
                ),
            };
            if !allowed {
                return Err(StoreError::Forbidden(
                    "只有本医共体中心药房或运营管理中心可以设定带量采购协议量".into(),
                ));
            }
            match units {
                Some(u) => tx.exec(
                    "INSERT INTO ph_vbp_volume (owner, drug, units, set_at, set_by) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (owner, drug) DO UPDATE SET units = excluded.units, set_at = excluded.set_at, set_by = excluded.set_by",
                    &[owner.into(), d.code.as_str().into(), Val::Int(u), at.as_str().into(), actor.user.as_str().into()],
                )?,
                None => tx.exec(
                    "DELETE FROM ph_vbp_volume WHERE owner = ? AND drug = ?",
                    &[owner.into(), d.code.as_str().into()],
                )?,
            };
            let rid = format!("{owner}|{}", d.code);
            let text = match units {
                Some(u) => format!("{} 协议量 {u}{}", d.name, d.unit),
                None => format!("{} 恢复默认协议量", d.name),
            };
            AuditRow::by(actor, &at, "pharmacy-vbp-volume")
                .on("PharmacyVbpVolume", &rid)
                .reason(Some(&text))
                .append(tx)
        })
    }

    /// Volume-based procurement progress of a community or an institution in
    /// the year of `as_of`: per VBP drug, units dispensed this year against the
    /// agreed volume (a community's defaults to the formulary's), and whether
    /// use keeps pace with the share of the year elapsed.
    pub fn pharmacy_vbp_progress(
        &self,
        scope: &Scope,
        owner: &str,
        as_of: NaiveDate,
    ) -> Result<VbpProgress, StoreError> {
        let rx = self.ph_knowledge();
        let k = &rx.knowledge;
        let year = as_of.year();
        let (name, is_comm, used, targets, stocked) = self.db.read(|c| {
            let (kind, comm, inst, name) = c
                .query_one(
                    "SELECT kind, comm, inst, name FROM org_tree WHERE id = ?",
                    &[owner.into()],
                )?
                .map(Cols::new)
                .map(|mut c| (c.o(), c.o(), c.o(), c.s()))
                .ok_or_else(|| StoreError::NotFound(format!("机构 {owner} 不存在")))?;
            let is_comm = kind.as_deref() == Some("community");
            if !is_comm && inst.as_deref() != Some(owner) {
                return Err(StoreError::Invalid(format!(
                    "“{name}”既不是医共体也不是医疗机构"
                )));
            }
            let visible = match scope {
                Scope::County => true,
                Scope::Community(s) => comm.as_deref() == Some(s.as_str()),
                Scope::Institution(i) => !is_comm && i == owner,
            };
            if !visible {
                return Err(StoreError::Forbidden("不在您的数据范围内".into()));
            }
            let col = if is_comm { "comm" } else { "inst" };
            let used: HashMap<String, i64> = c
                .query(
                    &format!("SELECT drug, SUM(units) FROM ph_usage WHERE year = ? AND {col} = ? GROUP BY drug"),
                    &[Val::Int(year as i64), owner.into()],
                )?
                .into_iter()
                .map(|r| {
                    let mut c = Cols::new(r);
                    (c.s(), c.i())
                })
                .collect();
            let targets: HashMap<String, i64> = c
                .query(
                    "SELECT drug, units FROM ph_vbp_volume WHERE owner = ?",
                    &[owner.into()],
                )?
                .into_iter()
                .map(|r| {
                    let mut c = Cols::new(r);
                    (c.s(), c.i())
                })
                .collect();
            let stocked: HashSet<String> = if is_comm {
                HashSet::new()
            } else {
                c.query(
                    "SELECT DISTINCT drug FROM ph_batch WHERE inst = ? AND qty > 0",
                    &[owner.into()],
                )?
                .into_iter()
                .map(|r| Cols::new(r).s())
                .collect()
            };
            Ok((name, is_comm, used, targets, stocked))
        })?;
        let year_days = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
            366
        } else {
            365
        };
        let elapsed = as_of.ordinal() as i64;
        let mut rows = vec![];
        for d in &k.drugs {
            let Some(v) = &d.vbp else { continue };
            let used = used.get(&d.code).copied().unwrap_or(0);
            let (target, source) = match targets.get(&d.code) {
                Some(t) => (Some(*t), "set"),
                None if is_comm && v.agreed_volume > 0 => (Some(v.agreed_volume), "formulary"),
                None => (None, "none"),
            };
            if !is_comm && target.is_none() && used == 0 && !stocked.contains(&d.code) {
                continue;
            }
            let target = target.filter(|t| *t > 0);
            rows.push(VbpRow {
                drug: d.code.clone(),
                name: d.name.clone(),
                unit: d.unit.clone(),
                vbp_batch: v.batch.clone(),
                target,
                target_source: if target.is_some() { source } else { "none" },
                used,
                percent: target.map(|t| 100.0 * used as f64 / t as f64),
                expected: target.map(|t| t * elapsed / year_days),
                on_track: target.map(|t| used * year_days >= t * elapsed),
            });
        }
        Ok(VbpProgress {
            owner: owner.to_string(),
            owner_name: name,
            is_community: is_comm,
            year,
            as_of,
            elapsed_days: elapsed,
            year_days,
            rows,
        })
    }
}

fn req_visible(scope: &Scope, r: &Requisition) -> bool {
    match scope {
        Scope::County => true,
        Scope::Community(c) => r.comm == *c,
        Scope::Institution(i) => r.inst == *i || r.central == *i,
    }
}

// ---------- the demo county's pharmacy ----------

/// A small deterministic generator (splitmix64), so the demo does not depend
/// on a random crate's stream staying the same across versions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, salt: &str) -> Rng {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in salt.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01B3);
        }
        Rng(h)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi].
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.next() as usize % v.len()]
    }
}

/// What a demo institution stocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DemoTier {
    Lead,
    County,
    Township,
    Village,
}

impl DemoTier {
    fn of(kind: Option<&str>, lead: bool) -> Option<DemoTier> {
        if lead {
            return Some(DemoTier::Lead);
        }
        match kind? {
            "general-hospital" | "tcm-hospital" | "maternal-child-hospital" | "mental-health" => {
                Some(DemoTier::County)
            }
            "township-centre" | "community-centre" => Some(DemoTier::Township),
            "village-clinic" => Some(DemoTier::Village),
            _ => None,
        }
    }
    fn tier(self) -> Tier {
        match self {
            DemoTier::Lead | DemoTier::County => Tier::County,
            DemoTier::Township => Tier::Township,
            DemoTier::Village => Tier::Village,
        }
    }
    /// How many formulary drugs it stocks (None: all).
    fn assortment(self) -> Option<usize> {
        match self {
            DemoTier::Lead => None,
            DemoTier::County => Some(200),
            DemoTier::Township => Some(150),
            DemoTier::Village => Some(60),
        }
    }
    /// Packages per batch.
    fn packages(self) -> (i64, i64) {
        match self {
            DemoTier::Lead => (40, 300),
            DemoTier::County => (10, 80),
            DemoTier::Township => (4, 40),
            DemoTier::Village => (1, 8),
        }
    }
    /// Yearly use of a VBP drug, in units.
    fn yearly_use(self) -> (i64, i64) {
        match self {
            DemoTier::Lead => (15_000, 40_000),
            DemoTier::County => (3_000, 10_000),
            DemoTier::Township => (2_000, 8_000),
            DemoTier::Village => (200, 1_200),
        }
    }
}

fn is_injection(d: &Drug) -> bool {
    d.form.contains("注射") || d.form.contains("粉针") || d.form.contains("输液")
}

/// A plausible purchase price per dispensing unit, stable per drug and seed.
fn demo_cost(seed: u64, d: &Drug) -> i64 {
    let mut r = Rng::new(seed, &format!("cost|{}", d.code));
    let (lo, hi): (f64, f64) = if is_injection(d) {
        (60.0, 12_000.0)
    } else if ["片", "胶囊", "丸", "粒"]
        .iter()
        .any(|f| d.form.contains(f))
    {
        (5.0, 3_000.0)
    } else if ["颗粒", "散", "袋"].iter().any(|f| d.form.contains(f)) {
        (30.0, 600.0)
    } else {
        (200.0, 5_000.0)
    };
    // Log-uniform, skewed towards the cheap end; procured (VBP) drugs are cheaper.
    let u = r.f().powf(1.6);
    let mut fen = (lo.ln() + u * (hi.ln() - lo.ln())).exp();
    if d.vbp.is_some() {
        fen *= 0.35;
    }
    (fen.round() as i64).max(1)
}

/// How suitable a drug is for a tier's shelf (higher first), None if not allowed.
fn demo_score(r: &mut Rng, d: &Drug, tier: DemoTier) -> Option<f64> {
    if let Some(x) = &d.restriction
        && tier.tier().level() < x.min_tier.level()
    {
        return None;
    }
    let primary = matches!(tier, DemoTier::Township | DemoTier::Village);
    if primary && d.controlled.is_some() {
        return None;
    }
    if tier == DemoTier::Village
        && matches!(
            d.antimicrobial,
            Some(
                yigong_rx::knowledge::AntimicrobialGrade::Restricted
                    | yigong_rx::knowledge::AntimicrobialGrade::Special
            )
        )
    {
        return None;
    }
    let mut s = r.f();
    if !is_injection(d) {
        s += 0.4;
    } else if tier == DemoTier::Village {
        s -= 0.6;
    }
    if d.insurance == "甲" {
        s += 0.3;
    }
    if d.long_rx {
        s += 0.3;
    }
    if d.vbp.is_some() {
        s += 0.3;
    }
    Some(s)
}

const SHORTAGE_NOTES: [&str; 5] = [
    "慢病患者长期处方用药,本院已断货",
    "季节性用量增加,库存告急",
    "上级医院下转患者需续用",
    "患者持续需要,本院无库存",
    "家庭医生签约居民反映购药困难",
];

const REJECT_REASONS: [&str; 3] = [
    "本月请领量已超出核定用量,请核实后重新申请",
    "该药品中心药房暂时缺货,已安排采购",
    "请领数量与近三月用量不符,请说明用途",
];

/// `hour` hours after local (UTC+8) midnight of `day`, as stored (UTC).
fn demo_at(day: NaiveDate, hour: i64) -> String {
    let t =
        day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + chrono::Duration::hours(hour - 8);
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Inserts rows in multi-row statements (a few round trips instead of one per row).
fn insert_rows(tx: &mut dyn Sql, table_cols: &str, rows: &[Vec<Val>]) -> Result<(), StoreError> {
    for chunk in rows.chunks(200) {
        let width = chunk[0].len();
        let one = format!("({})", vec!["?"; width].join(", "));
        let sql = format!(
            "INSERT INTO {table_cols} VALUES {}",
            vec![one.as_str(); chunk.len()].join(", ")
        );
        let params: Vec<Val> = chunk.iter().flatten().cloned().collect();
        tx.exec(&sql, &params)?;
    }
    Ok(())
}

struct DemoInst {
    org: Org,
    tier: DemoTier,
}

impl Store {
    /// Units of each drug the prescriptions not yet dispensed need, per
    /// institution (the demo stocks what its prescriptions ask for). Empty when
    /// there are none or they cannot be read.
    fn ph_demo_demand(&self, k: &Knowledge) -> HashMap<String, HashMap<String, i64>> {
        let rows = self
            .db
            .read(|c| {
                c.query(
                    "SELECT inst, body FROM rx_prescription WHERE status NOT IN ('dispensed', 'cancelled')",
                    &[],
                )
            })
            .unwrap_or_default();
        let mut out: HashMap<String, HashMap<String, i64>> = HashMap::new();
        for r in rows {
            let mut c = Cols::new(r);
            let (inst, body) = (c.s(), c.s());
            let Ok(rx) = serde_json::from_str::<yigong_rx::Prescription>(&body) else {
                continue;
            };
            for item in &rx.items {
                let (Some(d), Some(units)) = (
                    k.drug(item.drug.trim()),
                    yigong_rx::engine::units_needed(k, item),
                ) else {
                    continue;
                };
                *out.entry(inst.clone())
                    .or_default()
                    .entry(d.code.clone())
                    .or_default() += units.max(0);
            }
        }
        out
    }

    /// Gives the demo county believable pharmacy data as of `as_of`: every
    /// institution stocks a share of the formulary fitting its tier (village
    /// clinics about 60 common drugs, township centres about 150, lead
    /// hospitals all) in several batches with expiries spread over two years
    /// (a few near expiry, one or two already expired) at plausible costs; VBP
    /// drugs have been dispensed this year and have agreed volumes; each
    /// community has requisitions in every state and a few open shortages.
    /// Deterministic for a seed; one transaction per institution. Does nothing
    /// (returns 0) when stock exists already or the formulary is empty.
    /// Returns the number of batches created.
    pub fn pharmacy_seed_demo(&self, seed: u64, as_of: NaiveDate) -> Result<usize, StoreError> {
        let rx = self.ph_knowledge();
        let k = &rx.knowledge;
        if k.drugs.is_empty() {
            return Ok(0);
        }
        let existing = self
            .db
            .read(|c| c.query_one("SELECT id FROM ph_batch LIMIT 1", &[]))?;
        if existing.is_some() {
            return Ok(0);
        }
        let insts: Vec<DemoInst> = self.db.read(|c| {
            Ok(c.query(
                "SELECT id, name, kind, tier, comm, lead FROM org_tree WHERE inst = id ORDER BY id",
                &[],
            )?
            .into_iter()
            .filter_map(|r| {
                let mut c = Cols::new(r);
                let org = Org {
                    id: c.s(),
                    name: c.s(),
                    kind: c.o(),
                    tier: c.o().as_deref().and_then(Tier::from_code),
                    comm: c.o(),
                    lead: c.i() == 1,
                };
                let tier = DemoTier::of(org.kind.as_deref(), org.lead)?;
                org.comm.is_some().then_some(DemoInst { org, tier })
            })
            .collect())
        })?;
        let demand = self.ph_demo_demand(k);
        let actor = Actor::system("synth");
        let year = as_of.year();
        let year_start = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(as_of);
        let elapsed = (as_of - year_start).num_days() + 1;
        let year_days = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
            366
        } else {
            365
        };
        let costs: HashMap<&str, i64> = k
            .drugs
            .iter()
            .map(|d| (d.code.as_str(), demo_cost(seed, d)))
            .collect();
        let mut batches = 0;
        // What each institution stocks (for requisitions and shortages later).
        let mut shelves: HashMap<String, Vec<&Drug>> = HashMap::new();
        // Yearly allocation of each VBP drug per community.
        let mut community_volume: BTreeMap<(String, String), i64> = BTreeMap::new();
        for inst in &insts {
            let mut r = Rng::new(seed, &inst.org.id);
            // What the institution's waiting prescriptions need is on its shelf.
            let needs = demand.get(&inst.org.id);
            let needed = |d: &Drug| needs.and_then(|n| n.get(&d.code)).copied();
            let mut ranked: Vec<(f64, &Drug)> = k
                .drugs
                .iter()
                .filter_map(|d| {
                    let s = demo_score(&mut r, d, inst.tier);
                    match needed(d) {
                        Some(_) => Some((s.unwrap_or(0.0) + 10.0, d)),
                        None => s.map(|s| (s, d)),
                    }
                })
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.code.cmp(&b.1.code)));
            if let Some(n) = inst.tier.assortment() {
                ranked.truncate(n.max(needs.map_or(0, HashMap::len)));
            }
            let mut shelf: Vec<&Drug> = ranked.into_iter().map(|(_, d)| d).collect();
            shelf.sort_by(|a, b| a.code.cmp(&b.code));
            // Batches: (drug, lot, expiry offset in days, units, cost, received offset).
            let mut specs: Vec<(&Drug, String, i64, i64, i64, i64)> = vec![];
            for &d in &shelf {
                let n = match inst.tier {
                    DemoTier::Lead => r.range(2, 3),
                    DemoTier::County | DemoTier::Township => r.range(1, 3),
                    DemoTier::Village => r.range(1, 2),
                };
                let (lo, hi) = inst.tier.packages();
                for _ in 0..n {
                    let mut units = r.range(lo, hi) * package(d);
                    if d.splittable && package(d) > 1 && units > package(d) && r.chance(0.3) {
                        units -= r.range(1, package(d) - 1);
                    }
                    let base = costs[d.code.as_str()];
                    let cost = (base as f64 * (0.92 + 0.16 * r.f())).round().max(1.0) as i64;
                    // Unique within the institution (the running number).
                    let lot = format!(
                        "{}{:02}{:04}",
                        (year - r.range(0, 1) as i32) % 100,
                        r.range(1, 12),
                        specs.len() + 1
                    );
                    specs.push((
                        d,
                        lot,
                        r.range(NEAR_EXPIRY_DAYS + 1, 730),
                        units,
                        cost,
                        r.range(3, 200),
                    ));
                }
            }
            // A few batches near expiry, one or two already expired.
            // (Not of drugs waiting prescriptions need.)
            let spare: Vec<usize> = (0..specs.len())
                .filter(|&i| needed(specs[i].0).is_none())
                .collect();
            if !spare.is_empty() {
                for _ in 0..r.range(3, 5) {
                    let i = *r.pick(&spare);
                    specs[i].2 = r.range(5, NEAR_EXPIRY_DAYS);
                }
                for _ in 0..r.range(1, 2) {
                    let i = *r.pick(&spare);
                    // Expired a while ago: before any demo shipment of this month.
                    specs[i].2 = -r.range(15, 90);
                    specs[i].5 = specs[i].5.max(-specs[i].2 + 30);
                }
            }
            // Enough unexpired stock for twice what waiting prescriptions need.
            for (code, need) in needs.into_iter().flatten() {
                let usable: i64 = specs
                    .iter()
                    .filter(|s| s.0.code == *code && s.2 >= 0)
                    .map(|s| s.3)
                    .sum();
                if let Some(s) = specs
                    .iter_mut()
                    .filter(|s| s.0.code == *code && s.2 >= 0)
                    .max_by_key(|s| s.2)
                    && usable < 2 * need
                {
                    let p = package(s.0);
                    s.3 += (2 * need - usable + p - 1) / p * p;
                }
            }
            // VBP use this year, per drug: (yearly allocation, used so far).
            let mut vbp_use: Vec<(&Drug, i64, i64)> = vec![];
            for d in shelf.iter().copied().filter(|d| d.vbp.is_some()) {
                let (lo, hi) = inst.tier.yearly_use();
                let mut yearly = r.range(lo, hi);
                if is_injection(d) {
                    yearly /= 4;
                }
                let yearly = (yearly / 10).max(1) * 10;
                let pace = 0.7 + 0.55 * r.f();
                let used =
                    (yearly as f64 * pace * elapsed as f64 / year_days as f64).round() as i64;
                vbp_use.push((d, yearly, used));
                if let Some(comm) = &inst.org.comm {
                    *community_volume
                        .entry((comm.clone(), d.code.clone()))
                        .or_default() += yearly;
                }
            }
            // Minimum stock for a few shelf drugs of primary institutions, under what is held.
            let mut mins: Vec<(&Drug, i64)> = vec![];
            if matches!(inst.tier, DemoTier::Township | DemoTier::Village) {
                for _ in 0..8.min(shelf.len()) {
                    let d = *r.pick(&shelf);
                    let held: i64 = specs
                        .iter()
                        .filter(|s| s.0.code == d.code && s.2 >= 0)
                        .map(|s| s.3)
                        .sum();
                    let min = (package(d) * r.range(1, 2)).min(held / 2);
                    if min > 0 && !mins.iter().any(|(m, _)| m.code == d.code) {
                        mins.push((d, min));
                    }
                }
            }
            let org = inst.org.clone();
            let n = specs.len();
            let who = actor.user.as_str();
            let comm = org.comm.clone();
            let batch_rows: Vec<Vec<Val>> = specs
                .iter()
                .map(|(d, lot, exp, units, cost, recv)| {
                    vec![
                        org.id.as_str().into(),
                        comm.clone().into(),
                        d.code.as_str().into(),
                        lot.as_str().into(),
                        ymd(as_of + chrono::Duration::days(*exp)).into(),
                        Val::Int(*units),
                        Val::Int(*cost),
                        demo_at(as_of - chrono::Duration::days(*recv), 9).into(),
                        Val::Int(1),
                    ]
                })
                .collect();
            // Monthly totals of what was dispensed this year, and the year's use.
            let mut use_rows: Vec<Vec<Val>> = vec![];
            let mut usage_rows: Vec<Vec<Val>> = vec![];
            let mut volume_rows: Vec<Vec<Val>> = vec![];
            for (d, yearly, used) in &vbp_use {
                let months = as_of.month();
                let mut left = *used;
                for m in 1..=months {
                    let units = if m == months {
                        left
                    } else {
                        used * 30 / elapsed.max(1)
                    }
                    .min(left);
                    if units <= 0 {
                        continue;
                    }
                    left -= units;
                    let day = NaiveDate::from_ymd_opt(year, m, 15)
                        .unwrap_or(as_of)
                        .min(as_of);
                    use_rows.push(vec![
                        demo_at(day, 17).into(),
                        org.id.as_str().into(),
                        d.code.as_str().into(),
                        Val::Null,
                        "dispense".into(),
                        Val::Int(-units),
                        Val::Int(-units * costs[d.code.as_str()]),
                        "月度发药汇总".into(),
                        who.into(),
                        "演示数据".into(),
                    ]);
                }
                usage_rows.push(vec![
                    Val::Int(year as i64),
                    org.id.as_str().into(),
                    d.code.as_str().into(),
                    comm.clone().into(),
                    Val::Int(*used),
                ]);
                volume_rows.push(vec![
                    org.id.as_str().into(),
                    d.code.as_str().into(),
                    Val::Int(*yearly),
                    demo_at(year_start, 9).into(),
                    who.into(),
                ]);
            }
            let min_rows: Vec<Vec<Val>> = mins
                .iter()
                .map(|(d, min)| {
                    vec![
                        org.id.as_str().into(),
                        d.code.as_str().into(),
                        Val::Int(*min),
                    ]
                })
                .collect();
            let opening = if org.lead { "receive" } else { "transfer-in" };
            self.db.write(|tx| {
                insert_rows(
                    tx,
                    "ph_batch (inst, comm, drug, lot, expiry, qty, unit_cost, received, version)",
                    &batch_rows,
                )?;
                // The opening stock of every batch, in the ledger.
                tx.exec(
                    "INSERT INTO ph_ledger (at, inst, drug, batch, kind, units, cost, ref, actor, note) \
                     SELECT received, inst, drug, id, ?, qty, qty * unit_cost, '期初库存', ?, '演示数据' FROM ph_batch WHERE inst = ? ORDER BY id",
                    &[opening.into(), who.into(), org.id.as_str().into()],
                )?;
                insert_rows(
                    tx,
                    "ph_ledger (at, inst, drug, batch, kind, units, cost, ref, actor, note)",
                    &use_rows,
                )?;
                insert_rows(tx, "ph_usage (year, inst, drug, comm, units)", &usage_rows)?;
                insert_rows(
                    tx,
                    "ph_vbp_volume (owner, drug, units, set_at, set_by)",
                    &volume_rows,
                )?;
                insert_rows(tx, "ph_min_stock (inst, drug, units)", &min_rows)?;
                let reason = format!("{n} 个批次");
                AuditRow::by(&actor, &crate::now_string(), "pharmacy-seed")
                    .on("Organization", &org.id)
                    .reason(Some(&reason))
                    .append(tx)
            })?;
            batches += n;
            shelves.insert(inst.org.id.clone(), shelf);
        }
        // Agreed volumes per community: what its members were allocated, in hundreds.
        self.db.write(|tx| {
            for ((comm, drug), units) in &community_volume {
                let units = (units + 99) / 100 * 100;
                tx.exec(
                    "INSERT INTO ph_vbp_volume (owner, drug, units, set_at, set_by) VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, drug) DO NOTHING",
                    &[comm.as_str().into(), drug.as_str().into(), Val::Int(units), demo_at(year_start, 9).into(), actor.user.as_str().into()],
                )?;
            }
            AuditRow::by(&actor, &crate::now_string(), "pharmacy-seed")
                .on("PharmacyVbpVolume", "demo")
                .append(tx)
        })?;
        // Requisitions in every state and open shortages, per community.
        let mut comms: Vec<&str> = insts.iter().filter_map(|i| i.org.comm.as_deref()).collect();
        comms.sort_unstable();
        comms.dedup();
        for comm in comms {
            let Some(central) = insts
                .iter()
                .find(|i| i.tier == DemoTier::Lead && i.org.comm.as_deref() == Some(comm))
            else {
                continue;
            };
            let mut primaries: Vec<&DemoInst> = insts
                .iter()
                .filter(|i| {
                    i.org.comm.as_deref() == Some(comm)
                        && matches!(i.tier, DemoTier::Township | DemoTier::Village)
                })
                .collect();
            if primaries.is_empty() {
                continue;
            }
            let mut r = Rng::new(seed, &format!("flows|{comm}"));
            for i in (1..primaries.len()).rev() {
                let j = r.range(0, i as i64) as usize;
                primaries.swap(i, j);
            }
            let central_shelf: HashSet<&str> = shelves
                .get(&central.org.id)
                .map(|s| s.iter().map(|d| d.code.as_str()).collect())
                .unwrap_or_default();
            let plan = [
                ReqState::Requested,
                ReqState::Requested,
                ReqState::Approved,
                ReqState::Approved,
                ReqState::Rejected,
                ReqState::Shipped,
                ReqState::Shipped,
                ReqState::Received,
                ReqState::Received,
                ReqState::Received,
            ];
            for (n, target) in plan.iter().enumerate() {
                let req = primaries[n % primaries.len()];
                let candidates: Vec<&Drug> = shelves
                    .get(&req.org.id)
                    .map(|s| {
                        s.iter()
                            .copied()
                            .filter(|d| central_shelf.contains(d.code.as_str()))
                            .collect()
                    })
                    .unwrap_or_default();
                if candidates.is_empty() {
                    continue;
                }
                let mut lines: Vec<DispenseLine> = vec![];
                for _ in 0..r.range(2, 4) {
                    let d = *r.pick(&candidates);
                    if lines.iter().any(|l| l.drug == d.code) {
                        continue;
                    }
                    let units = package(d) * r.range(2, 10);
                    lines.push(DispenseLine {
                        drug: d.code.clone(),
                        units,
                    });
                }
                let day0 = as_of - chrono::Duration::days(r.range(2, 12));
                let step = |h: i64| demo_at(day0, 8 + h);
                let target = *target;
                let reject = *r.pick(&REJECT_REASONS);
                let cut = r.chance(0.5);
                let result = self.db.write(|tx| {
                    let id = request_tx(
                        tx,
                        &step(0),
                        &actor,
                        &req.org.id,
                        &lines,
                        Some("常规月度请领"),
                        k,
                    )?;
                    if target == ReqState::Requested {
                        return Ok(());
                    }
                    if target == ReqState::Rejected {
                        return reject_tx(tx, &step(2), &actor, id, 1, reject);
                    }
                    // Sometimes the central pharmacy approves less of the first line.
                    let approved: Vec<(i64, i64)> = if cut {
                        let d = k.drug(&lines[0].drug);
                        let p = d.map_or(1, package);
                        vec![(1, (lines[0].units / 2 / p).max(1) * p)]
                    } else {
                        vec![]
                    };
                    approve_tx(tx, &step(2), &actor, id, 1, &approved, Some("同意"), k)?;
                    if target == ReqState::Approved {
                        return Ok(());
                    }
                    ship_tx(tx, &step(20), &actor, id, 2, k)?;
                    if target == ReqState::Shipped {
                        return Ok(());
                    }
                    confirm_tx(tx, &step(30), &actor, id, 3)
                });
                // A line the central pharmacy cannot cover is skipped, not fatal to the demo.
                match result {
                    Ok(()) | Err(StoreError::Conflict(_)) | Err(StoreError::Invalid(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            // Open shortages of drugs a few primary institutions do not stock.
            for (n, inst) in primaries.iter().take(4).enumerate() {
                let shelf: HashSet<&str> = shelves
                    .get(&inst.org.id)
                    .map(|s| s.iter().map(|d| d.code.as_str()).collect())
                    .unwrap_or_default();
                let missing: Vec<&Drug> = k
                    .drugs
                    .iter()
                    .filter(|d| !shelf.contains(d.code.as_str()))
                    .filter(|d| {
                        let mut rr = Rng::new(seed, &d.code);
                        demo_score(&mut rr, d, inst.tier).is_some()
                    })
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let d = *r.pick(&missing);
                let note = *r.pick(&SHORTAGE_NOTES);
                let at = demo_at(as_of - chrono::Duration::days(r.range(0, 6)), 10);
                let resolve = n == 3;
                let code = d.code.clone();
                let result = self.db.write(|tx| {
                    let id =
                        report_shortage_tx(tx, &at, &actor, &inst.org.id, &code, Some(note), k)?;
                    if resolve {
                        resolve_shortage_tx(tx, &at, &actor, id, 1, "已通过调剂从邻近卫生院借调")?;
                    }
                    Ok(())
                });
                match result {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(batches)
    }
}
