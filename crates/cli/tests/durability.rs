//! Killing the server with SIGKILL in the middle of a stream of transaction
//! bundles loses no acknowledged bundle and leaves no half-written one.

use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yigong_store::{Actor, Doc, OrgNode, Precondition, Role, Scope, Store, User};

const PER_BUNDLE: usize = 200;

fn bundle(n: usize) -> String {
    let entries: Vec<_> = (0..PER_BUNDLE)
        .map(|i| {
            json!({
                "resource": { "resourceType": "Patient", "id": format!("b{n}-{i}"), "name": [{ "text": format!("测试{n}号{i}") }], "gender": "male", "birthDate": "1970-01-01",
                              "managingOrganization": { "reference": "Organization/t1" } },
                "request": { "method": "PUT", "url": format!("Patient/b{n}-{i}") }
            })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries }).to_string()
}

#[test]
fn sigkill_during_import_loses_no_acknowledged_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let token = {
        let store = Store::open_sqlite_dir(dir.path()).unwrap();
        let org = Doc {
            rtype: "Organization".into(),
            id: "t1".into(),
            body: json!({ "resourceType": "Organization", "name": "甲镇卫生院" }),
            org: None,
            patient: None,
            date: None,
            index: vec![],
            refs: vec![],
            org_node: Some(OrgNode {
                name: "甲镇卫生院".into(),
                kind: Some("township-centre".into()),
                tier: Some("township".into()),
                parent: None,
                is_institution: true,
                is_community: false,
                sub_centre: false,
                lead: false,
            }),
            performer: None,
        };
        store
            .put(&Actor::system("t"), org, Precondition::Create, None)
            .unwrap();
        store
            .upsert_user(
                "t",
                &User {
                    name: "admin".into(),
                    display: "管理员".into(),
                    role: Role::SystemAdmin,
                    scope: Scope::County,
                    institution: None,
                },
                "admin-password",
            )
            .unwrap();
        store
            .issue_credential("admin", "token", chrono::Duration::hours(1))
            .unwrap()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_yigong"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let started = Instant::now();
    while agent.get(format!("http://{addr}/healthz")).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (acked, stop, agent, addr, token) = (
                acked.clone(),
                stop.clone(),
                agent.clone(),
                addr.clone(),
                token.clone(),
            );
            std::thread::spawn(move || {
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    let r = agent
                        .post(format!("http://{addr}/fhir"))
                        .header("Authorization", format!("Bearer {token}"))
                        .header("Content-Type", "application/fhir+json")
                        .send(bundle(n));
                    match r {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push(n),
                        Ok(r) => panic!("bundle {n} refused: {}", r.status()),
                        Err(_) => break, // the server died mid-request: not acknowledged
                    }
                    n += 2;
                }
            })
        })
        .collect();
    // Let a good number of bundles land, then kill the server without warning.
    while acked.lock().unwrap().len() < 10 {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    let store = Store::open_sqlite_dir(dir.path()).unwrap();
    let max = acked.iter().max().copied().unwrap_or(0) + 4;
    for n in 0..=max {
        let present = (0..PER_BUNDLE)
            .filter(|i| {
                store
                    .read("Patient", &format!("b{n}-{i}"))
                    .unwrap()
                    .is_some()
            })
            .count();
        assert!(
            present == 0 || present == PER_BUNDLE,
            "bundle {n} half-written: {present}/{PER_BUNDLE}"
        );
        if acked.contains(&n) {
            assert_eq!(present, PER_BUNDLE, "acknowledged bundle {n} lost");
        }
    }
}
