//! Correctness corpus (issue 5): labelled prescriptions, each with the findings a
//! pharmacist would expect, and the engine's sensitivity and specificity per
//! category of the review norm.
//!
//! The cases live in `tests/corpus/*.json` (one file per theme), each a JSON array
//! of
//!
//! ```json
//! { "id": "dose-07", "title": "中文简述", "rx": { …Prescription… },
//!   "expect": ["dose"], "info": ["renal"],
//!   "rationale": "为什么", "source": "CNF-2021", "unknown_drug": false }
//! ```
//!
//! Expectations were written from the norms and labels the rules apply
//! (处方管理办法, 医疗机构处方审核规范, 抗菌药物临床应用管理办法, 长期处方管理规范,
//! 说明书 / 中国国家处方集, Beers, 皮试指导原则 …), not copied from the engine.
//!
//! # Convention
//!
//! * A category is **flagged** when the engine emits at least one finding of that
//!   category with severity ≥ 警告 (`Warning` or `Block`). A 提示 (`Info`) alone is
//!   not a flag: info notes are neither expected nor counted as false positives.
//! * `expect` lists the categories a pharmacist must flag — only problems that
//!   deserve ≥ 警告 (review before dispensing, or block). An empty `expect` is a
//!   prescription the pharmacist passes.
//! * `info` (optional) lists categories where a 提示 is the right answer (e.g. a
//!   dose already reduced for the patient's eGFR, an FDA category C drug in
//!   pregnancy): the engine must emit a finding of that category at some
//!   severity; such a category is a negative for the statistics, so a warning
//!   there counts as a false positive.
//! * Categories follow the engine's taxonomy (`Category`): disease
//!   contraindications (禁忌症, e.g. a β-blocker in asthma) count under
//!   `indication`; lactation counts under `pregnancy`; a child's per-kg overdose
//!   is `dose`, an age contraindication is `children`; a missing weight for a
//!   per-kg drug, an unknown drug code and unreadable doses or units are
//!   `format`. A dose a hundred times the maximum (a unit error such as 500 g of
//!   amoxicillin) is `format`, not `dose`.
//! * `unknown_drug: true` marks the cases that deliberately carry a code outside
//!   the formulary; every other case may only use formulary codes.
//!
//! The test prints, per category, positives, TP/FN/FP/TN, sensitivity and
//! specificity, and fails when any category falls below 0.95 on either, listing
//! every misclassified case with the engine's findings.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use yigong_rx::model::{CATEGORIES, Category, Finding, Severity};
use yigong_rx::{Knowledge, Prescription, review};

const MIN_CASES: usize = 300;
const MIN_POSITIVES: usize = 12;
const MIN_CLEAN: usize = 80;
const THRESHOLD: f64 = 0.95;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    title: String,
    rx: Prescription,
    expect: Vec<Category>,
    #[serde(default)]
    info: Vec<Category>,
    rationale: String,
    source: String,
    #[serde(default)]
    unknown_drug: bool,
}

struct Loaded {
    file: String,
    case: Case,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn load() -> Vec<Loaded> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "tests/corpus 下没有 *.json 文件");
    let mut out = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cases: Vec<Case> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.extend(cases.into_iter().map(|case| Loaded {
            file: name.clone(),
            case,
        }));
    }
    out
}

/// Categories flagged per the convention: some finding at 警告 or above.
fn flagged(findings: &[Finding]) -> BTreeSet<Category> {
    findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .map(|f| f.category)
        .collect()
}

fn codes(cats: &BTreeSet<Category>) -> String {
    if cats.is_empty() {
        return "—".into();
    }
    cats.iter().map(|c| c.code()).collect::<Vec<_>>().join(",")
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fn_: usize,
    fp: usize,
    tn: usize,
}

impl Counts {
    fn sensitivity(&self) -> f64 {
        let p = self.tp + self.fn_;
        if p == 0 {
            1.0
        } else {
            self.tp as f64 / p as f64
        }
    }
    fn specificity(&self) -> f64 {
        let n = self.tn + self.fp;
        if n == 0 {
            1.0
        } else {
            self.tn as f64 / n as f64
        }
    }
}

#[test]
fn corpus_is_well_formed() {
    let k = Knowledge::shipped().unwrap_or_else(|e| panic!("{e}"));
    let cases = load();
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    let mut positives: BTreeMap<Category, usize> = BTreeMap::new();
    let mut clean = 0;
    for Loaded { file, case: c } in &cases {
        let at = format!("{file}:{}", c.id);
        if c.id.trim().is_empty() || !ids.insert(c.id.clone()) {
            problems.push(format!("{at}: 病例编号为空或重复"));
        }
        if c.title.trim().is_empty() || c.rationale.trim().is_empty() {
            problems.push(format!("{at}: 缺少标题或理由"));
        }
        if k.source(&c.source).is_none() {
            problems.push(format!("{at}: 来源 {} 未在 sources.json 中登记", c.source));
        }
        let expect: BTreeSet<Category> = c.expect.iter().copied().collect();
        if expect.len() != c.expect.len() {
            problems.push(format!("{at}: expect 有重复类别"));
        }
        if c.info.iter().any(|x| expect.contains(x)) {
            problems.push(format!("{at}: 同一类别既在 expect 又在 info 中"));
        }
        for x in &expect {
            *positives.entry(*x).or_default() += 1;
        }
        if expect.is_empty() {
            clean += 1;
        }
        let unknown: Vec<&str> =
            c.rx.items
                .iter()
                .map(|i| i.drug.trim())
                .filter(|d| k.lookup(d).is_none())
                .collect();
        match (c.unknown_drug, unknown.is_empty()) {
            (false, false) => problems.push(format!("{at}: 药品编码 {unknown:?} 不在目录中")),
            (true, true) => problems.push(format!("{at}: 标为未知药品病例,但所有编码都在目录中")),
            (true, false) if !expect.contains(&Category::Format) => {
                problems.push(format!("{at}: 未知药品编码必须期望 format"))
            }
            _ => {}
        }
    }
    if cases.len() < MIN_CASES {
        problems.push(format!(
            "语料只有 {} 例,至少需要 {MIN_CASES} 例",
            cases.len()
        ));
    }
    if clean < MIN_CLEAN {
        problems.push(format!("无问题处方只有 {clean} 例,至少需要 {MIN_CLEAN} 例"));
    }
    for cat in CATEGORIES {
        let n = positives.get(&cat).copied().unwrap_or(0);
        if n < MIN_POSITIVES {
            problems.push(format!(
                "类别 {} 只有 {n} 个阳性病例,至少需要 {MIN_POSITIVES} 个",
                cat.code()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "语料格式问题:\n{}",
        problems.join("\n")
    );
}

#[test]
fn corpus_sensitivity_and_specificity() {
    let k = Knowledge::shipped().unwrap_or_else(|e| panic!("{e}"));
    let cases = load();
    let mut counts: BTreeMap<Category, Counts> =
        CATEGORIES.iter().map(|c| (*c, Counts::default())).collect();
    let mut wrong = Vec::new();
    let mut info_missed = Vec::new();
    for Loaded { file, case: c } in &cases {
        let findings = review(&k, &c.rx);
        let got = flagged(&findings);
        let expect: BTreeSet<Category> = c.expect.iter().copied().collect();
        for cat in CATEGORIES {
            let n = counts.get_mut(&cat).unwrap();
            match (expect.contains(&cat), got.contains(&cat)) {
                (true, true) => n.tp += 1,
                (true, false) => n.fn_ += 1,
                (false, true) => n.fp += 1,
                (false, false) => n.tn += 1,
            }
        }
        let missing_info: Vec<&str> = c
            .info
            .iter()
            .filter(|cat| !findings.iter().any(|f| f.category == **cat))
            .map(|cat| cat.code())
            .collect();
        let describe = || {
            findings
                .iter()
                .map(|f| {
                    format!(
                        "    {} [{}] {}: {}",
                        f.rule,
                        f.category.code(),
                        f.severity.label(),
                        f.message
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if got != expect {
            let missed: BTreeSet<Category> = expect.difference(&got).copied().collect();
            let extra: BTreeSet<Category> = got.difference(&expect).copied().collect();
            wrong.push(format!(
                "{file}:{} {}\n  期望 {} / 标记 {} (漏 {} 多 {})\n{}",
                c.id,
                c.title,
                codes(&expect),
                codes(&got),
                codes(&missed),
                codes(&extra),
                describe()
            ));
        }
        if !missing_info.is_empty() {
            info_missed.push(format!(
                "{file}:{} {} — 应有提示 {}\n{}",
                c.id,
                c.title,
                missing_info.join(","),
                describe()
            ));
        }
    }
    eprintln!(
        "\n处方审核语料:{} 例(阳性 = 期望该类别;标记 = 引擎给出该类别 ≥警告 的结果)",
        cases.len()
    );
    eprintln!(
        "{:<16} {:>5} {:>4} {:>4} {:>4} {:>5} {:>8} {:>8}",
        "category", "pos", "TP", "FN", "FP", "TN", "sens", "spec"
    );
    let mut failing = Vec::new();
    for (cat, n) in &counts {
        let (se, sp) = (n.sensitivity(), n.specificity());
        eprintln!(
            "{:<16} {:>5} {:>4} {:>4} {:>4} {:>5} {:>8.3} {:>8.3}",
            cat.code(),
            n.tp + n.fn_,
            n.tp,
            n.fn_,
            n.fp,
            n.tn,
            se,
            sp
        );
        if se < THRESHOLD || sp < THRESHOLD {
            failing.push(format!("{} 敏感度 {se:.3} 特异度 {sp:.3}", cat.code()));
        }
    }
    eprintln!("与期望不一致的病例:{} 例", wrong.len());
    for w in &wrong {
        eprintln!("{w}");
    }
    assert!(
        failing.is_empty() && info_missed.is_empty(),
        "低于 {THRESHOLD} 的类别:\n{}\n\n与期望不一致的病例({}):\n{}\n\n缺少应有提示的病例({}):\n{}",
        failing.join("\n"),
        wrong.len(),
        wrong.join("\n"),
        info_missed.len(),
        info_missed.join("\n")
    );
}
