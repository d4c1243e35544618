//! The pages over HTTP: login with a password, every page renders in Chinese,
//! pages redirect to the login when signed out and respect scope.

mod common;
use common::*;
use serde_json::json;

fn login(s: &TestServer, user: &str, password: &str) -> (u16, Option<String>) {
    let r = s
        .agent
        .post(s.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("username={user}&password={password}"))
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap().to_string());
    (r.status().as_u16(), cookie)
}

fn page(s: &TestServer, cookie: &str, path: &str) -> (u16, String) {
    let mut r = s
        .agent
        .get(s.url(path))
        .header("Cookie", cookie)
        .call()
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

#[test]
fn signed_out_visitors_are_sent_to_the_login() {
    let s = TestServer::start();
    seed_county(&s);
    let r = s.agent.get(s.url("/patients")).call().unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers().get("location").unwrap(), "/login");
    let (status, cookie) = login(&s, "doc1", "wrong-password");
    assert_eq!((status, cookie), (401, None));
}

#[test]
fn every_page_renders_for_a_signed_in_user() {
    let s = TestServer::start();
    seed_county(&s);
    let doc = s.token("doc1");
    let mut p = patient("t1");
    p["id"] = json!("pat-1");
    assert_eq!(
        s.put(&doc, "/fhir/Patient/pat-1", &p.to_string(), None)
            .status,
        201
    );
    let mut e = encounter("pat-1", "t1");
    e["id"] = json!("enc-1");
    assert_eq!(
        s.put(&doc, "/fhir/Encounter/enc-1", &e.to_string(), None)
            .status,
        201
    );

    let (status, cookie) = login(&s, "admin", PASSWORD);
    assert_eq!(status, 303);
    let cookie = cookie.expect("session cookie");
    let (st, home) = page(&s, &cookie, "/");
    assert_eq!(st, 200);
    assert!(
        home.contains("测试县 · 总览") && home.contains("本月就诊人次") && home.contains("echarts"),
        "{home}"
    );
    let (_, orgs) = page(&s, &cookie, "/orgs");
    assert!(orgs.contains("第一医共体") && orgs.contains("乙镇卫生院"));
    let (_, found) = page(&s, &cookie, "/patients?q=%E7%8E%8B%E6%99%93");
    assert!(
        found.contains("王晓红") && found.contains("110105********002X"),
        "{found}"
    );
    let (_, by_id) = page(&s, &cookie, "/patients?q=11010519491231002X");
    assert!(by_id.contains("pat-1"));
    let (_, bad_id) = page(&s, &cookie, "/patients?q=110105194912310021");
    assert!(bad_id.contains("校验位错误"));
    let (st, person) = page(&s, &cookie, "/patients/pat-1");
    assert_eq!(st, 200);
    assert!(
        person.contains("王晓红")
            && person.contains("I10")
            && person.contains("¥45.50")
            && person.contains("门诊"),
        "{person}"
    );
    let (_, audit) = page(&s, &cookie, "/audit");
    assert!(
        audit.contains("pat-1") && audit.contains("create"),
        "{audit}"
    );
    let (st, _) = page(&s, &cookie, "/static/echarts.min.js");
    assert_eq!(st, 200);
}

#[test]
fn pages_respect_scope() {
    let s = TestServer::start();
    seed_county(&s);
    let doc = s.token("doc1");
    let mut p = patient("t1");
    p["id"] = json!("pat-1");
    assert_eq!(
        s.put(&doc, "/fhir/Patient/pat-1", &p.to_string(), None)
            .status,
        201
    );
    let (_, cookie) = login(&s, "doc2", PASSWORD);
    let cookie = cookie.unwrap();
    let (st, body) = page(&s, &cookie, "/patients/pat-1");
    assert_eq!(st, 403);
    assert!(body.contains("不在您的管辖范围内"));
    let (_, found) = page(&s, &cookie, "/patients?q=%E7%8E%8B");
    assert!(!found.contains("王晓红"));
    let (_, orgs) = page(&s, &cookie, "/orgs");
    assert!(orgs.contains("乙镇卫生院") && !orgs.contains("甲镇卫生院"));
    assert!(
        page(&s, &cookie, "/").1.contains("第二医共体"),
        "the header names the user's scope"
    );
    assert_eq!(page(&s, &cookie, "/audit").0, 403);
}
