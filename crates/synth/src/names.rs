//! Chinese personal names with realistic frequencies, so that namesakes (重名)
//! occur as they do in a real county.
//!
//! Surnames are drawn by their share of the population; given names are one or
//! two characters from sex-specific pools that follow the fashion of the birth
//! decade (a grandmother is 秀英, her granddaughter 梓涵).

use crate::dist::Weighted;
use rand::Rng;
use std::sync::OnceLock;
use yigong_core::Sex;

/// The ~100 most common surnames with their approximate share of the population
/// per 100,000 (national 2020 household-registration figures, rounded, with the
/// south-western surnames 罗 何 邓 曾 唐 彭 谢 廖 雷 熊 raised and 林 lowered as
/// in Sichuan; 先 is a surname typical of Luzhou).
pub const SURNAMES: [(&str, u32); 102] = [
    ("李", 7900),
    ("王", 6600),
    ("张", 6400),
    ("刘", 5600),
    ("陈", 4700),
    ("杨", 3500),
    ("黄", 2300),
    ("罗", 2000),
    ("赵", 1900),
    ("周", 1900),
    ("吴", 1800),
    ("何", 1700),
    ("徐", 1400),
    ("胡", 1400),
    ("曾", 1300),
    ("邓", 1300),
    ("唐", 1200),
    ("谢", 1100),
    ("彭", 1000),
    ("孙", 1000),
    ("马", 1000),
    ("朱", 1000),
    ("郭", 900),
    ("高", 900),
    ("宋", 750),
    ("梁", 700),
    ("郑", 700),
    ("许", 650),
    ("冯", 650),
    ("廖", 650),
    ("肖", 650),
    ("田", 600),
    ("曹", 600),
    ("袁", 600),
    ("蒋", 600),
    ("董", 550),
    ("余", 550),
    ("杜", 550),
    ("熊", 500),
    ("雷", 450),
    ("韩", 450),
    ("潘", 450),
    ("蔡", 450),
    ("叶", 400),
    ("程", 400),
    ("苏", 400),
    ("魏", 400),
    ("吕", 400),
    ("丁", 400),
    ("任", 450),
    ("沈", 350),
    ("姚", 350),
    ("卢", 400),
    ("钟", 400),
    ("姜", 300),
    ("崔", 250),
    ("谭", 400),
    ("陆", 300),
    ("汪", 300),
    ("范", 300),
    ("林", 400),
    ("于", 300),
    ("金", 250),
    ("石", 300),
    ("贾", 250),
    ("夏", 300),
    ("付", 350),
    ("方", 250),
    ("白", 250),
    ("邹", 300),
    ("孟", 200),
    ("秦", 250),
    ("邱", 250),
    ("江", 250),
    ("尹", 250),
    ("薛", 200),
    ("段", 250),
    ("侯", 200),
    ("龙", 250),
    ("史", 200),
    ("陶", 250),
    ("黎", 250),
    ("贺", 200),
    ("顾", 150),
    ("毛", 200),
    ("郝", 150),
    ("龚", 250),
    ("邵", 150),
    ("万", 200),
    ("钱", 150),
    ("严", 200),
    ("武", 150),
    ("戴", 150),
    ("莫", 150),
    ("孔", 150),
    ("向", 200),
    ("汤", 150),
    ("先", 300),
    ("文", 250),
    ("牟", 200),
    ("欧阳", 20),
    ("司马", 5),
];

/// Given-name characters by birth cohort: (born before, male pool, female pool).
const ERAS: [(i32, &[&str], &[&str]); 5] = [
    (
        1950,
        &[
            "德", "福", "贵", "富", "发", "财", "寿", "云", "树", "成", "明", "清", "光", "全",
            "银", "金", "祥", "顺", "华", "洪", "安", "万", "绍", "昌", "永", "荣", "炳", "国",
            "海", "山", "兴", "正",
        ],
        &[
            "秀", "英", "兰", "珍", "凤", "芳", "淑", "桂", "素", "翠", "琼", "玉", "菊", "莲",
            "群", "蓉", "芝", "碧", "春", "清", "惠", "婉", "仙", "贞", "珠", "香", "满", "德",
        ],
    ),
    (
        1970,
        &[
            "建", "国", "军", "华", "明", "平", "强", "文", "志", "红", "卫", "东", "兵", "忠",
            "林", "学", "良", "光", "勇", "生", "伟", "成", "德", "福", "永", "洪", "章", "友",
            "中", "刚", "庆", "祥",
        ],
        &[
            "秀", "英", "华", "兰", "红", "玉", "芳", "琼", "珍", "群", "敏", "凤", "桂", "萍",
            "琴", "芬", "蓉", "霞", "丽", "梅", "素", "淑", "莉", "碧", "会", "术",
        ],
    ),
    (
        1990,
        &[
            "伟", "勇", "军", "杰", "涛", "斌", "强", "波", "刚", "平", "辉", "明", "超", "林",
            "鹏", "华", "俊", "健", "毅", "飞", "峰", "兵", "磊", "亮", "鑫", "川", "江", "春",
            "海", "建",
        ],
        &[
            "丽", "燕", "艳", "敏", "静", "娟", "霞", "琴", "英", "梅", "芳", "玲", "红", "莉",
            "萍", "蓉", "婷", "雪", "佳", "琳", "倩", "春", "小", "晓", "利", "容",
        ],
    ),
    (
        2005,
        &[
            "杰", "涛", "浩", "宇", "鑫", "磊", "鹏", "超", "俊", "帅", "龙", "飞", "强", "波",
            "洋", "阳", "凯", "林", "伟", "建", "豪", "文", "博", "川", "明", "成", "翔", "东",
        ],
        &[
            "婷", "雪", "丹", "倩", "静", "琳", "玲", "颖", "佳", "敏", "燕", "娟", "欢", "悦",
            "梦", "洁", "露", "莎", "媛", "月", "蕾", "瑶", "晓", "思", "雨", "小",
        ],
    ),
    (
        i32::MAX,
        &[
            "宇", "浩", "轩", "睿", "泽", "晨", "博", "航", "铭", "杰", "锦", "子", "俊", "梓",
            "诚", "逸", "骏", "一", "奕", "辰", "煜", "宸", "皓", "文", "明", "嘉", "沐", "鑫",
        ],
        &[
            "欣", "怡", "萱", "雨", "涵", "梓", "诗", "梦", "思", "可", "若", "语", "瑶", "琪",
            "紫", "悦", "馨", "彤", "妍", "佳", "一", "芯", "沫", "汐", "雅", "晴", "依", "子",
        ],
    ),
];

/// Share of one-character given names by cohort (high in the 1960s-80s).
fn single_char_share(birth_year: i32) -> f64 {
    match birth_year {
        ..1950 => 0.15,
        1950..1990 => 0.35,
        1990..2005 => 0.22,
        _ => 0.08,
    }
}

fn surname_table() -> &'static Weighted<&'static str> {
    static TABLE: OnceLock<Weighted<&'static str>> = OnceLock::new();
    TABLE.get_or_init(|| Weighted::new(SURNAMES.iter().copied()))
}

/// A surname drawn by its frequency.
pub fn surname(rng: &mut impl Rng) -> &'static str {
    surname_table().pick(rng)
}

fn pool(sex: Sex, birth_year: i32) -> &'static [&'static str] {
    let era = ERAS
        .iter()
        .find(|(before, _, _)| birth_year < *before)
        .unwrap_or(&ERAS[ERAS.len() - 1]);
    match sex {
        Sex::Male => era.1,
        Sex::Female => era.2,
    }
}

/// A generation character (字辈) that siblings born in the same era may share.
pub fn generation_char(rng: &mut impl Rng, sex: Sex, birth_year: i32) -> &'static str {
    let p = pool(sex, birth_year);
    p[rng.random_range(0..p.len())]
}

/// A given name of one or two characters. With `generation`, the name is two
/// characters starting with that shared character.
pub fn given(rng: &mut impl Rng, sex: Sex, birth_year: i32, generation: Option<&str>) -> String {
    let p = pool(sex, birth_year);
    let mut draw = || p[rng.random_range(0..p.len())];
    match generation {
        Some(g) => {
            let second = draw();
            format!("{g}{second}")
        }
        None => {
            let first = draw();
            if rng.random_bool(single_char_share(birth_year)) {
                first.to_string()
            } else {
                let second = p[rng.random_range(0..p.len())];
                format!("{first}{second}")
            }
        }
    }
}

/// Number of characters of the surname at the start of `name` (2 for the
/// compound surnames of [`SURNAMES`], else 1).
pub fn surname_len(name: &str) -> usize {
    let compound = SURNAMES
        .iter()
        .any(|(s, _)| s.chars().count() == 2 && name.starts_with(s) && name.chars().count() > 2);
    if compound { 2 } else { 1 }
}

/// A full name (surname + given name).
pub fn full_name(rng: &mut impl Rng, sex: Sex, birth_year: i32) -> String {
    let s = surname(rng);
    let g = given(rng, sex, birth_year, None);
    format!("{s}{g}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeMap;

    #[test]
    fn pools_are_single_han_characters() {
        let mut seen = std::collections::BTreeSet::new();
        for (s, w) in SURNAMES {
            assert!(w > 0);
            assert!(s.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
            assert!(seen.insert(s), "duplicate surname {s}");
        }
        for (_, m, f) in ERAS {
            for c in m.iter().chain(f.iter()) {
                assert_eq!(c.chars().count(), 1, "{c}");
                assert!(c.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
            }
        }
    }

    #[test]
    fn common_surnames_dominate_and_namesakes_occur() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut surnames: BTreeMap<&str, u32> = BTreeMap::new();
        let mut names: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..20_000 {
            let s = surname(&mut rng);
            *surnames.entry(s).or_default() += 1;
            let sex = if i % 2 == 0 { Sex::Male } else { Sex::Female };
            *names
                .entry(format!("{s}{}", given(&mut rng, sex, 1975, None)))
                .or_default() += 1;
        }
        let li = surnames["李"] as f64 / 20_000.0;
        assert!((0.06..0.10).contains(&li), "李 share {li}");
        assert!(names.values().any(|&n| n >= 5), "namesakes are common");
    }

    #[test]
    fn given_names_follow_the_era() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let g = given(&mut rng, Sex::Female, 2015, Some("梓"));
        assert!(g.starts_with('梓') && g.chars().count() == 2);
        for year in [1930, 1960, 1985, 2000, 2020] {
            for _ in 0..200 {
                let n = given(&mut rng, Sex::Male, year, None).chars().count();
                assert!((1..=2).contains(&n));
            }
        }
    }
}
