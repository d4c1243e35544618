//! `yigong bench-care`: the speed targets of care across the community (issue 4),
//! measured through the HTTP API of the real server (a child process, as `yigong
//! bench` does) on a demo county:
//!
//! 1. worklist queries of lead hospitals and township centres (FHIR searches of
//!    Task, ServiceRequest, Slot and Appointment, and the `/care` pages when the
//!    server has them), driven by wrk: p99 < 20 ms;
//! 2. referral state transitions (PUT Task with If-Match: accepted → scheduled →
//!    arrived → completed) from many concurrent clients: ≥ 2,000/s;
//! 3. order to report (order bundle, collected, received, report bundle: four
//!    requests per exam) from many concurrent clients: ≥ 1,000 exams/s.
//!
//! The bench makes its own flows (ids `bc<run>-…`) between real institutions and
//! residents of the county, so it works whether or not the generator made any.

use crate::bench;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use yigong_care::exams::{CATALOGUE, CentreKind, ExamItem};
use yigong_care::requests::{self, Parties, ResultValue};
use yigong_care::{Flow, slots, task};
use yigong_store::{Role, Scope, Store, User, Val};

#[derive(clap::Args)]
pub struct BenchCareArgs {
    #[command(flatten)]
    county: bench::CountyArgs,
    /// Seconds per load test.
    #[arg(long, default_value_t = 15)]
    duration: u32,
    /// wrk connections, and concurrent clients of the flow tests.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: String,
}

const WORKLIST_P99_MS: f64 = 20.0;
const TRANSITIONS_PER_S: f64 = 2_000.0;
const EXAMS_PER_S: f64 = 1_000.0;
/// Referral steps after "requested", all taken by the receiving hospital.
const REFERRAL_STEPS: [&str; 4] = ["accepted", "scheduled", "arrived", "completed"];

/// A worklist request: its kind, path and the one header that signs it in.
type Query = (&'static str, String, (String, String));

/// Every kind of request equally often: each kind's requests repeated in turn
/// up to the count of the most numerous kind (institutions vary within a kind).
fn balanced(reqs: &[Query]) -> Vec<Query> {
    let mut kinds: BTreeMap<&str, Vec<&Query>> = BTreeMap::new();
    for q in reqs {
        kinds.entry(q.0).or_default().push(q);
    }
    let most = kinds.values().map(Vec::len).max().unwrap_or(0);
    kinds
        .values()
        .flat_map(|qs| qs.iter().cycle().take(most).map(|q| (*q).clone()))
        .collect()
}

/// A community as the bench uses it.
struct Community {
    lead: String,
    townships: Vec<String>,
    /// The performing institution per centre kind (configured, else the lead hospital).
    centres: BTreeMap<CentreKind, String>,
    /// Residents of the community, one record per person.
    patients: Vec<String>,
}

/// The communities that have a lead hospital, township centres and residents.
fn communities(store: &Store, per_community: i64) -> Result<Vec<Community>> {
    let tree = store.org_tree()?;
    let rules = store.care_rules();
    let mut persons = HashSet::new();
    let mut out = vec![];
    for c in tree
        .iter()
        .filter(|n| n.kind.as_deref() == Some("community"))
    {
        let member = |n: &&yigong_store::TreeNode| {
            n.comm.as_deref() == Some(c.id.as_str())
                && n.tier.is_some()
                && n.kind.as_deref() != Some("department")
        };
        let Some(lead) = tree.iter().filter(member).find(|n| n.lead) else {
            continue;
        };
        let townships: Vec<String> = tree
            .iter()
            .filter(member)
            .filter(|n| n.kind.as_deref() == Some("township-centre"))
            .map(|n| n.id.clone())
            .collect();
        // Duplicate records of one person would share their results (mutual
        // recognition follows the person), so each person is taken once.
        let rows = store.db().read(|db| {
            db.query(
                "SELECT r.id, l.person FROM resource r LEFT JOIN mpi_link l ON l.patient = r.id \
                 WHERE r.rtype = 'Patient' AND r.pcomm = ? AND r.deleted = 0 LIMIT ?",
                &[c.id.as_str().into(), per_community.into()],
            )
        })?;
        let patients: Vec<String> = rows
            .into_iter()
            .filter_map(|r| {
                let mut it = r.into_iter();
                let id = it.next()?.into_string()?;
                let person = it.next().and_then(|v| v.into_string());
                person.is_none_or(|p| persons.insert(p)).then_some(id)
            })
            .collect();
        if townships.is_empty() || patients.is_empty() {
            continue;
        }
        let centres = CentreKind::ALL
            .into_iter()
            .map(|k| (k, rules.centre(&c.id, k).unwrap_or(&lead.id).to_string()))
            .collect();
        out.push(Community {
            lead: lead.id.clone(),
            townships,
            centres,
            patients,
        });
    }
    if out.is_empty() {
        bail!("演示县中没有同时具备牵头医院、乡镇卫生院和居民的医共体");
    }
    Ok(out)
}

/// A clinician user acting for `inst` (scope: that institution), with a bearer token.
fn clinician_token(store: &Store, inst: &str, password: &str) -> Result<String> {
    let name = format!("bench-care-{inst}");
    let user = User {
        name: name.clone(),
        display: format!("压测医生 {inst}"),
        role: Role::Clinician,
        scope: Scope::Institution(inst.to_string()),
        institution: Some(inst.to_string()),
    };
    store.upsert_user("bench-care", &user, password)?;
    Ok(store.issue_credential(&name, "token", chrono::Duration::hours(6))?)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn later(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A transaction Bundle that PUTs each resource under its own id.
fn transaction(resources: &[Value]) -> String {
    let entries: Vec<Value> = resources
        .iter()
        .map(|v| {
            let url = format!(
                "{}/{}",
                v["resourceType"].as_str().unwrap_or(""),
                v["id"].as_str().unwrap_or("")
            );
            json!({ "resource": v, "request": { "method": "PUT", "url": url } })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries }).to_string()
}

// ---------------------------------------------------------------------------
// A small HTTP client pool (one keep-alive connection per thread).

struct Resp {
    status: u16,
    text: String,
}

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(base: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client {
            agent,
            base: base.to_string(),
        }
    }

    fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
        match r {
            Ok(mut r) => Resp {
                status: r.status().as_u16(),
                text: r.body_mut().read_to_string().unwrap_or_default(),
            },
            Err(e) => Resp {
                status: 0,
                text: e.to_string(),
            },
        }
    }

    /// GET with one header (`Authorization` or `Cookie`).
    fn get(&self, path: &str, header: &(String, String)) -> Resp {
        Self::finish(
            self.agent
                .get(format!("{}{path}", self.base))
                .header(&header.0, &header.1)
                .call(),
        )
    }

    fn post(&self, path: &str, token: &str, body: &str) -> Resp {
        Self::finish(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/fhir+json")
                .send(body),
        )
    }

    fn put(&self, path: &str, token: &str, body: &str, version: Option<i64>) -> Resp {
        let mut req = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/fhir+json");
        if let Some(v) = version {
            req = req.header("If-Match", format!("W/\"{v}\""));
        }
        Self::finish(req.send(body))
    }
}

/// What the clients of one test did.
#[derive(Default)]
struct Tally {
    /// Milliseconds per measured unit (a request, or a whole exam).
    lat: Vec<f64>,
    ok: u64,
    failed: u64,
    /// Failures by HTTP status (0: no answer).
    statuses: BTreeMap<u16, u64>,
    samples: Vec<String>,
}

impl Tally {
    /// Records an answer; true when it has the expected status.
    fn check(&mut self, what: &str, r: &Resp, want: u16) -> bool {
        if r.status == want {
            return true;
        }
        self.failed += 1;
        *self.statuses.entry(r.status).or_default() += 1;
        if self.samples.len() < 3 {
            let text: String = r.text.chars().take(300).collect();
            self.samples
                .push(format!("{what}: HTTP {} {text}", r.status));
        }
        false
    }

    fn merge(&mut self, o: Tally) {
        self.lat.extend(o.lat);
        self.ok += o.ok;
        self.failed += o.failed;
        for (s, n) in o.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        for s in o.samples {
            if self.samples.len() < 3 {
                self.samples.push(s);
            }
        }
    }

    /// p50, p90, p99 in ms.
    fn percentiles(&mut self) -> (f64, f64, f64) {
        if self.lat.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        self.lat.sort_by(f64::total_cmp);
        let at = |p: f64| self.lat[((self.lat.len() - 1) as f64 * p).round() as usize];
        (at(0.5), at(0.9), at(0.99))
    }

    fn print_failures(&self) {
        if self.failed == 0 {
            return;
        }
        let by: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("HTTP {s} × {n}"))
            .collect();
        println!("    失败:{}", by.join(",  "));
        for s in &self.samples {
            println!("    例:{s}");
        }
    }
}

/// Runs `work(client, i, tally)` for i in 0..n on `threads` clients (client k
/// takes k, k + threads, …) until `deadline` has passed. Returns the merged
/// tally and the seconds it took.
fn pool(
    base: &str,
    threads: usize,
    n: usize,
    deadline: Option<Duration>,
    work: impl Fn(&Client, usize, &mut Tally) + Sync,
) -> (Tally, f64) {
    let started = Instant::now();
    let work = &work;
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    let client = Client::new(base);
                    let mut t = Tally::default();
                    let mut i = k;
                    while i < n && deadline.is_none_or(|d| started.elapsed() < d) {
                        work(&client, i, &mut t);
                        i += threads;
                    }
                    t
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut all = Tally::default();
    for t in tallies {
        all.merge(t);
    }
    (all, secs)
}

/// Sends one request, times it, and records it as a success (with its
/// latency) or a failure.
fn timed(t: &mut Tally, what: &str, want: u16, send: impl FnOnce() -> Resp) -> bool {
    let started = Instant::now();
    let r = send();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !t.check(what, &r, want) {
        return false;
    }
    t.ok += 1;
    t.lat.push(ms);
    true
}

// ---------------------------------------------------------------------------
// The flows.

/// An up-referral from a township centre to its community's lead hospital.
struct Referral {
    id: String,
    patient: String,
    from: String,
    to: String,
}

impl Referral {
    fn task_id(&self) -> String {
        task::task_id(&self.id)
    }

    fn parties<'a>(&'a self, at: &'a str) -> Parties<'a> {
        Parties {
            id: &self.id,
            patient: &self.patient,
            requester_org: &self.from,
            requester: None,
            performer_org: &self.to,
            priority: "routine",
            at,
        }
    }

    fn bundle(&self, at: &str) -> String {
        let (icd, text) = [
            ("I21.9", "急性心肌梗死待排"),
            ("I63.9", "脑梗死,需上级医院进一步诊治"),
            ("J18.9", "重症肺炎"),
        ][self.id.len() % 3];
        let sr = requests::referral(&self.parties(at), "up", icd, text, &[]);
        transaction(&[sr, self.task(at)])
    }

    fn task(&self, at: &str) -> Value {
        task::new_task(
            Flow::Referral,
            &self.task_id(),
            &format!("ServiceRequest/{}", self.id),
            &self.patient,
            &self.from,
            &self.to,
            "routine",
            "requested",
            at,
        )
    }

    /// The Task as the receiving hospital sends it after step `upto` (0-based
    /// in [`REFERRAL_STEPS`]), every earlier step recorded as a client that
    /// read it would have it.
    /// The requesting township withdraws a referral still awaiting an answer.
    fn cancel_body(&self, at: &str) -> String {
        let mut t = self.task(at);
        let by = format!("bench-care-{}", self.from);
        task::set_state(&mut t, Flow::Referral, "cancelled", at, Some(&by));
        t.to_string()
    }

    fn step_body(&self, upto: usize, at: &str, visit: &str) -> String {
        let mut t = self.task(at);
        let by = format!("bench-care-{}", self.to);
        for state in &REFERRAL_STEPS[..=upto] {
            task::set_state(&mut t, Flow::Referral, state, at, Some(&by));
            if *state == "scheduled" {
                task::add_output(
                    &mut t,
                    "scheduled-time",
                    "就诊时间",
                    ("valueDateTime", json!(visit)),
                );
            }
        }
        t.to_string()
    }
}

/// An exam ordered by a township centre from its community's shared centre.
struct Exam {
    id: String,
    patient: String,
    from: String,
    centre: String,
    item: &'static ExamItem,
    /// A recognised result is still valid: the order carries a repeat reason.
    repeat: bool,
}

impl Exam {
    fn task(&self, at: &str) -> Value {
        task::new_task(
            Flow::Exam,
            &task::task_id(&self.id),
            &format!("ServiceRequest/{}", self.id),
            &self.patient,
            &self.from,
            &self.centre,
            "routine",
            "requested",
            at,
        )
    }

    fn order(&self, at: &str) -> String {
        let p = Parties {
            id: &self.id,
            patient: &self.patient,
            requester_org: &self.from,
            requester: None,
            performer_org: &self.centre,
            priority: "routine",
            at,
        };
        let sr = requests::exam_order(
            &p,
            self.item,
            &format!("BC{}", self.id),
            self.repeat.then_some("病情变化,需复查"),
        );
        transaction(&[sr, self.task(at)])
    }

    fn step_body(&self, states: &[&str], at: &str, by: &str) -> String {
        let mut t = self.task(at);
        for s in states {
            task::set_state(&mut t, Flow::Exam, s, at, Some(by));
        }
        t.to_string()
    }

    /// The signed report with its Observations (values inside the reference
    /// range: no critical value).
    fn report(&self, at: &str) -> String {
        let rep = format!("{}-rep", self.id);
        let mut resources = vec![];
        let mut ids = vec![];
        for (k, a) in self.item.analytes.iter().enumerate() {
            let oid = format!("{rep}-o{k}");
            let value = ResultValue::Number(((a.low + a.high) / 2.0 * 100.0).round() / 100.0);
            resources.push(requests::observation(
                &oid,
                &self.patient,
                &self.id,
                self.item,
                Some(a),
                &value,
                &self.centre,
                at,
            ));
            ids.push(oid);
        }
        if ids.is_empty() {
            let oid = format!("{rep}-o0");
            let value = ResultValue::Text {
                text: "未见明显异常".into(),
                critical: false,
            };
            resources.push(requests::observation(
                &oid,
                &self.patient,
                &self.id,
                self.item,
                None,
                &value,
                &self.centre,
                at,
            ));
            ids.push(oid);
        }
        resources.push(requests::report(
            &rep,
            &self.patient,
            &self.id,
            self.item,
            &self.centre,
            None,
            &ids,
            "未见明显异常",
            at,
        ));
        transaction(&resources)
    }
}

/// Closes the benchmark's clinic schedules still open (`Schedule.active`
/// false): this run's at its end, and any an interrupted run left. The slot
/// page lists every open clinic of a hospital, so without this each run would
/// add one to what the next run measures. Returns how many were closed.
fn close_bench_schedules(store: &Store, client: &Client, admin: &str) -> Result<usize> {
    let rows = store.db().read(|db| {
        db.query(
            "SELECT id, version, body FROM resource WHERE rtype = 'Schedule' AND id LIKE 'bc%' AND deleted = 0",
            &[],
        )
    })?;
    let mut closed = 0;
    for r in rows {
        let mut it = r.into_iter();
        let (Some(id), Some(version), Some(body)) = (
            it.next().and_then(Val::into_string),
            it.next().and_then(|v| v.as_int()),
            it.next().and_then(Val::into_string),
        ) else {
            continue;
        };
        let Ok(mut schedule) = serde_json::from_str::<Value>(&body) else {
            continue;
        };
        if schedule["active"] == json!(false) {
            continue;
        }
        schedule["active"] = json!(false);
        let r = client.put(
            &format!("/fhir/Schedule/{id}"),
            admin,
            &schedule.to_string(),
            Some(version),
        );
        if r.status != 200 {
            bail!("关闭压测排班 {id} 失败:HTTP {} {}", r.status, r.text);
        }
        closed += 1;
    }
    Ok(closed)
}

/// CPU seconds used so far by the server and by this process with its waited
/// children (wrk), from `/proc/<pid>/stat` (utime, stime, cutime, cstime).
struct Cpu {
    server: u32,
    at: Instant,
    server_s: f64,
    client_s: f64,
}

fn cpu_seconds(pid: &str, with_children: bool) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = text
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let n = if with_children { 4 } else { 2 };
    // After the command name: state is field 3, utime field 14.
    fields.iter().skip(11).take(n).sum::<f64>() / 100.0
}

impl Cpu {
    fn start(server: u32) -> Cpu {
        Cpu {
            server,
            at: Instant::now(),
            server_s: cpu_seconds(&server.to_string(), false),
            client_s: cpu_seconds("self", true),
        }
    }

    fn print(&self) {
        let wall = self.at.elapsed().as_secs_f64().max(0.001);
        println!(
            "    CPU:服务器 {:.2} 核,压测客户端 {:.2} 核",
            (cpu_seconds(&self.server.to_string(), false) - self.server_s) / wall,
            (cpu_seconds("self", true) - self.client_s) / wall
        );
    }
}

/// One row of the report table.
fn line(
    name: &str,
    rate: f64,
    unit: &str,
    p: (f64, f64, f64),
    failed: u64,
    target: &str,
    ok: bool,
) {
    println!(
        "{:<30} {:>9.0}{:<5} {:>8.2} {:>8.2} {:>8.2} {:>7}   {:<22} {}",
        name,
        rate,
        unit,
        p.0,
        p.1,
        p.2,
        failed,
        target,
        if ok { "达标" } else { "未达标" }
    );
}

pub fn run(args: BenchCareArgs) -> Result<()> {
    let store = bench::open_county("yigong bench-care", &args.county)?;
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("未安装 wrk:apt-get install wrk");
    }
    let threads = args.connections.max(1) as usize;
    let duration = Duration::from_secs(args.duration.max(1) as u64);
    let comms = communities(&store, 6_000)?;
    let n_townships: usize = comms.iter().map(|c| c.townships.len()).sum();
    let existing = store
        .db()
        .read(|c| c.scalar_int("SELECT count(*) FROM care_item", &[]))?;
    println!(
        "县域:{} 个医共体,{n_townships} 家乡镇卫生院;已有协同流程 {existing} 条(演示生成或此前压测);抽取居民 {} 人",
        comms.len(),
        comms.iter().map(|c| c.patients.len()).sum::<usize>()
    );

    // Users acting for each institution, created before the server starts.
    let password = format!("bc-{}", rand::random::<u64>());
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    let insts: BTreeSet<&String> = comms
        .iter()
        .flat_map(|c| {
            c.townships
                .iter()
                .chain(std::iter::once(&c.lead))
                .chain(c.centres.values())
        })
        .collect();
    for inst in insts {
        tokens.insert(inst.clone(), clinician_token(&store, inst, &password)?);
    }
    let admin = store.issue_credential("admin", "token", chrono::Duration::hours(6))?;
    let sessions: Vec<(String, String)> = [&comms[0].lead, &comms[0].townships[0]]
        .into_iter()
        .map(|i| {
            let s = store.issue_credential(
                &format!("bench-care-{i}"),
                "session",
                chrono::Duration::hours(6),
            )?;
            Ok(("Cookie".to_string(), format!("yigong_session={s}")))
        })
        .collect::<Result<_>>()?;
    let tok = |inst: &str| tokens.get(inst).map(String::as_str).unwrap_or("");
    let bearer = |inst: &str| ("Authorization".to_string(), format!("Bearer {}", tok(inst)));

    // Exams: distinct (person, item) pairs; where a recognised result is still
    // valid (an earlier run, or generated flows) the order gives a reason.
    let run_tag = format!("bc{:x}", chrono::Utc::now().timestamp() % 0xff_ffff);
    let n_exams = 2_500 * args.duration.max(1) as usize;
    // Each run starts at another resident, so most pairs have no result yet.
    let start = rand::random::<u32>() as usize;
    let t = Instant::now();
    let at = now();
    let mut exams = Vec::with_capacity(n_exams);
    for i in 0..n_exams {
        let c = &comms[i % comms.len()];
        let j = i / comms.len();
        let item = &CATALOGUE[j % CATALOGUE.len()];
        let patient = &c.patients[(j / CATALOGUE.len() + start) % c.patients.len()];
        let from = &c.townships[j % c.townships.len()];
        let repeat = store
            .recognised_result(patient, item.code, from, &at)?
            .is_some();
        exams.push(Exam {
            id: format!("{run_tag}-e{i}"),
            patient: patient.clone(),
            from: from.clone(),
            centre: c.centres[&item.kind].clone(),
            item,
            repeat,
        });
    }
    println!(
        "准备 {n_exams} 例检查申请(互认预查 {:.1} s):{} 例在互认有效期内,申请时附重复检查理由",
        t.elapsed().as_secs_f64(),
        exams.iter().filter(|e| e.repeat).count()
    );

    let server = bench::start_server(&args.county.data_dir, &args.listen)?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = server.0.id();
    println!("服务器空闲常驻内存:{} MB", bench::rss_kb(pid) / 1024);
    let base = format!("http://{}", args.listen);
    let client = Client::new(&base);

    let closed = close_bench_schedules(&store, &client, &admin)?;
    if closed > 0 {
        println!("关闭此前压测遗留的排班 {closed} 个(不计时)");
    }
    // Fixtures: a clinic schedule with free slots at each lead hospital, some booked.
    let mut schedules = vec![];
    let mut booked = vec![];
    for (ci, c) in comms.iter().enumerate() {
        let practitioner = store
            .db()
            .read(|db| {
                db.query(
                    "SELECT body FROM resource WHERE rtype = 'PractitionerRole' AND inst = ? AND deleted = 0 LIMIT 1",
                    &[c.lead.as_str().into()],
                )
            })?
            .into_iter()
            .filter_map(|r| r.into_iter().next()?.into_string())
            .filter_map(|b| serde_json::from_str::<Value>(&b).ok())
            .find_map(|b| {
                b["practitioner"]["reference"]
                    .as_str()?
                    .strip_prefix("Practitioner/")
                    .map(str::to_string)
            });
        let Some(practitioner) = practitioner else {
            continue;
        };
        let sch = format!("{run_tag}-sch{ci}");
        let mut res = vec![slots::schedule(
            &sch,
            &practitioner,
            &c.lead,
            "专家门诊",
            "压测排班",
        )];
        let mut slot_bodies = vec![];
        for k in 0..40 {
            let s = slots::slot(
                &format!("{sch}-s{k}"),
                &sch,
                &later(24 * 60 + 15 * k),
                &later(24 * 60 + 15 * k + 15),
                None,
            );
            slot_bodies.push(s.clone());
            res.push(s);
        }
        let r = client.post("/fhir", &admin, &transaction(&res));
        if r.status != 200 {
            bail!("创建排班与号源失败:HTTP {} {}", r.status, r.text);
        }
        for (k, s) in slot_bodies.iter().take(10).enumerate() {
            let sid = format!("{sch}-s{k}");
            let sv = slots::read_slot(s).map_err(|e| anyhow::anyhow!(e.zh))?;
            let ap = slots::appointment(
                &format!("{sch}-a{k}"),
                &sv,
                &sid,
                &c.patients[k % c.patients.len()],
                None,
            );
            let r = client.put(
                &format!("/fhir/Appointment/{sch}-a{k}"),
                tok(&c.lead),
                &ap.to_string(),
                None,
            );
            if r.status != 201 {
                bail!("预约号源失败:HTTP {} {}", r.status, r.text);
            }
            booked.push((c.lead.clone(), sid));
        }
        schedules.push((c.lead.clone(), sch));
    }

    // Referrals waiting at the lead hospitals, created the way a township does
    // (one transaction: ServiceRequest + Task), enough for the transition test.
    let n_referrals = 600 * args.duration.max(1) as usize;
    let referrals: Vec<Referral> = (0..n_referrals)
        .map(|i| {
            let c = &comms[i % comms.len()];
            let j = i / comms.len();
            Referral {
                id: format!("{run_tag}-r{i}"),
                patient: c.patients[j % c.patients.len()].clone(),
                from: c.townships[j % c.townships.len()].clone(),
                to: c.lead.clone(),
            }
        })
        .collect();
    let made: Vec<AtomicBool> = referrals.iter().map(|_| AtomicBool::new(false)).collect();
    let cpu = Cpu::start(pid);
    let (mut created, secs) = pool(&base, threads, referrals.len(), None, |cl, i, t| {
        let r = &referrals[i];
        let body = r.bundle(&now());
        if timed(t, "转诊申请事务", 200, || {
            cl.post("/fhir", tok(&r.from), &body)
        }) {
            made[i].store(true, Ordering::Relaxed);
        }
    });
    let p = created.percentiles();
    println!(
        "预建转诊 {} 条(SR+Task 单事务,{threads} 客户端):{:.0} 条/秒,p50 {:.2} ms,p99 {:.2} ms,失败 {}",
        created.ok,
        created.ok as f64 / secs,
        p.0,
        p.2,
        created.failed
    );
    cpu.print();
    created.print_failures();
    if created.ok == 0 {
        bail!("没有创建成功的转诊,无法继续");
    }

    println!();
    println!(
        "{:<30} {:>14} {:>8} {:>8} {:>8} {:>7}   {:<22} 结论",
        "场景", "速率", "p50 ms", "p90 ms", "p99 ms", "失败", "目标"
    );
    let mut verdicts = vec![];

    // 3. Order to report, end to end: four requests per exam.
    bench::settle(&store)?;
    let cpu = Cpu::start(pid);
    let (mut ex, secs) = pool(&base, threads, exams.len(), Some(duration), |cl, i, t| {
        let e = &exams[i];
        let (town, centre) = (tok(&e.from), tok(&e.centre));
        let tid = format!("/fhir/Task/{}", task::task_id(&e.id));
        let started = Instant::now();
        let at = now();
        let ok = t.check("开单", &cl.post("/fhir", town, &e.order(&at)), 200)
            && t.check(
                "采集",
                &cl.put(
                    &tid,
                    town,
                    &e.step_body(&["collected"], &at, &e.from),
                    Some(1),
                ),
                200,
            )
            && t.check(
                "签收",
                &cl.put(
                    &tid,
                    centre,
                    &e.step_body(&["collected", "received"], &at, &e.centre),
                    Some(2),
                ),
                200,
            )
            && t.check("报告", &cl.post("/fhir", centre, &e.report(&at)), 200);
        if ok {
            t.ok += 1;
            t.lat.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    });
    let rate = ex.ok as f64 / secs;
    let p = ex.percentiles();
    let ok = rate >= EXAMS_PER_S && ex.failed == 0;
    line(
        "开单→报告全流程(4 请求/例)",
        rate,
        " 例/s",
        p,
        ex.failed,
        "≥ 1000 例/s",
        ok,
    );
    cpu.print();
    ex.print_failures();
    verdicts.push(ok);
    let exams_done = ex.ok;

    // 1. Worklists: FHIR searches of each lead hospital and township centre.
    bench::settle(&store)?;
    let mut queries: Vec<Query> = vec![];
    for c in &comms {
        let h = &c.lead;
        for (label, q) in [
            (
                "医院 Task owner+requested",
                format!("/fhir/Task?owner=Organization/{h}&business-status=requested"),
            ),
            (
                "医院 Task owner+received",
                format!("/fhir/Task?owner=Organization/{h}&business-status=received"),
            ),
            (
                "医院 ServiceRequest performer",
                format!("/fhir/ServiceRequest?performer=Organization/{h}&_count=20"),
            ),
        ] {
            queries.push((label, q, bearer(h)));
        }
        for t in &c.townships {
            for (label, q) in [
                (
                    "卫生院 Task requester+requested",
                    format!("/fhir/Task?requester=Organization/{t}&business-status=requested"),
                ),
                (
                    "卫生院 Task owner+requested",
                    format!("/fhir/Task?owner=Organization/{t}&business-status=requested"),
                ),
            ] {
                queries.push((label, q, bearer(t)));
            }
        }
    }
    for (h, sch) in &schedules {
        let q = format!("/fhir/Slot?schedule=Schedule/{sch}&status=free");
        queries.push(("医院 Slot schedule+free", q, bearer(h)));
    }
    for (h, slot) in &booked {
        let q = format!("/fhir/Appointment?slot=Slot/{slot}");
        queries.push(("医院 Appointment slot", q, bearer(h)));
    }
    // The /care pages, when the server has them (with a session cookie).
    let page_paths = [
        "/care",
        "/care/list?kind=referral&state=requested",
        "/care/list?kind=exam&state=received",
        "/care/list?kind=referral&dir=out",
        "/care/slots",
    ];
    let mut pages: Vec<Query> = vec![];
    for (who, s) in ["医院", "卫生院"].into_iter().zip(&sessions) {
        for path in page_paths {
            if client.get(path, s).status == 200 {
                pages.push((who, path.to_string(), s.clone()));
            }
        }
    }

    let dir = bench::tempdir()?;
    let wrk_script = |name: &str, reqs: &[Query]| -> Result<PathBuf> {
        let paths: Vec<String> = reqs.iter().map(|(_, p, _)| p.clone()).collect();
        let names: Vec<String> = reqs.iter().map(|(_, _, h)| h.0.clone()).collect();
        let values: Vec<String> = reqs.iter().map(|(_, _, h)| h.1.clone()).collect();
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "{}{}{}request = function()\n  local i = math.random(#paths)\n  return wrk.format(\"GET\", paths[i], {{[names[i]] = values[i]}})\nend\n",
                bench::lua_list("paths", &paths),
                bench::lua_list("names", &names),
                bench::lua_list("values", &values),
            ),
        )?;
        Ok(path)
    };
    // Each kind of query alone (its first institution), one request at a time.
    let mut breakdown: Vec<(String, f64, f64, u16)> = vec![];
    let mut seen = HashSet::new();
    for (label, q, h) in queries.iter().chain(pages.iter()) {
        let label = if q.starts_with("/care") {
            format!("页面 {label} {q}")
        } else {
            label.to_string()
        };
        if !seen.insert(label.clone()) {
            continue;
        }
        let mut lat = vec![];
        let mut status = 0;
        for _ in 0..30 {
            let started = Instant::now();
            status = client.get(q, h).status;
            lat.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(f64::total_cmp);
        breakdown.push((label, lat[lat.len() / 2], lat[lat.len() - 1], status));
    }
    // Each mix under wrk, every kind of request equally often.
    let run_mix = |name: &str, file: &str, reqs: &[Query]| -> Result<bool> {
        let script = wrk_script(file, &balanced(reqs))?;
        bench::settle(&store)?;
        let cpu = Cpu::start(pid);
        let w = bench::run_wrk(&base, &script, args.duration, args.connections)?;
        let ok = w.p99 < WORKLIST_P99_MS && w.non2xx == 0;
        line(
            name,
            w.rps,
            " 次/s",
            (w.p50, w.p90, w.p99),
            w.non2xx,
            "p99 < 20 ms",
            ok,
        );
        cpu.print();
        Ok(ok)
    };
    let kinds = queries.iter().map(|q| q.0).collect::<HashSet<_>>().len();
    verdicts.push(run_mix(
        &format!("工作列表 FHIR 查询({kinds} 类)"),
        "worklist.lua",
        &queries,
    )?);
    // The worklist pages, and the slot page (booking) on its own.
    let (slot_pages, list_pages): (Vec<Query>, Vec<Query>) = pages
        .into_iter()
        .partition(|q| q.1.starts_with("/care/slots"));
    if list_pages.is_empty() {
        println!("{:<30} 服务器尚无 /care 工作台页面,跳过", "工作台页面");
    } else {
        verdicts.push(run_mix(
            &format!("工作台页面 /care({} 个)", list_pages.len()),
            "pages.lua",
            &list_pages,
        )?);
    }
    if !slot_pages.is_empty() {
        verdicts.push(run_mix(
            &format!("号源页面 /care/slots({} 个)", slot_pages.len()),
            "slots.lua",
            &slot_pages,
        )?);
    }

    // 2. Referral transitions: each referral walked by one client, PUT + If-Match.
    bench::settle(&store)?;
    let created_ok: Vec<&Referral> = referrals
        .iter()
        .zip(&made)
        .filter(|(_, m)| m.load(Ordering::Relaxed))
        .map(|(r, _)| r)
        .collect();
    let visit = later(3 * 24 * 60);
    let cpu = Cpu::start(pid);
    let walked: Vec<AtomicBool> = created_ok.iter().map(|_| AtomicBool::new(false)).collect();
    let (mut tr, secs) = pool(
        &base,
        threads,
        created_ok.len(),
        Some(duration),
        |cl, i, t| {
            let r = created_ok[i];
            walked[i].store(true, Ordering::Relaxed);
            let path = format!("/fhir/Task/{}", r.task_id());
            let token = tok(&r.to);
            let at = now();
            for (k, state) in REFERRAL_STEPS.iter().enumerate() {
                let body = r.step_body(k, &at, &visit);
                if !timed(t, state, 200, || {
                    cl.put(&path, token, &body, Some(k as i64 + 1))
                }) {
                    break;
                }
            }
        },
    );
    let rate = tr.ok as f64 / secs;
    let p = tr.percentiles();
    let ok = rate >= TRANSITIONS_PER_S && tr.failed == 0;
    line(
        "转诊状态流转(PUT+If-Match)",
        rate,
        " 次/s",
        p,
        tr.failed,
        "≥ 2000 次/s",
        ok,
    );
    cpu.print();
    tr.print_failures();
    verdicts.push(ok);
    if tr.ok as usize >= created_ok.len() * REFERRAL_STEPS.len() {
        println!("    (预建转诊在 {secs:.1} s 内全部走完;速率按实际用时计)");
    }
    // Referrals the test did not reach are withdrawn, so repeated runs do not
    // pile up waiting referrals in the county's worklists (not measured).
    let left: Vec<&Referral> = created_ok
        .iter()
        .zip(&walked)
        .filter(|(_, w)| !w.load(Ordering::Relaxed))
        .map(|(r, _)| *r)
        .collect();
    let (cancelled, _) = pool(&base, threads, left.len(), None, |cl, i, t| {
        let r = left[i];
        let path = format!("/fhir/Task/{}", r.task_id());
        timed(t, "撤回", 200, || {
            cl.put(&path, tok(&r.from), &r.cancel_body(&now()), Some(1))
        });
    });
    println!(
        "    (未流转的 {} 条预建转诊已由申请方撤回,失败 {})",
        cancelled.ok, cancelled.failed
    );
    close_bench_schedules(&store, &client, &admin)?;

    println!();
    println!("单项查询(每种取首个机构,串行 30 次;在流转压测之前测得):");
    for (label, p50, max, status) in &breakdown {
        println!("  {label:<44} p50 {p50:>7.2} ms  max {max:>7.2} ms  HTTP {status}");
    }
    println!(
        "本次压测:{} 例检查完成,{} 次转诊状态变更;服务器峰值常驻内存 {} MB(当前 {} MB)",
        exams_done,
        tr.ok,
        bench::peak_rss_kb(pid) / 1024,
        bench::rss_kb(pid) / 1024
    );
    println!(
        "说明:客户端(wrk / {threads} 个 HTTP 客户端线程)与服务器同机运行,共用 {} 个核。",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "结论:{} / {} 项达标",
        verdicts.iter().filter(|v| **v).count(),
        verdicts.len()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
