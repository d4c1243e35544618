//! FHIR search parameters → a storage-neutral search specification.

use crate::Issue;
use crate::extract::{normalize_date, normalize_text, parse_reference};
use chrono::{Duration, NaiveDate};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A value in the search index under this parameter name.
    Index(String),
    Patient,
    Org,
    Date,
    Id,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    Eq(String),
    Prefix(String),
    /// lo inclusive, hi exclusive.
    Range(Option<String>, Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub target: Target,
    /// Alternatives (comma-separated values): any may match.
    pub matches: Vec<ValueMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortField {
    LastUpdated,
    Id,
    Date,
    /// The first name (HumanName text, or Organization name).
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalMode {
    None,
    Accurate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchSpec {
    pub rtype: String,
    pub filters: Vec<Filter>,
    pub sort: Vec<(SortField, bool)>,
    pub count: i64,
    pub offset: i64,
    pub total: TotalMode,
    pub summary_count: bool,
    pub elements: Option<Vec<String>>,
}

pub const DEFAULT_COUNT: i64 = 20;
pub const MAX_COUNT: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Str,
    Date,
    Reference,
}

/// The search parameters each resource type supports: (name, target, kind).
pub fn parameters(rtype: &str) -> Vec<(&'static str, Target, &'static str)> {
    definitions(rtype)
        .into_iter()
        .map(|(n, t, k)| {
            let kind = match k {
                Kind::Token => "token",
                Kind::Str => "string",
                Kind::Date => "date",
                Kind::Reference => "reference",
            };
            (n, t, kind)
        })
        .collect()
}

fn definitions(rtype: &str) -> Vec<(&'static str, Target, Kind)> {
    use Kind::*;
    let ix = |s: &str| Target::Index(s.to_string());
    let mut v = vec![
        ("_id", Target::Id, Token),
        ("identifier", ix("identifier"), Token),
    ];
    match rtype {
        "Patient" => v.extend([
            ("name", ix("name"), Str),
            ("family", ix("family"), Str),
            ("given", ix("given"), Str),
            ("birthdate", ix("birthdate"), Date),
            ("gender", ix("gender"), Token),
            ("telecom", ix("telecom"), Token),
            ("phone", ix("phone"), Token),
            ("organization", Target::Org, Reference),
        ]),
        "Practitioner" => v.extend([
            ("name", ix("name"), Str),
            ("family", ix("family"), Str),
            ("given", ix("given"), Str),
            ("gender", ix("gender"), Token),
        ]),
        "Organization" => v.extend([
            ("name", ix("name"), Str),
            ("type", ix("type"), Token),
            ("partof", ix("partof"), Reference),
        ]),
        "PractitionerRole" => v.extend([
            ("practitioner", ix("practitioner"), Reference),
            ("organization", Target::Org, Reference),
            ("role", ix("role"), Token),
        ]),
        "Encounter" => v.extend([
            ("patient", Target::Patient, Reference),
            ("subject", Target::Patient, Reference),
            ("date", Target::Date, Date),
            ("class", ix("class"), Token),
            ("status", ix("status"), Token),
            ("service-provider", Target::Org, Reference),
            ("organization", Target::Org, Reference),
            ("reason-code", ix("reason-code"), Token),
        ]),
        _ => v.extend([
            ("patient", Target::Patient, Reference),
            ("subject", Target::Patient, Reference),
            ("date", Target::Date, Date),
            ("onset-date", Target::Date, Date),
            ("code", ix("code"), Token),
            ("status", ix("status"), Token),
            ("encounter", ix("encounter"), Reference),
            ("organization", Target::Org, Reference),
        ]),
    }
    // Workflow resources (referral, orders, appointments): their own references.
    let extra: &[(&'static str, &'static str, Kind)] = match rtype {
        "Task" => &[
            ("owner", "owner", Reference),
            ("performer", "owner", Reference),
            ("requester", "requester", Reference),
            ("focus", "focus", Reference),
            ("business-status", "business-status", Token),
            ("priority", "priority", Token),
        ],
        "ServiceRequest" => &[
            ("requester", "requester", Reference),
            ("performer", "performer", Reference),
            ("category", "category", Token),
            ("priority", "priority", Token),
        ],
        "DiagnosticReport" => &[
            ("based-on", "based-on", Reference),
            ("performer", "performer", Reference),
            ("result", "result", Reference),
            ("category", "category", Token),
        ],
        "Observation" => &[
            ("based-on", "based-on", Reference),
            ("performer", "performer", Reference),
            ("category", "category", Token),
        ],
        "Slot" => &[
            ("schedule", "schedule", Reference),
            ("service-type", "service-type", Token),
        ],
        "Appointment" => &[
            ("slot", "slot", Reference),
            ("actor", "actor", Reference),
            ("based-on", "based-on", Reference),
            ("service-type", "service-type", Token),
        ],
        "Schedule" => &[
            ("actor", "actor", Reference),
            ("service-type", "service-type", Token),
        ],
        _ => &[],
    };
    for (name, param, kind) in extra {
        v.push((name, Target::Index(param.to_string()), *kind));
    }
    if matches!(rtype, "Slot") {
        v.push(("start", Target::Date, Date));
    }
    if matches!(rtype, "ServiceRequest") {
        v.push(("authored", Target::Date, Date));
    }
    if matches!(rtype, "Task") {
        v.push(("authored-on", Target::Date, Date));
    }
    v
}

/// End (exclusive) of the period a partial date denotes.
fn date_bounds(v: &str) -> Option<(String, String)> {
    let n = normalize_date(v)?;
    let end = match n.len() {
        4 => format!("{}", n.parse::<i32>().ok()? + 1),
        7 => {
            let d = NaiveDate::parse_from_str(&format!("{n}-01"), "%Y-%m-%d").ok()?;
            let next = d.checked_add_months(chrono::Months::new(1))?;
            next.format("%Y-%m").to_string()
        }
        10 => (NaiveDate::parse_from_str(&n, "%Y-%m-%d").ok()? + Duration::days(1)).to_string(),
        _ => {
            let t = chrono::DateTime::parse_from_rfc3339(&n).ok()? + Duration::seconds(1);
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
    };
    Some((n, end))
}

fn date_match(raw: &str) -> Result<ValueMatch, Issue> {
    let (prefix, value) = match raw.get(..2) {
        Some(p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap")) => (p, &raw[2..]),
        _ => ("eq", raw),
    };
    let (start, end) = date_bounds(value).ok_or_else(|| {
        Issue::invalid(
            "search-date",
            format!("日期参数 {raw} 格式错误,应为 YYYY、YYYY-MM、YYYY-MM-DD 或带时区的时间"),
        )
    })?;
    Ok(match prefix {
        "eq" | "ap" => ValueMatch::Range(Some(start), Some(end)),
        "ge" => ValueMatch::Range(Some(start), None),
        "gt" | "sa" => ValueMatch::Range(Some(end), None),
        "le" => ValueMatch::Range(None, Some(end)),
        "lt" | "eb" => ValueMatch::Range(None, Some(start)),
        _ => {
            return Err(Issue::new(
                400,
                "not-supported",
                "search-prefix",
                format!("暂不支持日期前缀 {prefix}"),
            ));
        }
    })
}

fn reference_id(raw: &str) -> String {
    parse_reference(raw).map_or_else(|| raw.to_string(), |(_, id)| id.to_string())
}

/// Parses the query pairs of `GET /fhir/{rtype}?…`.
pub fn parse(rtype: &str, pairs: &[(String, String)]) -> Result<SearchSpec, Issue> {
    let defs = definitions(rtype);
    let mut spec = SearchSpec {
        rtype: rtype.to_string(),
        filters: vec![],
        sort: vec![],
        count: DEFAULT_COUNT,
        offset: 0,
        total: TotalMode::None,
        summary_count: false,
        elements: None,
    };
    for (key, value) in pairs {
        let bad_number = || Issue::invalid("search-number", format!("参数 {key} 应为非负整数"));
        match key.as_str() {
            "_count" => {
                spec.count = value
                    .parse::<i64>()
                    .map_err(|_| bad_number())?
                    .clamp(0, MAX_COUNT)
            }
            "_offset" => spec.offset = value.parse::<i64>().map_err(|_| bad_number())?.max(0),
            "_total" => {
                spec.total = match value.as_str() {
                    "none" => TotalMode::None,
                    "accurate" | "estimate" => TotalMode::Accurate,
                    _ => {
                        return Err(Issue::invalid(
                            "search-total",
                            "_total 只能是 none、estimate 或 accurate",
                        ));
                    }
                }
            }
            "_summary" => match value.as_str() {
                "count" => spec.summary_count = true,
                "false" => {}
                _ => {
                    return Err(Issue::new(
                        400,
                        "not-supported",
                        "search-summary",
                        "_summary 目前支持 count 与 false",
                    ));
                }
            },
            "_elements" => {
                spec.elements = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "_sort" => {
                for f in value.split(',').filter(|s| !s.is_empty()) {
                    let (desc, name) = f.strip_prefix('-').map_or((false, f), |n| (true, n));
                    let field = match name {
                        "_lastUpdated" => SortField::LastUpdated,
                        "_id" => SortField::Id,
                        "date" | "onset-date" => SortField::Date,
                        "birthdate" if rtype == "Patient" => SortField::Date,
                        "name" | "family" | "given" if defs.iter().any(|d| d.0 == name) => {
                            SortField::Name
                        }
                        _ => {
                            return Err(Issue::invalid(
                                "search-sort",
                                format!("不支持按 {name} 排序"),
                            ));
                        }
                    };
                    spec.sort.push((field, desc));
                }
            }
            "_format" | "_pretty" => {}
            _ => {
                let (name, modifier) = key
                    .split_once(':')
                    .map_or((key.as_str(), None), |(n, m)| (n, Some(m)));
                let Some((_, target, kind)) = defs.iter().find(|d| d.0 == name) else {
                    return Err(Issue::invalid(
                        "search-unknown-param",
                        format!("{rtype} 不支持搜索参数 {name}"),
                    ));
                };
                let mut matches = vec![];
                for v in value.split(',').filter(|s| !s.is_empty()) {
                    matches.push(match (kind, modifier) {
                        (Kind::Str, None) => ValueMatch::Prefix(normalize_text(v)),
                        (Kind::Str, Some("exact")) => ValueMatch::Eq(normalize_text(v)),
                        (Kind::Token, None) => {
                            let v = v.strip_prefix('|').unwrap_or(v);
                            let v = if name == "telecom" {
                                normalize_text(v)
                            } else if let Some((system, code)) = v.rsplit_once('|') {
                                crate::extract::token_key(system, code)
                            } else {
                                v.to_string()
                            };
                            ValueMatch::Eq(v)
                        }
                        (Kind::Date, None) => date_match(v)?,
                        (Kind::Reference, None) => ValueMatch::Eq(reference_id(v)),
                        (_, Some(m)) => {
                            return Err(Issue::new(
                                400,
                                "not-supported",
                                "search-modifier",
                                format!("参数 {name} 不支持修饰符 :{m}"),
                            ));
                        }
                    });
                }
                if matches.is_empty() {
                    return Err(Issue::invalid(
                        "search-empty",
                        format!("参数 {name} 的值不能为空"),
                    ));
                }
                spec.filters.push(Filter {
                    target: target.clone(),
                    matches,
                });
            }
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(rtype: &str, s: &[(&str, &str)]) -> Result<SearchSpec, Issue> {
        parse(
            rtype,
            &s.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn names_are_prefix_matches() {
        let s = q("Patient", &[("name", "王小"), ("_count", "5")]).unwrap();
        assert_eq!(
            s.filters[0].matches,
            vec![ValueMatch::Prefix("王小".into())]
        );
        assert_eq!(s.count, 5);
    }

    #[test]
    fn date_prefixes_become_ranges() {
        let s = q(
            "Encounter",
            &[("date", "ge2026-03"), ("date", "lt2026-04-01")],
        )
        .unwrap();
        assert_eq!(
            s.filters[0].matches,
            vec![ValueMatch::Range(Some("2026-03".into()), None)]
        );
        assert_eq!(
            s.filters[1].matches,
            vec![ValueMatch::Range(None, Some("2026-04-01".into()))]
        );
        let s = q("Patient", &[("birthdate", "1980")]).unwrap();
        assert_eq!(
            s.filters[0].matches,
            vec![ValueMatch::Range(Some("1980".into()), Some("1981".into()))]
        );
        let s = q("Patient", &[("birthdate", "2026-12")]).unwrap();
        assert_eq!(
            s.filters[0].matches,
            vec![ValueMatch::Range(
                Some("2026-12".into()),
                Some("2027-01".into())
            )]
        );
    }

    #[test]
    fn tokens_and_references() {
        let s = q(
            "Encounter",
            &[("patient", "Patient/p1"), ("class", "AMB,EMER")],
        )
        .unwrap();
        assert_eq!(
            s.filters[0],
            Filter {
                target: Target::Patient,
                matches: vec![ValueMatch::Eq("p1".into())]
            }
        );
        assert_eq!(s.filters[1].matches.len(), 2);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(
            q("Patient", &[("shoe-size", "42")]).unwrap_err().code,
            "search-unknown-param"
        );
        assert_eq!(
            q("Patient", &[("birthdate", "yesterday")])
                .unwrap_err()
                .code,
            "search-date"
        );
        assert_eq!(
            q("Patient", &[("_count", "-1x")]).unwrap_err().code,
            "search-number"
        );
        assert_eq!(
            q("Patient", &[("name:contains", "x")]).unwrap_err().code,
            "search-modifier"
        );
        assert_eq!(
            q("Patient", &[("_sort", "shoe")]).unwrap_err().code,
            "search-sort"
        );
    }
}
