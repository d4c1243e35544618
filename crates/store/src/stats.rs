//! Aggregates for the overview page and the organisation tree.

use crate::db::Val;
use crate::{Scope, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    pub id: String,
    pub name: String,
    pub kind: Option<String>,
    pub tier: Option<String>,
    pub parent: Option<String>,
    pub comm: Option<String>,
    pub sub_centre: bool,
    pub lead: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthCount {
    pub month: String,
    pub tier: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overview {
    /// Institutions per tier code (county / township / village).
    pub institutions: Vec<(String, i64)>,
    pub communities: i64,
    pub residents: i64,
    pub visits_this_month: i64,
    /// Encounters per local month and tier, oldest first.
    pub monthly: Vec<MonthCount>,
}

fn scope_filter(scope: &Scope, comm_col: &str, inst_col: &str, params: &mut Vec<Val>) -> String {
    match scope {
        Scope::County => String::new(),
        Scope::Community(c) => {
            params.push(c.as_str().into());
            format!(" AND {comm_col} = ?")
        }
        Scope::Institution(i) => {
            params.push(i.as_str().into());
            format!(" AND {inst_col} = ?")
        }
    }
}

impl Store {
    pub fn org_tree(&self) -> Result<Vec<TreeNode>, StoreError> {
        self.db().read(|c| {
            let rows = c.query("SELECT id, name, kind, tier, parent, comm, sub_centre, lead FROM org_tree ORDER BY id", &[])?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut it = r.into_iter();
                    let mut next = || it.next().unwrap_or(Val::Null);
                    TreeNode {
                        id: next().into_string().unwrap_or_default(),
                        name: next().into_string().unwrap_or_default(),
                        kind: next().into_string(),
                        tier: next().into_string(),
                        parent: next().into_string(),
                        comm: next().into_string(),
                        sub_centre: next().as_int() == Some(1),
                        lead: next().as_int() == Some(1),
                    }
                })
                .collect())
        })
    }

    /// County overview within `scope`; `this_month` and `since_month` are local `YYYY-MM`.
    pub fn overview(
        &self,
        scope: &Scope,
        this_month: &str,
        since_month: &str,
    ) -> Result<Overview, StoreError> {
        self.db().read(|c| {
            let mut p = vec![];
            let f = scope_filter(scope, "comm", "inst", &mut p);
            let institutions = c
                .query(&format!("SELECT tier, count(*) FROM org_tree WHERE tier IS NOT NULL AND kind <> 'department'{f} GROUP BY tier ORDER BY tier"), &p)?
                .into_iter()
                .map(|r| (r[0].as_str().unwrap_or("").to_string(), r[1].as_int().unwrap_or(0)))
                .collect();
            let communities = match scope {
                Scope::County => c.scalar_int("SELECT count(*) FROM org_tree WHERE kind = 'community'", &[])?,
                _ => 1,
            };
            let mut p = vec![];
            let f = scope_filter(scope, "pcomm", "pinst", &mut p);
            let residents = c.scalar_int(&format!("SELECT count(*) FROM resource WHERE rtype = 'Patient' AND deleted = 0{f}"), &p)?;
            let mut p = vec![Val::Text(since_month.to_string())];
            let f = scope_filter(scope, "o.comm", "o.inst", &mut p);
            let monthly: Vec<MonthCount> = c
                .query(
                    &format!(
                        "SELECT m.month, COALESCE(o.tier, 'other'), sum(m.n) FROM encounter_month m LEFT JOIN org_tree o ON o.id = m.inst
                         WHERE m.month >= ?{f} GROUP BY m.month, COALESCE(o.tier, 'other') ORDER BY m.month"
                    ),
                    &p,
                )?
                .into_iter()
                .map(|r| MonthCount {
                    month: r[0].as_str().unwrap_or("").to_string(),
                    tier: r[1].as_str().unwrap_or("").to_string(),
                    count: r[2].as_int().unwrap_or(0),
                })
                .collect();
            let visits_this_month = monthly.iter().filter(|m| m.month == this_month).map(|m| m.count).sum();
            Ok(Overview { institutions, communities, residents, visits_this_month, monthly })
        })
    }
}
