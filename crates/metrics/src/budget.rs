//! The insurance global budget (医保总额预算 / 按人头总额打包) of one community
//! and year: the budget, monthly spending split by where care happened, execution
//! against time progress, a year-end forecast with a range, settlement under
//! configured rules (结余留用 / 超支不补 or 合理超支分担), and special funds tracked
//! from allocation to spending.
//!
//! All money is integer fen with checked arithmetic (i128 intermediates);
//! overflow is an error. Rounding rules:
//! - **Money shares round down** (floor) to whole fen, and the remainder is
//!   derived by subtraction, so parts always add up to the whole exactly. The
//!   fractions of a fen therefore stay with the insurance fund: the net budget
//!   (gross × (1 − reserve)) rounds down and the reserve takes the rest; the
//!   retained surplus and the fund's share of an overspend round down. The fund
//!   never promises money it does not hold, and the community never gains from
//!   rounding.
//! - **Rates and forecasts round half to even** (e.g. execution rate in basis
//!   points, run-rate projections): they are estimates shown to people, and
//!   banker's rounding is unbiased across many figures.

use crate::{div_half_even, share_bp};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use yigong_core::Fen;

/// Why an amount, a parameter or a special-fund operation is refused (Chinese
/// messages). A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("参保人数必须大于 0（收到 {0}）")]
    Enrollees(i64),
    #[error("{what}不能为负数（收到 {value}）")]
    Negative { what: String, value: Fen },
    #[error("{what}必须大于 0（收到 {value}）")]
    NotPositive { what: String, value: Fen },
    #[error("{what}必须在 0 到 10000 个基点（0%–100%）之间（收到 {value}）")]
    Bp { what: &'static str, value: i64 },
    #[error("{0}超出可表示的金额范围（溢出）")]
    Overflow(String),
    #[error("年份 {0} 无效")]
    Year(i32),
    #[error("月份 {0} 无效（应为 1–12）")]
    Month(u32),
    #[error("第 {0} 月的数据重复")]
    DuplicateMonth(u32),
    #[error("缺少第 {0} 月的数据（月度数据须从 1 月起逐月连续）")]
    MissingMonth(u32),
    #[error("专项资金用途编号不能为空")]
    EmptyPurpose,
    #[error("专项资金用途“{0}”不存在")]
    UnknownPurpose(String),
    #[error("专项资金分配超出总额：申请分配 {requested}，尚可分配 {available}")]
    OverAllocated { requested: Fen, available: Fen },
    #[error("专项资金用途“{purpose}”支出超出分配：申请支出 {requested}，剩余 {remaining}")]
    Overspent {
        purpose: String,
        requested: Fen,
        remaining: Fen,
    },
}

fn overflow(what: &str) -> BudgetError {
    BudgetError::Overflow(what.to_string())
}

fn fen(v: i128, what: &str) -> Result<Fen, BudgetError> {
    i64::try_from(v).map(Fen).map_err(|_| overflow(what))
}

fn non_negative(v: Fen, what: &str) -> Result<(), BudgetError> {
    if v.0 < 0 {
        return Err(BudgetError::Negative {
            what: what.to_string(),
            value: v,
        });
    }
    Ok(())
}

fn bp(v: i64, what: &'static str) -> Result<i64, BudgetError> {
    if (0..=10_000).contains(&v) {
        Ok(v)
    } else {
        Err(BudgetError::Bp { what, value: v })
    }
}

fn add(a: Fen, b: Fen, what: &str) -> Result<Fen, BudgetError> {
    a.checked_add(b).ok_or_else(|| overflow(what))
}

/// A community's budget for one year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub enrollees: i64,
    /// The per-capita standard (人均定额).
    pub per_capita: Fen,
    /// The risk reserve in basis points (300 = 3%).
    pub reserve_bp: i64,
    /// enrollees × per_capita.
    pub gross: Fen,
    /// gross − net: the risk reserve withheld (takes the sub-fen remainder).
    pub reserve: Fen,
    /// The package: ⌊gross × (10000 − reserve_bp) / 10000⌋.
    pub net: Fen,
}

impl Budget {
    /// budget = enrollees × per-capita × (1 − reserve), exact in fen, the net
    /// rounded down (see the module's rounding rules).
    pub fn new(enrollees: i64, per_capita: Fen, reserve_bp: i64) -> Result<Budget, BudgetError> {
        if enrollees <= 0 {
            return Err(BudgetError::Enrollees(enrollees));
        }
        if per_capita.0 <= 0 {
            return Err(BudgetError::NotPositive {
                what: "人均定额".into(),
                value: per_capita,
            });
        }
        let reserve_bp = bp(reserve_bp, "风险金比例")?;
        let gross = i128::from(enrollees) * i128::from(per_capita.0);
        let gross_fen = fen(gross, "预算总额（参保人数 × 人均定额）")?;
        let net = gross * i128::from(10_000 - reserve_bp) / 10_000; // floor: gross ≥ 0
        let net_fen = fen(net, "预算净额")?;
        Ok(Budget {
            enrollees,
            per_capita,
            reserve_bp,
            gross: gross_fen,
            reserve: Fen(gross_fen.0 - net_fen.0),
            net: net_fen,
        })
    }
}

/// One month's spending charged to the package, by where the care happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthSpending {
    /// 1..=12.
    pub month: u32,
    /// Inside the community (医共体内).
    pub inside: Fen,
    /// Elsewhere in the county (县域内其他机构).
    pub county: Fen,
    /// Out of county (县域外).
    pub outside: Fen,
}

/// Spending split into its three parts, with shares in basis points
/// (`None` when the total is zero: "无数据").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Split {
    pub inside: Fen,
    pub county: Fen,
    pub outside: Fen,
    /// inside + county + outside, exactly.
    pub total: Fen,
    pub inside_bp: Option<i64>,
    pub county_bp: Option<i64>,
    pub outside_bp: Option<i64>,
    /// Share spent in the county (inside + county).
    pub in_county_bp: Option<i64>,
}

impl Split {
    fn new(inside: Fen, county: Fen, outside: Fen) -> Result<Split, BudgetError> {
        let in_county = add(inside, county, "县域内支出")?;
        let total = add(in_county, outside, "支出合计")?;
        Ok(Split {
            inside,
            county,
            outside,
            total,
            inside_bp: share_bp(inside.0, total.0),
            county_bp: share_bp(county.0, total.0),
            outside_bp: share_bp(outside.0, total.0),
            in_county_bp: share_bp(in_county.0, total.0),
        })
    }
}

/// A checked year of monthly spending: months 1..=n in order, amounts
/// non-negative, every total and running total representable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct YearSpending {
    year: i32,
    months: Vec<MonthSpending>,
    splits: Vec<Split>,
    cumulative: Vec<Fen>,
    ytd: Split,
}

fn days_in_year(year: i32) -> i64 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// Days from 1 January through the end of `month` (0 for month 0).
fn days_through(year: i32, month: u32) -> i64 {
    match month {
        0 => 0,
        12.. => days_in_year(year),
        m => NaiveDate::from_ymd_opt(year, m + 1, 1).map_or(0, |d| i64::from(d.ordinal0())),
    }
}

/// Time progress on `date` in basis points: days elapsed through `date`
/// (inclusive) over the days of its year, rounded half to even.
pub fn time_progress_bp(date: NaiveDate) -> i64 {
    let v = div_half_even(
        i128::from(date.ordinal()) * 10_000,
        i128::from(days_in_year(date.year())),
    );
    v.and_then(|v| i64::try_from(v).ok()).unwrap_or(0)
}

impl YearSpending {
    /// Checks and orders the months (any order in, 1..=n out, none missing).
    pub fn new(year: i32, months: &[MonthSpending]) -> Result<YearSpending, BudgetError> {
        if NaiveDate::from_ymd_opt(year, 1, 1).is_none()
            || NaiveDate::from_ymd_opt(year, 12, 31).is_none()
            || NaiveDate::from_ymd_opt(year + 1, 1, 1).is_none()
        {
            return Err(BudgetError::Year(year));
        }
        let mut sorted = months.to_vec();
        for m in &sorted {
            if !(1..=12).contains(&m.month) {
                return Err(BudgetError::Month(m.month));
            }
            non_negative(m.inside, &format!("第 {} 月医共体内支出", m.month))?;
            non_negative(m.county, &format!("第 {} 月县域内其他机构支出", m.month))?;
            non_negative(m.outside, &format!("第 {} 月县域外支出", m.month))?;
        }
        sorted.sort_by_key(|m| m.month);
        for w in sorted.windows(2) {
            if w[0].month == w[1].month {
                return Err(BudgetError::DuplicateMonth(w[0].month));
            }
        }
        for (i, m) in sorted.iter().enumerate() {
            let expect = i as u32 + 1;
            if m.month != expect {
                return Err(BudgetError::MissingMonth(expect));
            }
        }
        let mut splits = Vec::with_capacity(sorted.len());
        let mut cumulative = Vec::with_capacity(sorted.len());
        let (mut i, mut c, mut o, mut run) = (Fen::ZERO, Fen::ZERO, Fen::ZERO, Fen::ZERO);
        for m in &sorted {
            let s = Split::new(m.inside, m.county, m.outside)?;
            run = add(run, s.total, "累计支出")?;
            i = add(i, m.inside, "累计医共体内支出")?;
            c = add(c, m.county, "累计县域内其他机构支出")?;
            o = add(o, m.outside, "累计县域外支出")?;
            splits.push(s);
            cumulative.push(run);
        }
        let ytd = Split::new(i, c, o)?;
        Ok(YearSpending {
            year,
            months: sorted,
            splits,
            cumulative,
            ytd,
        })
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    /// The months, 1..=n in order.
    pub fn months(&self) -> &[MonthSpending] {
        &self.months
    }

    /// Year-to-date spending by part.
    pub fn ytd(&self) -> &Split {
        &self.ytd
    }
}

/// One month of execution against time progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MonthExecution {
    pub month: u32,
    /// The month's spending by part.
    pub spent: Split,
    /// Spending from January through this month.
    pub cumulative: Fen,
    /// cumulative / net budget in basis points (`None` if the budget is zero).
    pub execution_bp: Option<i64>,
    /// Days elapsed through the month's end / days in the year, in basis points.
    pub time_progress_bp: i64,
    /// execution − time progress: positive means spending runs ahead of time.
    pub ahead_bp: Option<i64>,
}

/// Execution rate vs time progress, month by month.
pub fn execution(budget: &Budget, spending: &YearSpending) -> Vec<MonthExecution> {
    let year = spending.year;
    spending
        .months
        .iter()
        .zip(&spending.splits)
        .zip(&spending.cumulative)
        .map(|((m, s), c)| {
            let execution_bp = share_bp(c.0, budget.net.0);
            let time_progress_bp = div_half_even(
                i128::from(days_through(year, m.month)) * 10_000,
                i128::from(days_in_year(year)),
            )
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(0);
            MonthExecution {
                month: m.month,
                spent: *s,
                cumulative: *c,
                execution_bp,
                time_progress_bp,
                ahead_bp: execution_bp.and_then(|e| e.checked_sub(time_progress_bp)),
            }
        })
        .collect()
}

/// A forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Year-to-date spending per day × days in the year.
    YearToDate,
    /// Year-to-date + the last (up to) 3 months' spending per day × days left.
    LastThreeMonths,
    /// Year-to-date × (previous year's total / previous year's same months):
    /// last year's monthly profile carries the seasonality (winter respiratory
    /// peaks, the pre-Spring-Festival surge) forward.
    Seasonal,
}

/// One method's projection of the year's spending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Projection {
    pub method: Method,
    pub spending: Fen,
}

/// The year-end forecast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forecast {
    /// Months of data used.
    pub months: u32,
    pub projections: Vec<Projection>,
    /// The point estimate: seasonal when a previous year's profile is usable,
    /// otherwise the year-to-date run rate.
    pub spending: Fen,
    /// The range: the least and greatest of the projections.
    pub spending_low: Fen,
    pub spending_high: Fen,
    /// net budget − spending (negative: overspend).
    pub balance: Fen,
    /// net − spending_high.
    pub balance_low: Fen,
    /// net − spending_low.
    pub balance_high: Fen,
}

/// Forecasts the year-end spending and balance from the months so far
/// (`None` without any month: "无数据"). `previous` enables the seasonal
/// method when it has all 12 months and its same months are not zero.
pub fn forecast(
    budget: &Budget,
    spending: &YearSpending,
    previous: Option<&YearSpending>,
) -> Result<Option<Forecast>, BudgetError> {
    let n = spending.months.len() as u32;
    if n == 0 {
        return Ok(None);
    }
    let year = spending.year;
    let ytd = i128::from(spending.ytd.total.0);
    let total_days = i128::from(days_in_year(year));
    let elapsed = i128::from(days_through(year, n));
    let round = |num: i128, den: i128, what: &str| -> Result<Fen, BudgetError> {
        let v = div_half_even(num, den).ok_or_else(|| overflow(what))?;
        fen(v, what)
    };
    let mut projections = Vec::new();
    let mul = |a: i128, b: i128, what: &str| a.checked_mul(b).ok_or_else(|| overflow(what));

    let by_ytd = round(
        mul(ytd, total_days, "预测支出")?,
        elapsed,
        "预测支出（年初至今）",
    )?;
    projections.push(Projection {
        method: Method::YearToDate,
        spending: by_ytd,
    });

    let k = n.min(3);
    let recent: i128 = spending.splits[(n - k) as usize..]
        .iter()
        .map(|s| i128::from(s.total.0))
        .sum();
    let recent_days = elapsed - i128::from(days_through(year, n - k));
    let remaining = total_days - elapsed;
    let rest = div_half_even(mul(recent, remaining, "预测支出")?, recent_days)
        .ok_or_else(|| overflow("预测支出"))?;
    let by_recent = fen(ytd + rest, "预测支出（近 3 个月）")?;
    projections.push(Projection {
        method: Method::LastThreeMonths,
        spending: by_recent,
    });

    let mut point = by_ytd;
    if let Some(prev) = previous.filter(|p| p.months.len() == 12) {
        let same = i128::from(prev.cumulative[(n - 1) as usize].0);
        let whole = i128::from(prev.ytd.total.0);
        if same > 0 {
            let by_season = round(mul(ytd, whole, "预测支出")?, same, "预测支出（季节调整）")?;
            projections.push(Projection {
                method: Method::Seasonal,
                spending: by_season,
            });
            point = by_season;
        }
    }

    let low = projections
        .iter()
        .map(|p| p.spending)
        .min()
        .unwrap_or(point);
    let high = projections
        .iter()
        .map(|p| p.spending)
        .max()
        .unwrap_or(point);
    let net = budget.net.0;
    let sub = |s: Fen| {
        net.checked_sub(s.0)
            .map(Fen)
            .ok_or_else(|| overflow("预测结余"))
    };
    Ok(Some(Forecast {
        months: n,
        spending: point,
        spending_low: low,
        spending_high: high,
        balance: sub(point)?,
        balance_low: sub(high)?,
        balance_high: sub(low)?,
        projections,
    }))
}

/// What happens to an overspend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Overspend {
    /// 超支不补: the community bears all of it.
    NotCompensated,
    /// 合理超支分担: the fund bears `fund_share_bp` of it, at most `cap`.
    Shared { fund_share_bp: i64, cap: Fen },
}

/// Settlement rules (configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementRule {
    /// The share of a surplus the community keeps (结余留用), in basis points.
    pub surplus_retained_bp: i64,
    pub overspend: Overspend,
}

/// The year-end settlement. Identities (exact): with a surplus,
/// `balance = retained + returned`; with an overspend,
/// `−balance = fund_covers + community_bears`; and always
/// `fund_total = budget + fund_covers − returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Settlement {
    /// The net budget (the package).
    pub budget: Fen,
    /// All spending charged to the package.
    pub spent: Fen,
    /// budget − spent (negative: overspend).
    pub balance: Fen,
    /// Surplus kept by the community.
    pub retained: Fen,
    /// Surplus returned to the fund.
    pub returned: Fen,
    /// Overspend the fund covers.
    pub fund_covers: Fen,
    /// Overspend the community bears.
    pub community_bears: Fen,
    /// The settlement amount credited to the community: retained + fund_covers.
    pub amount: Fen,
    /// What the fund pays for the year in all.
    pub fund_total: Fen,
}

/// Settles the year: `spent` against the net budget under `rule`.
pub fn settle(
    budget: &Budget,
    spent: Fen,
    rule: &SettlementRule,
) -> Result<Settlement, BudgetError> {
    non_negative(spent, "年度支出")?;
    let retained_bp = bp(rule.surplus_retained_bp, "结余留用比例")?;
    if let Overspend::Shared { fund_share_bp, cap } = rule.overspend {
        bp(fund_share_bp, "超支分担比例")?;
        non_negative(cap, "超支分担上限")?;
    }
    let b = i128::from(budget.net.0);
    let s = i128::from(spent.0);
    let balance = b - s; // both in i64 range: cannot overflow i128
    let (mut retained, mut returned, mut covers, mut bears) = (0i128, 0i128, 0i128, 0i128);
    if balance >= 0 {
        retained = balance * i128::from(retained_bp) / 10_000;
        returned = balance - retained;
    } else {
        let over = -balance;
        covers = match rule.overspend {
            Overspend::NotCompensated => 0,
            Overspend::Shared { fund_share_bp, cap } => {
                (over * i128::from(fund_share_bp) / 10_000).min(i128::from(cap.0))
            }
        };
        bears = over - covers;
    }
    Ok(Settlement {
        budget: budget.net,
        spent,
        balance: fen(balance, "结余")?,
        retained: fen(retained, "留用结余")?,
        returned: fen(returned, "返还结余")?,
        fund_covers: fen(covers, "基金分担")?,
        community_bears: fen(bears, "医共体承担")?,
        amount: fen(retained + covers, "结算金额")?,
        fund_total: fen(b + covers - returned, "基金年度支付")?,
    })
}

/// One purpose of a special fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purpose {
    pub id: String,
    pub name: String,
    pub allocated: Fen,
    pub spent: Fen,
}

impl Purpose {
    /// allocated − spent (never negative: overspending is refused).
    pub fn remaining(&self) -> Fen {
        Fen(self.allocated.0 - self.spent.0)
    }
}

/// A special fund (专项资金, e.g. Dafeng's ¥15 million a year) allocated to
/// purposes and tracked to spending. Allocations never exceed the total and
/// spending never exceeds a purpose's allocation; refused operations change
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecialFund {
    total: Fen,
    purposes: Vec<Purpose>,
}

fn positive(v: Fen, what: &str) -> Result<(), BudgetError> {
    if v.0 <= 0 {
        return Err(BudgetError::NotPositive {
            what: what.to_string(),
            value: v,
        });
    }
    Ok(())
}

impl SpecialFund {
    /// A fund of `total` (≥ 0) with nothing allocated.
    pub fn new(total: Fen) -> Result<SpecialFund, BudgetError> {
        non_negative(total, "专项资金总额")?;
        Ok(SpecialFund {
            total,
            purposes: Vec::new(),
        })
    }

    /// Allocates `amount` (> 0) to purpose `id`, creating it with `name` if new
    /// (an existing purpose keeps its name). Refused beyond the unallocated total.
    pub fn allocate(&mut self, id: &str, name: &str, amount: Fen) -> Result<(), BudgetError> {
        if id.trim().is_empty() {
            return Err(BudgetError::EmptyPurpose);
        }
        positive(amount, "分配金额")?;
        let available = self.unallocated();
        if amount > available {
            return Err(BudgetError::OverAllocated {
                requested: amount,
                available,
            });
        }
        match self.purposes.iter_mut().find(|p| p.id == id) {
            // Cannot overflow: the sum of allocations stays ≤ total.
            Some(p) => p.allocated = Fen(p.allocated.0 + amount.0),
            None => self.purposes.push(Purpose {
                id: id.to_string(),
                name: name.to_string(),
                allocated: amount,
                spent: Fen::ZERO,
            }),
        }
        Ok(())
    }

    /// Records spending `amount` (> 0) on purpose `id`; refused beyond what
    /// remains of its allocation.
    pub fn spend(&mut self, id: &str, amount: Fen) -> Result<(), BudgetError> {
        positive(amount, "支出金额")?;
        let p = self
            .purposes
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| BudgetError::UnknownPurpose(id.to_string()))?;
        let remaining = p.remaining();
        if amount > remaining {
            return Err(BudgetError::Overspent {
                purpose: p.name.clone(),
                requested: amount,
                remaining,
            });
        }
        p.spent = Fen(p.spent.0 + amount.0);
        Ok(())
    }

    pub fn total(&self) -> Fen {
        self.total
    }

    /// The purposes in allocation order.
    pub fn purposes(&self) -> &[Purpose] {
        &self.purposes
    }

    /// Sum of allocations (≤ total).
    pub fn allocated(&self) -> Fen {
        Fen(self.purposes.iter().map(|p| p.allocated.0).sum())
    }

    /// Sum of spending (≤ allocated).
    pub fn spent(&self) -> Fen {
        Fen(self.purposes.iter().map(|p| p.spent.0).sum())
    }

    /// total − allocated.
    pub fn unallocated(&self) -> Fen {
        Fen(self.total.0 - self.allocated().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn month(m: u32, inside: i64, county: i64, outside: i64) -> MonthSpending {
        MonthSpending {
            month: m,
            inside: Fen(inside),
            county: Fen(county),
            outside: Fen(outside),
        }
    }

    /// 1,000 enrollees × ¥1,200 less 3%: ¥1,164,000 net.
    fn small() -> Budget {
        Budget::new(1000, Fen(120_000), 300).unwrap()
    }

    fn four_months() -> Vec<MonthSpending> {
        vec![
            month(3, 7_000_000, 2_000_000, 3_000_000),
            month(1, 6_000_000, 2_000_000, 2_000_000),
            month(2, 5_000_000, 1_500_000, 3_500_000),
            month(4, 6_000_000, 1_000_000, 1_000_000),
        ]
    }

    #[test]
    fn budget_by_hand() {
        // Luxian-like: 500,000 enrollees × ¥800, 3% reserve.
        let b = Budget::new(500_000, Fen(80_000), 300).unwrap();
        assert_eq!(b.gross, Fen(40_000_000_000));
        assert_eq!(b.reserve, Fen(1_200_000_000));
        assert_eq!(b.net, Fen(38_800_000_000));
        let b = small();
        assert_eq!(
            (b.gross, b.reserve, b.net),
            (Fen(120_000_000), Fen(3_600_000), Fen(116_400_000))
        );
        // 7 × 333 = 2331 fen; × 97% = 2261.07 → 2261 (down), reserve 70.
        let b = Budget::new(7, Fen(333), 300).unwrap();
        assert_eq!((b.gross, b.net, b.reserve), (Fen(2331), Fen(2261), Fen(70)));
        // 3 fen × 97% = 2.91 → 2: the fraction stays with the fund.
        let b = Budget::new(3, Fen(1), 300).unwrap();
        assert_eq!((b.net, b.reserve), (Fen(2), Fen(1)));
        let b = Budget::new(10, Fen(100), 0).unwrap();
        assert_eq!((b.net, b.reserve), (Fen(1000), Fen(0)));
        let b = Budget::new(10, Fen(100), 10_000).unwrap();
        assert_eq!((b.net, b.reserve), (Fen(0), Fen(1000)));
    }

    #[test]
    fn budget_refuses_bad_input() {
        assert_eq!(Budget::new(0, Fen(1), 300), Err(BudgetError::Enrollees(0)));
        assert_eq!(
            Budget::new(-5, Fen(1), 300),
            Err(BudgetError::Enrollees(-5))
        );
        let e = Budget::new(1, Fen(-1), 300).unwrap_err();
        assert_eq!(e.to_string(), "人均定额必须大于 0（收到 ¥-0.01）");
        let e = Budget::new(1, Fen(1), 10_001).unwrap_err();
        assert_eq!(
            e.to_string(),
            "风险金比例必须在 0 到 10000 个基点（0%–100%）之间（收到 10001）"
        );
        assert!(Budget::new(1, Fen(1), -1).is_err());
        let e = Budget::new(i64::MAX, Fen(2), 300).unwrap_err();
        assert!(matches!(e, BudgetError::Overflow(_)), "{e}");
        assert!(e.to_string().contains("溢出"));
    }

    #[test]
    fn spending_split_and_execution_by_hand() {
        let y = YearSpending::new(2025, &four_months()).unwrap();
        assert_eq!(
            y.months().iter().map(|m| m.month).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        let t = y.ytd();
        assert_eq!(
            (t.inside, t.county, t.outside, t.total),
            (
                Fen(24_000_000),
                Fen(6_500_000),
                Fen(9_500_000),
                Fen(40_000_000)
            )
        );
        assert_eq!(
            (t.inside_bp, t.county_bp, t.outside_bp, t.in_county_bp),
            (Some(6000), Some(1625), Some(2375), Some(7625))
        );
        let ex = execution(&small(), &y);
        let rows: Vec<(i64, Option<i64>, i64, Option<i64>)> = ex
            .iter()
            .map(|r| {
                (
                    r.cumulative.0,
                    r.execution_bp,
                    r.time_progress_bp,
                    r.ahead_bp,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                // 10M / 116.4M = 8.5911% ; 31/365 = 8.4932%
                (10_000_000, Some(859), 849, Some(10)),
                // 20M / 116.4M = 17.1821% ; 59/365 = 16.1644%
                (20_000_000, Some(1718), 1616, Some(102)),
                // 32M / 116.4M = 27.4914% ; 90/365 = 24.6575%
                (32_000_000, Some(2749), 2466, Some(283)),
                // 40M / 116.4M = 34.3643% ; 120/365 = 32.8767%
                (40_000_000, Some(3436), 3288, Some(148)),
            ]
        );
        assert_eq!(ex[0].spent.in_county_bp, Some(8000));
        assert_eq!(
            time_progress_bp(NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()),
            10_000
        );
        assert_eq!(
            time_progress_bp(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            1639
        ); // 60/366
    }

    #[test]
    fn spending_refuses_bad_input() {
        let e = YearSpending::new(2025, &[month(1, -1, 0, 0)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "第 1 月医共体内支出不能为负数（收到 ¥-0.01）"
        );
        assert_eq!(
            YearSpending::new(2025, &[month(1, 0, 0, 0), month(3, 0, 0, 0)]),
            Err(BudgetError::MissingMonth(2))
        );
        assert_eq!(
            YearSpending::new(2025, &[month(1, 0, 0, 0), month(1, 0, 0, 0)]),
            Err(BudgetError::DuplicateMonth(1))
        );
        assert_eq!(
            YearSpending::new(2025, &[month(13, 0, 0, 0)]),
            Err(BudgetError::Month(13))
        );
        assert_eq!(
            YearSpending::new(2025, &[month(0, 0, 0, 0)]),
            Err(BudgetError::Month(0))
        );
        let e = YearSpending::new(2025, &[month(1, i64::MAX, 1, 0)]).unwrap_err();
        assert!(matches!(e, BudgetError::Overflow(_)));
        let e =
            YearSpending::new(2025, &[month(1, i64::MAX, 0, 0), month(2, 1, 0, 0)]).unwrap_err();
        assert!(matches!(e, BudgetError::Overflow(_)));
        assert!(YearSpending::new(i32::MAX, &[]).is_err());
        // An empty year is fine; its shares are "无数据".
        let y = YearSpending::new(2025, &[]).unwrap();
        assert_eq!(y.ytd().inside_bp, None);
        assert_eq!(forecast(&small(), &y, None), Ok(None));
    }

    #[test]
    fn forecast_by_hand() {
        let y = YearSpending::new(2025, &four_months()).unwrap();
        let f = forecast(&small(), &y, None).unwrap().unwrap();
        // YTD: 40M × 365 / 120 = 121,666,666.67 → 121,666,667.
        // Last 3 months: 40M + 30M × 245 / 89 = 40M + 82,584,269.66 → 122,584,270.
        assert_eq!(
            f.projections,
            [
                Projection {
                    method: Method::YearToDate,
                    spending: Fen(121_666_667)
                },
                Projection {
                    method: Method::LastThreeMonths,
                    spending: Fen(122_584_270)
                },
            ]
        );
        assert_eq!(f.spending, Fen(121_666_667));
        assert_eq!(
            (f.spending_low, f.spending_high),
            (Fen(121_666_667), Fen(122_584_270))
        );
        assert_eq!(f.balance, Fen(116_400_000 - 121_666_667));
        assert_eq!(
            (f.balance_low, f.balance_high),
            (Fen(-6_184_270), Fen(-5_266_667))
        );

        // Last year: Jan–Apr 12M, 11M, 10M, 9M, then 9M a month: 114M in all.
        let prev: Vec<MonthSpending> = (1..=12)
            .map(|m| {
                let total = [12, 11, 10, 9].get(m as usize - 1).copied().unwrap_or(9) * 1_000_000;
                month(m, total, 0, 0)
            })
            .collect();
        let prev = YearSpending::new(2024, &prev).unwrap();
        let f = forecast(&small(), &y, Some(&prev)).unwrap().unwrap();
        // Seasonal: 40M × 114M / 42M = 108,571,428.57 → 108,571,429.
        assert_eq!(
            f.projections[2],
            Projection {
                method: Method::Seasonal,
                spending: Fen(108_571_429)
            }
        );
        assert_eq!(f.spending, Fen(108_571_429));
        assert_eq!(
            (f.spending_low, f.spending_high),
            (Fen(108_571_429), Fen(122_584_270))
        );
        assert_eq!(
            (f.balance, f.balance_low, f.balance_high),
            (Fen(7_828_571), Fen(-6_184_270), Fen(7_828_571))
        );

        // An incomplete previous year is not used.
        let part = YearSpending::new(2024, &prev.months()[..6]).unwrap();
        let f = forecast(&small(), &y, Some(&part)).unwrap().unwrap();
        assert_eq!(f.projections.len(), 2);

        // With the full year, every method gives the actual spending.
        let full: Vec<MonthSpending> = (1..=12).map(|m| month(m, 1_000_000, 0, 0)).collect();
        let y = YearSpending::new(2025, &full).unwrap();
        let f = forecast(&small(), &y, Some(&prev)).unwrap().unwrap();
        assert!(f.projections.iter().all(|p| p.spending == Fen(12_000_000)));
    }

    #[test]
    fn settlement_by_hand() {
        let b = small(); // net 116,400,000
        let keep60 = SettlementRule {
            surplus_retained_bp: 6000,
            overspend: Overspend::NotCompensated,
        };
        let s = settle(&b, Fen(110_000_000), &keep60).unwrap();
        assert_eq!(
            (s.balance, s.retained, s.returned),
            (Fen(6_400_000), Fen(3_840_000), Fen(2_560_000))
        );
        assert_eq!((s.amount, s.fund_total), (Fen(3_840_000), Fen(113_840_000)));
        let s = settle(&b, Fen(120_000_000), &keep60).unwrap();
        assert_eq!(
            (s.balance, s.fund_covers, s.community_bears, s.amount),
            (Fen(-3_600_000), Fen(0), Fen(3_600_000), Fen(0))
        );
        assert_eq!(s.fund_total, Fen(116_400_000));
        let shared = SettlementRule {
            surplus_retained_bp: 10_000,
            overspend: Overspend::Shared {
                fund_share_bp: 5000,
                cap: Fen(1_000_000),
            },
        };
        let s = settle(&b, Fen(120_000_000), &shared).unwrap();
        // Half of 3.6M is 1.8M, capped at 1M.
        assert_eq!(
            (s.fund_covers, s.community_bears, s.amount, s.fund_total),
            (
                Fen(1_000_000),
                Fen(2_600_000),
                Fen(1_000_000),
                Fen(117_400_000)
            )
        );
        let s = settle(&b, Fen(116_000_000), &shared).unwrap();
        assert_eq!((s.retained, s.returned), (Fen(400_000), Fen(0)));
        // Rounding: 3 fen at 50% → 1 fen kept, 2 returned.
        let half = SettlementRule {
            surplus_retained_bp: 5000,
            overspend: Overspend::NotCompensated,
        };
        let s = settle(&b, Fen(116_399_997), &half).unwrap();
        assert_eq!((s.retained, s.returned), (Fen(1), Fen(2)));
        // Bad configuration and amounts.
        assert!(settle(&b, Fen(-1), &half).is_err());
        let bad = SettlementRule {
            surplus_retained_bp: 10_001,
            ..half
        };
        assert!(
            settle(&b, Fen(1), &bad)
                .unwrap_err()
                .to_string()
                .contains("结余留用比例")
        );
        let bad = SettlementRule {
            surplus_retained_bp: 0,
            overspend: Overspend::Shared {
                fund_share_bp: 5000,
                cap: Fen(-1),
            },
        };
        assert!(
            settle(&b, Fen(1), &bad)
                .unwrap_err()
                .to_string()
                .contains("超支分担上限")
        );
        // Configuration is data.
        let r: SettlementRule = serde_json::from_str(
            r#"{"surplus_retained_bp":10000,"overspend":{"kind":"shared","fund_share_bp":5000,"cap":100000000}}"#,
        )
        .unwrap();
        assert_eq!(
            r.overspend,
            Overspend::Shared {
                fund_share_bp: 5000,
                cap: Fen(100_000_000)
            }
        );
    }

    #[test]
    fn special_fund_by_hand() {
        // Dafeng: ¥15 million a year.
        let mut f = SpecialFund::new(Fen(1_500_000_000)).unwrap();
        f.allocate("capability", "内涵提升", Fen(600_000_000))
            .unwrap();
        f.allocate("sinking", "资源下沉", Fen(500_000_000)).unwrap();
        f.allocate("innovation", "探索创新", Fen(250_000_000))
            .unwrap();
        f.allocate("evaluation", "综合评价", Fen(100_000_000))
            .unwrap();
        f.allocate("evaluation", "", Fen(50_000_000)).unwrap();
        assert_eq!(f.purposes()[3].allocated, Fen(150_000_000));
        assert_eq!(f.purposes()[3].name, "综合评价");
        assert_eq!(f.unallocated(), Fen(0));
        let before = f.clone();
        let e = f.allocate("capability", "", Fen(1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "专项资金分配超出总额：申请分配 ¥0.01，尚可分配 ¥0.00"
        );
        assert_eq!(f, before);
        f.spend("capability", Fen(100_000_000)).unwrap();
        assert_eq!(f.purposes()[0].remaining(), Fen(500_000_000));
        let before = f.clone();
        let e = f.spend("capability", Fen(500_000_001)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "专项资金用途“内涵提升”支出超出分配：申请支出 ¥5000000.01，剩余 ¥5000000.00"
        );
        assert!(f.spend("nothing", Fen(1)).is_err());
        assert!(f.spend("capability", Fen(-5)).is_err());
        assert!(f.spend("capability", Fen(0)).is_err());
        assert_eq!(f, before);
        assert_eq!(
            (f.allocated(), f.spent()),
            (Fen(1_500_000_000), Fen(100_000_000))
        );
        assert!(SpecialFund::new(Fen(-1)).is_err());
        assert!(f.allocate(" ", "x", Fen(1)).is_err());
    }

    fn amount() -> impl Strategy<Value = i64> {
        prop_oneof![
            0i64..1_000_000_000,
            Just(0),
            Just(i64::MAX),
            Just(i64::MAX / 3),
            0i64..=i64::MAX
        ]
    }

    proptest! {
        #[test]
        fn budget_is_exact(
            enrollees in prop_oneof![1i64..5_000_000, Just(i64::MAX), 1i64..=i64::MAX],
            per_capita in prop_oneof![1i64..500_000, Just(i64::MAX), 1i64..=i64::MAX],
            reserve in 0i64..=10_000,
        ) {
            let gross = i128::from(enrollees) * i128::from(per_capita);
            match Budget::new(enrollees, Fen(per_capita), reserve) {
                Ok(b) => {
                    prop_assert_eq!(i128::from(b.gross.0), gross);
                    prop_assert_eq!(i128::from(b.net.0) + i128::from(b.reserve.0), gross);
                    // net = floor(gross × (1 − r)): within one fen below the exact value.
                    let exact_times = gross * i128::from(10_000 - reserve);
                    let net = i128::from(b.net.0) * 10_000;
                    prop_assert!(net <= exact_times && exact_times - net < 10_000);
                }
                Err(e) => {
                    prop_assert!(gross > i128::from(i64::MAX));
                    prop_assert!(matches!(e, BudgetError::Overflow(_)));
                }
            }
        }

        #[test]
        fn spending_parts_sum_and_never_panic(
            parts in proptest::collection::vec((amount(), amount(), amount()), 0..=12),
            prev in proptest::collection::vec(amount(), 12),
            net_per_capita in 1i64..=i64::MAX,
            rule_bp in 0i64..=10_000,
            cap in amount(),
        ) {
            let months: Vec<MonthSpending> = parts
                .iter()
                .enumerate()
                .map(|(i, (a, b, c))| month(i as u32 + 1, *a, *b, *c))
                .collect();
            let budget = Budget::new(1, Fen(net_per_capita), 300).unwrap();
            let Ok(y) = YearSpending::new(2024, &months) else {
                // Refused only for overflow.
                let total: i128 = parts.iter().map(|(a, b, c)| i128::from(*a) + i128::from(*b) + i128::from(*c)).sum();
                let any_month = parts.iter().any(|(a, b, c)| i128::from(*a) + i128::from(*b) + i128::from(*c) > i128::from(i64::MAX));
                prop_assert!(total > i128::from(i64::MAX) || any_month);
                return Ok(());
            };
            let sum: i128 = parts.iter().map(|(a, b, c)| i128::from(*a) + i128::from(*b) + i128::from(*c)).sum();
            let t = y.ytd();
            prop_assert_eq!(i128::from(t.total.0), sum);
            prop_assert_eq!(t.inside.0 as i128 + t.county.0 as i128 + t.outside.0 as i128, sum);
            let ex = execution(&budget, &y);
            prop_assert_eq!(ex.len(), months.len());
            if let Some(last) = ex.last() {
                prop_assert_eq!(last.cumulative, t.total);
            }
            let prev_months: Vec<MonthSpending> = prev.iter().enumerate().map(|(i, a)| month(i as u32 + 1, *a / 12, 0, 0)).collect();
            let prev = YearSpending::new(2023, &prev_months).unwrap();
            // Never panics; an Err is an overflow.
            match forecast(&budget, &y, Some(&prev)) {
                Ok(Some(f)) => {
                    prop_assert!(f.spending_low <= f.spending && f.spending <= f.spending_high);
                    prop_assert!(f.spending_low >= t.total);
                }
                Ok(None) => prop_assert!(months.is_empty()),
                Err(e) => prop_assert!(matches!(e, BudgetError::Overflow(_))),
            }
            let rule = SettlementRule { surplus_retained_bp: rule_bp, overspend: Overspend::Shared { fund_share_bp: rule_bp, cap: Fen(cap) } };
            let s = settle(&budget, t.total, &rule).unwrap();
            let b = i128::from(s.budget.0);
            prop_assert_eq!(i128::from(s.balance.0), b - sum);
            if s.balance.0 >= 0 {
                prop_assert_eq!(s.retained.0 as i128 + s.returned.0 as i128, i128::from(s.balance.0));
                prop_assert_eq!(s.fund_covers.0 + s.community_bears.0, 0);
            } else {
                prop_assert_eq!(s.fund_covers.0 as i128 + s.community_bears.0 as i128, -i128::from(s.balance.0));
                prop_assert!(s.fund_covers.0 <= cap);
                prop_assert_eq!(s.retained.0 + s.returned.0, 0);
            }
            prop_assert_eq!(i128::from(s.fund_total.0), b + i128::from(s.fund_covers.0) - i128::from(s.returned.0));
        }

        #[test]
        fn special_fund_invariants(
            total in amount(),
            ops in proptest::collection::vec((any::<bool>(), 0usize..4, prop_oneof![-5i64..1_000, amount()]), 0..40),
        ) {
            let mut f = SpecialFund::new(Fen(total)).unwrap();
            let ids = ["a", "b", "c", "d"];
            for (alloc, which, amt) in ops {
                let before = f.clone();
                let r = if alloc {
                    f.allocate(ids[which], ids[which], Fen(amt))
                } else {
                    f.spend(ids[which], Fen(amt))
                };
                if r.is_err() {
                    prop_assert_eq!(&f, &before);
                }
                let allocated: i128 = f.purposes().iter().map(|p| i128::from(p.allocated.0)).sum();
                prop_assert!(allocated <= i128::from(total));
                for p in f.purposes() {
                    prop_assert!(p.spent.0 >= 0 && p.spent <= p.allocated);
                }
            }
        }
    }
}
