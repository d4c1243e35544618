//! One conformance suite for both backends: SQLite always, PostgreSQL when
//! `YIGONG_TEST_DATABASE_URL` is set (each test in its own schema).

use serde_json::json;
use yigong_store::*;

mod common;
use common::*;

fn patient_doc(id: &str, name: &str, org: &str, birth: &str) -> Doc {
    Doc {
        rtype: "Patient".into(),
        id: id.into(),
        body: json!({ "resourceType": "Patient", "name": [{ "text": name }], "birthDate": birth }),
        org: Some(org.into()),
        patient: None,
        date: Some(birth.into()),
        index: vec![
            ("name".into(), name.into()),
            ("birthdate".into(), birth.into()),
            ("identifier".into(), format!("ID-{id}")),
        ],
        refs: vec![("Organization".into(), org.into())],
        org_node: None,
        performer: None,
    }
}

fn encounter_doc(id: &str, patient: &str, org: &str, date: &str) -> Doc {
    Doc {
        rtype: "Encounter".into(),
        id: id.into(),
        body: json!({ "resourceType": "Encounter", "status": "finished", "subject": { "reference": format!("Patient/{patient}") } }),
        org: Some(org.into()),
        patient: Some(patient.into()),
        date: Some(date.into()),
        index: vec![("class".into(), "AMB".into())],
        refs: vec![("Patient".into(), patient.into())],
        org_node: None,
        performer: None,
    }
}

/// County → two communities → one township centre each → one patient each.
fn seed(s: &Store) {
    let a = admin();
    for d in [
        org_doc("county", "测试县", "county", None, false, false),
        org_doc(
            "com1",
            "第一医共体",
            "community",
            Some("county"),
            false,
            true,
        ),
        org_doc(
            "com2",
            "第二医共体",
            "community",
            Some("county"),
            false,
            true,
        ),
        org_doc(
            "t1",
            "甲镇卫生院",
            "township-centre",
            Some("com1"),
            true,
            false,
        ),
        org_doc(
            "t2",
            "乙镇卫生院",
            "township-centre",
            Some("com2"),
            true,
            false,
        ),
    ] {
        s.put(&a, d, Precondition::Create, None).unwrap();
    }
    s.put(
        &a,
        patient_doc("p1", "王小明", "t1", "1980-05-03"),
        Precondition::Create,
        None,
    )
    .unwrap();
    s.put(
        &a,
        patient_doc("p2", "王晓红", "t2", "1990-01-20"),
        Precondition::Create,
        None,
    )
    .unwrap();
}

#[test]
fn create_read_update_versions_and_history() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        let r = s.read("Patient", "p1").unwrap().unwrap();
        assert_eq!(r.version, 1, "{}", b.name);
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["meta"]["versionId"], "1");
        assert_eq!(body["id"], "p1");
        assert_eq!(r.comm.as_deref(), Some("com1"));
        assert_eq!(r.pcomm.as_deref(), Some("com1"));

        let w = s
            .put(
                &admin(),
                patient_doc("p1", "王小明", "t1", "1980-05-04"),
                Precondition::IfMatch(1),
                Some("改出生日期"),
            )
            .unwrap();
        assert_eq!(w.stored.version, 2);
        assert!(!w.created);
        assert_eq!(s.vread("Patient", "p1", 1).unwrap().unwrap().version, 1);
        assert!(
            s.vread("Patient", "p1", 1)
                .unwrap()
                .unwrap()
                .body
                .contains("1980-05-03")
        );
        assert_eq!(
            s.history("Patient", "p1")
                .unwrap()
                .iter()
                .map(|h| h.version)
                .collect::<Vec<_>>(),
            vec![2, 1]
        );
        let all = s.audit_log(Some(("Patient", "p1")), 0, 10).unwrap();
        assert!(
            all.iter().any(|e| e.action == "mpi-new"),
            "{}: the index decision is audited too",
            b.name
        );
        let audit: Vec<_> = all
            .into_iter()
            .filter(|e| !e.action.starts_with("mpi-"))
            .collect();
        assert_eq!(audit.len(), 2, "{}: one audit row per write", b.name);
        assert_eq!(audit[0].action, "update");
        assert_eq!(audit[0].reason.as_deref(), Some("改出生日期"));
    }
}

#[test]
fn stale_version_is_refused_and_changes_nothing() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        s.put(
            &admin(),
            patient_doc("p1", "王小明", "t1", "1981-01-01"),
            Precondition::IfMatch(1),
            None,
        )
        .unwrap();
        let before = s.audit_count().unwrap();
        let e = s
            .put(
                &admin(),
                patient_doc("p1", "王大明", "t1", "1982-01-01"),
                Precondition::IfMatch(1),
                None,
            )
            .unwrap_err();
        assert!(
            matches!(e, StoreError::VersionConflict { current: 2 }),
            "{}: {e:?}",
            b.name
        );
        let e = s
            .put(
                &admin(),
                patient_doc("p1", "王大明", "t1", "1982-01-01"),
                Precondition::CreateOrRequireVersion,
                None,
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::VersionRequired));
        assert_eq!(s.audit_count().unwrap(), before);
        assert!(
            s.read("Patient", "p1")
                .unwrap()
                .unwrap()
                .body
                .contains("1981-01-01")
        );
    }
}

#[test]
fn concurrent_updates_with_the_same_version_lose_nothing() {
    for b in backends() {
        let s = b.store.clone();
        seed(&s);
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    s.put(
                        &admin(),
                        patient_doc("p1", &format!("王{i}"), "t1", "1980-05-03"),
                        Precondition::IfMatch(1),
                        None,
                    )
                    .is_ok()
                })
            })
            .collect();
        let ok = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|x| *x)
            .count();
        assert_eq!(ok, 1, "{}: exactly one writer wins", b.name);
        assert_eq!(s.read("Patient", "p1").unwrap().unwrap().version, 2);
        assert_eq!(s.history("Patient", "p1").unwrap().len(), 2);
    }
}

#[test]
fn transaction_is_all_or_nothing() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        let before = (s.audit_count().unwrap(), s.resource_types().unwrap());
        let docs = vec![
            (
                patient_doc("p3", "李四", "t1", "1970-01-01"),
                Precondition::Create,
            ),
            (
                encounter_doc("e1", "p3", "t1", "2026-01-05T01:00:00Z"),
                Precondition::Create,
            ),
            (
                encounter_doc("e2", "nobody", "t1", "2026-01-05T01:00:00Z"),
                Precondition::Create,
            ),
        ];
        let e = s.transaction(&admin(), docs, None).unwrap_err();
        assert!(
            matches!(e, StoreError::MissingReference(ref r) if r == "Patient/nobody"),
            "{}: {e:?}",
            b.name
        );
        assert!(s.read("Patient", "p3").unwrap().is_none());
        assert_eq!(
            (s.audit_count().unwrap(), s.resource_types().unwrap()),
            before
        );
        // And the same bundle without the bad entry commits whole.
        let docs = vec![
            (
                patient_doc("p3", "李四", "t1", "1970-01-01"),
                Precondition::Create,
            ),
            (
                encounter_doc("e1", "p3", "t1", "2026-01-05T01:00:00Z"),
                Precondition::Create,
            ),
        ];
        assert_eq!(s.transaction(&admin(), docs, None).unwrap().len(), 2);
        assert_eq!(
            s.read("Encounter", "e1").unwrap().unwrap().pcomm.as_deref(),
            Some("com1")
        );
    }
}

#[test]
fn upsert_of_identical_content_is_a_no_op() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        let before = s.audit_count().unwrap();
        let w = s
            .put(
                &admin(),
                patient_doc("p1", "王小明", "t1", "1980-05-03"),
                Precondition::Upsert,
                None,
            )
            .unwrap();
        assert!(!w.changed, "{}", b.name);
        assert_eq!(w.stored.version, 1);
        assert_eq!(s.audit_count().unwrap(), before);
        let w = s
            .put(
                &admin(),
                patient_doc("p1", "王小明", "t1", "1980-05-09"),
                Precondition::Upsert,
                None,
            )
            .unwrap();
        assert!(w.changed);
        assert_eq!(w.stored.version, 2);
    }
}

#[test]
fn search_filters_sorts_pages_and_respects_scope() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        let name = |prefix: &str| Query {
            clauses: vec![Clause::Param(
                "name".into(),
                vec![Match::Prefix(prefix.into())],
            )],
            sort: vec![Sort {
                key: SortKey::Date,
                descending: true,
            }],
            want_total: true,
            ..Query::new("Patient")
        };
        let (total, rows) = s.search(&name("王"), &Scope::County).unwrap();
        assert_eq!(total, Some(2), "{}", b.name);
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["p2", "p1"]
        );
        let (total, rows) = s
            .search(&name("王"), &Scope::Community("com1".into()))
            .unwrap();
        assert_eq!((total, rows.len()), (Some(1), 1));
        assert_eq!(rows[0].id, "p1");
        let (_, rows) = s
            .search(&name("王"), &Scope::Institution("t2".into()))
            .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["p2"]
        );
        assert_eq!(s.search(&name("王小"), &Scope::County).unwrap().1.len(), 1);
        assert_eq!(s.search(&name("李"), &Scope::County).unwrap().1.len(), 0);

        let born = Query {
            clauses: vec![Clause::Param(
                "birthdate".into(),
                vec![Match::Range(Some("1985".into()), None)],
            )],
            ..Query::new("Patient")
        };
        assert_eq!(s.search(&born, &Scope::County).unwrap().1[0].id, "p2");
        let page = Query {
            limit: 1,
            offset: 1,
            sort: vec![Sort {
                key: SortKey::Id,
                descending: false,
            }],
            ..Query::new("Patient")
        };
        assert_eq!(s.search(&page, &Scope::County).unwrap().1[0].id, "p2");
        let count = Query {
            count_only: true,
            ..Query::new("Patient")
        };
        let (total, rows) = s.search(&count, &Scope::County).unwrap();
        assert_eq!((total, rows.len()), (Some(2), 0));
        // Directory resources are visible in every scope.
        assert_eq!(
            s.search(
                &Query::new("Organization"),
                &Scope::Institution("t2".into())
            )
            .unwrap()
            .1
            .len(),
            5
        );
    }
}

#[test]
fn writes_outside_scope_are_forbidden() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        let doctor = Actor {
            user: "d1".into(),
            institution: Some("t1".into()),
            scope: Scope::Community("com1".into()),
        };
        assert!(
            s.put(
                &doctor,
                encounter_doc("e1", "p1", "t1", "2026-02-01T00:00:00Z"),
                Precondition::Create,
                None
            )
            .is_ok()
        );
        let e = s
            .put(
                &doctor,
                encounter_doc("e2", "p2", "t2", "2026-02-01T00:00:00Z"),
                Precondition::Create,
                None,
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(_)), "{}: {e:?}", b.name);
        let e = s
            .put(
                &doctor,
                org_doc(
                    "t9",
                    "丙镇卫生院",
                    "township-centre",
                    Some("com1"),
                    true,
                    false,
                ),
                Precondition::Create,
                None,
            )
            .unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(_)));
    }
}

#[test]
fn encounter_month_counters_follow_updates() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        s.put(
            &admin(),
            encounter_doc("e1", "p1", "t1", "2026-01-31T17:00:00Z"),
            Precondition::Create,
            None,
        )
        .unwrap();
        s.put(
            &admin(),
            encounter_doc("e2", "p1", "t1", "2026-01-10T01:00:00Z"),
            Precondition::Create,
            None,
        )
        .unwrap();
        let ov = s.overview(&Scope::County, "2026-02", "2025-12").unwrap();
        assert_eq!(
            ov.visits_this_month, 1,
            "{}: 17:00Z on 31 Jan is 1 Feb in China",
            b.name
        );
        s.put(
            &admin(),
            encounter_doc("e1", "p1", "t2", "2026-01-05T01:00:00Z"),
            Precondition::IfMatch(1),
            None,
        )
        .unwrap();
        let ov = s.overview(&Scope::County, "2026-02", "2025-12").unwrap();
        assert_eq!(ov.visits_this_month, 0);
        assert_eq!(ov.monthly.iter().map(|m| m.count).sum::<i64>(), 2);
        assert_eq!(ov.residents, 2);
        let ov = s
            .overview(&Scope::Community("com2".into()), "2026-01", "2025-12")
            .unwrap();
        assert_eq!(ov.visits_this_month, 1);
        assert_eq!(ov.residents, 1);
    }
}

#[test]
fn users_passwords_and_tokens() {
    for b in backends() {
        let s = &b.store;
        let u = User {
            name: "doc".into(),
            display: "张医生".into(),
            role: Role::Clinician,
            scope: Scope::Community("com1".into()),
            institution: Some("t1".into()),
        };
        assert!(s.upsert_user("admin", &u, "short").is_err());
        s.upsert_user("admin", &u, "correct horse").unwrap();
        assert_eq!(
            s.verify_password("doc", "correct horse").unwrap(),
            Some(u.clone()),
            "{}",
            b.name
        );
        assert_eq!(s.verify_password("doc", "wrong").unwrap(), None);
        assert_eq!(s.verify_password("nobody", "x").unwrap(), None);
        let t = s
            .issue_credential("doc", "token", chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(s.user_for_credential(&t).unwrap(), Some(u.clone()));
        assert_eq!(s.cached_user(&t), Some(u));
        let old = s
            .issue_credential("doc", "token", chrono::Duration::seconds(-1))
            .unwrap();
        assert_eq!(s.user_for_credential(&old).unwrap(), None);
        s.revoke_credential(&t).unwrap();
        assert_eq!(s.user_for_credential(&t).unwrap(), None);
        assert_eq!(s.user_for_credential("garbage").unwrap(), None);
    }
}

#[test]
fn access_log_is_flushed_and_queryable() {
    for b in backends() {
        let s = &b.store;
        seed(s);
        for actor in ["a", "b"] {
            s.log_access(Access {
                at: now_string(),
                actor: actor.into(),
                institution: None,
                rtype: "Patient".into(),
                rid: "p1".into(),
                patient: Some("p1".into()),
            });
        }
        let h = s.access_history("p1", 10).unwrap();
        assert_eq!(
            h.iter().map(|a| a.actor.as_str()).collect::<Vec<_>>(),
            vec!["b", "a"],
            "{}",
            b.name
        );
    }
}

/// Group commit: many writers at once; every acknowledged write is stored, every
/// failed one is rolled back alone (its batch companions survive).
#[test]
fn concurrent_writes_commit_together_and_failures_roll_back_alone() {
    for b in common::backends() {
        let store = b.store.clone();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut acked = 0;
                    for i in 0..60 {
                        let key = format!("gc-{t}-{i}");
                        let fail = i % 7 == 3;
                        let r = store.db().write(|tx| {
                            tx.exec(
                                "INSERT INTO meta (key, value) VALUES (?, 'x')",
                                &[key.as_str().into()],
                            )?;
                            if fail {
                                return Err(yigong_store::StoreError::Invalid("refused".into()));
                            }
                            Ok(())
                        });
                        assert_eq!(r.is_ok(), !fail, "{key}: {r:?}");
                        acked += r.is_ok() as i64;
                    }
                    acked
                })
            })
            .collect();
        let acked: i64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
        let stored = store
            .db()
            .read(|c| c.scalar_int("SELECT count(*) FROM meta WHERE key LIKE 'gc-%'", &[]))
            .unwrap();
        assert_eq!(stored, acked, "{}", b.name);
        assert_eq!(acked, 16 * (60 - 9), "{}", b.name);
    }
}
