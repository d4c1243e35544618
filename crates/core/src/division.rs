//! GB/T 2260 administrative division codes: province (2) + prefecture (2) + county (2).

use crate::DomainError;
use std::fmt;

/// Province-level prefixes in GB/T 2260.
const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct DivisionCode(String);

impl TryFrom<String> for DivisionCode {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<DivisionCode> for String {
    fn from(v: DivisionCode) -> String {
        v.0
    }
}

impl DivisionCode {
    /// A 6-digit county-level (or higher) code; township codes (9 or 12 digits)
    /// are accepted too, because villages carry them.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok_len = matches!(s.len(), 6 | 9 | 12);
        if !ok_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "division-format",
                format!("行政区划代码 {s} 格式错误,应为6位(县级)、9位(乡级)或12位(村级)数字"),
            ));
        }
        let p: u8 = s[..2].parse().unwrap_or(0);
        if !PROVINCES.contains(&p) {
            return Err(DomainError::invalid(
                "division-province",
                format!("行政区划代码 {s} 的省级代码 {p:02} 不存在"),
            ));
        }
        Ok(DivisionCode(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn province(&self) -> &str {
        &self.0[..2]
    }
    pub fn county(&self) -> &str {
        &self.0[..6]
    }
    /// True when `self` lies inside `other`: the significant part of `other`
    /// (2 digits for a province, 4 for a prefecture, 6 for a county, 9 for a
    /// township, 12 for a village) is a prefix of `self`.
    pub fn within(&self, other: &DivisionCode) -> bool {
        let o = other.as_str();
        let significant = match o.len() {
            6 if o.ends_with("0000") => 2,
            6 if o.ends_with("00") => 4,
            n => n,
        };
        self.0.len() >= significant && self.0.starts_with(&o[..significant])
    }
}

impl fmt::Display for DivisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_codes() {
        let luxian = DivisionCode::parse("510521").unwrap();
        assert_eq!(luxian.province(), "51");
        assert!(DivisionCode::parse("510521100").unwrap().within(&luxian));
        assert!(
            DivisionCode::parse("510521101203")
                .unwrap()
                .within(&DivisionCode::parse("510521101").unwrap())
        );
        // 嘉明镇 (101) is not inside 福集镇 (100).
        assert!(
            !DivisionCode::parse("510521101203")
                .unwrap()
                .within(&DivisionCode::parse("510521100").unwrap())
        );
        assert!(luxian.within(&DivisionCode::parse("510000").unwrap()));
        assert!(luxian.within(&DivisionCode::parse("510500").unwrap()));
        assert!(!luxian.within(&DivisionCode::parse("510600").unwrap()));
    }

    #[test]
    fn rejects_bad_codes() {
        assert_eq!(
            DivisionCode::parse("99012").unwrap_err().code(),
            "division-format"
        );
        assert_eq!(
            DivisionCode::parse("990121").unwrap_err().code(),
            "division-province"
        );
        assert_eq!(
            DivisionCode::parse("51052a").unwrap_err().code(),
            "division-format"
        );
    }
}
