//! The operations centre's cockpit over HTTP and in a real browser: a small
//! county seeded through the FHIR API, hand-computed figures on the tiles and
//! indicator pages, "无数据" for zero denominators, live tiles, the Excel
//! export, the evaluation standard (bad files refused), the insurance budget
//! (bad values refused), escalation with its records and cycles, and scope.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::Read;
use yigong_fhir::codes::{EXT_CHARGES, EXT_IN_COUNTY};
use yigong_store::{Role, Scope};

const MONTH: &str = "2026-03";

fn person(id: &str, org: &str, rid: &str, gender: &str, birth: &str, name: &str) -> Value {
    json!({
        "resourceType": "Patient", "id": id,
        "identifier": [{ "system": "https://yigong.org.cn/fhir/sid/resident-id", "value": rid }],
        "name": [{ "text": name }], "gender": gender, "birthDate": birth,
        "managingOrganization": { "reference": format!("Organization/{org}") }
    })
}

/// An Encounter with its settled charges (yuan as JSON numbers).
#[allow(clippy::too_many_arguments)]
fn enc(
    id: &str,
    patient: &str,
    org: &str,
    class: &str,
    start: &str,
    end: Option<&str>,
    charges: &[(&str, f64)],
    dx: Option<&str>,
    in_county: bool,
) -> Value {
    let parts: Vec<Value> = charges
        .iter()
        .map(|(k, v)| json!({ "url": k, "valueMoney": { "value": v, "currency": "CNY" } }))
        .collect();
    let mut e = json!({
        "resourceType": "Encounter", "id": id, "status": "finished",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class },
        "subject": { "reference": format!("Patient/{patient}") },
        "serviceProvider": { "reference": format!("Organization/{org}") },
        "period": { "start": start },
        "extension": [{ "url": EXT_CHARGES, "extension": parts }]
    });
    if let Some(end) = end {
        e["period"]["end"] = json!(end);
    }
    if let Some(dx) = dx {
        e["reasonCode"] =
            json!([{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": dx }] }]);
    }
    if !in_county {
        e["extension"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "url": EXT_IN_COUNTY, "valueBoolean": false }));
    }
    e
}

fn put_bundle(s: &TestServer, token: &str, resources: Vec<Value>) {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|o| {
            let url = format!(
                "{}/{}",
                o["resourceType"].as_str().unwrap(),
                o["id"].as_str().unwrap()
            );
            json!({ "resource": o, "request": { "method": "PUT", "url": url } })
        })
        .collect();
    let bundle = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
    let r = s.post(token, "/fhir", &bundle.to_string());
    assert_eq!(r.status, 200, "{}", r.text);
}

/// County → two communities; in the first a lead hospital, a township
/// centre and a village clinic; in the second a TCM lead hospital and a
/// township centre; one out-of-county hospital. Seven encounters in March
/// 2026 (figures in the comments of the tests).
fn seed(s: &TestServer) {
    add_users(
        s,
        [
            ("admin", Role::SystemAdmin, Scope::County, None),
            ("ops", Role::OperationsCentre, Scope::County, None),
            ("weijian", Role::HealthCommission, Scope::County, None),
            (
                "comdoc",
                Role::Clinician,
                Scope::Community("com1".into()),
                Some("h1"),
            ),
            (
                "tdoc",
                Role::Clinician,
                Scope::Institution("t1".into()),
                Some("t1"),
            ),
        ],
    );
    let admin = s.token("admin");
    let mut orgs = county_orgs_with_leads();
    orgs.push(org("ext", "市外医院", "external", None, Some("county")));
    put_bundle(s, &admin, orgs);
    put_bundle(
        s,
        &admin,
        vec![
            person(
                "p1",
                "t1",
                "110105198001010016",
                "male",
                "1980-01-01",
                "张一",
            ),
            person(
                "p2",
                "t2",
                "110105197505050025",
                "female",
                "1975-05-05",
                "李二",
            ),
        ],
    );
    put_bundle(
        s,
        &admin,
        vec![
            enc(
                "e1",
                "p1",
                "t1",
                "AMB",
                "2026-03-05T02:00:00Z",
                None,
                &[
                    ("drugs", 35.5),
                    ("services", 10.0),
                    ("insurance-paid", 20.25),
                ],
                Some("I10"),
                true,
            ),
            enc(
                "e2",
                "p1",
                "v1",
                "AMB",
                "2026-03-06T02:00:00Z",
                None,
                &[("services", 20.0), ("insurance-paid", 10.0)],
                None,
                true,
            ),
            enc(
                "e3",
                "p1",
                "h1",
                "AMB",
                "2026-03-07T02:00:00Z",
                None,
                &[("drugs", 100.0), ("exams", 50.0), ("insurance-paid", 30.0)],
                Some("I10"),
                true,
            ),
            enc(
                "e4",
                "p1",
                "h1",
                "IMP",
                "2026-03-02T02:00:00Z",
                Some("2026-03-06T02:00:00Z"),
                &[
                    ("drugs", 1000.0),
                    ("services", 2000.0),
                    ("insurance-paid", 2400.0),
                ],
                Some("I21.9"),
                true,
            ),
            enc(
                "e5",
                "p1",
                "ext",
                "IMP",
                "2026-03-10T02:00:00Z",
                Some("2026-03-15T02:00:00Z"),
                &[("services", 8000.0), ("insurance-paid", 5000.0)],
                None,
                false,
            ),
            enc(
                "e6",
                "p2",
                "t2",
                "AMB",
                "2026-03-08T02:00:00Z",
                None,
                &[("drugs", 20.0), ("insurance-paid", 10.0)],
                Some("J06.9"),
                true,
            ),
            enc(
                "e7",
                "p2",
                "h2",
                "AMB",
                "2026-03-09T02:00:00Z",
                None,
                &[
                    ("drugs", 60.0),
                    ("services", 40.0),
                    ("insurance-paid", 50.0),
                ],
                Some("E11.9"),
                true,
            ),
        ],
    );
}

/// One token per user per server.
fn token(s: &TestServer, user: &str) -> String {
    static TOKENS: std::sync::Mutex<Vec<(std::net::SocketAddr, String, String)>> =
        std::sync::Mutex::new(Vec::new());
    let mut t = TOKENS.lock().unwrap();
    if let Some((_, _, tok)) = t.iter().find(|(a, u, _)| *a == s.addr && u == user) {
        return tok.clone();
    }
    let tok = s.token(user);
    t.push((s.addr, user.to_string(), tok.clone()));
    tok
}

/// A page's HTML with the template engine's escapes undone (`&#x2f;` …), so
/// links can be compared as written.
fn page(s: &TestServer, user: &str, path: &str) -> String {
    let r = s.get(&token(s, user), path);
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    assert!(!r.text.contains("NaN"), "{path} shows NaN");
    unescape(&r.text)
}

fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Issues every user's token up front (issuing one writes an audit row).
fn tokens(s: &TestServer) {
    for u in ["admin", "ops", "weijian", "comdoc", "tdoc"] {
        token(s, u);
    }
}

/// The text of the element with `id` (its first text run).
fn by_id(html: &str, id: &str) -> String {
    let key = format!("id=\"{id}\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} not on the page"));
    let rest = &html[at..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].trim().to_string()
}

fn form(s: &TestServer, user: &str, path: &str, pairs: &[(&str, &str)]) -> Resp {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    finish(
        s.agent
            .post(s.url(path))
            .header("Authorization", format!("Bearer {}", token(s, user)))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body),
    )
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

fn bytes(s: &TestServer, user: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut r = s
        .agent
        .get(s.url(path))
        .header("Authorization", format!("Bearer {}", token(s, user)))
        .call()
        .unwrap();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(50 << 20)
        .read_to_vec()
        .unwrap();
    (status, headers, body)
}

#[test]
fn tiles_and_indicator_pages_show_hand_computed_figures() {
    let s = TestServer::start();
    seed(&s);
    // County, March: visits in county e1 e2 e3 e6 e7 = 5, at primary level
    // e1 e2 e6 = 3 → 60.0%; enrollees' admissions e4 (in county), e5 (out of
    // county) → 50.0%; insurance fund in county (20.25 + 10 + 30 + 2400 + 10
    // + 50) / (… + 5000) = 2520.25 / 7520.25 → 33.5%; drugs 1215.50 of
    // revenue 3335.50 → 36.4%; visit charges 335.50 / 5 visits → ¥67.10; one
    // in-county discharge of ¥3000; no prescription reviewed → 无数据.
    let tiles = page(&s, "ops", &format!("/cockpit/tiles?month={MONTH}"));
    for (id, want) in [
        ("primary_visit_share", "60.0%"),
        ("inpatient_in_county_share", "50.0%"),
        ("fund_in_county_share", "33.5%"),
        ("drug_share", "36.4%"),
        ("cost_per_visit", "¥67.10"),
        ("inpatient_cost_in_county", "¥3,000.00"),
        ("rx_intervention_rate", "无数据"),
        ("outpatient_visits", "5 人次"),
        ("referrals_up", "0 人次"),
    ] {
        assert_eq!(by_id(&tiles, &format!("v-{id}-month")), want, "{id}");
    }
    // Year to date equals March (no other month has data); colours against target.
    assert_eq!(by_id(&tiles, "v-primary_visit_share-ytd"), "60.0%");
    assert!(
        tiles.contains("class=\"tile bad\" id=\"tile-primary_visit_share\""),
        "{tiles}"
    );
    assert!(tiles.contains("目标 ≥ 65.0%"));

    // Community 1: 2 of 3 visits at primary level → 66.7% (meets 65%).
    let t1 = page(
        &s,
        "ops",
        &format!("/cockpit/tiles?subject=Organization/com1&month={MONTH}"),
    );
    assert_eq!(by_id(&t1, "v-primary_visit_share-month"), "66.7%");
    assert!(t1.contains("class=\"tile ok\" id=\"tile-primary_visit_share\""));
    assert_eq!(by_id(&t1, "v-fund_in_county_share-month"), "33.0%");
    // Community 2 has no admissions: a zero denominator shows 无数据.
    let t2 = page(
        &s,
        "ops",
        &format!("/cockpit/tiles?subject=Organization/com2&month={MONTH}"),
    );
    assert_eq!(by_id(&t2, "v-inpatient_in_county_share-month"), "无数据");
    assert_eq!(by_id(&t2, "v-primary_visit_share-month"), "50.0%");
    assert_eq!(by_id(&t2, "v-fund_in_county_share-month"), "100.0%");

    // The full page: tiles polled every second, trends, and the communities.
    let home = page(&s, "ops", &format!("/cockpit?month={MONTH}"));
    assert!(home.contains("hx-trigger=\"every 1s\""));
    assert!(home.contains("/static/echarts.min.js"));
    assert!(home.contains("trend-primary_visit_share"));
    assert!(home.contains("markLine"));
    let table = &home[home.find("id=\"children\"").unwrap()..];
    assert!(
        table.contains("第一医共体") && table.contains("66.7%") && table.contains("第二医共体")
    );
    assert!(
        table.contains("/cockpit?subject=Organization%2Fcom1&month=2026-03"),
        "{table}"
    );
    // Drill-down to the institutions of community 1.
    let c1 = page(
        &s,
        "ops",
        &format!("/cockpit?subject=Organization/com1&month={MONTH}"),
    );
    let table = &c1[c1.find("id=\"children\"").unwrap()..];
    for name in ["县人民医院", "甲镇卫生院", "甲村卫生室"] {
        assert!(table.contains(name), "{name}");
    }
    assert!(!table.contains("县中医医院"));

    // One indicator: value, the written definition, breakdown, records.
    let ind = page(
        &s,
        "ops",
        &format!("/cockpit/indicators/primary_visit_share?from={MONTH}&to={MONTH}"),
    );
    assert_eq!(by_id(&ind, "value"), "60.0%");
    for text in [
        "基层医疗卫生机构诊疗量占比",
        "纳入标准",
        "数据来源",
        "统计周期",
        "≥ 65.0%",
        "visits_primary",
    ] {
        assert!(ind.contains(text), "definition lacks {text}");
    }
    let bd = &ind[ind.find("id=\"breakdown\"").unwrap()..];
    assert!(bd.contains("66.7%") && bd.contains("50.0%"));
    // Zero denominators: a township centre without discharges.
    let t1c = page(
        &s,
        "ops",
        &format!(
            "/cockpit/indicators/cost_per_admission?subject=Organization/t1&from={MONTH}&to={MONTH}"
        ),
    );
    assert_eq!(by_id(&t1c, "value"), "无数据");
    let h1c = page(
        &s,
        "ops",
        &format!(
            "/cockpit/indicators/cost_per_admission?subject=Organization/h1&from={MONTH}&to={MONTH}"
        ),
    );
    assert_eq!(by_id(&h1c, "value"), "¥3,000.00");
    assert!(h1c.contains("/cockpit/records?org=h1&from=2026-03&to=2026-03"));
    let alos = page(
        &s,
        "ops",
        &format!(
            "/cockpit/indicators/average_length_of_stay?subject=Organization/h1&from={MONTH}&to={MONTH}"
        ),
    );
    assert_eq!(by_id(&alos, "value"), "4.0 天");
    // An indicator not kept at institution level.
    let na = page(
        &s,
        "ops",
        &format!(
            "/cockpit/indicators/primary_visit_share?subject=Organization/t1&from={MONTH}&to={MONTH}"
        ),
    );
    assert_eq!(by_id(&na, "value"), "无数据");
    // Ranking: hypertension (I10) is 2 of the 5 visits.
    let top = page(
        &s,
        "ops",
        &format!("/cockpit/indicators/top_diseases_visits?from={MONTH}&to={MONTH}"),
    );
    let t = &top[top.find("id=\"top\"").unwrap()..];
    assert!(
        t.contains("I10") && t.contains("40.0%") && t.contains("E11"),
        "{t}"
    );

    // The records behind a figure, through the scoped FHIR search.
    let rec = page(
        &s,
        "ops",
        &format!("/cockpit/records?org=t1&from={MONTH}&to={MONTH}"),
    );
    assert_eq!(by_id(&rec, "total"), "1");
    assert!(rec.contains("¥45.50") && rec.contains("I10"));
    let fhir = by_id(&rec, "fhir-link");
    let r = s.get(&token(&s, "ops"), &fhir);
    assert_eq!(r.status, 200, "{fhir}: {}", r.text);
    let found = r.json();
    let ids: Vec<&str> = found["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    assert_eq!(ids, ["e1"]);

    // Bad parameters are refused in Chinese.
    let r = s.get(
        &token(&s, "ops"),
        "/cockpit/indicators/primary_visit_share?from=2026-13",
    );
    assert_eq!(r.status, 400);
    assert!(r.text.contains("格式错误"));
    let r = s.get(&token(&s, "ops"), "/cockpit/indicators/nope");
    assert_eq!(r.status, 404);

    // The monthly report: headline figures, changes, missed targets.
    let rep = page(&s, "ops", &format!("/cockpit/report?month={MONTH}"));
    assert!(rep.contains("运营月报") && rep.contains("60.0%"));
    let missed = &rep[rep.find("id=\"report-missed\"").unwrap()..];
    assert!(
        missed.contains("第一医共体") && missed.contains("通报"),
        "{missed}"
    );
    let ev = &rep[rep.find("id=\"report-eval\"").unwrap()..];
    assert!(ev.contains("未达到紧密型"));
}

#[test]
fn a_new_encounter_shows_on_the_next_tiles_request() {
    let s = TestServer::start();
    seed(&s);
    let tiles = page(&s, "ops", "/cockpit/tiles");
    let before = by_id(&tiles, "v-outpatient_visits-month");
    let n: i64 = before.split_whitespace().next().unwrap().parse().unwrap();
    let now = chrono::Utc::now() - chrono::Duration::minutes(1);
    let e = enc(
        "live1",
        "p1",
        "t1",
        "AMB",
        &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None,
        &[("services", 12.0), ("insurance-paid", 6.0)],
        Some("I10"),
        true,
    );
    let started = std::time::Instant::now();
    let r = s.put(
        &token(&s, "admin"),
        "/fhir/Encounter/live1",
        &e.to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let tiles = page(&s, "ops", "/cockpit/tiles");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(
        by_id(&tiles, "v-outpatient_visits-month"),
        format!("{} 人次", n + 1)
    );
    // The township doctor sees it on their own institution's tiles.
    let mine = page(&s, "tdoc", "/cockpit/tiles");
    assert_eq!(by_id(&mine, "v-outpatient_visits-month"), "1 人次");
    // A correction moves the counters back (cancelled visits do not count).
    let mut cancelled = e.clone();
    cancelled["status"] = json!("cancelled");
    let r = s.put(
        &token(&s, "admin"),
        "/fhir/Encounter/live1",
        &cancelled.to_string(),
        Some("W/\"1\""),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let tiles = page(&s, "ops", "/cockpit/tiles");
    assert_eq!(by_id(&tiles, "v-outpatient_visits-month"), before);
}

fn unzip(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(body)).expect("a zip archive");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        out.insert(f.name().unwrap().to_string(), text);
    }
    out
}

#[test]
fn every_view_exports_to_a_real_xlsx_workbook() {
    let s = TestServer::start();
    seed(&s);
    let (status, headers, body) = bytes(
        &s,
        "ops",
        &format!("/cockpit/export.xlsx?view=cockpit&month={MONTH}"),
    );
    assert_eq!(status, 200);
    assert_eq!(&body[..4], b"PK\x03\x04", "zip magic");
    let ctype = headers.iter().find(|(k, _)| k == "content-type").unwrap();
    assert_eq!(
        ctype.1,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-disposition" && v.contains("attachment"))
    );
    let files = unzip(&body);
    assert!(files.contains_key("xl/workbook.xml"));
    let strings = &files["xl/sharedStrings.xml"];
    for h in [
        "核心指标",
        "基层医疗卫生机构诊疗量占比",
        "本月",
        "年初至今",
        "目标",
        "无数据",
    ] {
        assert!(
            strings.contains(h) || files["xl/workbook.xml"].contains(h),
            "{h}"
        );
    }
    // Numbers are numbers: 60.0% is the number 0.6 with a percentage format.
    let sheet1 = &files["xl/worksheets/sheet1.xml"];
    assert!(sheet1.contains("<v>0.6</v>"), "{sheet1}");
    assert!(files["xl/styles.xml"].contains("0.0%"));
    // Money in yuan as a number: ¥67.10 per visit.
    assert!(sheet1.contains("<v>67.1</v>"), "{sheet1}");

    for path in [
        format!(
            "/cockpit/export.xlsx?view=indicator&id=primary_visit_share&from={MONTH}&to={MONTH}"
        ),
        format!("/cockpit/export.xlsx?view=report&month={MONTH}"),
        "/cockpit/export.xlsx?view=evaluation&community=com1&year=2026".to_string(),
        "/cockpit/export.xlsx?view=budget&community=com1&year=2026".to_string(),
        format!("/cockpit/export.xlsx?view=escalation&month={MONTH}"),
    ] {
        let (status, _, body) = bytes(&s, "ops", &path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(&body[..4], b"PK\x03\x04", "{path}");
        assert!(
            unzip(&body).contains_key("xl/worksheets/sheet1.xml"),
            "{path}"
        );
    }
    let r = s.get(&token(&s, "ops"), "/cockpit/export.xlsx?view=secrets");
    assert_eq!(r.status, 400);
    assert!(r.text.contains("无法导出"));
    // Scope applies to exports too.
    let r = s.get(
        &token(&s, "tdoc"),
        "/cockpit/export.xlsx?view=cockpit&subject=Organization/com1",
    );
    assert_eq!(r.status, 403);
}

fn provincial(indicator: &str, a: Value) -> String {
    let mut v: Value = serde_json::from_str(yigong_metrics::evaluation::NATIONAL_2020).unwrap();
    v["id"] = json!("sichuan-2024");
    v["version"] = json!("2024");
    v["title"] = json!("四川省紧密型县域医共体建设评判标准");
    for c in v["criteria"].as_array_mut().unwrap() {
        if c["id"] == "S1" {
            c["indicator"] = json!(indicator);
            c["thresholds"]["A"] = a.clone();
        }
    }
    v.to_string()
}

fn post_json(s: &TestServer, user: &str, path: &str, body: &str) -> Resp {
    finish(
        s.agent
            .post(s.url(path))
            .header("Authorization", format!("Bearer {}", token(s, user)))
            .header("Content-Type", "application/json")
            .send(body),
    )
}

fn multipart(
    s: &TestServer,
    user: &str,
    path: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> Resp {
    let boundary = "----yigongBoundary7MA4YWxk";
    let mut body: Vec<u8> = vec![];
    for (k, v) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (name, ctype, data) in files {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"evidence\"; filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n")
                .as_bytes(),
        );
        body.extend(*data);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    finish(
        s.agent
            .post(s.url(path))
            .header("Authorization", format!("Bearer {}", token(s, user)))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(&body[..]),
    )
}

#[test]
fn a_bad_standard_file_is_refused_and_changes_nothing() {
    let s = TestServer::start();
    seed(&s);
    tokens(&s);
    let before = s.snapshot();
    let r = post_json(
        &s,
        "ops",
        "/cockpit/evaluation/standard",
        &provincial("no_such_indicator", json!(860)),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("不在指标目录中"),
        "{}",
        r.text
    );
    let r = post_json(
        &s,
        "ops",
        "/cockpit/evaluation/standard",
        &provincial("inpatient_in_county_share", json!("85%")),
    );
    assert_eq!(r.status, 422);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("评判标准 S1 的阈值有误"),
        "{}",
        r.text
    );
    let mut unknown_dim: Value =
        serde_json::from_str(&provincial("inpatient_in_county_share", json!(860))).unwrap();
    unknown_dim["criteria"][0]["dimension"] = json!("nowhere");
    let r = post_json(
        &s,
        "ops",
        "/cockpit/evaluation/standard",
        &unknown_dim.to_string(),
    );
    assert_eq!(r.status, 422);
    assert!(
        r.json()["error"].as_str().unwrap().contains("未定义"),
        "{}",
        r.text
    );
    // Only the operations centre and the commission may upload.
    let r = post_json(
        &s,
        "comdoc",
        "/cockpit/evaluation/standard",
        &provincial("inpatient_in_county_share", json!(860)),
    );
    assert_eq!(r.status, 403);
    assert_eq!(s.snapshot(), before, "a refused file changed something");
    let ev = page(&s, "ops", "/cockpit/evaluation?community=com1&year=2026");
    assert!(ev.contains("紧密型县域医疗卫生共同体建设评判标准（试行）"));
    // S1 year to date: 1 of 2 admissions in county → 50.0% → C.
    assert_eq!(by_id(&ev, "grade-S1"), "C");
    assert_eq!(by_id(&ev, "verdict"), "未达到紧密型");
    assert!(ev.contains("id=\"what-if\""));

    // A good provincial file is put in force.
    let r = post_json(
        &s,
        "weijian",
        "/cockpit/evaluation/standard",
        &provincial("inpatient_in_county_share", json!(860)),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ev = page(&s, "ops", "/cockpit/evaluation?community=com1&year=2026");
    assert!(ev.contains("四川省紧密型县域医共体建设评判标准"));

    // An attested grade with an evidence file (multipart).
    let pdf: &[u8] = b"%PDF-1.4 charter of the community";
    let fields = [
        ("community", "com1"),
        ("year", "2026"),
        ("criterion", "R2"),
        ("grade", "A"),
        ("note", "权责清单已印发"),
        ("version", "0"),
    ];
    let r = multipart(&s, "ops", "/cockpit/evaluation/attest", &fields, &[]);
    assert_eq!(r.status, 422, "no evidence must be refused");
    assert!(r.text.contains("必须附佐证材料"));
    let r = multipart(
        &s,
        "comdoc",
        "/cockpit/evaluation/attest",
        &fields,
        &[("章程.pdf", "application/pdf", pdf)],
    );
    assert_eq!(r.status, 403);
    let r = multipart(
        &s,
        "ops",
        "/cockpit/evaluation/attest",
        &fields,
        &[("章程.pdf", "application/pdf", pdf)],
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let ev = page(&s, "ops", "/cockpit/evaluation?community=com1&year=2026");
    assert_eq!(by_id(&ev, "grade-R2"), "A");
    assert!(ev.contains("章程.pdf"));
    let at = ev.find("/cockpit/evidence/").unwrap();
    let link = &ev[at..at + ev[at..].find('"').unwrap()];
    let (status, headers, body) = bytes(&s, "ops", link);
    assert_eq!(status, 200);
    assert_eq!(body, pdf);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/pdf")
    );
    // The community's own user reads it; another scope does not.
    let (status, _, _) = bytes(&s, "comdoc", link);
    assert_eq!(status, 200);
    let r = s.get(&token(&s, "tdoc"), link);
    assert_eq!(r.status, 403);
    // Institution users do not open community evaluations.
    let r = s.get(&token(&s, "tdoc"), "/cockpit/evaluation");
    assert_eq!(r.status, 403);
}

#[test]
fn budget_refuses_bad_values_and_tracks_execution() {
    let s = TestServer::start();
    seed(&s);
    tokens(&s);
    let before = s.snapshot();
    fn with(pc: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("community", "com1"),
            ("year", "2026"),
            ("enrollees", "1000"),
            ("reserve_bp", "300"),
            ("surplus_retained_bp", "10000"),
            ("overspend", "not_compensated"),
            ("version", "0"),
            ("per_capita", pc),
        ]
    }
    let r = form(&s, "ops", "/cockpit/budget", &with("-1200"));
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("人均定额不能为负数"), "{}", r.text);
    let r = form(&s, "ops", "/cockpit/budget", &with("12.345"));
    assert_eq!(r.status, 422);
    assert!(r.text.contains("格式错误"));
    let mut bad = with("1200");
    bad[2] = ("enrollees", "-5");
    let r = form(&s, "ops", "/cockpit/budget", &bad);
    assert_eq!(r.status, 422);
    assert!(r.text.contains("参保人数必须大于 0"));
    // Only the operations centre and the commission configure budgets.
    assert_eq!(
        form(&s, "comdoc", "/cockpit/budget", &with("1200")).status,
        403
    );
    assert_eq!(
        form(&s, "tdoc", "/cockpit/budget", &with("1200")).status,
        403
    );
    assert_eq!(s.snapshot(), before, "a refused budget changed something");
    let b = page(&s, "ops", "/cockpit/budget?community=com1&year=2026");
    assert!(b.contains("2026 年尚未配置预算"));

    // 1000 enrollees × ¥1200, 3% reserve → ¥1,164,000.00 net.
    let r = form(&s, "ops", "/cockpit/budget", &with("1200"));
    assert_eq!(r.status, 303, "{}", r.text);
    let b = page(&s, "ops", "/cockpit/budget?community=com1&year=2026");
    assert!(b.contains("¥1,164,000.00"), "net budget");
    // Spending charged to the package: inside 20.25 + 10 + 30 + 2400, out of county 5000.
    assert!(b.contains("¥7,460.25"), "spending year to date");
    assert!(b.contains("¥5,000.00"));
    assert!(b.contains("id=\"balance\""));
    assert!(b.contains("echarts.min.js"));
    // A change names the version it was made from.
    let r = form(&s, "ops", "/cockpit/budget", &with("1300"));
    assert_eq!(r.status, 428, "{}", r.text);
    let mut v1 = with("1300");
    v1[6] = ("version", "1");
    assert_eq!(form(&s, "ops", "/cockpit/budget", &v1).status, 303);
    let r = form(&s, "ops", "/cockpit/budget", &v1);
    assert_eq!(r.status, 412, "{}", r.text);
    v1[6] = ("version", "2");
    v1[7] = ("per_capita", "1200");
    assert_eq!(form(&s, "ops", "/cockpit/budget", &v1).status, 303);

    // Special funds: allocate, spend, never overspend.
    fn fund(pairs: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![("community", "com1"), ("year", "2026")];
        v.extend_from_slice(pairs);
        v
    }
    assert_eq!(
        form(
            &s,
            "ops",
            "/cockpit/budget/fund",
            &fund(&[("total", "150000"), ("version", "0")])
        )
        .status,
        303
    );
    let r = form(
        &s,
        "ops",
        "/cockpit/budget/fund/entry",
        &fund(&[
            ("kind", "allocate"),
            ("purpose", "training"),
            ("name", "人才培养"),
            ("amount", "60000"),
        ]),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let r = form(
        &s,
        "ops",
        "/cockpit/budget/fund/entry",
        &fund(&[
            ("kind", "spend"),
            ("purpose", "training"),
            ("amount", "70000"),
        ]),
    );
    assert_eq!(r.status, 422);
    assert!(r.text.contains("支出超出分配"), "{}", r.text);
    let r = form(
        &s,
        "ops",
        "/cockpit/budget/fund/entry",
        &fund(&[("kind", "spend"), ("purpose", "training"), ("amount", "-5")]),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        form(
            &s,
            "ops",
            "/cockpit/budget/fund/entry",
            &fund(&[
                ("kind", "spend"),
                ("purpose", "training"),
                ("amount", "50000"),
                ("note", "进修")
            ])
        )
        .status,
        303
    );
    let b = page(&s, "ops", "/cockpit/budget?community=com1&year=2026");
    assert_eq!(by_id(&b, "fund-total"), "¥150,000.00");
    let purposes = &b[b.find("id=\"fund-purposes\"").unwrap()..];
    assert!(
        purposes.contains("人才培养") && purposes.contains("¥10,000.00"),
        "{purposes}"
    );
    // Scope: a community user reads their own community only; institutions not at all.
    page(&s, "comdoc", "/cockpit/budget?community=com1&year=2026");
    assert_eq!(
        s.get(&token(&s, "comdoc"), "/cockpit/budget?community=com2")
            .status,
        403
    );
    assert_eq!(s.get(&token(&s, "tdoc"), "/cockpit/budget").status, 403);
}

#[test]
fn escalation_levels_are_computed_and_each_step_is_recorded() {
    let s = TestServer::start();
    seed(&s);
    // March: community 1 has 50.0% of admissions in county (target 85%) and
    // community 2 50.0% of visits at primary level (target 65%): 通报.
    let e = page(
        &s,
        "ops",
        &format!("/cockpit/escalation?month={MONTH}&year=2026"),
    );
    let levels = &e[e.find("id=\"levels\"").unwrap()..e.find("id=\"steps\"").unwrap()];
    assert!(
        levels.contains("第一医共体") && levels.contains("县域内住院人次占比"),
        "{levels}"
    );
    assert!(levels.contains("第二医共体") && levels.contains("基层医疗卫生机构诊疗量占比"));
    assert!(levels.contains("通报"));
    assert!(!levels.contains("约谈（自"));
    let step = [
        ("rule", "inpatient-in-county"),
        ("org", "com1"),
        ("level", "notify"),
        ("since", MONTH),
        ("period", MONTH),
        ("notified", "第一医共体主任"),
        ("note", "县域内住院人次占比未达标"),
    ];
    assert_eq!(
        form(&s, "comdoc", "/cockpit/escalation/steps", &step).status,
        403
    );
    let r = form(&s, "ops", "/cockpit/escalation/steps", &step);
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(
        form(&s, "ops", "/cockpit/escalation/steps", &step).status,
        409
    );
    let e = page(
        &s,
        "ops",
        &format!("/cockpit/escalation?month={MONTH}&year=2026"),
    );
    let steps = &e[e.find("id=\"steps\"").unwrap()..];
    assert!(steps.contains("第一医共体主任") && steps.contains("ops"));
    let audit = s
        .store
        .audit_log(
            Some(("OpsEscalationStep", "inpatient-in-county/com1")),
            0,
            5,
        )
        .unwrap();
    assert_eq!(audit.len(), 1);

    // A rule is changed (stricter: notify only after two months): level gone.
    let rule = [
        ("id", "inpatient-in-county"),
        ("level", "community"),
        ("indicator", "inpatient_in_county_share"),
        ("direction", "higher_is_better"),
        ("target", "850"),
        ("notify_after", "2"),
        ("warn_after", "3"),
        ("summon_after", "4"),
        ("missing", "skip"),
        ("active", "on"),
        ("version", "0"),
    ];
    let mut bad = rule.to_vec();
    bad[5] = ("notify_after", "5");
    let r = form(&s, "ops", "/cockpit/escalation/rules", &bad);
    assert_eq!(r.status, 422);
    assert!(r.text.contains("通报 ≤ 预警 ≤ 约谈"));
    assert_eq!(
        form(&s, "comdoc", "/cockpit/escalation/rules", &rule).status,
        403
    );
    assert_eq!(
        form(&s, "ops", "/cockpit/escalation/rules", &rule).status,
        303
    );
    let e = page(
        &s,
        "ops",
        &format!("/cockpit/escalation?month={MONTH}&year=2026"),
    );
    let levels = &e[e.find("id=\"levels\"").unwrap()..e.find("id=\"steps\"").unwrap()];
    assert!(!levels.contains("县域内住院人次占比"), "{levels}");

    // The assessment cycle: planned, advanced, late days recorded.
    let plan = [
        ("community", "com1"),
        ("year", "2026"),
        ("start", "2026-01-01"),
        ("self_evaluation", "15"),
        ("assessment", "30"),
        ("result", "10"),
        ("feedback", "60"),
    ];
    assert_eq!(form(&s, "ops", "/cockpit/cycles", &plan).status, 303);
    let adv = [
        ("community", "com1"),
        ("year", "2026"),
        ("to", "result"),
        ("on", "2026-01-20"),
        ("version", "1"),
    ];
    let r = form(&s, "ops", "/cockpit/cycles/advance", &adv);
    assert_eq!(r.status, 422);
    assert!(r.text.contains("只能进入下一环节"), "{}", r.text);
    let mut adv = adv.to_vec();
    adv[2] = ("to", "assessment");
    assert_eq!(form(&s, "ops", "/cockpit/cycles/advance", &adv).status, 303);
    assert_eq!(form(&s, "ops", "/cockpit/cycles/advance", &adv).status, 412);
    let e = page(&s, "ops", "/cockpit/escalation?year=2026");
    let cycles = &e[e.find("id=\"cycle-table\"").unwrap()..];
    assert!(
        cycles.contains("实施考核") && cycles.contains("逾期 5 天"),
        "{cycles}"
    );
    // The institution's doctor sees only their own institution's levels.
    let mine = page(&s, "tdoc", &format!("/cockpit/escalation?month={MONTH}"));
    assert!(!mine.contains("第二医共体"));
}

#[test]
fn scope_is_enforced_in_the_server() {
    let s = TestServer::start();
    seed(&s);
    let mine = page(&s, "tdoc", &format!("/cockpit?month={MONTH}"));
    assert!(mine.contains("甲镇卫生院"));
    assert!(!mine.contains("id=\"children\""));
    // A township centre: 78.0% of its revenue is drugs (35.50 of 45.50).
    let t = page(&s, "tdoc", &format!("/cockpit/tiles?month={MONTH}"));
    assert_eq!(by_id(&t, "v-drug_share-month"), "78.0%");
    assert!(
        !t.contains("tile-primary_visit_share"),
        "not kept at institution level"
    );
    for (user, path) in [
        ("tdoc", "/cockpit?subject=Organization/com1"),
        ("tdoc", "/cockpit/tiles?subject=Organization/h1"),
        ("tdoc", "/cockpit/records?org=h1"),
        ("comdoc", "/cockpit?subject=Organization/com2"),
        (
            "comdoc",
            "/cockpit/indicators/drug_share?subject=Organization/h2",
        ),
        ("comdoc", "/cockpit/report?subject=Organization/county"),
    ] {
        let r = s.get(&token(&s, user), path);
        assert_eq!(r.status, 403, "{user} {path}: {}", r.text);
        assert!(r.text.contains("不在您的管辖范围内"));
    }
    page(
        &s,
        "comdoc",
        &format!("/cockpit?subject=Organization/t1&month={MONTH}"),
    );
    let r = s.agent.get(s.url("/cockpit")).call().unwrap();
    assert_eq!(r.status().as_u16(), 303, "pages need a signed-in user");
}

/// The operations centre opens the cockpit: county tiles against targets,
/// drills down to a community, watches a new encounter arrive on the live
/// tiles, opens one indicator, and configures the community's budget.
#[test]
fn browser_cockpit_story() {
    use common::driver::Driver;
    if Driver::skip_without_browser() {
        return;
    }
    let s = TestServer::start();
    seed(&s);
    let d = Driver::start();
    d.login(&s, "ops");
    d.click("#nav-cockpit");
    d.wait_text("main h1", "运营驾驶舱");
    d.go(&s.url(&format!("/cockpit?month={MONTH}")));
    d.wait_text("#v-primary_visit_share-month", "60.0%");
    d.wait_text("#children", "第一医共体");
    d.screenshot("cockpit-county");

    d.click("#children tbody tr:first-child td:first-child a");
    d.wait_text("main h1", "第一医共体");
    d.wait_text("#v-primary_visit_share-month", "66.7%");
    d.wait_text("#children", "甲镇卫生院");
    d.screenshot("cockpit-community");

    // Live: the tiles poll every second.
    d.go(&s.url("/cockpit"));
    d.wait_text("#tiles-updated", "更新于");
    let before = d.text("#v-outpatient_visits-month");
    let n: i64 = before.split_whitespace().next().unwrap().parse().unwrap();
    let now = chrono::Utc::now() - chrono::Duration::minutes(1);
    let e = enc(
        "live-browser",
        "p2",
        "t2",
        "AMB",
        &now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None,
        &[("services", 15.0), ("insurance-paid", 8.0)],
        None,
        true,
    );
    let r = s.put(
        &token(&s, "admin"),
        "/fhir/Encounter/live-browser",
        &e.to_string(),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let started = std::time::Instant::now();
    d.wait_text("#v-outpatient_visits-month", &format!("{} 人次", n + 1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "tiles refresh every second"
    );
    d.screenshot("cockpit-live");

    d.go(&s.url(&format!(
        "/cockpit/indicators/primary_visit_share?from={MONTH}&to={MONTH}"
    )));
    d.wait_text("#value", "60.0%");
    d.wait_text("#breakdown", "66.7%");
    d.screenshot("cockpit-indicator");

    d.go(&s.url("/cockpit/budget?community=com1&year=2026"));
    d.type_into("#per_capita", "1200");
    d.type_into("#enrollees", "1000");
    d.click("#budget-save");
    d.wait_text("#budget-summary", "¥1,164,000.00");
    d.screenshot("cockpit-budget");

    d.go(&s.url(&format!("/cockpit/escalation?month={MONTH}")));
    d.wait_text("#levels", "通报");
    d.screenshot("cockpit-escalation");

    d.go(&s.url(&format!("/cockpit/report?month={MONTH}")));
    d.wait_text("#report-missed", "通报");
    d.screenshot("cockpit-report");

    d.go(&s.url("/cockpit/evaluation?community=com1&year=2026"));
    d.wait_text("#verdict", "未达到紧密型");
    d.screenshot("cockpit-evaluation");
}
