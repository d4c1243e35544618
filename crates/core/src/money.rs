//! Money as integer fen (分). Never floating point.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub i64);

impl Fen {
    pub const ZERO: Fen = Fen(0);
    pub fn from_yuan(yuan: i64) -> Fen {
        Fen(yuan * 100)
    }
    /// Parses a decimal yuan amount such as `"12.5"` or `"-3.07"` exactly.
    pub fn parse_yuan(s: &str) -> Option<Fen> {
        let s = s.trim();
        let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty() || frac.len() > 2 {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let yuan: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut f: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        if frac.len() == 1 {
            f *= 10;
        }
        let v = yuan.checked_mul(100)?.checked_add(f)?;
        Some(Fen(if neg { -v } else { v }))
    }
    /// The amount in yuan as a decimal string with two places (for FHIR Money.value).
    pub fn yuan_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", a / 100, a % 100)
    }
    pub fn checked_add(self, o: Fen) -> Option<Fen> {
        self.0.checked_add(o.0).map(Fen)
    }
}

impl Add for Fen {
    type Output = Fen;
    fn add(self, o: Fen) -> Fen {
        Fen(self.0 + o.0)
    }
}
impl AddAssign for Fen {
    fn add_assign(&mut self, o: Fen) {
        self.0 += o.0;
    }
}
impl Sub for Fen {
    type Output = Fen;
    fn sub(self, o: Fen) -> Fen {
        Fen(self.0 - o.0)
    }
}
impl Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        iter.fold(Fen::ZERO, Add::add)
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "¥{}", self.yuan_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yuan_exactly() {
        assert_eq!(Fen::parse_yuan("12.5"), Some(Fen(1250)));
        assert_eq!(Fen::parse_yuan("0.07"), Some(Fen(7)));
        assert_eq!(Fen::parse_yuan("-3.07"), Some(Fen(-307)));
        assert_eq!(Fen::parse_yuan("100"), Some(Fen(10000)));
        assert_eq!(Fen::parse_yuan(".5"), Some(Fen(50)));
        for bad in [
            "",
            ".",
            "1.234",
            "1e3",
            "abc",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert_eq!(Fen::parse_yuan(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_as_yuan() {
        assert_eq!(Fen(123456).to_string(), "¥1234.56");
        assert_eq!(Fen(-5).yuan_string(), "-0.05");
        assert_eq!(Fen::from_yuan(3).yuan_string(), "3.00");
    }

    #[test]
    fn round_trip_through_yuan_string() {
        for v in [-100_001i64, -1, 0, 1, 99, 100, 123_456_789] {
            assert_eq!(Fen::parse_yuan(&Fen(v).yuan_string()), Some(Fen(v)));
        }
    }

    #[test]
    fn sums() {
        let total: Fen = [Fen(1), Fen(2), Fen(3)].into_iter().sum();
        assert_eq!(total, Fen(6));
    }
}
