//! The prescription review pages over HTTP (form → findings, pharmacist pass
//! and return, prescriber edit and resubmit, dispensing, the refusals with
//! their statuses and Chinese messages, formulary, committee decisions and
//! post-hoc review), and one story in a real browser.
//!
//! Drugs are chosen from the shipped knowledge base at run time, so the tests
//! follow the data rather than hard-coding a product.

mod common;

use common::*;
use serde_json::json;
use yigong_rx::knowledge::{doses_per_day, icd_matches};
use yigong_store::pharmacy::Qty;
use yigong_store::{Actor, Role, Scope, Store};

fn lead(mut o: serde_json::Value) -> serde_json::Value {
    o["extension"] = json!([{ "url": "https://yigong.org.cn/fhir/StructureDefinition/lead-hospital", "valueBoolean": true }]);
    o
}

/// County → one community with its lead hospital (h1, the central pharmacy)
/// and a township centre (t1); prescribers at both, the community's
/// pharmacist at h1, a pharmacist at t1, the operations centre; a patient of h1.
fn seed(s: &TestServer) {
    add_users(
        s,
        [
            ("admin", Role::SystemAdmin, Scope::County, None),
            (
                "hdoc",
                Role::Clinician,
                Scope::Institution("h1".into()),
                Some("h1"),
            ),
            (
                "tdoc",
                Role::Clinician,
                Scope::Institution("t1".into()),
                Some("t1"),
            ),
            (
                "pharm",
                Role::Pharmacist,
                Scope::Community("com1".into()),
                Some("h1"),
            ),
            (
                "tpharm",
                Role::Pharmacist,
                Scope::Institution("t1".into()),
                Some("t1"),
            ),
            (
                "ops",
                Role::OperationsCentre,
                Scope::Community("com1".into()),
                None,
            ),
        ],
    );
    let admin = s.token("admin");
    let entries: Vec<serde_json::Value> = [
        org("county", "测试县", "county", None, None),
        org("com1", "第一医共体", "community", None, Some("county")),
        lead(org(
            "h1",
            "县人民医院",
            "general-hospital",
            Some("county"),
            Some("com1"),
        )),
        org(
            "t1",
            "甲镇卫生院",
            "township-centre",
            Some("township"),
            Some("com1"),
        ),
    ]
    .into_iter()
    .map(|o| {
        let url = format!("Organization/{}", o["id"].as_str().unwrap());
        json!({ "resource": o, "request": { "method": "PUT", "url": url } })
    })
    .collect();
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
    let r = s.post(&admin, "/fhir", &bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
    // An adult of working age (no elderly or paediatric rules in the way).
    let mut p = patient("h1");
    p["id"] = json!("pt1");
    p["birthDate"] = json!("1980-06-15");
    p.as_object_mut().unwrap().remove("identifier");
    let r = s.put(&s.token("hdoc"), "/fhir/Patient/pt1", &p.to_string(), None);
    assert_eq!(r.status, 201, "{}", r.text);
}

/// An oral drug with an adult maximum single dose, usable at any tier by any
/// clinician without a skin test, with a diagnosis it is indicated for and a
/// dose that stays within every adult limit at one of its frequencies.
struct Pick {
    code: String,
    name: String,
    diagnosis: String,
    frequency: String,
    good: f64,
    bad: f64,
    /// Title of the source of the drug's dose facts.
    dose_source: String,
}

fn pick(store: &Store) -> Pick {
    let state = store.rx_state();
    let k = &state.knowledge;
    for d in &k.drugs {
        let Some(max) = d.adult.max_dose else {
            continue;
        };
        if !d.routes.iter().any(|r| r == "po")
            || d.antimicrobial.is_some()
            || d.controlled.is_some()
            || d.restriction.is_some()
            || d.skin_test
            || !d.splittable
            || d.child_min_age_days.is_some_and(|a| a > 6570)
        {
            continue;
        }
        let Some(diagnosis) = d.indications.iter().find(|i| {
            yigong_core::icd10::Icd10::parse(i).is_ok()
                && !d.contraindications.iter().any(|c| icd_matches(i, &c.icd10))
        }) else {
            continue;
        };
        for f in &d.frequencies {
            let Some(n) = doses_per_day(f).filter(|n| *n >= 1.0) else {
                continue;
            };
            let good = d.adult.max_daily.map_or(max, |m| max.min(m / n));
            if d.adult.min_dose.is_some_and(|m| good < m) {
                continue;
            }
            return Pick {
                code: d.code.clone(),
                name: d.name.clone(),
                diagnosis: diagnosis.clone(),
                frequency: f.clone(),
                good,
                bad: max * 2.0,
                dose_source: d
                    .sources
                    .get("dose")
                    .and_then(|s| k.source(s))
                    .map(|s| s.title.clone())
                    .unwrap_or_default(),
            };
        }
    }
    panic!(
        "no drug in the knowledge base ({} drugs) fits the test: an oral (po), splittable drug with adult.max_dose, \
         no antimicrobial grade, special control, restriction or skin test, an ICD-10 indication and a frequency \
         whose maximum dose respects max_daily. Is crates/rx/data/drugs/*.json filled in?",
        k.drugs.len()
    );
}

fn get(s: &TestServer, token: &str, path: &str) -> (u16, String) {
    let mut r = s
        .agent
        .get(s.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// Posts a form; returns status, body and the redirect target.
fn post(s: &TestServer, token: &str, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut r = s
        .agent
        .post(s.url(path))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)
        .unwrap();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap(),
        location,
    )
}

fn rx_fields(p: &Pick, dose: f64) -> Vec<(String, String)> {
    vec![
        ("patient".into(), "pt1".into()),
        ("setting".into(), "outpatient".into()),
        ("diagnoses".into(), p.diagnosis.clone()),
        ("l0_drug".into(), p.code.clone()),
        ("l0_dose".into(), dose.to_string()),
        ("l0_unit".into(), String::new()),
        ("l0_frequency".into(), p.frequency.clone()),
        ("l0_route".into(), "po".into()),
        ("l0_days".into(), "3".into()),
        ("weight".into(), String::new()),
        ("egfr".into(), String::new()),
        ("allergies".into(), String::new()),
        ("l1_drug".into(), String::new()),
        ("l1_dose".into(), String::new()),
        ("l1_frequency".into(), "tid".into()),
        ("l1_route".into(), "po".into()),
    ]
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// Submits through the form; returns the new prescription's id.
fn submit(s: &TestServer, token: &str, p: &Pick, dose: f64) -> String {
    let (status, body, location) = post(s, token, "/rx/new", &as_refs(&rx_fields(p, dose)));
    assert_eq!(status, 303, "{body}");
    location
        .strip_prefix("/rx/")
        .expect("redirect to the prescription")
        .to_string()
}

fn version(s: &TestServer, id: &str) -> i64 {
    s.store.rx_get(&Scope::County, id).unwrap().unwrap().version
}

fn status(s: &TestServer, id: &str) -> String {
    s.store.rx_get(&Scope::County, id).unwrap().unwrap().status
}

/// A clean prescription may still carry warnings and wait for a pharmacist.
fn pass_if_pending(s: &TestServer, pharm: &str, id: &str) {
    if status(s, id) == "pending" {
        let v = version(s, id).to_string();
        let (code, body, _) = post(
            s,
            pharm,
            &format!("/rx/{id}/review"),
            &[("version", &v), ("action", "pass"), ("note", "已核对")],
        );
        assert_eq!(code, 303, "{body}");
    }
    assert_eq!(status(s, id), "passed");
}

/// Enough stock of the drug at the lead hospital's central pharmacy for `id`.
fn stock_for(s: &TestServer, id: &str) {
    let rx = s.store.rx_get(&Scope::County, id).unwrap().unwrap();
    let state = s.store.rx_state();
    let pharm = Actor {
        user: "pharm".into(),
        institution: Some("h1".into()),
        scope: Scope::Community("com1".into()),
    };
    for item in &rx.body.items {
        let d = state.knowledge.drug(&item.drug).unwrap();
        let units = yigong_rx::engine::units_needed(&state.knowledge, item).unwrap();
        let packages = units / d.package as i64 + 1;
        s.store
            .pharmacy_receive(
                &pharm,
                "h1",
                &d.code,
                "T2026001",
                chrono::Utc::now().date_naive() + chrono::Duration::days(400),
                Qty::Packages(packages),
                50,
                Some("测试入库"),
            )
            .unwrap();
    }
}

fn this_month() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m")
        .to_string()
}

#[test]
fn the_form_shows_findings_and_a_pharmacist_passes_with_a_reason() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let (hdoc, pharm) = (s.token("hdoc"), s.token("pharm"));

    let (code, body) = get(&s, &hdoc, "/rx/new?patient=pt1");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("开具处方") && body.contains("王晓红") && body.contains(&p.code),
        "{body}"
    );
    assert!(body.contains("rx-nav-formulary") && body.contains("处方点评"));

    let id = submit(&s, &hdoc, &p, p.bad);
    let (code, body) = get(&s, &hdoc, &format!("/rx/{id}"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("DOSE-SINGLE"), "{body}");
    assert!(
        body.contains(r#"<tr class="sev-block" id="line-1">"#),
        "the line is highlighted as blocked: {body}"
    );
    assert!(body.contains(&p.name) && body.contains("待审核") && body.contains("用法用量"));
    assert!(body.contains(&esc(&p.dose_source)), "source title: {body}");
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let born = chrono::NaiveDate::from_ymd_opt(1980, 6, 15).unwrap();
    let age = yigong_rx::model::age_label(born, today);
    assert!(body.contains(&age), "age {age}: {body}");
    assert!(
        !body.contains(r#"id="rx-pass""#),
        "no review for the prescriber"
    );

    // The pharmacists' queue: blocked first, with the problem shown.
    let (code, body) = get(&s, &pharm, "/rx");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("审方队列") && body.contains(&id), "{body}");
    let row = &body[body.find(&format!(r#"id="row-{id}""#)).expect("queue row")..];
    assert!(
        row.contains("<code>DOSE-") && row.contains("拦截"),
        "{body}"
    );
    let (code, body) = get(&s, &pharm, &format!("/rx/{id}"));
    assert_eq!(code, 200);
    assert!(body.contains(r#"id="rx-pass""#) && body.contains(r#"id="rx-return""#));

    // Passing a blocked prescription needs a reason: the store says so.
    let (code, body, _) = post(
        &s,
        &pharm,
        &format!("/rx/{id}/review"),
        &[("version", "1"), ("action", "pass"), ("note", "")],
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("放行必须填写理由"), "{body}");
    assert_eq!(status(&s, &id), "pending");
    let (code, body, location) = post(
        &s,
        &pharm,
        &format!("/rx/{id}/review"),
        &[
            ("version", "1"),
            ("action", "pass"),
            ("note", "会诊确认,短期冲击剂量"),
        ],
    );
    assert_eq!(code, 303, "{body}");
    assert_eq!(location, format!("/rx?done={id}&act=pass"));
    let (_, body) = get(&s, &pharm, &location);
    assert!(body.contains("已审核通过"), "{body}");
    let (_, body) = get(&s, &hdoc, &format!("/rx/{id}"));
    assert!(
        body.contains("审核通过") && body.contains("会诊确认,短期冲击剂量"),
        "{body}"
    );
}

#[test]
fn a_returned_prescription_is_edited_and_resubmitted() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let (hdoc, pharm) = (s.token("hdoc"), s.token("pharm"));
    let id = submit(&s, &hdoc, &p, p.bad);
    let (code, body, _) = post(
        &s,
        &pharm,
        &format!("/rx/{id}/review"),
        &[
            ("version", "1"),
            ("action", "return"),
            ("note", "单次剂量超过极量,请减量"),
        ],
    );
    assert_eq!(code, 303, "{body}");

    // The prescriber's list has it on top, with the pharmacist's note.
    let (code, body) = get(&s, &hdoc, "/rx");
    assert_eq!(code, 200);
    let returned = &body[body.find("退回待修改").expect("returned section")..];
    let returned = &returned[..returned.find("我开具的处方").unwrap()];
    assert!(
        returned.contains(&id) && returned.contains("单次剂量超过极量"),
        "{body}"
    );
    let (_, body) = get(&s, &hdoc, &format!("/rx/{id}"));
    assert!(
        body.contains(r#"id="rx-edit""#) && body.contains("已退回"),
        "{body}"
    );

    // The edit form is the stored prescription.
    let (code, body) = get(&s, &hdoc, &format!("/rx/{id}/edit"));
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!(r#"value="{}""#, p.code))
            && body.contains(&format!(r#"value="{}""#, p.bad))
            && body.contains(&format!(r#"value="{}""#, p.diagnosis))
            && body.contains("药师退回意见"),
        "{body}"
    );
    // Someone else may not edit it.
    let (code, _) = get(&s, &s.token("pharm"), &format!("/rx/{id}/edit"));
    assert_eq!(code, 403);

    let mut fields = rx_fields(&p, p.good);
    fields.push(("version".into(), "2".into()));
    let (code, body, location) = post(&s, &hdoc, &format!("/rx/{id}/edit"), &as_refs(&fields));
    assert_eq!(code, 303, "{body}");
    assert_eq!(location, format!("/rx/{id}"));
    let (_, body) = get(&s, &hdoc, &location);
    assert!(!body.contains("DOSE-SINGLE"), "{body}");
    assert!(
        body.contains("审核通过") || body.contains("待审核"),
        "{body}"
    );
    assert!(
        body.contains("退回医师修改") && body.contains("修改后重新提交"),
        "events: {body}"
    );
}

#[test]
fn refusals_carry_the_store_status_and_message() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let (hdoc, pharm) = (s.token("hdoc"), s.token("pharm"));
    let id = submit(&s, &hdoc, &p, p.bad);

    // A clinician may not review.
    let (code, body, _) = post(
        &s,
        &hdoc,
        &format!("/rx/{id}/review"),
        &[("version", "1"), ("action", "pass"), ("note", "自己放行")],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("只有药师可以审核处方"), "{body}");
    // An institution's pharmacist may not either (review is central).
    let (code, body, _) = post(
        &s,
        &s.token("tpharm"),
        &format!("/rx/{id}/review"),
        &[("version", "1"), ("action", "return"), ("note", "x")],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("集中审方由牵头医院药师负责"), "{body}");
    // Pharmacists do not prescribe.
    let (code, body) = get(&s, &pharm, "/rx/new?patient=pt1");
    assert_eq!(code, 403, "{body}");

    // A stale version: the page says so, with 412, and nothing changes.
    let (code, body, _) = post(
        &s,
        &pharm,
        &format!("/rx/{id}/review"),
        &[("version", "7"), ("action", "return"), ("note", "请减量")],
    );
    assert_eq!(code, 412, "{body}");
    assert!(body.contains("版本冲突") && body.contains(&id), "{body}");
    assert_eq!(status(&s, &id), "pending");
    let mut fields = rx_fields(&p, p.good);
    fields.push(("version".into(), "9".into()));
    let (code, body, _) = post(&s, &hdoc, &format!("/rx/{id}/edit"), &as_refs(&fields));
    assert_eq!(code, 412, "{body}");
    assert!(body.contains("版本冲突"), "{body}");

    // Cancelling needs a reason; then it is void and cannot be dispensed.
    let (code, body, _) = post(
        &s,
        &hdoc,
        &format!("/rx/{id}/cancel"),
        &[("version", "1"), ("reason", "")],
    );
    assert_eq!(code, 422, "{body}");
    let (code, body, _) = post(
        &s,
        &hdoc,
        &format!("/rx/{id}/cancel"),
        &[("version", "1"), ("reason", "患者拒绝用药")],
    );
    assert_eq!(code, 303, "{body}");
    assert_eq!(status(&s, &id), "cancelled");
    let (code, body, _) = post(
        &s,
        &pharm,
        &format!("/rx/{id}/dispense"),
        &[("version", "2")],
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("审核通过后才能发药"), "{body}");

    // Unknown and out-of-scope prescriptions.
    let (code, _) = get(&s, &hdoc, "/rx/rx-none");
    assert_eq!(code, 404);
}

#[test]
fn bad_form_input_comes_back_with_a_chinese_message_and_what_was_typed() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let hdoc = s.token("hdoc");
    let with = |k: &str, v: &str| {
        let mut f = rx_fields(&p, p.good);
        for (name, value) in f.iter_mut() {
            if name == k {
                *value = v.to_string();
            }
        }
        f
    };
    let cases = [
        (with("l0_dose", "两片"), "不是有效的正数"),
        (with("l0_drug", "ZZ99999.99"), "不在统一用药目录中"),
        (with("diagnoses", "高血压"), "不是有效的ICD-10编码"),
        (with("l0_days", "0"), "须为正整数"),
        (with("l0_drug", ""), "没有选择药品"),
        (with("patient", "nobody"), "患者 nobody 不存在"),
        (with("egfr", "-3"), "须为 0–200"),
    ];
    for (fields, message) in cases {
        let (code, body, _) = post(&s, &hdoc, "/rx/new", &as_refs(&fields));
        assert_eq!(code, 422, "{message}: {body}");
        assert!(body.contains(message), "{message}: {body}");
        assert!(
            body.contains(r#"id="message""#) && body.contains(r#"id="rx-form""#),
            "{body}"
        );
    }
    // What was typed is kept.
    let (_, body, _) = post(&s, &hdoc, "/rx/new", &as_refs(&with("l0_dose", "两片")));
    assert!(
        body.contains(r#"value="两片""#) && body.contains(&format!(r#"value="{}""#, p.diagnosis)),
        "{body}"
    );
    assert!(
        s.store.rx_counts(&Scope::County).unwrap().is_empty(),
        "bad input writes nothing"
    );
}

#[test]
fn dispensing_takes_stock_and_a_shortage_is_a_409() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let (hdoc, pharm) = (s.token("hdoc"), s.token("pharm"));
    let id = submit(&s, &hdoc, &p, p.good);
    pass_if_pending(&s, &pharm, &id);
    let (_, body) = get(&s, &pharm, &format!("/rx/{id}"));
    assert!(body.contains(r#"id="rx-dispense""#), "{body}");
    // The township's pharmacist cannot see the lead hospital's prescription.
    let (code, _) = get(&s, &s.token("tpharm"), &format!("/rx/{id}"));
    assert_eq!(code, 404);

    let v = version(&s, &id).to_string();
    let (code, body, _) = post(
        &s,
        &pharm,
        &format!("/rx/{id}/dispense"),
        &[("version", &v)],
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("库存不足") && body.contains(&p.name),
        "{body}"
    );
    assert_eq!(status(&s, &id), "passed");

    stock_for(&s, &id);
    let (code, body, _) = post(
        &s,
        &pharm,
        &format!("/rx/{id}/dispense"),
        &[("version", &v)],
    );
    assert_eq!(code, 303, "{body}");
    let (_, body) = get(&s, &hdoc, &format!("/rx/{id}"));
    assert!(body.contains("已发药") && body.contains("金额"), "{body}");
    assert!(!body.contains(r#"id="rx-cancel""#), "{body}");
}

#[test]
fn lists_by_role() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let hdoc = s.token("hdoc");
    let id = submit(&s, &hdoc, &p, p.bad);
    let tid = submit(&s, &s.token("tdoc"), &p, p.good);

    // The operations centre reads the community's prescriptions, acts on none.
    let ops = s.token("ops");
    let (code, body) = get(&s, &ops, "/rx");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&id) && body.contains(&tid), "{body}");
    assert!(body.contains(r#"id="tab-pending""#), "{body}");
    let (code, body) = get(&s, &ops, &format!("/rx/{id}"));
    assert_eq!(code, 200);
    assert!(!body.contains(r#"id="actions""#), "{body}");
    // A prescriber sees their own only.
    let (_, body) = get(&s, &hdoc, "/rx");
    assert!(body.contains(&id) && !body.contains(&tid), "{body}");
    assert!(body.contains("我的处方"));
    // Status tabs filter.
    let (_, body) = get(&s, &s.token("pharm"), "/rx?status=cancelled");
    assert!(!body.contains(&id), "{body}");
}

#[test]
fn formulary_and_committee_decisions() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let (pharm, tdoc) = (s.token("pharm"), s.token("tdoc"));
    let state = s.store.rx_state();
    let d = state.knowledge.drug(&p.code).unwrap().clone();

    let (code, body) = get(
        &s,
        &tdoc,
        &format!("/rx/formulary?q={}", urlenc(&d.generic)),
    );
    assert_eq!(code, 200);
    assert!(body.contains(&d.code) && body.contains(&d.name), "{body}");
    let (_, body) = get(&s, &tdoc, &format!("/rx/formulary?q={}", &d.atc[..3]));
    assert!(body.contains(&d.code), "{body}");
    let (_, body) = get(
        &s,
        &tdoc,
        &format!("/rx/formulary?q={}", urlenc(&d.en.to_uppercase())),
    );
    assert!(body.contains(&d.code), "{body}");
    let (code, body) = get(&s, &tdoc, &format!("/rx/formulary/{}", d.code));
    assert_eq!(code, 200, "{body}");
    let identity = state
        .knowledge
        .source(&d.sources["identity"])
        .unwrap()
        .clone();
    assert!(
        body.contains(&d.name)
            && body.contains(&esc(&identity.title))
            && body.contains(&esc(&identity.url)),
        "{body}"
    );
    // A drug with a recorded interaction shows it with its source.
    let k = &state.knowledge;
    if let Some((x, drug)) = k.facts.interactions.iter().find_map(|x| {
        k.drugs
            .iter()
            .find(|d| yigong_rx::knowledge::atc_matches(&d.atc, &x.a))
            .map(|d| (x, d))
    }) {
        let (_, body) = get(&s, &tdoc, &format!("/rx/formulary/{}", drug.code));
        assert!(body.contains(&esc(&x.mechanism)), "{body}");
    }
    let (code, _) = get(&s, &tdoc, "/rx/formulary/XX00000.00");
    assert_eq!(code, 404);

    // Decisions: only the community's pharmacy or an administrator records them.
    let today = (chrono::Utc::now() + chrono::Duration::hours(8))
        .date_naive()
        .to_string();
    let restrict = |min_tier: &str, reason: &str| {
        vec![
            ("kind", "restrict".to_string()),
            ("drug", d.code.clone()),
            ("meeting", "2026年第3次药事会".to_string()),
            ("effective", today.clone()),
            ("reason", reason.to_string()),
            ("min_tier", min_tier.to_string()),
        ]
    };
    let refs = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };
    let send = |token: &str, v: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (*a, b.as_str())).collect();
        post(&s, token, "/rx/decisions", &pairs)
    };
    let (code, body, _) = send(&tdoc, refs(&restrict("county", "基层不宜使用")));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("药学部药师或管理员"), "{body}");
    let (code, body, _) = send(&pharm, refs(&restrict("", "基层不宜使用")));
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("最低机构级别"), "{body}");
    let (code, body, _) = send(&pharm, refs(&restrict("county", "")));
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("须写明会议和理由"), "{body}");
    let mut bad_date = restrict("county", "基层不宜使用");
    bad_date[3].1 = "2026-13-40".into();
    let (code, body, _) = send(&pharm, bad_date);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("生效日期"), "{body}");
    let (code, body, location) = send(&pharm, refs(&restrict("county", "基层不宜使用")));
    assert_eq!(code, 303, "{body}");
    assert_eq!(location, "/rx/decisions");
    let (code, body) = get(&s, &tdoc, "/rx/decisions");
    assert_eq!(code, 200);
    assert!(
        body.contains("限制使用")
            && body.contains("已生效")
            && body.contains(&d.code)
            && body.contains("县级及以上"),
        "{body}"
    );
    assert!(
        !body.contains(r#"id="decision-form""#),
        "read-only for clinicians"
    );
    // In force at once: the township may no longer prescribe it.
    let id = submit(&s, &tdoc, &p, p.good);
    let (_, body) = get(&s, &tdoc, &format!("/rx/{id}"));
    assert!(body.contains("LEG-RESTRICTED"), "{body}");
    let (_, body) = get(&s, &tdoc, &format!("/rx/formulary/{}", d.code));
    assert!(body.contains("药事会限制"), "{body}");
    // Adding a product takes its full entry; a malformed one is refused.
    let mut entry = serde_json::to_value(&d).unwrap();
    let new_code = format!("{}.98", d.atc);
    entry["code"] = json!(new_code);
    entry["name"] = json!("测试增补片");
    entry.as_object_mut().unwrap().remove("restriction");
    let mut add = restrict("", "增补基层常用规格");
    add[0].1 = "add".into();
    add[1].1 = new_code.clone();
    add.push(("entry", "{不是JSON".into()));
    let (code, body, _) = send(&pharm, add.clone());
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("不是有效的 JSON"), "{body}");
    add.pop();
    add.push(("entry", entry.to_string()));
    let (code, body, _) = send(&pharm, add);
    assert_eq!(code, 303, "{body}");
    let (_, body) = get(&s, &tdoc, &format!("/rx/formulary?q={new_code}"));
    assert!(body.contains("测试增补片"), "{body}");
    let (_, body) = get(&s, &tdoc, "/rx/decisions");
    assert!(
        body.contains("增补") && body.contains("测试增补片"),
        "{body}"
    );
    // A decision with a future date waits.
    let mut later = restrict("", "恢复基层使用");
    later[0].1 = "unrestrict".into();
    later[3].1 = "2099-01-01".into();
    let (code, body, _) = send(&pharm, later);
    assert_eq!(code, 303, "{body}");
    let (_, body) = get(&s, &pharm, "/rx/decisions");
    assert!(
        body.contains("取消限制") && body.contains("待生效"),
        "{body}"
    );
}

/// Text as the templates escape it (minijinja's HTML escaping).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

fn urlenc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn post_hoc_review_samples_comments_and_reports() {
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let (hdoc, pharm) = (s.token("hdoc"), s.token("pharm"));
    let id = submit(&s, &hdoc, &p, p.good);
    pass_if_pending(&s, &pharm, &id);
    let month = this_month();

    let (code, body) = get(&s, &pharm, "/rx/comments");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&month) && body.contains(r#"id="sample-form""#),
        "{body}"
    );
    let (code, body, _) = post(
        &s,
        &pharm,
        "/rx/comments/sample",
        &[("month", &month), ("inst", "h1"), ("n", "x"), ("seed", "1")],
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("抽样张数"), "{body}");
    let (code, body, location) = post(
        &s,
        &pharm,
        "/rx/comments/sample",
        &[
            ("month", &month),
            ("inst", "h1"),
            ("n", "10"),
            ("seed", "7"),
        ],
    );
    assert_eq!(code, 303, "{body}");
    assert!(location.contains("sampled=1"), "{location}");
    let (_, body) = get(&s, &pharm, &location);
    assert!(
        body.contains("已抽取 1 张处方") && body.contains(&id),
        "{body}"
    );
    assert!(
        body.contains(r#"value="rational""#) && body.contains("I5 用法"),
        "{body}"
    );

    // Categories that do not belong to the result are ignored (they are hidden).
    let path = format!("/rx/comments/{id}");
    let (code, body, _) = post(
        &s,
        &pharm,
        &path,
        &[
            ("version", "1"),
            ("month", &month),
            ("result", "inappropriate"),
            ("codes", "N7"),
        ],
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("请勾选与点评结果相符的问题类别"), "{body}");
    let (code, body, _) = post(
        &s,
        &pharm,
        &path,
        &[
            ("version", "1"),
            ("month", &month),
            ("result", "rational"),
            ("codes", "I5"),
        ],
    );
    assert_eq!(code, 303, "{body}");
    let (code, body, _) = post(
        &s,
        &pharm,
        &path,
        &[("version", "1"), ("month", &month), ("result", "rational")],
    );
    assert_eq!(code, 412, "{body}");
    let (code, body, _) = post(
        &s,
        &hdoc,
        &path,
        &[("version", "2"), ("month", &month), ("result", "rational")],
    );
    assert_eq!(code, 403, "{body}");
    let (_, body) = get(&s, &pharm, &format!("/rx/comments?month={month}"));
    assert!(
        body.contains("合理处方") && body.contains("100.0%"),
        "{body}"
    );
    let report = &body[body.find("按医师").unwrap()..];
    assert!(report.contains("hdoc"), "{report}");
    let (code, _, _) = post(
        &s,
        &pharm,
        &path,
        &[
            ("version", "2"),
            ("month", &month),
            ("result", "inappropriate"),
            ("codes", "I5"),
            ("codes", "N1"),
        ],
    );
    assert_eq!(code, 303);
    let (_, body) = get(&s, &pharm, &format!("/rx/comments?month={month}"));
    assert!(
        body.contains("0.0%") && body.contains("I5 用法、用量不适宜(1)"),
        "{body}"
    );
}

/// A clinician writes an oral drug above its adult maximum; the rules block
/// it; the pharmacist sees it on top of the queue with the line highlighted
/// and returns it with a note; the clinician sees it returned, corrects the
/// dose and resubmits; it passes (by the rules or the pharmacist); the
/// pharmacist dispenses it from stock.
#[test]
fn browser_block_return_fix_and_dispense() {
    use common::driver::Driver;
    if Driver::skip_without_browser() {
        return;
    }
    let s = TestServer::start();
    seed(&s);
    let p = pick(&s.store);
    let d = Driver::start();

    d.login(&s, "hdoc");
    d.go(&s.url("/rx/new?patient=pt1"));
    d.wait_text("#patient-name", "王晓红");
    d.type_into("#diagnoses", &p.diagnosis);
    d.type_into("#l0_drug", &p.code);
    d.type_into("#l0_dose", &p.bad.to_string());
    d.set("#l0_frequency", &p.frequency);
    d.set("#l0_route", "po");
    d.type_into("#l0_days", "3");
    d.screenshot("rx-form");
    d.click("#rx-submit");
    d.wait_text("#rx-status", "待审核");
    d.wait_text("#rx-verdict", "拦截");
    d.find("#line-1.sev-block");
    d.wait_text("#findings", "DOSE-SINGLE");
    d.screenshot("rx-blocked");
    let id = s.store.rx_list(&Scope::County, None, None, 5).unwrap()[0]
        .id
        .clone();

    d.login(&s, "pharm");
    d.go(&s.url("/rx/formulary"));
    d.click("#rx-nav-queue");
    d.wait_text("#rx-list", "王晓红");
    d.wait_text(&format!("#row-{id}"), "拦截");
    d.find(&format!("#row-{id}.sev-block"));
    d.screenshot("rx-queue");
    d.click(&format!("#row-{id} a"));
    d.find("#line-1.sev-block");
    d.type_into("#return-note", "单次剂量超过成人极量,请减量");
    d.click("#rx-return");
    d.wait_text("#done", "已退回医师");

    d.login(&s, "hdoc");
    d.go(&s.url("/rx"));
    d.wait_text("#returned-list", &id);
    d.click("#returned-list a");
    d.wait_text("#returned-note", "请减量");
    d.screenshot("rx-returned");
    d.click("#rx-edit");
    d.wait_text("#return-note-shown", "请减量");
    d.set("#l0_dose", &p.good.to_string());
    d.click("#rx-submit");
    d.wait_text("#rx-status", "审");
    let after = d.text("#rx-status");
    assert!(after == "审核通过" || after == "待审核", "{after}");
    assert!(!d.text("#findings").contains("DOSE-SINGLE"));

    d.login(&s, "pharm");
    d.go(&s.url(&format!("/rx/{id}")));
    if after == "待审核" {
        d.type_into("#pass-note", "已核对");
        d.click("#rx-pass");
        d.wait_text("#done", "已审核通过");
        d.go(&s.url(&format!("/rx/{id}")));
    }
    d.wait_text("#rx-status", "审核通过");
    stock_for(&s, &id);
    d.click("#rx-dispense");
    d.wait_text("#rx-status", "已发药");
    d.screenshot("rx-dispensed");

    // The other pages are one click away: the drug's facts, then this
    // month's post-hoc review of the lead hospital.
    d.click("#rx-nav-formulary");
    d.wait_text("main h1", "统一用药目录");
    d.type_into("#q", &p.code);
    d.click("#formulary-search");
    d.wait_text("main", "找到 1 个");
    d.click(&format!("#formulary a[href='/rx/formulary/{}']", p.code));
    d.wait_text("#drug-name", &p.name);
    d.screenshot("rx-drug");
    d.click("#rx-nav-comments");
    d.wait_text("main h1", "处方点评");
    d.set("#sample-inst", "h1");
    d.click("#sample-submit");
    d.wait_text("#notice", "已抽取 1 张处方");
    d.wait_text("#comment-list", &id);
    // Choosing a result shows its categories (CSS only); hidden ones are not counted.
    d.click(&format!("#comment-{id} input[value=inappropriate]"));
    d.click(&format!("#comment-{id} input[value=I5]"));
    d.screenshot("rx-comments");
    d.click(&format!("#comment-{id} button"));
    d.wait_text("#report-inst", "0.0%");
    d.wait_text("#comment-list", "用药不适宜处方");
    d.wait_text("#report-prescriber", "I5 用法、用量不适宜(1)");
}
