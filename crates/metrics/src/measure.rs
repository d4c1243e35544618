//! Each indicator as a FHIR R4 Measure, and its figure for an organisation and
//! period as a MeasureReport (what `$evaluate-measure` returns with
//! `reportType=summary`).
//!
//! - Measure ids are the indicator ids with `-` for `_` (FHIR ids allow no
//!   underscore); the canonical url is `https://yigong.org.cn/fhir/Measure/<measure id>`
//!   and the indicator id is kept as an identifier.
//! - Scoring: shares whose numerator is a part of the denominator are
//!   `proportion`; other fractions (averages, ratios, growth) `ratio`; plain
//!   sums `continuous-variable`.
//! - Population counts are FHIR integers (32-bit): a count is given only for
//!   a population of events (visits, reports …) that fits; every population
//!   also carries its exact total as a Quantity in the extension
//!   [`EXT_POPULATION_TOTAL`] (money in CNY with two decimals, days, minutes,
//!   person-months), since a sum of fen is not a head count.
//! - The score is an exact decimal built from the integer score's digits
//!   (never computed in floating point), with its unit: `%` for shares,
//!   CNY for money, UCUM `d` / `min` / `mo` / `1` otherwise. A zero
//!   denominator gives no `measureScore` and a data-absent-reason on the group.
//! - An organisation (county, community, institution) goes into
//!   `MeasureReport.reporter`: R4 `MeasureReport.subject` does not allow
//!   Organization (DEQM summary reports do the same); any other reference
//!   (Group, Location, Patient …) goes into `subject`.

use crate::Unit;
use crate::indicators::{Compare, Indicator, Kind, Value, decimal};
use serde_json::{Value as Json, json};

pub const MEASURE_BASE: &str = "https://yigong.org.cn/fhir/Measure/";
/// The indicator id (snake_case) as a Measure identifier.
pub const SID_INDICATOR: &str = "https://yigong.org.cn/fhir/sid/indicator";
/// The exact total of a population (valueQuantity).
pub const EXT_POPULATION_TOTAL: &str =
    "https://yigong.org.cn/fhir/StructureDefinition/population-total";
const EXT_DATA_ABSENT: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
const CS_SCORING: &str = "http://terminology.hl7.org/CodeSystem/measure-scoring";
const CS_POPULATION: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const CS_IMPROVEMENT: &str = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation";
const UCUM: &str = "http://unitsofmeasure.org";
const ISO4217: &str = "urn:iso:std:iso:4217";

/// The FHIR Measure id of an indicator (`primary_visit_share` → `primary-visit-share`).
pub fn measure_id(ind: &Indicator) -> String {
    ind.id.replace('_', "-")
}

/// The canonical url of an indicator's Measure.
pub fn canonical(ind: &Indicator) -> String {
    format!("{MEASURE_BASE}{}", measure_id(ind))
}

/// The Measure scoring code.
pub fn scoring(ind: &Indicator) -> &'static str {
    if ind.compare.is_some() {
        return "ratio";
    }
    if ind.denominator_components.is_empty() {
        return if ind.available {
            "continuous-variable"
        } else {
            "proportion"
        };
    }
    if ind.is_proportion() {
        "proportion"
    } else {
        "ratio"
    }
}

fn pascal(id: &str) -> String {
    id.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn concept(system: &str, code: &str, display: &str) -> Json {
    json!({ "coding": [{ "system": system, "code": code, "display": display }] })
}

fn population_code(code: &str) -> Json {
    let display = match code {
        "initial-population" => "Initial Population",
        "numerator" => "Numerator",
        "denominator" => "Denominator",
        "measure-population" => "Measure Population",
        "measure-observation" => "Measure Observation",
        _ => code,
    };
    concept(CS_POPULATION, code, display)
}

fn improvement(ind: &Indicator) -> Json {
    match ind.direction {
        crate::Direction::HigherIsBetter => concept(
            CS_IMPROVEMENT,
            "increase",
            "Increased score indicates improvement",
        ),
        crate::Direction::LowerIsBetter => concept(
            CS_IMPROVEMENT,
            "decrease",
            "Decreased score indicates improvement",
        ),
    }
}

fn formula(list: &[String]) -> String {
    list.join(" + ")
}

fn unit_text(ind: &Indicator) -> String {
    match ind.unit {
        Unit::Permille => "单位：百分比（保存为千分比整数，850 = 85.0%）".into(),
        Unit::Bp => "单位：百分比（保存为万分比整数，8500 = 85.00%）".into(),
        Unit::Count if ind.numerator_kind() == Kind::Fen => "单位：元（保存为分，两位小数）".into(),
        Unit::Count => {
            let label = if ind.unit_label.is_empty() {
                ind.numerator_kind().label()
            } else {
                &ind.unit_label
            };
            if ind.decimals > 0 {
                format!("单位：{label}（保存为 × 10^{} 的整数）", ind.decimals)
            } else {
                format!("单位：{label}")
            }
        }
    }
}

/// The written definition as Markdown (Measure.description).
pub fn description(ind: &Indicator) -> String {
    let mut out = format!("**{}**（{}）\n\n", ind.name, ind.group.label_zh());
    out += &format!("- 分子：{}\n", ind.numerator);
    if !ind.denominator.is_empty() {
        out += &format!("- 分母：{}\n", ind.denominator);
    }
    out += &format!("- 纳入规则：{}\n", ind.inclusion);
    out += &format!("- 数据来源：{}\n", ind.source_data);
    out += &format!("- 统计周期：{}\n", ind.period);
    out += &format!("- {}\n", unit_text(ind));
    match ind.target {
        Some(t) => {
            out += &format!(
                "- 目标值：{}（{}）\n",
                ind.format(Some(t)),
                direction_text(ind)
            )
        }
        None => out += &format!("- 目标值：无（{}）\n", direction_text(ind)),
    }
    if ind.compare == Some(Compare::PreviousYear) {
        out += "- 比较：与上年同期比较的增幅\n";
    }
    if !ind.available {
        out += "- 状态：数据不可得，暂不计算\n";
    }
    if !ind.note.is_empty() {
        out += &format!("- 说明：{}\n", ind.note);
    }
    out += &format!("- 依据：{}\n", ind.source);
    out
}

fn direction_text(ind: &Indicator) -> &'static str {
    match ind.direction {
        crate::Direction::HigherIsBetter => "越高越好",
        crate::Direction::LowerIsBetter => "越低越好",
    }
}

fn criteria(description: &str, expression: &str) -> Json {
    json!({ "description": description, "language": "text/plain", "expression": expression })
}

/// An indicator as a FHIR R4 Measure.
pub fn measure(ind: &Indicator) -> Json {
    let num = formula(&ind.numerator_components);
    let den = formula(&ind.denominator_components);
    let unavailable = "（数据不可得）";
    let expr = |e: &str| {
        if ind.available {
            e.to_string()
        } else {
            unavailable.to_string()
        }
    };
    let pops = match scoring(ind) {
        "continuous-variable" => vec![
            json!({ "code": population_code("initial-population"), "description": ind.inclusion,
                    "criteria": criteria(&ind.inclusion, &expr(&num)) }),
            json!({ "code": population_code("measure-population"), "description": ind.numerator,
                    "criteria": criteria(&ind.numerator, &expr(&num)) }),
            json!({ "code": population_code("measure-observation"), "description": format!("{}之和", ind.numerator),
                    "criteria": criteria(&unit_text(ind), &expr(&format!("sum({num})"))) }),
        ],
        _ if ind.compare.is_some() => {
            let base = if den.is_empty() {
                num.clone()
            } else {
                format!("({num}) / ({den})")
            };
            vec![
                json!({ "code": population_code("initial-population"), "description": ind.inclusion,
                        "criteria": criteria(&ind.inclusion, &expr(&base)) }),
                json!({ "code": population_code("numerator"), "description": "本期的基数（分子 = 本期数值）",
                        "criteria": criteria(&ind.numerator, &expr(&format!("{base} @ 本期"))) }),
                json!({ "code": population_code("denominator"), "description": "上年同期的基数（分母 = 上年同期数值）",
                        "criteria": criteria(&ind.denominator, &expr(&format!("{base} @ 上年同期"))) }),
            ]
        }
        _ => vec![
            json!({ "code": population_code("initial-population"), "description": ind.inclusion,
                    "criteria": criteria(&ind.inclusion, &expr(&den)) }),
            json!({ "code": population_code("denominator"), "description": ind.denominator,
                    "criteria": criteria(&ind.denominator, &expr(&den)) }),
            json!({ "code": population_code("numerator"), "description": ind.numerator,
                    "criteria": criteria(&ind.numerator, &expr(&num)) }),
        ],
    };
    let code = scoring(ind);
    let display = match code {
        "proportion" => "Proportion",
        "ratio" => "Ratio",
        _ => "Continuous Variable",
    };
    let mut m = json!({
        "resourceType": "Measure",
        "id": measure_id(ind),
        "url": canonical(ind),
        "identifier": [{ "system": SID_INDICATOR, "value": ind.id }],
        "name": pascal(&ind.id),
        "title": ind.name,
        "status": if ind.available { "active" } else { "draft" },
        "experimental": false,
        "publisher": "yigong 医共体运营发展中心",
        "description": description(ind),
        "subjectCodeableConcept": concept("http://hl7.org/fhir/resource-types", "Organization", "Organization"),
        "topic": [{ "text": ind.group.label_zh() }],
        "relatedArtifact": [{ "type": "documentation", "display": ind.source }],
        "scoring": concept(CS_SCORING, code, display),
        "improvementNotation": improvement(ind),
        "group": [{
            "description": if ind.compare.is_some() {
                format!("得分 = (本期 − 上年同期) / 上年同期；{}", unit_text(ind))
            } else {
                unit_text(ind)
            },
            "population": pops,
        }],
    });
    if !ind.note.is_empty() {
        m["guidance"] = json!(ind.note);
    }
    m
}

/// A decimal text as a JSON number. The text is exact; serde_json keeps
/// decimals as `f64`, whose shortest representation gives the same digits for
/// up to 15 significant digits (¥10 trillion with fen), so no float noise
/// appears. Integers stay integers.
fn number(text: &str) -> Json {
    if !text.contains('.')
        && let Ok(i) = text.parse::<i64>()
    {
        return json!(i);
    }
    serde_json::from_str::<Json>(text).unwrap_or(Json::Null)
}

/// A quantity of a component kind, from an integer in that kind's storage
/// unit scaled by `10^decimals` (fen for money).
fn quantity(kind: Kind, v: i64, decimals: u32, label: &str) -> Json {
    match kind {
        Kind::Fen => {
            json!({ "value": number(&decimal(v, 2)), "unit": "元", "system": ISO4217, "code": "CNY" })
        }
        Kind::Days => {
            json!({ "value": number(&decimal(v, decimals)), "unit": "天", "system": UCUM, "code": "d" })
        }
        Kind::Minutes => {
            json!({ "value": number(&decimal(v, decimals)), "unit": "分钟", "system": UCUM, "code": "min" })
        }
        Kind::Months => {
            json!({ "value": number(&decimal(v, decimals)), "unit": "人·月", "system": UCUM, "code": "mo" })
        }
        Kind::Count => {
            let unit = if label.is_empty() { "1" } else { label };
            json!({ "value": number(&decimal(v, decimals)), "unit": unit, "system": UCUM, "code": "1" })
        }
    }
}

fn score_quantity(ind: &Indicator, score: i64) -> Json {
    match ind.unit {
        Unit::Permille => {
            json!({ "value": number(&decimal(score, 1)), "unit": "%", "system": UCUM, "code": "%" })
        }
        Unit::Bp => {
            json!({ "value": number(&decimal(score, 2)), "unit": "%", "system": UCUM, "code": "%" })
        }
        Unit::Count => quantity(ind.numerator_kind(), score, ind.decimals, &ind.unit_label),
    }
}

fn population(code: &str, kind: Kind, total: i64, decimals: u32, label: &str) -> Json {
    let mut p = json!({ "code": population_code(code) });
    if kind == Kind::Count
        && decimals == 0
        && let Ok(c) = i32::try_from(total)
    {
        p["count"] = json!(c);
    }
    p["extension"] = json!([{ "url": EXT_POPULATION_TOTAL, "valueQuantity": quantity(kind, total, decimals, label) }]);
    p
}

/// The MeasureReport of an indicator's figure (`value`, from
/// [`crate::indicators::value`] or [`crate::indicators::value_growth`]) for
/// `subject_ref` (`Organization/<id>` goes into `reporter`) and the period
/// (FHIR dates, as asked).
pub fn measure_report(
    ind: &Indicator,
    subject_ref: &str,
    period_start: &str,
    period_end: &str,
    value: &Value,
) -> Json {
    let nk = ind.numerator_kind();
    let dk = ind.denominator_kind().unwrap_or(Kind::Count);
    let pops: Vec<Json> = if ind.compare.is_some() {
        // The base figures of both periods, in the base's kind (fen for money).
        let base_dec = if nk == Kind::Fen { 2 } else { ind.decimals };
        let (kind, dec, label) = if dk == Kind::Count || nk == Kind::Fen {
            (nk, base_dec, ind.unit_label.as_str())
        } else {
            (Kind::Count, base_dec, "")
        };
        let mut v = vec![population("numerator", kind, value.numerator, dec, label)];
        if let Some(d) = value.denominator {
            v.push(population("denominator", kind, d, dec, label));
        } else {
            v.push(json!({ "code": population_code("denominator") }));
        }
        v
    } else if ind.denominator_components.is_empty() {
        vec![
            population(
                "initial-population",
                nk,
                value.numerator,
                0,
                &ind.unit_label,
            ),
            population(
                "measure-population",
                nk,
                value.numerator,
                0,
                &ind.unit_label,
            ),
        ]
    } else {
        let den = value.denominator.unwrap_or(0);
        let label = |k: Kind| if k == Kind::Count { "" } else { k.label() };
        let mut v = Vec::new();
        if scoring(ind) == "proportion" {
            v.push(population("initial-population", dk, den, 0, label(dk)));
        }
        v.push(population("denominator", dk, den, 0, label(dk)));
        v.push(population("numerator", nk, value.numerator, 0, label(nk)));
        v
    };
    let mut group = json!({ "population": pops });
    match value.score {
        Some(s) => group["measureScore"] = score_quantity(ind, s),
        None => {
            group["extension"] = json!([{ "url": EXT_DATA_ABSENT, "valueCode": "not-applicable" }]);
        }
    }
    let mut r = json!({
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": canonical(ind),
        "period": { "start": period_start, "end": period_end },
        "improvementNotation": improvement(ind),
        "group": [group],
    });
    if subject_ref.starts_with("Organization/") {
        r["reporter"] = json!({ "reference": subject_ref });
    } else {
        r["subject"] = json!({ "reference": subject_ref });
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_exact() {
        for t in ["82.1", "8123.45", "0.05", "-12.5", "123456789012.34"] {
            let n = number(t);
            let back: f64 = t.parse().unwrap();
            assert_eq!(n.to_string().parse::<f64>().unwrap(), back);
            assert_eq!(n.to_string().trim_end_matches('0'), t.trim_end_matches('0'));
        }
        assert_eq!(number("42").to_string(), "42");
        assert_eq!(pascal("primary_visit_share"), "PrimaryVisitShare");
    }
}
