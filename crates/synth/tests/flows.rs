//! The care flows of the synthetic county (issue 4): deterministic, in
//! realistic volumes, every reference resolving to an earlier item, every Task
//! and ServiceRequest readable by `yigong-care`, and no slot booked twice.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use yigong_care::requests;
use yigong_care::{Flow, slots, task};
use yigong_synth::*;

mod common;
use common::params;

fn collect(p: &Params) -> (Vec<Item>, Summary) {
    let mut v = vec![];
    let s = generate_counted(p, &mut |i| v.push(i));
    (v, s)
}

fn resources(items: &[Item]) -> Vec<&Value> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Resource(v) => Some(v),
            _ => None,
        })
        .collect()
}

/// The end of `as_of` in China (UTC+8).
fn end_of(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(day.and_hms_opt(23, 59, 59).unwrap() - Duration::hours(8)))
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn rtype(v: &Value) -> &str {
    v["resourceType"].as_str().unwrap()
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

fn state(t: &Value) -> &str {
    t["businessStatus"]["coding"][0]["code"].as_str().unwrap()
}

/// Every `reference` string inside `v`.
fn references<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference"
                    && let Some(s) = x.as_str()
                {
                    out.push(s);
                } else {
                    references(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

#[test]
fn same_seed_same_flows() {
    let (a, sa) = collect(&params(1_200, 5));
    let (b, sb) = collect(&params(1_200, 5));
    assert_eq!(sa, sb);
    let ja: Vec<String> = resources(&a).iter().map(|v| v.to_string()).collect();
    let jb: Vec<String> = resources(&b).iter().map(|v| v.to_string()).collect();
    assert_eq!(ja, jb);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let (c, _) = collect(&params(1_200, 6));
    let jc: Vec<String> = resources(&c).iter().map(|v| v.to_string()).collect();
    assert_ne!(ja, jc);
    // The schedules do not depend on the number of residents, so a smaller county
    // is still a prefix of a larger one up to the household the cut falls in.
    let (small, _) = collect(&params(400, 5));
    let first = small
        .iter()
        .position(|i| matches!(i, Item::Patient(_)))
        .unwrap();
    assert_eq!(
        format!("{:?}", &small[..first + 80]),
        format!("{:?}", &a[..first + 80])
    );
}

#[test]
fn every_reference_resolves_and_every_flow_reads_back() {
    let p = params(4_000, 2);
    let now = end_of(p.as_of);
    let year_start = end_of(p.as_of - Duration::days(365));
    let horizon = now + Duration::days(15);
    let (items, summary) = collect(&p);
    let mut seen: HashSet<String> = HashSet::new();
    let mut by_ref: HashMap<String, &Value> = HashMap::new();
    let mut booked_slots: HashSet<String> = HashSet::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let id_ok = |id: &str| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    for item in &items {
        let key = match item {
            Item::Org(o) => format!("Organization/{}", o.id),
            Item::Practitioner(pr) => format!("Practitioner/{}", pr.id),
            Item::Patient(pt) => format!("Patient/{}", pt.id),
            Item::Encounter(e) => format!("Encounter/{}", e.id),
            Item::Condition(c) => format!("Condition/{}", c.id),
            Item::Prescription(rx) => format!("Prescription/{}", rx.id),
            Item::Resource(v) => {
                let t = rtype(v);
                assert_eq!(resource_type(v), Some(t), "{t} is a declared type");
                assert!(id_ok(id(v)), "{}", id(v));
                *counts.entry(t).or_default() += 1;
                let mut refs = vec![];
                references(v, &mut refs);
                for r in refs {
                    assert!(seen.contains(r), "{t}/{} refers to {r} before it", id(v));
                }
                check_resource(v, &by_ref, now, year_start, horizon, &mut booked_slots);
                format!("{t}/{}", id(v))
            }
        };
        assert!(seen.insert(key.clone()), "duplicate {key}");
        if let Item::Resource(v) = item {
            by_ref.insert(key, v);
        }
    }
    println!("{counts:?}");
    assert_eq!(
        summary.resources,
        counts.values().sum::<usize>(),
        "summary counts what was emitted"
    );
    assert_eq!(summary.appointments, counts["Appointment"]);
    assert_eq!(summary.slots, counts["Slot"]);
    assert_eq!(summary.schedules, counts["Schedule"]);
    assert_eq!(summary.reports, counts["DiagnosticReport"]);
    assert_eq!(
        summary.referrals + summary.exam_orders + summary.consultations,
        counts["ServiceRequest"]
    );
    assert_eq!(booked_slots.len(), summary.appointments);
    for t in RESOURCE_TYPES {
        assert!(counts.get(t).is_some_and(|n| *n > 0), "no {t}");
    }
}

/// Checks one flow resource against what was emitted before it.
fn check_resource(
    v: &Value,
    before: &HashMap<String, &Value>,
    now: DateTime<Utc>,
    year_start: DateTime<Utc>,
    horizon: DateTime<Utc>,
    booked: &mut HashSet<String>,
) {
    let in_year = |s: &str, what: &str| {
        let t = time(s);
        assert!(s.ends_with('Z'), "{what}: {s} is UTC");
        assert!(t > year_start && t <= now, "{what} at {s} outside the year");
    };
    let name = format!("{}/{}", rtype(v), id(v));
    match rtype(v) {
        "ServiceRequest" => {
            let view = requests::read(v)
                .unwrap_or_else(|e| panic!("{name}: {}", e.zh))
                .unwrap_or_else(|| panic!("{name} belongs to no flow"));
            in_year(v["authoredOn"].as_str().unwrap(), &name);
            assert!(view.requester_org.is_some(), "{name}");
            if view.out_of_county {
                assert!(view.performer_org.is_none() && view.performer_display.is_some());
            } else {
                assert!(view.performer_org.is_some(), "{name}");
                assert_ne!(view.performer_org, view.requester_org, "{name}");
            }
            for s in &view.supporting {
                assert!(before.contains_key(s), "{name}: {s}");
            }
            if view.direction.as_deref() == Some("down") {
                let kinds: Vec<&str> = view
                    .supporting
                    .iter()
                    .map(|s| s.split('/').next().unwrap())
                    .collect();
                assert_eq!(kinds, ["CarePlan", "DocumentReference"], "{name}");
            }
        }
        "Task" => {
            let view = task::read(v)
                .unwrap_or_else(|e| panic!("{name}: {}", e.zh))
                .unwrap_or_else(|| panic!("{name} tracks no flow"));
            let steps = task::steps(v);
            assert_eq!(
                steps.first().map(|s| s.0.as_str()),
                Some("requested"),
                "{name}"
            );
            assert_eq!(
                steps.last().map(|s| s.0.as_str()),
                Some(view.state.as_str())
            );
            for w in steps.windows(2) {
                view.flow
                    .step(&w[0].0, &w[1].0)
                    .unwrap_or_else(|e| panic!("{name}: {}", e.zh));
                assert!(
                    time(&w[0].1) <= time(&w[1].1),
                    "{name}: steps in time order"
                );
            }
            for (_, at) in &steps {
                in_year(at, &name);
            }
            if let Some(esc) = &view.escalated {
                assert_eq!(Some(esc), view.deadline.as_ref(), "{name}");
                assert!(time(esc) <= now, "{name}: escalated in the future");
            }
            let focus = view.focus.clone().unwrap();
            let target = before
                .get(&focus)
                .unwrap_or_else(|| panic!("{name}: focus {focus}"));
            if view.flow == Flow::CriticalAck {
                assert_eq!(id(v), task::ack_task_id(id(target)));
                assert_eq!(view.state, "acknowledged");
                assert!(
                    target["result"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| requests::is_critical(before[r["reference"].as_str().unwrap()])),
                    "{name} acknowledges a critical value"
                );
                return;
            }
            assert_eq!(id(v), task::task_id(id(target)), "{name}");
            let sr = requests::read(target).unwrap().unwrap();
            assert_eq!(sr.flow, view.flow, "{name}");
            assert_eq!(sr.patient, view.patient, "{name}");
            assert_eq!(sr.priority, view.priority, "{name}");
            assert_eq!(view.requester, sr.requester_org, "{name}");
            if sr.out_of_county {
                assert_eq!(view.owner, sr.requester_org, "{name}");
            } else {
                assert_eq!(view.owner, sr.performer_org, "{name}");
            }
            assert_ne!(view.state, "reported", "{name}: the store completes exams");
            if view.state == "rejected" {
                assert!(view.reason.is_some());
            }
        }
        "Observation" => {
            in_year(v["effectiveDateTime"].as_str().unwrap(), &name);
            let order = v["basedOn"][0]["reference"].as_str().unwrap();
            assert!(before.contains_key(order), "{name}");
        }
        "DiagnosticReport" => {
            in_year(v["issued"].as_str().unwrap(), &name);
            assert_eq!(v["status"], "final");
            let order = requests::report_order(v).unwrap();
            let task = &before[&format!("Task/{}", task::task_id(&order))];
            assert_eq!(
                state(task),
                "received",
                "{name}: its Task awaits the report"
            );
            let results = requests::report_results(v);
            assert!(!results.is_empty());
            let received = task::steps(task).last().map(|s| time(&s.1)).unwrap();
            assert!(time(v["issued"].as_str().unwrap()) >= received, "{name}");
        }
        "Schedule" => {
            assert!(v["actor"][0]["reference"].as_str().is_some());
        }
        "Slot" => {
            let s = slots::read_slot(v).unwrap_or_else(|e| panic!("{name}: {}", e.zh));
            assert_eq!(s.status, "free");
            assert!(
                time(&s.start) > year_start && time(&s.end) <= horizon,
                "{name}"
            );
            if let Some(h) = &s.held_until {
                assert_eq!(time(&s.start) - time(h), Duration::hours(48));
            }
        }
        "Appointment" => {
            let a = slots::read_appointment(v);
            let slot = a.slot.clone().unwrap();
            assert!(
                booked.insert(slot.clone()),
                "{name}: slot {slot} booked twice"
            );
            let sv = slots::read_slot(before[&format!("Slot/{slot}")]).unwrap();
            assert_eq!(v["start"].as_str(), Some(sv.start.as_str()));
            assert!(
                matches!(
                    a.status.as_str(),
                    "booked" | "arrived" | "fulfilled" | "cancelled" | "noshow"
                ),
                "{name}"
            );
            let start = time(&sv.start);
            if start > now {
                assert!(
                    matches!(a.status.as_str(), "booked" | "cancelled"),
                    "{name}"
                );
            } else {
                assert_ne!(a.status, "booked", "{name}: past appointments are closed");
            }
            if let Some(r) = &a.referral {
                let sr = before[&format!("ServiceRequest/{r}")];
                assert_eq!(
                    sr["subject"]["reference"],
                    v["participant"][0]["actor"]["reference"]
                );
                let t = before[&format!("Task/{}", task::task_id(r))];
                let expect = match state(t) {
                    "scheduled" => "booked",
                    "arrived" => "arrived",
                    "completed" => "fulfilled",
                    s => panic!("{name}: referral in state {s}"),
                };
                assert_eq!(a.status, expect, "{name}");
            }
        }
        "CarePlan" => {
            assert_eq!(v["status"], "active");
            assert_eq!(v["intent"], "plan");
            assert!(v["subject"]["reference"].as_str().is_some());
            assert!(v["activity"].as_array().is_some_and(|a| !a.is_empty()));
            assert_eq!(
                v["extension"][0]["url"],
                yigong_care::codes::EXT_RECORDED_AT
            );
        }
        "DocumentReference" => {
            assert_eq!(v["status"], "current");
            let att = &v["content"][0]["attachment"];
            assert_eq!(att["contentType"], "text/plain;charset=utf-8");
            assert!(!att["data"].as_str().unwrap().is_empty());
            in_year(v["date"].as_str().unwrap(), &name);
            assert_eq!(
                v["extension"][0]["url"],
                yigong_care::codes::EXT_RECORDED_AT
            );
        }
        "Claim" => {
            assert_eq!(v["status"], "active");
            assert_eq!(
                v["provider"]["reference"],
                format!("Organization/{}", yigong_synth::OUT_OF_COUNTY_ID)
            );
            assert_eq!(v["extension"][0]["valueBoolean"], false, "{name}");
            assert_eq!(v["total"]["currency"], "CNY");
            let fen = yigong_core::Fen::parse_yuan(&v["total"]["value"].to_string()).unwrap();
            assert!(fen.0 > 0 && fen.0 <= 3_500 * 100, "{name}: {fen:?}");
            assert!(v.get("item").is_none(), "{name}: no Encounter behind it");
            in_year(v["created"].as_str().unwrap(), &name);
        }
        t => panic!("unexpected {t}"),
    }
}

/// Volumes per 100 residents and the shares inside them.
#[test]
fn volumes_and_delays_are_realistic() {
    // FLOWS_RESIDENTS=100000 measures the demo county (run with --release-like patience).
    let n = std::env::var("FLOWS_RESIDENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6_000);
    let p = params(n, 9);
    let now = end_of(p.as_of);
    let (items, summary) = collect(&p);
    let res = resources(&items);
    let by_ref: HashMap<String, &Value> = res
        .iter()
        .map(|v| (format!("{}/{}", rtype(v), id(v)), *v))
        .collect();
    let per100 = |x: usize| x as f64 * 100.0 / n as f64;
    let srs: Vec<_> = res
        .iter()
        .filter(|v| rtype(v) == "ServiceRequest")
        .map(|v| (*v, requests::read(v).unwrap().unwrap()))
        .collect();
    let referrals: Vec<_> = srs
        .iter()
        .filter(|(_, s)| s.flow == Flow::Referral)
        .collect();
    let up: Vec<_> = referrals
        .iter()
        .filter(|(_, s)| s.direction.as_deref() == Some("up"))
        .collect();
    let down = referrals.len() - up.len();
    let out = up.iter().filter(|(_, s)| s.out_of_county).count();
    let fast = up.iter().filter(|(_, s)| s.priority != "routine").count();
    let task_of = |sr: &Value| by_ref[&format!("Task/{}", task::task_id(id(sr)))];
    let up_states: Vec<&str> = up.iter().map(|(v, _)| state(task_of(v))).collect();
    let rejected = up_states.iter().filter(|s| **s == "rejected").count();
    let cancelled = up_states.iter().filter(|s| **s == "cancelled").count();
    let exams: Vec<_> = srs.iter().filter(|(_, s)| s.flow == Flow::Exam).collect();
    let kind_share = |k: &str| {
        exams
            .iter()
            .filter(|(v, _)| v["category"][0]["coding"][0]["code"] == k)
            .count() as f64
            / exams.len() as f64
    };
    let consults = srs.iter().filter(|(_, s)| s.flow == Flow::Consult).count();
    // Routine referrals answered after the 48-hour deadline.
    let routine_answered: Vec<&Value> = up
        .iter()
        .filter(|(_, s)| s.priority == "routine" && !s.out_of_county)
        .map(|(v, _)| task_of(v))
        .filter(|t| task::steps(t).len() > 1)
        .collect();
    let late = routine_answered
        .iter()
        .filter(|t| task::read(t).unwrap().unwrap().escalated.is_some())
        .count();
    // Stat referrals: minutes to acceptance.
    let stat_minutes: Vec<i64> = up
        .iter()
        .filter(|(_, s)| s.priority == "stat")
        .map(|(v, _)| task::steps(task_of(v)))
        .filter(|s| s.len() > 1 && s[1].0 == "accepted")
        .map(|s| (time(&s[1].1) - time(&s[0].1)).num_minutes())
        .collect();
    let acks: Vec<&Value> = res
        .iter()
        .copied()
        .filter(|v| rtype(v) == "Task" && id(v).ends_with("-ack"))
        .collect();
    let ack_late = acks
        .iter()
        .filter(|t| task::read(t).unwrap().unwrap().escalated.is_some())
        .count();
    println!(
        "per 100: up {:.2} (out {out}, stat/urgent {fast}, rejected {rejected}, cancelled {cancelled}) down {:.2} \
         exams {:.1} (lab {:.2} ecg {:.2} imaging {:.2} path {:.3}) reports {} critical {} acks {} (late {ack_late}) \
         consults {:.2} appointments {:.2}; routine late {late}/{}; stat minutes {:?}",
        per100(up.len()),
        per100(down),
        per100(exams.len()),
        kind_share("lab"),
        kind_share("ecg"),
        kind_share("imaging"),
        kind_share("pathology"),
        summary.reports,
        summary.critical_values,
        acks.len(),
        per100(consults),
        per100(summary.appointments),
        routine_answered.len(),
        stat_minutes.iter().max(),
    );
    assert!((1.1..=2.0).contains(&per100(up.len())), "up-referrals");
    assert!((0.4..=0.85).contains(&per100(down)), "down-referrals");
    assert!((10.0..=14.0).contains(&per100(exams.len())), "exam orders");
    assert!((0.15..=0.5).contains(&per100(consults)), "consultations");
    assert!(
        (1.5..=2.6).contains(&per100(summary.appointments)),
        "appointments"
    );
    assert!((0.64..=0.76).contains(&kind_share("lab")));
    assert!((0.11..=0.19).contains(&kind_share("ecg")));
    assert!((0.09..=0.17).contains(&kind_share("imaging")));
    assert!(kind_share("pathology") < 0.05);
    let share = |x: usize| x as f64 / up.len() as f64;
    assert!((0.05..=0.2).contains(&share(fast)), "stat/urgent share");
    assert!(share(rejected) < 0.12 && rejected > 0);
    assert!(share(cancelled) < 0.09 && cancelled > 0);
    assert!(share(out) < 0.06);
    assert!(late > 0 && (late as f64) < 0.12 * routine_answered.len() as f64);
    assert!(stat_minutes.iter().all(|m| (5..=40).contains(m)));
    let critical_share = summary.critical_values as f64 / summary.reports as f64;
    assert!(
        (0.001..=0.025).contains(&critical_share),
        "{critical_share}"
    );
    assert!(acks.len() <= summary.critical_values);
    assert!(ack_late as f64 <= 0.3 * acks.len() as f64);

    // Open work at the end of the year, for the worklists.
    // Exams whose report was issued are completed by the store.
    let reported: HashSet<String> = res
        .iter()
        .filter(|v| rtype(v) == "DiagnosticReport")
        .map(|v| format!("ServiceRequest/{}", requests::report_order(v).unwrap()))
        .collect();
    let open = |flow: Flow, st: &str| {
        res.iter()
            .filter(|v| rtype(v) == "Task")
            .filter_map(|t| task::read(t).unwrap())
            .filter(|t| t.flow == flow && t.state == st)
            .filter(|t| !t.focus.as_ref().is_some_and(|f| reported.contains(f)))
            .count()
    };
    println!(
        "open: referrals requested {} accepted {} scheduled {}; exams received {} in-transit {}; consults requested {} accepted {} answered {}",
        open(Flow::Referral, "requested"),
        open(Flow::Referral, "accepted"),
        open(Flow::Referral, "scheduled"),
        open(Flow::Exam, "received"),
        open(Flow::Exam, "in-transit"),
        open(Flow::Consult, "requested"),
        open(Flow::Consult, "accepted"),
        open(Flow::Consult, "answered"),
    );
    // (At 100,000 residents each kind of open work is there; a small county has
    // only a few items in all.)
    let open_work = open(Flow::Exam, "received")
        + open(Flow::Exam, "in-transit")
        + open(Flow::Referral, "requested")
        + open(Flow::Referral, "accepted")
        + open(Flow::Referral, "scheduled")
        + open(Flow::Consult, "requested")
        + open(Flow::Consult, "accepted")
        + open(Flow::Consult, "answered");
    assert!(open_work >= 3, "{open_work} open items");
    let future_free = res
        .iter()
        .filter(|v| rtype(v) == "Slot" && time(v["start"].as_str().unwrap()) > now)
        .count();
    let future_booked = res
        .iter()
        .filter(|v| rtype(v) == "Appointment" && time(v["start"].as_str().unwrap()) > now)
        .count();
    assert!(future_free > future_booked && future_booked > 0);
}
