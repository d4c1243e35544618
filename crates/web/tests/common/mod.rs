//! A real server on a loopback port over a fresh SQLite database, a small
//! county fixture and an HTTP client, shared by the integration tests.
#![allow(dead_code)]

pub mod driver;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use yigong_store::{Role, Scope, Store, User};

pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    pub agent: ureq::Agent,
    _dir: tempfile::TempDir,
    _rt: std::thread::JoinHandle<()>,
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub const PASSWORD: &str = "test-password-1";

impl TestServer {
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_sqlite_dir(dir.path()).unwrap());
        Self::start_with(store, dir)
    }

    pub fn start_with(store: Arc<Store>, dir: tempfile::TempDir) -> TestServer {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = store.clone();
        let rt = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let server = tokio::spawn(yigong_web::serve(
                    s,
                    "127.0.0.1:0".parse().unwrap(),
                    Some(ready_tx),
                ));
                tx.send(ready_rx.await.unwrap()).unwrap();
                let _ = server.await;
            });
        });
        let addr = rx.recv().unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        TestServer {
            addr,
            store,
            agent,
            _dir: dir,
            _rt: rt,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token(&self, user: &str) -> String {
        self.store
            .issue_credential(user, "token", chrono::Duration::hours(1))
            .unwrap()
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

    pub fn get(&self, token: &str, path: &str) -> Resp {
        Self::finish(
            self.agent
                .get(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .call(),
        )
    }
    pub fn post(&self, token: &str, path: &str, body: &str) -> Resp {
        Self::finish(
            self.agent
                .post(self.url(path))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/fhir+json")
                .send(body),
        )
    }
    pub fn put(&self, token: &str, path: &str, body: &str, if_match: Option<&str>) -> Resp {
        let mut req = self
            .agent
            .put(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/fhir+json");
        if let Some(m) = if_match {
            req = req.header("If-Match", m);
        }
        Self::finish(req.send(body))
    }

    /// A fingerprint of everything stored, to prove a failed request changed nothing.
    pub fn snapshot(&self) -> (i64, Vec<(String, i64)>) {
        (
            self.store.audit_count().unwrap(),
            self.store.resource_types().unwrap(),
        )
    }
}

pub fn org(id: &str, name: &str, kind: &str, tier: Option<&str>, parent: Option<&str>) -> Value {
    let mut types = vec![
        json!({ "coding": [{ "system": "https://yigong.org.cn/fhir/CodeSystem/org-kind", "code": kind }] }),
    ];
    if let Some(t) = tier {
        types.push(json!({ "coding": [{ "system": "https://yigong.org.cn/fhir/CodeSystem/org-tier", "code": t }] }));
    }
    let mut o = json!({ "resourceType": "Organization", "id": id, "name": name, "type": types });
    if let Some(p) = parent {
        o["partOf"] = json!({ "reference": format!("Organization/{p}") });
    }
    o
}

/// A Chinese resident with a valid resident ID (born 1949-12-31, female).
pub fn patient(org: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": "https://yigong.org.cn/fhir/sid/resident-id", "value": "11010519491231002X" }],
        "name": [{ "text": "王晓红", "family": "王", "given": ["晓红"] }],
        "gender": "female",
        "birthDate": "1949-12-31",
        "telecom": [{ "system": "phone", "value": "13812345678" }],
        "managingOrganization": { "reference": format!("Organization/{org}") }
    })
}

pub fn encounter(patient: &str, org: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
        "subject": { "reference": format!("Patient/{patient}") },
        "serviceProvider": { "reference": format!("Organization/{org}") },
        "period": { "start": "2026-03-01T01:30:00Z" },
        "reasonCode": [{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I10" }] }],
        "extension": [{ "url": "https://yigong.org.cn/fhir/StructureDefinition/charges", "extension": [
            { "url": "drugs", "valueMoney": { "value": 35.5, "currency": "CNY" } },
            { "url": "services", "valueMoney": { "value": 10, "currency": "CNY" } },
            { "url": "insurance-paid", "valueMoney": { "value": 20.25, "currency": "CNY" } }
        ]}]
    })
}

/// Test users (name, role, scope, institution), all with [`PASSWORD`].
pub fn add_users<const N: usize>(s: &TestServer, users: [(&str, Role, Scope, Option<&str>); N]) {
    for (name, role, scope, inst) in users {
        let u = User {
            name: name.into(),
            display: name.into(),
            role,
            scope,
            institution: inst.map(str::to_string),
        };
        s.store.upsert_user("test", &u, PASSWORD).unwrap();
    }
}

/// Marks an Organization as its community's lead hospital.
pub fn lead_org(mut o: Value) -> Value {
    o["extension"] = json!([{ "url": "https://yigong.org.cn/fhir/StructureDefinition/lead-hospital", "valueBoolean": true }]);
    o
}

/// County → two communities; in the first a lead hospital, a township
/// centre and a village clinic; in the second a TCM lead hospital and a
/// township centre (the Organizations only).
pub fn county_orgs_with_leads() -> Vec<Value> {
    vec![
        org("county", "测试县", "county", None, None),
        org("com1", "第一医共体", "community", None, Some("county")),
        org("com2", "第二医共体", "community", None, Some("county")),
        lead_org(org(
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
        org(
            "v1",
            "甲村卫生室",
            "village-clinic",
            Some("village"),
            Some("t1"),
        ),
        lead_org(org(
            "h2",
            "县中医医院",
            "tcm-hospital",
            Some("county"),
            Some("com2"),
        )),
        org(
            "t2",
            "乙镇卫生院",
            "township-centre",
            Some("township"),
            Some("com2"),
        ),
    ]
}

/// County → two communities → a township centre in each; users for each role.
pub fn seed_county(s: &TestServer) {
    let users = [
        ("admin", Role::SystemAdmin, Scope::County, None),
        ("weijian", Role::HealthCommission, Scope::County, None),
        (
            "doc1",
            Role::Clinician,
            Scope::Community("com1".into()),
            Some("t1"),
        ),
        (
            "doc2",
            Role::Clinician,
            Scope::Community("com2".into()),
            Some("t2"),
        ),
        (
            "village",
            Role::VillageDoctor,
            Scope::Institution("t1".into()),
            Some("t1"),
        ),
    ];
    add_users(s, users);
    let admin = s.token("admin");
    let entries: Vec<Value> = [
        org("county", "测试县", "county", None, None),
        org("com1", "第一医共体", "community", None, Some("county")),
        org("com2", "第二医共体", "community", None, Some("county")),
        org(
            "t1",
            "甲镇卫生院",
            "township-centre",
            Some("township"),
            Some("com1"),
        ),
        org(
            "t2",
            "乙镇卫生院",
            "township-centre",
            Some("township"),
            Some("com2"),
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
}

/// The independent FHIR R4 validator (Python `fhir.resources` 6.5), or None when
/// it is not installed (then the caller skips; under CI that is a failure).
pub fn fhir_validator() -> Option<String> {
    let python = std::env::var("YIGONG_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import fhir.resources"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must have the FHIR validator installed (.ci/run)"
    );
    eprintln!(
        "SKIPPED: python fhir.resources not installed (pip install 'fhir.resources==6.5.0' 'pydantic<2')"
    );
    None
}

/// Validates every resource of a directory; panics with the validator's report.
pub fn validate_fhir_dir(python: &str, dir: &std::path::Path, expected: usize) {
    let o = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/validate_fhir.py"
        ))
        .arg(dir)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "FHIR R4 validation failed:\n{report}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        report.contains(&format!("validated {expected} resources, 0 invalid")),
        "{report}"
    );
}

/// Validates JSON instances against one of the CDS Hooks 2.0 schemas in
/// `tests/cds-hooks/` with the independent Python `jsonschema` validator;
/// skips (outside CI) when it is not installed.
pub fn validate_cds_json(schema: &str, instances: &[Value]) {
    let python = std::env::var("YIGONG_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have the jsonschema validator installed (.ci/run)"
        );
        eprintln!("SKIPPED: python jsonschema not installed (pip install jsonschema)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![format!(
        "{}/tests/cds-hooks/{schema}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    )];
    for (i, v) in instances.iter().enumerate() {
        let p = dir.path().join(format!("{i}.json"));
        std::fs::write(&p, v.to_string()).unwrap();
        args.push(p.display().to_string());
    }
    let o = std::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/validate_json_schema.py"
        ))
        .args(&args)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{schema} schema validation failed:\n{report}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        report.contains(&format!("checked {} instances, 0 errors", instances.len())),
        "{report}"
    );
}

/// Runs `f` with a test server on PostgreSQL in a fresh schema (dropped
/// afterwards) when `YIGONG_TEST_DATABASE_URL` is set; under CI its absence is
/// a failure, elsewhere the test is skipped.
pub fn on_postgres(prefix: &str, f: impl FnOnce(TestServer)) {
    let Ok(url) = std::env::var("YIGONG_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the PostgreSQL test"
        );
        eprintln!("skipped: YIGONG_TEST_DATABASE_URL not set");
        return;
    };
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = Arc::new(
        Store::open_postgres(&format!("{url}{sep}options=-c%20search_path%3D{schema}")).unwrap(),
    );
    f(TestServer::start_with(store, tempfile::tempdir().unwrap()));
    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}
