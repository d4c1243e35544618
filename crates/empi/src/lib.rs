//! Identity resolution for the county: one person, one file (一人一档).
//!
//! A registration typed at a village clinic, a township centre or the county
//! hospital is normalised ([`normalize`], [`schema`]), compared only with the
//! records it shares a blocking key with ([`block`]), scored with a
//! Fellegi–Sunter model whose m and u probabilities are learnt from the data
//! itself ([`model`]), and linked automatically above one threshold or sent to a
//! data steward between two. Links become master persons under the rule that two
//! different verified resident IDs are never the same person ([`cluster`]).
//!
//! The engine is storage-free: `yigong-store` runs the same scoring online for
//! each registration inside its write transaction, and [`resolve`] runs the
//! whole pipeline in batch (training, benchmarks, re-resolution).

pub mod block;
pub mod cluster;
pub mod compare;
pub mod model;
pub mod normalize;
pub mod resident;
pub mod schema;

pub use model::{Decision, Explanation, Model, Score, Training};
pub use schema::{Prepared, Schema};

use rayon::prelude::*;

/// One scored candidate pair at or above the review threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    pub a: u32,
    pub b: u32,
    pub probability: f64,
}

/// Result of a batch resolution.
pub struct Resolution {
    pub model: Model,
    /// Candidate pairs compared.
    pub compared: u64,
    /// Pairs at or above the review threshold, strongest first.
    pub pairs: Vec<ScoredPair>,
    /// Cluster (master person) label of each record.
    pub labels: Vec<u32>,
    /// Auto-links refused because the two sides held different verified IDs.
    pub conflicts: u64,
    pub skipped_blocks: u64,
}

impl Resolution {
    pub fn links(&self) -> impl Iterator<Item = &ScoredPair> {
        self.pairs
            .iter()
            .filter(|p| p.probability >= self.model.auto_link)
    }
    pub fn reviews(&self) -> impl Iterator<Item = &ScoredPair> {
        self.pairs
            .iter()
            .filter(|p| p.probability < self.model.auto_link)
    }
}

/// Blocks, trains (unless a model is given), scores and clusters.
pub fn resolve(
    schema: &Schema,
    records: &[Prepared],
    sources: Option<&[u8]>,
    model: Option<Model>,
    training: &Training,
) -> Resolution {
    let (candidates, stats) = block::candidates(schema, records, sources);
    let model =
        model.unwrap_or_else(|| model::train(schema, records, &candidates, sources, training));
    let mut pairs: Vec<ScoredPair> = candidates
        .par_iter()
        .filter_map(|&(a, b)| {
            let s = model.score(schema, &records[a as usize], &records[b as usize]);
            let probability = s.probability();
            (probability >= model.review).then_some(ScoredPair { a, b, probability })
        })
        .collect();
    pairs.par_sort_unstable_by(|x, y| y.probability.total_cmp(&x.probability));
    let mut clusters = cluster::Clusters::new(schema, records);
    for p in pairs.iter().filter(|p| p.probability >= model.auto_link) {
        clusters.link(p.a, p.b);
    }
    Resolution {
        labels: clusters.labels(),
        conflicts: clusters.conflicts,
        model,
        compared: stats.pairs,
        pairs,
        skipped_blocks: stats.skipped_blocks,
    }
}

/// Pairwise precision, recall and F1 against ground truth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accuracy {
    pub true_pairs: u64,
    pub predicted_pairs: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Accuracy {
    fn from_counts(true_pairs: u64, predicted_pairs: u64, true_positives: u64) -> Self {
        let precision = ratio(true_positives, predicted_pairs);
        let recall = ratio(true_positives, true_pairs);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Accuracy {
            true_pairs,
            predicted_pairs,
            true_positives,
            precision,
            recall,
            f1,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn pairs_within<K: std::hash::Hash + Eq>(groups: impl Iterator<Item = K>) -> u64 {
    let mut counts: std::collections::HashMap<K, u64> = std::collections::HashMap::new();
    for g in groups {
        *counts.entry(g).or_default() += 1;
    }
    counts.values().map(|&n| n * (n - 1) / 2).sum()
}

/// Accuracy of clusters: every pair inside a predicted cluster is a predicted
/// match. `truth[i]` is the true entity of record i.
pub fn cluster_accuracy(labels: &[u32], truth: &[u64]) -> Accuracy {
    let true_pairs = pairs_within(truth.iter());
    let predicted = pairs_within(labels.iter());
    let tp = pairs_within(labels.iter().zip(truth));
    Accuracy::from_counts(true_pairs, predicted, tp)
}

/// Accuracy of scored pairs at a probability threshold (no transitive closure),
/// the usual measure in record-linkage papers. `sources` restricts true pairs
/// to pairs across sources.
pub fn pair_accuracy(
    pairs: &[ScoredPair],
    threshold: f64,
    truth: &[u64],
    sources: Option<&[u8]>,
) -> Accuracy {
    let true_pairs = match sources {
        None => pairs_within(truth.iter()),
        Some(s) => pairs_within(truth.iter()) - pairs_within(truth.iter().zip(s)),
    };
    let predicted: Vec<&ScoredPair> = pairs
        .iter()
        .filter(|p| p.probability >= threshold)
        .collect();
    let tp = predicted
        .iter()
        .filter(|p| truth[p.a as usize] == truth[p.b as usize])
        .count() as u64;
    Accuracy::from_counts(true_pairs, predicted.len() as u64, tp)
}
