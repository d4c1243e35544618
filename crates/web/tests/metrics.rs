//! Live indicators through the API: encounters move the counters in their own
//! transaction, corrections move them back, a full recompute agrees, and the
//! figures come out as FHIR MeasureReports from `$evaluate-measure` —
//! validated by the independent FHIR validator. Bad input is refused and
//! leaves the figures as they were.

mod common;

use common::*;
use serde_json::{Value, json};

fn county(s: &TestServer) {
    seed_county(s);
    let admin = s.token("admin");
    let r = s.put(
        &admin,
        "/fhir/Organization/h1",
        &org(
            "h1",
            "县人民医院",
            "general-hospital",
            Some("county"),
            Some("com1"),
        )
        .to_string(),
        None,
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    for (id, o) in [("p1", "t1"), ("p2", "t1")] {
        let mut p = patient(o);
        p["id"] = json!(id);
        p["identifier"][0]["value"] = json!(if id == "p1" {
            "11010519491231002X"
        } else {
            "110105194912310046"
        });
        let r = s.put(&admin, &format!("/fhir/Patient/{id}"), &p.to_string(), None);
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
}

fn visit(s: &TestServer, token: &str, id: &str, patient: &str, org: &str) -> Value {
    let mut e = encounter(patient, org);
    e["id"] = json!(id);
    let r = s.put(
        token,
        &format!("/fhir/Encounter/{id}"),
        &e.to_string(),
        None,
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    r.json()
}

fn population(report: &Value, code: &str) -> Option<i64> {
    report["group"][0]["population"]
        .as_array()?
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == code)?["count"]
        .as_i64()
}

fn evaluate(
    s: &TestServer,
    token: &str,
    measure: &str,
    subject: &str,
    start: &str,
    end: &str,
) -> (u16, Value) {
    let r = s.get(
        token,
        &format!("/fhir/Measure/{measure}/$evaluate-measure?periodStart={start}&periodEnd={end}&subject={subject}&reportType=summary"),
    );
    let v = if r.status == 200 {
        r.json()
    } else {
        json!({ "text": r.text })
    };
    (r.status, v)
}

fn run(s: &TestServer) {
    county(s);
    let admin = s.token("admin");
    // Three visits at the township centre, one at the lead hospital: 75% primary.
    for (i, org) in ["t1", "t1", "t1", "h1"].iter().enumerate() {
        visit(s, &admin, &format!("e{i}"), "p1", org);
    }
    let (st, rep) = evaluate(
        s,
        &admin,
        "primary-visit-share",
        "Organization/com1",
        "2026-03-01",
        "2026-03-31",
    );
    assert_eq!(st, 200, "{rep}");
    assert_eq!(population(&rep, "numerator"), Some(3), "{rep}");
    assert_eq!(population(&rep, "denominator"), Some(4), "{rep}");
    assert_eq!(
        rep["group"][0]["measureScore"]["value"].as_f64(),
        Some(75.0),
        "{rep}"
    );
    let mut reports = vec![rep.clone()];

    // A correction moves the figure: the lead-hospital visit was really at the centre.
    let mut e = encounter("p1", "t1");
    e["id"] = json!("e3");
    let r = s.put(
        &admin,
        "/fhir/Encounter/e3",
        &e.to_string(),
        Some("W/\"1\""),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, rep) = evaluate(
        s,
        &admin,
        "primary-visit-share",
        "Organization/com1",
        "2026-03-01",
        "2026-03-31",
    );
    assert_eq!(population(&rep, "numerator"), Some(4), "{rep}");
    assert_eq!(
        rep["group"][0]["measureScore"]["value"].as_f64(),
        Some(100.0),
        "{rep}"
    );
    // An institution subject and the county.
    let (_, inst) = evaluate(
        s,
        &admin,
        "outpatient-visits",
        "Organization/t1",
        "2026-03",
        "2026-03",
    );
    assert_eq!(population(&inst, "measure-population"), Some(4), "{inst}");
    let (st, all) = evaluate(
        s,
        &admin,
        "primary-visit-share",
        "Organization/county",
        "2026-01-01",
        "2026-12-31",
    );
    assert_eq!(st, 200, "{all}");
    reports.push(inst);
    reports.push(all);

    // A period with no visits: no score, never NaN.
    let (st, empty) = evaluate(
        s,
        &admin,
        "primary-visit-share",
        "Organization/com1",
        "2025-01-01",
        "2025-01-31",
    );
    assert_eq!(st, 200);
    assert!(empty["group"][0].get("measureScore").is_none(), "{empty}");
    assert!(!empty.to_string().contains("NaN"));
    reports.push(empty);

    // Bad input: negative charges and a future visit are refused; nothing moves.
    let before = s
        .store
        .metric_sums(
            &yigong_store::metrics::Subject::County,
            &["visits".into()],
            "2000-01",
            "2100-12",
        )
        .unwrap();
    let mut bad = encounter("p1", "t1");
    bad["extension"][0]["extension"][0]["valueMoney"]["value"] = json!(-5);
    let r = s.post(&admin, "/fhir/Encounter", &bad.to_string());
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("负"), "{}", r.text);
    let mut future = encounter("p1", "t1");
    future["period"]["start"] = json!("2099-01-01T00:00:00Z");
    assert!(
        s.post(&admin, "/fhir/Encounter", &future.to_string())
            .status
            >= 400
    );
    let after = s
        .store
        .metric_sums(
            &yigong_store::metrics::Subject::County,
            &["visits".into()],
            "2000-01",
            "2100-12",
        )
        .unwrap();
    assert_eq!(before, after);

    // Bad requests for the operation.
    assert_eq!(
        s.get(
            &admin,
            "/fhir/Measure/primary-visit-share/$evaluate-measure?periodEnd=2026-03-31"
        )
        .status,
        400
    );
    assert_eq!(
        evaluate(
            s,
            &admin,
            "primary-visit-share",
            "Organization/com1",
            "2026-04-01",
            "2026-03-01"
        )
        .0,
        400
    );
    assert_eq!(
        evaluate(
            s,
            &admin,
            "no-such-indicator",
            "Organization/com1",
            "2026-03-01",
            "2026-03-31"
        )
        .0,
        404
    );
    assert_eq!(
        evaluate(
            s,
            &admin,
            "primary-visit-share",
            "Organization/nowhere",
            "2026-03-01",
            "2026-03-31"
        )
        .0,
        400
    );
    // Without a subject a community user gets their own community.
    let r = s.get(&s.token("doc1"), "/fhir/Measure/primary-visit-share/$evaluate-measure?periodStart=2026-03-01&periodEnd=2026-03-31");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["reporter"]["reference"], "Organization/com1");
    // Scope: a doctor of community 2 may not read community 1's figures.
    assert_eq!(
        evaluate(
            s,
            &s.token("doc2"),
            "primary-visit-share",
            "Organization/com1",
            "2026-03-01",
            "2026-03-31"
        )
        .0,
        403
    );

    // The live counters equal a full recompute.
    let r = s.store.metrics_recompute().unwrap();
    assert_eq!(r.differing, 0, "live counters drifted from the recompute");
    assert_eq!(
        r.rebuilt_inputs, None,
        "inputs written with the resources are current"
    );
    assert!(r.resources >= 4);

    // Inputs of another version are rebuilt from the resources before the
    // recompute reads them: emptied lines would otherwise lose every visit.
    let empty_visit_lines = || {
        s.store
            .db()
            .write(|tx| {
                tx.exec(
                    "UPDATE metric_input SET body = '' WHERE rtype = 'Encounter'",
                    &[],
                )
            })
            .unwrap();
    };
    empty_visit_lines();
    s.store
        .meta_set(yigong_store::metrics::INPUT_VERSION_KEY, "0:older")
        .unwrap();
    let r = s.store.metrics_recompute().unwrap();
    assert!(r.rebuilt_inputs.is_some_and(|n| n >= 4), "{r:?}");
    assert_eq!(r.differing, 0, "rebuilt inputs give the live counters");
    let r = s.store.metrics_recompute().unwrap();
    assert_eq!((r.rebuilt_inputs, r.differing), (None, 0));
    // Without the rebuild the emptied lines are read as they are (and the
    // recompute reports and corrects the difference), which the forced
    // rebuild then undoes.
    empty_visit_lines();
    assert!(s.store.metrics_recompute().unwrap().differing > 0);
    assert!(s.store.rebuild_metric_inputs().unwrap() >= 4);
    assert!(
        s.store.metrics_recompute().unwrap().differing > 0,
        "the counters were corrected to the emptied lines"
    );
    assert_eq!(s.store.metrics_recompute().unwrap().differing, 0);

    // Every Measure and the reports are valid FHIR R4.
    let list = s.get(&admin, "/fhir/Measure").json();
    let n = list["entry"].as_array().unwrap().len();
    assert!(n >= 30, "{n} measures");
    let m = s.get(&admin, "/fhir/Measure/primary-visit-share");
    assert_eq!(m.status, 200);
    if let Some(python) = fhir_validator() {
        let dir = tempfile::tempdir().unwrap();
        let mut count = 0;
        for e in list["entry"].as_array().unwrap() {
            count += 1;
            std::fs::write(
                dir.path().join(format!("m{count}.json")),
                e["resource"].to_string(),
            )
            .unwrap();
        }
        for r in &reports {
            count += 1;
            std::fs::write(dir.path().join(format!("r{count}.json")), r.to_string()).unwrap();
        }
        validate_fhir_dir(&python, dir.path(), count);
    }
}

#[test]
fn indicators_on_sqlite() {
    run(&TestServer::start());
}

#[test]
fn indicators_on_postgres() {
    on_postgres("metrics", |s| run(&s));
}
