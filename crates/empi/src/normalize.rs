//! Normalisation of what clerks type: width, spacing, traditional characters,
//! pinyin keys (with the south-western Mandarin merges heard in Sichuan clinics),
//! resident IDs, phones and dates.

use pinyin::ToPinyin;
use yigong_core::ResidentId;

/// Full-width ASCII forms (０-９, Ａ-Ｚ, ideographic space…) to their half-width forms.
pub fn half_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// A personal name as it should be compared: half-width, no spaces or separator
/// dots (维吾尔族 names are written 阿依古丽·买买提 or without the dot), simplified
/// characters, Latin letters in lower case.
pub fn name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(half_width)
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '•' | '.' | '・' | '-' | '\''))
        .flat_map(char::to_lowercase)
        .collect();
    if cleaned.is_ascii() {
        cleaned
    } else {
        fast2s::convert(&cleaned)
    }
}

/// Toneless pinyin of each character, with merges that clerks and dialects make
/// interchangeable: zh/z, ch/c, sh/s, n/l, hu/fu and the final -ng after a, e, i.
/// Two names with the same key sound alike to a Sichuan registration desk.
pub fn fuzzy_pinyin(normalised_name: &str) -> String {
    let mut out = String::with_capacity(normalised_name.len() * 2);
    for c in normalised_name.chars() {
        match c.to_pinyin() {
            Some(p) => push_fuzzy_syllable(&mut out, p.plain()),
            None => out.push(c),
        }
    }
    out
}

fn push_fuzzy_syllable(out: &mut String, s: &str) {
    let (initial, rest) = if let Some(r) = s.strip_prefix("zh") {
        ("z", r)
    } else if let Some(r) = s.strip_prefix("ch") {
        ("c", r)
    } else if let Some(r) = s.strip_prefix("sh") {
        ("s", r)
    } else if let Some(r) = s.strip_prefix('n') {
        ("l", r)
    } else if s.starts_with("hu") {
        ("f", &s[1..])
    } else {
        ("", s)
    };
    out.push_str(initial);
    if rest.ends_with("ang") || rest.ends_with("eng") || rest.ends_with("ing") {
        out.push_str(&rest[..rest.len() - 1]);
    } else {
        out.push_str(rest);
    }
    out.push(' ');
}

/// Upper-case alphanumerics of an identifier, widths folded, separators dropped.
pub fn identifier(raw: &str) -> String {
    raw.chars()
        .map(half_width)
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A resident ID: the 18-character GB 11643 form and whether it passed the check
/// (15-digit IDs are upgraded). A failed check keeps the cleaned text, unverified.
pub fn resident_id(raw: &str) -> (String, bool) {
    let cleaned = identifier(raw);
    match ResidentId::parse(&cleaned) {
        Ok(id) => (id.as_str().to_string(), true),
        Err(_) => (cleaned, false),
    }
}

/// Digits of a phone number without the +86 / 0086 country prefix.
pub fn phone(raw: &str) -> String {
    let digits: String = raw
        .chars()
        .map(half_width)
        .filter(char::is_ascii_digit)
        .collect();
    let d = digits.as_str();
    let d = d
        .strip_prefix("0086")
        .or_else(|| d.strip_prefix("86").filter(|r| r.len() == 11))
        .unwrap_or(d);
    d.to_string()
}

/// A date as YYYYMMDD from `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYY.MM.DD`, `YYYYMMDD` or
/// `YYYY年M月D日`; `None` when it is not recognisably a date.
pub fn date(raw: &str) -> Option<String> {
    let s: String = raw.chars().map(half_width).collect();
    let parts: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .collect();
    let (y, m, d) = match parts.as_slice() {
        [one] if one.len() == 8 => (&one[0..4], &one[4..6], &one[6..8]),
        [y, m, d] if y.len() == 4 && m.len() <= 2 && d.len() <= 2 => (*y, *m, *d),
        _ => return None,
    };
    let (m, d): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(format!("{y}{m:02}{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_width_space_and_traditional() {
        assert_eq!(name(" 陳 小明 "), "陈小明");
        assert_eq!(name("阿依古丽·买买提"), "阿依古丽买买提");
        assert_eq!(name("ＬＩ Ｍｉｎｇ"), "liming");
    }

    #[test]
    fn homophones_share_a_fuzzy_key() {
        assert_eq!(fuzzy_pinyin("王晓明"), fuzzy_pinyin("王小明"));
        assert_eq!(fuzzy_pinyin("刘"), fuzzy_pinyin("牛"));
        assert_eq!(fuzzy_pinyin("陈"), fuzzy_pinyin("岑"));
        assert_eq!(fuzzy_pinyin("张"), fuzzy_pinyin("赞"));
        assert_ne!(fuzzy_pinyin("张"), fuzzy_pinyin("王"));
        assert_eq!(fuzzy_pinyin("湖"), fuzzy_pinyin("福"));
        assert_eq!(fuzzy_pinyin("王晓明"), "wan xiao min ");
    }

    #[test]
    fn ids_phones_dates() {
        assert_eq!(
            identifier("５１０５２１ 1990-0101 123x"),
            "51052119900101123X"
        );
        let (id, ok) = resident_id("11010519491231002x");
        assert!(ok);
        assert_eq!(id, "11010519491231002X");
        let (_, ok) = resident_id("110105194912310021");
        assert!(!ok);
        assert_eq!(phone("+86 138-1234-5678"), "13812345678");
        assert_eq!(date("1990-1-2").as_deref(), Some("19900102"));
        assert_eq!(date("1990年1月2日").as_deref(), Some("19900102"));
        assert_eq!(date("19900102").as_deref(), Some("19900102"));
        assert_eq!(date("1990-13-02"), None);
    }
}
