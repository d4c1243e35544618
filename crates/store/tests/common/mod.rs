//! Shared test harness: the same tests on SQLite and, when
//! `YIGONG_TEST_DATABASE_URL` is set, on PostgreSQL (each in its own schema).
#![allow(dead_code)]

use serde_json::json;
use std::sync::Arc;
use yigong_store::*;

pub struct Backend {
    pub name: &'static str,
    pub store: Arc<Store>,
    _dir: Option<tempfile::TempDir>,
    cleanup: Option<(String, String)>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some((url, schema)) = &self.cleanup
            && let Ok(mut c) =
                r2d2_postgres::postgres::Client::connect(url, r2d2_postgres::postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

pub fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vec![Backend {
        name: "sqlite",
        store: Arc::new(Store::open_sqlite_dir(dir.path()).unwrap()),
        _dir: Some(dir),
        cleanup: None,
    }];
    if let Ok(url) = std::env::var("YIGONG_TEST_DATABASE_URL") {
        let schema = format!("t_{}", uuid_like());
        let mut c = r2d2_postgres::postgres::Client::connect(&url, r2d2_postgres::postgres::NoTls)
            .expect("PostgreSQL reachable");
        c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        v.push(Backend {
            name: "postgres",
            store: Arc::new(Store::open_postgres(&scoped).unwrap()),
            _dir: None,
            cleanup: Some((url, schema)),
        });
    }
    v
}

pub fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn admin() -> Actor {
    Actor::system("tester")
}

pub fn org_doc(
    id: &str,
    name: &str,
    kind: &str,
    parent: Option<&str>,
    institution: bool,
    community: bool,
) -> Doc {
    Doc {
        rtype: "Organization".into(),
        id: id.into(),
        body: json!({ "resourceType": "Organization", "name": name }),
        org: parent.map(str::to_string),
        patient: None,
        date: None,
        index: vec![("name".into(), name.into())],
        refs: parent
            .map(|p| vec![("Organization".to_string(), p.to_string())])
            .unwrap_or_default(),
        org_node: Some(OrgNode {
            name: name.into(),
            kind: Some(kind.into()),
            tier: institution.then(|| "township".to_string()),
            parent: parent.map(str::to_string),
            is_institution: institution,
            is_community: community,
            sub_centre: false,
            lead: false,
        }),
        performer: None,
    }
}
