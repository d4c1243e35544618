//! GB 11643-1999 citizen identity number (居民身份证号码).
//!
//! 18 characters: 6-digit division code, 8-digit birth date, 3-digit sequence
//! (odd = male), and an ISO 7064 MOD 11-2 check character (0-9 or X).
//! First-generation 15-digit numbers (two-digit year, no check) are converted.

use crate::{DomainError, patient::Sex};
use chrono::NaiveDate;
use std::fmt;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [u8; 11] = *b"10X98765432";

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ResidentId(String);

impl TryFrom<String> for ResidentId {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<ResidentId> for String {
    fn from(v: ResidentId) -> String {
        v.0
    }
}

/// The check character for the first 17 digits.
pub fn check_char(first17: &[u8]) -> char {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| (d - b'0') as u32 * w)
        .sum();
    CHECK[(sum % 11) as usize] as char
}

impl ResidentId {
    /// Parses an 18-digit number (check verified) or converts a 15-digit one.
    /// Full-width digits, spaces and a lower-case `x` are tolerated.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let cleaned: String = input
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
                'ｘ' | 'Ｘ' | 'x' => 'X',
                c => c,
            })
            .collect();
        let b = cleaned.as_bytes();
        let id = match b.len() {
            18 => {
                if !b[..17].iter().all(u8::is_ascii_digit)
                    || !(b[17].is_ascii_digit() || b[17] == b'X')
                {
                    return Err(bad_format());
                }
                if check_char(&b[..17]) != b[17] as char {
                    return Err(DomainError::invalid(
                        "resident-id-checksum",
                        format!("身份证号 {cleaned} 校验位错误,请核对号码"),
                    ));
                }
                cleaned
            }
            15 => {
                if !b.iter().all(u8::is_ascii_digit) {
                    return Err(bad_format());
                }
                // 15-digit numbers were issued to people born 1900-1999.
                let mut s = String::with_capacity(18);
                s.push_str(&cleaned[..6]);
                s.push_str("19");
                s.push_str(&cleaned[6..]);
                let c = check_char(s.as_bytes());
                s.push(c);
                s
            }
            _ => return Err(bad_format()),
        };
        let r = ResidentId(id);
        if r.birth_date().is_none() {
            return Err(DomainError::invalid(
                "resident-id-birthdate",
                format!("身份证号 {} 中的出生日期无效", r.0),
            ));
        }
        Ok(r)
    }

    /// Builds a valid number from its parts (used by the synthetic county).
    pub fn compose(division: &str, birth: NaiveDate, sequence: u16) -> Self {
        let mut s = format!("{division}{}{:03}", birth.format("%Y%m%d"), sequence % 1000);
        let c = check_char(s.as_bytes());
        s.push(c);
        ResidentId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn division(&self) -> &str {
        &self.0[..6]
    }
    pub fn birth_date(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self.0[6..14], "%Y%m%d").ok()
    }
    pub fn sex(&self) -> Sex {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }
    /// Masked for display to people who need to recognise, not copy, the number.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

fn bad_format() -> DomainError {
    DomainError::invalid(
        "resident-id-format",
        "身份证号应为18位(末位可为X)或15位数字",
    )
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_18_digit_id_parses_with_birth_and_sex() {
        // Standard example from GB 11643 literature.
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1949, 12, 31));
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.division(), "110105");
    }

    #[test]
    fn wrong_check_digit_is_rejected() {
        let e = ResidentId::parse("110105194912310021").unwrap_err();
        assert_eq!(e.code(), "resident-id-checksum");
    }

    #[test]
    fn lower_case_x_and_full_width_digits_are_normalised() {
        let id = ResidentId::parse("１１0105194912310０2x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn fifteen_digit_id_is_converted() {
        let id = ResidentId::parse("110105491231002").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.sex(), Sex::Female);
    }

    #[test]
    fn impossible_birth_date_is_rejected() {
        let mut s = String::from("11010519491332002");
        s.push(check_char(s.as_bytes()));
        assert_eq!(
            ResidentId::parse(&s).unwrap_err().code(),
            "resident-id-birthdate"
        );
    }

    #[test]
    fn bad_lengths_and_letters_are_rejected() {
        for s in [
            "",
            "123",
            "1101051949123100",
            "1101051949123100AX",
            "11010519491231002Y",
        ] {
            assert_eq!(
                ResidentId::parse(s).unwrap_err().code(),
                "resident-id-format",
                "{s}"
            );
        }
    }

    #[test]
    fn compose_round_trips() {
        for seq in [1u16, 2, 599, 998] {
            let birth = NaiveDate::from_ymd_opt(2001, 2, 28).unwrap();
            let id = ResidentId::compose("510521", birth, seq);
            let back = ResidentId::parse(id.as_str()).unwrap();
            assert_eq!(back.birth_date(), Some(birth));
            assert_eq!(
                back.sex(),
                if seq % 2 == 1 { Sex::Male } else { Sex::Female }
            );
        }
    }

    #[test]
    fn masking_hides_birth_date() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.masked(), "110105********002X");
    }
}
