//! The command-line contract: `demo` on a small county, `token`, `import` of
//! Bundles and NDJSON (idempotent), `export` to NDJSON.

use std::path::Path;
use std::process::Command;
use yigong_store::{Query, Scope, Store};

fn yigong(args: &[&str], dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_yigong"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "yigong {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count(store: &Store, rtype: &str) -> i64 {
    store
        .search(
            &Query {
                count_only: true,
                ..Query::new(rtype)
            },
            &Scope::County,
        )
        .unwrap()
        .0
        .unwrap()
}

#[test]
fn demo_generates_a_small_county_then_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = yigong(
        &["demo", "--residents", "300", "--seed", "5", "--no-serve"],
        dir.path(),
    );
    assert!(out.contains("管理员登录:用户名 admin"), "{out}");
    let store = Store::open_sqlite_dir(dir.path()).unwrap();
    // 300 residents, about 8% of them registered a second time elsewhere.
    let patients = count(&store, "Patient");
    assert!((300..=360).contains(&patients), "{patients}");
    let linked = store.mpi_linked_patients("pat-0000001").unwrap();
    assert!(!linked.is_empty());
    let persons: std::collections::HashSet<String> = (1..=300)
        .filter_map(|i| store.mpi_person_of(&format!("pat-{i:07}")).unwrap())
        .map(|p| p.id)
        .collect();
    assert!(
        persons.len() >= 295,
        "the index keeps residents apart: {}",
        persons.len()
    );
    let (mut dups, mut joined) = (0, 0);
    for i in 1..=300 {
        let original = format!("pat-{i:07}");
        if let Some(d) = store.mpi_person_of(&format!("{original}-d1")).unwrap() {
            dups += 1;
            joined +=
                usize::from(store.mpi_person_of(&original).unwrap().map(|p| p.id) == Some(d.id));
        }
    }
    assert!(
        dups > 0 && joined * 10 >= dups * 8,
        "duplicates found {joined}/{dups}"
    );
    assert!(count(&store, "Encounter") > 600);
    assert_eq!(
        store
            .org_tree()
            .unwrap()
            .iter()
            .filter(|n| n.kind.as_deref() == Some("village-clinic"))
            .count(),
        251
    );
    // Care outside the county reaches it as insurance Claims, and the
    // operations centre is configured for the year of the data.
    assert!(count(&store, "Claim") > 0);
    let year: i32 = out
        .split("就诊数据截至 ")
        .nth(1)
        .and_then(|t| t.get(..4))
        .and_then(|y| y.parse().ok())
        .expect("the demo names its as-of day");
    let communities: Vec<String> = store
        .org_tree()
        .unwrap()
        .into_iter()
        .filter(|n| n.kind.as_deref() == Some("community"))
        .map(|n| n.id)
        .collect();
    assert_eq!(communities.len(), 3);
    for comm in &communities {
        let budget = store.ops_budget(comm, year).unwrap().expect("budget");
        assert_eq!(budget.input.reserve_bp, 300);
        let fund = store.ops_fund(comm, year).unwrap().expect("special funds");
        assert_eq!(
            fund.entries.len(),
            6,
            "three purposes allocated, each partly spent"
        );
        assert!(store.ops_cycle(comm, year).unwrap().is_some());
    }
    let spending = store.ops_year_spending(&communities[0], year, 12).unwrap();
    assert!(
        spending.ytd().outside.0 > 0,
        "care outside the county is charged to the package"
    );
    let claims = store
        .metric_sums(
            &yigong_store::metrics::Subject::County,
            &["claims".to_string()],
            "0000-01",
            "9999-12",
        )
        .unwrap();
    assert_eq!(claims.get("claims").copied(), Some(count(&store, "Claim")));
    let audit = store.audit_count().unwrap();
    drop(store);
    // A second run serves the same county without regenerating it.
    let again = yigong(&["demo", "--residents", "300", "--no-serve"], dir.path());
    assert!(!again.contains("正在生成"), "{again}");
    assert_eq!(
        Store::open_sqlite_dir(dir.path())
            .unwrap()
            .audit_count()
            .unwrap(),
        audit
    );
    let token = yigong(&["token", "--user", "admin"], dir.path());
    assert!(token.trim().len() >= 40);
}

#[test]
fn import_is_idempotent_and_export_round_trips() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4");
    let mut files: Vec<String> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.sort_by_key(|f| {
        (
            !(f.contains("hospital") || f.contains("practitioner")),
            f.clone(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    let out = yigong(&args, dir.path());
    assert!(out.contains("导入完成"), "{out}");
    let store = Store::open_sqlite_dir(dir.path()).unwrap();
    let before: Vec<_> = store.resource_types().unwrap();
    assert_eq!(before.iter().find(|(t, _)| t == "Patient").unwrap().1, 18);
    drop(store);
    yigong(&args, dir.path());
    assert_eq!(
        Store::open_sqlite_dir(dir.path())
            .unwrap()
            .resource_types()
            .unwrap(),
        before,
        "re-import creates no duplicates"
    );

    let export_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_yigong"))
        .args(["export", "--data-dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(export_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let observations =
        std::fs::read_to_string(export_dir.path().join("Observation.ndjson")).unwrap();
    assert_eq!(
        observations.lines().count() as i64,
        before.iter().find(|(t, _)| t == "Observation").unwrap().1
    );

    // The NDJSON export imports into a fresh database with the same counts.
    let fresh = tempfile::tempdir().unwrap();
    let mut nd: Vec<String> = std::fs::read_dir(export_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    nd.sort_by_key(|f| {
        (
            !f.ends_with("Organization.ndjson"),
            !f.ends_with("Practitioner.ndjson"),
            !f.ends_with("Patient.ndjson"),
            f.clone(),
        )
    });
    let mut args = vec!["import"];
    args.extend(nd.iter().map(String::as_str));
    yigong(&args, fresh.path());
    assert_eq!(
        Store::open_sqlite_dir(fresh.path())
            .unwrap()
            .resource_types()
            .unwrap(),
        before
    );
}
