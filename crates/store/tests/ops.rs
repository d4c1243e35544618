//! The operations centre's tables on both backends (SQLite always, PostgreSQL
//! when `YIGONG_TEST_DATABASE_URL` is set, each test in its own schema):
//! versioned and audited configuration (budget, special funds, rules,
//! cycles, attested grades with evidence, the evaluation standard), refusals
//! that change nothing, scope, and the counters grouped by organisation.

use chrono::NaiveDate;
use serde_json::json;
use yigong_core::Fen;
use yigong_metrics::Direction;
use yigong_metrics::budget::{Overspend, SettlementRule};
use yigong_metrics::escalation::{EscalationRule, Level, MissingData, Step, StepDays};
use yigong_metrics::evaluation::{Grade, Standard};
use yigong_store::metrics::Subject;
use yigong_store::ops::{self, BudgetInput, NewEvidence, NewStep, OrgLevel};
use yigong_store::*;

mod common;
use common::*;

/// County → two communities (lead hospital + township centre each, a village
/// clinic under the first centre) and an out-of-county node.
fn county(s: &Store) {
    let a = admin();
    for d in county_nodes().into_iter().chain([node(
        "ext",
        "县外医院",
        "external",
        None,
        Some("county"),
        true,
        false,
        false,
    )]) {
        s.put(&a, d, Precondition::Upsert, None).unwrap();
    }
}

fn actor(scope: Scope) -> Actor {
    Actor {
        user: "ops".into(),
        institution: None,
        scope,
    }
}

fn budget_input(per_capita: i64) -> BudgetInput {
    BudgetInput {
        enrollees: Some(1000),
        per_capita: Fen(per_capita),
        reserve_bp: 300,
        rule: SettlementRule {
            surplus_retained_bp: 10_000,
            overspend: Overspend::NotCompensated,
        },
    }
}

fn invalid(e: StoreError) -> String {
    match e {
        StoreError::Invalid(m) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn budget_configuration_is_versioned_audited_and_checked() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let ops = actor(Scope::County);
        let audit0 = s.audit_count().unwrap();

        // Refusals change nothing.
        let m = invalid(
            s.ops_budget_put(&ops, "com1", 2026, &budget_input(-100), None)
                .unwrap_err(),
        );
        assert!(m.contains("人均定额不能为负数"), "{}: {m}", b.name);
        let m = invalid(
            s.ops_budget_put(&ops, "com1", 2026, &budget_input(0), None)
                .unwrap_err(),
        );
        assert!(m.contains("人均定额必须大于 0"), "{m}");
        let mut bad = budget_input(120_000);
        bad.reserve_bp = 12_000;
        let m = invalid(
            s.ops_budget_put(&ops, "com1", 2026, &bad, None)
                .unwrap_err(),
        );
        assert!(m.contains("风险金比例"), "{m}");
        let mut bad = budget_input(120_000);
        bad.enrollees = Some(0);
        assert!(s.ops_budget_put(&ops, "com1", 2026, &bad, None).is_err());
        let mut bad = budget_input(120_000);
        bad.rule.overspend = Overspend::Shared {
            fund_share_bp: 20_000,
            cap: Fen(0),
        };
        let m = invalid(
            s.ops_budget_put(&ops, "com1", 2026, &bad, None)
                .unwrap_err(),
        );
        assert!(m.contains("超支分担比例"), "{m}");
        assert!(matches!(
            s.ops_budget_put(&ops, "h1", 2026, &budget_input(120_000), None),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.ops_budget_put(&ops, "nowhere", 2026, &budget_input(120_000), None),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(s.ops_budget("com1", 2026).unwrap(), None);
        assert_eq!(s.audit_count().unwrap(), audit0);

        // Scope: another community's user may not configure com1.
        let other = actor(Scope::Community("com2".into()));
        assert!(matches!(
            s.ops_budget_put(&other, "com1", 2026, &budget_input(120_000), None),
            Err(StoreError::Forbidden(_))
        ));
        let inst = actor(Scope::Institution("t1".into()));
        assert!(matches!(
            s.ops_budget_put(&inst, "com1", 2026, &budget_input(120_000), None),
            Err(StoreError::Forbidden(_))
        ));

        // Create, then change only from the current version.
        let c = s
            .ops_budget_put(&ops, "com1", 2026, &budget_input(120_000), None)
            .unwrap();
        assert_eq!(c.version, 1);
        assert_eq!(c.input, budget_input(120_000));
        assert!(matches!(
            s.ops_budget_put(&ops, "com1", 2026, &budget_input(130_000), None),
            Err(StoreError::VersionRequired)
        ));
        assert!(matches!(
            s.ops_budget_put(&ops, "com1", 2026, &budget_input(130_000), Some(7)),
            Err(StoreError::VersionConflict { current: 1 })
        ));
        let mut shared = budget_input(130_000);
        shared.enrollees = None;
        shared.rule.overspend = Overspend::Shared {
            fund_share_bp: 5000,
            cap: Fen(1_000_000),
        };
        let c = s
            .ops_budget_put(&ops, "com1", 2026, &shared, Some(1))
            .unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(s.ops_budget("com1", 2026).unwrap().unwrap().input, shared);
        // The community's own user may configure it.
        let own = actor(Scope::Community("com1".into()));
        s.ops_budget_put(&own, "com1", 2027, &budget_input(120_000), None)
            .unwrap();
        let audit = s
            .audit_log(Some(("OpsBudget", "com1/2026")), 0, 10)
            .unwrap();
        assert_eq!(audit.len(), 2, "{}", b.name);
        assert_eq!(audit[0].version, Some(2));
        assert_eq!(audit[0].action, "ops-budget");
    }
}

#[test]
fn special_funds_never_overspend() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let ops = actor(Scope::County);
        assert!(matches!(
            s.ops_fund_entry(
                &ops,
                "com1",
                2026,
                "allocate",
                "training",
                "人才培养",
                Fen(100),
                ""
            ),
            Err(StoreError::NotFound(_))
        ));
        assert!(s.ops_fund_total(&ops, "com1", 2026, Fen(-1), None).is_err());
        let f = s
            .ops_fund_total(&ops, "com1", 2026, Fen(10_000_000), None)
            .unwrap();
        assert_eq!(f.version, 1);
        s.ops_fund_entry(
            &ops,
            "com1",
            2026,
            "allocate",
            "training",
            "人才培养",
            Fen(6_000_000),
            "年初分配",
        )
        .unwrap();
        s.ops_fund_entry(
            &ops,
            "com1",
            2026,
            "allocate",
            "equipment",
            "设备下沉",
            Fen(3_000_000),
            "",
        )
        .unwrap();
        let m = invalid(
            s.ops_fund_entry(
                &ops,
                "com1",
                2026,
                "allocate",
                "it",
                "信息化",
                Fen(2_000_000),
                "",
            )
            .unwrap_err(),
        );
        assert!(m.contains("超出总额"), "{m}");
        s.ops_fund_entry(
            &ops,
            "com1",
            2026,
            "spend",
            "training",
            "",
            Fen(5_000_000),
            "进修",
        )
        .unwrap();
        let m = invalid(
            s.ops_fund_entry(
                &ops,
                "com1",
                2026,
                "spend",
                "training",
                "",
                Fen(1_000_001),
                "",
            )
            .unwrap_err(),
        );
        assert!(m.contains("支出超出分配"), "{m}");
        assert!(
            s.ops_fund_entry(&ops, "com1", 2026, "spend", "nothing", "", Fen(1), "")
                .is_err()
        );
        assert!(
            s.ops_fund_entry(&ops, "com1", 2026, "spend", "training", "", Fen(0), "")
                .is_err()
        );
        assert!(
            s.ops_fund_entry(&ops, "com1", 2026, "borrow", "training", "", Fen(1), "")
                .is_err()
        );
        let m = invalid(
            s.ops_fund_total(&ops, "com1", 2026, Fen(8_000_000), Some(4))
                .unwrap_err(),
        );
        assert!(m.contains("不能低于已分配"), "{m}");
        assert!(matches!(
            s.ops_fund_total(&ops, "com1", 2026, Fen(12_000_000), Some(1)),
            Err(StoreError::VersionConflict { current: 4 })
        ));
        let f = s.ops_fund("com1", 2026).unwrap().unwrap();
        assert_eq!(f.fund.total(), Fen(10_000_000));
        assert_eq!(f.fund.allocated(), Fen(9_000_000));
        assert_eq!(f.fund.spent(), Fen(5_000_000));
        assert_eq!(f.entries.len(), 3, "{}", b.name);
        assert_eq!(f.fund.purposes()[0].name, "人才培养");
        let f = s
            .ops_fund_total(&ops, "com1", 2026, Fen(12_000_000), Some(4))
            .unwrap();
        assert_eq!(f.fund.unallocated(), Fen(3_000_000));
        assert_eq!(
            s.audit_log(Some(("OpsFund", "com1/2026")), 0, 20)
                .unwrap()
                .len(),
            5
        );
    }
}

fn provincial(criterion_indicator: &str, threshold_a: serde_json::Value) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(yigong_metrics::evaluation::NATIONAL_2020).unwrap();
    v["id"] = json!("sichuan-2024");
    v["version"] = json!("2024");
    v["title"] = json!("四川省紧密型县域医共体建设评判标准");
    for c in v["criteria"].as_array_mut().unwrap() {
        if c["id"] == "S1" {
            c["indicator"] = json!(criterion_indicator);
            c["thresholds"]["A"] = threshold_a.clone();
        }
    }
    v.to_string()
}

#[test]
fn evaluation_standard_and_attested_grades() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let ops = actor(Scope::County);
        let (national, info) = s.ops_standard().unwrap();
        assert_eq!(national, Standard::national_2020());
        assert!(info.is_none());

        // Bad files are refused with the parser's message; nothing changes.
        let audit0 = s.audit_count().unwrap();
        let m = invalid(
            s.ops_standard_upload(&ops, &provincial("no_such_indicator", json!(850)))
                .unwrap_err(),
        );
        assert!(m.contains("不在指标目录中"), "{m}");
        let m = invalid(
            s.ops_standard_upload(&ops, &provincial("inpatient_in_county_share", json!("85%")))
                .unwrap_err(),
        );
        assert!(m.contains("阈值"), "{m}");
        let m = invalid(s.ops_standard_upload(&ops, "{ not json").unwrap_err());
        assert!(m.contains("格式错误"), "{m}");
        assert!(matches!(
            s.ops_standard_upload(
                &actor(Scope::Community("com1".into())),
                &provincial("inpatient_in_county_share", json!(860))
            ),
            Err(StoreError::Forbidden(_))
        ));
        assert_eq!(s.audit_count().unwrap(), audit0);
        assert_eq!(s.ops_standard().unwrap().0, national);

        // A good file is put in force.
        let std = s
            .ops_standard_upload(&ops, &provincial("inpatient_in_county_share", json!(860)))
            .unwrap();
        let (current, info) = s.ops_standard().unwrap();
        assert_eq!(current, std);
        assert_eq!(info.unwrap().title, "四川省紧密型县域医共体建设评判标准");
        assert_eq!(s.ops_standards().unwrap().len(), 1);

        // Attested grades need evidence, at most 5 MB a file.
        let m = invalid(
            s.ops_attest(&ops, "com1", &std, "R2", Grade::A, "", vec![], None)
                .unwrap_err(),
        );
        assert!(m.contains("必须附佐证材料"), "{m}");
        let big = NewEvidence {
            file_name: "big.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: vec![0u8; ops::MAX_EVIDENCE_BYTES + 1],
        };
        let m = invalid(
            s.ops_attest(&ops, "com1", &std, "R2", Grade::A, "", vec![big], None)
                .unwrap_err(),
        );
        assert!(m.contains("过大"), "{m}");
        let pdf = || NewEvidence {
            file_name: "C:\\文件\\权责清单.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: b"%PDF-1.4 evidence".to_vec(),
        };
        let m = invalid(
            s.ops_attest(&ops, "com1", &std, "S1", Grade::A, "", vec![pdf()], None)
                .unwrap_err(),
        );
        assert!(m.contains("计算项"), "{m}");
        assert!(
            s.ops_attest(&ops, "com1", &std, "Z9", Grade::A, "", vec![pdf()], None)
                .is_err()
        );
        assert!(matches!(
            s.ops_attest(
                &actor(Scope::Community("com2".into())),
                "com1",
                &std,
                "R2",
                Grade::A,
                "",
                vec![pdf()],
                None
            ),
            Err(StoreError::Forbidden(_))
        ));
        let a = s
            .ops_attest(
                &ops,
                "com1",
                &std,
                "R2",
                Grade::B,
                "部分事项统一",
                vec![pdf()],
                None,
            )
            .unwrap();
        assert_eq!((a.version, a.grade, a.evidence.len()), (1, Grade::B, 1));
        assert_eq!(a.evidence[0].file_name, "权责清单.pdf");
        // A change keeps earlier evidence and needs the version.
        assert!(matches!(
            s.ops_attest(&ops, "com1", &std, "R2", Grade::A, "", vec![], None),
            Err(StoreError::VersionRequired)
        ));
        let a = s
            .ops_attest(
                &ops,
                "com1",
                &std,
                "R2",
                Grade::A,
                "全部统一",
                vec![],
                Some(1),
            )
            .unwrap();
        assert_eq!((a.version, a.grade, a.evidence.len()), (2, Grade::A, 1));
        let (e, bytes) = s
            .ops_evidence(&Scope::County, &a.evidence[0].id)
            .unwrap()
            .unwrap();
        assert_eq!(bytes, b"%PDF-1.4 evidence");
        assert_eq!(e.content_type, "application/pdf");
        assert!(matches!(
            s.ops_evidence(&Scope::Community("com2".into()), &a.evidence[0].id),
            Err(StoreError::Forbidden(_))
        ));
        assert!(s.ops_evidence(&Scope::County, "missing").unwrap().is_none());

        // The evaluation uses the attested grade; computed criteria have no data.
        let (report, attested) = s.ops_evaluate("com1", &std, "2026-01", "2026-03").unwrap();
        assert_eq!(attested.len(), 1);
        let r2 = report.criteria.iter().find(|c| c.id == "R2").unwrap();
        assert_eq!(r2.grade, Some(Grade::A));
        assert!(!report.tight);
        assert!(report.blockers.iter().any(|b| b.message.contains("无数据")));
        // Grades are kept per standard version: the national one has none.
        assert!(
            s.ops_attestations("com1", &ops::standard_key(&national))
                .unwrap()
                .is_empty()
        );
        let audit = s
            .audit_log(Some(("OpsAttestation", "com1/sichuan-2024@2024/R2")), 0, 10)
            .unwrap();
        assert_eq!(audit.len(), 2, "{}", b.name);
    }
}

#[test]
fn escalation_rules_steps_and_cycles() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let ops = actor(Scope::County);
        let rules = s.ops_rules().unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.id == "inpatient-in-county" && r.version == 0)
        );

        // Rules: checked against the catalogue, county scope, versioned.
        let rule = |indicator: &str, target: i64| EscalationRule {
            indicator: indicator.into(),
            target,
            direction: Direction::HigherIsBetter,
            notify_after: 1,
            warn_after: 2,
            summon_after: 3,
            missing: MissingData::Skip,
        };
        let m = invalid(
            s.ops_rule_put(&ops, "x", OrgLevel::Community, &rule("nope", 1), true, None)
                .unwrap_err(),
        );
        assert!(m.contains("不在指标目录中"), "{m}");
        let mut r = rule("primary_visit_share", 650);
        r.warn_after = 0;
        let m = invalid(
            s.ops_rule_put(&ops, "pv", OrgLevel::Community, &r, true, None)
                .unwrap_err(),
        );
        assert!(m.contains("通报 ≤ 预警 ≤ 约谈"), "{m}");
        let m = invalid(
            s.ops_rule_put(
                &ops,
                "pv",
                OrgLevel::Institution,
                &rule("primary_visit_share", 650),
                true,
                None,
            )
            .unwrap_err(),
        );
        assert!(m.contains("不在机构层级统计"), "{m}");
        let m = invalid(
            s.ops_rule_put(
                &ops,
                "pv",
                OrgLevel::Community,
                &rule("primary_visit_share", 1650),
                true,
                None,
            )
            .unwrap_err(),
        );
        assert!(m.contains("超出单位范围"), "{m}");
        assert!(matches!(
            s.ops_rule_put(
                &actor(Scope::Community("com1".into())),
                "pv",
                OrgLevel::Community,
                &rule("primary_visit_share", 650),
                true,
                None
            ),
            Err(StoreError::Forbidden(_))
        ));
        let stored = s
            .ops_rule_put(
                &ops,
                "inpatient-in-county",
                OrgLevel::Community,
                &rule("inpatient_in_county_share", 800),
                true,
                Some(0),
            )
            .unwrap();
        assert_eq!((stored.version, stored.rule.target), (1, 800));
        assert!(matches!(
            s.ops_rule_put(
                &ops,
                "inpatient-in-county",
                OrgLevel::Community,
                &rule("inpatient_in_county_share", 820),
                false,
                Some(0)
            ),
            Err(StoreError::VersionConflict { current: 1 })
        ));
        assert_eq!(s.ops_rules().unwrap().len(), rules.len());

        // Steps: once per rule, organisation, level and month reached; scoped.
        let step = |org: &str, level: Level| NewStep {
            rule_id: "inpatient-in-county".into(),
            org: org.into(),
            level,
            since: "2026-02".into(),
            period: "2026-03".into(),
            notified: "医共体主任".into(),
            note: "连续未达标".into(),
        };
        let r = s
            .ops_step_record(&ops, &step("com1", Level::Notify))
            .unwrap();
        assert_eq!((r.level, r.comm.as_deref()), (Level::Notify, Some("com1")));
        assert!(matches!(
            s.ops_step_record(&ops, &step("com1", Level::Notify)),
            Err(StoreError::Conflict(_))
        ));
        s.ops_step_record(&ops, &step("com1", Level::Warn)).unwrap();
        assert!(matches!(
            s.ops_step_record(
                &actor(Scope::Community("com2".into())),
                &step("com1", Level::Summon)
            ),
            Err(StoreError::Forbidden(_))
        ));
        let mut bad = step("com1", Level::Summon);
        bad.since = "2026-13".into();
        assert!(s.ops_step_record(&ops, &bad).is_err());
        let mut bad = step("com1", Level::Summon);
        bad.rule_id = "nope".into();
        assert!(matches!(
            s.ops_step_record(&ops, &bad),
            Err(StoreError::NotFound(_))
        ));
        s.ops_step_record(
            &actor(Scope::Community("com2".into())),
            &step("t2", Level::Notify),
        )
        .unwrap();
        assert_eq!(s.ops_steps(&Scope::County, 10).unwrap().len(), 3);
        assert_eq!(
            s.ops_steps(&Scope::Community("com1".into()), 10)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            s.ops_steps(&Scope::Institution("t2".into()), 10)
                .unwrap()
                .len(),
            1
        );

        // Cycles: planned, advanced step by step with days late recorded.
        let d = |m: u32, day: u32| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        let days = StepDays {
            self_evaluation: 15,
            assessment: 30,
            result: 10,
            feedback: 60,
        };
        let zero = StepDays { result: 0, ..days };
        assert!(
            s.ops_cycle_plan(&ops, "com1", 2026, d(1, 1), zero, None)
                .is_err()
        );
        let c = s
            .ops_cycle_plan(&ops, "com1", 2026, d(1, 1), days, None)
            .unwrap();
        assert_eq!((c.version, c.cycle.step()), (1, Step::SelfEvaluation));
        assert_eq!(c.cycle.due(Step::SelfEvaluation), Some(d(1, 15)));
        let m = invalid(
            s.ops_cycle_advance(&ops, "com1", 2026, Step::Result, d(1, 10), "", 1)
                .unwrap_err(),
        );
        assert!(m.contains("只能进入下一环节"), "{m}");
        let c = s
            .ops_cycle_advance(
                &ops,
                "com1",
                2026,
                Step::Assessment,
                d(1, 20),
                "自评报告已提交",
                1,
            )
            .unwrap();
        assert_eq!(
            (c.version, c.cycle.step(), c.steps[0].late_days),
            (2, Step::Assessment, 5)
        );
        assert!(matches!(
            s.ops_cycle_advance(&ops, "com1", 2026, Step::Result, d(2, 1), "", 1),
            Err(StoreError::VersionConflict { current: 2 })
        ));
        assert!(
            s.ops_cycle_plan(&ops, "com1", 2026, d(2, 1), days, Some(2))
                .is_err()
        );
        assert!(
            s.ops_cycle_advance(&ops, "com1", 2026, Step::Result, d(1, 19), "", 2)
                .is_err()
        );
        let c = s
            .ops_cycle_advance(&ops, "com1", 2026, Step::Result, d(2, 10), "", 2)
            .unwrap();
        assert_eq!(c.steps.len(), 2);
        assert_eq!(c.cycle.overdue_days(d(3, 1)), Some(5));
        assert_eq!(s.ops_cycles(&Scope::County, 2026).unwrap().len(), 1);
        assert!(
            s.ops_cycles(&Scope::Community("com2".into()), 2026)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.audit_log(Some(("OpsCycle", "com1/2026")), 0, 10)
                .unwrap()
                .len(),
            3,
            "{}",
            b.name
        );
    }
}

fn fact(s: &Store, component: &str, org: &str, month: &str, v: i64) {
    s.db()
        .write(|tx| {
            tx.exec(
                "INSERT INTO metric_fact (component, org, month, value) VALUES (?, ?, ?, ?)",
                &[component.into(), org.into(), month.into(), Val::Int(v)],
            )
        })
        .unwrap();
}

#[test]
fn counters_grouped_by_organisation_match_the_subject_sums() {
    for b in backends() {
        let s = &b.store;
        county(s);
        for (c, org, m, v) in [
            ("visits_in_county", "h1", "2026-02", 10),
            ("visits_in_county", "t1", "2026-02", 20),
            ("visits_in_county", "v1", "2026-03", 5),
            ("visits_in_county", "h2", "2026-03", 7),
            ("visits_in_county", "ext", "2026-03", 100),
            ("visits_primary", "t1", "2026-02", 20),
            ("visits_primary", "v1", "2026-03", 5),
            ("enrollee_fund_inside", "com1", "2026-01", 1000),
            ("enrollee_fund_county", "com1", "2026-02", 300),
            ("enrollee_fund_outside", "com1", "2026-02", 700),
            ("enrollee_fund_inside", "com2", "2026-02", 50),
        ] {
            fact(s, c, org, m, v);
        }
        let comps: Vec<String> = ["visits_in_county", "visits_primary", "enrollee_fund_inside"]
            .map(String::from)
            .to_vec();
        let by_comm = s
            .metric_by_org(
                OrgLevel::Community,
                &Subject::County,
                &comps,
                "2026-01",
                "2026-12",
                false,
            )
            .unwrap();
        for comm in ["com1", "com2"] {
            let want = s
                .metric_sums(
                    &Subject::Community(comm.into()),
                    &comps,
                    "2026-01",
                    "2026-12",
                )
                .unwrap();
            let got = &by_comm[comm][""];
            for c in &comps {
                assert_eq!(
                    got.get(c).copied().unwrap_or(0),
                    want[c],
                    "{} {comm} {c}",
                    b.name
                );
            }
        }
        assert_eq!(by_comm["com1"][""]["visits_in_county"], 35);
        // Institutions of one community, by month.
        let by_inst = s
            .metric_by_org(
                OrgLevel::Institution,
                &Subject::Community("com1".into()),
                &comps,
                "2026-01",
                "2026-12",
                true,
            )
            .unwrap();
        assert_eq!(by_inst.keys().collect::<Vec<_>>(), ["h1", "t1", "v1"]);
        assert_eq!(by_inst["t1"]["2026-02"]["visits_primary"], 20);
        assert_eq!(by_inst["v1"]["2026-03"]["visits_in_county"], 5);
        let one = s
            .metric_by_org(
                OrgLevel::Institution,
                &Subject::Institution("h2".into()),
                &comps,
                "2026-03",
                "2026-03",
                false,
            )
            .unwrap();
        assert_eq!(one["h2"][""]["visits_in_county"], 7);

        // The package's monthly spending from the enrollee fund counters.
        let y = s.ops_year_spending("com1", 2026, 3).unwrap();
        assert_eq!(y.months().len(), 3);
        assert_eq!(y.ytd().inside, Fen(1000));
        assert_eq!(y.ytd().county, Fen(300));
        assert_eq!(y.ytd().outside, Fen(700));
        assert_eq!(y.ytd().total, Fen(2000));
        assert_eq!(y.months()[1].outside, Fen(700));
        assert_eq!(
            s.ops_year_spending("com1", 2026, 0).unwrap().months().len(),
            0
        );
        assert_eq!(s.ops_enrollees("com1").unwrap(), 0);
    }
}

fn resident(id: &str, org: &str) -> Doc {
    Doc {
        rtype: "Patient".into(),
        id: id.into(),
        body: json!({ "resourceType": "Patient", "name": [{ "text": id }],
            "managingOrganization": { "reference": format!("Organization/{org}") } }),
        org: Some(org.into()),
        patient: None,
        date: None,
        index: vec![("name".into(), id.into())],
        refs: vec![("Organization".into(), org.into())],
        org_node: None,
        performer: None,
    }
}

/// The budget's default enrollees are the community's registered residents,
/// kept as a count by every Patient write: a new record counts, an update
/// in place does not, a record moved to another community counts there.
#[test]
fn enrollees_are_counted_as_residents_register() {
    for b in backends() {
        let s = &b.store;
        county(s);
        let a = admin();
        for (id, org) in [("p1", "t1"), ("p2", "v1"), ("p3", "h1"), ("p4", "h2")] {
            s.put(&a, resident(id, org), Precondition::Upsert, None)
                .unwrap();
        }
        let count = |c: &str| s.ops_enrollees(c).unwrap();
        assert_eq!((count("com1"), count("com2")), (3, 1), "{}", b.name);
        // The same record again, and an update that stays: no change.
        s.put(&a, resident("p1", "t1"), Precondition::Upsert, None)
            .unwrap();
        let mut changed = resident("p1", "t1");
        changed.body["gender"] = json!("female");
        s.put(&a, changed, Precondition::Upsert, None).unwrap();
        assert_eq!((count("com1"), count("com2")), (3, 1), "{}", b.name);
        // Moved to the other community.
        s.put(&a, resident("p2", "h2"), Precondition::Upsert, None)
            .unwrap();
        assert_eq!((count("com1"), count("com2")), (2, 2), "{}", b.name);
        // A refused write changes nothing.
        assert!(
            s.put(&a, resident("p5", "nowhere"), Precondition::Upsert, None)
                .is_err()
        );
        assert_eq!((count("com1"), count("com2")), (2, 2), "{}", b.name);
        assert_eq!(count("nowhere"), 0);
    }
}
