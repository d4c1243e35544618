//! From linked pairs to master persons, and each person's golden record.

use crate::schema::{Prepared, Schema, Value};
use std::collections::HashMap;

/// Union–find over records that never joins two groups holding different
/// verified identity values (two valid resident IDs are two people).
pub struct Clusters {
    parent: Vec<u32>,
    identity: Vec<Option<Box<str>>>,
    /// Links refused because of conflicting identities.
    pub conflicts: u64,
}

impl Clusters {
    pub fn new(schema: &Schema, records: &[Prepared]) -> Self {
        let identity = records
            .iter()
            .map(|r| {
                schema
                    .identity_field
                    .and_then(|f| r.values[f].as_ref())
                    .filter(|v| v.verified)
                    .map(|v| v.v.clone())
            })
            .collect();
        Clusters {
            parent: (0..records.len() as u32).collect(),
            identity,
            conflicts: 0,
        }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Joins the groups of `a` and `b` unless their identities conflict.
    pub fn link(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return true;
        }
        let (ia, ib) = (&self.identity[ra as usize], &self.identity[rb as usize]);
        if let (Some(x), Some(y)) = (ia, ib)
            && x != y
        {
            self.conflicts += 1;
            return false;
        }
        let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
        if self.identity[root as usize].is_none() {
            self.identity[root as usize] = self.identity[child as usize].take();
        }
        self.parent[child as usize] = root;
        true
    }

    /// Cluster id (the smallest member index) of every record.
    pub fn labels(&mut self) -> Vec<u32> {
        (0..self.parent.len() as u32)
            .map(|i| self.find(i))
            .collect()
    }
}

/// The golden record of one person: per field the best value among members —
/// verified values before unverified, then the most frequent, then the most
/// recent (members are given oldest first).
pub fn golden(schema: &Schema, members: &[&Prepared]) -> Prepared {
    let values = (0..schema.fields.len())
        .map(|i| {
            let mut tally: HashMap<&Value, (bool, usize, usize)> = HashMap::new();
            for (order, m) in members.iter().enumerate() {
                if let Some(v) = &m.values[i] {
                    let e = tally.entry(v).or_insert((v.verified, 0, 0));
                    e.1 += 1;
                    e.2 = order;
                }
            }
            tally
                .into_iter()
                .max_by_key(|(_, (verified, count, last))| (*verified, *count, *last))
                .map(|(v, _)| v.clone())
        })
        .collect();
    Prepared { values }
}
