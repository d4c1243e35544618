//! The operations centre's arithmetic (issue 6), storage-free: the national
//! evaluation standard for tight county medical communities (criteria as
//! versioned data, grades, the tightness verdict and what-if), the
//! notify / warn / summon escalation rules with the assessment cycle, and the
//! insurance global budget (budget, execution, forecast, settlement, special
//! funds), all in integer fen.
//!
//! Pure and deterministic: no IO except parsing text handed in, no clock
//! (callers pass dates), no floating point. A share whose denominator is zero
//! is `None` (shown by callers as "无数据"); overflow is an error, never a wrap
//! or a panic.

use serde::{Deserialize, Serialize};

pub mod budget;
pub mod doc;
pub mod escalation;
pub mod evaluation;
pub mod indicators;
pub mod input;
pub mod measure;

pub use budget::{
    Budget, BudgetError, Forecast, MonthExecution, MonthSpending, Overspend, Settlement,
    SettlementRule, SpecialFund, YearSpending,
};
pub use escalation::{Cycle, Escalation, EscalationError, EscalationRule, Level, Step};
pub use evaluation::{EvalError, Grade, Input, Report, Standard};

/// Which way an indicator is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Met when the value is at or above the target.
    HigherIsBetter,
    /// Met when the value is at or below the target.
    LowerIsBetter,
}

impl Direction {
    /// Whether `value` meets `target` in this direction.
    pub fn meets(self, value: i64, target: i64) -> bool {
        match self {
            Direction::HigherIsBetter => value >= target,
            Direction::LowerIsBetter => value <= target,
        }
    }
}

/// The unit of an integer indicator value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A share in per-mille (0..=1000); 821 is shown as "82.1%".
    Permille,
    /// A share in basis points (0..=10000); 8210 is shown as "82.10%".
    Bp,
    /// A plain integer (a count, days, fen …), shown as is.
    Count,
}

impl Unit {
    /// Parses the unit's name as written in data files.
    pub fn from_name(s: &str) -> Option<Unit> {
        match s {
            "permille" => Some(Unit::Permille),
            "bp" => Some(Unit::Bp),
            "count" => Some(Unit::Count),
            _ => None,
        }
    }

    /// The unit's name as written in data files.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Permille => "permille",
            Unit::Bp => "bp",
            Unit::Count => "count",
        }
    }

    /// The values a measurement in this unit may take.
    pub fn range(self) -> (i64, i64) {
        match self {
            Unit::Permille => (0, 1000),
            Unit::Bp => (0, 10_000),
            Unit::Count => (i64::MIN, i64::MAX),
        }
    }

    /// Shows `value` for people: `Permille` 821 → "82.1%", `Bp` 8210 → "82.10%".
    pub fn format(self, value: i64) -> String {
        let sign = if value < 0 { "-" } else { "" };
        let a = value.unsigned_abs();
        match self {
            Unit::Permille => format!("{sign}{}.{}%", a / 10, a % 10),
            Unit::Bp => format!("{sign}{}.{:02}%", a / 100, a % 100),
            Unit::Count => value.to_string(),
        }
    }
}

/// `num / den` rounded to the nearest integer, ties to even (banker's
/// rounding: unbiased over many rounded figures). `None` when `den` is zero.
pub(crate) fn div_half_even(num: i128, den: i128) -> Option<i128> {
    if den == 0 {
        return None;
    }
    let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den); // 0 <= r < den
    let twice = 2 * r;
    Some(if twice > den || (twice == den && q % 2 != 0) {
        q + 1
    } else {
        q
    })
}

/// The share `num / den` in basis points (10000 = 100%), rounded half to even;
/// `None` when `den` is zero ("无数据"), never NaN.
pub fn share_bp(num: i64, den: i64) -> Option<i64> {
    div_half_even(i128::from(num) * 10_000, i128::from(den)).and_then(|v| i64::try_from(v).ok())
}

/// The share `num / den` in per-mille (1000 = 100%), rounded half to even;
/// `None` when `den` is zero ("无数据").
pub fn share_permille(num: i64, den: i64) -> Option<i64> {
    div_half_even(i128::from(num) * 1000, i128::from(den)).and_then(|v| i64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_even() {
        assert_eq!(div_half_even(5, 2), Some(2));
        assert_eq!(div_half_even(7, 2), Some(4));
        assert_eq!(div_half_even(-5, 2), Some(-2));
        assert_eq!(div_half_even(-7, 2), Some(-4));
        assert_eq!(div_half_even(10, 3), Some(3));
        assert_eq!(div_half_even(11, 3), Some(4));
        assert_eq!(div_half_even(11, -3), Some(-4));
        assert_eq!(div_half_even(1, 0), None);
    }

    #[test]
    fn shares() {
        assert_eq!(share_bp(1, 3), Some(3333));
        assert_eq!(share_bp(2, 3), Some(6667));
        assert_eq!(share_bp(1, 0), None);
        assert_eq!(share_permille(821, 1000), Some(821));
        assert_eq!(share_bp(i64::MAX, 1), None);
        assert_eq!(share_bp(i64::MAX, i64::MAX), Some(10_000));
    }

    #[test]
    fn formats() {
        assert_eq!(Unit::Permille.format(821), "82.1%");
        assert_eq!(Unit::Permille.format(850), "85.0%");
        assert_eq!(Unit::Bp.format(8210), "82.10%");
        assert_eq!(Unit::Bp.format(5), "0.05%");
        assert_eq!(Unit::Count.format(-3), "-3");
        assert_eq!(Unit::Permille.format(-5), "-0.5%");
    }
}
