//! The master patient index in the store: registration through the index,
//! concurrency, review decisions, merge and unmerge — on SQLite and PostgreSQL.

use proptest::prelude::*;
use serde_json::json;
use yigong_store::mpi::Seen;
use yigong_store::*;

mod common;
use common::*;

const ID_A: &str = "510521199001011239";
const ID_B: &str = "510521198506150029";

fn county(store: &Store) {
    let a = admin();
    store
        .put(
            &a,
            org_doc("c", "泸县卫健局", "county", None, false, false),
            Precondition::Upsert,
            None,
        )
        .unwrap();
    store
        .put(
            &a,
            org_doc("com", "第一医共体", "community", Some("c"), false, true),
            Precondition::Upsert,
            None,
        )
        .unwrap();
    for (id, name) in [("t1", "福集镇卫生院"), ("t2", "县人民医院")] {
        store
            .put(
                &a,
                org_doc(id, name, "hospital", Some("com"), true, false),
                Precondition::Upsert,
                None,
            )
            .unwrap();
    }
}

struct Reg<'a> {
    name: &'a str,
    sex: &'a str,
    birth: &'a str,
    id: Option<&'a str>,
    unverified: bool,
    phone: Option<&'a str>,
}

fn resident(pid: &str, org: &str, r: &Reg) -> Doc {
    let mut body = json!({
        "resourceType": "Patient",
        "name": [{ "text": r.name }],
        "gender": r.sex,
        "birthDate": r.birth,
        "extension": [{ "url": yigong_fhir::codes::EXT_VILLAGE, "valueCode": "510521100001" }],
    });
    if let Some(id) = r.id {
        let system = if r.unverified {
            yigong_fhir::codes::SID_RESIDENT_ID_UNVERIFIED
        } else {
            yigong_fhir::codes::SID_RESIDENT_ID
        };
        body["identifier"] = json!([{ "system": system, "value": id }]);
    }
    if let Some(p) = r.phone {
        body["telecom"] = json!([{ "system": "phone", "value": p }]);
    }
    Doc {
        rtype: "Patient".into(),
        id: pid.into(),
        body,
        org: Some(org.into()),
        patient: None,
        date: Some(r.birth.into()),
        index: vec![("name".into(), r.name.into())],
        refs: vec![("Organization".into(), org.into())],
        org_node: None,
        performer: None,
    }
}

fn register(store: &Store, actor: &Actor, doc: Doc) {
    store.put(actor, doc, Precondition::Create, None).unwrap();
}

fn wang(id: Option<&'static str>) -> Reg<'static> {
    Reg {
        name: "王晓明",
        sex: "male",
        birth: "1990-01-01",
        id,
        unverified: false,
        phone: Some("13812345678"),
    }
}

/// A second, unrelated person with her own valid ID.
fn li_juan() -> Reg<'static> {
    Reg {
        name: "李娟",
        sex: "female",
        birth: "1985-06-15",
        id: Some(ID_B),
        unverified: false,
        phone: None,
    }
}

fn person(store: &Store, patient: &str) -> String {
    store.mpi_person_of(patient).unwrap().expect("linked").id
}

fn links(store: &Store, patients: &[&str]) -> Vec<(String, String)> {
    patients
        .iter()
        .map(|p| (p.to_string(), person(store, p)))
        .collect()
}

#[test]
fn registrations_resolve_to_one_master_person() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let a = admin();
        register(s, &a, resident("p1", "t1", &wang(Some(ID_A))));
        // The county hospital's clerk types a homophone and no phone.
        let typo = Reg {
            name: "王小明",
            phone: None,
            ..wang(Some(ID_A))
        };
        register(s, &a, resident("p2", "t2", &typo));
        register(s, &a, resident("p3", "t2", &li_juan()));
        assert_eq!(person(s, "p1"), person(s, "p2"), "{}", b.name);
        assert_ne!(person(s, "p1"), person(s, "p3"), "{}", b.name);
        let p = s.mpi_person_of("p2").unwrap().unwrap();
        assert_eq!(p.golden["records"], 2);
        assert_eq!(p.golden["resident_id"], ID_A);
        assert!(yigong_store::mpi::card_is_valid(&p.card));
        assert_eq!(s.mpi_person_by_card(&p.card).unwrap().unwrap().id, p.id);
        let members = s.mpi_members(&p.id).unwrap();
        assert_eq!(members[1].method, "auto");
        assert!(members[1].explanation.is_some(), "the link is explained");
        assert_eq!(s.mpi_linked_patients("p1").unwrap(), vec!["p1", "p2"]);
        let audit = s.audit_log(None, 0, 100).unwrap();
        assert!(
            audit
                .iter()
                .any(|e| e.action == "mpi-link" && e.rid.as_deref() == Some("p2")),
            "{}",
            b.name
        );
        // $match scores without writing.
        let m = s.mpi_match(&resident("q", "t1", &wang(None)).body).unwrap();
        assert!(m.len() >= 2 && m[0].probability > 0.99, "{}: {m:?}", b.name);
        // An update refreshes the golden record, keeps the link.
        let moved = Reg {
            phone: Some("13900001111"),
            ..wang(Some(ID_A))
        };
        s.put(
            &a,
            resident("p1", "t1", &moved),
            Precondition::IfMatch(1),
            None,
        )
        .unwrap();
        assert_eq!(person(s, "p1"), p.id);
    }
}

#[test]
fn an_unverified_id_alone_never_links() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let a = admin();
        register(s, &a, resident("p1", "t1", &wang(Some(ID_A))));
        // Same digits but the check digit is wrong, and nothing else agrees.
        let stranger = Reg {
            name: "赵建国",
            sex: "male",
            birth: "1962-03-09",
            id: Some("510521199001011233"),
            unverified: true,
            phone: None,
        };
        register(s, &a, resident("p2", "t2", &stranger));
        assert_ne!(person(s, "p1"), person(s, "p2"), "{}", b.name);
        // The same bad ID with the rest agreeing links on the other evidence.
        let same = Reg {
            id: Some("510521199001011233"),
            unverified: true,
            ..wang(None)
        };
        register(s, &a, resident("p3", "t2", &same));
        assert_eq!(person(s, "p1"), person(s, "p3"), "{}", b.name);
        let p = s.mpi_person_of("p3").unwrap().unwrap();
        assert_eq!(
            p.golden["resident_id"], ID_A,
            "the verified ID wins the golden record"
        );
    }
}

#[test]
fn concurrent_registrations_of_one_person_end_as_one_master() {
    for b in backends() {
        let s = b.store.clone();
        county(&s);
        for round in 0..6 {
            let id = yigong_core::ResidentId::compose(
                "510521",
                chrono::NaiveDate::from_ymd_opt(1970 + round, 3, 4).unwrap(),
                17,
            );
            let id: &'static str = Box::leak(id.as_str().to_string().into_boxed_str());
            let birth: &'static str = Box::leak(format!("{}-03-04", 1970 + round).into_boxed_str());
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
            let handles: Vec<_> = ["t1", "t2"]
                .into_iter()
                .map(|org| {
                    let (s, barrier) = (s.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let r = Reg {
                            name: "张志强",
                            sex: "male",
                            birth,
                            id: Some(id),
                            unverified: false,
                            phone: None,
                        };
                        barrier.wait();
                        s.put(
                            &admin(),
                            resident(&format!("r{round}-{org}"), org, &r),
                            Precondition::Create,
                            None,
                        )
                        .unwrap();
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(
                person(&s, &format!("r{round}-t1")),
                person(&s, &format!("r{round}-t2")),
                "{} round {round}",
                b.name
            );
        }
    }
}

fn two_people(s: &Store) -> (String, String) {
    county(s);
    let a = admin();
    register(s, &a, resident("p1", "t1", &wang(Some(ID_A))));
    register(
        s,
        &a,
        resident(
            "p2",
            "t2",
            &Reg {
                phone: None,
                ..wang(Some(ID_A))
            },
        ),
    );
    register(s, &a, resident("p3", "t2", &li_juan()));
    (person(s, "p1"), person(s, "p3"))
}

fn seen(s: &Store, survivor: &str, merged: &str) -> Seen {
    Seen {
        survivor_version: s.mpi_person(survivor).unwrap().unwrap().version,
        merged_version: s.mpi_person(merged).unwrap().unwrap().version,
    }
}

#[test]
fn merge_rules_and_exact_unmerge() {
    for b in backends() {
        let s = &b.store;
        let (x, y) = two_people(s);
        let before = links(s, &["p1", "p2", "p3"]);
        let a = admin();
        let err = s
            .mpi_merge(&a, &x, &y, seen(s, &x, &y), None, None)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_)),
            "different valid IDs need a reason: {err:?}"
        );
        let stale = Seen {
            survivor_version: 0,
            merged_version: 0,
        };
        let err = s
            .mpi_merge(&a, &x, &y, stale, None, Some("同一人,身份证登记错误"))
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let merge = s
            .mpi_merge(
                &a,
                &x,
                &y,
                seen(s, &x, &y),
                None,
                Some("同一人,身份证登记错误"),
            )
            .unwrap();
        assert_eq!(person(s, "p3"), x);
        assert_eq!(s.mpi_person(&y).unwrap().unwrap().status, "merged");
        assert_eq!(s.mpi_members(&x).unwrap().len(), 3);
        s.mpi_unmerge(&a, merge, Some("误合并")).unwrap();
        assert_eq!(links(s, &["p1", "p2", "p3"]), before, "{}", b.name);
        assert_eq!(s.mpi_person(&y).unwrap().unwrap().status, "active");
        assert_eq!(
            s.mpi_members(&x).unwrap()[1].method,
            "auto",
            "how records were linked is restored too"
        );
        assert!(matches!(
            s.mpi_unmerge(&a, merge, None),
            Err(StoreError::Conflict(_))
        ));
        let actions: Vec<String> = s
            .audit_log(None, 0, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(
            actions.contains(&"mpi-merge".to_string())
                && actions.contains(&"mpi-unmerge".to_string())
        );
    }
}

#[test]
fn twins_without_ids_go_to_review_and_stale_decisions_are_refused() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let a = admin();
        let twin = |name: &'static str| Reg {
            name,
            sex: "female",
            birth: "2019-05-06",
            id: None,
            unverified: false,
            phone: Some("13512340000"),
        };
        register(s, &a, resident("k1", "t1", &twin("陈欣怡")));
        register(s, &a, resident("k2", "t1", &twin("陈雨涵")));
        assert_ne!(person(s, "k1"), person(s, "k2"), "{}", b.name);
        let open = s.mpi_reviews("open", 10).unwrap();
        assert_eq!(open.len(), 1, "{}: {open:?}", b.name);
        let item = &open[0];
        assert!(item.explanation["fields"].as_array().unwrap().len() == 7);
        // The record changes after scoring: the decision is stale.
        s.put(
            &a,
            resident(
                "k2",
                "t1",
                &Reg {
                    phone: None,
                    ..twin("陈雨涵")
                },
            ),
            Precondition::IfMatch(1),
            None,
        )
        .unwrap();
        assert!(matches!(
            s.mpi_distinct(&a, item.id, None),
            Err(StoreError::Conflict(_))
        ));
    }
}

#[test]
fn a_corrected_record_that_now_resembles_someone_goes_to_review() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let a = admin();
        register(s, &a, resident("p1", "t1", &wang(Some(ID_A))));
        let typo = Reg {
            name: "王明",
            birth: "1991-01-01",
            phone: None,
            ..wang(None)
        };
        register(s, &a, resident("p4", "t2", &typo));
        assert_ne!(person(s, "p1"), person(s, "p4"), "{}", b.name);
        assert!(s.mpi_reviews("open", 10).unwrap().is_empty());
        // The clerk corrects name and birth date: now it looks like p1.
        let fixed = Reg {
            phone: None,
            ..wang(None)
        };
        s.put(
            &a,
            resident("p4", "t2", &fixed),
            Precondition::IfMatch(1),
            None,
        )
        .unwrap();
        assert_ne!(
            person(s, "p1"),
            person(s, "p4"),
            "{}: never moved automatically",
            b.name
        );
        let open = s.mpi_reviews("open", 10).unwrap();
        assert_eq!(
            (open[0].a.as_str(), open[0].b.as_str()),
            ("p1", "p4"),
            "{}",
            b.name
        );
        assert_eq!(open[0].b_version, 2, "scored on the corrected record");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any sequence of merges, then undoing them newest first, restores every
    /// link exactly; at every step each record belongs to one active person.
    #[test]
    fn merge_unmerge_cycles_lose_nothing(ops in proptest::collection::vec((0usize..5, 0usize..5), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_sqlite_dir(dir.path()).unwrap();
        county(&s);
        let a = admin();
        let names = ["刘德华", "张学友", "郭富城", "黎明", "王菲"];
        let patients: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        for (i, p) in patients.iter().enumerate() {
            let birth = format!("19{}0-0{}-1{}", 5 + i, 1 + i, i);
            let r = Reg { name: names[i], sex: "male", birth: Box::leak(birth.into_boxed_str()), id: None, unverified: false, phone: None };
            register(&s, &a, resident(p, "t1", &r));
        }
        let refs: Vec<&str> = patients.iter().map(String::as_str).collect();
        let original = links(&s, &refs);
        let mut done = vec![];
        for (i, j) in ops {
            let (x, y) = (person(&s, &patients[i]), person(&s, &patients[j]));
            if x == y {
                continue;
            }
            done.push(s.mpi_merge(&a, &x, &y, seen(&s, &x, &y), None, None).unwrap());
            for p in &patients {
                let owner = s.mpi_person_of(p).unwrap().unwrap();
                prop_assert_eq!(owner.status, "active");
            }
        }
        while let Some(m) = done.pop() {
            s.mpi_unmerge(&a, m, None).unwrap();
        }
        prop_assert_eq!(links(&s, &refs), original);
    }
}
