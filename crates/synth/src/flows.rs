//! A year of care across the community (issue 4) for the synthetic county:
//! two-way referrals, orders to the shared diagnostic centres with their reports
//! and critical values, remote consultations, and appointments on the lead
//! hospitals' clinics and the experts' clinics at the township centres.
//!
//! Everything is a raw FHIR resource built with the `yigong-care` builders, so
//! the generator writes exactly what the server writes for live traffic. Flows
//! hang on what the household loop already knows: a resident's encounters and
//! managed conditions, their home township centre, their community's lead
//! hospital and the staff of both.
//!
//! * Up-referrals that ended in care at the lead hospital are anchored on the
//!   resident's admission, emergency or outpatient visit there (the referral
//!   was asked for before it); rejected and cancelled ones, and those still in
//!   progress at `as_of`, start at a visit to the home centre. About 2% go out
//!   of the county (anchored on an admission outside it, filed by the lead
//!   hospital).
//! * Down-referrals follow an admission at the lead hospital, with a discharge
//!   summary (DocumentReference) and a follow-up plan (CarePlan).
//! * Exam orders start at primary-level visits and go to the lead hospital's
//!   centres (the default rules: a community without configured centres uses
//!   its lead hospital for every kind).
//! * Consultations are asked by township centres and village clinics of the
//!   lead hospital's experts.
//! * Appointments book the Slots of the Schedules emitted before the
//!   residents ([`FlowModel::emit_schedules`]); slot state is the only thing
//!   kept across households (it is per institution).
//!
//! Each Task is written once, in its state at the end of the simulated year
//! (the end of `as_of`, China time), with every step it took. Exam Tasks stop at
//! "received": the store completes them from the report's `issued` time and
//! raises the critical-value acknowledgement Tasks itself; an acknowledgement
//! that happened is written after its report.

use crate::Summary;
use crate::care::diagnosis_name;
use crate::dist::pick;
use crate::geography::{Geography, Service};
use crate::people::Person;
use crate::staff::Staff;
use base64::Engine;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use rand::Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use yigong_care::codes::EXT_RECORDED_AT;
use yigong_care::exams::{self, Analyte, CentreKind, ExamItem};
use yigong_care::requests::{self, Parties, ResultValue};
use yigong_care::{Flow, Rules, plus_minutes, slots, task};
use yigong_core::{Condition, Encounter, EncounterClass, OrgKind, Role, Sex, Title};

/// The FHIR resource types emitted as [`crate::Item::Resource`]: the care
/// flows', and the Claims of care outside the county (`claims.rs`).
pub const RESOURCE_TYPES: [&str; 10] = [
    "ServiceRequest",
    "Task",
    "Observation",
    "DiagnosticReport",
    "Schedule",
    "Slot",
    "Appointment",
    "CarePlan",
    "DocumentReference",
    "Claim",
];

// Rates, per eligible encounter (calibrated so that 100 residents a year give
// about 1.5 up-referrals, 0.6 down-referrals, 12 exam orders, 0.3
// consultations and 2 booked appointments).
/// Up-referral before an admission at the lead hospital.
const P_UP_INPATIENT: f64 = 0.095;
/// Up-referral (green channel) before an emergency visit at the lead hospital.
const P_UP_EMERGENCY: f64 = 0.0126;
/// Up-referral before an outpatient visit at the lead hospital.
const P_UP_OUTPATIENT: f64 = 0.0085;
/// A referral asked at a home-centre visit that was rejected or cancelled.
const P_UP_REFUSED: f64 = 0.00075;
/// A referral asked at a home-centre visit in the last week, still under way.
const P_UP_RECENT: f64 = 0.013;
/// Filed out-of-county referral before an admission outside the county.
const P_OUT_OF_COUNTY: f64 = 0.0086;
/// Down-referral after an admission at the lead hospital.
const P_DOWN: f64 = 0.097;
/// Exam orders per primary-level visit (before the diagnosis factor).
const P_EXAM: f64 = 0.044;
/// Consultation per primary-level visit (before the diagnosis factor).
const P_CONSULT: f64 = 0.00108;
/// Booked appointment before an outpatient visit at a lead hospital.
const P_BOOKED_LEAD: f64 = 0.0085;
/// Booked appointment at an expert's clinic at the township centre.
const P_BOOKED_EXPERT: f64 = 0.05;
/// A follow-up appointment in the next two weeks, booked at a recent visit.
const P_FOLLOW_UP: f64 = 0.008;

/// Share of clinic slots held for referrals until two days before the session.
const HELD_SHARE: f64 = 0.3;
/// Hours before a session that held slots open to everybody.
const RELEASE_HOURS: i64 = 48;
/// Days after `as_of` the schedules reach.
const FUTURE_DAYS: i64 = 14;
/// The clinics of each lead hospital offered on the platform.
const LEAD_CLINICS: [Service; 3] = [Service::General, Service::Surgery, Service::Gynaecology];
/// Days of the month of the experts' clinics at township centres (专家下基层).
const EXPERT_DAYS: [u32; 3] = [5, 15, 25];

const OUT_OF_COUNTY_HOSPITALS: [(&str, u32); 3] = [
    ("西南医科大学附属医院", 60),
    ("四川大学华西医院", 25),
    ("重庆医科大学附属第一医院", 15),
];
const APPROVED_BY: &str = "泸县医疗保障局";

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn minutes(m: i64) -> Duration {
    Duration::minutes(m)
}

/// The day in China (UTC+8) of an instant.
fn local_day(t: DateTime<Utc>) -> NaiveDate {
    (t + Duration::hours(8)).date_naive()
}

/// `minute` minutes after midnight of `day` in China, as UTC.
fn at_local(day: NaiveDate, minute: i64) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(day.and_time(NaiveTime::MIN) + minutes(minute) - Duration::hours(8)))
}

/// A delay in minutes: mostly within `usual`, with a `late` share in `tail`.
fn delay(rng: &mut impl Rng, usual: (i64, i64), late: f64, tail: (i64, i64)) -> Duration {
    let (lo, hi) = if rng.random_bool(late) { tail } else { usual };
    minutes(rng.random_range(lo..=hi))
}

/// How long the asked side takes to answer a request of `priority` (about 5%
/// beyond the default deadline for routine and urgent, about 10% for stat).
fn response_delay(rng: &mut impl Rng, priority: &str) -> Duration {
    match priority {
        "stat" => delay(rng, (5, 30), 0.1, (31, 40)),
        "urgent" => delay(rng, (10, 110), 0.05, (121, 200)),
        _ => delay(rng, (60, 47 * 60), 0.05, (48 * 60 + 1, 72 * 60)),
    }
}

fn icd_name(code: &str) -> String {
    diagnosis_name(code).unwrap_or(code).to_string()
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

fn recorded_at(org: &str) -> Value {
    json!([{"url": EXT_RECORDED_AT, "valueReference": {"reference": format!("Organization/{org}")}}])
}

/// One step of a flow: state, time and who took it.
struct Step {
    state: &'static str,
    at: DateTime<Utc>,
    by: Option<String>,
}

fn step(state: &'static str, at: DateTime<Utc>, by: Option<&str>) -> Step {
    Step {
        state,
        at,
        by: by.map(str::to_string),
    }
}

/// A clinic plan of one practitioner at one institution.
struct Sched {
    id: String,
    /// Short code used in slot ids.
    code: String,
    inst: usize,
    practitioner: String,
    service: String,
    comment: String,
}

/// One clinic session: `n` consecutive 15-minute slots from `start`.
struct Session {
    sched: usize,
    start: DateTime<Utc>,
    n: u8,
    /// Bit k: slot k is held for referrals.
    held: u16,
    /// Bit k: slot k has been booked (at most once).
    booked: u16,
}

/// The slots of every schedule and which are taken.
struct SlotBook {
    scheds: Vec<Sched>,
    sessions: Vec<Session>,
    /// (institution, day in China) → sessions, in schedule order.
    by_day: BTreeMap<(usize, NaiveDate), Vec<usize>>,
}

/// A booked slot.
struct Booked {
    session: usize,
    k: usize,
    slot_id: String,
    view: slots::SlotView,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl SlotBook {
    fn slot_id(&self, s: usize, k: usize) -> String {
        let session = &self.sessions[s];
        let day = local_day(session.start);
        format!(
            "sl-{}-{}-{:02}",
            self.scheds[session.sched].code,
            day.format("%Y%m%d"),
            k + 1
        )
    }

    fn slot_times(&self, s: usize, k: usize) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.sessions[s].start + minutes(15 * k as i64);
        (start, start + minutes(15))
    }

    fn held_until(&self, s: usize, k: usize) -> Option<DateTime<Utc>> {
        (self.sessions[s].held & (1 << k) != 0)
            .then(|| self.slot_times(s, k).0 - Duration::hours(RELEASE_HOURS))
    }

    fn slot(&self, s: usize, k: usize) -> Value {
        let (start, end) = self.slot_times(s, k);
        slots::slot(
            &self.slot_id(s, k),
            &self.scheds[self.sessions[s].sched].id,
            &fmt(start),
            &fmt(end),
            self.held_until(s, k).map(fmt).as_deref(),
        )
    }

    fn has_sessions(&self, inst: usize, day: NaiveDate) -> bool {
        self.by_day.contains_key(&(inst, day))
    }

    /// Books a free slot at `inst` on `day`, at time `at`: a referral takes a held
    /// slot if one is left, else any free slot; anyone else only slots that are
    /// not held or already released.
    fn book(
        &mut self,
        rng: &mut impl Rng,
        inst: usize,
        day: NaiveDate,
        at: DateTime<Utc>,
        referral: bool,
    ) -> Option<Booked> {
        let sessions = self.by_day.get(&(inst, day))?;
        let mut held = vec![];
        let mut open = vec![];
        for &s in sessions {
            for k in 0..self.sessions[s].n as usize {
                let (start, _) = self.slot_times(s, k);
                if self.sessions[s].booked & (1 << k) != 0 || start <= at {
                    continue;
                }
                match self.held_until(s, k) {
                    Some(until) if at < until => {
                        if referral {
                            held.push((s, k));
                        }
                    }
                    _ => open.push((s, k)),
                }
            }
        }
        let choices = if held.is_empty() { open } else { held };
        if choices.is_empty() {
            return None;
        }
        let (s, k) = choices[rng.random_range(0..choices.len())];
        self.sessions[s].booked |= 1 << k;
        let slot = self.slot(s, k);
        let view = slots::read_slot(&slot).expect("generated slots are valid");
        debug_assert!(slots::may_book(&view, &fmt(at), referral).is_ok());
        let (start, end) = self.slot_times(s, k);
        Some(Booked {
            session: s,
            k,
            slot_id: self.slot_id(s, k),
            view,
            start,
            end,
        })
    }
}

/// The parties and time of a referral asked at the home centre.
struct HomeReferral {
    lead: usize,
    home: usize,
    priority: &'static str,
    clinician: Option<String>,
    taker: Option<String>,
    requested: DateTime<Utc>,
}

/// What is known of the resident whose flows are being made.
struct Resident<'p> {
    /// The resident's own record (at the home institution).
    pid: &'p str,
    age: u32,
    sex: Sex,
    /// Township centre of the resident's village.
    home: usize,
    /// Village clinic, if the village has one.
    clinic: Option<usize>,
    lead: usize,
    /// Codes of managed chronic conditions.
    chronic: Vec<&'p str>,
    /// Running number for this resident's ids.
    n: u32,
    out: Vec<Value>,
}

impl Resident<'_> {
    fn next_id(&mut self, prefix: &str, patient: &str) -> String {
        self.n += 1;
        format!("{prefix}-{patient}-{}", self.n)
    }
}

/// The flows model, built once per county; holds the slot book.
pub struct FlowModel<'a> {
    geo: &'a Geography,
    staff: &'a Staff,
    rules: Rules,
    /// The end of `as_of` in China: nothing happens after it.
    now: DateTime<Utc>,
    /// The start of the simulated year.
    year_start: DateTime<Utc>,
    as_of: NaiveDate,
    inst_ix: HashMap<&'a str, usize>,
    /// Community of each institution.
    community_of: Vec<Option<usize>>,
    names: HashMap<&'a str, &'a str>,
    /// Chief and associate chief physicians of each lead hospital (by community).
    seniors: Vec<Vec<&'a str>>,
    /// Staff of each lead hospital's centre departments (by community, by kind).
    readers: Vec<[Vec<&'a str>; 4]>,
    book: SlotBook,
    barcode_seq: u64,
    filing_seq: u64,
}

fn kind_ix(kind: CentreKind) -> usize {
    CentreKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl<'a> FlowModel<'a> {
    pub fn new(
        geo: &'a Geography,
        staff: &'a Staff,
        as_of: NaiveDate,
        rng: &mut impl Rng,
    ) -> FlowModel<'a> {
        let inst_ix: HashMap<&str, usize> = geo
            .insts
            .iter()
            .enumerate()
            .map(|(i, x)| (x.id.as_str(), i))
            .collect();
        let names: HashMap<&str, &str> = geo
            .orgs
            .iter()
            .map(|o| (o.id.as_str(), o.name.as_str()))
            .collect();
        let mut community_of = vec![None; geo.insts.len()];
        for o in &geo.orgs {
            if let (Some(&i), Some(parent)) = (inst_ix.get(o.id.as_str()), o.parent.as_deref())
                && let Some(c) = geo.communities.iter().position(|c| c.id == parent)
            {
                community_of[i] = Some(c);
            }
        }
        let in_dept = |inst: usize, name: &str| -> Vec<&'a str> {
            let Some(d) = geo.insts[inst].depts.iter().find(|d| d.spec.name == name) else {
                return vec![];
            };
            staff
                .practitioners
                .iter()
                .filter(|p| p.department.as_deref() == Some(d.id.as_str()))
                .map(|p| p.id.as_str())
                .collect()
        };
        let mut seniors = vec![];
        let mut readers = vec![];
        for c in 0..geo.communities.len() {
            let lead = geo.lead_of(c);
            let lead_id = geo.insts[lead].id.as_str();
            seniors.push(
                staff
                    .practitioners
                    .iter()
                    .filter(|p| {
                        p.primary_institution == lead_id
                            && p.role == Role::Physician
                            && matches!(p.title, Title::ChiefPhysician | Title::AssociateChief)
                    })
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>(),
            );
            let lab = in_dept(lead, "检验科");
            readers.push([
                lab.clone(),
                in_dept(lead, "医学影像科"),
                in_dept(lead, "心电诊断科"),
                lab,
            ]);
        }
        let first_day = as_of - Duration::days(364);
        let mut model = FlowModel {
            geo,
            staff,
            rules: Rules::default(),
            now: at_local(as_of, 24 * 60) - Duration::seconds(1),
            year_start: at_local(first_day, 0),
            as_of,
            inst_ix,
            community_of,
            names,
            seniors,
            readers,
            book: SlotBook {
                scheds: vec![],
                sessions: vec![],
                by_day: BTreeMap::new(),
            },
            barcode_seq: 0,
            filing_seq: 0,
        };
        model.plan_schedules(rng, first_day);
        model
    }

    /// Lead-hospital specialist clinics (Monday to Saturday mornings) and the lead
    /// hospital experts' clinics at every township centre (days 5, 15, 25).
    fn plan_schedules(&mut self, rng: &mut impl Rng, first_day: NaiveDate) {
        let geo = self.geo;
        let last_day = self.as_of + Duration::days(FUTURE_DAYS);
        let mut scheds = vec![];
        for c in 0..geo.communities.len() {
            let lead = geo.lead_of(c);
            let inst = &geo.insts[lead];
            let code = inst.id.trim_start_matches("org-");
            for (k, service) in LEAD_CLINICS.iter().enumerate() {
                let Some(d) = inst.dept_for(*service) else {
                    continue;
                };
                let dept = &inst.depts[d];
                let in_dept: Vec<&yigong_core::Practitioner> = self
                    .staff
                    .practitioners
                    .iter()
                    .filter(|p| {
                        p.department.as_deref() == Some(dept.id.as_str())
                            && p.role == Role::Physician
                    })
                    .collect();
                let senior: Vec<&str> = in_dept
                    .iter()
                    .filter(|p| matches!(p.title, Title::ChiefPhysician | Title::AssociateChief))
                    .map(|p| p.id.as_str())
                    .collect();
                let pool: Vec<&str> = if senior.is_empty() {
                    in_dept.iter().map(|p| p.id.as_str()).collect()
                } else {
                    senior
                };
                if pool.is_empty() {
                    continue;
                }
                let doc = pool[rng.random_range(0..pool.len())];
                scheds.push((
                    Sched {
                        id: format!("sch-{code}-{}", k + 1),
                        code: format!("{code}-{}", k + 1),
                        inst: lead,
                        practitioner: doc.to_string(),
                        service: format!("{}专家门诊", dept.spec.name),
                        comment: format!(
                            "每周一至周六上午开诊;约三成号源预留给医共体成员单位转诊,开诊前{RELEASE_HOURS}小时未约出的向社会开放"
                        ),
                    },
                    false,
                ));
            }
        }
        for t in &geo.townships {
            let lead = geo.lead_of(t.community);
            let centre = &geo.insts[t.centre];
            let seconded: Vec<&str> = self
                .staff
                .practitioners
                .iter()
                .filter(|p| {
                    matches!(p.title, Title::ChiefPhysician | Title::AssociateChief)
                        && p.secondments.iter().any(|s| s.institution == centre.id)
                })
                .map(|p| p.id.as_str())
                .collect();
            let pool = if seconded.is_empty() {
                &self.seniors[t.community]
            } else {
                &seconded
            };
            if pool.is_empty() {
                continue;
            }
            let doc = pool[rng.random_range(0..pool.len())];
            let code = centre.id.trim_start_matches("org-");
            let lead_name = self
                .names
                .get(geo.insts[lead].id.as_str())
                .copied()
                .unwrap_or("");
            scheds.push((
                Sched {
                    id: format!("sch-{code}-x"),
                    code: format!("{code}-x"),
                    inst: t.centre,
                    practitioner: doc.to_string(),
                    service: "专家下基层门诊".into(),
                    comment: format!("{lead_name}专家每月5日、15日、25日上午坐诊"),
                },
                true,
            ));
        }
        let book = &mut self.book;
        for (sched, expert) in scheds {
            let ix = book.scheds.len();
            let inst = sched.inst;
            book.scheds.push(sched);
            let mut day = first_day;
            while day <= last_day {
                let open = if expert {
                    EXPERT_DAYS.contains(&day.day())
                } else {
                    day.weekday() != chrono::Weekday::Sun
                };
                if open {
                    let (start, n) = if expert {
                        (at_local(day, 9 * 60), 8u8)
                    } else {
                        (at_local(day, 8 * 60 + 30), 8u8)
                    };
                    let mut held = 0u16;
                    for k in 0..n {
                        if rng.random_bool(HELD_SHARE) {
                            held |= 1 << k;
                        }
                    }
                    book.by_day
                        .entry((inst, day))
                        .or_default()
                        .push(book.sessions.len());
                    book.sessions.push(Session {
                        sched: ix,
                        start,
                        n,
                        held,
                        booked: 0,
                    });
                }
                day += Duration::days(1);
            }
        }
    }

    /// Emits every Schedule followed by its Slots (all free; bookings come with
    /// the residents).
    pub fn emit_schedules(&self, summary: &mut Summary, sink: &mut dyn FnMut(crate::Item)) {
        let book = &self.book;
        let mut first = 0;
        for (ix, s) in book.scheds.iter().enumerate() {
            summary.schedules += 1;
            summary.resources += 1;
            sink(crate::Item::Resource(slots::schedule(
                &s.id,
                &s.practitioner,
                &self.geo.insts[s.inst].id,
                &s.service,
                &s.comment,
            )));
            // Sessions are stored schedule by schedule.
            while first < book.sessions.len() && book.sessions[first].sched == ix {
                for k in 0..book.sessions[first].n as usize {
                    summary.slots += 1;
                    summary.resources += 1;
                    sink(crate::Item::Resource(book.slot(first, k)));
                }
                first += 1;
            }
        }
    }

    fn inst_of(&self, id: &str) -> Option<usize> {
        self.inst_ix.get(id).copied()
    }

    fn id(&self, inst: usize) -> &'a str {
        self.geo.insts[inst].id.as_str()
    }

    fn name(&self, inst: usize) -> &'a str {
        self.names.get(self.id(inst)).copied().unwrap_or("")
    }

    /// A physician who works at `inst` (general department first).
    fn physician(&self, rng: &mut impl Rng, inst: usize) -> Option<String> {
        let dept = self.geo.insts[inst].dept_for(Service::General);
        self.staff.physician(rng, inst, dept).map(str::to_string)
    }

    fn senior(&self, rng: &mut impl Rng, community: usize) -> Option<&'a str> {
        let s = &self.seniors[community];
        (!s.is_empty()).then(|| s[rng.random_range(0..s.len())])
    }

    fn lead_of_inst(&self, inst: usize) -> Option<usize> {
        self.community_of[inst].map(|c| self.geo.lead_of(c))
    }

    /// Builds a Task from its steps, keeping those that happened by `now`:
    /// a deadline from entering `awaited` (see [`Rules::response_minutes`]),
    /// escalated when the awaited state was left after it (`left` stands for
    /// the leaving step when it is not a step of the Task, e.g. the report of an
    /// exam). None if the flow had not started by `now`.
    #[allow(clippy::too_many_arguments)]
    fn task(
        &self,
        flow: Flow,
        request: &str,
        patient: &str,
        requester: &str,
        owner: &str,
        priority: &str,
        steps: &[Step],
        awaited: &str,
        left: Option<DateTime<Utc>>,
        reason: Option<&str>,
    ) -> Option<Value> {
        let first = steps.first()?;
        if first.at > self.now {
            return None;
        }
        let taken: Vec<&Step> = steps.iter().take_while(|s| s.at <= self.now).collect();
        let mut t = task::new_task(
            flow,
            &task::task_id(request),
            &format!("ServiceRequest/{request}"),
            patient,
            requester,
            owner,
            priority,
            first.state,
            &fmt(first.at),
        );
        for w in taken.windows(2) {
            debug_assert!(w[0].at <= w[1].at, "{request}: steps in time order");
            debug_assert!(flow.step(w[0].state, w[1].state).is_ok(), "{request}");
            task::set_state(&mut t, flow, w[1].state, &fmt(w[1].at), w[1].by.as_deref());
        }
        let last = taken.last().expect("at least the first step");
        if let Some(r) = reason
            && matches!(last.state, "rejected" | "cancelled")
        {
            task::set_reason(&mut t, r);
        }
        if let Some(i) = taken.iter().position(|s| s.state == awaited) {
            let minutes = self.rules.response_minutes(flow, priority);
            let entered = fmt(taken[i].at);
            let deadline = plus_minutes(&entered, minutes).expect("valid time");
            task::set_deadline(&mut t, &deadline);
            let leaving = taken
                .get(i + 1)
                .map(|s| s.at)
                .or(left.filter(|l| *l <= self.now));
            if leaving.is_some_and(|l| l > taken[i].at + Duration::minutes(minutes)) {
                task::set_escalated(&mut t, &deadline);
            }
        }
        Some(t)
    }

    /// The flows of one resident, given their year of care (`encounters` under
    /// the resident's record, `moved` under their duplicate record). Returns the
    /// resources in emission order; they refer only to the resident's records,
    /// organisations, practitioners, the resident's encounters, the schedules and
    /// slots, and each other (each after what it refers to).
    pub fn person(
        &mut self,
        rng: &mut impl Rng,
        person: &Person,
        conditions: &[Condition],
        encounters: &[Encounter],
        moved: &[Encounter],
        summary: &mut Summary,
    ) -> Vec<Value> {
        let geo = self.geo;
        let village = &geo.villages[person.village];
        let township = &geo.townships[village.township];
        let mut r = Resident {
            pid: &person.patient.id,
            age: person.age,
            sex: person.patient.sex,
            home: township.centre,
            clinic: village.clinic,
            lead: geo.lead_of(township.community),
            chronic: conditions.iter().map(|c| c.code.as_str()).collect(),
            n: 0,
            out: vec![],
        };
        let recent = self.now - Duration::days(7);
        let fortnight = self.now - Duration::days(14);
        for e in encounters.iter().chain(moved) {
            let Some(inst) = self.inst_of(&e.institution) else {
                continue;
            };
            let kind = geo.insts[inst].kind;
            let lead_hospital = geo.communities.iter().any(|c| c.lead == inst);
            if inst == r.lead {
                let p = match e.class {
                    EncounterClass::Inpatient => P_UP_INPATIENT,
                    EncounterClass::Emergency => P_UP_EMERGENCY,
                    EncounterClass::Outpatient => P_UP_OUTPATIENT,
                };
                if rng.random_bool(p) {
                    self.referral_to_lead(rng, &mut r, e, summary);
                }
                if e.class == EncounterClass::Inpatient && rng.random_bool(P_DOWN) {
                    self.down_referral(rng, &mut r, e, summary);
                }
            }
            if kind == OrgKind::External
                && e.class == EncounterClass::Inpatient
                && rng.random_bool((P_OUT_OF_COUNTY * out_of_county_factor(e)).min(1.0))
            {
                self.out_of_county(rng, &mut r, e, summary);
            }
            let primary = matches!(
                kind,
                OrgKind::TownshipCentre | OrgKind::CommunityCentre | OrgKind::VillageClinic
            );
            if primary {
                let factor = exam_factor(e, &r.chronic)
                    * if kind == OrgKind::VillageClinic {
                        0.4
                    } else {
                        1.0
                    };
                if rng.random_bool((P_EXAM * factor).min(1.0)) {
                    let first = choose_item(rng, e, &r.chronic);
                    self.exam(rng, &mut r, e, inst, first, summary);
                    // Sometimes a second, different item at the same visit.
                    if rng.random_bool(0.15) {
                        let second = choose_item(rng, e, &r.chronic);
                        if second.code != first.code {
                            self.exam(rng, &mut r, e, inst, second, summary);
                        }
                    }
                }
                if rng.random_bool((P_CONSULT * consult_factor(e)).min(1.0)) {
                    self.consult(rng, &mut r, e, inst, summary);
                }
            }
            if inst == r.home {
                if rng.random_bool(P_UP_REFUSED) {
                    self.referral_refused(rng, &mut r, e, summary);
                }
                if e.start >= recent && rng.random_bool(P_UP_RECENT) {
                    self.referral_under_way(rng, &mut r, e, summary);
                }
            }
            if e.class == EncounterClass::Outpatient {
                let day = local_day(e.start);
                if (lead_hospital && rng.random_bool(P_BOOKED_LEAD))
                    || (primary
                        && self.book.has_sessions(inst, day)
                        && rng.random_bool(P_BOOKED_EXPERT))
                {
                    self.booked_visit(rng, &mut r, e, inst, summary);
                }
            }
            if e.in_county
                && e.start >= fortnight
                && (lead_hospital || inst == r.home)
                && rng.random_bool(P_FOLLOW_UP)
            {
                self.follow_up(rng, &mut r, e, inst, summary);
            }
        }
        summary.resources += r.out.len();
        r.out
    }

    fn push_appointment(
        &self,
        r: &mut Resident<'_>,
        patient: &str,
        booked: &Booked,
        referral: Option<&str>,
        status: &str,
        summary: &mut Summary,
    ) {
        let id = r.next_id("ap", patient);
        let mut a = slots::appointment(&id, &booked.view, &booked.slot_id, patient, referral);
        a["status"] = json!(status);
        summary.appointments += 1;
        r.out.push(a);
    }

    /// The final status of an appointment nobody tracks through a referral.
    fn visit_status(&self, rng: &mut impl Rng, booked: &Booked) -> &'static str {
        if booked.start > self.now {
            if rng.random_bool(0.06) {
                "cancelled"
            } else {
                "booked"
            }
        } else if local_day(booked.start) == self.as_of && rng.random_bool(0.3) {
            "arrived"
        } else {
            "fulfilled"
        }
    }

    /// The ServiceRequest of an up-referral from `home` to `lead` for encounter `e`.
    #[allow(clippy::too_many_arguments)]
    fn up_request(
        &self,
        r: &mut Resident<'_>,
        e: &Encounter,
        home: usize,
        lead: usize,
        clinician: Option<&str>,
        priority: &str,
        requested: DateTime<Utc>,
    ) -> (String, Value) {
        let code = e.diagnoses[0].as_str();
        let text = format!("{},需上级医院专科进一步诊治", icd_name(code));
        let sr_id = r.next_id("rf", r.pid);
        let at = fmt(requested);
        let sr = requests::referral(
            &Parties {
                id: &sr_id,
                patient: r.pid,
                requester_org: self.id(home),
                requester: clinician,
                performer_org: self.id(lead),
                priority,
                at: &at,
            },
            "up",
            code,
            &text,
            &[],
        );
        (sr_id, sr)
    }

    #[allow(clippy::too_many_arguments)]
    fn push_referral(
        &self,
        r: &mut Resident<'_>,
        sr: Value,
        sr_id: &str,
        patient: &str,
        requester: usize,
        owner: usize,
        priority: &str,
        steps: &[Step],
        reason: Option<&str>,
        summary: &mut Summary,
    ) -> Option<String> {
        let t = self.task(
            Flow::Referral,
            sr_id,
            patient,
            self.id(requester),
            self.id(owner),
            priority,
            steps,
            "requested",
            None,
            reason,
        )?;
        let state = t["businessStatus"]["coding"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string();
        summary.referrals += 1;
        r.out.push(sr);
        r.out.push(t);
        Some(state)
    }

    /// An up-referral that brought the resident to the lead hospital for the
    /// visit or admission `e` (green channel for emergencies).
    fn referral_to_lead(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        summary: &mut Summary,
    ) {
        let priority = match e.class {
            EncounterClass::Emergency => {
                if rng.random_bool(0.55) {
                    "stat"
                } else {
                    "urgent"
                }
            }
            EncounterClass::Inpatient if rng.random_bool(0.05) => "urgent",
            _ => "routine",
        };
        let from = match r.clinic {
            Some(c) if priority == "routine" && rng.random_bool(0.1) => c,
            _ => r.home,
        };
        let lead = r.lead;
        let clinician = self.physician(rng, from);
        let taker = self.physician(rng, lead);
        let answer = response_delay(rng, priority);
        let mut booked = None;
        let steps = if priority == "routine" {
            let gap = minutes(rng.random_range(4 * 60..=7 * 24 * 60));
            let accepted = e.start - gap;
            let requested = accepted - answer;
            let scheduled = accepted + minutes(rng.random_range(5..=120));
            if e.class == EncounterClass::Outpatient {
                booked = self
                    .book
                    .book(rng, lead, local_day(e.start), scheduled, true);
            }
            let (arrived, completed) = match &booked {
                Some(b) => {
                    let arrived = (b.start - minutes(rng.random_range(0..=15))).max(scheduled);
                    (arrived, b.end + minutes(rng.random_range(10..=60)))
                }
                None => (e.start, self.visit_end(rng, e)),
            };
            vec![
                step("requested", requested, clinician.as_deref()),
                step("accepted", accepted, taker.as_deref()),
                step("scheduled", scheduled, taker.as_deref()),
                step("arrived", arrived, taker.as_deref()),
                step("completed", completed, taker.as_deref()),
            ]
        } else {
            let travel = minutes(rng.random_range(20..=90));
            let accepted = e.start - travel;
            let requested = accepted - answer;
            vec![
                step("requested", requested, clinician.as_deref()),
                step("accepted", accepted, taker.as_deref()),
                step("arrived", e.start, taker.as_deref()),
                step("completed", self.visit_end(rng, e), taker.as_deref()),
            ]
        };
        if steps[0].at < self.year_start {
            // The request fell before the simulated year; release the slot too.
            if let Some(b) = booked {
                self.unbook(&b);
            }
            return;
        }
        let code = e.diagnoses[0].as_str();
        let why = match priority {
            "stat" => "病情危重,开通绿色通道,申请紧急上转",
            "urgent" => "病情较重,需上级医院进一步诊治",
            _ => "需上级医院专科进一步诊治",
        };
        let text = format!("{},{why}", icd_name(code));
        let sr_id = r.next_id("rf", r.pid);
        let at = fmt(steps[0].at);
        let sr = requests::referral(
            &Parties {
                id: &sr_id,
                patient: r.pid,
                requester_org: self.id(from),
                requester: clinician.as_deref(),
                performer_org: self.id(lead),
                priority,
                at: &at,
            },
            "up",
            code,
            &text,
            &[],
        );
        let pid = r.pid;
        let state = self.push_referral(
            r, sr, &sr_id, pid, from, lead, priority, &steps, None, summary,
        );
        match (state.as_deref(), &booked) {
            (Some(s), Some(b)) if s != "accepted" && s != "requested" => {
                let status = match s {
                    "completed" => "fulfilled",
                    "arrived" => "arrived",
                    _ => "booked",
                };
                self.push_appointment(r, pid, b, Some(&sr_id), status, summary);
            }
            (_, Some(b)) => self.unbook(b),
            _ => {}
        }
    }

    /// Frees a slot booked for a flow that was finally not written.
    fn unbook(&mut self, b: &Booked) {
        self.book.sessions[b.session].booked &= !(1 << b.k);
    }

    /// When a visit or stay ended (discharge for admissions).
    fn visit_end(&self, rng: &mut impl Rng, e: &Encounter) -> DateTime<Utc> {
        match e.end {
            Some(end) => end,
            None => {
                let hours = if e.class == EncounterClass::Emergency {
                    2..=6
                } else {
                    1..=3
                };
                e.start + Duration::hours(rng.random_range(hours))
            }
        }
    }

    /// Who and when of a referral asked at a visit to the home centre (the
    /// same draws, in the same order, for refused and for under-way ones).
    fn home_referral(&self, rng: &mut impl Rng, r: &Resident<'_>, e: &Encounter) -> HomeReferral {
        let (lead, home) = (r.lead, r.home);
        let priority = if rng.random_bool(0.08) {
            "urgent"
        } else {
            "routine"
        };
        let clinician = e.practitioner.clone().or_else(|| self.physician(rng, home));
        let taker = self.physician(rng, lead);
        let requested = e.start + minutes(rng.random_range(10..=60));
        HomeReferral {
            lead,
            home,
            priority,
            clinician,
            taker,
            requested,
        }
    }

    /// A referral asked at a home-centre visit that the lead hospital refused or
    /// the centre withdrew.
    fn referral_refused(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        summary: &mut Summary,
    ) {
        let HomeReferral {
            lead,
            home,
            priority,
            clinician,
            taker,
            requested,
        } = self.home_referral(rng, r, e);
        let answered = requested + response_delay(rng, priority);
        let (steps, reason) = match pick(rng, &[(0u8, 5), (1, 2), (2, 1)]) {
            0 => {
                let reasons = [
                    "床位已满,建议三日后再申请",
                    "病情可在基层继续治疗,建议基层随访观察",
                    "转诊资料不全,请补充近期检查结果后重新申请",
                    "专科号源已满,建议改约专家下基层门诊",
                ];
                (
                    vec![
                        step("requested", requested, clinician.as_deref()),
                        step("rejected", answered, taker.as_deref()),
                    ],
                    reasons[rng.random_range(0..reasons.len())],
                )
            }
            1 => (
                vec![
                    step("requested", requested, clinician.as_deref()),
                    step(
                        "cancelled",
                        requested
                            + minutes(rng.random_range(30..=20 * 60)).min(answered - requested),
                        clinician.as_deref(),
                    ),
                ],
                "患者及家属要求暂缓转诊",
            ),
            _ => (
                vec![
                    step("requested", requested, clinician.as_deref()),
                    step("accepted", answered, taker.as_deref()),
                    step(
                        "cancelled",
                        answered + minutes(rng.random_range(60..=3 * 24 * 60)),
                        clinician.as_deref(),
                    ),
                ],
                if rng.random_bool(0.5) {
                    "患者病情好转,取消转诊"
                } else {
                    "患者自行前往市级医院就诊"
                },
            ),
        };
        let (sr_id, sr) =
            self.up_request(r, e, home, lead, clinician.as_deref(), priority, requested);
        let pid = r.pid;
        self.push_referral(
            r,
            sr,
            &sr_id,
            pid,
            home,
            lead,
            priority,
            &steps,
            Some(reason),
            summary,
        );
    }

    /// A referral asked at a home-centre visit of the last week: accepted,
    /// booked on a held slot of the lead hospital's clinics, and as far along
    /// as time allowed by the end of the year.
    fn referral_under_way(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        summary: &mut Summary,
    ) {
        let HomeReferral {
            lead,
            home,
            priority,
            clinician,
            taker,
            requested,
        } = self.home_referral(rng, r, e);
        let accepted = requested + response_delay(rng, priority);
        let scheduled = accepted + minutes(rng.random_range(5..=120));
        let mut booked = None;
        if scheduled <= self.now {
            let first = local_day(scheduled) + Duration::days(1);
            let offset = rng.random_range(0..10);
            for d in 0..10 {
                let day = first + Duration::days((offset + d) % 10);
                booked = self.book.book(rng, lead, day, scheduled, true);
                if booked.is_some() {
                    break;
                }
            }
        }
        let mut steps = vec![
            step("requested", requested, clinician.as_deref()),
            step("accepted", accepted, taker.as_deref()),
        ];
        match &booked {
            Some(b) => {
                let arrived = (b.start - minutes(rng.random_range(0..=15))).max(scheduled);
                steps.push(step("scheduled", scheduled, taker.as_deref()));
                steps.push(step("arrived", arrived, taker.as_deref()));
                steps.push(step(
                    "completed",
                    b.end + minutes(rng.random_range(10..=60)),
                    taker.as_deref(),
                ));
            }
            None => {
                // Not booked yet (or nothing free): still waiting for a date.
                steps.push(step(
                    "scheduled",
                    self.now + Duration::days(1),
                    taker.as_deref(),
                ));
            }
        }
        let (sr_id, sr) =
            self.up_request(r, e, home, lead, clinician.as_deref(), priority, requested);
        let pid = r.pid;
        let state = self.push_referral(
            r, sr, &sr_id, pid, home, lead, priority, &steps, None, summary,
        );
        if let Some(b) = &booked {
            match state.as_deref() {
                Some("scheduled") => {
                    self.push_appointment(r, pid, b, Some(&sr_id), "booked", summary)
                }
                Some("arrived") => {
                    self.push_appointment(r, pid, b, Some(&sr_id), "arrived", summary)
                }
                Some("completed") => {
                    self.push_appointment(r, pid, b, Some(&sr_id), "fulfilled", summary)
                }
                _ => self.unbook(b),
            }
        }
    }

    /// A referral out of the county before the admission `e` outside it, filed
    /// by the lead hospital with the insurance bureau's approval (转外备案).
    fn out_of_county(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        summary: &mut Summary,
    ) {
        let lead = r.lead;
        let priority = if rng.random_bool(0.2) {
            "urgent"
        } else {
            "routine"
        };
        let clinician = self
            .senior(rng, self.community_of[lead].unwrap_or(0))
            .map(str::to_string)
            .or_else(|| self.physician(rng, lead));
        let approval = match priority {
            "urgent" => minutes(rng.random_range(20..=110)),
            _ => minutes(rng.random_range(2 * 60..=24 * 60)),
        };
        let travel = minutes(rng.random_range(3 * 60..=3 * 24 * 60));
        let accepted = e.start - travel;
        let requested = accepted - approval;
        if requested < self.year_start {
            return;
        }
        let steps = [
            step("requested", requested, clinician.as_deref()),
            step("accepted", accepted, Some(APPROVED_BY)),
            step("arrived", e.start, clinician.as_deref()),
            step("completed", self.visit_end(rng, e), clinician.as_deref()),
        ];
        let code = e.diagnoses[0].as_str();
        let hospital = pick(rng, &OUT_OF_COUNTY_HOSPITALS);
        let text = format!("{},县内诊疗条件有限,申请转往{hospital}", icd_name(code));
        let sr_id = r.next_id("rf", r.pid);
        let at = fmt(requested);
        let mut sr = requests::referral(
            &Parties {
                id: &sr_id,
                patient: r.pid,
                requester_org: self.id(lead),
                requester: clinician.as_deref(),
                performer_org: self.id(lead),
                priority,
                at: &at,
            },
            "up",
            code,
            &text,
            &[],
        );
        self.filing_seq += 1;
        let number = format!(
            "泸县医保转外备〔{}〕{:05}号",
            local_day(requested).year(),
            self.filing_seq
        );
        requests::file_out_of_county(&mut sr, hospital, &number, APPROVED_BY);
        let pid = r.pid;
        // The requesting hospital tracks its own filing: it owns the Task.
        self.push_referral(
            r, sr, &sr_id, pid, lead, lead, priority, &steps, None, summary,
        );
    }

    /// A down-referral after the admission `e` at the lead hospital, back to the
    /// resident's township centre, with the discharge summary and the follow-up
    /// plan it carries.
    fn down_referral(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        summary: &mut Summary,
    ) {
        let Some(discharge) = e.end else { return };
        let lead = r.lead;
        let home = r.home;
        let pid = e.patient.as_str();
        let clinician = e.practitioner.clone().or_else(|| self.physician(rng, lead));
        let taker = self.physician(rng, home);
        let requested = (discharge - minutes(rng.random_range(2 * 60..=20 * 60))).max(e.start);
        if requested > self.now {
            return;
        }
        let answered = requested + response_delay(rng, "routine");
        let code = e.diagnoses[0].as_str();
        let name = icd_name(code);
        let home_name = self.name(home);
        let others: Vec<String> = e.diagnoses[1..]
            .iter()
            .map(|d| icd_name(d.as_str()))
            .collect();

        // The discharge summary and the follow-up plan, written at the request.
        let doc_id = r.next_id("doc", pid);
        let plan_id = r.next_id("cp", pid);
        let at = fmt(requested);
        let summary_text = format!(
            "出院小结\n入院日期:{}\n出院日期:{}\n入院诊断:{name}\n出院诊断:{}\n诊疗经过:入院后完善相关检查,予规范治疗,病情好转、生命体征平稳。\n出院医嘱:转回{home_name}继续康复治疗与随访,按随访计划复诊,病情变化及时就诊。",
            local_day(e.start),
            local_day(discharge),
            std::iter::once(name.clone())
                .chain(others.iter().cloned())
                .collect::<Vec<_>>()
                .join(";"),
        );
        let mut doc = json!({
            "resourceType": "DocumentReference",
            "id": doc_id,
            "extension": recorded_at(self.id(lead)),
            "status": "current",
            "docStatus": "final",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}], "text": "出院小结"},
            "subject": {"reference": format!("Patient/{pid}")},
            "date": at,
            "custodian": {"reference": format!("Organization/{}", self.id(lead))},
            "description": "出院小结",
            "content": [{"attachment": {
                "contentType": "text/plain;charset=utf-8",
                "language": "zh-CN",
                "data": b64(&summary_text),
                "title": "出院小结",
                "creation": at,
            }}],
            "context": {
                "encounter": [{"reference": format!("Encounter/{}", e.id)}],
                "period": {"start": fmt(e.start), "end": fmt(discharge)},
            },
        });
        let (plan, activities) = follow_up_plan(code);
        let mut care_plan = json!({
            "resourceType": "CarePlan",
            "id": plan_id,
            "extension": recorded_at(self.id(lead)),
            "status": "active",
            "intent": "plan",
            "category": [{"text": "下转随访计划"}],
            "title": format!("{name}下转随访计划"),
            "description": format!("{plan}由{home_name}负责随访。"),
            "subject": {"reference": format!("Patient/{pid}")},
            "period": {"start": at},
            "created": at,
            "activity": activities
                .iter()
                .map(|a| json!({"detail": {"status": "scheduled", "description": a}}))
                .collect::<Vec<_>>(),
        });
        if let Some(c) = &clinician {
            doc["author"] = json!([{"reference": format!("Practitioner/{c}")}]);
            care_plan["author"] = json!({"reference": format!("Practitioner/{c}")});
        }

        let steps = if rng.random_bool(0.02) {
            vec![
                step("requested", requested, clinician.as_deref()),
                step("rejected", answered, taker.as_deref()),
            ]
        } else {
            let scheduled = answered + minutes(rng.random_range(5..=120));
            let arrived =
                local_day(discharge.max(scheduled)) + Duration::days(rng.random_range(1..=5));
            let arrived = at_local(arrived, rng.random_range(8 * 60..=16 * 60)).max(scheduled);
            vec![
                step("requested", requested, clinician.as_deref()),
                step("accepted", answered, taker.as_deref()),
                step("scheduled", scheduled, taker.as_deref()),
                step("arrived", arrived, taker.as_deref()),
                step(
                    "completed",
                    arrived + minutes(rng.random_range(30..=240)),
                    taker.as_deref(),
                ),
            ]
        };
        let sr_id = r.next_id("rf", pid);
        let supporting = [
            format!("CarePlan/{plan_id}"),
            format!("DocumentReference/{doc_id}"),
        ];
        let sr = requests::referral(
            &Parties {
                id: &sr_id,
                patient: pid,
                requester_org: self.id(lead),
                requester: clinician.as_deref(),
                performer_org: self.id(home),
                priority: "routine",
                at: &at,
            },
            "down",
            code,
            &format!("{name}恢复期,转回基层继续康复治疗与随访"),
            &supporting,
        );
        r.out.push(care_plan);
        r.out.push(doc);
        self.push_referral(
            r,
            sr,
            &sr_id,
            pid,
            lead,
            home,
            "routine",
            &steps,
            Some("本院暂无相应康复条件,建议转至中心卫生院"),
            summary,
        );
    }

    /// An order to the lead hospital's centre from the primary-level visit `e`,
    /// with its report (and the acknowledgement of a critical value).
    fn exam(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        inst: usize,
        item: &'static ExamItem,
        summary: &mut Summary,
    ) {
        let Some(centre) = self.lead_of_inst(inst) else {
            return;
        };
        let community = self.community_of[inst].unwrap_or(0);
        let pid = e.patient.as_str();
        let emergency = e.class == EncounterClass::Emergency;
        let priority = if emergency {
            if matches!(item.code, "ECG12" | "CTNI" | "K" | "CT-HEAD") {
                "stat"
            } else {
                "urgent"
            }
        } else if rng.random_bool(0.05) {
            "urgent"
        } else {
            "routine"
        };
        let fast = priority != "routine";
        let clinician = e.practitioner.clone().or_else(|| self.physician(rng, inst));
        let readers = &self.readers[community][kind_ix(item.kind)];
        let reader = (!readers.is_empty()).then(|| readers[rng.random_range(0..readers.len())]);

        let requested = e.start + minutes(rng.random_range(5..=30));
        let collected = requested
            + minutes(match item.kind {
                CentreKind::Lab => rng.random_range(5..=40),
                CentreKind::Ecg => rng.random_range(2..=15),
                _ => rng.random_range(10..=60),
            });
        let mut steps = vec![
            step("requested", requested, clinician.as_deref()),
            step("collected", collected, clinician.as_deref()),
        ];
        let received = match item.kind {
            CentreKind::Lab => {
                let sent = collected + minutes(rng.random_range(10..=60));
                let transport = if fast {
                    minutes(rng.random_range(30..=90))
                } else {
                    minutes(rng.random_range(60..=360))
                };
                steps.push(step("in-transit", sent, clinician.as_deref()));
                sent + transport
            }
            CentreKind::Ecg => collected + minutes(rng.random_range(1..=5)),
            CentreKind::Imaging => collected + minutes(rng.random_range(2..=15)),
            CentreKind::Pathology => collected + minutes(rng.random_range(6 * 60..=26 * 60)),
        };
        steps.push(step("received", received, reader));
        let report_delay = match (priority, item.kind) {
            ("stat", _) => delay(rng, (5, 28), 0.08, (31, 60)),
            ("urgent", _) => delay(rng, (15, 110), 0.05, (121, 200)),
            (_, CentreKind::Ecg) => minutes(rng.random_range(10..=90)),
            (_, CentreKind::Lab) => delay(rng, (30, 20 * 60), 0.03, (24 * 60 + 1, 36 * 60)),
            (_, CentreKind::Imaging) => delay(rng, (30, 20 * 60), 0.04, (24 * 60 + 1, 40 * 60)),
            (_, CentreKind::Pathology) => minutes(rng.random_range(18 * 60..=60 * 60)),
        };
        let issued = received + report_delay;
        // An order is sometimes withdrawn or the sample refused (haemolysed).
        let cancel = rng.random_bool(0.015);
        let reason = if cancel {
            if item.kind == CentreKind::Lab {
                let at = received + minutes(rng.random_range(5..=30));
                steps.push(step("cancelled", at, reader));
                Some("标本溶血,请重新采集送检")
            } else {
                steps.truncate(1);
                steps.push(step(
                    "cancelled",
                    requested + minutes(rng.random_range(1..=20)),
                    clinician.as_deref(),
                ));
                Some("患者拒绝检查,撤销申请")
            }
        } else {
            None
        };

        let sr_id = r.next_id("ex", pid);
        self.barcode_seq += 1;
        let barcode = format!(
            "{}{:07}",
            local_day(requested).format("%Y%m%d"),
            self.barcode_seq % 10_000_000
        );
        let at = fmt(requested);
        let sr = requests::exam_order(
            &Parties {
                id: &sr_id,
                patient: pid,
                requester_org: self.id(inst),
                requester: clinician.as_deref(),
                performer_org: self.id(centre),
                priority,
                at: &at,
            },
            item,
            &barcode,
            None,
        );
        let report_left = (!cancel).then_some(issued);
        let Some(t) = self.task(
            Flow::Exam,
            &sr_id,
            pid,
            self.id(inst),
            self.id(centre),
            priority,
            &steps,
            "received",
            report_left,
            reason,
        ) else {
            return;
        };
        summary.exam_orders += 1;
        r.out.push(sr);
        r.out.push(t);
        if cancel || issued > self.now {
            return;
        }

        // The report and its results.
        let report_id = format!("{sr_id}-r");
        let critical_p: f64 = match item.kind {
            CentreKind::Lab
                if item
                    .analytes
                    .iter()
                    .all(|a| a.critical_low.is_none() && a.critical_high.is_none()) =>
            {
                0.0
            }
            CentreKind::Lab => 0.009,
            CentreKind::Ecg => 0.012,
            CentreKind::Imaging => 0.01,
            CentreKind::Pathology => 0.02,
        } * if emergency { 4.0 } else { 1.0 };
        let critical = rng.random_bool(critical_p.min(1.0));
        let centre_id = self.id(centre);
        let mut observations: Vec<Value> = vec![];
        let conclusion = match item.kind {
            CentreKind::Lab => {
                let crit_ix = critical.then(|| {
                    let with: Vec<usize> = (0..item.analytes.len())
                        .filter(|&i| {
                            let a = &item.analytes[i];
                            a.critical_low.is_some() || a.critical_high.is_some()
                        })
                        .collect();
                    with[rng.random_range(0..with.len())]
                });
                let mut notes = vec![];
                for (i, a) in item.analytes.iter().enumerate() {
                    let mode = if crit_ix == Some(i) {
                        match (a.critical_low, a.critical_high) {
                            (Some(_), Some(_)) if rng.random_bool(0.5) => Mode::CriticalLow,
                            (_, Some(_)) => Mode::CriticalHigh,
                            _ => Mode::CriticalLow,
                        }
                    } else {
                        abnormal_mode(rng, a, e, &r.chronic)
                    };
                    let x = lab_value(rng, a, mode);
                    let o = requests::observation(
                        &format!("{sr_id}-o{}", i + 1),
                        pid,
                        &sr_id,
                        item,
                        Some(a),
                        &ResultValue::Number(x),
                        centre_id,
                        &fmt(collected),
                    );
                    match a.interpret(x) {
                        "HH" | "LL" => notes.push(format!("危急值:{} {} {}", a.name, x, a.unit)),
                        "H" => notes.push(format!("{}偏高", a.name)),
                        "L" => notes.push(format!("{}偏低", a.name)),
                        _ => {}
                    }
                    observations.push(o);
                }
                if notes.is_empty() {
                    "各项指标均在参考范围内".to_string()
                } else {
                    notes.join(";")
                }
            }
            CentreKind::Ecg => {
                let (hr, finding, conclusion) = ecg_result(rng, critical);
                let a = &item.analytes[0];
                observations.push(requests::observation(
                    &format!("{sr_id}-o1"),
                    pid,
                    &sr_id,
                    item,
                    Some(a),
                    &ResultValue::Number(hr),
                    centre_id,
                    &fmt(collected),
                ));
                observations.push(requests::observation(
                    &format!("{sr_id}-o2"),
                    pid,
                    &sr_id,
                    item,
                    None,
                    &ResultValue::Text {
                        text: finding,
                        critical,
                    },
                    centre_id,
                    &fmt(collected),
                ));
                conclusion
            }
            _ => {
                let (finding, conclusion) = finding_of(rng, item.code, critical);
                observations.push(requests::observation(
                    &format!("{sr_id}-o1"),
                    pid,
                    &sr_id,
                    item,
                    None,
                    &ResultValue::Text {
                        text: format!("{finding}结论:{conclusion}"),
                        critical,
                    },
                    centre_id,
                    &fmt(collected),
                ));
                conclusion.to_string()
            }
        };
        let is_critical = observations.iter().any(requests::is_critical);
        let ids: Vec<String> = observations
            .iter()
            .map(|o| o["id"].as_str().unwrap_or_default().to_string())
            .collect();
        let issued_at = fmt(issued);
        let report = requests::report(
            &report_id,
            pid,
            &sr_id,
            item,
            centre_id,
            reader,
            &ids,
            &conclusion,
            &issued_at,
        );
        r.out.extend(observations);
        r.out.push(report);
        summary.reports += 1;
        if !is_critical {
            return;
        }
        summary.critical_values += 1;
        // The ordering institution acknowledges, usually within the half hour;
        // of the last month's about half are still waiting, so that the worklists
        // show some (the server escalates them).
        let ack = issued + delay(rng, (2, 30), 0.08, (31, 40));
        if ack > self.now || (issued > self.now - Duration::days(30) && rng.random_bool(0.5)) {
            return;
        }
        let minutes = self.rules.critical_ack_minutes;
        let mut t = task::critical_ack(
            &report_id,
            pid,
            centre_id,
            self.id(inst),
            clinician.as_deref(),
            &issued_at,
            minutes,
        );
        let user = clinician
            .clone()
            .unwrap_or_else(|| self.id(inst).to_string());
        task::set_state(
            &mut t,
            Flow::CriticalAck,
            "acknowledged",
            &fmt(ack),
            Some(&user),
        );
        if ack > issued + Duration::minutes(minutes) {
            let deadline = plus_minutes(&issued_at, minutes).expect("valid time");
            task::set_escalated(&mut t, &deadline);
        }
        r.out.push(t);
    }

    /// A remote consultation asked at the primary-level visit `e` of the lead
    /// hospital's experts.
    fn consult(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        inst: usize,
        summary: &mut Summary,
    ) {
        let Some(lead) = self.lead_of_inst(inst) else {
            return;
        };
        let community = self.community_of[inst].unwrap_or(0);
        let pid = e.patient.as_str();
        let priority = if e.class == EncounterClass::Emergency || rng.random_bool(0.15) {
            "urgent"
        } else {
            "routine"
        };
        let clinician = e.practitioner.clone().or_else(|| self.physician(rng, inst));
        let expert = self.senior(rng, community);
        let code = e.diagnoses[0].as_str();
        let name = icd_name(code);
        let sex = if r.sex == Sex::Male { "男" } else { "女" };
        let asks = [
            "请上级医院专家协助明确诊断并指导下一步治疗。",
            "目前治疗效果欠佳,请求会诊调整用药方案。",
            "是否需要上转,请专家评估。",
        ];
        let question = format!(
            "患者{sex},{}岁,初步诊断:{name}。{}",
            r.age,
            asks[rng.random_range(0..asks.len())]
        );
        let requested = e.start + minutes(rng.random_range(20..=120));
        let answer = match priority {
            "urgent" => delay(rng, (10, 100), 0.05, (121, 200)),
            _ => delay(rng, (20, 20 * 60), 0.05, (24 * 60 + 1, 36 * 60)),
        };
        let accepted = requested + answer;
        let answered = accepted + minutes(rng.random_range(30..=10 * 60));
        let closed = answered + minutes(rng.random_range(120..=5 * 24 * 60));
        let expert_id = expert.map(str::to_string);
        let (steps, reason) = match pick(rng, &[(0u8, 94), (1, 4), (2, 2)]) {
            0 => (
                vec![
                    step("requested", requested, clinician.as_deref()),
                    step("accepted", accepted, expert),
                    step("answered", answered, expert),
                    step("closed", closed, clinician.as_deref()),
                ],
                None,
            ),
            1 => (
                vec![
                    step("requested", requested, clinician.as_deref()),
                    step("rejected", accepted, expert),
                ],
                Some("请补充心电图及近期检验结果后再申请会诊"),
            ),
            _ => (
                vec![
                    step("requested", requested, clinician.as_deref()),
                    step(
                        "cancelled",
                        requested + minutes(rng.random_range(10..=120)).min(answer),
                        clinician.as_deref(),
                    ),
                ],
                Some("患者已自行前往县医院就诊"),
            ),
        };
        let sr_id = r.next_id("cs", pid);
        let at = fmt(requested);
        let mut supporting = vec![];
        let mut doc = None;
        if rng.random_bool(0.4) {
            let doc_id = r.next_id("doc", pid);
            let text = format!(
                "病历摘要\n就诊日期:{}\n主诉及现病史:{name}相关症状,已在本院初步处理。\n初步诊断:{name}\n会诊目的:{}",
                local_day(e.start),
                question
            );
            doc = Some(json!({
                "resourceType": "DocumentReference",
                "id": doc_id,
                "extension": recorded_at(self.id(inst)),
                "status": "current",
                "docStatus": "final",
                "type": {"coding": [{"system": "http://loinc.org", "code": "34133-9", "display": "Summary of episode note"}], "text": "病历摘要"},
                "subject": {"reference": format!("Patient/{pid}")},
                "date": at,
                "custodian": {"reference": format!("Organization/{}", self.id(inst))},
                "description": "会诊病历摘要",
                "content": [{"attachment": {
                    "contentType": "text/plain;charset=utf-8",
                    "language": "zh-CN",
                    "data": b64(&text),
                    "title": "病历摘要",
                    "creation": at,
                }}],
                "context": {"encounter": [{"reference": format!("Encounter/{}", e.id)}]},
            }));
            supporting.push(format!("DocumentReference/{doc_id}"));
        }
        let sr = requests::consult(
            &Parties {
                id: &sr_id,
                patient: pid,
                requester_org: self.id(inst),
                requester: clinician.as_deref(),
                performer_org: self.id(lead),
                priority,
                at: &at,
            },
            &question,
            &supporting,
        );
        let Some(mut t) = self.task(
            Flow::Consult,
            &sr_id,
            pid,
            self.id(inst),
            self.id(lead),
            priority,
            &steps,
            "requested",
            None,
            reason,
        ) else {
            return;
        };
        let state = t["businessStatus"]["coding"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if matches!(state.as_str(), "accepted" | "answered" | "closed")
            && let Some(x) = &expert_id
        {
            task::set_assignee(&mut t, x);
        }
        if matches!(state.as_str(), "answered" | "closed") {
            task::add_output(
                &mut t,
                "opinion",
                "会诊意见",
                ("valueString", json!(opinion(code))),
            );
        }
        if state == "closed" {
            let rating = pick(rng, &[(5, 70), (4, 24), (3, 5), (2, 1)]);
            task::add_output(&mut t, "rating", "评分", ("valueInteger", json!(rating)));
        }
        summary.consultations += 1;
        if let Some(d) = doc {
            r.out.push(d);
        }
        r.out.push(sr);
        r.out.push(t);
    }

    /// An appointment booked ahead of the outpatient visit `e` (at a lead
    /// hospital's clinic or an expert's clinic at a township centre); some were
    /// missed or cancelled, the visit coming later.
    fn booked_visit(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        inst: usize,
        summary: &mut Summary,
    ) {
        let mut day = local_day(e.start);
        let missed = rng.random_bool(0.12);
        if missed {
            day -= Duration::days(rng.random_range(1..=5));
        }
        let at = at_local(
            day - Duration::days(rng.random_range(1..=7)),
            rng.random_range(7 * 60..=22 * 60),
        );
        if at < self.year_start {
            return;
        }
        let Some(b) = self.book.book(rng, inst, day, at, false) else {
            return;
        };
        let status = if missed {
            if rng.random_bool(0.4) {
                "noshow"
            } else {
                "cancelled"
            }
        } else {
            self.visit_status(rng, &b)
        };
        let pid = e.patient.as_str();
        self.push_appointment(r, pid, &b, None, status, summary);
    }

    /// A follow-up in the next two weeks booked at the recent visit `e`.
    fn follow_up(
        &mut self,
        rng: &mut impl Rng,
        r: &mut Resident<'_>,
        e: &Encounter,
        inst: usize,
        summary: &mut Summary,
    ) {
        let at = e.start + minutes(rng.random_range(5..=30));
        let offset = rng.random_range(1..=FUTURE_DAYS);
        for d in 0..FUTURE_DAYS {
            let day = self.as_of + Duration::days(1 + (offset + d) % FUTURE_DAYS);
            if let Some(b) = self.book.book(rng, inst, day, at, false) {
                let status = self.visit_status(rng, &b);
                let pid = e.patient.as_str();
                self.push_appointment(r, pid, &b, None, status, summary);
                return;
            }
        }
    }
}

/// How much more often a visit leads to an exam order.
fn exam_factor(e: &Encounter, chronic: &[&str]) -> f64 {
    let code = e.diagnoses[0].as_str();
    let mut f: f64 = 1.0;
    if e.class == EncounterClass::Emergency {
        f *= 3.0;
    }
    if code.starts_with("Z00") {
        f *= 2.0;
    }
    if chronic.contains(&code) {
        f *= 1.5;
    }
    if matches!(
        code,
        "R07.4" | "I21.9" | "I63.9" | "J18.9" | "R10.4" | "R50.9"
    ) {
        f *= 2.0;
    }
    f
}

/// How much more often an admission outside the county was filed as a
/// referral: mostly cancers and what the county hospitals cannot treat.
fn out_of_county_factor(e: &Encounter) -> f64 {
    match e.diagnoses[0].as_str() {
        c if c.starts_with('C') => 5.0,
        "I63.9" | "I50.9" | "I25.1" | "S72.0" | "N18.9" | "K80.2" => 1.5,
        _ => 0.4,
    }
}

/// How much more often a visit leads to a consultation.
fn consult_factor(e: &Encounter) -> f64 {
    let code = e.diagnoses[0].as_str();
    let base = match code {
        "I63.9" | "I21.9" | "R07.4" | "I50.9" | "N18.9" | "F20.9" | "F32.9" | "T60.0" => 8.0,
        "I10" | "E11.9" | "J44.9" | "I25.1" => 1.5,
        _ => 1.0,
    };
    if e.class == EncounterClass::Emergency {
        base * 2.0
    } else {
        base
    }
}

fn item(code: &str) -> &'static ExamItem {
    exams::item(code).expect("item in the catalogue")
}

/// The exam item for a visit: the centre kind by the county's mix (lab 70%,
/// ECG 15%, imaging 13%, pathology 2%), the item by the diagnosis.
fn choose_item(rng: &mut impl Rng, e: &Encounter, chronic: &[&str]) -> &'static ExamItem {
    let code = e.diagnoses[0].as_str();
    let has = |c: &str| code == c || chronic.contains(&c);
    let kind = pick(
        rng,
        &[
            (CentreKind::Lab, 70),
            (CentreKind::Ecg, 15),
            (CentreKind::Imaging, 13),
            (CentreKind::Pathology, 2),
        ],
    );
    let c = match kind {
        CentreKind::Ecg => "ECG12",
        CentreKind::Pathology => "PATH-TISSUE",
        CentreKind::Imaging => {
            if code.starts_with('J') || code == "R50.9" {
                "DR-CHEST"
            } else if matches!(code, "S06.0" | "I63.9" | "R51" | "R55") {
                "CT-HEAD"
            } else if code.starts_with('K') || code.starts_with('N') || code == "R10.4" {
                "US-ABD"
            } else {
                pick(rng, &[("DR-CHEST", 50), ("US-ABD", 40), ("CT-HEAD", 10)])
            }
        }
        CentreKind::Lab => {
            if matches!(code, "R07.4" | "I21.9" | "I25.1") {
                pick(rng, &[("CTNI", 60), ("K", 20), ("CBC", 20)])
            } else if has("E11.9") {
                pick(rng, &[("GLU", 45), ("HBA1C", 40), ("CREA", 15)])
            } else if has("I10") {
                pick(rng, &[("K", 35), ("CREA", 35), ("GLU", 30)])
            } else if code.starts_with('J') || matches!(code, "R50.9" | "A09.9" | "K52.9" | "N39.0")
            {
                "CBC"
            } else if code.starts_with('K') {
                pick(rng, &[("ALT", 50), ("CBC", 50)])
            } else {
                pick(rng, &[("CBC", 50), ("GLU", 20), ("ALT", 15), ("CREA", 15)])
            }
        }
    };
    item(c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    High,
    Low,
    CriticalHigh,
    CriticalLow,
}

/// Whether (and which way) an analyte is out of range, by the visit.
fn abnormal_mode(rng: &mut impl Rng, a: &Analyte, e: &Encounter, chronic: &[&str]) -> Mode {
    let code = e.diagnoses[0].as_str();
    let has = |c: &str| code == c || chronic.contains(&c);
    let (p, high) = match a.code {
        "GLU" | "HBA1C" if has("E11.9") => (0.65, 0.97),
        "CREA" if has("I10") || has("E11.9") => (0.2, 1.0),
        "K" if has("I10") => (0.15, 0.4),
        "WBC" if code.starts_with('J') || code == "R50.9" => (0.45, 0.9),
        "CTNI" if matches!(code, "R07.4" | "I21.9" | "I25.1") => (0.1, 1.0),
        "HGB" => (0.1, 0.05),
        "PLT" => (0.06, 0.4),
        "WBC" => (0.1, 0.7),
        "K" => (0.06, 0.4),
        "CTNI" => (0.02, 1.0),
        _ => (0.1, 0.85),
    };
    if !rng.random_bool(p) {
        Mode::Normal
    } else if rng.random_bool(high) {
        Mode::High
    } else {
        Mode::Low
    }
}

/// A result of `mode` for the analyte, rounded as the analyser reports it.
fn lab_value(rng: &mut impl Rng, a: &Analyte, mode: Mode) -> f64 {
    let span = a.high - a.low;
    let x = match mode {
        Mode::Normal => a.low + span * rng.random_range(0.05..0.95),
        Mode::High => {
            let top = a.critical_high.unwrap_or(a.high * 1.8);
            a.high + (top - a.high) * rng.random_range(0.1..0.75)
        }
        Mode::Low => {
            let bottom = a.critical_low.unwrap_or(a.low * 0.6);
            bottom + (a.low - bottom) * rng.random_range(0.25..0.9)
        }
        Mode::CriticalHigh => a.critical_high.unwrap_or(a.high * 3.0) * rng.random_range(1.03..1.4),
        Mode::CriticalLow => a.critical_low.unwrap_or(a.low * 0.3) * rng.random_range(0.55..0.95),
    };
    let decimals = if a.high >= 100.0 {
        0
    } else if a.high >= 10.0 {
        1
    } else if a.high >= 1.0 {
        2
    } else {
        3
    };
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Heart rate, finding and conclusion of an ECG.
fn ecg_result(rng: &mut impl Rng, critical: bool) -> (f64, String, String) {
    if critical {
        let (text, lo, hi) = pick(
            rng,
            &[
                ("急性下壁ST段抬高型心肌梗死", 70, 110, 50),
                ("三度房室传导阻滞", 30, 38, 30),
                ("室性心动过速", 180, 210, 20),
            ]
            .map(|(t, lo, hi, w)| ((t, lo, hi), w)),
        );
        let hr = rng.random_range(lo..=hi) as f64;
        let finding = format!("心率{hr}次/分。{text}。");
        return (hr, finding, format!("{text}(危急值),已电话通知申请科室"));
    }
    let (hr, rhythm) = match pick(rng, &[(0u8, 70), (1, 12), (2, 18)]) {
        0 => (rng.random_range(60..=100), "窦性心律"),
        1 => (rng.random_range(45..=59), "窦性心动过缓"),
        _ => (rng.random_range(101..=140), "窦性心动过速"),
    };
    let extra = if rng.random_bool(0.2) {
        let findings = [
            "ST-T改变",
            "左心室高电压",
            "房性早搏",
            "心房颤动",
            "完全性右束支传导阻滞",
            "一度房室传导阻滞",
        ];
        Some(findings[rng.random_range(0..findings.len())])
    } else {
        None
    };
    let conclusion = match (rhythm, extra) {
        ("窦性心律", None) => "窦性心律,正常心电图".to_string(),
        (r, None) => r.to_string(),
        (r, Some(x)) => format!("{r};{x}"),
    };
    let hr = hr as f64;
    (hr, format!("心率{hr}次/分。{conclusion}。"), conclusion)
}

/// Finding and conclusion of an imaging or pathology exam.
fn finding_of(rng: &mut impl Rng, code: &str, critical: bool) -> (&'static str, &'static str) {
    let (normal, abnormal, crit): (_, &[(&str, &str)], _) = match code {
        "DR-CHEST" => (
            (
                "双肺纹理清晰,心影不大,双侧膈面光整。",
                "胸部正位片未见明显异常",
            ),
            &[
                ("右下肺见斑片状模糊影。", "右下肺炎症,建议治疗后复查"),
                ("双肺纹理增多、紊乱。", "慢性支气管炎改变"),
                ("主动脉结突出,心影向左下扩大。", "主动脉硬化,心影增大"),
            ],
            (
                "右侧胸腔见大量气胸,肺组织压缩约70%。",
                "右侧大量气胸(危急值)",
            ),
        ),
        "CT-HEAD" => (
            (
                "脑实质未见异常密度影,脑室系统不大,中线结构居中。",
                "头颅CT平扫未见明显异常",
            ),
            &[
                ("左侧基底节区见小片状低密度影。", "左侧基底节区腔隙性脑梗死"),
                ("脑沟、脑裂增宽,脑室稍扩大。", "老年性脑改变"),
            ],
            (
                "右侧颞叶见团块状高密度影,周围水肿,中线结构左移。",
                "右侧颞叶脑出血(危急值)",
            ),
        ),
        "US-ABD" => (
            ("肝、胆、胰、脾、双肾未见明显异常。", "腹部彩超未见明显异常"),
            &[
                ("胆囊内见强回声团伴声影,随体位移动。", "胆囊结石"),
                ("肝实质回声增强、细密,后方回声衰减。", "脂肪肝"),
                ("右肾见无回声区,边界清晰。", "右肾囊肿"),
            ],
            (
                "脾周及盆腔见液性暗区,脾实质回声不均。",
                "腹腔积液,考虑脾破裂可能(危急值)",
            ),
        ),
        _ => (
            ("(胃窦)黏膜慢性炎症,轻度。", "慢性浅表性胃炎"),
            &[
                (
                    "(胃窦)黏膜慢性炎症伴肠上皮化生。",
                    "慢性萎缩性胃炎伴肠上皮化生",
                ),
                ("(结肠)管状腺瘤,低级别上皮内瘤变。", "结肠管状腺瘤"),
            ],
            ("(胃体)异型腺体浸润性生长。", "中分化腺癌(危急值)"),
        ),
    };
    if critical {
        crit
    } else if rng.random_bool(0.3) {
        abnormal[rng.random_range(0..abnormal.len())]
    } else {
        normal
    }
}

/// The expert's opinion on a consultation about `code`.
fn opinion(code: &str) -> &'static str {
    match code {
        "I63.9" => {
            "考虑急性脑梗死可能,建议立即完善头颅CT;如在溶栓时间窗内,经卒中绿色通道尽快上转县医院。"
        }
        "R07.4" | "I21.9" | "I25.1" => {
            "建议急查心电图及肌钙蛋白并动态复查;如ST段抬高或肌钙蛋白升高,立即经胸痛中心绿色通道上转。"
        }
        "I10" => "建议调整降压方案,加用长效钙通道阻滞剂,每日监测血压,两周后复诊并反馈。",
        "E11.9" => {
            "建议调整降糖方案,完善糖化血红蛋白及肾功能检查,加强饮食与运动指导,一个月后复查。"
        }
        "F20.9" | "F32.9" => {
            "建议维持当前药物治疗,加强家属监护与随访,如出现自伤或冲动行为立即上转精神专科。"
        }
        "N18.9" => "建议复查肾功能及电解质,控制血压血糖,避免肾毒性药物,必要时上转肾内科评估。",
        _ => "同意目前诊断,建议继续对症治疗,三天后复诊;病情加重时及时上转。",
    }
}

/// The follow-up plan after a down-referral: summary and activities.
fn follow_up_plan(code: &str) -> (&'static str, &'static [&'static str]) {
    match code {
        "I63.9" => (
            "脑梗死恢复期:继续抗血小板及他汀治疗,控制血压,进行肢体功能康复训练。",
            &[
                "出院后一周内到基层复诊",
                "每周两次康复训练",
                "每日监测血压",
                "一个月后复查血脂、肝功能",
            ],
        ),
        "I50.9" | "I25.1" => (
            "心脏病恢复期:规律服药,限盐限水,监测心率、血压与体重。",
            &[
                "出院后一周内到基层复诊",
                "每日监测血压、心率与体重",
                "两周后复查心电图",
            ],
        ),
        "S72.0" | "S82.2" => (
            "骨折术后:按计划进行功能锻炼,预防跌倒与深静脉血栓。",
            &["术后两周拆线", "每周两次康复训练", "一个月后复查X线片"],
        ),
        "E11.9" | "I10" => (
            "慢病管理:规律服药,监测血压血糖,纳入家庭医生签约随访。",
            &[
                "出院后一周内到基层复诊",
                "每周监测血压血糖",
                "三个月后复查糖化血红蛋白",
            ],
        ),
        "J44.1" | "J18.9" => (
            "呼吸系统疾病恢复期:规律用药,进行呼吸功能锻炼,预防感染。",
            &[
                "出院后一周内到基层复诊",
                "每日呼吸功能锻炼",
                "两周后复查血常规",
            ],
        ),
        _ => (
            "遵医嘱按时服药,注意休息,定期复诊。",
            &["出院后一周内到基层复诊", "病情变化及时就诊"],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_values_fall_where_asked() {
        let mut rng = crate::dist::substream(9, 0, 0);
        for it in exams::CATALOGUE
            .iter()
            .filter(|i| i.kind == CentreKind::Lab)
        {
            for a in it.analytes {
                for _ in 0..200 {
                    assert_eq!(
                        a.interpret(lab_value(&mut rng, a, Mode::Normal)),
                        "N",
                        "{}",
                        a.code
                    );
                    let h = a.interpret(lab_value(&mut rng, a, Mode::High));
                    assert_eq!(h, "H", "{}", a.code);
                    if a.critical_high.is_some() {
                        assert_eq!(
                            a.interpret(lab_value(&mut rng, a, Mode::CriticalHigh)),
                            "HH"
                        );
                    }
                    if a.critical_low.is_some() {
                        assert_eq!(a.interpret(lab_value(&mut rng, a, Mode::CriticalLow)), "LL");
                        assert_eq!(
                            a.interpret(lab_value(&mut rng, a, Mode::Low)),
                            "L",
                            "{}",
                            a.code
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn local_times_are_china_time() {
        let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        let t = at_local(day, 8 * 60 + 30);
        assert_eq!(fmt(t), "2026-05-01T00:30:00Z");
        assert_eq!(local_day(t), day);
        assert_eq!(
            local_day(at_local(day, 24 * 60) - Duration::seconds(1)),
            day
        );
    }
}
