//! The central pharmacy over HTTP: receiving stock, requisitions from request
//! to receipt (JSON and forms), shortages and their alert badge, VBP progress,
//! the pages, and the refusals: scope and role (403), stale versions (412),
//! illegal steps (409) and bad input (4xx with a Chinese message, nothing
//! changed).

mod common;

use common::*;
use serde_json::{Value, json};
use yigong_rx::Drug;
use yigong_store::{Role, Scope};

/// County → two communities, each with a lead hospital (its central pharmacy)
/// and a township centre; a village clinic under the first township; users.
fn seed(s: &TestServer) {
    add_users(
        s,
        [
            ("admin", Role::SystemAdmin, Scope::County, None),
            ("yunying", Role::OperationsCentre, Scope::County, None),
            (
                "h1ph",
                Role::Pharmacist,
                Scope::Community("com1".into()),
                Some("h1"),
            ),
            (
                "h2ph",
                Role::Pharmacist,
                Scope::Community("com2".into()),
                Some("h2"),
            ),
            (
                "tph",
                Role::Pharmacist,
                Scope::Institution("t1".into()),
                Some("t1"),
            ),
            (
                "tdoc",
                Role::Clinician,
                Scope::Institution("t1".into()),
                Some("t1"),
            ),
            (
                "vdoc",
                Role::VillageDoctor,
                Scope::Institution("v1".into()),
                Some("v1"),
            ),
        ],
    );
    let admin = s.token("admin");
    let entries: Vec<Value> = county_orgs_with_leads()
        .into_iter()
        .map(|o| {
            let url = format!("Organization/{}", o["id"].as_str().unwrap());
            json!({ "resource": o, "request": { "method": "PUT", "url": url } })
        })
        .collect();
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
    let r = s.post(&admin, "/fhir", &bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("HTTP request");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    Resp {
        status,
        headers,
        text,
    }
}

fn post_json(s: &TestServer, token: &str, path: &str, body: &Value) -> Resp {
    finish(
        s.agent
            .post(s.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string()),
    )
}

fn post_raw_json(s: &TestServer, token: &str, path: &str, body: &str) -> Resp {
    finish(
        s.agent
            .post(s.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body),
    )
}

fn post_form(s: &TestServer, token: &str, path: &str, form: &str) -> Resp {
    finish(
        s.agent
            .post(s.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form),
    )
}

fn get_json(s: &TestServer, token: &str, path: &str) -> Resp {
    finish(
        s.agent
            .get(s.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json")
            .call(),
    )
}

/// A splittable drug sold in packages of several units, or None (skip) when
/// the formulary is empty.
fn a_drug(s: &TestServer) -> Option<Drug> {
    let k = &s.store.rx_state().knowledge;
    if k.drugs.is_empty() {
        eprintln!("SKIPPED: the formulary is empty");
        return None;
    }
    Some(
        k.drugs
            .iter()
            .find(|d| d.splittable && d.package >= 4 && d.restriction.is_none())
            .cloned()
            .expect("a splittable drug"),
    )
}

fn in_days(n: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8) + chrono::Duration::days(n))
        .format("%Y-%m-%d")
        .to_string()
}

/// Audit rows and requisitions: what a refused request must leave unchanged.
fn state_of(s: &TestServer) -> (i64, usize, String) {
    let reqs = s
        .store
        .pharmacy_requisitions(
            &Scope::County,
            &yigong_store::pharmacy::ReqFilter {
                inst: None,
                side: yigong_store::pharmacy::ReqSide::Either,
                state: None,
                limit: 500,
            },
        )
        .unwrap();
    let stock = s
        .store
        .pharmacy_stock(&Scope::County, "h1", None, chrono::Utc::now().date_naive())
        .unwrap();
    (
        s.store.audit_count().unwrap(),
        reqs.len(),
        format!("{reqs:?}{stock:?}"),
    )
}

#[test]
fn requisition_flow_over_json_with_scope_and_refusals() {
    let s = TestServer::start();
    seed(&s);
    let Some(d) = a_drug(&s) else { return };
    let p = d.package as i64;
    let h1ph = s.token("h1ph");
    let tph = s.token("tph");
    let vdoc = s.token("vdoc");
    let tdoc = s.token("tdoc");

    // The central pharmacy receives five packages.
    let receive = json!({ "inst": "h1", "drug": d.code, "batch": "B1", "expiry": in_days(300), "qty": 5, "per": "package", "unit_cost_fen": 25 });
    let r = post_json(&s, &h1ph, "/pharmacy/stock/receive", &receive);
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json()["batch"].as_i64().is_some());

    // Refusals change nothing: a clinician's role, another institution, bad fields.
    let before = state_of(&s);
    let r = post_json(&s, &tdoc, "/pharmacy/stock/receive", &receive);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("临床医生只能查看"),
        "{}",
        r.text
    );
    let r = post_json(&s, &vdoc, "/pharmacy/stock/receive", &receive);
    assert_eq!(r.status, 403, "{}", r.text);
    let mut bad = receive.clone();
    bad["expiry"] = json!("2025-13-01");
    let r = post_json(&s, &h1ph, "/pharmacy/stock/receive", &bad);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json()["error"].as_str().unwrap().contains("有效期"),
        "{}",
        r.text
    );
    let mut bad = receive.clone();
    bad["qty"] = json!(0);
    let r = post_json(&s, &h1ph, "/pharmacy/stock/receive", &bad);
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.json()["error"].as_str().unwrap().contains("入库数量"),
        "{}",
        r.text
    );
    let r = post_form(
        &s,
        &h1ph,
        "/pharmacy/stock/receive",
        &format!(
            "inst=h1&drug={}&batch=B9&expiry={}&qty=1&unit_cost=abc",
            d.code,
            in_days(100)
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("不是有效金额"), "{}", r.text);
    assert_eq!(state_of(&s), before);

    // The township requests: bad lines are refused whole.
    for (body, status, want) in [
        (
            json!({ "inst": "t1", "lines": [{ "drug": d.code, "units": 0 }] }),
            422,
            "请领数量",
        ),
        (
            json!({ "inst": "t1", "lines": [{ "drug": "NO-SUCH", "units": 1 }] }),
            422,
            "不在统一用药目录中",
        ),
        (json!({ "inst": "t1" }), 400, "缺少请领明细"),
        (
            json!({ "inst": "t1", "lines": [{ "drug": d.code, "units": "ten" }] }),
            400,
            "整数数量",
        ),
        (
            json!({ "inst": "h1", "lines": [{ "drug": d.code, "units": 1 }] }),
            403,
            "只有县人民医院",
        ),
    ] {
        let r = post_json(&s, &tph, "/pharmacy/requisitions", &body);
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(
            r.json()["error"].as_str().unwrap().contains(want),
            "{}",
            r.text
        );
    }
    let r = post_raw_json(&s, &tph, "/pharmacy/requisitions", "{not json");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json()["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(state_of(&s), before, "refused requests change nothing");

    let r = post_json(
        &s,
        &tph,
        "/pharmacy/requisitions",
        &json!({ "inst": "t1", "lines": [{ "drug": d.code, "units": 2 * p }], "note": "月度请领" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let req = r.json();
    let id = req["id"].as_i64().unwrap();
    assert_eq!(
        (req["state"].as_str(), req["version"].as_i64()),
        (Some("requested"), Some(1))
    );
    assert_eq!(req["central"], "h1");
    let step = |token: &str, action: &str, body: Value| {
        post_json(
            &s,
            token,
            &format!("/pharmacy/requisitions/{id}/{action}"),
            &body,
        )
    };

    // Only the central pharmacy approves; the village doctor cannot ship from it.
    let r = step(&vdoc, "approve", json!({ "version": 1 }));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = step(&tph, "approve", json!({ "version": 1 }));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = step(
        &h1ph,
        "approve",
        json!({ "version": 1, "approved": [{ "line": 1, "units": p }] }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["state"], "approved");
    assert_eq!(r.json()["lines"][0]["approved"], p);
    let before = state_of(&s);
    let r = step(&vdoc, "ship", json!({ "version": 2 }));
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.json()["error"].as_str().unwrap().contains("中心药房"),
        "{}",
        r.text
    );
    // A stale version is 412; an illegal step 409 naming both states; no version 400.
    let r = step(&h1ph, "ship", json!({ "version": 1 }));
    assert_eq!(r.status, 412, "{}", r.text);
    let r = step(&tph, "receive", json!({ "version": 2 }));
    assert_eq!(r.status, 409, "{}", r.text);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("已批准") && msg.contains("已收货"), "{msg}");
    let r = step(&h1ph, "ship", json!({}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = step(&h1ph, "teleport", json!({ "version": 2 }));
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(state_of(&s), before);

    let r = step(&h1ph, "ship", json!({ "version": 2 }));
    assert_eq!(r.status, 200, "{}", r.text);
    let shipped = r.json();
    assert_eq!(shipped["state"], "shipped");
    assert_eq!(shipped["shipments"][0]["lot"], "B1");
    assert_eq!(shipped["shipments"][0]["units"], p);
    let r = step(&tph, "receive", json!({ "version": 3 }));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["state"], "received");

    // Stock as JSON: the township now holds one package; it may not look at the other community.
    let r = get_json(&s, &tph, "/pharmacy/api/stock?inst=t1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["lines"][0]["usable"], p);
    assert_eq!(r.json()["lines"][0]["batches"][0]["lot"], "B1");
    let r = get_json(&s, &tph, "/pharmacy/api/stock?inst=h2");
    assert_eq!(r.status, 403, "{}", r.text);
    let r = get_json(&s, &h1ph, &format!("/pharmacy/requisitions/{id}"));
    assert_eq!(r.json()["state"], "received", "{}", r.text);
    assert_eq!(r.json()["received_by"], "tph");
    let r = get_json(
        &s,
        &s.token("h2ph"),
        &format!("/pharmacy/requisitions/{id}"),
    );
    assert_eq!(r.status, 403, "{}", r.text);
}

#[test]
fn pages_and_forms_of_the_pharmacy() {
    let s = TestServer::start();
    seed(&s);
    let Some(d) = a_drug(&s) else { return };
    let p = d.package as i64;
    let h1ph = s.token("h1ph");
    let tph = s.token("tph");
    let vdoc = s.token("vdoc");
    let tdoc = s.token("tdoc");
    let yunying = s.token("yunying");

    // Not signed in: to the login page.
    let r = finish(s.agent.get(s.url("/pharmacy")).call());
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));

    // Receiving from the form (cost in yuan).
    let r = post_form(
        &s,
        &h1ph,
        "/pharmacy/stock/receive",
        &format!(
            "inst=h1&drug={}&batch=F1&expiry={}&qty=3&per=package&unit_cost=0.35&reason=%E5%88%B0%E8%B4%A7",
            d.code,
            in_days(60)
        ),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/pharmacy/stock?inst=h1"));
    let r = s.get(&h1ph, "/pharmacy/stock?inst=h1");
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains(&d.name) && r.text.contains("F1") && r.text.contains("近效期"),
        "{}",
        r.text
    );
    assert!(r.text.contains("¥0.35"), "unit cost shown");
    assert!(
        r.text.contains("id=\"receive\""),
        "the central pharmacy may receive"
    );
    let r = s.get(&tph, "/pharmacy/stock?inst=t1");
    assert_eq!(r.status, 200);
    assert!(
        !r.text.contains("id=\"receive\""),
        "a township does not purchase"
    );

    // A requisition from the form: two packages in the first row, blank rows ignored.
    let form = format!(
        "inst=t1&drug={}&qty=2&per=package&drug=&qty=&per=package&note=%E6%9C%88%E5%BA%A6",
        d.code
    );
    let r = post_form(&s, &tph, "/pharmacy/requisitions", &form);
    assert_eq!(r.status, 303, "{}", r.text);
    let loc = r.header("location").unwrap().to_string();
    let id: i64 = loc.rsplit('/').next().unwrap().parse().unwrap();
    // A bad row: a clear message, nothing written.
    let before = state_of(&s);
    let r = post_form(
        &s,
        &tph,
        "/pharmacy/requisitions",
        &format!("inst=t1&drug={}&qty=two&per=unit", d.code),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("不是整数"), "{}", r.text);
    let r = post_form(&s, &tdoc, "/pharmacy/requisitions", &form);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("只能查看"), "{}", r.text);
    assert_eq!(state_of(&s), before);

    let r = s.get(&h1ph, "/pharmacy/requisitions?inst=h1");
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains(&format!("#{id}"))
            && r.text.contains("待审批")
            && r.text.contains("甲镇卫生院"),
        "{}",
        r.text
    );
    let r = s.get(&h1ph, &loc);
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("id=\"do-approve\"") && r.text.contains("id=\"do-reject\""),
        "{}",
        r.text
    );
    let r = s.get(&tph, &loc);
    assert!(
        !r.text.contains("do-approve"),
        "the requester cannot approve"
    );
    let r = post_form(
        &s,
        &h1ph,
        &format!("{loc}/approve"),
        &format!("version=1&approved_1={}&note=ok", p + 1),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let r = s.get(&h1ph, &loc);
    assert!(
        r.text.contains("id=\"do-ship\"") && r.text.contains("核减"),
        "{}",
        r.text
    );
    let r = post_form(&s, &h1ph, &format!("{loc}/ship"), "version=2");
    assert_eq!(r.status, 303, "{}", r.text);
    // The same form again: its version is stale.
    let r = post_form(&s, &h1ph, &format!("{loc}/ship"), "version=2");
    assert_eq!(r.status, 412, "{}", r.text);
    assert!(r.text.contains("版本冲突"), "{}", r.text);
    let r = s.get(&tph, &loc);
    assert!(
        r.text.contains("id=\"do-receive\"") && r.text.contains("F1"),
        "{}",
        r.text
    );
    let r = post_form(&s, &tph, &format!("{loc}/receive"), "version=3");
    assert_eq!(r.status, 303, "{}", r.text);
    let r = s.get(&tph, "/pharmacy/stock?inst=t1");
    assert!(
        r.text.contains("已拆零") && r.text.contains("调拨入库"),
        "one package and one unit arrived: {}",
        r.text
    );
    let r = s.get(&tph, "/pharmacy?inst=t1");
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("本机构的请领") && r.text.contains("在库品种"),
        "{}",
        r.text
    );

    // A village clinic registers a shortage: the central pharmacy's badge counts it.
    let r = post_form(
        &s,
        &vdoc,
        "/pharmacy/shortages",
        &format!("drug={}&note=%E6%85%A2%E7%97%85%E6%82%A3%E8%80%85", d.code),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let r = post_form(
        &s,
        &vdoc,
        "/pharmacy/shortages",
        &format!("drug={}", d.code),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("未处理"), "{}", r.text);
    let r = post_form(&s, &vdoc, "/pharmacy/shortages", "drug=NO-SUCH");
    assert_eq!(r.status, 422, "{}", r.text);
    let r = get_json(&s, &h1ph, "/pharmacy/shortages/count?inst=h1");
    assert_eq!(r.json()["open"], 1, "{}", r.text);
    let r = s.get(&h1ph, "/pharmacy/shortages/count?inst=h1");
    assert!(r.text.contains("缺药 1"), "{}", r.text);
    let r = get_json(&s, &s.token("h2ph"), "/pharmacy/shortages/count?inst=h2");
    assert_eq!(r.json()["open"], 0);
    let r = s.get(&h1ph, "/pharmacy/shortages?inst=h1");
    assert!(
        r.text.contains("甲村卫生室")
            && r.text.contains("慢病患者")
            && r.text.contains("缺药预警 1"),
        "{}",
        r.text
    );
    let list = get_json(&s, &h1ph, "/pharmacy/shortages?inst=h1").json();
    let sid = list["shortages"][0]["id"].as_i64().unwrap();
    let r = post_form(
        &s,
        &h1ph,
        &format!("/pharmacy/shortages/{sid}/resolve"),
        "version=1&note=&inst=h1",
    );
    assert_eq!(r.status, 422, "{}", r.text);
    let r = post_form(
        &s,
        &h1ph,
        &format!("/pharmacy/shortages/{sid}/resolve"),
        "version=1&note=%E5%B7%B2%E9%85%8D%E9%80%81&inst=h1",
    );
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(
        get_json(&s, &h1ph, "/pharmacy/shortages/count?inst=h1").json()["open"],
        0
    );

    // VBP progress: every role in scope reads; the operations centre sets volumes, a clinician may not.
    let vbp = s
        .store
        .rx_state()
        .knowledge
        .drugs
        .iter()
        .find(|x| x.vbp.is_some())
        .cloned();
    let r = s.get(&yunying, "/pharmacy/vbp?owner=com1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("第一医共体") && r.text.contains("时间进度"),
        "{}",
        r.text
    );
    let r = s.get(&tdoc, "/pharmacy/vbp");
    assert_eq!(r.status, 200, "{}", r.text);
    if let Some(v) = vbp {
        let body = json!({ "owner": "com1", "drug": v.code, "units": 1200 });
        let r = post_json(&s, &tdoc, "/pharmacy/vbp/volume", &body);
        assert_eq!(r.status, 403, "{}", r.text);
        let r = post_json(&s, &s.token("h2ph"), "/pharmacy/vbp/volume", &body);
        assert_eq!(r.status, 403, "{}", r.text);
        let r = post_json(&s, &yunying, "/pharmacy/vbp/volume", &body);
        assert_eq!(r.status, 200, "{}", r.text);
        let g = get_json(&s, &yunying, "/pharmacy/vbp?owner=com1").json();
        let row = g["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["drug"] == v.code.as_str())
            .unwrap()
            .clone();
        assert_eq!(
            (row["target"].as_i64(), row["source"].as_str()),
            (Some(1200), Some("set"))
        );
        assert_eq!(row["percent"], "0.0%");
    }
    // Paths that are not ids are refused.
    let r = s.get(&h1ph, "/pharmacy/requisitions/abc");
    assert_eq!(r.status, 400);
}

#[test]
fn demo_pharmacy_pages() {
    let s = TestServer::start();
    seed(&s);
    if a_drug(&s).is_none() {
        return;
    }
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let n = s.store.pharmacy_seed_demo(1, today).unwrap();
    assert!(n > 0);
    let h1ph = s.token("h1ph");
    let started = std::time::Instant::now();
    let r = s.get(&h1ph, "/pharmacy/stock?inst=h1");
    eprintln!(
        "stock page of a lead hospital: {} bytes in {:?}",
        r.text.len(),
        started.elapsed()
    );
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("过期待报损") && r.text.contains("仅显示前 200 种"),
        "{}",
        &r.text[..2000.min(r.text.len())]
    );
    // Write off the first expired batch from its form.
    let lines = get_json(&s, &h1ph, "/pharmacy/api/stock?inst=h1").json();
    let b = lines["lines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["batches"].as_array().unwrap().iter())
        .find(|b| b["status"] == "expired")
        .cloned()
        .unwrap();
    let r = post_form(
        &s,
        &h1ph,
        &format!("/pharmacy/stock/{}/writeoff", b["id"]),
        &format!("version={}&inst=h1&reason=%E8%BF%87%E6%9C%9F", b["version"]),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let r = post_form(
        &s,
        &h1ph,
        &format!("/pharmacy/stock/{}/writeoff", b["id"]),
        &format!("version={}&inst=h1", b["version"]),
    );
    assert_eq!(r.status, 412, "{}", r.text);
    for path in [
        "/pharmacy?inst=h1",
        "/pharmacy/requisitions?inst=h1",
        "/pharmacy/shortages?inst=h1",
        "/pharmacy/vbp?inst=h1",
        "/pharmacy?inst=v1",
        "/pharmacy/stock?inst=t1&q=%E7%89%87",
    ] {
        let r = s.get(&h1ph, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(r.text.contains("库存与效期"), "{path}");
    }
    let r = s.get(&s.token("yunying"), "/pharmacy/vbp?owner=com1");
    assert!(
        r.text.contains("达标") || r.text.contains("滞后"),
        "{}",
        r.text
    );
}

/// In a real browser: the township pharmacist requests from the form, the
/// central pharmacist approves and ships, the township receives; the stock,
/// shortage and VBP pages of the demo pharmacy.
#[test]
fn browser_requisition_story() {
    use common::driver::Driver;
    if Driver::skip_without_browser() {
        return;
    }
    let s = TestServer::start();
    seed(&s);
    let Some(drug) = a_drug(&s) else { return };
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    assert!(s.store.pharmacy_seed_demo(5, today).unwrap() > 0);
    let d = Driver::start();

    d.login(&s, "tph");
    d.click("#nav-pharmacy");
    d.wait_text("main h1", "药房");
    d.screenshot("pharmacy-home-township");
    d.go(&s.url("/pharmacy/requisitions?inst=t1"));
    d.type_into("#line-drug-1", &drug.code);
    d.type_into("#line-qty-1", "2");
    d.click("#submit-requisition");
    d.wait_text("#state", "待审批");
    d.screenshot("pharmacy-requisition-requested");
    let mine = s
        .store
        .pharmacy_requisitions(
            &Scope::County,
            &yigong_store::pharmacy::ReqFilter {
                inst: Some("t1".into()),
                side: yigong_store::pharmacy::ReqSide::Requester,
                state: Some(yigong_store::pharmacy::ReqState::Requested),
                limit: 50,
            },
        )
        .unwrap()
        .into_iter()
        .find(|r| r.created_by == "tph")
        .unwrap();
    let page = s.url(&format!("/pharmacy/requisitions/{}", mine.id));

    d.login(&s, "h1ph");
    d.go(&page);
    d.click("#do-approve");
    d.wait_text("#state", "已批准");
    d.click("#do-ship");
    d.wait_text("#state", "已发货");
    d.screenshot("pharmacy-requisition-shipped");
    d.go(&s.url("/pharmacy/stock?inst=h1"));
    d.wait_text("main", "过期待报损");
    d.screenshot("pharmacy-stock-central");
    d.go(&s.url("/pharmacy/shortages?inst=h1"));
    d.wait_text("main h1", "缺药");
    d.screenshot("pharmacy-shortages-central");

    d.login(&s, "tph");
    d.go(&page);
    d.click("#do-receive");
    d.wait_text("#state", "已收货");
    d.go(&s.url(&format!("/pharmacy/stock?inst=t1&q={}", drug.code)));
    d.wait_text("main", "调拨入库");
    d.screenshot("pharmacy-stock-township-drug");

    d.login(&s, "yunying");
    d.go(&s.url("/pharmacy/vbp?owner=com1"));
    d.wait_text("main", "时间进度");
    d.screenshot("pharmacy-vbp-community");
}
