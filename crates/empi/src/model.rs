//! Fellegi–Sunter: per field and level, m = P(level | same person) and
//! u = P(level | different people). u is learnt from random pairs (almost all
//! non-matches), m and the match share λ by expectation–maximisation over the
//! blocked candidate pairs; no labelled data is needed. Exact agreement on a
//! term-frequency field uses the value's own frequency as u.

use crate::compare;
use crate::schema::{Kind, Prepared, Schema};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Four bits per field in a comparison pattern; this value means "missing".
pub const MISSING: u8 = 0xF;
pub const MAX_FIELDS: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldModel {
    pub name: String,
    pub kind: Kind,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
    /// Value → share of records holding it (exact-agreement u), for TF fields.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub tf: HashMap<String, f64>,
    /// u for a TF value not in the table (rare values).
    #[serde(default)]
    pub tf_floor: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub fields: Vec<FieldModel>,
    /// λ: the probability that two records drawn at random are the same person.
    /// (u comes from random pairs, so the prior must too; a pair's selection by
    /// blocking is explained by its own field agreements.)
    pub prior: f64,
    /// Probability at or above which two records are linked without review.
    pub auto_link: f64,
    /// Probability at or above which a pair goes to the review queue.
    pub review: f64,
    /// Field groups whose positive weights are capped at their strongest
    /// (see [`Schema::correlated`]).
    #[serde(default)]
    pub correlated: Vec<Vec<usize>>,
    /// EM iterations run and candidate pairs trained on, for the record.
    pub iterations: usize,
    pub trained_pairs: u64,
}

/// What to do with a scored pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Link,
    Review,
    Distinct,
}

/// A pair's comparison levels (4 bits each) and its total match weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub pattern: u64,
    /// log2 posterior odds (prior included).
    pub weight: f64,
}

impl Score {
    pub fn probability(&self) -> f64 {
        1.0 / (1.0 + (-self.weight).exp2())
    }
}

/// Why a pair scored as it did, field by field (shown to data stewards).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub probability: f64,
    pub weight: f64,
    pub prior_weight: f64,
    /// Weight removed because correlated fields (one household's phone,
    /// village and surname) agreed together; zero or negative.
    pub correlation_adjustment: f64,
    pub decision: Decision,
    pub fields: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub field: String,
    pub label_zh: String,
    /// `None` when either side is missing the field (weight 0).
    pub level: Option<u8>,
    pub level_zh: String,
    pub weight: f64,
    pub a: String,
    pub b: String,
}

/// Comparison pattern of two records.
pub fn pattern(schema: &Schema, a: &Prepared, b: &Prepared) -> u64 {
    let mut p = 0u64;
    for (i, f) in schema.fields.iter().enumerate() {
        let l = match (&a.values[i], &b.values[i]) {
            (Some(x), Some(y)) => compare::level(f.kind, x, y),
            _ => MISSING,
        };
        p |= u64::from(l) << (4 * i);
    }
    p
}

fn level_at(pattern: u64, i: usize) -> u8 {
    ((pattern >> (4 * i)) & 0xF) as u8
}

impl Model {
    fn level_weight(&self, i: usize, l: u8) -> f64 {
        let f = &self.fields[i];
        (f.m[l as usize] / f.u[l as usize]).log2()
    }

    fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }

    fn tf_weight(&self, i: usize, value: &str) -> Option<f64> {
        let f = &self.fields[i];
        if f.tf_floor <= 0.0 {
            return None;
        }
        let u = f.tf.get(value).copied().unwrap_or(f.tf_floor);
        Some((f.m[0] / u).log2())
    }

    /// Scores two prepared records.
    pub fn score(&self, schema: &Schema, a: &Prepared, b: &Prepared) -> Score {
        let pattern = pattern(schema, a, b);
        self.score_pattern(pattern, a)
    }

    /// Weight of a known pattern; `a` supplies values for TF adjustment.
    pub fn score_pattern(&self, pattern: u64, a: &Prepared) -> Score {
        let w = self.field_weights(pattern, Some(a));
        let weight = self.prior_weight() + w.iter().sum::<f64>() + self.correlation_adjustment(&w);
        Score { pattern, weight }
    }

    /// Per-field weights of a pattern (0 where missing), TF-adjusted when the
    /// record is given.
    fn field_weights(&self, pattern: u64, a: Option<&Prepared>) -> [f64; MAX_FIELDS] {
        let mut w = [0.0; MAX_FIELDS];
        for (i, slot) in w.iter_mut().enumerate().take(self.fields.len()) {
            let l = level_at(pattern, i);
            if l == MISSING {
                continue;
            }
            *slot = match (l, a.and_then(|a| a.values[i].as_ref())) {
                (0, Some(v)) => self
                    .tf_weight(i, &v.v)
                    .unwrap_or_else(|| self.level_weight(i, 0)),
                _ => self.level_weight(i, l),
            };
        }
        w
    }

    /// Within each correlated group only the strongest agreement counts.
    fn correlation_adjustment(&self, w: &[f64; MAX_FIELDS]) -> f64 {
        self.correlated
            .iter()
            .map(|group| {
                let positive = group.iter().map(|&i| w[i].max(0.0));
                let (sum, max) = positive.fold((0.0, 0.0f64), |(s, m), x| (s + x, m.max(x)));
                max - sum
            })
            .sum()
    }

    pub fn decide(&self, probability: f64) -> Decision {
        if probability >= self.auto_link {
            Decision::Link
        } else if probability >= self.review {
            Decision::Review
        } else {
            Decision::Distinct
        }
    }

    pub fn explain(&self, schema: &Schema, a: &Prepared, b: &Prepared) -> Explanation {
        let s = self.score(schema, a, b);
        let w = self.field_weights(s.pattern, Some(a));
        let fields = schema
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let l = level_at(s.pattern, i);
                let shown = |p: &Prepared| {
                    p.values[i]
                        .as_ref()
                        .map(|v| v.v.to_string())
                        .unwrap_or_default()
                };
                let (level, level_zh) = if l == MISSING {
                    (None, "缺失".to_string())
                } else {
                    (Some(l), f.kind.level_zh(l).to_string())
                };
                Evidence {
                    field: f.name.clone(),
                    label_zh: f.label_zh.clone(),
                    level,
                    level_zh,
                    weight: round2(w[i]),
                    a: shown(a),
                    b: shown(b),
                }
            })
            .collect();
        let p = s.probability();
        Explanation {
            probability: p,
            weight: round2(s.weight),
            prior_weight: round2(self.prior_weight()),
            correlation_adjustment: round2(self.correlation_adjustment(&w)),
            decision: self.decide(p),
            fields,
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Training options.
#[derive(Debug, Clone)]
pub struct Training {
    pub random_pairs: usize,
    pub max_iterations: usize,
    pub seed: u64,
    pub auto_link: f64,
    pub review: f64,
    /// TF tables keep values held by at least this many records.
    pub tf_min_count: usize,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            random_pairs: 1_000_000,
            max_iterations: 40,
            seed: 20261125,
            auto_link: 0.99,
            review: 0.5,
            tf_min_count: 2,
        }
    }
}

/// Learns a model from the records and their blocked candidate pairs. With
/// `sources`, random pairs for u are drawn across sources only (linkage).
pub fn train(
    schema: &Schema,
    records: &[Prepared],
    candidates: &[(u32, u32)],
    sources: Option<&[u8]>,
    opts: &Training,
) -> Model {
    assert!(schema.fields.len() <= MAX_FIELDS, "at most 16 fields");
    let n = records.len();
    let levels: Vec<usize> = schema.fields.iter().map(|f| f.kind.levels()).collect();

    let count_patterns = |pairs: &[(u32, u32)]| -> Vec<(u64, f64)> {
        let counted: HashMap<u64, u64> = pairs
            .par_iter()
            .fold(HashMap::new, |mut acc: HashMap<u64, u64>, &(i, j)| {
                *acc.entry(pattern(schema, &records[i as usize], &records[j as usize]))
                    .or_default() += 1;
                acc
            })
            .reduce(HashMap::new, |mut a, b| {
                for (k, v) in b {
                    *a.entry(k).or_default() += v;
                }
                a
            });
        counted.into_iter().map(|(p, c)| (p, c as f64)).collect()
    };

    // u from random pairs.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    // Enough random pairs to see rare levels, without dwarfing small data sets.
    let wanted = opts.random_pairs.min(n.saturating_mul(50).max(100_000));
    let mut sample = Vec::with_capacity(wanted);
    if n >= 2 {
        let mut tries = 0;
        while sample.len() < wanted && tries < wanted * 4 {
            tries += 1;
            let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
            if i == j || sources.is_some_and(|s| s[i] == s[j]) {
                continue;
            }
            sample.push((i as u32, j as u32));
        }
    }
    let u: Vec<Vec<f64>> = level_counts(&count_patterns(&sample), &levels)
        .iter()
        .map(|c| smooth(c))
        .collect();

    // TF tables.
    let tf: Vec<(HashMap<String, f64>, f64)> = schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if !f.tf {
                return (HashMap::new(), 0.0);
            }
            let mut counts: HashMap<&str, usize> = HashMap::new();
            let mut present = 0usize;
            for r in records {
                if let Some(v) = &r.values[i] {
                    *counts.entry(&v.v).or_default() += 1;
                    present += 1;
                }
            }
            let present = present.max(1) as f64;
            let table = counts
                .into_iter()
                .filter(|(_, c)| *c >= opts.tf_min_count)
                .map(|(k, c)| (k.to_string(), c as f64 / present))
                .collect();
            (table, opts.tf_min_count as f64 / present)
        })
        .collect();

    // m by EM, u fixed: per training rule for the fields outside it, or once
    // over all candidates.
    let init_m: Vec<Vec<f64>> = levels
        .iter()
        .map(|&l| {
            let mut v: Vec<f64> = (0..l).map(|k| 0.5f64.powi(k as i32 + 1)).collect();
            v[0] = 0.9;
            normalise(&v)
        })
        .collect();
    let mut m = init_m.clone();
    let mut iterations = 0;
    // Every candidate's pattern: EM input without training rules, and always
    // the data λ is estimated on below.
    let patterns = count_patterns(candidates);
    if schema.training_rules.is_empty() {
        let (em_m, _, it) = em(&patterns, &u, &init_m, &[], opts.max_iterations);
        m = em_m;
        iterations = it;
    } else {
        let mut sums: Vec<Vec<f64>> = levels.iter().map(|&l| vec![0.0; l]).collect();
        let mut runs = vec![0usize; levels.len()];
        for &rule in &schema.training_rules {
            let ignore = schema.rule_fields(rule);
            let pairs = crate::block::rule_candidates(schema, records, sources, rule);
            let (em_m, _, it) = em(
                &count_patterns(&pairs),
                &u,
                &init_m,
                &ignore,
                opts.max_iterations,
            );
            iterations += it;
            for f in (0..levels.len()).filter(|f| !ignore.contains(f)) {
                for (s, x) in sums[f].iter_mut().zip(&em_m[f]) {
                    *s += x;
                }
                runs[f] += 1;
            }
        }
        for f in 0..levels.len() {
            if runs[f] > 0 {
                m[f] = normalise(&sums[f]);
            }
        }
    }

    let mut model = Model {
        fields: schema
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| FieldModel {
                name: f.name.clone(),
                kind: f.kind,
                m: m[i].clone(),
                u: u[i].clone(),
                tf: tf[i].0.clone(),
                tf_floor: tf[i].1,
            })
            .collect(),
        prior: 0.5,
        auto_link: opts.auto_link,
        review: opts.review,
        correlated: schema.correlated.clone(),
        iterations,
        trained_pairs: candidates.len() as u64,
    };

    // λ among the candidates, m and u fixed, scored as pairs will be.
    let bayes: Vec<f64> = patterns
        .iter()
        .map(|&(p, _)| {
            let w = model.field_weights(p, None);
            w.iter().sum::<f64>() + model.correlation_adjustment(&w)
        })
        .collect();
    let total: f64 = patterns.iter().map(|(_, c)| c).sum::<f64>().max(1.0);
    let mut prior = 0.1f64;
    for _ in 0..50 {
        let odds = (prior / (1.0 - prior)).log2();
        let matched: f64 = patterns
            .iter()
            .zip(&bayes)
            .map(|(&(_, c), &w)| c / (1.0 + (-(odds + w)).exp2()))
            .sum();
        let next = (matched / total).clamp(1e-9, 1.0 - 1e-9);
        if (next - prior).abs() < 1e-7 {
            prior = next;
            break;
        }
        prior = next;
    }

    // From the candidates' match share to the random-pair prior: every true
    // match is assumed to be among the candidates.
    let all_pairs = match sources {
        None => n as f64 * (n as f64 - 1.0) / 2.0,
        Some(s) => {
            let ones = s.iter().filter(|&&x| x != s[0]).count() as f64;
            ones * (n as f64 - ones)
        }
    };
    let expected_matches = prior * candidates.len() as f64;

    model.prior = (expected_matches / all_pairs.max(1.0)).clamp(1e-12, 0.5);
    model
}

/// EM over counted patterns with u fixed; fields in `ignore` are neither used
/// nor updated. Returns (m, λ among the pairs, iterations).
fn em(
    patterns: &[(u64, f64)],
    u: &[Vec<f64>],
    init: &[Vec<f64>],
    ignore: &[usize],
    max_iterations: usize,
) -> (Vec<Vec<f64>>, f64, usize) {
    let mut m = init.to_vec();
    let used: Vec<usize> = (0..u.len()).filter(|f| !ignore.contains(f)).collect();
    let mut prior = 0.5f64;
    let mut iterations = 0;
    for _ in 0..max_iterations {
        iterations += 1;
        let mut m_acc: Vec<Vec<f64>> = m.iter().map(|l| vec![0.0; l.len()]).collect();
        let (mut matched, mut total) = (0.0, 0.0);
        for &(p, count) in patterns {
            let (mut lm, mut lu) = (prior.ln(), (1.0 - prior).ln());
            for &i in &used {
                let l = level_at(p, i);
                if l != MISSING {
                    lm += m[i][l as usize].ln();
                    lu += u[i][l as usize].ln();
                }
            }
            let post = 1.0 / (1.0 + (lu - lm).exp());
            matched += post * count;
            total += count;
            for &i in &used {
                let l = level_at(p, i);
                if l != MISSING {
                    m_acc[i][l as usize] += post * count;
                }
            }
        }
        let new_prior = (matched / total.max(1.0)).clamp(1e-6, 1.0 - 1e-6);
        let mut delta = (new_prior - prior).abs();
        for &i in &used {
            let next = smooth_floor(&m_acc[i]);
            delta = next
                .iter()
                .zip(&m[i])
                .map(|(a, b)| (a - b).abs())
                .fold(delta, f64::max);
            m[i] = next;
        }
        prior = new_prior;
        if delta < 1e-6 && iterations >= 5 {
            break;
        }
    }
    (m, prior, iterations)
}

/// How often each field reached each level, over counted patterns.
fn level_counts(patterns: &[(u64, f64)], levels: &[usize]) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = levels.iter().map(|&l| vec![0.0; l]).collect();
    for &(p, n) in patterns {
        for (f, c) in counts.iter_mut().enumerate() {
            let l = level_at(p, f);
            if l != MISSING {
                c[l as usize] += n;
            }
        }
    }
    counts
}

/// Laplace-smoothed shares.
fn smooth(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| (c + 1.0) / (total + counts.len() as f64))
        .collect()
}

/// Shares with a floor so no level is impossible.
fn smooth_floor(acc: &[f64]) -> Vec<f64> {
    let total: f64 = acc.iter().sum::<f64>().max(1e-12);
    normalise(
        &acc.iter()
            .map(|a| (a / total).max(1e-5))
            .collect::<Vec<_>>(),
    )
}

fn normalise(v: &[f64]) -> Vec<f64> {
    let s: f64 = v.iter().sum();
    v.iter().map(|x| x / s).collect()
}
