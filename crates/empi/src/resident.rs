//! The county's schema: how a registration of a Chinese resident is compared.

use crate::schema::{BlockRule, Field, KeyPart, Kind, Prepared, Schema};
use yigong_core::patient::split_chinese_name;

/// Field order of [`schema`].
pub const RESIDENT_ID: usize = 0;
pub const SURNAME: usize = 1;
pub const GIVEN: usize = 2;
pub const BIRTH_DATE: usize = 3;
pub const SEX: usize = 4;
pub const PHONE: usize = 5;
pub const VILLAGE: usize = 6;

/// One registration as typed at a desk (any field may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration<'a> {
    pub name: &'a str,
    /// `male`/`female` (or 男/女).
    pub sex: Option<&'a str>,
    pub birth_date: Option<&'a str>,
    pub resident_id: Option<&'a str>,
    pub phone: Option<&'a str>,
    /// 12-digit village division code.
    pub village: Option<&'a str>,
}

fn field(name: &str, label_zh: &str, kind: Kind, tf: bool) -> Field {
    Field {
        name: name.into(),
        label_zh: label_zh.into(),
        kind,
        tf,
    }
}

fn rule(name: &str, parts: &[KeyPart]) -> BlockRule {
    BlockRule {
        name: name.into(),
        parts: parts.to_vec(),
    }
}

pub fn schema() -> Schema {
    use KeyPart::*;
    Schema {
        fields: vec![
            field("resident_id", "身份证号", Kind::ResidentId, false),
            field("surname", "姓", Kind::Surname, true),
            field("given", "名", Kind::GivenName, true),
            field("birth_date", "出生日期", Kind::Date, false),
            field("sex", "性别", Kind::Exact, false),
            field("phone", "电话", Kind::Id, false),
            field("village", "村(居)", Kind::Prefix(9), false),
        ],
        rules: vec![
            rule("身份证号", &[Value(RESIDENT_ID)]),
            rule("电话", &[Value(PHONE)]),
            rule(
                "姓名拼音+出生年",
                &[Alt(SURNAME), Alt(GIVEN), Year(BIRTH_DATE)],
            ),
            rule("村+出生日期", &[Value(VILLAGE), Value(BIRTH_DATE)]),
            rule("姓拼音+出生日期", &[Alt(SURNAME), Value(BIRTH_DATE)]),
            rule("名拼音+出生日期", &[Alt(GIVEN), Value(BIRTH_DATE)]),
            rule("姓名拼音+村", &[Alt(SURNAME), Alt(GIVEN), Value(VILLAGE)]),
        ],
        identity_field: Some(RESIDENT_ID),
        max_block: 400,
        training_rules: vec![0, 2],
        correlated: vec![vec![SURNAME, PHONE, VILLAGE]],
    }
}

/// Normalises a registration against [`schema`]: the name split into surname
/// (compound surnames such as 欧阳 kept whole) and given name.
pub fn prepare(schema: &Schema, r: &Registration) -> Prepared {
    let name = crate::normalize::name(r.name);
    let (surname, given) = if name.is_ascii() {
        (name.clone(), String::new())
    } else {
        split_chinese_name(&name)
    };
    let sex = r.sex.map(|s| match s.trim() {
        "男" | "M" | "m" | "1" => "male",
        "女" | "F" | "f" | "2" => "female",
        other => other,
    });
    schema.prepare(&[
        r.resident_id,
        Some(surname.as_str()),
        Some(given.as_str()),
        r.birth_date,
        sex,
        r.phone.map(crate::normalize::phone).as_deref(),
        r.village,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_and_blocks() {
        let s = schema();
        let a = prepare(
            &s,
            &Registration {
                name: "欧阳 晓明",
                sex: Some("男"),
                birth_date: Some("1990-01-01"),
                resident_id: Some("510521199001011232"),
                phone: Some("138 1234 5678"),
                village: Some("510521100001"),
            },
        );
        assert_eq!(a.values[SURNAME].as_ref().unwrap().v.as_ref(), "欧阳");
        assert_eq!(a.values[GIVEN].as_ref().unwrap().v.as_ref(), "晓明");
        assert_eq!(a.values[PHONE].as_ref().unwrap().v.as_ref(), "13812345678");
        assert_eq!(a.values[SEX].as_ref().unwrap().v.as_ref(), "male");
        assert_eq!(s.block_keys(&a).len(), s.rules.len());
        let b = prepare(
            &s,
            &Registration {
                name: "欧阳小明",
                ..Default::default()
            },
        );
        assert!(b.values[RESIDENT_ID].is_none());
        assert!(
            s.block_keys(&b).is_empty(),
            "no rule is complete without a birth date or phone"
        );
    }
}
