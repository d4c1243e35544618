//! What is compared: fields, how each is normalised and compared, and the
//! blocking rules that decide which pairs are compared at all.

use crate::normalize;
use serde::{Deserialize, Serialize};

/// How a field is normalised and compared; each kind has a fixed ladder of
/// comparison levels, level 0 being the strongest agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// GB 11643 resident ID: exact (both verified) / near (one typo, or an
    /// unverified ID involved) / different.
    ResidentId,
    /// Any other identifier or phone: exact / one edit or transposition / different.
    Id,
    /// Chinese surname: exact / homophone / different.
    Surname,
    /// Chinese given name: exact / homophone / similar (a character changed,
    /// added or dropped, or close pinyin) / different.
    GivenName,
    /// Free text (Latin names, addresses): exact / Jaro–Winkler ≥ 0.92 / ≥ 0.8 / different.
    Text,
    /// Date: exact / near (day–month swap, ±1 day, one digit) / same year / different.
    Date,
    /// Exact / different.
    Exact,
    /// Exact / same first `n` characters (village → township) / different.
    Prefix(u8),
}

impl Kind {
    pub fn levels(self) -> usize {
        match self {
            Kind::Exact => 2,
            Kind::ResidentId | Kind::Id | Kind::Surname | Kind::Prefix(_) => 3,
            Kind::GivenName | Kind::Text | Kind::Date => 4,
        }
    }

    /// Chinese label of a comparison level, for explanations.
    pub fn level_zh(self, level: u8) -> &'static str {
        let last = self.levels() as u8 - 1;
        if level == 0 {
            return "一致";
        }
        if level == last {
            return "不一致";
        }
        match (self, level) {
            (Kind::ResidentId, 1) => "相近(一位之差或未核验)",
            (Kind::Id, 1) => "相近(一位之差)",
            (Kind::Surname | Kind::GivenName, 1) => "同音",
            (Kind::GivenName, 2) => "相似(增减或换一字)",
            (Kind::Text, 1) => "高度相似",
            (Kind::Text, 2) => "相似",
            (Kind::Date, 1) => "相近(日月颠倒/差一天/一位之差)",
            (Kind::Date, 2) => "同年",
            (Kind::Prefix(_), 1) => "同乡镇",
            _ => "部分一致",
        }
    }

    /// Normalises raw text for this kind. `None`: missing.
    pub fn normalise(self, raw: &str) -> Option<Value> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        let value = match self {
            Kind::ResidentId => {
                let (v, verified) = normalize::resident_id(raw);
                Value::new(v, String::new(), verified)
            }
            Kind::Id => Value::new(normalize::identifier(raw), String::new(), true),
            Kind::Surname | Kind::GivenName => {
                let v = normalize::name(raw);
                let alt = normalize::fuzzy_pinyin(&v);
                Value::new(v, alt, true)
            }
            Kind::Text => {
                let v: String = raw
                    .chars()
                    .map(normalize::half_width)
                    .flat_map(char::to_lowercase)
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                Value::new(v, String::new(), true)
            }
            Kind::Date => Value::new(normalize::date(raw)?, String::new(), true),
            Kind::Exact | Kind::Prefix(_) => Value::new(
                raw.chars()
                    .map(normalize::half_width)
                    .flat_map(char::to_lowercase)
                    .collect(),
                String::new(),
                true,
            ),
        };
        (!value.v.is_empty()).then_some(value)
    }
}

/// One normalised field value: the compared text, a phonetic or other
/// alternative key, and whether it passed its own check (resident IDs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Value {
    pub v: Box<str>,
    pub alt: Box<str>,
    pub verified: bool,
}

impl Value {
    fn new(v: String, alt: String, verified: bool) -> Self {
        Value {
            v: v.into_boxed_str(),
            alt: alt.into_boxed_str(),
            verified,
        }
    }
}

/// A record ready for comparison: one optional value per schema field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Prepared {
    pub values: Vec<Option<Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub label_zh: String,
    pub kind: Kind,
    /// Term-frequency adjustment on exact agreement: agreeing on 王 says less
    /// than agreeing on 谯.
    pub tf: bool,
}

/// One part of a blocking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyPart {
    /// The normalised value of field i.
    Value(usize),
    /// The alternative (phonetic) key of field i.
    Alt(usize),
    /// The first four characters (the year of a date).
    Year(usize),
}

/// Records that share every part of a rule's key are compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRule {
    pub name: String,
    pub parts: Vec<KeyPart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub fields: Vec<Field>,
    pub rules: Vec<BlockRule>,
    /// A field whose two different verified values prove two different people
    /// (the resident ID): such records are never clustered automatically.
    pub identity_field: Option<usize>,
    /// Blocks larger than this are skipped (a key that common says nothing).
    pub max_block: usize,
    /// Rules whose pairs train m, each for the fields outside the rule (as
    /// Splink does): a pair found by its ID tells how often names agree in true
    /// matches, and vice versa. Empty: one EM over all candidates.
    #[serde(default)]
    pub training_rules: Vec<usize>,
    /// Groups of fields that agree together for people of one household
    /// (phone, village, surname): their positive weights are not added up
    /// beyond the strongest one, so a household is not mistaken for a person.
    #[serde(default)]
    pub correlated: Vec<Vec<usize>>,
}

impl Schema {
    /// Normalises one raw record, field by field in schema order.
    pub fn prepare(&self, raw: &[Option<&str>]) -> Prepared {
        Prepared {
            values: self
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    raw.get(i)
                        .copied()
                        .flatten()
                        .and_then(|r| f.kind.normalise(r))
                })
                .collect(),
        }
    }

    /// The blocking keys of a record, one per rule it has every part for:
    /// stable 64-bit hashes (stored in databases, so never `RandomState`).
    pub fn block_keys(&self, r: &Prepared) -> Vec<(usize, u64)> {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| self.block_key(i, rule, r).map(|k| (i, k)))
            .collect()
    }

    pub(crate) fn block_key(&self, index: usize, rule: &BlockRule, r: &Prepared) -> Option<u64> {
        let mut h = Fnv::new();
        h.write(&(index as u32).to_le_bytes());
        for part in &rule.parts {
            let (field, text) = match *part {
                KeyPart::Value(f) => (f, &*r.values.get(f)?.as_ref()?.v),
                KeyPart::Alt(f) => (f, &*r.values.get(f)?.as_ref()?.alt),
                KeyPart::Year(f) => {
                    let v = &r.values.get(f)?.as_ref()?.v;
                    (f, v.get(..4)?)
                }
            };
            if text.is_empty() {
                return None;
            }
            h.write(&(field as u32).to_le_bytes());
            h.write(text.as_bytes());
            h.write(&[0xff]);
        }
        Some(h.finish())
    }

    /// Fields used by a rule.
    pub fn rule_fields(&self, index: usize) -> Vec<usize> {
        self.rules[index]
            .parts
            .iter()
            .map(|p| match *p {
                KeyPart::Value(f) | KeyPart::Alt(f) | KeyPart::Year(f) => f,
            })
            .collect()
    }
}

/// FNV-1a, 64-bit: tiny, stable across runs and platforms.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
