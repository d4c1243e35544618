//! The shipped knowledge base loads, is consistent and is big enough.

use yigong_rx::Knowledge;
use yigong_rx::knowledge::atc_matches;

#[test]
fn shipped_knowledge_loads_and_is_consistent() {
    let k = Knowledge::shipped().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "drugs {} interactions {} duplicate classes {} allergy classes {} incompatibilities {} long-rx conditions {}",
        k.drugs.len(),
        k.facts.interactions.len(),
        k.facts.duplicate_classes.len(),
        k.facts.allergy_classes.len(),
        k.facts.incompatibilities.len(),
        k.facts.long_rx_conditions.len()
    );
    // Every cross-drug fact must name drugs that are in the formulary on both sides,
    // otherwise it can never fire.
    let covered = |p: &str| k.drugs.iter().any(|d| atc_matches(&d.atc, p));
    for x in &k.facts.interactions {
        assert!(
            covered(&x.a) && covered(&x.b),
            "相互作用 {}×{} 的一侧不在目录中",
            x.a,
            x.b
        );
    }
    for x in &k.facts.incompatibilities {
        assert!(
            covered(&x.a) && covered(&x.b),
            "配伍禁忌 {}×{} 的一侧不在目录中",
            x.a,
            x.b
        );
    }
    for c in &k.facts.duplicate_classes {
        let n = k
            .drugs
            .iter()
            .filter(|d| c.atc.iter().any(|p| atc_matches(&d.atc, p)))
            .count();
        assert!(n >= 2, "重复用药类别 {} 在目录中不足两种药", c.id);
    }
}

#[test]
fn shipped_knowledge_meets_the_issue_sizes() {
    let k = Knowledge::shipped().unwrap_or_else(|e| panic!("{e}"));
    assert!(k.drugs.len() >= 300, "目录只有 {} 种药品", k.drugs.len());
    assert!(
        k.facts.interactions.len() >= 150,
        "相互作用只有 {} 对",
        k.facts.interactions.len()
    );
}
