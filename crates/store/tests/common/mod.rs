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

/// An Organization node of the test county's tree.
#[allow(clippy::too_many_arguments)]
pub fn node(
    id: &str,
    name: &str,
    kind: &str,
    tier: Option<&str>,
    parent: Option<&str>,
    institution: bool,
    community: bool,
    lead: bool,
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
            tier: tier.map(str::to_string),
            parent: parent.map(str::to_string),
            is_institution: institution,
            is_community: community,
            sub_centre: false,
            lead,
        }),
        performer: None,
    }
}

/// The test county: two communities, each with a lead hospital (the first a
/// general hospital, the second a TCM hospital), a township centre, and a
/// village clinic under the first centre.
pub fn county_nodes() -> Vec<Doc> {
    vec![
        node(
            "county",
            "测试县",
            "county",
            None,
            None,
            false,
            false,
            false,
        ),
        node(
            "com1",
            "第一医共体",
            "community",
            None,
            Some("county"),
            false,
            true,
            false,
        ),
        node(
            "com2",
            "第二医共体",
            "community",
            None,
            Some("county"),
            false,
            true,
            false,
        ),
        node(
            "h1",
            "县人民医院",
            "general-hospital",
            Some("county"),
            Some("com1"),
            true,
            false,
            true,
        ),
        node(
            "t1",
            "甲镇卫生院",
            "township-centre",
            Some("township"),
            Some("com1"),
            true,
            false,
            false,
        ),
        node(
            "v1",
            "甲村卫生室",
            "village-clinic",
            Some("village"),
            Some("t1"),
            true,
            false,
            false,
        ),
        node(
            "h2",
            "县中医医院",
            "tcm-hospital",
            Some("county"),
            Some("com2"),
            true,
            false,
            true,
        ),
        node(
            "t2",
            "乙镇卫生院",
            "township-centre",
            Some("township"),
            Some("com2"),
            true,
            false,
            false,
        ),
    ]
}
