//! Blocking: only records sharing a key under some rule are compared, which
//! keeps a million registrations to a few million pairs.

use crate::schema::{Prepared, Schema};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Distinct candidate pairs after merging every rule.
    pub pairs: u64,
    /// Blocks skipped for exceeding `max_block`.
    pub skipped_blocks: u64,
}

/// Distinct candidate pairs (i < j). With `sources`, only pairs across sources
/// (linking two files rather than deduplicating one).
pub fn candidates(
    schema: &Schema,
    records: &[Prepared],
    sources: Option<&[u8]>,
) -> (Vec<(u32, u32)>, BlockStats) {
    let mut stats = BlockStats::default();
    let mut all: Vec<u64> = Vec::new();
    for index in 0..schema.rules.len() {
        let (pairs, skipped) = rule_pairs(schema, records, sources, index);
        stats.skipped_blocks += skipped;
        all.extend(pairs);
    }
    all.par_sort_unstable();
    all.dedup();
    stats.pairs = all.len() as u64;
    (all.into_iter().map(unpack).collect(), stats)
}

/// Candidate pairs of one rule alone (for training on that rule).
pub fn rule_candidates(
    schema: &Schema,
    records: &[Prepared],
    sources: Option<&[u8]>,
    index: usize,
) -> Vec<(u32, u32)> {
    let (mut pairs, _) = rule_pairs(schema, records, sources, index);
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs.into_iter().map(unpack).collect()
}

fn unpack(p: u64) -> (u32, u32) {
    ((p >> 32) as u32, p as u32)
}

/// Packed pairs (i << 32 | j) of one rule, and how many blocks were too large.
fn rule_pairs(
    schema: &Schema,
    records: &[Prepared],
    sources: Option<&[u8]>,
    index: usize,
) -> (Vec<u64>, u64) {
    let rule = &schema.rules[index];
    let mut keys: Vec<(u64, u32)> = records
        .par_iter()
        .enumerate()
        .filter_map(|(i, r)| schema.block_key(index, rule, r).map(|k| (k, i as u32)))
        .collect();
    keys.par_sort_unstable();
    let (mut out, mut skipped) = (Vec::new(), 0);
    for block in keys.chunk_by(|x, y| x.0 == y.0) {
        if block.len() > schema.max_block {
            skipped += 1;
            continue;
        }
        for (x, &(_, a)) in block.iter().enumerate() {
            for &(_, b) in &block[x + 1..] {
                if sources.is_some_and(|s| s[a as usize] == s[b as usize]) {
                    continue;
                }
                out.push((u64::from(a.min(b)) << 32) | u64::from(a.max(b)));
            }
        }
    }
    (out, skipped)
}
