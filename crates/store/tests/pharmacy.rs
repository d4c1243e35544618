//! The central pharmacy on both backends (SQLite always, PostgreSQL when
//! `YIGONG_TEST_DATABASE_URL` is set, each test in its own schema): FEFO,
//! expiry, split-package dispensing, shortages and low-stock alerts, the
//! requisition state machine, volume-based procurement arithmetic and the demo.
//!
//! Fixtures are built from whatever drugs the shipped formulary holds; a test
//! is skipped (with a message) only when the formulary is empty.

use chrono::{Datelike, Duration, NaiveDate};
use std::sync::Arc;
use yigong_rx::Drug;
use yigong_store::pharmacy::{DispenseLine, ExpiryStatus, Qty, ReqFilter, ReqSide, ReqState};
use yigong_store::*;

mod common;
use common::*;

/// County → two communities, each with a lead hospital (its central pharmacy),
/// a township centre and a village clinic under it.
fn county(s: &Store) {
    let a = admin();
    let mut docs = county_nodes();
    docs.extend([node(
        "v2",
        "乙村卫生室",
        "village-clinic",
        Some("village"),
        Some("t2"),
        true,
        false,
        false,
    )]);
    for d in docs {
        s.put(&a, d, Precondition::Create, None).unwrap();
    }
}

fn at_inst(user: &str, inst: &str) -> Actor {
    Actor {
        user: user.into(),
        institution: Some(inst.into()),
        scope: Scope::Institution(inst.into()),
    }
}

fn today() -> NaiveDate {
    (chrono::Utc::now() + Duration::hours(8)).date_naive()
}

/// Noon local time `days` from today, as stored.
fn at_day(days: i64) -> String {
    let d = today() + Duration::days(days);
    (d.and_hms_opt(4, 0, 0).unwrap().and_utc()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn drugs(s: &Store) -> Vec<Drug> {
    s.rx_state().knowledge.drugs.clone()
}

/// A splittable drug sold in packages of several units.
fn splittable(s: &Store) -> Option<Drug> {
    let all = drugs(s);
    if all.is_empty() {
        eprintln!("SKIPPED: the formulary is empty");
        return None;
    }
    Some(
        all.into_iter()
            .find(|d| d.splittable && d.package >= 4 && d.restriction.is_none())
            .expect("a splittable drug with packages of 4 or more units"),
    )
}

fn line(d: &Drug, units: i64) -> Vec<DispenseLine> {
    vec![DispenseLine {
        drug: d.code.clone(),
        units,
    }]
}

fn p(d: &Drug) -> i64 {
    d.package as i64
}

/// Every batch's quantity equals the sum of its ledger movements.
fn assert_ledger_balances(s: &Store, name: &str) {
    let rows = s
        .db()
        .read(|c| {
            c.query(
                "SELECT b.id, b.qty, COALESCE((SELECT SUM(l.units) FROM ph_ledger l WHERE l.batch = b.id), 0) FROM ph_batch b",
                &[],
            )
        })
        .unwrap();
    for r in rows {
        assert_eq!(
            r[1], r[2],
            "{name}: batch {:?} does not balance with its ledger",
            r[0]
        );
    }
}

fn ledger_kinds(s: &Store, inst: &str, drug: &str) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = s
        .pharmacy_movements(&Scope::County, inst, Some(drug), 1000)
        .unwrap()
        .into_iter()
        .map(|m| (m.kind, m.units))
        .collect();
    v.reverse();
    v
}

fn fingerprint(s: &Store, inst: &str) -> (i64, String) {
    let stock = s
        .pharmacy_stock(&Scope::County, inst, None, today())
        .unwrap();
    (s.audit_count().unwrap(), format!("{stock:?}"))
}

#[test]
fn fefo_takes_the_first_expiry_and_never_an_expired_batch() {
    for b in backends() {
        let s = &b.store;
        let Some(d) = splittable(s) else { return };
        county(s);
        let ph = at_inst("h1ph", "h1");
        let t = today();
        // Received out of expiry order: B (200 days), A (10 days), C (100 days).
        let bb = s
            .pharmacy_receive(
                &ph,
                "h1",
                &d.code,
                "LOT-B",
                t + Duration::days(200),
                Qty::Packages(2),
                20,
                Some("集中采购到货"),
            )
            .unwrap();
        let ba = s
            .pharmacy_receive(
                &ph,
                "h1",
                &d.code,
                "LOT-A",
                t + Duration::days(10),
                Qty::Packages(1),
                10,
                None,
            )
            .unwrap();
        let bc = s
            .pharmacy_receive(
                &ph,
                "h1",
                &d.code,
                "LOT-C",
                t + Duration::days(100),
                Qty::Units(p(&d)),
                15,
                None,
            )
            .unwrap();
        // One package and one unit more: all of A, then one unit of C (a package broken).
        let fen = s
            .pharmacy_dispense(&ph, "h1", "rx-1", &line(&d, p(&d) + 1))
            .unwrap();
        assert_eq!(fen, p(&d) * 10 + 15, "{}", b.name);
        let stock = s
            .pharmacy_stock(&Scope::County, "h1", Some(&d.code), t)
            .unwrap();
        assert_eq!(stock.len(), 1);
        let l = &stock[0];
        let by_id = |id: i64| l.batches.iter().find(|x| x.id == id).cloned();
        assert!(by_id(ba).is_none(), "A is used up");
        let c = by_id(bc).unwrap();
        assert_eq!((c.qty, c.open_units), (p(&d) - 1, p(&d) - 1));
        assert_eq!(by_id(bb).unwrap().qty, 2 * p(&d));
        assert_eq!(l.usable, 3 * p(&d) - 1);
        assert_eq!((l.open_packages, l.open_units), (1, p(&d) - 1));
        assert_eq!(c.status, ExpiryStatus::Ok);
        let kinds = ledger_kinds(s, "h1", &d.code);
        assert_eq!(
            kinds[3..].to_vec(),
            vec![
                ("dispense".to_string(), -p(&d)),
                ("split-open".to_string(), 0),
                ("dispense".to_string(), -1)
            ],
            "{}",
            b.name
        );

        // 150 days on, C (100 days) has expired: it is shown for write-off and
        // never dispensed; B is near expiry and is what is dispensed.
        let later = t + Duration::days(150);
        let stock = s
            .pharmacy_stock(&Scope::County, "h1", Some(&d.code), later)
            .unwrap();
        let l = &stock[0];
        let c = l.batches.iter().find(|x| x.id == bc).unwrap();
        assert_eq!(c.status, ExpiryStatus::Expired);
        assert_eq!(
            l.batches.iter().find(|x| x.id == bb).unwrap().status,
            ExpiryStatus::Near
        );
        assert_eq!(
            (l.usable, l.expired, l.near),
            (2 * p(&d), p(&d) - 1, 2 * p(&d))
        );
        assert_eq!(
            s.pharmacy_available("h1", &d.code, later).unwrap(),
            2 * p(&d)
        );
        // Asking for more than the unexpired stock: refused, nothing changed.
        let before = fingerprint(s, "h1");
        let err = s
            .pharmacy_dispense_at(&ph, &at_day(150), "h1", "rx-2", &line(&d, 2 * p(&d) + 1))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "库存不足:{} 需要 {}{},可用 {}{}",
                d.name,
                2 * p(&d) + 1,
                d.unit,
                2 * p(&d),
                d.unit
            ),
            "{}",
            b.name
        );
        assert!(matches!(err, StoreError::Conflict(_)));
        assert_eq!(
            fingerprint(s, "h1"),
            before,
            "{}: a refused dispense changes nothing",
            b.name
        );
        let fen = s
            .pharmacy_dispense_at(&ph, &at_day(150), "h1", "rx-3", &line(&d, 2))
            .unwrap();
        assert_eq!(fen, 40);
        let stock = s
            .pharmacy_stock(&Scope::County, "h1", Some(&d.code), t)
            .unwrap();
        let c = stock[0].batches.iter().find(|x| x.id == bc).unwrap();
        assert_eq!(
            c.qty,
            p(&d) - 1,
            "{}: the expired batch was not touched",
            b.name
        );

        // Receiving an already expired batch, or a known batch number with another expiry, is refused.
        let err = s
            .pharmacy_receive(
                &ph,
                "h1",
                &d.code,
                "LOT-X",
                t - Duration::days(1),
                Qty::Packages(1),
                10,
                None,
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("已于") && err.to_string().contains("过期"),
            "{err}"
        );
        let err = s
            .pharmacy_receive(
                &ph,
                "h1",
                &d.code,
                "LOT-B",
                t + Duration::days(300),
                Qty::Packages(1),
                20,
                None,
            )
            .unwrap_err();
        assert!(err.to_string().contains("LOT-B"), "{err}");
        // Only a central pharmacy receives; only its own staff.
        let err = s
            .pharmacy_receive(
                &at_inst("tph", "t1"),
                "t1",
                &d.code,
                "L1",
                t + Duration::days(300),
                Qty::Packages(1),
                10,
                None,
            )
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_)) && err.to_string().contains("中心药房"),
            "{err}"
        );
        let err = s
            .pharmacy_receive(
                &at_inst("tph", "t1"),
                "h1",
                &d.code,
                "L1",
                t + Duration::days(300),
                Qty::Packages(1),
                10,
                None,
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        // An unexpired batch cannot be written off.
        let c = s
            .pharmacy_stock(&Scope::County, "h1", Some(&d.code), t)
            .unwrap()[0]
            .batches
            .iter()
            .find(|x| x.id == bc)
            .cloned()
            .unwrap();
        let err = s.pharmacy_write_off(&ph, bc, c.version, None).unwrap_err();
        assert!(err.to_string().contains("尚未过期"), "{err}");
        // Stocktaking: a stale version is refused, the right one books the difference.
        let err = s
            .pharmacy_adjust(&ph, bc, c.version - 1, 1, "盘点短少")
            .unwrap_err();
        assert!(matches!(err, StoreError::VersionConflict { .. }), "{err}");
        let err = s.pharmacy_adjust(&ph, bc, c.version, 1, " ").unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        s.pharmacy_adjust(&ph, bc, c.version, 1, "盘点短少")
            .unwrap();
        assert_ledger_balances(s, b.name);
        let audit = s
            .audit_log(Some(("MedicationDispense", "rx-1")), 0, 10)
            .unwrap();
        assert_eq!(audit.len(), 1, "{}: the dispense is audited", b.name);
    }
}

#[test]
fn split_package_dispensing_and_whole_package_drugs() {
    for b in backends() {
        let s = &b.store;
        let Some(d) = splittable(s) else { return };
        county(s);
        let ph = at_inst("h1ph", "h1");
        let t = today();
        s.pharmacy_receive(
            &ph,
            "h1",
            &d.code,
            "S1",
            t + Duration::days(400),
            Qty::Packages(2),
            7,
            None,
        )
        .unwrap();
        let split_rows = |s: &Store| {
            ledger_kinds(s, "h1", &d.code)
                .iter()
                .filter(|(k, _)| k == "split-open")
                .count()
        };
        // One unit breaks a package …
        s.pharmacy_dispense(&ph, "h1", "rx-a", &line(&d, 1))
            .unwrap();
        assert_eq!(split_rows(s), 1);
        let l = &s.pharmacy_stock(&Scope::County, "h1", None, t).unwrap()[0];
        assert_eq!(
            (l.usable, l.open_packages, l.open_units),
            (2 * p(&d) - 1, 1, p(&d) - 1)
        );
        // … the rest of the open package breaks none …
        s.pharmacy_dispense(&ph, "h1", "rx-b", &line(&d, p(&d) - 1))
            .unwrap();
        assert_eq!(split_rows(s), 1, "{}", b.name);
        let l = &s.pharmacy_stock(&Scope::County, "h1", None, t).unwrap()[0];
        assert_eq!((l.usable, l.open_packages), (p(&d), 0));
        // … and two lines of the same drug adding up to a whole package break none either.
        let two = vec![
            DispenseLine {
                drug: d.code.clone(),
                units: 1,
            },
            DispenseLine {
                drug: d.code.clone(),
                units: p(&d) - 1,
            },
        ];
        assert_eq!(
            s.pharmacy_dispense(&ph, "h1", "rx-c", &two).unwrap(),
            p(&d) * 7
        );
        assert_eq!(split_rows(s), 1, "{}: a whole package is not split", b.name);
        assert_eq!(s.pharmacy_available("h1", &d.code, t).unwrap(), 0);

        // Bad lines change nothing.
        let before = fingerprint(s, "h1");
        for bad in [
            vec![],
            line(&d, 0),
            line(&d, -3),
            vec![DispenseLine {
                drug: "NO-SUCH".into(),
                units: 1,
            }],
        ] {
            let err = s.pharmacy_dispense(&ph, "h1", "rx-bad", &bad).unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        }
        // Another institution's staff may not dispense here.
        let err = s
            .pharmacy_dispense(&at_inst("tph", "t1"), "h1", "rx-x", &line(&d, 1))
            .unwrap_err();
        assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        assert_eq!(fingerprint(s, "h1"), before);

        // A drug that may not be split is dispensed in whole packages only.
        if let Some(w) = drugs(s)
            .into_iter()
            .find(|x| !x.splittable && x.package >= 2)
        {
            s.pharmacy_receive(
                &ph,
                "h1",
                &w.code,
                "W1",
                t + Duration::days(400),
                Qty::Packages(3),
                100,
                None,
            )
            .unwrap();
            let err = s
                .pharmacy_receive(
                    &ph,
                    "h1",
                    &w.code,
                    "W2",
                    t + Duration::days(400),
                    Qty::Units(1),
                    100,
                    None,
                )
                .unwrap_err();
            assert!(err.to_string().contains("不可拆零"), "{err}");
            let before = fingerprint(s, "h1");
            let err = s
                .pharmacy_dispense(&ph, "h1", "rx-w", &line(&w, 1))
                .unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)));
            assert!(
                err.to_string().contains("该药品不可拆零,请按整包装(")
                    && err.to_string().contains("开具"),
                "{err}"
            );
            assert_eq!(fingerprint(s, "h1"), before);
            assert_eq!(
                s.pharmacy_dispense(&ph, "h1", "rx-w", &line(&w, 2 * p(&w)))
                    .unwrap(),
                200 * p(&w)
            );
            let kinds = ledger_kinds(s, "h1", &w.code);
            assert!(!kinds.iter().any(|(k, _)| k == "split-open"), "{kinds:?}");
        }
        assert_ledger_balances(s, b.name);
    }
}

#[test]
fn low_stock_and_registered_shortages_alert_the_central_pharmacy() {
    for b in backends() {
        let s = &b.store;
        let Some(d) = splittable(s) else { return };
        county(s);
        let ph = at_inst("h1ph", "h1");
        let tph = at_inst("tph", "t1");
        let t = today();
        s.pharmacy_receive(
            &ph,
            "h1",
            &d.code,
            "M1",
            t + Duration::days(400),
            Qty::Packages(3),
            5,
            None,
        )
        .unwrap();
        // The central pharmacy sets a minimum at its own shelf; a dispense below it raises one alert.
        s.pharmacy_set_min_stock(&ph, "h1", &d.code, Some(2 * p(&d)))
            .unwrap();
        s.pharmacy_dispense(&ph, "h1", "rx-1", &line(&d, p(&d)))
            .unwrap();
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("h1"))
                .unwrap(),
            0
        );
        s.pharmacy_dispense(&ph, "h1", "rx-2", &line(&d, 1))
            .unwrap();
        s.pharmacy_dispense(&ph, "h1", "rx-3", &line(&d, 1))
            .unwrap();
        let open = s
            .pharmacy_shortages(&Scope::County, Some("h1"), true, 50)
            .unwrap();
        assert_eq!(open.len(), 1, "{}: one alert, not one per dispense", b.name);
        assert_eq!(
            (open[0].source.as_str(), open[0].inst.as_str()),
            ("low-stock", "h1")
        );
        assert!(
            open[0].note.as_deref().unwrap().contains("低于下限"),
            "{:?}",
            open[0].note
        );
        let stock = s.pharmacy_stock(&Scope::County, "h1", None, t).unwrap();
        assert!(stock[0].low && stock[0].min == Some(2 * p(&d)));
        // Receiving stock resolves it.
        s.pharmacy_receive(
            &ph,
            "h1",
            &d.code,
            "M2",
            t + Duration::days(500),
            Qty::Packages(2),
            5,
            None,
        )
        .unwrap();
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("h1"))
                .unwrap(),
            0
        );

        // A township centre registers a missing drug: it sees it, so do its
        // central pharmacy and the community; the other community does not.
        let sh = s
            .pharmacy_report_shortage(&tph, "t1", &d.code, Some("慢病患者需要"))
            .unwrap();
        assert_eq!((sh.source.as_str(), sh.version), ("manual", 1));
        let err = s
            .pharmacy_report_shortage(&tph, "t1", &d.code, None)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(_)) && err.to_string().contains("未处理"),
            "{err}"
        );
        let err = s
            .pharmacy_report_shortage(&tph, "v1", &d.code, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        let err = s
            .pharmacy_report_shortage(&tph, "t1", "NO-SUCH", None)
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("t1"))
                .unwrap(),
            1
        );
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("h1"))
                .unwrap(),
            1
        );
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::Institution("h1".into()), None)
                .unwrap(),
            1
        );
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::Community("com1".into()), None)
                .unwrap(),
            1
        );
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::Community("com2".into()), None)
                .unwrap(),
            0
        );
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("h2"))
                .unwrap(),
            0
        );
        assert!(matches!(
            s.pharmacy_open_shortage_count(&Scope::Community("com2".into()), Some("t1")),
            Err(StoreError::Forbidden(_))
        ));

        // A requisition delivered to the township resolves its shortage; stock
        // then falling below the township's minimum raises a new alert there.
        let r = s
            .pharmacy_request(&tph, "t1", &line(&d, 2 * p(&d)), Some("补充库存"))
            .unwrap();
        let r = s.pharmacy_approve(&ph, r.id, r.version, &[], None).unwrap();
        let r = s.pharmacy_ship(&ph, r.id, r.version).unwrap();
        s.pharmacy_confirm_receipt(&tph, r.id, r.version).unwrap();
        let all = s
            .pharmacy_shortages(&Scope::County, Some("t1"), false, 50)
            .unwrap();
        assert_eq!(all.len(), 1);
        assert!(
            all[0]
                .resolution
                .as_deref()
                .unwrap()
                .contains(&format!("请领单#{}", r.id)),
            "{:?}",
            all[0]
        );
        s.pharmacy_set_min_stock(&ph, "t1", &d.code, Some(p(&d) + 1))
            .unwrap();
        let err = s
            .pharmacy_set_min_stock(&at_inst("x", "t2"), "t1", &d.code, Some(1))
            .unwrap_err();
        assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        s.pharmacy_dispense(&tph, "t1", "rx-t1", &line(&d, p(&d)))
            .unwrap();
        // The central pharmacy sees both: the township's, and its own raised
        // when the shipment took it below its minimum.
        let open = s
            .pharmacy_shortages(&Scope::County, Some("h1"), true, 50)
            .unwrap();
        let mut who: Vec<(&str, &str)> = open
            .iter()
            .map(|x| (x.inst.as_str(), x.source.as_str()))
            .collect();
        who.sort();
        assert_eq!(
            who,
            vec![("h1", "low-stock"), ("t1", "low-stock")],
            "{}",
            b.name
        );
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("t1"))
                .unwrap(),
            1
        );

        // Resolving: version-checked, needs a note, once only; the central pharmacy may do it.
        let sh = open.iter().find(|x| x.inst == "t1").unwrap();
        let err = s
            .pharmacy_resolve_shortage(&ph, sh.id, sh.version + 1, "已配送")
            .unwrap_err();
        assert!(
            matches!(err, StoreError::VersionConflict { current } if current == sh.version),
            "{err}"
        );
        let err = s
            .pharmacy_resolve_shortage(&ph, sh.id, sh.version, "  ")
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let err = s
            .pharmacy_resolve_shortage(&at_inst("x", "h2"), sh.id, sh.version, "已配送")
            .unwrap_err();
        assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        let done = s
            .pharmacy_resolve_shortage(&ph, sh.id, sh.version, "已安排配送")
            .unwrap();
        assert_eq!(
            (done.resolution.as_deref(), done.version),
            (Some("已安排配送"), sh.version + 1)
        );
        let err = s
            .pharmacy_resolve_shortage(&ph, sh.id, done.version, "再次")
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("t1"))
                .unwrap(),
            0
        );
        assert_eq!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("h1"))
                .unwrap(),
            1
        );
        assert_ledger_balances(s, b.name);
    }
}

#[test]
fn requisition_state_machine() {
    for b in backends() {
        let s = &b.store;
        let Some(d) = splittable(s) else { return };
        let all = drugs(s);
        let e = all
            .iter()
            .find(|x| x.splittable && x.code != d.code && x.restriction.is_none())
            .cloned()
            .unwrap();
        county(s);
        let ph = at_inst("h1ph", "h1");
        let tph = at_inst("tph", "t1");
        let vdoc = at_inst("vdoc", "v1");
        let t = today();
        // Two batches of d at the centre: the earlier expiry must leave first.
        s.pharmacy_receive(
            &ph,
            "h1",
            &d.code,
            "EARLY",
            t + Duration::days(120),
            Qty::Packages(1),
            30,
            None,
        )
        .unwrap();
        s.pharmacy_receive(
            &ph,
            "h1",
            &d.code,
            "LATE",
            t + Duration::days(600),
            Qty::Packages(5),
            32,
            None,
        )
        .unwrap();
        s.pharmacy_receive(
            &ph,
            "h1",
            &e.code,
            "E1",
            t + Duration::days(300),
            Qty::Packages(4),
            11,
            None,
        )
        .unwrap();

        // Who may request, and what.
        let lines = vec![
            DispenseLine {
                drug: d.code.clone(),
                units: 2 * p(&d),
            },
            DispenseLine {
                drug: e.code.clone(),
                units: 3,
            },
        ];
        for (actor, inst, want) in [
            (&ph, "h1", "不是基层机构"),
            (&tph, "v1", "只有"),
            (&vdoc, "t1", "只有"),
        ] {
            let err = s.pharmacy_request(actor, inst, &lines, None).unwrap_err();
            assert!(err.to_string().contains(want), "{inst}: {err}");
        }
        let err = s
            .pharmacy_request(
                &tph,
                "t1",
                &[DispenseLine {
                    drug: d.code.clone(),
                    units: 0,
                }],
                None,
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let dup = vec![lines[0].clone(), lines[0].clone()];
        assert!(
            s.pharmacy_request(&tph, "t1", &dup, None)
                .unwrap_err()
                .to_string()
                .contains("合并")
        );
        assert!(s.pharmacy_request(&tph, "t1", &[], None).is_err());

        let r = s
            .pharmacy_request(&tph, "t1", &lines, Some("月度请领"))
            .unwrap();
        assert_eq!(
            (r.state, r.version, r.central.as_str(), r.comm.as_str()),
            (ReqState::Requested, 1, "h1", "com1")
        );
        assert_eq!(r.lines.len(), 2);
        // The wrong side: the requester cannot approve, a village doctor cannot either.
        for a in [&tph, &vdoc, &at_inst("x", "h2")] {
            let err = s.pharmacy_approve(a, r.id, 1, &[], None).unwrap_err();
            assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        }
        // Illegal steps name both states; a stale version is 412 before anything else.
        let err = s.pharmacy_ship(&ph, r.id, 1).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(
            err.to_string().contains("待审批") && err.to_string().contains("已发货"),
            "{err}"
        );
        let err = s.pharmacy_confirm_receipt(&tph, r.id, 1).unwrap_err();
        assert!(
            err.to_string().contains("待审批") && err.to_string().contains("已收货"),
            "{err}"
        );
        let err = s.pharmacy_approve(&ph, r.id, 7, &[], None).unwrap_err();
        assert!(
            matches!(err, StoreError::VersionConflict { current: 1 }),
            "{err}"
        );
        // Approving more than requested, or nothing at all, is refused.
        let err = s
            .pharmacy_approve(&ph, r.id, 1, &[(1, 3 * p(&d))], None)
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let err = s
            .pharmacy_approve(&ph, r.id, 1, &[(1, 0), (2, 0)], None)
            .unwrap_err();
        assert!(err.to_string().contains("驳回"), "{err}");
        let err = s
            .pharmacy_approve(&ph, r.id, 1, &[(9, 1)], None)
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert_eq!(
            s.pharmacy_requisition(&Scope::County, r.id)
                .unwrap()
                .unwrap()
                .version,
            1
        );

        // Approved with fewer units of d: one package and a half.
        let half = p(&d) + p(&d) / 2;
        let r = s
            .pharmacy_approve(&ph, r.id, 1, &[(1, half)], Some("按库存核减"))
            .unwrap();
        assert_eq!((r.state, r.version), (ReqState::Approved, 2));
        assert_eq!(r.lines[0].approved, Some(half));
        assert_eq!(r.lines[1].approved, Some(3));
        let err = s.pharmacy_approve(&ph, r.id, 2, &[], None).unwrap_err();
        assert!(
            err.to_string().contains("已批准") && err.to_string().contains("不能批准"),
            "{err}"
        );
        let err = s.pharmacy_reject(&ph, r.id, 2, "晚了").unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        // The village doctor (or the requester) cannot ship from the central pharmacy.
        for a in [&vdoc, &tph] {
            let err = s.pharmacy_ship(a, r.id, 2).unwrap_err();
            assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        }
        let r = s.pharmacy_ship(&ph, r.id, 2).unwrap();
        assert_eq!((r.state, r.version), (ReqState::Shipped, 3));
        // FEFO: all of EARLY (one package) then half a package of LATE.
        let moved: Vec<(String, i64)> = r
            .shipments
            .iter()
            .filter(|x| x.drug == d.code)
            .map(|x| (x.lot.clone(), x.units))
            .collect();
        assert_eq!(
            moved,
            vec![
                ("EARLY".to_string(), p(&d)),
                ("LATE".to_string(), p(&d) / 2)
            ],
            "{}",
            b.name
        );
        assert_eq!(
            r.shipped_value_fen(),
            p(&d) * 30 + (p(&d) / 2) * 32 + 3 * 11
        );
        assert_eq!(
            s.pharmacy_available("h1", &d.code, t).unwrap(),
            6 * p(&d) - half
        );
        // In transit: not yet at the township.
        assert_eq!(s.pharmacy_available("t1", &d.code, t).unwrap(), 0);
        let err = s.pharmacy_confirm_receipt(&ph, r.id, 3).unwrap_err();
        assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        let err = s.pharmacy_confirm_receipt(&tph, r.id, 2).unwrap_err();
        assert!(
            matches!(err, StoreError::VersionConflict { current: 3 }),
            "{err}"
        );
        let r = s.pharmacy_confirm_receipt(&tph, r.id, 3).unwrap();
        assert_eq!((r.state, r.version), (ReqState::Received, 4));
        assert_eq!(s.pharmacy_available("t1", &d.code, t).unwrap(), half);
        assert_eq!(s.pharmacy_available("t1", &e.code, t).unwrap(), 3);
        let stock = s
            .pharmacy_stock(&Scope::County, "t1", Some(&d.code), t)
            .unwrap();
        let lots: Vec<(&str, &str, i64)> = stock[0]
            .batches
            .iter()
            .map(|x| (x.lot.as_str(), x.expiry.as_str(), x.unit_cost_fen))
            .collect();
        let early = (t + Duration::days(120)).format("%Y-%m-%d").to_string();
        let late = (t + Duration::days(600)).format("%Y-%m-%d").to_string();
        assert_eq!(
            lots,
            vec![("EARLY", early.as_str(), 30), ("LATE", late.as_str(), 32)]
        );
        let err = s.pharmacy_confirm_receipt(&tph, r.id, 4).unwrap_err();
        assert!(err.to_string().contains("已收货"), "{err}");
        let kinds = ledger_kinds(s, "h1", &d.code);
        assert!(
            kinds.contains(&("transfer-out".to_string(), -p(&d))),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("split-open".to_string(), 0)),
            "half a package was split: {kinds:?}"
        );
        let audit = s
            .audit_log(Some(("Requisition", &r.id.to_string())), 0, 20)
            .unwrap();
        let actions: Vec<&str> = audit.iter().rev().map(|a| a.action.as_str()).collect();
        assert_eq!(
            actions,
            vec![
                "pharmacy-request",
                "pharmacy-approve",
                "pharmacy-ship",
                "pharmacy-receive-transfer"
            ]
        );

        // Rejected: needs a reason, then is final.
        let r2 = s
            .pharmacy_request(&at_inst("vdoc", "v1"), "v1", &line(&e, 2), None)
            .unwrap();
        assert_eq!(r2.central, "h1");
        let err = s.pharmacy_reject(&ph, r2.id, 1, "").unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        let r2 = s.pharmacy_reject(&ph, r2.id, 1, "本月已超量").unwrap();
        assert_eq!(
            (r2.state, r2.reason.as_deref()),
            (ReqState::Rejected, Some("本月已超量"))
        );
        let err = s.pharmacy_approve(&ph, r2.id, 2, &[], None).unwrap_err();
        assert!(
            err.to_string().contains("已驳回") && err.to_string().contains("已批准"),
            "{err}"
        );

        // Shipping more than the centre holds fails whole and changes nothing.
        let r3 = s
            .pharmacy_request(&tph, "t1", &line(&e, 4 * p(&e)), None)
            .unwrap();
        let r3 = s.pharmacy_approve(&ph, r3.id, 1, &[], None).unwrap();
        let before = (
            fingerprint(s, "h1"),
            s.pharmacy_requisition(&Scope::County, r3.id).unwrap(),
        );
        let err = s.pharmacy_ship(&ph, r3.id, 2).unwrap_err();
        assert!(err.to_string().starts_with("库存不足:"), "{err}");
        assert_eq!(
            (
                fingerprint(s, "h1"),
                s.pharmacy_requisition(&Scope::County, r3.id).unwrap()
            ),
            before
        );

        // Scope of the lists: each side sees its own, the other community nothing.
        let f = |inst: Option<&str>, side| ReqFilter {
            inst: inst.map(str::to_string),
            side,
            state: None,
            limit: 50,
        };
        assert_eq!(
            s.pharmacy_requisitions(&Scope::County, &f(Some("h1"), ReqSide::Central))
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.pharmacy_requisitions(&Scope::County, &f(Some("t1"), ReqSide::Requester))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            s.pharmacy_requisitions(&Scope::Institution("v1".into()), &f(None, ReqSide::Either))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            s.pharmacy_requisitions(&Scope::Community("com2".into()), &f(None, ReqSide::Either))
                .unwrap()
                .len(),
            0
        );
        let open = ReqFilter {
            state: Some(ReqState::Approved),
            ..f(Some("h1"), ReqSide::Central)
        };
        assert_eq!(
            s.pharmacy_requisitions(&Scope::County, &open)
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            s.pharmacy_requisition(&Scope::Institution("t2".into()), r.id),
            Err(StoreError::Forbidden(_))
        ));
        assert!(
            s.pharmacy_requisition(&Scope::County, 999_999)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            s.pharmacy_ship(&ph, 999_999, 1),
            Err(StoreError::NotFound(_))
        ));
        let counts = s
            .pharmacy_requisition_counts("h1", ReqSide::Central)
            .unwrap();
        assert_eq!(counts, vec![(ReqState::Approved, 1)]);
        assert_ledger_balances(s, b.name);
    }
}

#[test]
fn concurrent_dispenses_never_oversell() {
    for b in backends() {
        let s = b.store.clone();
        let Some(d) = splittable(&s) else { return };
        county(&s);
        let ph = at_inst("h1ph", "h1");
        let t = today();
        s.pharmacy_receive(
            &ph,
            "h1",
            &d.code,
            "C1",
            t + Duration::days(100),
            Qty::Packages(3),
            9,
            None,
        )
        .unwrap();
        s.pharmacy_receive(
            &ph,
            "h1",
            &d.code,
            "C2",
            t + Duration::days(200),
            Qty::Packages(2),
            9,
            None,
        )
        .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let s: Arc<Store> = s.clone();
                let ph = ph.clone();
                let code = d.code.clone();
                let n = p(&d);
                std::thread::spawn(move || {
                    s.pharmacy_dispense(
                        &ph,
                        "h1",
                        &format!("rx-{i}"),
                        &[DispenseLine {
                            drug: code,
                            units: n,
                        }],
                    )
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 5, "{}: {results:?}", b.name);
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                r.to_string().contains("库存不足") || r.to_string().contains("重试"),
                "{r}"
            );
        }
        assert_eq!(s.pharmacy_available("h1", &d.code, t).unwrap(), 0);
        assert_ledger_balances(&s, b.name);
    }
}

#[test]
fn vbp_progress_arithmetic() {
    for b in backends() {
        let s = &b.store;
        let all = drugs(s);
        if all.is_empty() {
            eprintln!("SKIPPED: the formulary is empty");
            return;
        }
        let v = all
            .iter()
            .find(|d| d.vbp.is_some() && d.splittable && d.restriction.is_none())
            .cloned()
            .expect("a splittable VBP drug");
        let plain = all.iter().find(|d| d.vbp.is_none()).cloned().unwrap();
        county(s);
        let ph = at_inst("h1ph", "h1");
        let t = today();
        s.pharmacy_receive(
            &ph,
            "h1",
            &v.code,
            "V1",
            t + Duration::days(400),
            Qty::Packages(20),
            3,
            None,
        )
        .unwrap();
        let used = 10 * p(&v);
        s.pharmacy_dispense(&ph, "h1", "rx-v", &line(&v, used))
            .unwrap();
        let year_days = if NaiveDate::from_ymd_opt(t.year(), 2, 29).is_some() {
            366
        } else {
            365
        };
        let elapsed = t.ordinal() as i64;

        // Without a stored volume the community takes the formulary's (if any).
        let row = |owner: &str| {
            let g = s.pharmacy_vbp_progress(&Scope::County, owner, t).unwrap();
            assert_eq!((g.elapsed_days, g.year_days), (elapsed, year_days));
            g.rows.into_iter().find(|r| r.drug == v.code).unwrap()
        };
        let r = row("com1");
        assert_eq!(r.used, used);
        let default = v.vbp.as_ref().unwrap().agreed_volume;
        assert_eq!(r.target, (default > 0).then_some(default));

        // The central pharmacy sets the community's volume: exactly what was used.
        s.pharmacy_set_vbp_volume(&ph, "com1", &v.code, Some(used))
            .unwrap();
        let r = row("com1");
        assert_eq!((r.target, r.target_source), (Some(used), "set"));
        assert_eq!(r.percent, Some(100.0));
        assert_eq!(r.expected, Some(used * elapsed / year_days));
        assert_eq!(r.on_track, Some(true));
        // A thousand times as much: behind the pace of the year (0.1%).
        s.pharmacy_set_vbp_volume(
            &Actor::system("yunying"),
            "com1",
            &v.code,
            Some(1000 * used),
        )
        .unwrap();
        let r = row("com1");
        assert_eq!(r.percent, Some(0.1));
        assert_eq!(r.expected, Some(1000 * used * elapsed / year_days));
        assert_eq!(r.on_track, Some(used * year_days >= 1000 * used * elapsed));
        // The other community used none of it.
        let g = s.pharmacy_vbp_progress(&Scope::County, "com2", t).unwrap();
        assert_eq!(g.rows.iter().find(|r| r.drug == v.code).unwrap().used, 0);
        // Per institution: what it dispensed, against its allocation if one is set.
        let r = row("h1");
        assert_eq!((r.used, r.target, r.on_track), (used, None, None));
        s.pharmacy_set_vbp_volume(&ph, "h1", &v.code, Some(4 * used))
            .unwrap();
        let r = row("h1");
        assert_eq!(
            (r.percent, r.on_track),
            (Some(25.0), Some(used * year_days >= 4 * used * elapsed))
        );
        // Last year's use does not count this year.
        let last_year = NaiveDate::from_ymd_opt(t.year() - 1, 12, 31).unwrap();
        let g = s
            .pharmacy_vbp_progress(&Scope::County, "h1", last_year)
            .unwrap();
        assert!(g.rows.iter().all(|r| r.used == 0));
        assert_eq!((g.elapsed_days, g.year), (g.year_days, t.year() - 1));

        // Who may set it, and what.
        for a in [at_inst("tph", "t1"), at_inst("x", "h2")] {
            let err = s
                .pharmacy_set_vbp_volume(&a, "com1", &v.code, Some(1))
                .unwrap_err();
            assert!(matches!(err, StoreError::Forbidden(_)), "{err}");
        }
        let err = s
            .pharmacy_set_vbp_volume(&ph, "com1", &plain.code, Some(1))
            .unwrap_err();
        assert!(
            err.to_string().contains("不是国家集中带量采购药品"),
            "{err}"
        );
        let err = s
            .pharmacy_set_vbp_volume(&ph, "com1", &v.code, Some(-1))
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        // Cleared: back to the formulary's default.
        s.pharmacy_set_vbp_volume(&ph, "com1", &v.code, None)
            .unwrap();
        assert_eq!(row("com1").target, (default > 0).then_some(default));
        // Scope.
        assert!(matches!(
            s.pharmacy_vbp_progress(&Scope::Community("com2".into()), "com1", t),
            Err(StoreError::Forbidden(_))
        ));
        assert!(
            s.pharmacy_vbp_progress(&Scope::Institution("h1".into()), "h1", t)
                .is_ok()
        );
    }
}

/// (drug, usable units, batches as (lot, expiry, qty, unit cost)).
type Shelf = (String, i64, Vec<(String, String, i64, i64)>);

/// A county shaped like the demo's: two communities, each a lead hospital,
/// another county hospital, two township centres with two village clinics each.
fn demo_county(s: &Store) {
    let a = admin();
    let mut docs = vec![node(
        "county",
        "测试县",
        "county",
        None,
        None,
        false,
        false,
        false,
    )];
    for c in 1..=2 {
        let comm = format!("com{c}");
        docs.push(node(
            &comm,
            &format!("第{c}医共体"),
            "community",
            None,
            Some("county"),
            false,
            true,
            false,
        ));
        docs.push(node(
            &format!("h{c}"),
            &format!("县第{c}人民医院"),
            "general-hospital",
            Some("county"),
            Some(&comm),
            true,
            false,
            true,
        ));
        docs.push(node(
            &format!("mch{c}"),
            &format!("县妇幼保健院{c}"),
            "maternal-child-hospital",
            Some("county"),
            Some(&comm),
            true,
            false,
            false,
        ));
        for t in 1..=2 {
            let tid = format!("t{c}{t}");
            docs.push(node(
                &tid,
                &format!("{c}{t}镇卫生院"),
                "township-centre",
                Some("township"),
                Some(&comm),
                true,
                false,
                false,
            ));
            for v in 1..=2 {
                docs.push(node(
                    &format!("v{c}{t}{v}"),
                    &format!("{c}{t}{v}村卫生室"),
                    "village-clinic",
                    Some("village"),
                    Some(&tid),
                    true,
                    false,
                    false,
                ));
            }
        }
    }
    for d in docs {
        s.put(&a, d, Precondition::Create, None).unwrap();
    }
}

#[test]
fn demo_seed_is_believable_and_deterministic() {
    for b in backends() {
        let s = &b.store;
        let all = drugs(s);
        if all.is_empty() {
            eprintln!("SKIPPED: the formulary is empty");
            return;
        }
        demo_county(s);
        let t = today();
        let started = std::time::Instant::now();
        let n = s.pharmacy_seed_demo(7, t).unwrap();
        eprintln!(
            "{}: demo pharmacy for 14 institutions: {n} batches in {:?}",
            b.name,
            started.elapsed()
        );
        assert!(n > 0);
        assert_eq!(
            s.pharmacy_seed_demo(7, t).unwrap(),
            0,
            "seeding twice adds nothing"
        );
        let stocked = |inst: &str| s.pharmacy_stock(&Scope::County, inst, None, t).unwrap();
        let lead = stocked("h1");
        assert!(
            lead.len() as f64 >= all.len() as f64 * 0.95,
            "the lead hospital stocks the formulary: {}",
            lead.len()
        );
        for v in ["v111", "v222"] {
            let v = stocked(v);
            assert!(
                (40..=60).contains(&v.len()),
                "a village clinic stocks about 60 drugs: {}",
                v.len()
            );
        }
        let town = stocked("t11");
        assert!(
            (100..=150).contains(&town.len()),
            "a township centre about 150: {}",
            town.len()
        );
        // Expiries spread, a few near, one or two expired per institution.
        for inst in ["h1", "t11", "v111"] {
            let batches: Vec<_> = stocked(inst).into_iter().flat_map(|l| l.batches).collect();
            let expired = batches
                .iter()
                .filter(|x| x.status == ExpiryStatus::Expired)
                .count();
            let near = batches
                .iter()
                .filter(|x| x.status == ExpiryStatus::Near)
                .count();
            assert!((1..=2).contains(&expired), "{inst}: {expired} expired");
            assert!((1..=10).contains(&near), "{inst}: {near} near expiry");
            assert!(
                batches.iter().any(|x| x.days_left > 500),
                "{inst}: expiries over two years"
            );
            for x in &batches {
                assert!(
                    x.unit_cost_fen >= 1 && x.unit_cost_fen <= 20_000,
                    "{inst}: cost {}",
                    x.unit_cost_fen
                );
            }
        }
        // Open (split) packages exist at primary level.
        assert!(stocked("t11").iter().any(|l| l.open_packages > 0));
        // Requisitions in every state, open shortages, VBP volumes and use.
        let reqs = s
            .pharmacy_requisitions(
                &Scope::County,
                &ReqFilter {
                    inst: None,
                    side: ReqSide::Either,
                    state: None,
                    limit: 500,
                },
            )
            .unwrap();
        for st in ReqState::ALL {
            assert!(reqs.iter().any(|r| r.state == st), "no requisition {st:?}");
        }
        assert!(
            reqs.iter()
                .filter(|r| r.state == ReqState::Received)
                .all(|r| !r.shipments.is_empty())
        );
        assert!(
            s.pharmacy_open_shortage_count(&Scope::County, Some("h1"))
                .unwrap()
                >= 1
        );
        let g = s.pharmacy_vbp_progress(&Scope::County, "com1", t).unwrap();
        if all.iter().any(|d| d.vbp.is_some()) {
            assert!(
                g.rows.iter().any(|r| r.used > 0 && r.target.is_some()),
                "{:?}",
                g.rows
            );
            assert!(g.rows.iter().any(|r| r.on_track == Some(true)));
        }
        // An expired batch can be written off.
        let x = stocked("v111")
            .into_iter()
            .flat_map(|l| l.batches)
            .find(|x| x.status == ExpiryStatus::Expired)
            .unwrap();
        let units = s
            .pharmacy_write_off(&at_inst("vdoc", "v111"), x.id, x.version, Some("过期"))
            .unwrap();
        assert_eq!(units, x.qty);
        assert_ledger_balances(s, b.name);

        // Same seed, same pharmacy.
        let dir = tempfile::tempdir().unwrap();
        let again = Store::open_sqlite_dir(dir.path()).unwrap();
        demo_county(&again);
        assert_eq!(again.pharmacy_seed_demo(7, t).unwrap(), n);
        let same = |inst: &str| {
            let strip = |v: Vec<pharmacy::StockLine>| -> Vec<Shelf> {
                v.into_iter()
                    .map(|l| {
                        (
                            l.drug,
                            l.usable,
                            l.batches
                                .into_iter()
                                .map(|x| (x.lot, x.expiry, x.qty, x.unit_cost_fen))
                                .collect(),
                        )
                    })
                    .collect()
            };
            assert_eq!(
                strip(again.pharmacy_stock(&Scope::County, inst, None, t).unwrap()),
                strip(s.pharmacy_stock(&Scope::County, inst, None, t).unwrap())
            );
        };
        same("h2");
        same("t21");
    }
}
