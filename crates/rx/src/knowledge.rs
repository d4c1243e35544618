//! The drug knowledge base: the unified formulary (统一用药目录) and the facts the
//! review engine checks against — interactions, duplicate-therapy classes,
//! allergy cross-reactivity, IV incompatibilities and the chronic diseases that
//! qualify for long prescriptions. Every fact names its public source.
//!
//! The curated data ships in `crates/rx/data/` as JSON and is checked whole when
//! loaded: an unknown source, a duplicate code or an impossible limit is an error
//! naming the entry, never a silently ignored fact.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A public source a fact is taken from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub publisher: String,
    #[serde(default)]
    pub year: Option<u16>,
    #[serde(default)]
    pub url: String,
}

/// Dose limits in the drug's `dose_unit` (for children: per kg of body weight).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DoseLimits {
    /// Smallest meaningful single dose (below it the dose is likely a unit error).
    #[serde(default)]
    pub min_dose: Option<f64>,
    #[serde(default)]
    pub max_dose: Option<f64>,
    #[serde(default)]
    pub max_daily: Option<f64>,
}

/// What to do in a special population.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Caution {
    /// Usable; monitor.
    Caution,
    /// Reduce the dose (see `max_daily`).
    Reduce,
    /// Avoid unless no alternative (warning).
    Avoid,
    /// Contraindicated (blocking).
    Contraindicated,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ElderlyRule {
    pub action: Caution,
    #[serde(default)]
    pub max_daily: Option<f64>,
    pub advice: String,
}

/// A renal step: applies when eGFR (mL/min/1.73m²) is below `egfr_below`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RenalRule {
    pub egfr_below: f64,
    pub action: Caution,
    #[serde(default)]
    pub max_daily: Option<f64>,
    pub advice: String,
}

/// Hepatic impairment by Child-Pugh class (A mild, B moderate, C severe).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HepaticRule {
    /// The mildest Child-Pugh class the rule applies from: "A", "B" or "C".
    pub from_class: String,
    pub action: Caution,
    pub advice: String,
}

/// A disease in which the drug is contraindicated or to be avoided.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DiseaseContraindication {
    /// ICD-10 code or prefix ("K25" covers K25.0–K25.9).
    pub icd10: String,
    pub action: Caution,
    pub note: String,
}

/// Antimicrobial management grade (抗菌药物分级).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum AntimicrobialGrade {
    /// 非限制使用级
    NonRestricted,
    /// 限制使用级
    Restricted,
    /// 特殊使用级
    Special,
}

impl AntimicrobialGrade {
    pub fn label(self) -> &'static str {
        match self {
            Self::NonRestricted => "非限制使用级",
            Self::Restricted => "限制使用级",
            Self::Special => "特殊使用级",
        }
    }
}

/// Special-control class (特殊管理药品).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ControlClass {
    /// 麻醉药品
    Narcotic,
    /// 第一类精神药品
    Psychotropic1,
    /// 第二类精神药品
    Psychotropic2,
    /// 医疗用毒性药品
    Toxic,
    /// 放射性药品
    Radioactive,
}

impl ControlClass {
    pub fn label(self) -> &'static str {
        match self {
            Self::Narcotic => "麻醉药品",
            Self::Psychotropic1 => "第一类精神药品",
            Self::Psychotropic2 => "第二类精神药品",
            Self::Toxic => "医疗用毒性药品",
            Self::Radioactive => "放射性药品",
        }
    }
}

/// National volume-based procurement (国家组织药品集中带量采购).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Vbp {
    /// e.g. "第七批".
    pub batch: String,
    /// Agreed yearly volume for the community, in dispensing units (0 = set by the county).
    #[serde(default)]
    pub agreed_volume: i64,
}

/// One formulary entry: a product (generic + form + strength).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Drug {
    /// The formulary's own code: ATC code, a dot, a two-digit sequence ("J01CA04.01").
    pub code: String,
    pub atc: String,
    /// Chinese product name, e.g. "阿莫西林胶囊".
    pub name: String,
    /// Chinese generic name, e.g. "阿莫西林".
    pub generic: String,
    /// English INN, lower case.
    pub en: String,
    /// Dosage form in Chinese: 片, 胶囊, 注射液, 注射用粉针, 颗粒, 口服溶液, 气雾剂, 软膏, 滴眼液 ...
    pub form: String,
    /// Amount of active ingredient per dispensing unit, in `strength_unit`.
    pub strength: f64,
    pub strength_unit: String,
    /// Smallest dispensing unit (拆零单位): 片, 粒, 支, 瓶, 袋, 贴 ...
    pub unit: String,
    /// Dispensing units per package, and the package unit (盒, 瓶).
    pub package: u32,
    pub package_unit: String,
    /// Whether the package may be split for dispensing (拆零).
    pub splittable: bool,
    /// WHO defined daily dose, if assigned.
    #[serde(default)]
    pub ddd: Option<f64>,
    #[serde(default)]
    pub ddd_unit: Option<String>,
    /// The unit dose limits are expressed in: "mg", "g", "μg", "IU", "ml", "万U".
    pub dose_unit: String,
    pub adult: DoseLimits,
    /// Children's limits per kg of body weight (dose_unit/kg). When set, a child's
    /// prescription needs a weight.
    #[serde(default)]
    pub child_per_kg: Option<DoseLimits>,
    /// Contraindicated below this age in days (e.g. 18 years = 6570 for quinolones).
    #[serde(default)]
    pub child_min_age_days: Option<u32>,
    #[serde(default)]
    pub elderly: Option<ElderlyRule>,
    /// Allowed frequency codes (see `Frequency`).
    pub frequencies: Vec<String>,
    /// Allowed route codes (see `Route`).
    pub routes: Vec<String>,
    /// Pregnancy category A, B, C, D or X.
    #[serde(default)]
    pub pregnancy: Option<String>,
    /// Lactation: compatible, caution, avoid, contraindicated.
    #[serde(default)]
    pub lactation: Option<Caution>,
    #[serde(default)]
    pub renal: Vec<RenalRule>,
    #[serde(default)]
    pub hepatic: Option<HepaticRule>,
    #[serde(default)]
    pub antimicrobial: Option<AntimicrobialGrade>,
    #[serde(default)]
    pub controlled: Option<ControlClass>,
    #[serde(default)]
    pub skin_test: bool,
    /// Insurance class: "甲", "乙" or "丙" (self-pay).
    pub insurance: String,
    #[serde(default)]
    pub vbp: Option<Vbp>,
    /// May appear on a long prescription (长期处方).
    #[serde(default)]
    pub long_rx: bool,
    /// ICD-10 codes or prefixes the drug is indicated for.
    pub indications: Vec<String>,
    #[serde(default)]
    pub contraindications: Vec<DiseaseContraindication>,
    /// Allergy class id (see `AllergyClass`), e.g. "penicillin".
    #[serde(default)]
    pub allergy_class: Option<String>,
    /// A pharmacy-committee restriction (限制使用): only institutions of this tier
    /// or higher may prescribe it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction: Option<Restriction>,
    /// Fact group → source id. Groups: "identity" (ATC, DDD), "dose", "population"
    /// (pregnancy, lactation, children, elderly, renal, hepatic), "indication",
    /// "control" (antimicrobial grade, special class, skin test), "insurance", "vbp".
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Restriction {
    pub min_tier: yigong_core::org::Tier,
    pub note: String,
}

/// Interaction severity, mapped to the finding's severity.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum InteractionSeverity {
    Minor,
    Moderate,
    Major,
    Contraindicated,
}

/// A pair of drugs or classes, each named by an ATC code or prefix.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Interaction {
    pub a: String,
    pub b: String,
    pub severity: InteractionSeverity,
    /// Mechanism in Chinese.
    pub mechanism: String,
    /// What the prescriber should do, in Chinese.
    pub advice: String,
    pub source: String,
}

/// Drugs of one class given together are duplicate therapy (重复用药).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DuplicateClass {
    pub id: String,
    pub name: String,
    /// ATC codes or prefixes belonging to the class.
    pub atc: Vec<String>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CrossReaction {
    /// Another allergy class id.
    pub class: String,
    /// "avoid" (warning) or "contraindicated" (blocking).
    pub action: Caution,
    pub note: String,
}

/// An allergy class: what a recorded allergy (coded or as Chinese text) matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllergyClass {
    pub id: String,
    pub name: String,
    /// Text terms an allergy record may carry (Chinese and English, lower case):
    /// "青霉素", "penicillin", "阿莫西林" ...
    pub terms: Vec<String>,
    /// ATC codes or prefixes of the class (a coded allergy matches by ATC).
    pub atc: Vec<String>,
    #[serde(default)]
    pub cross: Vec<CrossReaction>,
    pub source: String,
}

/// Two drugs not to be mixed in one infusion (配伍禁忌).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Incompatibility {
    pub a: String,
    pub b: String,
    pub note: String,
    pub source: String,
}

/// A chronic disease a long prescription may be written for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LongRxCondition {
    pub icd10: String,
    pub name: String,
    pub source: String,
}

/// A file of drugs (one per therapeutic area), with the sources it adds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DrugFile {
    #[serde(default)]
    pub sources: Vec<Source>,
    pub drugs: Vec<Drug>,
}

/// The file of cross-drug facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FactsFile {
    #[serde(default)]
    pub sources: Vec<Source>,
    pub interactions: Vec<Interaction>,
    pub duplicate_classes: Vec<DuplicateClass>,
    pub allergy_classes: Vec<AllergyClass>,
    pub incompatibilities: Vec<Incompatibility>,
    pub long_rx_conditions: Vec<LongRxCondition>,
}

/// The shipped data, embedded in the binary.
pub const SHIPPED_SOURCES: &str = include_str!("../data/sources.json");
pub const SHIPPED_DRUG_FILES: [(&str, &str); 4] = [
    (
        "drugs/anti_infective.json",
        include_str!("../data/drugs/anti_infective.json"),
    ),
    (
        "drugs/cardio_metabolic.json",
        include_str!("../data/drugs/cardio_metabolic.json"),
    ),
    (
        "drugs/nervous_respiratory.json",
        include_str!("../data/drugs/nervous_respiratory.json"),
    ),
    (
        "drugs/other_systems.json",
        include_str!("../data/drugs/other_systems.json"),
    ),
];
pub const SHIPPED_FACTS: &str = include_str!("../data/facts.json");

pub const FREQUENCIES: [(&str, &str, f64); 14] = [
    ("qd", "每日一次", 1.0),
    ("bid", "每日两次", 2.0),
    ("tid", "每日三次", 3.0),
    ("qid", "每日四次", 4.0),
    ("q4h", "每4小时一次", 6.0),
    ("q6h", "每6小时一次", 4.0),
    ("q8h", "每8小时一次", 3.0),
    ("q12h", "每12小时一次", 2.0),
    ("qn", "每晚一次", 1.0),
    ("qod", "隔日一次", 0.5),
    ("qw", "每周一次", 1.0 / 7.0),
    ("biw", "每周两次", 2.0 / 7.0),
    ("prn", "必要时", 1.0),
    ("st", "立即", 1.0),
];

pub const ROUTES: [(&str, &str); 16] = [
    ("po", "口服"),
    ("iv", "静脉注射"),
    ("ivgtt", "静脉滴注"),
    ("im", "肌内注射"),
    ("sc", "皮下注射"),
    ("id", "皮内注射"),
    ("inh", "吸入"),
    ("sl", "舌下含服"),
    ("top", "外用"),
    ("pr", "直肠给药"),
    ("pv", "阴道给药"),
    ("eye", "滴眼"),
    ("ear", "滴耳"),
    ("nasal", "鼻腔给药"),
    ("td", "透皮贴"),
    ("gargle", "含漱"),
];

/// Doses per day for a frequency code (`prn` and `st` count as one).
pub fn doses_per_day(freq: &str) -> Option<f64> {
    FREQUENCIES
        .iter()
        .find(|(c, _, _)| *c == freq)
        .map(|(_, _, n)| *n)
}
pub fn frequency_label(freq: &str) -> &str {
    FREQUENCIES
        .iter()
        .find(|(c, _, _)| *c == freq)
        .map_or(freq, |(_, l, _)| l)
}
pub fn route_label(route: &str) -> &str {
    ROUTES
        .iter()
        .find(|(c, _)| *c == route)
        .map_or(route, |(_, l)| l)
}

/// Factor converting `unit` to `base` (both mass, or both the same unit), or None.
pub fn unit_factor(unit: &str, base: &str) -> Option<f64> {
    fn mass_mg(u: &str) -> Option<f64> {
        match u {
            "kg" => Some(1e6),
            "g" => Some(1e3),
            "mg" => Some(1.0),
            "μg" | "ug" | "mcg" => Some(1e-3),
            "ng" => Some(1e-6),
            _ => None,
        }
    }
    fn units_iu(u: &str) -> Option<f64> {
        match u {
            "IU" | "U" | "iu" | "单位" => Some(1.0),
            "万U" | "万IU" | "万单位" => Some(1e4),
            _ => None,
        }
    }
    fn volume_ml(u: &str) -> Option<f64> {
        match u {
            "ml" | "mL" => Some(1.0),
            "L" | "l" => Some(1e3),
            _ => None,
        }
    }
    if unit == base {
        return Some(1.0);
    }
    for f in [mass_mg, units_iu, volume_ml] {
        if let (Some(a), Some(b)) = (f(unit), f(base)) {
            return Some(a / b);
        }
    }
    None
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("药品知识库错误({file}):{message}")]
pub struct KnowledgeError {
    pub file: String,
    pub message: String,
}

/// Whether `code` falls under an ATC code or prefix.
pub fn atc_matches(code: &str, prefix: &str) -> bool {
    !prefix.is_empty() && code.starts_with(prefix)
}

/// Whether an ICD-10 code falls under a code or prefix ("I10" covers "I10.x00";
/// dots are ignored so "E11.9" and "E119" compare alike).
pub fn icd_matches(code: &str, prefix: &str) -> bool {
    let c = code.bytes().filter(|b| *b != b'.');
    let mut p = prefix.bytes().filter(|b| *b != b'.').peekable();
    if p.peek().is_none() {
        return false;
    }
    let mut c = c.map(|b| b.to_ascii_uppercase());
    for pb in p {
        match c.next() {
            Some(cb) if cb == pb.to_ascii_uppercase() => {}
            _ => return false,
        }
    }
    true
}

/// The loaded, checked and indexed knowledge base: a formulary version plus the
/// cross-drug facts.
#[derive(Debug, Clone)]
pub struct Knowledge {
    pub sources: Vec<Source>,
    pub drugs: Vec<Drug>,
    pub facts: FactsFile,
    by_code: HashMap<String, usize>,
    /// ATC code → first formulary entry with it (clients may send ATC only).
    by_atc: HashMap<String, usize>,
    /// Per drug: the interactions it takes part in, as (index into facts.interactions, is side a).
    pub(crate) drug_interactions: Vec<Vec<(u32, bool)>>,
    /// Per drug: duplicate-class indices.
    pub(crate) drug_dup_classes: Vec<Vec<u16>>,
    /// Per drug: allergy classes the drug belongs to.
    pub(crate) drug_allergy_classes: Vec<Vec<u16>>,
    /// Per drug: incompatibility indices with side.
    pub(crate) drug_incompat: Vec<Vec<(u32, bool)>>,
}

impl Knowledge {
    /// The knowledge base shipped in the repository.
    pub fn shipped() -> Result<Knowledge, KnowledgeError> {
        let mut files = Vec::new();
        for (name, text) in SHIPPED_DRUG_FILES {
            let f: DrugFile = serde_json::from_str(text).map_err(|e| KnowledgeError {
                file: name.into(),
                message: e.to_string(),
            })?;
            files.push((name.to_string(), f));
        }
        let sources: Vec<Source> =
            serde_json::from_str(SHIPPED_SOURCES).map_err(|e| KnowledgeError {
                file: "sources.json".into(),
                message: e.to_string(),
            })?;
        let facts: FactsFile = serde_json::from_str(SHIPPED_FACTS).map_err(|e| KnowledgeError {
            file: "facts.json".into(),
            message: e.to_string(),
        })?;
        Knowledge::build(sources, files, facts)
    }

    /// Checks and indexes sources, drug files and facts.
    pub fn build(
        mut sources: Vec<Source>,
        files: Vec<(String, DrugFile)>,
        facts: FactsFile,
    ) -> Result<Knowledge, KnowledgeError> {
        let mut drugs = Vec::new();
        let mut drug_file = Vec::new();
        for (name, f) in files {
            sources.extend(f.sources);
            for d in f.drugs {
                drug_file.push(name.clone());
                drugs.push(d);
            }
        }
        sources.extend(facts.sources.iter().cloned());
        let mut source_ids = HashSet::new();
        for s in &sources {
            if !source_ids.insert(s.id.clone()) {
                return Err(err("sources", format!("来源编号 {} 重复", s.id)));
            }
        }
        let known = |file: &str, what: &str, id: &str| -> Result<(), KnowledgeError> {
            if source_ids.contains(id) {
                Ok(())
            } else {
                Err(err(file, format!("{what} 引用了未登记的来源 {id}")))
            }
        };
        let mut by_code = HashMap::new();
        let mut by_atc = HashMap::new();
        for (i, d) in drugs.iter().enumerate() {
            let file = &drug_file[i];
            check_drug(d).map_err(|m| err(file, format!("{}({}):{m}", d.code, d.name)))?;
            if by_code.insert(d.code.clone(), i).is_some() {
                return Err(err(file, format!("药品编码 {} 重复", d.code)));
            }
            by_atc.entry(d.atc.clone()).or_insert(i);
            for s in d.sources.values() {
                known(file, &d.code, s)?;
            }
        }
        let class_ids: HashSet<&str> = facts
            .allergy_classes
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        for d in &drugs {
            if let Some(c) = &d.allergy_class
                && !class_ids.contains(c.as_str())
            {
                return Err(err("drugs", format!("{} 的过敏类别 {c} 未定义", d.code)));
            }
        }
        for x in &facts.interactions {
            known(
                "facts.json",
                &format!("相互作用 {}×{}", x.a, x.b),
                &x.source,
            )?;
        }
        for c in &facts.duplicate_classes {
            known("facts.json", &format!("重复用药类别 {}", c.id), &c.source)?;
        }
        for c in &facts.allergy_classes {
            known("facts.json", &format!("过敏类别 {}", c.id), &c.source)?;
            for x in &c.cross {
                if !class_ids.contains(x.class.as_str()) {
                    return Err(err(
                        "facts.json",
                        format!("过敏类别 {} 的交叉类别 {} 未定义", c.id, x.class),
                    ));
                }
            }
        }
        for x in &facts.incompatibilities {
            known(
                "facts.json",
                &format!("配伍禁忌 {}×{}", x.a, x.b),
                &x.source,
            )?;
        }
        for x in &facts.long_rx_conditions {
            known(
                "facts.json",
                &format!("长期处方病种 {}", x.icd10),
                &x.source,
            )?;
        }
        let mut k = Knowledge {
            sources,
            drugs,
            facts,
            by_code,
            by_atc,
            drug_interactions: Vec::new(),
            drug_dup_classes: Vec::new(),
            drug_allergy_classes: Vec::new(),
            drug_incompat: Vec::new(),
        };
        k.index();
        Ok(k)
    }

    fn index(&mut self) {
        let f = &self.facts;
        self.drug_interactions = self
            .drugs
            .iter()
            .map(|d| {
                let mut v = Vec::new();
                for (i, x) in f.interactions.iter().enumerate() {
                    if atc_matches(&d.atc, &x.a) {
                        v.push((i as u32, true));
                    }
                    if atc_matches(&d.atc, &x.b) {
                        v.push((i as u32, false));
                    }
                }
                v
            })
            .collect();
        self.drug_incompat = self
            .drugs
            .iter()
            .map(|d| {
                let mut v = Vec::new();
                for (i, x) in f.incompatibilities.iter().enumerate() {
                    if atc_matches(&d.atc, &x.a) {
                        v.push((i as u32, true));
                    }
                    if atc_matches(&d.atc, &x.b) {
                        v.push((i as u32, false));
                    }
                }
                v
            })
            .collect();
        self.drug_dup_classes = self
            .drugs
            .iter()
            .map(|d| {
                f.duplicate_classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.atc.iter().any(|p| atc_matches(&d.atc, p)))
                    .map(|(i, _)| i as u16)
                    .collect()
            })
            .collect();
        self.drug_allergy_classes = self
            .drugs
            .iter()
            .map(|d| {
                f.allergy_classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        d.allergy_class.as_deref() == Some(c.id.as_str())
                            || c.atc.iter().any(|p| atc_matches(&d.atc, p))
                    })
                    .map(|(i, _)| i as u16)
                    .collect()
            })
            .collect();
    }

    /// Finds a drug by formulary code, or by ATC code when the client sends one.
    pub fn lookup(&self, code: &str) -> Option<usize> {
        self.by_code
            .get(code)
            .or_else(|| self.by_atc.get(code))
            .copied()
    }
    pub fn drug(&self, code: &str) -> Option<&Drug> {
        self.lookup(code).map(|i| &self.drugs[i])
    }
    /// Finds a drug by Chinese generic or product name (exact).
    pub fn by_name(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        self.drugs
            .iter()
            .position(|d| d.generic == name || d.name == name)
    }
    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }
    /// A new knowledge base with this formulary replaced (after committee decisions).
    pub fn with_drugs(&self, drugs: Vec<Drug>) -> Result<Knowledge, KnowledgeError> {
        let base: Vec<Source> = self
            .sources
            .iter()
            .filter(|s| !self.facts.sources.iter().any(|f| f.id == s.id))
            .cloned()
            .collect();
        Knowledge::build(
            base,
            vec![(
                "formulary".into(),
                DrugFile {
                    sources: vec![],
                    drugs,
                },
            )],
            self.facts.clone(),
        )
    }
}

fn err(file: &str, message: String) -> KnowledgeError {
    KnowledgeError {
        file: file.into(),
        message,
    }
}

/// Checks one entry's internal consistency.
pub fn check_drug(d: &Drug) -> Result<(), String> {
    if !d.code.starts_with(&d.atc) || d.code.len() != d.atc.len() + 3 {
        return Err("编码须为 ATC 码加“.”加两位序号".into());
    }
    if d.atc.len() != 7 || !d.atc.is_ascii() {
        return Err(format!("ATC 码 {} 不是 7 位", d.atc));
    }
    if d.name.trim().is_empty() || d.generic.trim().is_empty() {
        return Err("缺少名称".into());
    }
    if d.strength.is_nan() || d.strength <= 0.0 || d.package == 0 {
        return Err("规格或包装数量必须为正数".into());
    }
    if unit_factor(&d.strength_unit, &d.dose_unit).is_none() {
        return Err(format!(
            "规格单位 {} 与剂量单位 {} 无法换算",
            d.strength_unit, d.dose_unit
        ));
    }
    for l in std::iter::once(&d.adult).chain(d.child_per_kg.as_ref()) {
        for v in [l.min_dose, l.max_dose, l.max_daily].into_iter().flatten() {
            if !v.is_finite() || v <= 0.0 {
                return Err("剂量限值必须为正数".into());
            }
        }
        if let (Some(a), Some(b)) = (l.min_dose, l.max_dose)
            && a > b
        {
            return Err("最小剂量大于最大剂量".into());
        }
        if let (Some(a), Some(b)) = (l.max_dose, l.max_daily)
            && a > b * 1.0001
        {
            return Err("单次极量大于日极量".into());
        }
    }
    if d.adult.max_dose.is_none() && d.adult.max_daily.is_none() {
        return Err("缺少成人剂量上限".into());
    }
    if d.frequencies.is_empty() || d.routes.is_empty() {
        return Err("缺少给药频次或途径".into());
    }
    for f in &d.frequencies {
        if doses_per_day(f).is_none() {
            return Err(format!("未知频次 {f}"));
        }
    }
    for r in &d.routes {
        if !ROUTES.iter().any(|(c, _)| c == r) {
            return Err(format!("未知给药途径 {r}"));
        }
    }
    if let Some(p) = &d.pregnancy
        && !["A", "B", "C", "D", "X"].contains(&p.as_str())
    {
        return Err(format!("妊娠分级 {p} 无效"));
    }
    if let Some(h) = &d.hepatic
        && !["A", "B", "C"].contains(&h.from_class.as_str())
    {
        return Err("肝功能分级须为 A、B 或 C".into());
    }
    if !["甲", "乙", "丙"].contains(&d.insurance.as_str()) {
        return Err(format!("医保类别 {} 无效", d.insurance));
    }
    if d.indications.is_empty() {
        return Err("缺少适应症".into());
    }
    for g in ["identity", "dose", "indication"] {
        if !d.sources.contains_key(g) {
            return Err(format!("缺少“{g}”事实的来源"));
        }
    }
    if d.antimicrobial.is_some() && d.long_rx && !d.atc.starts_with("J04") {
        // The 2021 norm excludes antimicrobials, except for chronic infections such as tuberculosis.
        return Err("抗菌药物(抗结核药除外)不得标记为可开长期处方".into());
    }
    if d.controlled.is_some() && d.long_rx {
        return Err("特殊管理药品不得标记为可开长期处方".into());
    }
    Ok(())
}
