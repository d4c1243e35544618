//! ICD-10 codes, including the Chinese clinical edition's extensions (国家临床版 2.0),
//! e.g. `I10`, `E11.9`, `I10.x00x002`, `J44.100`.

use crate::DomainError;
use std::fmt;

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Icd10(String);

impl TryFrom<String> for Icd10 {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<Icd10> for String {
    fn from(v: Icd10) -> String {
        v.0
    }
}

impl Icd10 {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let b = s.as_bytes();
        let head_ok = b.len() >= 3
            && b[0].is_ascii_uppercase()
            && b[1].is_ascii_digit()
            && (b[2].is_ascii_digit() || (b[0] == b'C' && b[2] == b'x'));
        let tail_ok = match s.get(3..) {
            Some("") => true,
            Some(rest) => {
                rest.starts_with('.')
                    && rest.len() >= 2
                    && rest.len() <= 12
                    && rest[1..]
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'*')
            }
            None => false,
        };
        if !head_ok || !tail_ok {
            return Err(DomainError::invalid(
                "icd10-format",
                format!("诊断编码 {s} 不是有效的ICD-10编码(例如 I10、E11.900)"),
            ));
        }
        Ok(Icd10(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The three-character category, e.g. `E11` for `E11.900`.
    pub fn category(&self) -> &str {
        &self.0[..3]
    }
    /// Chapter letter, used for disease-structure statistics.
    pub fn chapter(&self) -> char {
        self.0.as_bytes()[0] as char
    }
}

impl fmt::Display for Icd10 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_forms() {
        for c in ["I10", "E11.9", "E11.900", "I10.x00x002", "J44.100", "O80"] {
            assert!(Icd10::parse(c).is_ok(), "{c}");
        }
        assert_eq!(Icd10::parse("E11.900").unwrap().category(), "E11");
    }

    #[test]
    fn rejects_garbage() {
        for c in ["", "I1", "i10", "110", "I10.", "高血压", "I10 .1"] {
            assert!(Icd10::parse(c).is_err(), "{c}");
        }
    }
}
