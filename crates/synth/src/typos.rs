//! The mechanics of clerical errors in a typed identity: which characters a
//! pinyin input method or a hurried reader confuses, how an ID number gets
//! mangled, how dates slip. How often each error happens is decided in
//! `registrations.rs`; every function here only applies one error (and returns
//! `None` when it cannot apply to the value at hand).

use crate::names;
use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use std::collections::HashMap;
use std::sync::OnceLock;
use yigong_core::Sex;

/// Common given-name characters grouped by pronunciation (tones ignored, as a
/// pinyin input method offers them): 王晓明 becomes 王小明, 李娟 becomes 李鹃.
/// No character is in two groups.
const HOMOPHONES: &[&str] = &[
    "晓小筱孝肖",
    "明铭鸣名",
    "娟鹃涓",
    "丽莉利俐立力黎",
    "华花桦",
    "英莹颖瑛影",
    "芳方舫",
    "红洪宏鸿虹",
    "军君俊峻骏钧",
    "杰洁婕捷",
    "婷亭庭廷",
    "玲灵铃凌伶龄",
    "林琳霖麟",
    "平萍苹坪",
    "琴勤芹秦",
    "梅美媚玫",
    "燕艳彦雁妍岩",
    "霞夏侠",
    "敏民闽珉",
    "静晶敬婧菁靖京",
    "雪学",
    "宇雨玉羽语瑜钰予煜",
    "浩豪昊皓",
    "涛桃韬",
    "斌彬滨宾",
    "波博柏勃",
    "刚钢岗纲",
    "辉慧惠会晖卉",
    "超朝潮",
    "鹏朋蓬",
    "建健剑坚键",
    "飞菲非斐",
    "峰锋丰枫凤风",
    "磊蕾雷",
    "亮良梁靓",
    "鑫欣心新馨昕芯",
    "川传",
    "江疆姜",
    "春纯椿",
    "勇永涌咏",
    "强蔷",
    "伟维玮卫薇威巍炜",
    "龙隆",
    "洋阳杨扬",
    "凯楷恺",
    "翔祥香湘",
    "东冬栋",
    "轩萱宣璇",
    "睿瑞蕊锐",
    "泽则",
    "晨辰宸琛臣",
    "航杭",
    "子梓紫姿",
    "一奕逸怡依艺仪毅益宜",
    "成诚承城程",
    "涵含寒晗",
    "诗时世",
    "梦萌蒙孟",
    "思斯丝",
    "可珂柯",
    "琪琦淇奇祺骐",
    "悦月越岳",
    "彤童桐",
    "晴清青卿庆",
    "秀修",
    "兰岚蓝澜",
    "珍贞真振",
    "桂贵",
    "素苏",
    "翠萃",
    "菊桔",
    "莲连",
    "蓉荣容融",
    "芝志智枝之",
    "福富付",
    "财才彩",
    "云芸韵",
    "树淑书舒术",
    "全泉权",
    "银音",
    "顺舜",
    "万婉",
    "昌长畅",
    "炳兵冰",
    "山珊善杉",
    "兴星杏",
    "正政征",
    "生胜升圣",
    "忠中钟",
    "光广",
    "友有佑",
    "欢焕环",
    "露璐路",
    "莎沙",
    "媛园源圆元远",
    "瑶遥耀",
    "佳嘉家",
    "德得",
    "发法",
    "寿守",
    "金今锦",
    "国果",
    "碧璧",
    "仙先",
    "珠朱",
    "满曼",
    "章彰",
    "文雯闻",
    "丹单",
    "倩茜",
    "芬分",
    "汐夕希熙",
    "沫末莫",
    "雅亚",
    "沐木牧",
    "群裙",
];

/// Characters misread for one another by shape (handwriting, a worn card, a
/// glance): 王/玉, 未/末, 己/已, 侯/候. Applied in both directions, to the
/// surname as well as the given name.
const SIMILAR_SHAPES: &[(char, char)] = &[
    ('王', '玉'),
    ('未', '末'),
    ('己', '已'),
    ('土', '士'),
    ('天', '夫'),
    ('人', '入'),
    ('侯', '候'),
    ('李', '季'),
    ('田', '由'),
    ('汪', '江'),
    ('徐', '涂'),
    ('余', '佘'),
    ('杜', '社'),
    ('戴', '载'),
    ('宋', '宗'),
    ('明', '朋'),
    ('晴', '睛'),
    ('辉', '挥'),
    ('兵', '乒'),
    ('贵', '责'),
    ('桂', '柱'),
    ('梅', '海'),
    ('瑞', '端'),
    ('玲', '怜'),
    ('秀', '季'),
    ('淑', '叔'),
];

/// Traditional forms that some people write and some old systems store.
const TRADITIONAL: &[(char, char)] = &[
    ('陈', '陳'),
    ('张', '張'),
    ('刘', '劉'),
    ('杨', '楊'),
    ('黄', '黃'),
    ('赵', '趙'),
    ('吴', '吳'),
    ('罗', '羅'),
    ('郑', '鄭'),
    ('邓', '鄧'),
    ('谢', '謝'),
    ('冯', '馮'),
    ('许', '許'),
    ('韩', '韓'),
    ('叶', '葉'),
    ('苏', '蘇'),
    ('钟', '鍾'),
    ('卢', '盧'),
    ('龙', '龍'),
    ('华', '華'),
    ('国', '國'),
    ('丽', '麗'),
    ('军', '軍'),
    ('红', '紅'),
    ('伟', '偉'),
    ('东', '東'),
    ('兰', '蘭'),
    ('凤', '鳳'),
    ('云', '雲'),
    ('飞', '飛'),
    ('艳', '艷'),
    ('凯', '凱'),
    ('鹏', '鵬'),
    ('贵', '貴'),
    ('荣', '榮'),
    ('庆', '慶'),
    ('琼', '瓊'),
    ('莲', '蓮'),
    ('兴', '興'),
    ('发', '發'),
    ('宝', '寶'),
    ('涛', '濤'),
];

/// Character → the characters it is confused with.
type Confusions = HashMap<char, Vec<char>>;

fn confuse(map: &mut Confusions, a: char, b: char) {
    map.entry(a).or_default().push(b);
}

fn homophones() -> &'static Confusions {
    static TABLE: OnceLock<Confusions> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = Confusions::new();
        for group in HOMOPHONES {
            for a in group.chars() {
                for b in group.chars().filter(|&b| b != a) {
                    confuse(&mut map, a, b);
                }
            }
        }
        map
    })
}

fn similar_shapes() -> &'static Confusions {
    static TABLE: OnceLock<Confusions> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = Confusions::new();
        for &(a, b) in SIMILAR_SHAPES {
            confuse(&mut map, a, b);
            confuse(&mut map, b, a);
        }
        map
    })
}

fn traditional_of(c: char) -> Option<char> {
    TRADITIONAL.iter().find(|&&(s, _)| s == c).map(|&(_, t)| t)
}

/// Replaces one randomly chosen character, among the positions `from..` of
/// `name` that `table` knows, by one it is confused with.
fn replace_one(rng: &mut impl Rng, name: &str, from: usize, table: &Confusions) -> Option<String> {
    let mut chars: Vec<char> = name.chars().collect();
    let eligible: Vec<usize> = (from..chars.len())
        .filter(|&i| table.contains_key(&chars[i]))
        .collect();
    let &i = eligible.get(rng.random_range(0..eligible.len().max(1)))?;
    let others = &table[&chars[i]];
    chars[i] = others[rng.random_range(0..others.len())];
    Some(chars.into_iter().collect())
}

/// A homophone for one character of the given name (王晓明 → 王小明).
pub fn homophone(rng: &mut impl Rng, name: &str) -> Option<String> {
    replace_one(rng, name, names::surname_len(name), homophones())
}

/// A similar-shaped character for one character of the name (王 → 玉).
pub fn similar_shape(rng: &mut impl Rng, name: &str) -> Option<String> {
    replace_one(rng, name, 0, similar_shapes())
}

/// The name written with traditional characters where the table has them (陈 → 陳).
pub fn traditional(name: &str) -> Option<String> {
    let out: String = name
        .chars()
        .map(|c| traditional_of(c).unwrap_or(c))
        .collect();
    (out != name).then_some(out)
}

/// (surname, given name) as character vectors.
fn split(name: &str) -> (String, Vec<char>) {
    let n = names::surname_len(name);
    (
        name.chars().take(n).collect(),
        name.chars().skip(n).collect(),
    )
}

/// One character of a two-character given name left out (李秀英 → 李英).
pub fn drop_given_char(rng: &mut impl Rng, name: &str) -> Option<String> {
    let (surname, mut given) = split(name);
    if given.len() < 2 {
        return None;
    }
    given.remove(rng.random_range(0..given.len()));
    Some(surname + &given.into_iter().collect::<String>())
}

/// A character of the person's era added to a one-character given name
/// (王芳 → 王秀芳 or 王芳秀).
pub fn add_given_char(rng: &mut impl Rng, name: &str, sex: Sex, birth_year: i32) -> Option<String> {
    let (surname, given) = split(name);
    if given.len() != 1 {
        return None;
    }
    let extra = names::generation_char(rng, sex, birth_year);
    let given = given[0];
    Some(if rng.random_bool(0.5) {
        format!("{surname}{extra}{given}")
    } else {
        format!("{surname}{given}{extra}")
    })
}

/// The name a person goes by rather than the one on the card: the last given
/// character doubled (王晓明 → 王明明) or after 小 (王芳 → 王小芳); an old
/// woman as surname + 氏 (李氏), as rural records long wrote married women.
pub fn nickname(rng: &mut impl Rng, name: &str, sex: Sex, birth_year: i32) -> Option<String> {
    let (surname, given) = split(name);
    let &last = given.last()?;
    let variant = if sex == Sex::Female && birth_year < 1950 && rng.random_bool(0.5) {
        format!("{surname}氏")
    } else if rng.random_bool(0.5) {
        format!("{surname}{last}{last}")
    } else {
        format!("{surname}小{last}")
    };
    (variant != name).then_some(variant)
}

/// Each ASCII digit and the X as its full-width form (an input method left in
/// full-width mode).
pub fn full_width(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32('０' as u32 + (c as u32 - '0' as u32)).unwrap_or(c),
            'X' => 'Ｘ',
            'x' => 'ｘ',
            c => c,
        })
        .collect()
}

/// Spaces between the division, the birth date and the rest (510521 19800101 123X).
pub fn spaced(id: &str) -> Option<String> {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() != 18 {
        return None;
    }
    let part = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
    Some(format!("{} {} {}", part(0..6), part(6..14), part(14..18)))
}

/// A lower-case check character x.
pub fn lower_x(id: &str) -> Option<String> {
    id.ends_with('X').then(|| id.replace('X', "x"))
}

/// The first-generation 15-digit number (two-digit year, no check character) of
/// a person born in the 1900s.
pub fn old_fifteen(id: &str) -> Option<String> {
    (id.len() == 18 && id.is_ascii() && &id[6..8] == "19")
        .then(|| format!("{}{}", &id[..6], &id[8..17]))
}

/// One character of an 18-character number typed wrong; the check character no
/// longer fits (GB 11643 detects every single-character error).
pub fn digit_typo(rng: &mut impl Rng, id: &str) -> Option<String> {
    let mut chars: Vec<char> = id.chars().collect();
    if chars.len() != 18 {
        return None;
    }
    let i = rng.random_range(0..18);
    let old = chars[i];
    let mut new = old;
    while new == old {
        new = char::from(b'0' + rng.random_range(0..10u8));
    }
    chars[i] = new;
    Some(chars.into_iter().collect())
}

/// Two adjacent, different digits of the first 17 swapped (also always detected
/// by the check character).
pub fn transpose(rng: &mut impl Rng, id: &str) -> Option<String> {
    let mut chars: Vec<char> = id.chars().collect();
    if chars.len() != 18 {
        return None;
    }
    let eligible: Vec<usize> = (0..16).filter(|&i| chars[i] != chars[i + 1]).collect();
    let &i = eligible.get(rng.random_range(0..eligible.len().max(1)))?;
    chars.swap(i, i + 1);
    Some(chars.into_iter().collect())
}

/// An ID as a system keeps it once typed: half-width, no spaces, upper-case X.
pub fn normalise_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '０'..='９' => char::from_u32('0' as u32 + (c as u32 - '０' as u32)).unwrap_or(c),
            'ｘ' | 'Ｘ' | 'x' => 'X',
            c => c,
        })
        .collect()
}

/// Day and month swapped (3 April typed as 4 March); only when both are 12 or
/// less and differ.
pub fn swap_day_month(d: NaiveDate) -> Option<NaiveDate> {
    (d.day() <= 12 && d.day() != d.month())
        .then(|| NaiveDate::from_ymd_opt(d.year(), d.day(), d.month()))
        .flatten()
}

/// The day before or after.
pub fn next_to(rng: &mut impl Rng, d: NaiveDate) -> NaiveDate {
    d + Duration::days(if rng.random_bool(0.5) { 1 } else { -1 })
}

/// The address without the province and city, or without the county too
/// (四川省泸州市泸县福集镇… → 泸县福集镇… or 福集镇…).
pub fn abbreviate_address(rng: &mut impl Rng, address: &str) -> Option<String> {
    let prefix = if rng.random_bool(0.5) {
        "四川省泸州市"
    } else {
        "四川省泸州市泸县"
    };
    address.strip_prefix(prefix).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::substream;
    use std::collections::HashSet;
    use yigong_core::ResidentId;

    fn is_han(c: char) -> bool {
        ('\u{4e00}'..='\u{9fff}').contains(&c)
    }

    #[test]
    fn tables_are_consistent() {
        let mut seen = HashSet::new();
        for group in HOMOPHONES {
            for c in group.chars() {
                assert!(is_han(c));
                assert!(seen.insert(c), "{c} is in two homophone groups");
            }
        }
        for (a, b) in SIMILAR_SHAPES.iter().chain(TRADITIONAL) {
            assert!(is_han(*a) && is_han(*b) && a != b);
        }
        let simplified: HashSet<char> = TRADITIONAL.iter().map(|t| t.0).collect();
        assert_eq!(simplified.len(), TRADITIONAL.len());
    }

    #[test]
    fn name_errors() {
        let mut rng = substream(1, 0, 0);
        for _ in 0..50 {
            let h = homophone(&mut rng, "王晓明").unwrap();
            assert!(h.starts_with('王') && h != "王晓明" && h.chars().count() == 3);
        }
        assert_eq!(homophone(&mut rng, "王"), None);
        assert_eq!(similar_shape(&mut rng, "王芳").as_deref(), Some("玉芳"));
        assert_eq!(traditional("陈国华").as_deref(), Some("陳國華"));
        assert_eq!(traditional("李娟"), None);
        let d = drop_given_char(&mut rng, "欧阳秀英").unwrap();
        assert!(d == "欧阳秀" || d == "欧阳英", "{d}");
        assert_eq!(drop_given_char(&mut rng, "李娟"), None);
        let a = add_given_char(&mut rng, "李娟", Sex::Female, 1980).unwrap();
        assert_eq!(a.chars().count(), 3);
        let n = nickname(&mut rng, "王晓明", Sex::Male, 2015).unwrap();
        assert!(n == "王明明" || n == "王小明", "{n}");
    }

    #[test]
    fn id_errors_break_or_keep_the_number_as_expected() {
        let mut rng = substream(2, 0, 0);
        let id = ResidentId::compose("510521", NaiveDate::from_ymd_opt(1968, 3, 7).unwrap(), 37);
        let id = id.as_str();
        for _ in 0..200 {
            let typo = digit_typo(&mut rng, id).unwrap();
            assert_eq!(
                ResidentId::parse(&typo).unwrap_err().code(),
                "resident-id-checksum"
            );
            let swapped = transpose(&mut rng, id).unwrap();
            assert_ne!(swapped, id);
            assert_eq!(
                ResidentId::parse(&swapped).unwrap_err().code(),
                "resident-id-checksum"
            );
        }
        let old = old_fifteen(id).unwrap();
        assert_eq!(old.len(), 15);
        assert_eq!(ResidentId::parse(&old).unwrap().as_str(), id);
        for raw in [full_width(id), spaced(id).unwrap()] {
            assert_ne!(raw, id);
            assert_eq!(normalise_id(&raw), id);
            assert_eq!(ResidentId::parse(&raw).unwrap().as_str(), id);
        }
        assert_eq!(lower_x("11010519491231002X").unwrap(), "11010519491231002x");
        assert_eq!(lower_x(id), None);
    }

    #[test]
    fn date_errors() {
        let d = |m, day| NaiveDate::from_ymd_opt(1990, m, day).unwrap();
        assert_eq!(swap_day_month(d(4, 3)), Some(d(3, 4)));
        assert_eq!(swap_day_month(d(4, 4)), None);
        assert_eq!(swap_day_month(d(4, 13)), None);
        let mut rng = substream(3, 0, 0);
        assert_eq!((next_to(&mut rng, d(4, 3)) - d(4, 3)).num_days().abs(), 1);
    }
}
