//! A person's path through the pages, in a real headless Chromium driven over
//! WebDriver (Debian's chromium + chromium-driver): login → organisation tree →
//! patient search → patient page, with screenshots saved under
//! `target/screenshots/`. CI installs the browser; elsewhere the test skips
//! (and fails if CI is set but the browser is missing).

mod common;
use common::driver::Driver;
use common::*;
use serde_json::json;

#[test]
fn login_org_tree_patient_search_and_patient_page() {
    if Driver::skip_without_browser() {
        return;
    }
    let s = TestServer::start();
    seed_county(&s);
    let doc = s.token("doc1");
    let mut p = patient("t1");
    p["id"] = json!("pat-browser");
    assert_eq!(
        s.put(&doc, "/fhir/Patient/pat-browser", &p.to_string(), None)
            .status,
        201
    );
    let mut e = encounter("pat-browser", "t1");
    e["id"] = json!("enc-browser");
    assert_eq!(
        s.put(&doc, "/fhir/Encounter/enc-browser", &e.to_string(), None)
            .status,
        201
    );

    let d = Driver::start();
    d.go(&s.url("/"));
    d.type_into("#username", "doc1");
    d.type_into("#password", PASSWORD);
    d.click("#login-submit");
    d.wait_text("main h1", "总览");
    d.screenshot("home");

    d.click("#nav-orgs");
    d.wait_text("#org-tree", "第一医共体");
    let tree = d.text("#org-tree");
    assert!(tree.contains("甲镇卫生院"), "{tree}");
    assert!(
        !tree.contains("乙镇卫生院"),
        "a clinician of community 1 sees only community 1: {tree}"
    );
    d.screenshot("orgs");

    d.click("#nav-patients");
    d.type_into("#patient-q", "王晓");
    d.click("#patient-search");
    d.wait_text("#results", "王晓红");
    d.screenshot("patients");
    d.click("a.patient-link");
    d.wait_text("#patient-name", "王晓红");
    d.wait_text("#encounters", "甲镇卫生院");
    d.wait_text("#encounters", "I10");
    d.screenshot("patient");
    // The page read was logged for the resident's "who looked at my record".
    let log = s.store.access_history("pat-browser", 10).unwrap();
    assert!(log.iter().any(|a| a.actor == "doc1"));
}
