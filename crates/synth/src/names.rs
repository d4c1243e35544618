//! Chinese names with realistic frequencies, so that namesakes occur as they do
//! in a real county.

use rand::Rng;

/// The most common surnames with their approximate share (per mille) of the
/// population (2020 household-registration statistics, rounded).
pub const SURNAMES: [(&str, u32); 60] = [
    ("王", 72),
    ("李", 72),
    ("张", 69),
    ("刘", 54),
    ("陈", 54),
    ("杨", 38),
    ("黄", 25),
    ("赵", 23),
    ("吴", 21),
    ("周", 20),
    ("徐", 17),
    ("孙", 15),
    ("马", 15),
    ("朱", 14),
    ("胡", 13),
    ("郭", 12),
    ("何", 12),
    ("林", 11),
    ("罗", 12),
    ("高", 11),
    ("郑", 10),
    ("梁", 9),
    ("谢", 9),
    ("宋", 8),
    ("唐", 8),
    ("许", 7),
    ("韩", 7),
    ("邓", 7),
    ("冯", 7),
    ("曹", 7),
    ("彭", 6),
    ("曾", 6),
    ("肖", 6),
    ("田", 6),
    ("董", 5),
    ("潘", 5),
    ("袁", 5),
    ("蔡", 5),
    ("蒋", 5),
    ("余", 5),
    ("于", 5),
    ("杜", 5),
    ("叶", 4),
    ("程", 4),
    ("魏", 4),
    ("苏", 4),
    ("吕", 4),
    ("丁", 4),
    ("任", 4),
    ("卢", 4),
    ("姚", 4),
    ("沈", 4),
    ("钟", 4),
    ("姜", 4),
    ("崔", 3),
    ("谭", 3),
    ("陆", 3),
    ("范", 3),
    ("汪", 3),
    ("欧阳", 1),
];

const MALE: [&str; 48] = [
    "伟", "强", "军", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "斌", "华", "鹏", "波", "林",
    "建", "国", "文", "志", "峰", "磊", "成", "海", "俊", "德", "福", "贵", "富", "洪", "昌", "宇",
    "浩", "子", "轩", "睿", "泽", "晨", "博", "航", "永", "红", "兵", "春", "祥", "东", "亮", "学",
];

const FEMALE: [&str; 48] = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "桂", "英", "秀", "兰", "梅", "琴",
    "云", "莲", "珍", "凤", "红", "华", "婷", "雪", "慧", "欣", "怡", "萱", "雨", "晓", "佳", "琳",
    "淑", "素", "翠", "春", "梦", "思", "涵", "紫", "小", "美", "月", "明", "彤", "瑶", "诗", "丹",
];

fn cumulative() -> &'static [(u32, &'static str)] {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut acc = 0;
        SURNAMES
            .iter()
            .map(|(s, w)| {
                acc += w;
                (acc, *s)
            })
            .collect()
    })
}

pub fn surname(rng: &mut impl Rng) -> &'static str {
    let t = cumulative();
    let total = t.last().map_or(1, |x| x.0);
    let r = rng.random_range(0..total);
    t.iter().find(|(acc, _)| r < *acc).map_or("王", |x| x.1)
}

pub fn given(rng: &mut impl Rng, male: bool) -> String {
    let pool: &[&str] = if male { &MALE } else { &FEMALE };
    let first = pool[rng.random_range(0..pool.len())];
    if rng.random_bool(0.22) {
        return first.to_string();
    }
    let second = pool[rng.random_range(0..pool.len())];
    format!("{first}{second}")
}
