//! The operations centre's configuration in the demo county, so that its pages
//! show a year in progress: each community's insurance package for the year,
//! its special funds allocated to purposes with part spent, and the year's
//! assessment cycle under way (one community on time, one late, one overdue).

use anyhow::Result;
use chrono::{Datelike, Duration, NaiveDate};
use yigong_core::Fen;
use yigong_metrics::budget::{Overspend, SettlementRule};
use yigong_metrics::escalation::{Step, StepDays};
use yigong_store::ops::BudgetInput;
use yigong_store::{Actor, Store};

/// Special funds per community (¥): purpose id, name, allocation, share spent by
/// the as-of day in per cent.
const PURPOSES: [(&str, &str, i64, i64); 3] = [
    ("talent", "人才培养与专家下沉补助", 1_200_000, 72),
    ("it", "信息化与远程诊断平台建设", 900_000, 55),
    ("equipment", "乡镇卫生院设备更新", 600_000, 38),
];

/// Seeds what is not configured yet for the year of `as_of`; returns how many
/// communities it configured.
pub fn seed(store: &Store, as_of: NaiveDate) -> Result<usize> {
    let actor = Actor::system("synth");
    let year = as_of.year();
    let communities: Vec<String> = store
        .org_tree()?
        .into_iter()
        .filter(|n| n.kind.as_deref() == Some("community"))
        .map(|n| n.id)
        .collect();
    let mut seeded = 0;
    for (i, comm) in communities.iter().enumerate() {
        if store.ops_budget(comm, year)?.is_some() {
            continue;
        }
        seeded += 1;
        // 城乡居民医保 package per enrollee (registered residents), 3% reserve;
        // 60% of a surplus kept, half of an overspend borne by the fund up to ¥5M.
        let budget = BudgetInput {
            enrollees: None,
            per_capita: Fen(138_000 + 4_000 * i as i64),
            reserve_bp: 300,
            rule: SettlementRule {
                surplus_retained_bp: 6_000,
                overspend: Overspend::Shared {
                    fund_share_bp: 5_000,
                    cap: Fen(5_000_000 * 100),
                },
            },
        };
        store.ops_budget_put(&actor, comm, year, &budget, None)?;

        let total: i64 = PURPOSES.iter().map(|p| p.2).sum::<i64>() + 300_000;
        store.ops_fund_total(&actor, comm, year, Fen(total * 100), None)?;
        for (purpose, name, yuan, spent_pct) in PURPOSES {
            store.ops_fund_entry(
                &actor,
                comm,
                year,
                "allocate",
                purpose,
                name,
                Fen(yuan * 100),
                "年度专项资金分配方案",
            )?;
            let spent = yuan * 100 * spent_pct / 100;
            store.ops_fund_entry(
                &actor,
                comm,
                year,
                "spend",
                purpose,
                "",
                Fen(spent),
                "截至当前的支出",
            )?;
        }

        // This year's assessment: self-evaluation began 20 days ago.
        let start = as_of - Duration::days(20);
        let days = StepDays {
            self_evaluation: 15,
            assessment: 20,
            result: 10,
            feedback: 30,
        };
        let cycle = store.ops_cycle_plan(&actor, comm, year, start, days, None)?;
        let due = start + Duration::days(15);
        let on = match i {
            0 => Some(due - Duration::days(2)),
            1 => Some(due + Duration::days(4)),
            _ => None,
        };
        if let Some(on) = on.filter(|d| *d <= as_of) {
            store.ops_cycle_advance(
                &actor,
                comm,
                year,
                Step::Assessment,
                on,
                "自评报告已提交",
                cycle.version,
            )?;
        }
    }
    Ok(seeded)
}
