//! Field comparison: which level of agreement two values reach.

use crate::schema::{Kind, Value};
use chrono::NaiveDate;

/// The comparison level of two present values (0 = strongest agreement).
pub fn level(kind: Kind, a: &Value, b: &Value) -> u8 {
    let last = kind.levels() as u8 - 1;
    match kind {
        Kind::ResidentId => {
            if a.v == b.v {
                if a.verified && b.verified { 0 } else { 1 }
            } else if one_edit_or_transposition(&a.v, &b.v) {
                1
            } else {
                last
            }
        }
        Kind::Id => {
            if a.v == b.v {
                0
            } else if one_edit_or_transposition(&a.v, &b.v) {
                1
            } else {
                last
            }
        }
        Kind::Surname => {
            if a.v == b.v {
                0
            } else if a.alt == b.alt {
                1
            } else {
                last
            }
        }
        Kind::GivenName => {
            if a.v == b.v {
                0
            } else if a.alt == b.alt {
                1
            } else if char_edits_at_most_one(&a.v, &b.v)
                || strsim::jaro_winkler(&a.alt, &b.alt) >= 0.9
            {
                2
            } else {
                last
            }
        }
        Kind::Text => {
            if a.v == b.v {
                return 0;
            }
            let jw = strsim::jaro_winkler(&a.v, &b.v);
            if jw >= 0.92 {
                1
            } else if jw >= 0.8 {
                2
            } else {
                last
            }
        }
        Kind::Date => {
            if a.v == b.v {
                0
            } else if near_date(&a.v, &b.v) {
                1
            } else if a.v.get(..4) == b.v.get(..4) {
                2
            } else {
                last
            }
        }
        Kind::Exact => {
            if a.v == b.v {
                0
            } else {
                last
            }
        }
        Kind::Prefix(n) => {
            let n = n as usize;
            if a.v == b.v {
                0
            } else if a.v.len() >= n && a.v.get(..n) == b.v.get(..n) {
                1
            } else {
                last
            }
        }
    }
}

/// One substitution, insertion or deletion, or two adjacent characters swapped.
fn one_edit_or_transposition(a: &str, b: &str) -> bool {
    within_one_edit(a.bytes(), b.bytes()) || adjacent_transposition(a.as_bytes(), b.as_bytes())
}

/// Names differing by one character changed, added or dropped (王晓明/王晓, 李娟/李娼).
fn char_edits_at_most_one(a: &str, b: &str) -> bool {
    within_one_edit(a.chars(), b.chars())
}

/// At most one element substituted, inserted or deleted, without allocating
/// (this runs for every compared pair): the common prefix and suffix must
/// cover all but one element of the longer sequence.
fn within_one_edit<I, T>(a: I, b: I) -> bool
where
    I: DoubleEndedIterator<Item = T> + Clone,
    T: PartialEq,
{
    let (la, lb) = (a.clone().count(), b.clone().count());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let prefix = a.clone().zip(b.clone()).take_while(|(x, y)| x == y).count();
    let suffix = a
        .rev()
        .zip(b.rev())
        .take_while(|(x, y)| x == y)
        .count()
        .min(la.min(lb) - prefix);
    prefix + suffix + 1 >= la.max(lb)
}

/// Two adjacent elements swapped, everything else equal.
fn adjacent_transposition(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    p + 1 < a.len() && a[p] == b[p + 1] && a[p + 1] == b[p] && a[p + 2..] == b[p + 2..]
}

/// YYYYMMDD dates a clerk could confuse: day and month swapped, a day apart,
/// or one digit mistyped.
fn near_date(a: &str, b: &str) -> bool {
    if a.len() != 8 || b.len() != 8 {
        return false;
    }
    if a[..4] == b[..4] && a[4..6] == b[6..8] && a[6..8] == b[4..6] {
        return true;
    }
    if a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count() == 1 {
        return true;
    }
    let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y%m%d").ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => (x - y).num_days().abs() <= 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(kind: Kind, s: &str) -> Value {
        kind.normalise(s).unwrap()
    }

    #[test]
    fn edits_without_allocation() {
        assert!(one_edit_or_transposition("13812345678", "13812345679"));
        assert!(one_edit_or_transposition("13812345678", "1381234567"));
        assert!(one_edit_or_transposition("13812345678", "13821345678"));
        assert!(!one_edit_or_transposition("13812345678", "13821345687"));
        assert!(char_edits_at_most_one("晓明", "晓明明"));
        assert!(char_edits_at_most_one("晓明", "小明"));
        assert!(!char_edits_at_most_one("晓明", "小名"));
        assert!(!char_edits_at_most_one("晓", "晓明明"));
    }

    #[test]
    fn ladders() {
        let g = Kind::GivenName;
        assert_eq!(level(g, &val(g, "晓明"), &val(g, "晓明")), 0);
        assert_eq!(level(g, &val(g, "晓明"), &val(g, "小明")), 1);
        assert_eq!(level(g, &val(g, "晓明"), &val(g, "晓")), 2);
        assert_eq!(level(g, &val(g, "己红"), &val(g, "已红")), 2);
        assert_eq!(level(g, &val(g, "晓明"), &val(g, "建国")), 3);
        let d = Kind::Date;
        assert_eq!(level(d, &val(d, "1990-03-05"), &val(d, "1990-05-03")), 1);
        assert_eq!(level(d, &val(d, "1990-12-31"), &val(d, "1991-01-01")), 1);
        assert_eq!(level(d, &val(d, "1990-03-05"), &val(d, "1990-08-25")), 2);
        assert_eq!(level(d, &val(d, "1990-03-05"), &val(d, "1970-08-25")), 3);
        let r = Kind::ResidentId;
        let good = val(r, "11010519491231002X");
        assert!(good.verified);
        assert_eq!(level(r, &good, &val(r, "11010519491231002x")), 0);
        let typo = val(r, "11010519491231012X");
        assert!(!typo.verified);
        assert_eq!(level(r, &good, &typo), 1);
        assert_eq!(
            level(r, &typo, &typo.clone()),
            1,
            "unverified IDs never agree fully"
        );
        let swapped = val(r, "11010519419231002X");
        assert_eq!(level(r, &good, &swapped), 1);
        assert_eq!(level(r, &good, &val(r, "510521199001011237")), 2);
        let p = Kind::Prefix(9);
        assert_eq!(
            level(p, &val(p, "510521100001"), &val(p, "510521100002")),
            1
        );
    }
}
