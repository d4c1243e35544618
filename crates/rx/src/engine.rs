//! The review engine: a prescription in, findings out, deterministic and
//! without IO. Rules follow the 2018 review norm (RX-REVIEW-2018) in its order:
//! legality, format, then appropriateness; long prescriptions follow LONG-RX-2021.

use crate::knowledge::{
    AntimicrobialGrade, Caution, ControlClass, Drug, InteractionSeverity, Knowledge, atc_matches,
    doses_per_day, frequency_label, icd_matches, route_label, unit_factor,
};
use crate::model::{
    Category, Finding, Prescription, Setting, Severity, SkinTest, Tier, age_days, age_years,
};

const NORM: &str = "RX-REVIEW-2018";
const RX_ADMIN: &str = "RX-ADMIN-2007";
const AMR_RULES: &str = "NHC-AMR-2012";
const LONG_RX: &str = "LONG-RX-2021";
/// Children are dosed per kg below this age (儿科 <14 岁).
const CHILD_YEARS: u32 = 14;
const ELDERLY_YEARS: u32 = 65;
const MAX_ITEMS: usize = 5;

/// What the findings mean for dispensing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// No finding above 提示: may be dispensed after the pharmacist's check.
    Pass,
    /// Warnings: the pharmacist must look before dispensing.
    Review,
    /// A blocking finding: no dispensing until a pharmacist passes it with a reason
    /// or the prescriber changes it.
    Blocked,
}

pub fn verdict(findings: &[Finding]) -> Verdict {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Block) => Verdict::Blocked,
        Some(Severity::Warning) => Verdict::Review,
        _ => Verdict::Pass,
    }
}

struct Out<'k> {
    k: &'k Knowledge,
    findings: Vec<Finding>,
}

impl Out<'_> {
    fn add(
        &mut self,
        rule: &'static str,
        category: Category,
        severity: Severity,
        items: &[usize],
        message: String,
        source: &str,
    ) {
        self.findings.push(Finding {
            rule,
            category,
            severity,
            items: items.to_vec(),
            message,
            source: source.to_string(),
        });
    }
    fn src<'a>(&'a self, d: &'a Drug, group: &str) -> &'a str {
        d.sources
            .get(group)
            .or_else(|| d.sources.get("dose"))
            .map_or(NORM, |s| s.as_str())
    }
}

fn caution_severity(c: Caution) -> Severity {
    match c {
        Caution::Contraindicated => Severity::Block,
        Caution::Avoid => Severity::Warning,
        Caution::Reduce | Caution::Caution => Severity::Info,
    }
}

fn caution_word(c: Caution) -> &'static str {
    match c {
        Caution::Contraindicated => "禁用",
        Caution::Avoid => "避免使用",
        Caution::Reduce => "需减量",
        Caution::Caution => "慎用",
    }
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Reviews one prescription against a knowledge base.
pub fn review(k: &Knowledge, rx: &Prescription) -> Vec<Finding> {
    let mut out = Out {
        k,
        findings: Vec::new(),
    };
    let p = &rx.patient;
    let age_d = p.birth_date.and_then(|b| age_days(b, rx.date));
    let age_y = p.birth_date.and_then(|b| age_years(b, rx.date));
    match (p.birth_date, age_d) {
        (None, _) => out.add(
            "FMT-AGE",
            Category::Format,
            Severity::Block,
            &[],
            "缺少患者出生日期:处方须写明年龄(婴幼儿写日、月龄),请补充出生日期".into(),
            RX_ADMIN,
        ),
        (Some(_), None) => out.add(
            "FMT-AGE",
            Category::Format,
            Severity::Block,
            &[],
            "患者出生日期晚于处方日期,请核对出生日期".into(),
            RX_ADMIN,
        ),
        _ => {}
    }
    if rx.items.is_empty() {
        out.add(
            "FMT-EMPTY",
            Category::Format,
            Severity::Block,
            &[],
            "处方没有药品".into(),
            NORM,
        );
        return out.findings;
    }
    if rx.items.len() > MAX_ITEMS {
        out.add(
            "FMT-COUNT",
            Category::Format,
            Severity::Block,
            &[],
            format!(
                "每张处方不得超过 {MAX_ITEMS} 种药品,本处方 {} 种:请分开开具",
                rx.items.len()
            ),
            RX_ADMIN,
        );
    }
    if rx.diagnoses.iter().all(|d| d.trim().is_empty()) {
        out.add(
            "FMT-DIAGNOSIS",
            Category::Format,
            Severity::Block,
            &[],
            "处方缺少临床诊断,请填写诊断(ICD-10)".into(),
            NORM,
        );
    }
    if let Some(w) = p.weight_kg
        && !(w > 0.3 && w < 300.0)
    {
        out.add(
            "FMT-WEIGHT",
            Category::Format,
            Severity::Block,
            &[],
            format!("体重 {} kg 不合理,请核对", fmt_num(w)),
            NORM,
        );
    }
    let drugs: Vec<Option<usize>> = rx.items.iter().map(|i| k.lookup(i.drug.trim())).collect();
    for (i, item) in rx.items.iter().enumerate() {
        let Some(di) = drugs[i] else {
            out.add(
                "FMT-UNKNOWN-DRUG",
                Category::Format,
                Severity::Block,
                &[i],
                format!(
                    "第{}行药品编码“{}”不在统一用药目录中,请从目录选择药品",
                    i + 1,
                    item.drug
                ),
                NORM,
            );
            continue;
        };
        review_item(&mut out, rx, i, &k.drugs[di], age_d, age_y);
    }
    pairs(&mut out, rx, &drugs);
    potassium(&mut out, rx, &drugs);
    if rx.long_term {
        let listed = rx.diagnoses.iter().any(|d| {
            k.facts
                .long_rx_conditions
                .iter()
                .any(|c| icd_matches(d, &c.icd10))
        });
        if !listed {
            out.add(
                "LONG-DISEASE",
                Category::LongRx,
                Severity::Block,
                &[],
                "长期处方仅适用于诊断明确、病情稳定的慢性病患者:本处方诊断不在长期处方病种目录中,请改为普通处方".into(),
                LONG_RX,
            );
        }
    }
    out.findings
}

fn is_injection(route: &str) -> bool {
    matches!(route, "iv" | "ivgtt" | "im" | "sc" | "id")
}

/// Controlled or sustained release (控缓释制剂): a 缓释/控释 product or a transdermal patch.
fn is_controlled_release(d: &Drug, route: &str) -> bool {
    route == "td"
        || ["缓释", "控释"]
            .iter()
            .any(|w| d.name.contains(w) || d.form.contains(w))
}

/// Cancer pain or moderate-to-severe chronic pain (处方管理办法 art. 24): a malignant
/// neoplasm (C00–C97), chronic pain (R52.1, R52.2) or palliative care (Z51.5).
fn chronic_pain(diagnoses: &[String]) -> bool {
    diagnoses.iter().any(|g| {
        let g = g.trim();
        g.starts_with(['C', 'c'])
            || ["R52.1", "R52.2", "Z51.5"]
                .iter()
                .any(|p| icd_matches(g, p))
    })
}

/// Checks one line.
fn review_item(
    out: &mut Out,
    rx: &Prescription,
    i: usize,
    d: &Drug,
    age_d: Option<u32>,
    age_y: Option<u32>,
) {
    let item = &rx.items[i];
    let p = &rx.patient;
    let n = i + 1;
    let name = &d.name;
    // Legality: the committee's restriction, antimicrobial grades, special drugs.
    if let Some(r) = &d.restriction
        && rx.tier.level() < r.min_tier.level()
    {
        out.add(
            "LEG-RESTRICTED",
            Category::Legality,
            Severity::Block,
            &[i],
            format!(
                "{name}经药事会限制为{}及以上机构使用({}):请转诊或改用目录内其他药品",
                r.min_tier.label_zh(),
                r.note
            ),
            NORM,
        );
    }
    if let Some(g) = d.antimicrobial {
        let src = out.src(d, "control").to_string();
        match rx.prescriber.antimicrobial {
            Some(have) if have >= g => {}
            have => out.add(
                "LEG-AMR-GRADE",
                Category::Legality,
                Severity::Block,
                &[i],
                format!(
                    "{name}属{}抗菌药物,处方医师{}:请由具有相应处方权的医师开具",
                    g.label(),
                    have.map_or("无抗菌药物处方权".to_string(), |h| format!(
                        "仅有{}处方权",
                        h.label()
                    ))
                ),
                &src,
            ),
        }
        let tier_max = match rx.tier {
            Tier::Village => AntimicrobialGrade::NonRestricted,
            Tier::Township => AntimicrobialGrade::Restricted,
            Tier::County => AntimicrobialGrade::Special,
        };
        if g > tier_max {
            out.add(
                "LEG-AMR-TIER",
                Category::Legality,
                Severity::Block,
                &[i],
                format!(
                    "{}不得使用{}抗菌药物{name}:请转诊上级医院或改用{}药物",
                    rx.tier.label_zh(),
                    g.label(),
                    tier_max.label()
                ),
                AMR_RULES,
            );
        }
        // 抗菌药物临床应用管理办法 art. 28: special-grade antimicrobials are not
        // used in outpatient (门急诊) care.
        if g == AntimicrobialGrade::Special && rx.setting != Setting::Inpatient {
            out.add(
                "LEG-AMR-OUTPATIENT",
                Category::Legality,
                Severity::Block,
                &[i],
                format!(
                    "{name}属特殊使用级抗菌药物,不得在{}使用:请收住院并经会诊后使用,或改用其他药物",
                    rx.setting.label()
                ),
                AMR_RULES,
            );
        }
    }
    if let Some(c) = d.controlled {
        let needs_right = matches!(c, ControlClass::Narcotic | ControlClass::Psychotropic1);
        if needs_right && !rx.prescriber.narcotic_right {
            out.add(
                "LEG-CONTROLLED",
                Category::Legality,
                Severity::Block,
                &[i],
                format!(
                    "{name}属{},处方医师未取得麻醉药品和第一类精神药品处方权",
                    c.label()
                ),
                RX_ADMIN,
            );
        }
        if (needs_right || c == ControlClass::Radioactive) && rx.tier == Tier::Village {
            out.add(
                "LEG-CONTROLLED-TIER",
                Category::Legality,
                Severity::Block,
                &[i],
                format!("村卫生室不得开具{}{name}", c.label()),
                RX_ADMIN,
            );
        }
        // 处方管理办法 art. 23, 24 and 26: days' supply of special drugs. Narcotics
        // and class-I psychotropics: an injection one dose (3 days for cancer or
        // moderate-to-severe chronic pain), controlled/sustained release 7 days (15),
        // other forms 3 days (7); inpatients one day. Class II: 7 days. The limit
        // binds long prescriptions too (LONG-DRUG says they may not carry them).
        let limit = match c {
            ControlClass::Narcotic | ControlClass::Psychotropic1 => {
                let pain = chronic_pain(&rx.diagnoses);
                let who = if pain {
                    "癌痛或中重度慢性疼痛患者的"
                } else {
                    ""
                };
                Some(if rx.setting == Setting::Inpatient {
                    (1, "住院患者应逐日开具,")
                } else if is_injection(&item.route) {
                    (if pain { 3 } else { 1 }, "注射剂")
                } else if is_controlled_release(d, &item.route) {
                    (if pain { 15 } else { 7 }, "控缓释制剂")
                } else {
                    (if pain { 7 } else { 3 }, "普通剂型")
                })
                .map(|(n, form)| (n, format!("{who}{form}")))
            }
            ControlClass::Psychotropic2 => Some((7, String::new())),
            _ => None,
        };
        if let Some((limit, what)) = limit
            && item.days > limit
        {
            out.add(
                "LEG-CONTROLLED-DAYS",
                Category::Legality,
                Severity::Block,
                &[i],
                format!(
                    "{name}属{},{what}每张处方不得超过 {limit} 日用量(现 {} 日)",
                    c.label(),
                    item.days
                ),
                RX_ADMIN,
            );
        }
    }
    // Format of the line. A local anaesthetic dissolving an intramuscular
    // injection of its group (头孢曲松 with 1% 利多卡因, as the cephalosporin labels
    // direct) is a solvent: its route and frequency are the other drug's.
    let im_solvent = atc_matches(&d.atc, "N01BB")
        && item.route.trim() == "im"
        && item.group.is_some()
        && rx
            .items
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.group == item.group && o.route.trim() == "im");
    let per_day = doses_per_day(item.frequency.trim());
    if per_day.is_none() {
        out.add(
            "FMT-FREQUENCY",
            Category::Format,
            Severity::Block,
            &[i],
            format!(
                "第{n}行给药频次“{}”无法识别,请使用标准频次(如 qd、bid、tid)",
                item.frequency
            ),
            NORM,
        );
    } else if !im_solvent && !frequency_allowed(d, item.frequency.trim()) {
        let allowed: Vec<&str> = d.frequencies.iter().map(|f| frequency_label(f)).collect();
        out.add(
            "DOSE-FREQUENCY",
            Category::Dose,
            Severity::Warning,
            &[i],
            format!(
                "{name}给药频次{}不适宜,说明书推荐:{}",
                frequency_label(item.frequency.trim()),
                allowed.join("、")
            ),
            out.src(d, "dose").to_string().as_str(),
        );
    }
    let route = item.route.trim();
    if !crate::knowledge::ROUTES.iter().any(|(c, _)| *c == route) {
        out.add(
            "FMT-ROUTE",
            Category::Format,
            Severity::Block,
            &[i],
            format!("第{n}行给药途径“{}”无法识别", item.route),
            NORM,
        );
    } else if !im_solvent && !d.routes.iter().any(|r| r == route) {
        let allowed: Vec<&str> = d.routes.iter().map(|r| route_label(r)).collect();
        out.add(
            "ROUTE-MISMATCH",
            Category::Route,
            Severity::Block,
            &[i],
            format!(
                "{name}({})不能{}给药:应为{}",
                d.form,
                route_label(route),
                allowed.join("、")
            ),
            out.src(d, "dose").to_string().as_str(),
        );
    }
    if item.days == 0 {
        out.add(
            "FMT-DAYS",
            Category::Format,
            Severity::Block,
            &[i],
            format!("第{n}行用药天数为 0,请填写天数"),
            NORM,
        );
    } else if !rx.long_term {
        let limit = match rx.setting {
            Setting::Outpatient => Some(7),
            Setting::Emergency => Some(3),
            Setting::Inpatient => None,
        };
        if let Some(limit) = limit
            && item.days > limit
        {
            out.add(
                "FMT-DAYS",
                Category::Format,
                Severity::Warning,
                &[i],
                format!(
                    "{}处方一般不得超过 {limit} 日用量,{name}开了 {} 日:请减少天数、注明理由,或对稳定的慢性病开具长期处方",
                    rx.setting.label(),
                    item.days
                ),
                RX_ADMIN,
            );
        }
    }
    // The dose, in the drug's dose unit.
    let dose = dose_in_unit(item.dose, item.unit.trim(), d);
    let dose = match dose {
        Err(msg) => {
            out.add(
                "FMT-DOSE",
                Category::Format,
                Severity::Block,
                &[i],
                format!("第{n}行{name}:{msg}"),
                NORM,
            );
            None
        }
        Ok(v) => Some(v),
    };
    let daily = dose.zip(per_day).map(|(v, f)| v * f);
    let child = age_y.is_some_and(|y| y < CHILD_YEARS);
    let u = &d.dose_unit;
    if let Some(v) = dose {
        if let Some(max) = d.adult.max_dose.or(d.adult.max_daily)
            && v > max * 100.0
        {
            out.add(
                "FMT-DOSE",
                Category::Format,
                Severity::Block,
                &[i],
                format!(
                    "第{n}行{name}单次剂量 {}{u} 超过极量百倍,疑为单位错误,请核对剂量和单位",
                    fmt_num(v)
                ),
                NORM,
            );
        } else if child && d.child_per_kg.is_some() {
            child_dose(out, rx, i, d, v, daily);
        } else {
            adult_dose(out, i, d, v, daily, child);
        }
    }
    // Special populations.
    if let (Some(days), Some(min)) = (age_d, d.child_min_age_days)
        && days < min
    {
        out.add(
            "CHILD-AGE",
            Category::Children,
            Severity::Block,
            &[i],
            format!(
                "{name}禁用于{}以下儿童(患者{}):请换用适合儿童的药物",
                age_text(min),
                crate::model::age_label(p.birth_date.unwrap_or(rx.date), rx.date)
            ),
            out.src(d, "population").to_string().as_str(),
        );
    }
    if age_y.is_some_and(|y| y >= ELDERLY_YEARS)
        && let Some(e) = &d.elderly
    {
        let over = e.max_daily.zip(daily).filter(|(m, v)| v > &(m * 1.0001));
        let severity = match e.action {
            Caution::Reduce => over.map(|_| Severity::Warning),
            a => Some(caution_severity(a)),
        };
        if let Some(severity) = severity {
            let extra = over.map_or(String::new(), |(m, v)| {
                format!(",日剂量 {}{u} 超过老年人上限 {}{u}", fmt_num(v), fmt_num(m))
            });
            out.add(
                "ELDERLY",
                Category::Elderly,
                severity,
                &[i],
                format!(
                    "老年患者{}{name}{extra}:{}",
                    caution_word(e.action),
                    e.advice
                ),
                out.src(d, "population").to_string().as_str(),
            );
        }
    }
    if p.pregnant == Some(true)
        && let Some(cat) = d.pregnancy.as_deref()
    {
        // A drug given for the pregnancy itself, i.e. for an obstetric diagnosis
        // (ICD-10 chapter O) among its indications: ending the pregnancy (O00–O08,
        // misoprostol for medical abortion) carries no fetal risk to review; for an
        // obstetric condition (magnesium sulfate in pre-eclampsia) category D is a
        // 提示. Category X stays blocked whatever the indication.
        let mut for_pregnancy = false;
        let mut ends_pregnancy = false;
        for g in rx.diagnoses.iter().map(|g| g.trim()) {
            let b = g.as_bytes();
            if b.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'O'))
                && d.indications.iter().any(|ind| icd_matches(g, ind))
            {
                for_pregnancy = true;
                ends_pregnancy |= b.len() >= 3 && b[1] == b'0' && (b'0'..=b'8').contains(&b[2]);
            }
        }
        let severity = match cat {
            _ if ends_pregnancy => None,
            "X" => Some(Severity::Block),
            "D" if for_pregnancy => Some(Severity::Info),
            "D" => Some(Severity::Warning),
            "C" => Some(Severity::Info),
            _ => None,
        };
        if let Some(severity) = severity {
            out.add(
                "PREGNANCY",
                Category::Pregnancy,
                severity,
                &[i],
                format!(
                    "患者妊娠,{name}妊娠分级 {cat}{}",
                    match cat {
                        "X" => ":妊娠期禁用,请停用并换药",
                        "D" => ":对胎儿有明确风险,仅在获益大于风险时使用,请考虑替代药物",
                        _ => ":妊娠期慎用,权衡利弊",
                    }
                ),
                out.src(d, "population").to_string().as_str(),
            );
        }
    }
    if p.lactating == Some(true)
        && let Some(l) = d.lactation
    {
        out.add(
            "LACTATION",
            Category::Pregnancy,
            caution_severity(l),
            &[i],
            format!(
                "哺乳期{}{name}{}",
                caution_word(l),
                match l {
                    Caution::Contraindicated | Caution::Avoid => ":请换药或暂停哺乳",
                    _ => ":注意观察婴儿反应",
                }
            ),
            out.src(d, "population").to_string().as_str(),
        );
    }
    if let Some(egfr) = p.egfr {
        renal(out, i, d, egfr, daily);
    }
    if let (Some(class), Some(h)) = (p.hepatic.as_deref(), &d.hepatic)
        && class.trim().to_ascii_uppercase().as_str() >= h.from_class.as_str()
    {
        out.add(
            "HEPATIC",
            Category::Hepatic,
            caution_severity(h.action),
            &[i],
            format!(
                "肝功能不全(Child-Pugh {}级){}{name}:{}",
                class.trim().to_ascii_uppercase(),
                caution_word(h.action),
                h.advice
            ),
            out.src(d, "population").to_string().as_str(),
        );
    }
    if d.skin_test {
        let (severity, what) = match item.skin_test {
            SkinTest::Positive => (
                Some(Severity::Block),
                "皮试阳性,禁止使用:请换用其他类别药物",
            ),
            SkinTest::NotRecorded => (
                Some(Severity::Warning),
                "需做皮肤过敏试验,处方未注明皮试结果:请皮试并注明结果",
            ),
            _ => (None, ""),
        };
        if let Some(severity) = severity {
            out.add(
                "SKIN-TEST",
                Category::SkinTest,
                severity,
                &[i],
                format!("{name}{what}"),
                out.src(d, "control").to_string().as_str(),
            );
        }
    }
    // Indication and disease contraindications.
    let diags = &rx.diagnoses;
    // Blank diagnoses are FMT-DIAGNOSIS's business, not a mismatch.
    if diags.iter().any(|g| !g.trim().is_empty())
        && !diags
            .iter()
            .any(|g| d.indications.iter().any(|ind| icd_matches(g, ind)))
    {
        out.add(
            "IND-NONE",
            Category::Indication,
            Severity::Warning,
            &[i],
            format!(
                "{name}与诊断({})不符:请补充相应诊断或换用对症药物",
                diags.join("、")
            ),
            out.src(d, "indication").to_string().as_str(),
        );
    }
    for c in &d.contraindications {
        if let Some(g) = diags.iter().find(|g| icd_matches(g, &c.icd10)) {
            // A contraindication by pregnancy or lactation written as a diagnosis
            // (Z33–Z35 pregnant state, Z39.1 lactation, chapter O) is the special-
            // population problem, reported under pregnancy like PREGNANCY/LACTATION.
            let category = if ["Z33", "Z34", "Z35", "Z39.1", "O"]
                .iter()
                .any(|p| icd_matches(g, p))
            {
                Category::Pregnancy
            } else {
                Category::Indication
            };
            out.add(
                "IND-CONTRA",
                category,
                caution_severity(c.action),
                &[i],
                format!("诊断 {g} 时{}{name}:{}", caution_word(c.action), c.note),
                out.src(d, "indication").to_string().as_str(),
            );
        }
    }
    allergy(out, rx, i, d);
    if rx.long_term {
        if !d.long_rx {
            let why = if d.controlled.is_some() {
                "特殊管理药品不得开具长期处方"
            } else if d.antimicrobial.is_some() {
                "抗菌药物不得开具长期处方"
            } else {
                "不在长期处方药品范围内"
            };
            out.add(
                "LONG-DRUG",
                Category::LongRx,
                Severity::Block,
                &[i],
                format!("{name}{why}:请改为普通处方"),
                LONG_RX,
            );
        }
        if item.days > 84 {
            out.add(
                "LONG-DAYS",
                Category::LongRx,
                Severity::Block,
                &[i],
                format!("长期处方最长 12 周(84 日),{name}开了 {} 日", item.days),
                LONG_RX,
            );
        } else if item.days > 28 {
            out.add(
                "LONG-DAYS",
                Category::LongRx,
                Severity::Info,
                &[i],
                format!(
                    "长期处方一般不超过 4 周,{name}开了 {} 日:请确认病情稳定并注明理由",
                    item.days
                ),
                LONG_RX,
            );
        }
    }
}

/// Whether the label's frequencies admit `f`: "qn" is a once-daily dose taken at
/// night, and fixed intervals equal times a day (q12h = bid, q8h = tid, q6h = qid).
fn frequency_allowed(d: &Drug, f: &str) -> bool {
    let same = |g: &str| {
        g == f
            || matches!(
                (f, g),
                ("qn", "qd")
                    | ("q12h", "bid")
                    | ("bid", "q12h")
                    | ("q8h", "tid")
                    | ("tid", "q8h")
                    | ("q6h", "qid")
                    | ("qid", "q6h")
            )
    };
    d.frequencies.iter().any(|g| same(g))
}

fn age_text(days: u32) -> String {
    if days >= 365 {
        format!("{}岁", days / 365)
    } else if days >= 30 {
        format!("{}个月", days / 30)
    } else {
        format!("{days}天")
    }
}

/// Converts a prescribed dose to the drug's dose unit. Doses may also be written
/// in dispensing units ("2 片").
fn dose_in_unit(dose: f64, unit: &str, d: &Drug) -> Result<f64, String> {
    if !dose.is_finite() || dose <= 0.0 {
        return Err(format!("剂量 {} 无效,必须为正数", fmt_num(dose)));
    }
    if unit.is_empty() {
        return Err("缺少剂量单位".into());
    }
    if let Some(f) = unit_factor(unit, &d.dose_unit) {
        return Ok(dose * f);
    }
    if unit == d.unit
        && let Some(f) = unit_factor(&d.strength_unit, &d.dose_unit)
    {
        return Ok(dose * d.strength * f);
    }
    Err(format!(
        "剂量单位“{unit}”与该药剂量单位“{}”无法换算,请使用 {} 或 {}",
        d.dose_unit, d.dose_unit, d.unit
    ))
}

fn adult_dose(out: &mut Out, i: usize, d: &Drug, v: f64, daily: Option<f64>, child: bool) {
    let u = &d.dose_unit;
    let name = &d.name;
    let src = out.src(d, "dose").to_string();
    if let Some(max) = d.adult.max_dose
        && v > max * 1.0001
    {
        out.add(
            "DOSE-SINGLE",
            Category::Dose,
            Severity::Block,
            &[i],
            format!(
                "{name}单次剂量 {}{u} 超过最大单次剂量 {}{u}:请减量",
                fmt_num(v),
                fmt_num(max)
            ),
            &src,
        );
    }
    if let (Some(max), Some(day)) = (d.adult.max_daily, daily)
        && day > max * 1.0001
    {
        out.add(
            "DOSE-DAILY",
            Category::Dose,
            Severity::Block,
            &[i],
            format!(
                "{name}日剂量 {}{u} 超过每日最大剂量 {}{u}:请减少剂量或给药次数",
                fmt_num(day),
                fmt_num(max)
            ),
            &src,
        );
    }
    if !child
        && let Some(min) = d.adult.min_dose
        && v < min * 0.9999
    {
        out.add(
            "DOSE-LOW",
            Category::Dose,
            Severity::Warning,
            &[i],
            format!(
                "{name}单次剂量 {}{u} 低于常用最小剂量 {}{u}:请核对剂量和单位",
                fmt_num(v),
                fmt_num(min)
            ),
            &src,
        );
    }
}

fn child_dose(out: &mut Out, rx: &Prescription, i: usize, d: &Drug, v: f64, daily: Option<f64>) {
    let u = &d.dose_unit;
    let name = &d.name;
    let Some(w) = rx.patient.weight_kg.filter(|w| *w > 0.3 && *w < 300.0) else {
        if rx.patient.weight_kg.is_none() {
            out.add(
                "FMT-WEIGHT",
                Category::Format,
                Severity::Block,
                &[i],
                format!("{name}儿童按体重计算剂量,处方缺少体重:请填写患儿体重"),
                NORM,
            );
        }
        return;
    };
    let lim = d.child_per_kg.as_ref().expect("checked by caller");
    let src = out.src(d, "dose").to_string();
    let per_kg = v / w;
    if let Some(max) = lim.max_dose
        && per_kg > max * 1.0001
    {
        out.add(
            "DOSE-CHILD-KG",
            Category::Dose,
            Severity::Block,
            &[i],
            format!(
                "{name}单次 {}{u}/kg(体重 {} kg)超过儿童最大单次剂量 {}{u}/kg:应不超过 {}{u}",
                fmt_num(per_kg),
                fmt_num(w),
                fmt_num(max),
                fmt_num(max * w)
            ),
            &src,
        );
    }
    if let (Some(max), Some(day)) = (lim.max_daily, daily)
        && day / w > max * 1.0001
    {
        out.add(
            "DOSE-CHILD-KG-DAILY",
            Category::Dose,
            Severity::Block,
            &[i],
            format!(
                "{name}每日 {}{u}/kg(体重 {} kg)超过儿童每日最大剂量 {}{u}/kg:每日应不超过 {}{u}",
                fmt_num(day / w),
                fmt_num(w),
                fmt_num(max),
                fmt_num(max * w)
            ),
            &src,
        );
    }
    // Never above the adult maximum, whatever the weight.
    adult_dose(out, i, d, v, daily, true);
}

fn renal(out: &mut Out, i: usize, d: &Drug, egfr: f64, daily: Option<f64>) {
    let u = &d.dose_unit;
    let Some(r) = d
        .renal
        .iter()
        .filter(|r| egfr < r.egfr_below)
        .max_by(|a, b| {
            a.action
                .cmp(&b.action)
                .then(b.egfr_below.total_cmp(&a.egfr_below))
        })
    else {
        return;
    };
    let over = r.max_daily.zip(daily).filter(|(m, v)| v > &(m * 1.0001));
    let severity = match r.action {
        Caution::Reduce => {
            if over.is_some() {
                Severity::Warning
            } else if r.max_daily.is_some() && daily.is_some() {
                return; // already within the reduced dose
            } else {
                Severity::Info
            }
        }
        a => caution_severity(a),
    };
    let extra = over.map_or(String::new(), |(m, v)| {
        format!(",日剂量 {}{u} 应不超过 {}{u}", fmt_num(v), fmt_num(m))
    });
    out.add(
        "RENAL",
        Category::Renal,
        severity,
        &[i],
        format!(
            "eGFR {} 时{}{}{extra}:{}",
            fmt_num(egfr),
            caution_word(r.action),
            d.name,
            r.advice
        ),
        out.src(d, "population").to_string().as_str(),
    );
}

/// The allergy's text for matching, lower case; empty when the record says the
/// patient is *not* allergic ("无青霉素过敏", "否认药物过敏史"), which free-text
/// records often do.
fn allergy_text(a: &crate::model::Allergy) -> String {
    let t = a.text.trim().to_lowercase();
    let negated = ["无", "否认", "不过敏", "no ", "none", "not ", "nkda"]
        .iter()
        .any(|n| t.starts_with(n))
        || t.ends_with("不过敏");
    if negated { String::new() } else { t }
}

fn allergy(out: &mut Out, rx: &Prescription, i: usize, d: &Drug) {
    let k = out.k;
    let allergies = &rx.patient.allergies;
    if allergies.is_empty() {
        return;
    }
    let Some(di) = k.lookup(&d.code) else { return };
    let name = &d.name;
    // The drug itself, by name or code.
    for a in allergies {
        let text = allergy_text(a);
        let by_text =
            !text.is_empty() && (text.contains(d.generic.as_str()) || text.contains(d.en.as_str()));
        let by_code = a
            .code
            .as_deref()
            .is_some_and(|c| c == d.code || atc_matches(&d.atc, c));
        if by_text || by_code {
            out.add(
                "ALLERGY",
                Category::Allergy,
                Severity::Block,
                &[i],
                format!("患者对{}过敏,禁用{name}:请换用其他药物", display(a)),
                NORM,
            );
            return;
        }
    }
    // Its allergy class, and classes that cross-react.
    let classes = &k.facts.allergy_classes;
    let drug_classes = &k.drug_allergy_classes[di];
    let mut worst: Option<(Severity, String, String)> = None;
    for a in allergies {
        let text = allergy_text(a);
        for (ci, c) in classes.iter().enumerate() {
            let hit = (!text.is_empty() && c.terms.iter().any(|t| text.contains(t.as_str())))
                || a.code
                    .as_deref()
                    .is_some_and(|code| c.atc.iter().any(|p| atc_matches(code, p)));
            if !hit {
                continue;
            }
            if drug_classes.contains(&(ci as u16)) {
                let m = format!(
                    "患者对{}过敏,{name}同属{}:禁用,请换用其他类别药物",
                    display(a),
                    c.name
                );
                worst = Some((Severity::Block, m, c.source.clone()));
                break;
            }
            for x in &c.cross {
                let in_cross = drug_classes
                    .iter()
                    .any(|dc| classes[*dc as usize].id == x.class);
                if in_cross {
                    let s = caution_severity(x.action);
                    if worst.as_ref().is_none_or(|w| s > w.0) {
                        let m = format!(
                            "患者对{}过敏,{name}与之可能交叉过敏({}):{}",
                            display(a),
                            caution_word(x.action),
                            x.note
                        );
                        worst = Some((s, m, c.source.clone()));
                    }
                }
            }
        }
        if worst.as_ref().is_some_and(|w| w.0 == Severity::Block) {
            break;
        }
    }
    if let Some((s, m, src)) = worst {
        out.add("ALLERGY", Category::Allergy, s, &[i], m, &src);
    }
}

fn display(a: &crate::model::Allergy) -> String {
    if a.text.trim().is_empty() {
        a.code.clone().unwrap_or_default()
    } else {
        a.text.trim().to_string()
    }
}

/// Rules between lines: duplicates, interactions, incompatibilities.
fn pairs(out: &mut Out, rx: &Prescription, drugs: &[Option<usize>]) {
    let k = out.k;
    let n = drugs.len();
    for i in 0..n {
        let Some(a) = drugs[i] else { continue };
        let da = &k.drugs[a];
        for (j, b) in drugs.iter().enumerate().skip(i + 1) {
            let Some(b) = *b else { continue };
            let db = &k.drugs[b];
            let (ia, ib) = (&rx.items[i], &rx.items[j]);
            if not_duplicate(da, ia, db, ib) {
                // fall through to interactions and incompatibilities
            } else if da.atc == db.atc {
                out.add(
                    "DUP-SAME",
                    Category::Duplicate,
                    Severity::Block,
                    &[i, j],
                    format!(
                        "{}与{}为同一成分({}),重复用药:请删除其一",
                        da.name, db.name, da.generic
                    ),
                    NORM,
                );
                continue;
            } else if let Some(c) = k.drug_dup_classes[a]
                .iter()
                .find(|c| k.drug_dup_classes[b].contains(c))
            {
                let c = &k.facts.duplicate_classes[*c as usize];
                out.add(
                    "DUP-CLASS",
                    Category::Duplicate,
                    Severity::Warning,
                    &[i, j],
                    format!("{}与{}同属{},重复用药:请保留其一", da.name, db.name, c.name),
                    &c.source,
                );
            }
            // Interactions, either way round; one finding per fact.
            let mut seen: [u32; 4] = [u32::MAX; 4];
            let mut s = 0;
            for &(ix, is_a) in &k.drug_interactions[a] {
                let x = &k.facts.interactions[ix as usize];
                let other = if is_a { &x.b } else { &x.a };
                if !atc_matches(&db.atc, other) || seen.contains(&ix) {
                    continue;
                }
                if s < seen.len() {
                    seen[s] = ix;
                    s += 1;
                }
                let severity = match x.severity {
                    InteractionSeverity::Contraindicated => Severity::Block,
                    InteractionSeverity::Major => Severity::Warning,
                    _ => Severity::Info,
                };
                let level = match x.severity {
                    InteractionSeverity::Contraindicated => "禁止合用",
                    InteractionSeverity::Major => "严重",
                    InteractionSeverity::Moderate => "中度",
                    InteractionSeverity::Minor => "轻度",
                };
                out.add(
                    "DDI",
                    Category::Interaction,
                    severity,
                    &[i, j],
                    format!(
                        "{}与{}存在{level}相互作用:{}。{}",
                        da.name, db.name, x.mechanism, x.advice
                    ),
                    &x.source,
                );
            }
            if ia.group.is_some()
                && ia.group == ib.group
                && is_injection(&ia.route)
                && is_injection(&ib.route)
            {
                for &(ix, is_a) in &k.drug_incompat[a] {
                    let x = &k.facts.incompatibilities[ix as usize];
                    let other = if is_a { &x.b } else { &x.a };
                    if atc_matches(&db.atc, other) {
                        out.add(
                            "INCOMPAT",
                            Category::Incompatibility,
                            Severity::Block,
                            &[i, j],
                            format!(
                                "{}与{}在同一组输液中存在配伍禁忌:{}。请分组输注或更换溶媒",
                                da.name, db.name, x.note
                            ),
                            &x.source,
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// Potassium chloride injection (a 高警示 drug) must be diluted for infusion: at
/// most 0.3% (3 g per litre) in a peripheral line (中国国家处方集). The concentration
/// is the line's potassium over the volume of the carrier solutions in its group.
fn potassium(out: &mut Out, rx: &Prescription, drugs: &[Option<usize>]) {
    let k = out.k;
    let carrier = |d: &Drug| {
        ["B05BA03", "B05BB", "B05XA03"]
            .iter()
            .any(|p| atc_matches(&d.atc, p))
    };
    for (i, item) in rx.items.iter().enumerate() {
        let Some(d) = drugs[i].map(|x| &k.drugs[x]) else {
            continue;
        };
        if d.atc != "B05XA01" || item.route.trim() != "ivgtt" {
            continue;
        }
        let Some(grams) = dose_in_unit(item.dose, item.unit.trim(), d)
            .ok()
            .and_then(|v| unit_factor(&d.dose_unit, "g").map(|f| v * f))
        else {
            continue;
        };
        let volume: f64 = rx
            .items
            .iter()
            .zip(drugs)
            .filter(|(other, _)| item.group.is_some() && other.group == item.group)
            .filter_map(|(other, x)| {
                let c = &k.drugs[(*x)?];
                if !carrier(c) {
                    return None;
                }
                let ml = dose_in_unit(other.dose, other.unit.trim(), c).ok()?;
                unit_factor(&c.dose_unit, "ml").map(|f| ml * f)
            })
            .sum();
        let name = &d.name;
        if volume <= 0.0 {
            out.add(
                "DOSE-CONC",
                Category::Dose,
                Severity::Warning,
                &[i],
                format!("{name}须稀释后静脉滴注(浓度不超过0.3%):请在同一输液组写明溶媒及其用量"),
                "CNF-2021",
            );
        } else if grams / volume > 0.003 * 1.0001 {
            out.add(
                "DOSE-CONC",
                Category::Dose,
                Severity::Block,
                &[i],
                format!(
                    "{name} {}g 加入 {}ml 溶媒,浓度 {}% 超过外周静脉滴注上限 0.3%:请增加溶媒或减少氯化钾",
                    fmt_num(grams),
                    fmt_num(volume),
                    fmt_num(grams / volume * 100.0)
                ),
                "CNF-2021",
            );
        }
    }
}

/// Two lines of one ingredient or class that are not duplicate therapy:
/// - infusion carriers (0.9% sodium chloride, glucose, glucose-saline, Ringer's)
///   in different infusion groups: each bag needs its own solvent;
/// - a loading dose (st) and the maintenance dose of the same drug;
/// - a 必要时 (prn) reliever beside a scheduled drug for the same condition: a
///   sublingual nitrate or a short-acting β2 agonist as rescue for a long-acting
///   one, or the same opioid for breakthrough pain (缓释吗啡 + 即释吗啡).
fn not_duplicate(da: &Drug, ia: &crate::model::Item, db: &Drug, ib: &crate::model::Item) -> bool {
    let carrier = |d: &Drug| {
        ["B05BA03", "B05BB", "B05XA03"]
            .iter()
            .any(|p| atc_matches(&d.atc, p))
    };
    if carrier(da) && carrier(db) && ia.group != ib.group {
        return true;
    }
    // A single loading dose (st) beside the maintenance dose of the same drug
    // (阿司匹林 300 mg st + 100 mg qd in acute coronary syndrome).
    let st = |i: &crate::model::Item| i.frequency.trim() == "st";
    if da.atc == db.atc && st(ia) != st(ib) {
        return true;
    }
    let prn = |i: &crate::model::Item| i.frequency.trim() == "prn";
    if prn(ia) == prn(ib) {
        return false;
    }
    ["C01DA", "R03AC"]
        .iter()
        .any(|p| atc_matches(&da.atc, p) && atc_matches(&db.atc, p))
        || (da.atc == db.atc && atc_matches(&da.atc, "N02A"))
}

/// Dispensing units a line needs: tablets and capsules are counted over the
/// whole course (half tablets add up), injections by whole vials per dose, and
/// liquids, creams and inhalers by whole containers of their content.
/// None when the drug or the dose cannot be read (the findings say why).
pub fn units_needed(k: &Knowledge, item: &crate::model::Item) -> Option<i64> {
    let d = k.drug(item.drug.trim())?;
    let dose = dose_in_unit(item.dose, item.unit.trim(), d).ok()?;
    let per_day = doses_per_day(item.frequency.trim())?;
    let per_unit = d.strength * unit_factor(&d.strength_unit, &d.dose_unit)?;
    let days = item.days.max(1) as f64;
    let doses = (per_day * days).ceil().max(1.0);
    let units = if is_injection(&item.route) {
        (dose / per_unit - 1e-9).ceil().max(1.0) * doses
    } else {
        (dose * doses / per_unit - 1e-9).ceil().max(1.0)
    };
    Some(units as i64)
}

#[cfg(test)]
mod allergy_text_tests {
    use super::allergy_text;
    use crate::model::Allergy;

    #[test]
    fn negated_allergy_records_match_nothing() {
        let a = |t: &str| {
            allergy_text(&Allergy {
                code: None,
                text: t.into(),
            })
        };
        assert_eq!(a("无青霉素过敏"), "");
        assert_eq!(a("否认药物过敏史"), "");
        assert_eq!(a("青霉素不过敏"), "");
        assert_eq!(a("NKDA"), "");
        assert_eq!(a("青霉素"), "青霉素");
        assert_eq!(a(" Penicillin "), "penicillin");
    }
}
