//! Duplicate registrations: deterministic, with the promised multiplicity, a
//! ground truth consistent with the stream, every kind of typing error, and the
//! look-alikes (twins) that are not duplicates.

use chrono::{Datelike, NaiveDate};
use std::collections::{BTreeMap, HashMap, HashSet};
use yigong_core::{Patient, ResidentId};
use yigong_synth::*;

mod common;
use common::params;

fn collect(p: &Params) -> (Vec<Registration>, RegistrationSummary) {
    let mut v = vec![];
    let s = registrations(p, &mut |r| v.push(r));
    (v, s)
}

/// Registrations grouped by person, in stream order (the first is the clean one).
fn by_person(regs: &[Registration]) -> BTreeMap<u32, Vec<&Registration>> {
    let mut m: BTreeMap<u32, Vec<&Registration>> = BTreeMap::new();
    for r in regs {
        m.entry(r.person).or_default().push(r);
    }
    m
}

#[test]
fn same_params_same_registrations() {
    let (a, sa) = collect(&params(3_000, 7));
    let (b, sb) = collect(&params(3_000, 7));
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let (c, _) = collect(&params(3_000, 8));
    assert_ne!(a, c);
}

#[test]
fn summary_and_ids_match_the_stream() {
    let (regs, s) = collect(&params(20_000, 1));
    assert_eq!(s.registrations, regs.len());
    assert_eq!(s.persons, 20_000);
    let groups = by_person(&regs);
    assert_eq!(groups.len(), 20_000);
    assert_eq!(
        groups.keys().copied().collect::<Vec<_>>(),
        (0..20_000).collect::<Vec<_>>()
    );
    let pairs: u64 = groups
        .values()
        .map(|g| (g.len() * (g.len() - 1) / 2) as u64)
        .sum();
    assert_eq!(s.true_pairs, pairs);
    // Ids are unique and number the stream.
    for (i, r) in regs.iter().enumerate() {
        assert_eq!(r.id, format!("reg-{:07}", i + 1));
    }
    assert_eq!(
        regs.iter().map(|r| &r.id).collect::<HashSet<_>>().len(),
        regs.len()
    );
    // Later registrations are held back: most are not next to the first one.
    let position: HashMap<&str, usize> = regs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut far = 0;
    let mut later = 0;
    for g in groups.values() {
        for r in &g[1..] {
            later += 1;
            if position[r.id.as_str()] > position[g[0].id.as_str()] + 10 {
                far += 1;
            }
        }
    }
    assert!(
        far * 10 > later * 9,
        "{far} of {later} later registrations are far"
    );
}

#[test]
fn multiplicity_is_close_to_the_targets() {
    let (regs, _) = collect(&params(20_000, 2));
    let groups = by_person(&regs);
    let n = groups.len() as f64;
    let at_least = |k: usize| groups.values().filter(|g| g.len() >= k).count() as f64 / n;
    let (twice, thrice) = (at_least(2), at_least(3));
    assert!((0.32..=0.38).contains(&twice), "registered twice: {twice}");
    assert!((0.10..=0.14).contains(&thrice), "three times: {thrice}");
    assert_eq!(at_least(4), 0.0);
    // Older people are registered again more often than young adults.
    let share = |ages: std::ops::Range<i32>| {
        let g: Vec<_> = groups
            .values()
            .filter(|g| ages.contains(&(2026 - g[0].typed.birth_date.unwrap().year())))
            .collect();
        g.iter().filter(|g| g.len() >= 2).count() as f64 / g.len() as f64
    };
    assert!(share(65..100) > share(20..40) + 0.1);
}

#[test]
fn first_registrations_are_the_county_residents() {
    let p = params(3_000, 4);
    let (regs, _) = collect(&p);
    let groups = by_person(&regs);
    let mut residents: Vec<Patient> = vec![];
    let mut orgs = HashSet::new();
    generate(&p, &mut |item| match item {
        Item::Patient(pt) if !pt.id.ends_with("-d1") => residents.push(pt),
        Item::Org(o) => {
            orgs.insert(o.id);
        }
        _ => {}
    });
    assert_eq!(residents.len(), groups.len());
    for (i, pt) in residents.iter().enumerate() {
        assert_eq!(pt.id, format!("pat-{:07}", i + 1));
        let g = &groups[&(i as u32)];
        let f = g[0];
        assert_eq!(Some(&f.institution), pt.managing_institution.as_ref());
        assert_eq!(f.typed.name, pt.name);
        assert_eq!(f.typed.sex, Some(pt.sex));
        assert_eq!(f.typed.birth_date, Some(pt.birth_date));
        assert_eq!(
            f.typed.resident_id.as_deref(),
            pt.resident_id.as_ref().map(ResidentId::as_str)
        );
        assert_eq!(
            (&f.typed.phone, &f.typed.village, &f.typed.address),
            (&pt.phone, &pt.village, &pt.address)
        );
        // Each registration at a different institution of the county.
        let places: HashSet<_> = g.iter().map(|r| &r.institution).collect();
        assert_eq!(places.len(), g.len());
        assert!(places.iter().all(|i| orgs.contains(*i)));
        for r in g {
            assert!(r.typed.birth_date.is_none_or(|d| d <= p.as_of));
        }
    }
}

/// The kinds of typing error, as recognised by comparing a later registration
/// with the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Homophone,
    SimilarShape,
    Traditional,
    GivenDropped,
    GivenAdded,
    Nickname,
    SexWrong,
    SexMissing,
    DayMonthSwapped,
    NextDay,
    BirthMissing,
    IdFifteen,
    IdTypo,
    IdTransposed,
    IdLowerX,
    IdFullWidth,
    IdSpaces,
    IdMissing,
    PhoneChanged,
    PhoneMissing,
    VillageMissing,
    AddressAbbreviated,
    AddressMissing,
}

const TRADITIONAL: &str =
    "陳張劉楊黃趙吳羅鄭鄧謝馮許韓葉蘇鍾盧龍華國麗軍紅偉東蘭鳳雲飛艷凱鵬貴榮慶瓊蓮興發寶濤";
/// A few of the generator's homophone groups and similar-shape pairs.
const SOME_HOMOPHONES: [&str; 8] = [
    "晓小筱孝肖",
    "明铭鸣名",
    "丽莉利俐立力黎",
    "英莹颖瑛影",
    "红洪宏鸿虹",
    "军君俊峻骏钧",
    "伟维玮卫薇威巍炜",
    "燕艳彦雁妍岩",
];
const SOME_SHAPES: [(char, char); 6] = [
    ('王', '玉'),
    ('李', '季'),
    ('侯', '候'),
    ('汪', '江'),
    ('田', '由'),
    ('徐', '涂'),
];

fn name_kinds(first: &str, later: &str, out: &mut Vec<Kind>) {
    if first == later {
        return;
    }
    let f: Vec<char> = first.chars().collect();
    let l: Vec<char> = later.chars().collect();
    if l.iter().any(|c| TRADITIONAL.contains(*c)) {
        out.push(Kind::Traditional);
    }
    if l.len() == f.len() {
        let diff: Vec<usize> = (0..f.len()).filter(|&i| f[i] != l[i]).collect();
        if let [i] = diff[..] {
            let (a, b) = (f[i], l[i]);
            if SOME_HOMOPHONES
                .iter()
                .any(|g| g.contains(a) && g.contains(b))
            {
                out.push(Kind::Homophone);
            }
            if SOME_SHAPES.contains(&(a, b)) || SOME_SHAPES.contains(&(b, a)) {
                out.push(Kind::SimilarShape);
            }
        }
    }
    let last = |v: &[char]| v.last().copied();
    let nickname = l.last() == Some(&'氏')
        || (l.len() >= 3 && l[l.len() - 1] == l[l.len() - 2] && last(&f) == last(&l))
        || (l.len() == 3 && l[1] == '小' && last(&f) == last(&l));
    if nickname {
        out.push(Kind::Nickname);
    } else if l.len() + 1 == f.len() && f.iter().filter(|c| !l.contains(c)).count() == 1 {
        out.push(Kind::GivenDropped);
    } else if l.len() == f.len() + 1 && l.iter().filter(|c| !f.contains(c)).count() == 1 {
        out.push(Kind::GivenAdded);
    }
}

fn id_kinds(first: &str, later: Option<&str>, out: &mut Vec<Kind>) {
    let Some(raw) = later else {
        out.push(Kind::IdMissing);
        return;
    };
    if raw.contains(' ') {
        out.push(Kind::IdSpaces);
    }
    if raw.contains('x') {
        out.push(Kind::IdLowerX);
    }
    if raw.chars().any(|c| ('０'..='９').contains(&c)) {
        out.push(Kind::IdFullWidth);
    }
    let typed: Vec<char> = raw
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| match c {
            '０'..='９' => char::from_u32('0' as u32 + (c as u32 - '０' as u32)).unwrap(),
            'x' | 'ｘ' | 'Ｘ' => 'X',
            c => c,
        })
        .collect();
    let f: Vec<char> = first.chars().collect();
    if typed.len() == 15 {
        out.push(Kind::IdFifteen);
        assert_eq!(ResidentId::parse(raw).unwrap().as_str(), first);
        return;
    }
    let diff: Vec<usize> = (0..18).filter(|&i| f[i] != typed[i]).collect();
    match diff[..] {
        [] => {}
        [_] => out.push(Kind::IdTypo),
        [i, j] if j == i + 1 && f[i] == typed[j] && f[j] == typed[i] => {
            out.push(Kind::IdTransposed)
        }
        _ => panic!("{first} typed as {raw}"),
    }
    if !diff.is_empty() {
        assert_eq!(
            ResidentId::parse(raw).unwrap_err().code(),
            "resident-id-checksum",
            "{raw}"
        );
    }
}

fn kinds(f: &Registration, r: &Registration) -> Vec<Kind> {
    let mut out = vec![];
    name_kinds(&f.typed.name, &r.typed.name, &mut out);
    match r.typed.sex {
        None => out.push(Kind::SexMissing),
        s if s != f.typed.sex => out.push(Kind::SexWrong),
        _ => {}
    }
    let fb = f.typed.birth_date.unwrap();
    let swapped =
        NaiveDate::from_ymd_opt(fb.year(), fb.day(), fb.month()).filter(|_| fb.day() <= 12);
    let days = |a: NaiveDate, b: Option<NaiveDate>| b.map(|b| (a - b).num_days().abs());
    match r.typed.birth_date {
        None => out.push(Kind::BirthMissing),
        Some(b) if b == fb => {}
        Some(b) if days(b, Some(fb)) == Some(1) => out.push(Kind::NextDay),
        Some(b) if Some(b) == swapped => out.push(Kind::DayMonthSwapped),
        Some(b) if days(b, swapped) == Some(1) => {
            out.extend([Kind::DayMonthSwapped, Kind::NextDay])
        }
        Some(b) => panic!("birth date {fb} typed as {b}"),
    }
    if let Some(id) = &f.typed.resident_id {
        id_kinds(id, r.typed.resident_id.as_deref(), &mut out);
    } else {
        assert_eq!(r.typed.resident_id, None, "no ID appears from nowhere");
    }
    if f.typed.phone.is_some() {
        match &r.typed.phone {
            None => out.push(Kind::PhoneMissing),
            p if *p != f.typed.phone => out.push(Kind::PhoneChanged),
            _ => {}
        }
    }
    if r.typed.village.is_none() {
        out.push(Kind::VillageMissing);
    }
    match (&f.typed.address, &r.typed.address) {
        (_, None) => out.push(Kind::AddressMissing),
        (Some(a), Some(b)) if a != b => {
            assert!(a.ends_with(b.as_str()) && b.len() < a.len(), "{a} / {b}");
            out.push(Kind::AddressAbbreviated)
        }
        _ => {}
    }
    out
}

#[test]
fn every_kind_of_error_occurs_and_forty_percent_are_exact() {
    let (regs, _) = collect(&params(20_000, 3));
    let groups = by_person(&regs);
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    let (mut later, mut exact) = (0, 0);
    for g in groups.values() {
        let f = g[0];
        for r in &g[1..] {
            later += 1;
            let same = Registration {
                id: f.id.clone(),
                institution: f.institution.clone(),
                ..(*r).clone()
            } == *f;
            exact += usize::from(same);
            for k in kinds(f, r) {
                *counts.entry(k).or_default() += 1;
            }
        }
    }
    println!("{later} later registrations, {exact} exact; {counts:?}");
    let all = [
        Kind::Homophone,
        Kind::SimilarShape,
        Kind::Traditional,
        Kind::GivenDropped,
        Kind::GivenAdded,
        Kind::Nickname,
        Kind::SexWrong,
        Kind::SexMissing,
        Kind::DayMonthSwapped,
        Kind::NextDay,
        Kind::BirthMissing,
        Kind::IdFifteen,
        Kind::IdTypo,
        Kind::IdTransposed,
        Kind::IdLowerX,
        Kind::IdFullWidth,
        Kind::IdSpaces,
        Kind::IdMissing,
        Kind::PhoneChanged,
        Kind::PhoneMissing,
        Kind::VillageMissing,
        Kind::AddressAbbreviated,
        Kind::AddressMissing,
    ];
    for k in all {
        assert!(
            counts.get(&k).copied().unwrap_or(0) >= 5,
            "{k:?} is rare: {counts:?}"
        );
    }
    let share = exact as f64 / later as f64;
    assert!((0.35..=0.45).contains(&share), "exact copies {share}");
    let rate = |k: Kind| counts.get(&k).copied().unwrap_or(0) as f64 / later as f64;
    assert!((0.08..=0.12).contains(&rate(Kind::VillageMissing)));
    assert!((0.02..=0.04).contains(&rate(Kind::IdTypo)));
}

#[test]
fn twins_and_household_members_are_not_duplicates() {
    let (regs, _) = collect(&params(20_000, 5));
    let groups = by_person(&regs);
    // First registrations by (address, birth date): twins share both.
    let mut born_together: HashMap<(String, NaiveDate), Vec<&Registration>> = HashMap::new();
    let mut phones: HashMap<&str, HashSet<u32>> = HashMap::new();
    for g in groups.values() {
        let f = g[0];
        born_together
            .entry((
                f.typed.address.clone().unwrap(),
                f.typed.birth_date.unwrap(),
            ))
            .or_default()
            .push(f);
        if let Some(p) = &f.typed.phone {
            phones.entry(p).or_default().insert(f.person);
        }
    }
    let twins: Vec<_> = born_together.values().filter(|v| v.len() == 2).collect();
    assert!(twins.len() >= 15, "{} pairs of twins", twins.len());
    assert!(born_together.values().all(|v| v.len() <= 2));
    let mut shared_phone = 0;
    let mut adjacent_ids = 0;
    for pair in &twins {
        let (a, b) = (pair[0], pair[1]);
        assert_ne!(a.person, b.person);
        assert_ne!(a.typed.name, b.typed.name, "twins have different names");
        assert_eq!(a.typed.village, b.typed.village);
        shared_phone += usize::from(a.typed.phone.is_some() && a.typed.phone == b.typed.phone);
        if let (Some(x), Some(y)) = (&a.typed.resident_id, &b.typed.resident_id) {
            assert_ne!(x, y);
            let seq = |s: &str| s[14..17].parse::<i32>().unwrap();
            adjacent_ids += usize::from(x[..14] == y[..14] && (seq(x) - seq(y)).abs() <= 3);
        }
    }
    assert!(
        shared_phone * 2 > twins.len(),
        "twins share a guardian's phone"
    );
    assert!(
        adjacent_ids * 2 > twins.len(),
        "twins have adjacent ID numbers"
    );
    // Many phones are shared within households.
    let shared = phones.values().filter(|s| s.len() >= 2).count();
    assert!(shared > 1_000, "{shared} phones shared by several people");
}
