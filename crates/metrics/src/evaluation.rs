//! The national evaluation standard (紧密型县域医疗卫生共同体建设评判标准, 2020
//! trial edition): dimensions, criteria graded A/B/C, the tightness rule, the
//! verdict with the reasons that block it, and what-if — the smallest set of
//! grade changes that would make the community tight.
//!
//! Criteria, thresholds and rule parameters are data (`data/evaluation-2020.json`,
//! or a province's own file with the same shape), checked whole by
//! [`Standard::parse`]. A criterion is either *computed* from an indicator value
//! (graded by thresholds) or *attested* (a grade entered with evidence).

use crate::{Direction, Unit};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The national 2020 standard as shipped in `data/evaluation-2020.json`.
pub const NATIONAL_2020: &str = include_str!("../data/evaluation-2020.json");

/// The schema version of evaluation-standard files this code reads.
const SCHEMA: u32 = 1;

/// A grade; `A` is the best. Ordered so that `Grade::A > Grade::B > Grade::C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    C,
    B,
    A,
}

impl Grade {
    /// Parses "A", "B" or "C".
    pub fn from_name(s: &str) -> Option<Grade> {
        match s {
            "A" => Some(Grade::A),
            "B" => Some(Grade::B),
            "C" => Some(Grade::C),
            _ => None,
        }
    }

    /// "A", "B" or "C".
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grade for display: "A"/"B"/"C", or "无数据" when there is none.
pub fn grade_label(grade: Option<Grade>) -> &'static str {
    grade.map_or("无数据", Grade::as_str)
}

/// Why a standard file or an evaluation input is refused. Messages are Chinese
/// and name the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("评判标准文件格式错误：{0}")]
    Format(String),
    #[error("评判标准文件的 schema 版本为 {0}，本程序只支持 {SCHEMA}")]
    Schema(u32),
    #[error("评判标准文件字段“{field}”有误：{reason}")]
    Field { field: String, reason: String },
    #[error("维度编号“{0}”重复")]
    DuplicateDimension(String),
    #[error("评判标准 {criterion} 的维度“{dimension}”未定义（已定义的维度：{known}）")]
    UnknownDimension {
        criterion: String,
        dimension: String,
        known: String,
    },
    #[error("维度“{0}”下没有任何评判标准")]
    EmptyDimension(String),
    #[error("评判标准编号“{0}”重复")]
    DuplicateCriterion(String),
    #[error("评判标准 {criterion}：{reason}")]
    Criterion { criterion: String, reason: String },
    #[error("评判标准 {criterion} 的阈值有误：{reason}")]
    Threshold { criterion: String, reason: String },
    #[error(
        "没有评判标准标记为医共体决策权（\"decision_authority\": true），必须恰好有一项带此标记"
    )]
    MissingDecisionAuthority,
    #[error("有多项评判标准标记为医共体决策权（{0}），必须恰好有一项带此标记")]
    MultipleDecisionAuthority(String),
    #[error("规则参数 {param} = {value} 超出范围：{reason}")]
    Rule {
        param: &'static str,
        value: String,
        reason: String,
    },
    #[error("评判标准“{criterion}”不在标准 {standard} 中")]
    UnknownCriterion { criterion: String, standard: String },
    #[error("评判标准 {0} 为人工评定项，填报的等级必须附佐证材料")]
    MissingEvidence(String),
    #[error("评判标准 {criterion} 为{kind}，{reason}")]
    KindMismatch {
        criterion: String,
        kind: &'static str,
        reason: &'static str,
    },
    #[error("评判标准 {criterion} 的数值 {value} 超出单位允许的范围（{min}–{max}）")]
    ValueOutOfRange {
        criterion: String,
        value: i64,
        min: i64,
        max: i64,
    },
}

/// A dimension (维度), e.g. 责任共同体.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dimension {
    pub id: String,
    pub name: String,
}

/// How a computed criterion is graded from its indicator value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measure {
    /// The indicator the value comes from (an id of the indicator catalogue).
    pub indicator: String,
    pub unit: Unit,
    pub direction: Direction,
    /// Grade A when the value meets this threshold (in `unit`).
    pub a: i64,
    /// Grade B when the value meets this threshold but not `a`; else C.
    pub b: i64,
}

impl Measure {
    /// The grade of `value`.
    pub fn grade(&self, value: i64) -> Grade {
        if self.direction.meets(value, self.a) {
            Grade::A
        } else if self.direction.meets(value, self.b) {
            Grade::B
        } else {
            Grade::C
        }
    }

    /// The least value that earns `grade` (`None` for C: every value does).
    pub fn threshold(&self, grade: Grade) -> Option<i64> {
        match grade {
            Grade::A => Some(self.a),
            Grade::B => Some(self.b),
            Grade::C => None,
        }
    }

    fn op(&self) -> &'static str {
        match self.direction {
            Direction::HigherIsBetter => "≥",
            Direction::LowerIsBetter => "≤",
        }
    }
}

/// Computed from data, or attested with evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Computed(Measure),
    Attested,
}

/// What each grade means, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GradeTexts {
    pub a: String,
    pub b: String,
    pub c: String,
}

impl GradeTexts {
    /// The description of `grade`.
    pub fn get(&self, grade: Grade) -> &str {
        match grade {
            Grade::A => &self.a,
            Grade::B => &self.b,
            Grade::C => &self.c,
        }
    }
}

/// One criterion (评判标准).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Criterion {
    pub id: String,
    /// The id of its dimension.
    pub dimension: String,
    pub name: String,
    /// What is judged (评判内容).
    pub content: String,
    pub kind: Kind,
    pub grades: GradeTexts,
    /// The community's decision-authority criterion (must reach
    /// [`Rule::decision_authority_grade`]); exactly one criterion has it.
    pub decision_authority: bool,
    pub source: String,
}

impl Criterion {
    fn label(&self) -> String {
        format!("{} {}", self.id, self.name)
    }
}

/// The tightness rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Every criterion must reach this grade (national: B).
    pub min_grade: Grade,
    /// At least this many criteria at A (national: 8).
    pub min_a: usize,
    /// At least this many criteria at A in each dimension (national: 1).
    pub min_a_per_dimension: usize,
    /// The decision-authority criterion must reach this grade (national: A).
    pub decision_authority_grade: Grade,
}

/// A checked evaluation standard. Build it with [`Standard::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standard {
    id: String,
    version: String,
    title: String,
    issued_by: String,
    document: String,
    note: String,
    rule: Rule,
    dimensions: Vec<Dimension>,
    criteria: Vec<Criterion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStandard {
    schema: u32,
    id: String,
    version: String,
    title: String,
    #[serde(default)]
    issued_by: String,
    #[serde(default)]
    document: String,
    #[serde(default)]
    note: String,
    rule: RawRule,
    dimensions: Vec<RawDimension>,
    criteria: Vec<RawCriterion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    min_grade: String,
    min_a: i64,
    min_a_per_dimension: i64,
    decision_authority_grade: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCriterion {
    id: String,
    dimension: String,
    name: String,
    #[serde(default)]
    content: String,
    kind: String,
    #[serde(default)]
    indicator: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    thresholds: Option<BTreeMap<String, serde_json::Value>>,
    grades: BTreeMap<String, String>,
    #[serde(default)]
    decision_authority: bool,
    #[serde(default)]
    source: String,
}

fn field(field: &str, reason: impl Into<String>) -> EvalError {
    EvalError::Field {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn crit_err(id: &str, reason: impl Into<String>) -> EvalError {
    EvalError::Criterion {
        criterion: id.to_string(),
        reason: reason.into(),
    }
}

fn threshold_err(id: &str, reason: impl Into<String>) -> EvalError {
    EvalError::Threshold {
        criterion: id.to_string(),
        reason: reason.into(),
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl Standard {
    /// Parses and checks a whole standard file: schema version, dimension and
    /// criterion ids (unique, known), kinds, thresholds (integers in the unit's
    /// range, strictly better for A than for B), grade descriptions, exactly one
    /// decision-authority criterion, and rule parameters that can be met.
    pub fn parse(json: &str) -> Result<Standard, EvalError> {
        let raw: RawStandard = serde_json::from_str(json).map_err(|e| {
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let text = text.strip_suffix(&suffix).unwrap_or(&text);
            EvalError::Format(format!("第 {} 行第 {} 列：{text}", e.line(), e.column()))
        })?;
        if raw.schema != SCHEMA {
            return Err(EvalError::Schema(raw.schema));
        }
        if !valid_id(&raw.id) {
            return Err(field("id", "须为 1–64 个字母、数字、-、_ 或 . 组成的编号"));
        }
        for (name, v) in [("version", &raw.version), ("title", &raw.title)] {
            if v.trim().is_empty() {
                return Err(field(name, "不能为空"));
            }
        }

        // Dimensions.
        if raw.dimensions.is_empty() {
            return Err(field("dimensions", "至少要有一个维度"));
        }
        let mut dimensions = Vec::new();
        let mut dim_ids = BTreeSet::new();
        for d in raw.dimensions {
            if !valid_id(&d.id) {
                return Err(field(
                    "dimensions.id",
                    format!("维度编号“{}”不合规（须为字母、数字、-、_ 或 .）", d.id),
                ));
            }
            if d.name.trim().is_empty() {
                return Err(field("dimensions.name", format!("维度 {} 没有名称", d.id)));
            }
            if !dim_ids.insert(d.id.clone()) {
                return Err(EvalError::DuplicateDimension(d.id));
            }
            dimensions.push(Dimension {
                id: d.id,
                name: d.name,
            });
        }

        // Criteria.
        if raw.criteria.is_empty() {
            return Err(field("criteria", "至少要有一项评判标准"));
        }
        let known = dimensions
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>()
            .join("、");
        let mut criteria = Vec::new();
        let mut ids = BTreeSet::new();
        for c in raw.criteria {
            let criterion = check_criterion(c, &dim_ids, &known)?;
            if !ids.insert(criterion.id.clone()) {
                return Err(EvalError::DuplicateCriterion(criterion.id));
            }
            criteria.push(criterion);
        }
        for d in &dimensions {
            if !criteria.iter().any(|c| c.dimension == d.id) {
                return Err(EvalError::EmptyDimension(d.id.clone()));
            }
        }
        let flagged: Vec<&str> = criteria
            .iter()
            .filter(|c| c.decision_authority)
            .map(|c| c.id.as_str())
            .collect();
        match flagged.len() {
            0 => return Err(EvalError::MissingDecisionAuthority),
            1 => {}
            _ => return Err(EvalError::MultipleDecisionAuthority(flagged.join("、"))),
        }

        // Rule parameters.
        let grade = |param: &'static str, s: &str| {
            Grade::from_name(s).ok_or_else(|| EvalError::Rule {
                param,
                value: s.to_string(),
                reason: "等级须为 A、B 或 C".into(),
            })
        };
        let min_grade = grade("min_grade", &raw.rule.min_grade)?;
        let decision_authority_grade = grade(
            "decision_authority_grade",
            &raw.rule.decision_authority_grade,
        )?;
        let n = criteria.len();
        let min_a = usize::try_from(raw.rule.min_a)
            .ok()
            .filter(|&v| v <= n)
            .ok_or_else(|| EvalError::Rule {
                param: "min_a",
                value: raw.rule.min_a.to_string(),
                reason: format!("须在 0 到评判标准总数 {n} 之间"),
            })?;
        let smallest = dimensions
            .iter()
            .map(|d| criteria.iter().filter(|c| c.dimension == d.id).count())
            .min()
            .unwrap_or(0);
        let min_a_per_dimension = usize::try_from(raw.rule.min_a_per_dimension)
            .ok()
            .filter(|&v| v <= smallest)
            .ok_or_else(|| EvalError::Rule {
                param: "min_a_per_dimension",
                value: raw.rule.min_a_per_dimension.to_string(),
                reason: format!("须在 0 到最小维度的评判标准数 {smallest} 之间"),
            })?;

        Ok(Standard {
            id: raw.id,
            version: raw.version,
            title: raw.title,
            issued_by: raw.issued_by,
            document: raw.document,
            note: raw.note,
            rule: Rule {
                min_grade,
                min_a,
                min_a_per_dimension,
                decision_authority_grade,
            },
            dimensions,
            criteria,
        })
    }

    /// The national 2020 standard shipped with the crate.
    pub fn national_2020() -> Standard {
        Standard::parse(NATIONAL_2020).expect("the shipped standard is valid")
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn title(&self) -> &str {
        &self.title
    }
    /// The issuing bodies.
    pub fn issued_by(&self) -> &str {
        &self.issued_by
    }
    /// The issuing document (文号 and title).
    pub fn document(&self) -> &str {
        &self.document
    }
    /// Free-text notes on the file (caveats, provenance).
    pub fn note(&self) -> &str {
        &self.note
    }
    pub fn rule(&self) -> &Rule {
        &self.rule
    }
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }
    /// The criteria in file order.
    pub fn criteria(&self) -> &[Criterion] {
        &self.criteria
    }
    /// The criterion with this id.
    pub fn criterion(&self, id: &str) -> Option<&Criterion> {
        self.criteria.iter().find(|c| c.id == id)
    }
}

fn check_criterion(
    c: RawCriterion,
    dims: &BTreeSet<String>,
    known: &str,
) -> Result<Criterion, EvalError> {
    if !valid_id(&c.id) {
        return Err(crit_err(
            &c.id,
            "编号须为 1–64 个字母、数字、-、_ 或 . 组成的编号",
        ));
    }
    let id = c.id.as_str();
    if !dims.contains(&c.dimension) {
        return Err(EvalError::UnknownDimension {
            criterion: c.id.clone(),
            dimension: c.dimension.clone(),
            known: known.to_string(),
        });
    }
    if c.name.trim().is_empty() {
        return Err(crit_err(id, "名称不能为空"));
    }
    // Grade descriptions: exactly A, B and C, none empty.
    for k in c.grades.keys() {
        if Grade::from_name(k).is_none() {
            return Err(crit_err(
                id,
                format!("grades 中的等级“{k}”无效（只能是 A、B、C）"),
            ));
        }
    }
    let text = |g: &str| -> Result<String, EvalError> {
        match c.grades.get(g) {
            Some(t) if !t.trim().is_empty() => Ok(t.clone()),
            _ => Err(crit_err(id, format!("缺少等级 {g} 的说明"))),
        }
    };
    let grades = GradeTexts {
        a: text("A")?,
        b: text("B")?,
        c: text("C")?,
    };
    let kind = match c.kind.as_str() {
        "computed" => Kind::Computed(check_measure(&c)?),
        "attested" => {
            let extra: Vec<&str> = [
                ("indicator", c.indicator.is_some()),
                ("unit", c.unit.is_some()),
                ("direction", c.direction.is_some()),
                ("thresholds", c.thresholds.is_some()),
            ]
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(n, _)| n)
            .collect();
            if !extra.is_empty() {
                return Err(crit_err(
                    id,
                    format!(
                        "人工评定项（attested）不应设置 {}，这些字段只用于计算项（computed）",
                        extra.join("、")
                    ),
                ));
            }
            Kind::Attested
        }
        other => {
            return Err(crit_err(
                id,
                format!("类型“{other}”无效（只能是 computed 或 attested）"),
            ));
        }
    };
    Ok(Criterion {
        id: c.id.clone(),
        dimension: c.dimension.clone(),
        name: c.name.clone(),
        content: c.content.clone(),
        kind,
        grades,
        decision_authority: c.decision_authority,
        source: c.source.clone(),
    })
}

fn check_measure(c: &RawCriterion) -> Result<Measure, EvalError> {
    let id = c.id.as_str();
    let indicator = match &c.indicator {
        Some(s) if !s.trim().is_empty() => s.clone(),
        _ => return Err(crit_err(id, "计算项（computed）必须给出指标 indicator")),
    };
    let unit = match c.unit.as_deref() {
        None => {
            return Err(crit_err(
                id,
                "计算项必须给出单位 unit（permille、bp 或 count）",
            ));
        }
        Some(u) => Unit::from_name(u).ok_or_else(|| {
            crit_err(id, format!("单位“{u}”无效（只能是 permille、bp 或 count）"))
        })?,
    };
    let direction = match c.direction.as_deref() {
        Some("higher_is_better") => Direction::HigherIsBetter,
        Some("lower_is_better") => Direction::LowerIsBetter,
        Some(d) => {
            return Err(crit_err(
                id,
                format!("方向“{d}”无效（只能是 higher_is_better 或 lower_is_better）"),
            ));
        }
        None => return Err(crit_err(id, "计算项必须给出方向 direction")),
    };
    let Some(thresholds) = &c.thresholds else {
        return Err(threshold_err(id, "计算项必须给出 thresholds（A 和 B）"));
    };
    for k in thresholds.keys() {
        if k != "A" && k != "B" {
            return Err(threshold_err(
                id,
                format!("只能设置 A 和 B 的阈值，不能设置“{k}”"),
            ));
        }
    }
    let (lo, hi) = unit.range();
    let get = |g: &str| -> Result<i64, EvalError> {
        let v = thresholds
            .get(g)
            .ok_or_else(|| threshold_err(id, format!("缺少等级 {g} 的阈值")))?;
        let n = v.as_i64().ok_or_else(|| {
            threshold_err(
                id,
                format!(
                    "等级 {g} 的阈值 {v} 不是整数（须为以 {} 为单位的整数，如 85% 写作 permille 850）",
                    unit.name()
                ),
            )
        })?;
        if n < lo || n > hi {
            return Err(threshold_err(
                id,
                format!("等级 {g} 的阈值 {n} 超出单位范围 {lo}–{hi}"),
            ));
        }
        Ok(n)
    };
    let a = get("A")?;
    let b = get("B")?;
    let ordered = match direction {
        Direction::HigherIsBetter => a > b,
        Direction::LowerIsBetter => a < b,
    };
    if !ordered {
        let want = match direction {
            Direction::HigherIsBetter => "越高越好时 A 的阈值必须大于 B",
            Direction::LowerIsBetter => "越低越好时 A 的阈值必须小于 B",
        };
        return Err(threshold_err(id, format!("{want}（A = {a}，B = {b}）")));
    }
    Ok(Measure {
        indicator,
        unit,
        direction,
        a,
        b,
    })
}

/// The input for one criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// A computed criterion's indicator value in its unit; `None` = no data.
    Value(Option<i64>),
    /// An attested grade with the ids of its evidence attachments (at least one).
    Attested { grade: Grade, evidence: Vec<String> },
}

/// One criterion's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CriterionResult {
    pub id: String,
    pub dimension: String,
    pub name: String,
    /// `None` = no data ("无数据"), which blocks tightness.
    pub grade: Option<Grade>,
    /// The indicator value of a computed criterion.
    pub value: Option<i64>,
    /// Evidence ids of an attested grade.
    pub evidence: Vec<String>,
    /// How the grade was reached, in Chinese, e.g. "82.1%（A：≥ 85.0%；B：≥ 80.0%）".
    pub basis: String,
}

/// Which part of the tightness rule blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockRule {
    /// A criterion has no data or was not graded.
    NoData,
    /// A criterion is below [`Rule::min_grade`].
    MinGrade,
    /// Fewer than [`Rule::min_a`] criteria at A.
    MinA,
    /// A dimension has fewer than [`Rule::min_a_per_dimension`] criteria at A.
    DimensionA,
    /// The decision-authority criterion is below its required grade.
    DecisionAuthority,
}

/// One reason the community is not tight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub rule: BlockRule,
    /// The criteria concerned (for `MinA` and `DimensionA`: those not at A).
    pub criteria: Vec<String>,
    pub message: String,
}

/// One grade change of the what-if.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub criterion: String,
    pub from: Option<Grade>,
    pub to: Grade,
    /// The current value of a computed criterion.
    pub value: Option<i64>,
    /// The value a computed criterion needs for `to`.
    pub needed: Option<i64>,
    /// e.g. "S1 县域内住院人次占比需从 82.1% 提高到 85.0%（B → A）".
    pub message: String,
}

/// The evaluation of one community against a standard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub standard: String,
    pub version: String,
    /// One result per criterion, in the standard's order.
    pub criteria: Vec<CriterionResult>,
    pub a_count: usize,
    /// The verdict: 紧密型 or not.
    pub tight: bool,
    /// Why it is not tight (empty when tight).
    pub blockers: Vec<Blocker>,
    /// The smallest set of grade changes that makes it tight (empty when tight).
    pub what_if: Vec<Change>,
}

impl Report {
    /// "紧密型" or "未达到紧密型".
    pub fn verdict_label(&self) -> &'static str {
        if self.tight {
            "紧密型"
        } else {
            "未达到紧密型"
        }
    }
}

/// Grades every criterion from `inputs` (keyed by criterion id; a criterion
/// without input has no data), applies the tightness rule and computes the
/// what-if. Refuses inputs for unknown criteria, a grade for a computed
/// criterion or a value for an attested one, attested grades without
/// evidence, and values outside the unit's range.
pub fn evaluate(
    standard: &Standard,
    inputs: &BTreeMap<String, Input>,
) -> Result<Report, EvalError> {
    for id in inputs.keys() {
        if standard.criterion(id).is_none() {
            return Err(EvalError::UnknownCriterion {
                criterion: id.clone(),
                standard: standard.id.clone(),
            });
        }
    }
    let mut results = Vec::with_capacity(standard.criteria.len());
    for c in &standard.criteria {
        let input = inputs.get(&c.id);
        let r = match (&c.kind, input) {
            (Kind::Computed(m), None | Some(Input::Value(None))) => CriterionResult {
                basis: format!("无数据（{}）", thresholds_text(m)),
                ..result(c, None, None, Vec::new())
            },
            (Kind::Computed(m), Some(Input::Value(Some(v)))) => {
                let (lo, hi) = m.unit.range();
                if *v < lo || *v > hi {
                    return Err(EvalError::ValueOutOfRange {
                        criterion: c.id.clone(),
                        value: *v,
                        min: lo,
                        max: hi,
                    });
                }
                CriterionResult {
                    basis: format!("{}（{}）", m.unit.format(*v), thresholds_text(m)),
                    ..result(c, Some(m.grade(*v)), Some(*v), Vec::new())
                }
            }
            (Kind::Computed(_), Some(Input::Attested { .. })) => {
                return Err(EvalError::KindMismatch {
                    criterion: c.id.clone(),
                    kind: "计算项",
                    reason: "等级由数据计算，不能人工填报",
                });
            }
            (Kind::Attested, None) => CriterionResult {
                basis: "未评定（无数据）".into(),
                ..result(c, None, None, Vec::new())
            },
            (Kind::Attested, Some(Input::Attested { grade, evidence })) => {
                let evidence: Vec<String> = evidence
                    .iter()
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty())
                    .collect();
                if evidence.is_empty() {
                    return Err(EvalError::MissingEvidence(c.id.clone()));
                }
                CriterionResult {
                    basis: format!("人工评定 {grade}，佐证材料 {} 份", evidence.len()),
                    ..result(c, Some(*grade), None, evidence)
                }
            }
            (Kind::Attested, Some(Input::Value(_))) => {
                return Err(EvalError::KindMismatch {
                    criterion: c.id.clone(),
                    kind: "人工评定项",
                    reason: "须填报等级并附佐证材料，不能填报数值",
                });
            }
        };
        results.push(r);
    }
    let grades: Vec<Option<Grade>> = results.iter().map(|r| r.grade).collect();
    let values: Vec<Option<i64>> = results.iter().map(|r| r.value).collect();
    let blockers = blockers(standard, &grades);
    let tight = blockers.is_empty();
    let what_if = if tight {
        Vec::new()
    } else {
        what_if(standard, &grades, &values)
    };
    Ok(Report {
        standard: standard.id.clone(),
        version: standard.version.clone(),
        a_count: grades.iter().filter(|g| **g == Some(Grade::A)).count(),
        criteria: results,
        tight,
        blockers,
        what_if,
    })
}

fn result(
    c: &Criterion,
    grade: Option<Grade>,
    value: Option<i64>,
    evidence: Vec<String>,
) -> CriterionResult {
    CriterionResult {
        id: c.id.clone(),
        dimension: c.dimension.clone(),
        name: c.name.clone(),
        grade,
        value,
        evidence,
        basis: String::new(),
    }
}

fn thresholds_text(m: &Measure) -> String {
    format!(
        "A：{} {}；B：{} {}",
        m.op(),
        m.unit.format(m.a),
        m.op(),
        m.unit.format(m.b)
    )
}

fn labels(standard: &Standard, idx: impl IntoIterator<Item = usize>) -> (Vec<String>, String) {
    let idx: Vec<usize> = idx.into_iter().collect();
    let ids = idx
        .iter()
        .map(|&i| standard.criteria[i].id.clone())
        .collect();
    let text = idx
        .iter()
        .map(|&i| standard.criteria[i].label())
        .collect::<Vec<_>>()
        .join("、");
    (ids, text)
}

/// The reasons `grades` (one per criterion, in order) are not tight.
fn blockers(standard: &Standard, grades: &[Option<Grade>]) -> Vec<Blocker> {
    let rule = &standard.rule;
    let crit = &standard.criteria;
    let mut out = Vec::new();

    let no_data: Vec<usize> = (0..crit.len()).filter(|&i| grades[i].is_none()).collect();
    if !no_data.is_empty() {
        let (criteria, text) = labels(standard, no_data);
        out.push(Blocker {
            rule: BlockRule::NoData,
            criteria,
            message: format!("以下评判标准无数据或未评定，无法判定为紧密型：{text}"),
        });
    }
    let low: Vec<usize> = (0..crit.len())
        .filter(|&i| matches!(grades[i], Some(g) if g < rule.min_grade))
        .collect();
    if !low.is_empty() {
        let text = low
            .iter()
            .map(|&i| format!("{}（{}）", crit[i].label(), grade_label(grades[i])))
            .collect::<Vec<_>>()
            .join("、");
        out.push(Blocker {
            rule: BlockRule::MinGrade,
            criteria: labels(standard, low).0,
            message: format!("以下评判标准未达到 {} 及以上：{text}", rule.min_grade),
        });
    }
    let not_a = |i: usize| grades[i] != Some(Grade::A);
    let a_count = grades.iter().filter(|g| **g == Some(Grade::A)).count();
    if a_count < rule.min_a {
        out.push(Blocker {
            rule: BlockRule::MinA,
            criteria: labels(standard, (0..crit.len()).filter(|&i| not_a(i))).0,
            message: format!(
                "达到 A 的评判标准有 {a_count} 项，少于要求的 {} 项",
                rule.min_a
            ),
        });
    }
    for d in &standard.dimensions {
        let in_dim = || (0..crit.len()).filter(|&i| crit[i].dimension == d.id);
        let have = in_dim().filter(|&i| !not_a(i)).count();
        if have < rule.min_a_per_dimension {
            out.push(Blocker {
                rule: BlockRule::DimensionA,
                criteria: labels(standard, in_dim().filter(|&i| not_a(i))).0,
                message: format!(
                    "维度“{}”中达到 A 的评判标准有 {have} 项，少于要求的 {} 项",
                    d.name, rule.min_a_per_dimension
                ),
            });
        }
    }
    for (i, c) in crit.iter().enumerate() {
        if c.decision_authority && grades[i].is_none_or(|g| g < rule.decision_authority_grade) {
            out.push(Blocker {
                rule: BlockRule::DecisionAuthority,
                criteria: vec![c.id.clone()],
                message: format!(
                    "决策权评判标准 {} 为 {}，须达到 {}",
                    c.label(),
                    grade_label(grades[i]),
                    rule.decision_authority_grade
                ),
            });
        }
    }
    out
}

/// The cost of raising criterion `i` to A, compared lexicographically:
/// (extra criteria changed, gap unknown, relative gap in ppm, file order).
type Cost = (u8, u8, u64, usize);

/// The smallest set of changes (fewest criteria changed) that makes `grades`
/// tight. Every criterion below the minimum grade (or without data), and the
/// decision-authority criterion if below its grade, must change anyway; the
/// A's still missing (per dimension first, then overall) are taken from the
/// cheapest candidates: criteria already changing (no extra criterion), then
/// computed criteria by their relative gap to the A threshold, then attested
/// criteria (whose gap is unknown), then file order. Choosing per dimension
/// first and overall second is optimal by an exchange argument.
fn what_if(standard: &Standard, grades: &[Option<Grade>], values: &[Option<i64>]) -> Vec<Change> {
    let rule = &standard.rule;
    let crit = &standard.criteria;
    let n = crit.len();
    // The least target every criterion must reach.
    let mut target: Vec<Grade> = (0..n)
        .map(|i| {
            let mut t = grades[i].unwrap_or(Grade::C).max(rule.min_grade);
            if crit[i].decision_authority {
                t = t.max(rule.decision_authority_grade);
            }
            t
        })
        .collect();
    let changing: Vec<bool> = (0..n).map(|i| grades[i] != Some(target[i])).collect();
    let cost = |i: usize| -> Cost {
        let extra = u8::from(!changing[i]);
        match (&crit[i].kind, values[i]) {
            (Kind::Computed(m), Some(v)) => {
                let gap = (i128::from(m.a) - i128::from(v)).unsigned_abs();
                let scale = i128::from(m.a).unsigned_abs().max(1);
                let ppm = u64::try_from(gap.saturating_mul(1_000_000) / scale).unwrap_or(u64::MAX);
                (extra, 0, ppm, i)
            }
            _ => (extra, 1, 0, i),
        }
    };
    let is_a = |t: &Vec<Grade>, i: usize| t[i] == Grade::A;
    for d in &standard.dimensions {
        let have = (0..n)
            .filter(|&i| crit[i].dimension == d.id && is_a(&target, i))
            .count();
        let need = rule.min_a_per_dimension.saturating_sub(have);
        let mut cands: Vec<Cost> = (0..n)
            .filter(|&i| crit[i].dimension == d.id && !is_a(&target, i))
            .map(cost)
            .collect();
        cands.sort_unstable();
        for c in cands.into_iter().take(need) {
            target[c.3] = Grade::A;
        }
    }
    let have = (0..n).filter(|&i| is_a(&target, i)).count();
    let need = rule.min_a.saturating_sub(have);
    let mut cands: Vec<Cost> = (0..n).filter(|&i| !is_a(&target, i)).map(cost).collect();
    cands.sort_unstable();
    for c in cands.into_iter().take(need) {
        target[c.3] = Grade::A;
    }

    (0..n)
        .filter(|&i| grades[i] != Some(target[i]))
        .map(|i| change(&crit[i], grades[i], target[i], values[i]))
        .collect()
}

fn change(c: &Criterion, from: Option<Grade>, to: Grade, value: Option<i64>) -> Change {
    let (needed, message) = match &c.kind {
        Kind::Computed(m) => {
            let needed = m.threshold(to);
            let message = match (value, needed) {
                (Some(v), Some(t)) => {
                    let verb = match m.direction {
                        Direction::HigherIsBetter => "提高",
                        Direction::LowerIsBetter => "降低",
                    };
                    format!(
                        "{}需从 {} {verb}到 {}（{} → {to}）",
                        c.label(),
                        m.unit.format(v),
                        m.unit.format(t),
                        grade_label(from)
                    )
                }
                (None, Some(t)) => {
                    let bound = match m.direction {
                        Direction::HigherIsBetter => "不低于",
                        Direction::LowerIsBetter => "不高于",
                    };
                    format!(
                        "{}无数据：需补充数据，且{bound} {}（{to}）",
                        c.label(),
                        m.unit.format(t)
                    )
                }
                (_, None) => format!("{}无数据：需补充数据", c.label()),
            };
            (needed, message)
        }
        Kind::Attested => {
            let message = match from {
                Some(g) => format!(
                    "{}需由 {g} 提升到 {to}（{to}：{}），并附佐证材料",
                    c.label(),
                    c.grades.get(to)
                ),
                None => format!(
                    "{}未评定：需评定为 {to} 及以上（{to}：{}），并附佐证材料",
                    c.label(),
                    c.grades.get(to)
                ),
            };
            (None, message)
        }
    };
    Change {
        criterion: c.id.clone(),
        from,
        to,
        value,
        needed,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attested(g: Grade) -> Input {
        Input::Attested {
            grade: g,
            evidence: vec!["doc-1".into()],
        }
    }

    /// All attested at A and both computed at the given values.
    fn inputs(s1: Option<i64>, s2: Option<i64>) -> BTreeMap<String, Input> {
        let mut m = BTreeMap::new();
        for c in Standard::national_2020().criteria() {
            let input = match c.id.as_str() {
                "S1" => Input::Value(s1),
                "S2" => Input::Value(s2),
                _ => attested(Grade::A),
            };
            m.insert(c.id.clone(), input);
        }
        m
    }

    #[test]
    fn national_file_is_valid() {
        let s = Standard::national_2020();
        assert_eq!(s.criteria().len(), 11);
        assert_eq!(s.dimensions().len(), 4);
        assert_eq!(
            *s.rule(),
            Rule {
                min_grade: Grade::B,
                min_a: 8,
                min_a_per_dimension: 1,
                decision_authority_grade: Grade::A
            }
        );
        let da: Vec<_> = s
            .criteria()
            .iter()
            .filter(|c| c.decision_authority)
            .collect();
        assert_eq!(da.len(), 1);
        assert_eq!(da[0].name, "医共体决策权");
    }

    #[test]
    fn all_a_is_tight() {
        let s = Standard::national_2020();
        let r = evaluate(&s, &inputs(Some(900), Some(700))).unwrap();
        assert!(r.tight, "{:?}", r.blockers);
        assert_eq!(r.a_count, 11);
        assert!(r.what_if.is_empty());
        assert_eq!(r.verdict_label(), "紧密型");
    }

    #[test]
    fn computed_grades_and_what_if_message() {
        let s = Standard::national_2020();
        let mut inp = inputs(Some(821), Some(640));
        // Four attested at B: A count = 11 - 2 computed - 4 = 5.
        for id in ["R1", "R3", "M1", "M2"] {
            inp.insert(id.into(), attested(Grade::B));
        }
        let r = evaluate(&s, &inp).unwrap();
        assert!(!r.tight);
        assert_eq!(r.a_count, 5);
        let s1 = r.criteria.iter().find(|c| c.id == "S1").unwrap();
        assert_eq!(s1.grade, Some(Grade::B));
        assert_eq!(s1.basis, "82.1%（A：≥ 85.0%；B：≥ 80.0%）");
        // Service has no A; need three more A's: the service dimension first
        // (S2 is closer: 10/650 < 29/850), then the next cheapest overall: S1
        // (computed, known gap) before the attested ones in file order (R1).
        let ids: Vec<&str> = r.what_if.iter().map(|c| c.criterion.as_str()).collect();
        assert_eq!(ids, ["R1", "S1", "S2"]);
        let m = &r
            .what_if
            .iter()
            .find(|c| c.criterion == "S1")
            .unwrap()
            .message;
        assert_eq!(m, "S1 县域内住院人次占比需从 82.1% 提高到 85.0%（B → A）");
        assert!(r.blockers.iter().any(|b| b.rule == BlockRule::MinA));
        assert!(
            r.blockers
                .iter()
                .any(|b| b.rule == BlockRule::DimensionA && b.message.contains("服务共同体"))
        );
    }

    #[test]
    fn no_data_blocks_with_reason() {
        let s = Standard::national_2020();
        let mut inp = inputs(None, Some(700));
        inp.remove("I2");
        let r = evaluate(&s, &inp).unwrap();
        assert!(!r.tight);
        let b = r
            .blockers
            .iter()
            .find(|b| b.rule == BlockRule::NoData)
            .unwrap();
        assert_eq!(b.criteria, ["S1", "I2"]);
        assert!(b.message.contains("无数据"));
        assert_eq!(r.criteria[7].grade, None);
        assert_eq!(grade_label(r.criteria[7].grade), "无数据");
        assert_eq!(r.what_if.len(), 2);
        assert_eq!(
            r.what_if[0].message,
            "S1 县域内住院人次占比无数据：需补充数据，且不低于 80.0%（B）"
        );
        assert_eq!(r.what_if[0].needed, Some(800));
        assert_eq!(
            (r.what_if[1].criterion.as_str(), r.what_if[1].to),
            ("I2", Grade::B)
        );
    }

    #[test]
    fn decision_authority_must_be_a() {
        let s = Standard::national_2020();
        let mut inp = inputs(Some(900), Some(700));
        inp.insert("R2".into(), attested(Grade::B));
        let r = evaluate(&s, &inp).unwrap();
        assert_eq!(r.a_count, 10);
        assert!(!r.tight);
        assert_eq!(r.blockers.len(), 1);
        assert_eq!(r.blockers[0].rule, BlockRule::DecisionAuthority);
        assert_eq!(r.what_if.len(), 1);
        assert_eq!(r.what_if[0].criterion, "R2");
        assert_eq!(r.what_if[0].to, Grade::A);
    }

    #[test]
    fn refuses_bad_inputs() {
        let s = Standard::national_2020();
        let mut inp = inputs(Some(900), Some(700));
        inp.insert(
            "R1".into(),
            Input::Attested {
                grade: Grade::A,
                evidence: vec!["  ".into()],
            },
        );
        assert_eq!(
            evaluate(&s, &inp).unwrap_err(),
            EvalError::MissingEvidence("R1".into())
        );
        let mut inp = inputs(Some(900), Some(700));
        inp.insert("X9".into(), attested(Grade::A));
        let e = evaluate(&s, &inp).unwrap_err();
        assert!(e.to_string().contains("X9"), "{e}");
        let mut inp = inputs(Some(900), Some(700));
        inp.insert("S1".into(), attested(Grade::A));
        assert!(matches!(
            evaluate(&s, &inp),
            Err(EvalError::KindMismatch { .. })
        ));
        let mut inp = inputs(Some(900), Some(700));
        inp.insert("R1".into(), Input::Value(Some(1)));
        assert!(matches!(
            evaluate(&s, &inp),
            Err(EvalError::KindMismatch { .. })
        ));
        let inp = inputs(Some(1001), Some(700));
        assert!(matches!(
            evaluate(&s, &inp),
            Err(EvalError::ValueOutOfRange { .. })
        ));
    }

    fn national_json() -> serde_json::Value {
        serde_json::from_str(NATIONAL_2020).unwrap()
    }

    fn parse_err(f: impl FnOnce(&mut serde_json::Value)) -> EvalError {
        let mut v = national_json();
        f(&mut v);
        Standard::parse(&v.to_string()).unwrap_err()
    }

    #[test]
    fn refuses_bad_files() {
        let e = parse_err(|v| v["criteria"][0]["dimension"] = "finance".into());
        assert!(matches!(e, EvalError::UnknownDimension { .. }), "{e}");
        assert!(e.to_string().contains("finance"));
        let e = parse_err(|v| v["criteria"][1]["id"] = "R1".into());
        assert_eq!(e, EvalError::DuplicateCriterion("R1".into()));
        let e = parse_err(|v| v["criteria"][7]["thresholds"]["A"] = 700.into());
        assert!(matches!(e, EvalError::Threshold { .. }), "{e}");
        assert!(e.to_string().contains("A 的阈值必须大于 B"), "{e}");
        let e = parse_err(|v| v["criteria"][7]["thresholds"]["A"] = 85.5.into());
        assert!(e.to_string().contains("不是整数"), "{e}");
        let e = parse_err(|v| v["criteria"][7]["thresholds"]["A"] = 1200.into());
        assert!(e.to_string().contains("超出单位范围"), "{e}");
        let e = parse_err(|v| {
            v["criteria"][7]["thresholds"]
                .as_object_mut()
                .unwrap()
                .remove("B");
        });
        assert!(e.to_string().contains("缺少等级 B 的阈值"), "{e}");
        let e = parse_err(|v| v["criteria"][1]["decision_authority"] = false.into());
        assert_eq!(e, EvalError::MissingDecisionAuthority);
        let e = parse_err(|v| v["criteria"][0]["decision_authority"] = true.into());
        assert!(matches!(e, EvalError::MultipleDecisionAuthority(_)));
        let e = parse_err(|v| v["rule"]["min_a"] = 12.into());
        assert!(matches!(e, EvalError::Rule { param: "min_a", .. }), "{e}");
        let e = parse_err(|v| v["rule"]["min_a"] = (-1).into());
        assert!(matches!(e, EvalError::Rule { param: "min_a", .. }), "{e}");
        let e = parse_err(|v| v["rule"]["min_a_per_dimension"] = 3.into());
        assert!(e.to_string().contains("最小维度"), "{e}");
        let e = parse_err(|v| v["rule"]["min_grade"] = "D".into());
        assert!(
            matches!(
                e,
                EvalError::Rule {
                    param: "min_grade",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_err(|v| v["criteria"][0]["kind"] = "guessed".into());
        assert!(e.to_string().contains("guessed"), "{e}");
        let e = parse_err(|v| v["criteria"][0]["thresholds"] = serde_json::json!({"A": 1, "B": 0}));
        assert!(e.to_string().contains("不应设置 thresholds"), "{e}");
        let e = parse_err(|v| {
            v["criteria"][0]["grades"]
                .as_object_mut()
                .unwrap()
                .remove("C");
        });
        assert!(e.to_string().contains("缺少等级 C"), "{e}");
        let e = parse_err(|v| v["criteria"][0]["threshold"] = 1.into());
        assert!(matches!(e, EvalError::Format(_)), "{e}");
        let e = parse_err(|v| v["schema"] = 2.into());
        assert_eq!(e, EvalError::Schema(2));
        let e = parse_err(|v| {
            v["dimensions"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"id": "extra", "name": "多余"}));
        });
        assert_eq!(e, EvalError::EmptyDimension("extra".into()));
        assert!(matches!(Standard::parse("{"), Err(EvalError::Format(_))));
    }

    // ---- properties -------------------------------------------------------

    /// The rule, written independently of `blockers`.
    fn tight_by_rule(s: &Standard, grades: &[Option<Grade>]) -> bool {
        let r = s.rule();
        let c = s.criteria();
        if grades.iter().any(|g| g.is_none()) {
            return false;
        }
        let g: Vec<Grade> = grades.iter().map(|g| g.unwrap()).collect();
        if g.iter().any(|&x| x < r.min_grade) {
            return false;
        }
        if g.iter().filter(|&&x| x == Grade::A).count() < r.min_a {
            return false;
        }
        for d in s.dimensions() {
            let a = (0..c.len())
                .filter(|&i| c[i].dimension == d.id && g[i] == Grade::A)
                .count();
            if a < r.min_a_per_dimension {
                return false;
            }
        }
        let da = c.iter().position(|x| x.decision_authority).unwrap();
        g[da] >= r.decision_authority_grade
    }

    fn grade_strategy() -> impl Strategy<Value = Option<Grade>> {
        prop_oneof![
            1 => Just(None),
            3 => Just(Some(Grade::C)),
            3 => Just(Some(Grade::B)),
            4 => Just(Some(Grade::A)),
        ]
    }

    fn standard_strategy() -> impl Strategy<Value = Standard> {
        (0usize..=11, 0usize..=2, 0usize..3, 0usize..3).prop_map(|(min_a, per_dim, mg, dg)| {
            let names = ["A", "B", "C"];
            let mut v = national_json();
            v["rule"]["min_a"] = min_a.into();
            v["rule"]["min_a_per_dimension"] = per_dim.into();
            v["rule"]["min_grade"] = names[mg].into();
            v["rule"]["decision_authority_grade"] = names[dg].into();
            Standard::parse(&v.to_string()).unwrap()
        })
    }

    /// Inputs reaching exactly `grades` (for computed: a value inside the band).
    fn inputs_for(
        s: &Standard,
        grades: &[Option<Grade>],
        jitter: &[i64],
    ) -> BTreeMap<String, Input> {
        let mut m = BTreeMap::new();
        for (i, c) in s.criteria().iter().enumerate() {
            let input = match (&c.kind, grades[i]) {
                (Kind::Computed(_), None) => Input::Value(None),
                (Kind::Computed(me), Some(g)) => {
                    let j = jitter[i];
                    let v = match g {
                        Grade::A => me.a + j % (1000 - me.a + 1),
                        Grade::B => me.b + j % (me.a - me.b),
                        Grade::C => j % me.b,
                    };
                    Input::Value(Some(v))
                }
                (Kind::Attested, None) => continue,
                (Kind::Attested, Some(g)) => attested(g),
            };
            m.insert(c.id.clone(), input);
        }
        m
    }

    fn apply(
        s: &Standard,
        inputs: &BTreeMap<String, Input>,
        changes: &[Change],
    ) -> BTreeMap<String, Input> {
        let mut m = inputs.clone();
        for ch in changes {
            let c = s.criterion(&ch.criterion).unwrap();
            let input = match &c.kind {
                // Needed is absent only when any value will do (target C).
                Kind::Computed(_) => {
                    assert!(ch.needed.is_some() || ch.to == Grade::C, "{ch:?}");
                    Input::Value(Some(ch.needed.unwrap_or(0)))
                }
                Kind::Attested => attested(ch.to),
            };
            m.insert(ch.criterion.clone(), input);
        }
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn verdict_what_if_and_minimality(
            s in standard_strategy(),
            grades in proptest::collection::vec(grade_strategy(), 11),
            jitter in proptest::collection::vec(0i64..1000, 11),
        ) {
            let inp = inputs_for(&s, &grades, &jitter);
            let r = evaluate(&s, &inp).unwrap();
            let got: Vec<Option<Grade>> = r.criteria.iter().map(|c| c.grade).collect();
            prop_assert_eq!(&got, &grades);
            // The verdict matches the rule written independently.
            prop_assert_eq!(r.tight, tight_by_rule(&s, &grades));
            prop_assert_eq!(r.tight, r.blockers.is_empty());
            prop_assert_eq!(r.tight, r.what_if.is_empty());
            if r.tight {
                return Ok(());
            }
            // Every change is an upgrade (no data counts as the lowest).
            for ch in &r.what_if {
                prop_assert!(ch.from.is_none_or(|f| f < ch.to), "{:?}", ch);
            }
            // Applying the what-if makes the community tight.
            let after = evaluate(&s, &apply(&s, &inp, &r.what_if)).unwrap();
            prop_assert!(after.tight, "{:?} after {:?}", after.blockers, r.what_if);
            // No smaller set does: raising a set to A is the best it can do.
            let k = r.what_if.len();
            for mask in 0u32..(1 << 11) {
                if (mask.count_ones() as usize) >= k {
                    continue;
                }
                let mut g = grades.clone();
                for (i, x) in g.iter_mut().enumerate() {
                    if mask & (1 << i) != 0 {
                        *x = Some(Grade::A);
                    }
                }
                prop_assert!(!tight_by_rule(&s, &g), "smaller set {:b} than {:?}", mask, r.what_if);
            }
        }
    }

    #[test]
    fn tie_break_prefers_smaller_gap() {
        let s = Standard::national_2020();
        // 7 attested at A, R3 at B, both computed at B: need one more A.
        let mut inp = inputs(Some(845), Some(610));
        inp.insert("R3".into(), attested(Grade::B));
        let r = evaluate(&s, &inp).unwrap();
        assert_eq!(r.a_count, 8);
        // 8 A's but service has none: S1 (gap 5/850) beats S2 (gap 40/650).
        assert_eq!(r.what_if.len(), 1);
        assert_eq!(r.what_if[0].criterion, "S1");
        assert_eq!(r.what_if[0].needed, Some(850));
        assert_eq!(
            r.what_if[0].message,
            "S1 县域内住院人次占比需从 84.5% 提高到 85.0%（B → A）"
        );
    }

    #[test]
    fn c_already_changing_is_raised_to_a_rather_than_touching_another() {
        let s = Standard::national_2020();
        // 7 A, R3 at C, M1–M3 at B → needs 8 A: R3 C→A is one change; R3 C→B
        // plus M1 B→A would be two.
        let mut inp = inputs(Some(900), Some(700));
        inp.insert("R3".into(), attested(Grade::C));
        inp.insert("M1".into(), attested(Grade::B));
        inp.insert("M2".into(), attested(Grade::B));
        inp.insert("M3".into(), attested(Grade::B));
        let r = evaluate(&s, &inp).unwrap();
        assert_eq!(r.a_count, 7);
        assert_eq!(r.what_if.len(), 1);
        assert_eq!(
            (r.what_if[0].criterion.as_str(), r.what_if[0].to),
            ("R3", Grade::A)
        );
    }
}
