//! Prescriptions of the demo county (issue 5): the drugs that outpatient and
//! emergency visits of the last [`WINDOW_DAYS`] days end with, written against
//! the shipped formulary so that the review engine (`yigong_rx::review`) sees
//! what a county's centralised pre-review sees.
//!
//! About three visits in four end with a prescription. Drugs fit the visit's
//! diagnoses (one or two formulary drugs whose indications cover each
//! diagnosis), the institution's tier (village clinics seldom inject and use
//! only non-restricted antimicrobials; township centres no special-grade ones)
//! and the prescriber's rights (antimicrobial grade by title, the narcotic
//! right for a few senior county-hospital doctors). Doses are usual ones:
//! one or two dispensing units within the adult limits, children dosed per kg
//! of a weight fitting their age. The patient facts are those a clinic
//! records: birth date and sex, weight for children and some adults, eGFR for
//! some elderly patients, pregnancy, and a few recorded allergies (青霉素,
//! 头孢, 磺胺 ...). Stable chronic patients sometimes get a long prescription
//! (长期处方) of four to eight weeks.
//!
//! A clean prescription avoids, by construction, what the review norm flags:
//! drugs against the patient's allergies, pregnancy category D/X drugs for a
//! pregnant woman, drugs to avoid in the elderly or at the patient's eGFR or
//! with one of the diagnoses, duplicate therapy and clinically significant
//! interactions. Then, at about the rates a county's pre-review finds them,
//! one problem may be put in on purpose ([`INJECTED`]), and the prescription
//! says which ([`SynthRx::injected`]).
//!
//! Everything a patient keeps across visits (allergies, pregnancy, an adult's
//! weight, eGFR) is derived from the patient id, so a person's prescriptions
//! agree with each other; the rest draws from the household's own stream.

use crate::dist::mix;
use crate::geography::Geography;
use crate::staff::Staff;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use yigong_core::{Encounter, EncounterClass, Patient, Practitioner, Sex, Tier, Title};
use yigong_rx::knowledge::{
    AntimicrobialGrade, Caution, ControlClass, Drug, Knowledge, atc_matches, doses_per_day,
    icd_matches, unit_factor,
};
use yigong_rx::model::{
    Allergy, Category, Item as Line, PatientFacts, Prescriber, Prescription, Setting, SkinTest,
    age_days, age_years,
};

/// Visits of the last this many days (ending with `as_of`, China time) get
/// prescriptions.
pub const WINDOW_DAYS: i64 = 60;

/// Problems put in on purpose, with their rate per prescription. The rates
/// of "pregnancy", "child-no-weight" and "skin-test-missing" apply to the
/// prescriptions where the problem is possible (a pregnant woman, a child with
/// a drug dosed per kg, a drug needing a skin test), as does "amr-rights" (an
/// antimicrobial above the prescriber's grade fits one of the diagnoses). At
/// most one problem is put in a prescription.
pub const INJECTED: [(&str, f64); 13] = [
    ("overdose", 0.015),
    ("duplicate-class", 0.02),
    ("interaction", 0.03),
    ("no-diagnosis", 0.005),
    ("too-many-days", 0.03),
    ("allergy", 0.008),
    ("pregnancy", 0.003),
    ("child-no-weight", 0.005),
    ("amr-rights", 0.01),
    ("skin-test-missing", 0.02),
    ("long-rx-ineligible", 0.003),
    ("wrong-route", 0.005),
    ("too-many-drugs", 0.003),
];

/// The review category that finds an injected problem.
pub fn injected_category(code: &str) -> Option<Category> {
    Some(match code {
        "overdose" => Category::Dose,
        "duplicate-class" => Category::Duplicate,
        "interaction" => Category::Interaction,
        "no-diagnosis" | "too-many-days" | "child-no-weight" | "too-many-drugs" => Category::Format,
        "allergy" => Category::Allergy,
        "pregnancy" => Category::Pregnancy,
        "amr-rights" => Category::Legality,
        "skin-test-missing" => Category::SkinTest,
        "long-rx-ineligible" => Category::LongRx,
        "wrong-route" => Category::Route,
        _ => return None,
    })
}

/// One generated prescription with who wrote it, where and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthRx {
    /// `<encounter id>-rx`.
    pub id: String,
    pub encounter: String,
    pub patient: String,
    pub patient_name: String,
    /// Organization id of the encounter's institution.
    pub institution: String,
    /// Practitioner id ("" when the encounter has none).
    pub prescriber: String,
    pub prescriber_name: String,
    /// Submission time: the encounter's start plus a few minutes.
    pub at: DateTime<Utc>,
    pub rx: Prescription,
    /// The problem put in on purpose, if any: one of the codes of [`INJECTED`].
    pub injected: Option<&'static str>,
}

// Doses, weights and eGFR are finite numbers (never NaN), so equality is total.
impl Eq for SynthRx {}

/// The shipped knowledge base, loaded once per process.
pub(crate) fn shipped() -> &'static Knowledge {
    static SHIPPED: OnceLock<Knowledge> = OnceLock::new();
    SHIPPED.get_or_init(|| Knowledge::shipped().expect("the shipped formulary loads"))
}

const P_PRESCRIBED: f64 = 0.75;
/// Drugs also for a visit's second diagnosis.
const P_SECOND_DIAGNOSIS: f64 = 0.6;
/// Two drugs rather than one for a diagnosis.
const P_TWO_DRUGS: f64 = 0.45;
/// A long prescription for a stable chronic patient's follow-up visit.
const P_LONG: f64 = 0.15;
/// Adults whose weight is on the prescription.
const P_ADULT_WEIGHT: f64 = 0.4;
/// Per mille: elderly patients with a known eGFR, women of 20-40 pregnant,
/// patients with a recorded allergy.
const EGFR_PER_MILLE: u64 = 100;
const PREGNANT_PER_MILLE: u64 = 30;
const ALLERGY_PER_MILLE: u64 = 50;
/// Allergies as recorded (free text), by weight.
const ALLERGY_TEXTS: [(&str, u64); 5] = [
    ("青霉素", 50),
    ("头孢", 18),
    ("磺胺", 20),
    ("阿司匹林", 6),
    ("链霉素", 6),
];
const MAX_ITEMS: usize = 5;
const CHILD_YEARS: u32 = 14;
const ELDERLY_YEARS: u32 = 65;

// Salts of the per-patient stable draws.
const SALT_ALLERGY: u64 = 0xA11E;
const SALT_PREGNANT: u64 = 0xB4B1;
const SALT_WEIGHT: u64 = 0x3E16;
const SALT_EGFR: u64 = 0xE6F4;
const SALT_NARCOTIC: u64 = 0x4A4C;

/// A stable pseudo-random number for a patient or practitioner id.
fn stable(id: &str, salt: u64) -> u64 {
    let mut h = mix(salt);
    for b in id.bytes() {
        h = mix(h ^ u64::from(b));
    }
    h
}

/// The day in China (UTC+8) of an instant.
fn local_day(t: DateTime<Utc>) -> NaiveDate {
    (t + Duration::hours(8)).date_naive()
}

fn is_injection(route: &str) -> bool {
    matches!(route, "iv" | "ivgtt" | "im" | "sc" | "id")
}

/// Routes that act where applied (fine for a child without a per-kg dose).
fn is_local(route: &str) -> bool {
    matches!(
        route,
        "top" | "eye" | "ear" | "nasal" | "gargle" | "pv" | "pr" | "inh"
    )
}

/// A round number (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ) not above `x`.
fn nice_floor(x: f64) -> f64 {
    nice(x, false)
}

/// A round number not below `x`.
fn nice_ceil(x: f64) -> f64 {
    nice(x, true)
}

fn nice(x: f64, up: bool) -> f64 {
    if !(x > 0.0 && x.is_finite()) {
        return 0.0;
    }
    const STEPS: [f64; 11] = [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];
    let mag = 10f64.powf(x.log10().floor());
    let m = x / mag;
    let s = if up {
        STEPS
            .iter()
            .find(|s| **s >= m - 1e-9)
            .copied()
            .unwrap_or(10.0)
    } else {
        STEPS
            .iter()
            .rev()
            .find(|s| **s <= m + 1e-9)
            .copied()
            .unwrap_or(1.0)
    };
    let v = s * mag;
    // Strip floating-point noise (0.015000000000000001).
    let scale = 1e6 / mag.min(1.0);
    (v * scale).round() / scale
}

/// What the generator knows about each formulary drug.
struct DrugInfo {
    /// One dispensing unit in the drug's dose unit.
    unit_dose: f64,
    /// Doses per day of each of the drug's frequencies.
    per_day: Vec<f64>,
    injection: bool,
    local: bool,
    /// Granules, suspensions, drops, syrups: forms for small children.
    child_form: bool,
    /// Allergy classes the drug belongs to (indices into facts.allergy_classes).
    classes: Vec<usize>,
    /// Pregnancy category D or X.
    pregnancy_dx: bool,
    /// Indicated for nearly everything (infusion solutions): never chosen
    /// for a diagnosis.
    broad: bool,
}

/// The prescription model, built once per county.
pub struct RxModel<'k> {
    k: &'k Knowledge,
    as_of: NaiveDate,
    first_day: NaiveDate,
    info: Vec<DrugInfo>,
    /// Indication (upper case, without dots) → drugs indicated, ascending.
    by_prefix: BTreeMap<String, Vec<u32>>,
    /// n×n bits: same ingredient, same duplicate-therapy class, or a major or
    /// contraindicated interaction.
    conflict: Vec<u64>,
    /// Per drug: other drugs of a shared duplicate-therapy class (another ingredient).
    dup_partners: Vec<Vec<u32>>,
    /// Per drug: drugs with a major or contraindicated interaction (another ingredient).
    ddi_partners: Vec<Vec<u32>>,
    /// Per entry of ALLERGY_TEXTS: drugs a patient with that allergy must not get.
    allergy_forbidden: Vec<Vec<bool>>,
    /// Oral drugs for problems that add a drug with its own diagnosis.
    pool: Vec<u32>,
}

/// Institutions and practitioners, for the tier and the prescriber.
pub struct County<'a> {
    tiers: HashMap<&'a str, Tier>,
    staff: HashMap<&'a str, &'a Practitioner>,
}

impl<'a> County<'a> {
    pub fn new(geo: &'a Geography, staff: &'a Staff) -> Self {
        County {
            tiers: geo
                .insts
                .iter()
                .filter_map(|i| Some((i.id.as_str(), i.kind.tier()?)))
                .collect(),
            staff: staff
                .practitioners
                .iter()
                .map(|p| (p.id.as_str(), p))
                .collect(),
        }
    }
}

/// Everything the choice of drugs depends on, for one prescription.
struct Ctx {
    tier: Tier,
    /// The prescriber's antimicrobial grade.
    grade: Option<AntimicrobialGrade>,
    /// The highest grade allowed here (prescriber and tier).
    amr_max: Option<AntimicrobialGrade>,
    narcotic: bool,
    setting: Setting,
    age_days: u32,
    age_years: u32,
    child: bool,
    elderly: bool,
    pregnant: bool,
    weight: Option<f64>,
    egfr: Option<f64>,
    /// Indices into ALLERGY_TEXTS.
    allergies: Vec<usize>,
    /// Allergies put in on purpose.
    extra_allergies: Vec<String>,
    diagnoses: Vec<String>,
    long: bool,
    days: u32,
}

/// Checks a problem's drug may break, and a line it may conflict with.
#[derive(Clone, Copy, Default)]
struct Relax {
    amr: bool,
    pregnancy: bool,
    /// The line being replaced (ignored for conflicts).
    skip: Option<usize>,
}

type Lines = Vec<(u32, Line)>;

fn normalized(code: &str) -> String {
    code.chars()
        .filter(|c| *c != '.')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl<'k> RxModel<'k> {
    pub fn new(knowledge: &'k Knowledge, as_of: NaiveDate) -> Self {
        let k = knowledge;
        let n = k.drugs.len();
        let info: Vec<DrugInfo> = k
            .drugs
            .iter()
            .map(|d| {
                let classes = k
                    .facts
                    .allergy_classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        d.allergy_class.as_deref() == Some(c.id.as_str())
                            || c.atc.iter().any(|p| atc_matches(&d.atc, p))
                    })
                    .map(|(i, _)| i)
                    .collect();
                let route = d.routes.first().map_or("", String::as_str);
                let singles = d
                    .indications
                    .iter()
                    .filter(|i| normalized(i).len() == 1)
                    .count();
                DrugInfo {
                    unit_dose: d.strength
                        * unit_factor(&d.strength_unit, &d.dose_unit).unwrap_or(1.0),
                    per_day: d
                        .frequencies
                        .iter()
                        .map(|f| doses_per_day(f).unwrap_or(1.0))
                        .collect(),
                    injection: is_injection(route),
                    local: is_local(route),
                    child_form: ["颗粒", "混悬", "滴剂", "口服溶液", "糖浆", "干混悬"]
                        .iter()
                        .any(|f| d.form.contains(f) || d.name.contains(f)),
                    classes,
                    pregnancy_dx: matches!(d.pregnancy.as_deref(), Some("D" | "X")),
                    broad: singles >= 5,
                }
            })
            .collect();

        let mut by_prefix: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (i, d) in k.drugs.iter().enumerate() {
            if info[i].broad {
                continue;
            }
            for ind in &d.indications {
                let p = normalized(ind);
                if p.is_empty() {
                    continue;
                }
                let v = by_prefix.entry(p).or_default();
                if v.last() != Some(&(i as u32)) {
                    v.push(i as u32);
                }
            }
        }

        let words = n.div_ceil(64);
        let mut conflict = vec![0u64; n * words];
        let mut mark = |a: usize, b: usize| {
            conflict[a * words + b / 64] |= 1 << (b % 64);
            conflict[b * words + a / 64] |= 1 << (a % 64);
        };
        for a in 0..n {
            for b in (a + 1)..n {
                if k.drugs[a].atc == k.drugs[b].atc {
                    mark(a, b);
                }
            }
        }
        let mut dup_partners = vec![vec![]; n];
        for c in &k.facts.duplicate_classes {
            let members: Vec<usize> = (0..n)
                .filter(|&i| c.atc.iter().any(|p| atc_matches(&k.drugs[i].atc, p)))
                .collect();
            for &a in &members {
                for &b in &members {
                    if a != b && k.drugs[a].atc != k.drugs[b].atc {
                        mark(a, b);
                        dup_partners[a].push(b as u32);
                    }
                }
            }
        }
        let mut ddi_partners = vec![vec![]; n];
        for x in &k.facts.interactions {
            if x.severity < yigong_rx::knowledge::InteractionSeverity::Major {
                continue;
            }
            let side = |p: &str| -> Vec<usize> {
                (0..n)
                    .filter(|&i| atc_matches(&k.drugs[i].atc, p))
                    .collect()
            };
            let (sa, sb) = (side(&x.a), side(&x.b));
            for &a in &sa {
                for &b in &sb {
                    if k.drugs[a].atc != k.drugs[b].atc {
                        mark(a, b);
                        ddi_partners[a].push(b as u32);
                        ddi_partners[b].push(a as u32);
                    }
                }
            }
        }
        for v in dup_partners.iter_mut().chain(ddi_partners.iter_mut()) {
            v.sort_unstable();
            v.dedup();
        }

        // The engine's allergy check, per recorded text: the drug itself by
        // name, its class, and classes that cross-react (any degree).
        let allergy_forbidden = ALLERGY_TEXTS
            .iter()
            .map(|(text, _)| {
                let hit: Vec<usize> = k
                    .facts
                    .allergy_classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.terms.iter().any(|t| text.contains(t.as_str())))
                    .map(|(i, _)| i)
                    .collect();
                let mut bad = hit.clone();
                for &c in &hit {
                    for x in &k.facts.allergy_classes[c].cross {
                        if let Some(j) =
                            k.facts.allergy_classes.iter().position(|c| c.id == x.class)
                        {
                            bad.push(j);
                        }
                    }
                }
                k.drugs
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        text.contains(d.generic.as_str())
                            || text.contains(d.en.as_str())
                            || info[i].classes.iter().any(|c| bad.contains(c))
                    })
                    .collect()
            })
            .collect();

        let pool = (0..n)
            .filter(|&i| {
                let d = &k.drugs[i];
                d.routes.first().is_some_and(|r| r == "po")
                    && d.antimicrobial.is_none()
                    && d.controlled.is_none()
                    && d.restriction.is_none()
                    && !info[i].broad
                    && d.indications
                        .first()
                        .is_some_and(|c| normalized(c).len() >= 3)
            })
            .map(|i| i as u32)
            .collect();

        RxModel {
            k,
            as_of,
            first_day: as_of - Duration::days(WINDOW_DAYS - 1),
            info,
            by_prefix,
            conflict,
            dup_partners,
            ddi_partners,
            allergy_forbidden,
            pool,
        }
    }

    fn conflicts(&self, a: u32, b: u32) -> bool {
        let words = self.k.drugs.len().div_ceil(64);
        let (a, b) = (a as usize, b as usize);
        self.conflict[a * words + b / 64] & (1 << (b % 64)) != 0
    }

    /// Whether `di` conflicts with any line but the one at `skip`.
    fn conflicts_any(&self, di: u32, items: &Lines, skip: Option<usize>) -> bool {
        items
            .iter()
            .enumerate()
            .any(|(i, (dj, _))| Some(i) != skip && (*dj == di || self.conflicts(di, *dj)))
    }

    /// Drugs indicated for an ICD-10 code, ascending.
    fn candidates(&self, code: &str) -> Vec<u32> {
        let code = normalized(code);
        let mut out: Vec<u32> = vec![];
        for end in 1..=code.len() {
            if let Some(v) = self.by_prefix.get(&code[..end]) {
                out.extend_from_slice(v);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Drugs indicated for any of the codes, ascending.
    fn candidates_all(&self, codes: &[String]) -> Vec<u32> {
        let mut out: Vec<u32> = codes.iter().flat_map(|c| self.candidates(c)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn indicated(&self, di: u32, diagnoses: &[String]) -> bool {
        self.k.drugs[di as usize]
            .indications
            .iter()
            .any(|ind| diagnoses.iter().any(|g| icd_matches(g, ind)))
    }

    /// Whether the drug may go on this prescription without a finding above
    /// 提示 (information) by itself.
    fn fits(&self, di: u32, ctx: &Ctx, relax: Relax) -> bool {
        let d = &self.k.drugs[di as usize];
        let f = &self.info[di as usize];
        if let Some(r) = &d.restriction
            && ctx.tier.level() < r.min_tier.level()
        {
            return false;
        }
        if let Some(g) = d.antimicrobial
            && !relax.amr
            && ctx.amr_max.is_none_or(|m| g > m)
        {
            return false;
        }
        match d.controlled {
            Some(ControlClass::Narcotic | ControlClass::Psychotropic1)
                if !ctx.narcotic || ctx.tier == Tier::Village =>
            {
                return false;
            }
            Some(ControlClass::Radioactive) => return false,
            _ => {}
        }
        if ctx.long && !d.long_rx {
            return false;
        }
        if ctx.child && d.child_per_kg.is_none() && !f.local {
            return false;
        }
        if d.child_min_age_days.is_some_and(|min| ctx.age_days < min) {
            return false;
        }
        if ctx.elderly
            && d.elderly
                .as_ref()
                .is_some_and(|e| matches!(e.action, Caution::Avoid | Caution::Contraindicated))
        {
            return false;
        }
        if ctx.pregnant && !relax.pregnancy && f.pregnancy_dx {
            return false;
        }
        if let Some(egfr) = ctx.egfr
            && d.renal.iter().any(|r| {
                egfr < r.egfr_below && matches!(r.action, Caution::Avoid | Caution::Contraindicated)
            })
        {
            return false;
        }
        if d.contraindications.iter().any(|c| {
            matches!(c.action, Caution::Avoid | Caution::Contraindicated)
                && ctx.diagnoses.iter().any(|g| icd_matches(g, &c.icd10))
        }) {
            return false;
        }
        !ctx.allergies
            .iter()
            .any(|&a| self.allergy_forbidden[a][di as usize])
    }

    /// The highest daily dose allowed for this patient (adult, elderly and renal limits).
    fn daily_cap(&self, d: &Drug, ctx: &Ctx) -> f64 {
        let mut cap = d.adult.max_daily.unwrap_or(f64::INFINITY);
        if ctx.elderly
            && let Some(e) = &d.elderly
            && e.action == Caution::Reduce
            && let Some(m) = e.max_daily
        {
            cap = cap.min(m);
        }
        if let Some(egfr) = ctx.egfr {
            for r in &d.renal {
                if egfr < r.egfr_below
                    && let Some(m) = r.max_daily
                {
                    cap = cap.min(m);
                }
            }
        }
        cap
    }

    /// A usual single dose (in the dose unit) and frequency (index), or None
    /// when the drug cannot be dosed within the limits for this patient.
    fn dose(&self, di: u32, ctx: &Ctx, rng: &mut impl Rng) -> Option<(f64, usize)> {
        let d = &self.k.drugs[di as usize];
        let f = &self.info[di as usize];
        let nf = f.per_day.len();
        if nf == 0 {
            return None;
        }
        let cap_daily = self.daily_cap(d, ctx);
        let cap_single = d.adult.max_dose.unwrap_or(f64::INFINITY);
        // Frequencies to try: the usual (first listed) one more often than
        // not; "st" (once) only for injections in the emergency department
        // or when it is the only one.
        let once_ok = f.injection && ctx.setting == Setting::Emergency;
        let mut order: Vec<usize> = (0..nf)
            .filter(|&i| once_ok || d.frequencies[i] != "st")
            .collect();
        if order.is_empty() {
            order = (0..nf).collect();
        }
        if !rng.random_bool(0.55) {
            let start = rng.random_range(0..order.len());
            order.rotate_left(start);
        }
        if ctx.child
            && let (Some(lim), Some(w)) = (&d.child_per_kg, ctx.weight)
        {
            for &fi in &order {
                let n = f.per_day[fi];
                let per_kg = lim
                    .max_dose
                    .unwrap_or(f64::INFINITY)
                    .min(lim.max_daily.map_or(f64::INFINITY, |m| m / n));
                let mut target = if per_kg.is_finite() {
                    per_kg * rng.random_range(0.5..0.85) * w
                } else {
                    // No child limit: an adult dose scaled by weight.
                    f.unit_dose * w / 60.0
                };
                if let Some(min) = lim.min_dose {
                    target = target.max(min * w);
                }
                if per_kg.is_finite() {
                    target = target.min(per_kg * w);
                }
                let dose = nice_floor(target.min(cap_single).min(cap_daily / n));
                if dose > 0.0 {
                    return Some((dose, fi));
                }
            }
            return None;
        }
        let min = d.adult.min_dose.unwrap_or(0.0);
        let ok = |v: f64| v >= min * 0.9999 && v <= cap_single * 1.0000001;
        // A tube of cream or a bottle of drops is not one dose.
        let container = f.local && f.unit_dose >= cap_single;
        let (one, two) = if container {
            (false, false)
        } else {
            (ok(f.unit_dose), ok(f.unit_dose * 2.0))
        };
        let dose = match (one, two) {
            (true, true) if rng.random_bool(0.3) => f.unit_dose * 2.0,
            (true, _) => f.unit_dose,
            (false, true) => f.unit_dose * 2.0,
            _ if d.dose_unit == "滴" => {
                let drops: f64 = if rng.random_bool(0.6) { 1.0 } else { 2.0 };
                drops.min(cap_single.floor()).max(min.ceil())
            }
            _ => match (d.adult.min_dose, d.adult.max_dose) {
                (Some(lo), Some(hi)) => nice_floor((lo * hi).sqrt()).max(lo),
                (None, Some(hi)) if container => nice_floor(hi / 4.0),
                (None, Some(hi)) => nice_floor(hi / 2.0),
                (lo, None) => nice_floor(cap_daily / 4.0).max(lo.unwrap_or(0.0)),
            },
        };
        if !(dose > 0.0 && dose.is_finite()) {
            return None;
        }
        order
            .into_iter()
            .find(|&fi| dose * f.per_day[fi] <= cap_daily * 1.0000001)
            .map(|fi| (dose, fi))
    }

    /// A clean line for the drug, or None when it cannot be dosed.
    fn line(&self, di: u32, ctx: &Ctx, rng: &mut impl Rng) -> Option<Line> {
        let d = &self.k.drugs[di as usize];
        let (dose, fi) = self.dose(di, ctx, rng)?;
        let route = d.routes.first()?.clone();
        let mut days = if d.frequencies[fi] == "st" {
            1
        } else {
            ctx.days
        };
        if matches!(
            d.controlled,
            Some(ControlClass::Narcotic | ControlClass::Psychotropic1)
        ) {
            days = days.min(if is_injection(&route) { 1 } else { 3 });
        }
        if d.controlled == Some(ControlClass::Psychotropic2) && !ctx.long {
            days = days.min(7);
        }
        Some(Line {
            drug: d.code.clone(),
            dose,
            unit: d.dose_unit.clone(),
            frequency: d.frequencies[fi].clone(),
            route,
            days,
            group: None,
            skin_test: if d.skin_test {
                SkinTest::Negative
            } else {
                SkinTest::NotRecorded
            },
        })
    }

    /// How likely a prescriber here picks the drug among those that fit.
    fn weight(&self, di: u32, ctx: &Ctx) -> f64 {
        let d = &self.k.drugs[di as usize];
        let f = &self.info[di as usize];
        let mut w = if f.injection {
            let base = match ctx.tier {
                Tier::Village => 0.6,
                Tier::Township => 3.0,
                Tier::County => 4.0,
            };
            if ctx.setting == Setting::Emergency {
                base * 2.5
            } else {
                base
            }
        } else if f.local {
            8.0
        } else {
            10.0
        };
        w *= match d.controlled {
            Some(ControlClass::Narcotic | ControlClass::Psychotropic1) => 0.1,
            Some(ControlClass::Psychotropic2) => 0.4,
            Some(_) => 0.5,
            None => 1.0,
        };
        if ctx.child {
            if f.child_form {
                w *= if ctx.age_years < 7 { 3.0 } else { 1.5 };
            } else if ctx.age_years < 7 && !f.local {
                w *= 0.2;
            }
        } else if f.child_form {
            w *= 0.15;
        }
        if d.vbp.is_some() {
            w *= 2.0;
        }
        if d.insurance == "丙" {
            w *= 0.3;
        }
        w
    }

    /// Picks a drug from `cands` that `keep` accepts, fits and conflicts with
    /// no line (but `relax.skip`), with its line.
    fn pick(
        &self,
        cands: &[u32],
        ctx: &Ctx,
        items: &Lines,
        relax: Relax,
        keep: impl Fn(u32) -> bool,
        rng: &mut impl Rng,
    ) -> Option<(u32, Line)> {
        let mut pool: Vec<(u32, f64)> = cands
            .iter()
            .copied()
            .filter(|&di| {
                keep(di) && self.fits(di, ctx, relax) && !self.conflicts_any(di, items, relax.skip)
            })
            .map(|di| (di, self.weight(di, ctx)))
            .filter(|(_, w)| *w > 0.0)
            .collect();
        while !pool.is_empty() {
            let total: f64 = pool.iter().map(|p| p.1).sum();
            let mut r = rng.random::<f64>() * total;
            let mut chosen = pool.len() - 1;
            for (i, p) in pool.iter().enumerate() {
                if r < p.1 {
                    chosen = i;
                    break;
                }
                r -= p.1;
            }
            let (di, _) = pool.swap_remove(chosen);
            if let Some(line) = self.line(di, ctx, rng) {
                return Some((di, line));
            }
        }
        None
    }

    /// One or two drugs for each diagnosis of the visit.
    fn choose(&self, ctx: &Ctx, codes: &[String], rng: &mut impl Rng) -> Lines {
        let mut items: Lines = vec![];
        for (i, code) in codes.iter().enumerate() {
            if i > 0 && !rng.random_bool(P_SECOND_DIAGNOSIS) {
                continue;
            }
            let cands = self.candidates(code);
            let n = if rng.random_bool(P_TWO_DRUGS) { 2 } else { 1 };
            for _ in 0..n {
                if items.len() >= MAX_ITEMS - 1 {
                    break;
                }
                match self.pick(&cands, ctx, &items, Relax::default(), |_| true, rng) {
                    Some(x) => items.push(x),
                    None => break,
                }
            }
        }
        items
    }

    /// The prescription written at encounter `e` for `patient` (the record the
    /// encounter is under), or None: not an outpatient or emergency visit in
    /// the county in the window, no drugs needed, or none that fit.
    pub fn for_encounter(
        &self,
        rng: &mut impl Rng,
        patient: &Patient,
        e: &Encounter,
        county: &County<'_>,
    ) -> Option<SynthRx> {
        if !e.in_county
            || !matches!(
                e.class,
                EncounterClass::Outpatient | EncounterClass::Emergency
            )
        {
            return None;
        }
        let day = local_day(e.start);
        if day < self.first_day || day > self.as_of {
            return None;
        }
        if !rng.random_bool(P_PRESCRIBED) {
            return None;
        }
        let tier = *county.tiers.get(e.institution.as_str())?;
        let at = e.start + Duration::minutes(rng.random_range(2..=15));
        let date = local_day(at);
        if date > self.as_of {
            return None;
        }

        // The prescriber and their rights.
        let doc = e
            .practitioner
            .as_deref()
            .and_then(|id| county.staff.get(id).copied());
        let grade = doc.and_then(|p| Prescriber::grade_for_title(p.title.code()));
        let narcotic = doc.is_some_and(|p| {
            matches!(p.title, Title::ChiefPhysician | Title::AssociateChief)
                && county.tiers.get(p.primary_institution.as_str()) == Some(&Tier::County)
                && stable(&p.id, SALT_NARCOTIC).is_multiple_of(3)
        });
        let tier_max = match tier {
            Tier::Village => AntimicrobialGrade::NonRestricted,
            Tier::Township => AntimicrobialGrade::Restricted,
            Tier::County => AntimicrobialGrade::Special,
        };

        // The patient.
        let days_old = age_days(patient.birth_date, date)?;
        let years = age_years(patient.birth_date, date).unwrap_or(0);
        let child = years < CHILD_YEARS;
        let elderly = years >= ELDERLY_YEARS;
        let female = patient.sex == Sex::Female;
        let mut diagnoses: Vec<String> =
            e.diagnoses.iter().map(|c| c.as_str().to_string()).collect();
        let pregnancy_dx = |g: &String| g.starts_with('O') || g.starts_with("Z3");
        let pregnant = female
            && (20..=40).contains(&years)
            && (diagnoses.iter().any(pregnancy_dx)
                || stable(&patient.id, SALT_PREGNANT) % 1000 < PREGNANT_PER_MILLE);
        if pregnant && !diagnoses.iter().any(pregnancy_dx) {
            // 妊娠状态 (incidental).
            diagnoses.push("Z33".into());
        }
        let weight = if child {
            Some(child_weight(days_old, rng))
        } else if rng.random_bool(P_ADULT_WEIGHT) {
            Some(adult_weight(&patient.id, female))
        } else {
            None
        };
        let egfr = (elderly && stable(&patient.id, SALT_EGFR) % 1000 < EGFR_PER_MILLE).then(|| {
            let h = stable(&patient.id, SALT_EGFR + 1);
            if h % 100 < 30 {
                25.0 + (h / 100 % 20) as f64
            } else {
                45.0 + (h / 100 % 45) as f64
            }
        });
        let mut allergies = vec![];
        let h = stable(&patient.id, SALT_ALLERGY);
        if h % 1000 < ALLERGY_PER_MILLE {
            let total: u64 = ALLERGY_TEXTS.iter().map(|a| a.1).sum();
            let mut r = (h / 1000) % total;
            for (i, (_, w)) in ALLERGY_TEXTS.iter().enumerate() {
                if r < *w {
                    allergies.push(i);
                    break;
                }
                r -= w;
            }
        }
        let setting = if e.class == EncounterClass::Emergency {
            Setting::Emergency
        } else {
            Setting::Outpatient
        };
        let codes: Vec<String> = e.diagnoses.iter().map(|c| c.as_str().to_string()).collect();
        let stable_chronic = setting == Setting::Outpatient
            && codes.iter().all(|g| {
                self.k
                    .facts
                    .long_rx_conditions
                    .iter()
                    .any(|c| icd_matches(g, &c.icd10))
            });
        let long = stable_chronic && rng.random_bool(P_LONG);
        let mut ctx = Ctx {
            tier,
            grade,
            amr_max: grade.map(|g| g.min(tier_max)),
            narcotic,
            setting,
            age_days: days_old,
            age_years: years,
            child,
            elderly,
            pregnant,
            weight,
            egfr,
            allergies,
            extra_allergies: vec![],
            diagnoses,
            long,
            days: 0,
        };
        ctx.days = days_for(&ctx, rng);
        let mut items = self.choose(&ctx, &codes, rng);
        if items.is_empty() && ctx.long {
            ctx.long = false;
            ctx.days = days_for(&ctx, rng);
            items = self.choose(&ctx, &codes, rng);
        }
        if items.is_empty() {
            return None;
        }

        // At most one problem, put in on purpose.
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut injected = None;
        for (code, rate) in INJECTED {
            acc += rate;
            if u < acc {
                if self.inject(code, &mut ctx, &mut items, &codes, rng) {
                    injected = Some(code);
                }
                break;
            }
        }

        let mut recorded: Vec<Allergy> = ctx
            .allergies
            .iter()
            .map(|&a| Allergy {
                code: None,
                text: ALLERGY_TEXTS[a].0.to_string(),
            })
            .collect();
        recorded.extend(ctx.extra_allergies.iter().map(|t| Allergy {
            code: None,
            text: t.clone(),
        }));
        let (prescriber, prescriber_name) = doc.map_or((String::new(), String::new()), |p| {
            (p.id.clone(), p.name.clone())
        });
        Some(SynthRx {
            id: format!("{}-rx", e.id),
            encounter: e.id.clone(),
            patient: patient.id.clone(),
            patient_name: patient.name.clone(),
            institution: e.institution.clone(),
            prescriber,
            prescriber_name,
            at,
            rx: Prescription {
                date,
                setting: ctx.setting,
                long_term: ctx.long,
                tier,
                prescriber: Prescriber {
                    antimicrobial: grade,
                    narcotic_right: narcotic,
                },
                patient: PatientFacts {
                    birth_date: Some(patient.birth_date),
                    sex: Some(match patient.sex {
                        Sex::Male => yigong_rx::model::Sex::Male,
                        Sex::Female => yigong_rx::model::Sex::Female,
                    }),
                    weight_kg: ctx.weight,
                    pregnant: ctx.pregnant.then_some(true),
                    lactating: None,
                    egfr: ctx.egfr,
                    hepatic: None,
                    allergies: recorded,
                },
                diagnoses: ctx.diagnoses,
                items: items.into_iter().map(|(_, l)| l).collect(),
            },
            injected,
        })
    }

    /// Puts problem `code` in; false when this prescription cannot have it.
    fn inject(
        &self,
        code: &str,
        ctx: &mut Ctx,
        items: &mut Lines,
        codes: &[String],
        rng: &mut impl Rng,
    ) -> bool {
        match code {
            "overdose" => self.overdose(ctx, items, rng),
            "duplicate-class" => self.add_partner(&self.dup_partners, ctx, items, codes, rng),
            "interaction" => self.add_partner(&self.ddi_partners, ctx, items, codes, rng),
            "no-diagnosis" => {
                ctx.diagnoses.clear();
                true
            }
            "too-many-days" => {
                ctx.long = false;
                let days = if ctx.setting == Setting::Emergency {
                    crate::dist::pick(rng, &[(5, 40), (7, 60)])
                } else {
                    crate::dist::pick(rng, &[(10, 30), (14, 30), (15, 15), (20, 10), (30, 15)])
                };
                for (_, l) in items.iter_mut() {
                    l.days = days;
                }
                true
            }
            "allergy" => {
                let i = rng.random_range(0..items.len());
                let di = items[i].0 as usize;
                let d = &self.k.drugs[di];
                let text = self.info[di]
                    .classes
                    .first()
                    .and_then(|&c| {
                        self.k.facts.allergy_classes[c]
                            .terms
                            .iter()
                            .find(|t| !t.is_ascii())
                    })
                    .unwrap_or(&d.generic)
                    .clone();
                ctx.extra_allergies.push(text);
                true
            }
            "pregnancy" => ctx.pregnant && self.add_pregnancy_drug(ctx, items, codes, rng),
            "child-no-weight" => {
                let per_kg = items
                    .iter()
                    .any(|(di, _)| self.k.drugs[*di as usize].child_per_kg.is_some());
                if ctx.child && per_kg && ctx.weight.is_some() {
                    ctx.weight = None;
                    true
                } else {
                    false
                }
            }
            "amr-rights" => self.beyond_grade(ctx, items, codes, rng),
            "skin-test-missing" => {
                let tested: Vec<usize> = (0..items.len())
                    .filter(|&i| self.k.drugs[items[i].0 as usize].skin_test)
                    .collect();
                if tested.is_empty() {
                    return false;
                }
                let i = tested[rng.random_range(0..tested.len())];
                items[i].1.skin_test = SkinTest::NotRecorded;
                true
            }
            "long-rx-ineligible" => self.long_ineligible(ctx, items, codes, rng),
            "wrong-route" => {
                let i = rng.random_range(0..items.len());
                let d = &self.k.drugs[items[i].0 as usize];
                let options: &[&str] = if is_injection(&items[i].1.route) {
                    &["iv", "im", "ivgtt", "sc", "po"]
                } else if items[i].1.route == "po" {
                    &["sl", "im", "iv", "pr"]
                } else {
                    &["po", "im", "iv"]
                };
                match options.iter().find(|r| !d.routes.iter().any(|x| x == *r)) {
                    Some(r) => {
                        items[i].1.route = (*r).to_string();
                        true
                    }
                    None => false,
                }
            }
            "too-many-drugs" => {
                let target = if rng.random_bool(0.8) { 6 } else { 7 };
                while items.len() < target {
                    if !self.add_any(ctx, items, codes, rng, Relax::default(), true, |_| true) {
                        return false;
                    }
                }
                true
            }
            _ => false,
        }
    }

    fn overdose(&self, ctx: &Ctx, items: &mut Lines, rng: &mut impl Rng) -> bool {
        let i = rng.random_range(0..items.len());
        let (di, line) = &mut items[i];
        let d = &self.k.drugs[*di as usize];
        let n = doses_per_day(&line.frequency).unwrap_or(1.0);
        let factor = rng.random_range(1.6..2.5);
        let adult = d
            .adult
            .max_dose
            .or(d.adult.max_daily.map(|m| m / n))
            .map(|m| m * factor);
        let dose = match (&d.child_per_kg, ctx.weight) {
            (Some(lim), Some(w)) if ctx.child => {
                let per_kg = lim
                    .max_dose
                    .unwrap_or(f64::INFINITY)
                    .min(lim.max_daily.map_or(f64::INFINITY, |m| m / n));
                if per_kg.is_finite() {
                    Some(per_kg * w * factor)
                } else {
                    adult
                }
            }
            _ => adult,
        };
        match dose {
            Some(v) if v > 0.0 => {
                line.dose = nice_ceil(v);
                true
            }
            _ => false,
        }
    }

    /// Adds the drug's own indication when no diagnosis covers it.
    fn cover(&self, di: u32, ctx: &mut Ctx) {
        if !self.indicated(di, &ctx.diagnoses)
            && let Some(ind) = self.k.drugs[di as usize].indications.first()
        {
            ctx.diagnoses.push(ind.clone());
        }
    }

    /// Adds a line, or replaces one when the prescription is full.
    fn put(&self, items: &mut Lines, x: (u32, Line), keep: Option<usize>, rng: &mut impl Rng) {
        if items.len() < MAX_ITEMS {
            items.push(x);
        } else {
            let mut i = rng.random_range(0..items.len());
            if Some(i) == keep {
                i = (i + 1) % items.len();
            }
            items[i] = x;
        }
    }

    /// Duplicate therapy or a significant interaction: a partner of one of
    /// the lines from `partners`, preferably one the diagnoses call for.
    fn add_partner(
        &self,
        partners: &[Vec<u32>],
        ctx: &mut Ctx,
        items: &mut Lines,
        codes: &[String],
        rng: &mut impl Rng,
    ) -> bool {
        let start = rng.random_range(0..items.len());
        for j in 0..items.len() {
            let i = (start + j) % items.len();
            let base = items[i].0;
            let ps = &partners[base as usize];
            if ps.is_empty() {
                continue;
            }
            // Only the base line may conflict with the partner.
            let others: Lines = items
                .iter()
                .enumerate()
                .filter(|(x, _)| *x != i)
                .map(|(_, l)| l.clone())
                .collect();
            let same_atc = |p: u32| {
                items
                    .iter()
                    .all(|(dj, _)| self.k.drugs[*dj as usize].atc != self.k.drugs[p as usize].atc)
            };
            let diags = ctx.diagnoses.clone();
            let found = self
                .pick(
                    ps,
                    ctx,
                    &others,
                    Relax::default(),
                    |p| same_atc(p) && self.indicated(p, &diags),
                    rng,
                )
                .or_else(|| self.pick(ps, ctx, &others, Relax::default(), same_atc, rng));
            if let Some(x) = found {
                self.cover(x.0, ctx);
                self.put(items, x, Some(i), rng);
                return true;
            }
        }
        // No line has a partner: a pair for the diagnoses, else a pair of oral
        // drugs for another condition of the patient.
        let diagnosed = self.candidates_all(codes);
        for cands in [&diagnosed, &self.pool] {
            let n = cands.len();
            let start = if n > 0 { rng.random_range(0..n) } else { 0 };
            for j in 0..n {
                let a = cands[(start + j) % n];
                if partners[a as usize].is_empty()
                    || !self.fits(a, ctx, Relax::default())
                    || self.conflicts_any(a, items, None)
                {
                    continue;
                }
                let Some(la) = self.line(a, ctx, rng) else {
                    continue;
                };
                let b = self.pick(
                    &partners[a as usize],
                    ctx,
                    items,
                    Relax::default(),
                    |p| self.k.drugs[p as usize].atc != self.k.drugs[a as usize].atc,
                    rng,
                );
                if let Some(b) = b {
                    while items.len() > MAX_ITEMS - 2 {
                        items.pop();
                    }
                    self.cover(a, ctx);
                    self.cover(b.0, ctx);
                    items.push((a, la));
                    items.push(b);
                    return true;
                }
            }
        }
        false
    }

    /// A drug of pregnancy category D or X for a pregnant woman.
    fn add_pregnancy_drug(
        &self,
        ctx: &mut Ctx,
        items: &mut Lines,
        codes: &[String],
        rng: &mut impl Rng,
    ) -> bool {
        let relax = Relax {
            pregnancy: true,
            ..Relax::default()
        };
        self.add_any(ctx, items, codes, rng, relax, false, |di| {
            self.info[di as usize].pregnancy_dx
        })
    }

    /// Adds a drug that `keep` accepts: one for the diagnoses, else an oral
    /// drug of the pool with its own diagnosis. Beyond the limit of five
    /// lines only when `grow`; else it replaces a line of a full prescription.
    #[allow(clippy::too_many_arguments)]
    fn add_any(
        &self,
        ctx: &mut Ctx,
        items: &mut Lines,
        codes: &[String],
        rng: &mut impl Rng,
        relax: Relax,
        grow: bool,
        keep: impl Fn(u32) -> bool,
    ) -> bool {
        let cands = self.candidates_all(codes);
        let found = self
            .pick(&cands, ctx, items, relax, &keep, rng)
            .or_else(|| self.pick(&self.pool, ctx, items, relax, &keep, rng));
        match found {
            Some(x) => {
                self.cover(x.0, ctx);
                if grow {
                    items.push(x);
                } else {
                    self.put(items, x, None, rng);
                }
                true
            }
            None => false,
        }
    }

    /// An antimicrobial above the prescriber's grade that fits a diagnosis,
    /// in place of the prescription's antimicrobial if it has one.
    fn beyond_grade(
        &self,
        ctx: &mut Ctx,
        items: &mut Lines,
        codes: &[String],
        rng: &mut impl Rng,
    ) -> bool {
        let grade = ctx.grade;
        let above = |di: u32| {
            self.k.drugs[di as usize]
                .antimicrobial
                .is_some_and(|g| grade.is_none_or(|have| g > have))
        };
        let existing = items
            .iter()
            .position(|(di, _)| self.k.drugs[*di as usize].antimicrobial.is_some());
        let cands = self.candidates_all(codes);
        let relax = Relax {
            amr: true,
            skip: existing,
            ..Relax::default()
        };
        let Some(x) = self.pick(&cands, ctx, items, relax, above, rng) else {
            return false;
        };
        match existing {
            Some(i) => items[i] = x,
            None => self.put(items, x, None, rng),
        }
        true
    }

    /// A long prescription with a drug not allowed on one.
    fn long_ineligible(
        &self,
        ctx: &mut Ctx,
        items: &mut Lines,
        codes: &[String],
        rng: &mut impl Rng,
    ) -> bool {
        let was_long = ctx.long;
        ctx.long = false;
        let has_ineligible = items
            .iter()
            .any(|(di, _)| !self.k.drugs[*di as usize].long_rx);
        if !has_ineligible {
            let cands = self.candidates_all(codes);
            let not_long = |di: u32| !self.k.drugs[di as usize].long_rx;
            let found = self
                .pick(&cands, ctx, items, Relax::default(), not_long, rng)
                .or_else(|| self.pick(&self.pool, ctx, items, Relax::default(), not_long, rng));
            match found {
                Some(x) => {
                    self.cover(x.0, ctx);
                    self.put(items, x, None, rng);
                }
                None => {
                    ctx.long = was_long;
                    return false;
                }
            }
        }
        ctx.long = true;
        let days = crate::dist::pick(rng, &[(28, 70), (56, 30)]);
        for (_, l) in items.iter_mut() {
            l.days = days;
        }
        true
    }
}

/// Days' supply of a prescription: up to a week for outpatients, three days
/// in the emergency department, four to eight weeks on a long prescription.
fn days_for(ctx: &Ctx, rng: &mut impl Rng) -> u32 {
    if ctx.long {
        crate::dist::pick(rng, &[(28, 55), (35, 10), (42, 10), (56, 25)])
    } else if ctx.setting == Setting::Emergency {
        crate::dist::pick(rng, &[(1, 30), (2, 30), (3, 40)])
    } else {
        crate::dist::pick(rng, &[(3, 32), (4, 8), (5, 20), (6, 4), (7, 36)])
    }
}

/// A child's weight (kg) for an age in days, within about ±12% of the usual.
fn child_weight(days: u32, rng: &mut impl Rng) -> f64 {
    let months = days as f64 / 30.44;
    let years = days as f64 / 365.25;
    let usual = if months < 12.0 {
        3.3 + 0.55 * months
    } else if years < 7.0 {
        2.0 * years + 8.0
    } else {
        3.0 * years + 2.0
    };
    let w = usual * rng.random_range(0.88..1.12);
    (w * 10.0).round() / 10.0
}

/// An adult's weight (kg), the same on every prescription.
fn adult_weight(id: &str, female: bool) -> f64 {
    let h = stable(id, SALT_WEIGHT);
    let (lo, span) = if female { (45.0, 27.0) } else { (52.0, 33.0) };
    let w = lo + span * ((h % 1000) as f64 / 1000.0);
    (w * 2.0).round() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_numbers() {
        assert_eq!(nice_floor(37.0), 30.0);
        assert_eq!(nice_floor(0.0163), 0.015);
        assert_eq!(nice_floor(500.0), 500.0);
        assert_eq!(nice_ceil(37.0), 40.0);
        assert_eq!(nice_ceil(1.1), 1.25);
        assert_eq!(nice_floor(-1.0), 0.0);
    }

    #[test]
    fn weights_fit_ages() {
        let mut rng = crate::dist::substream(1, 0, 0);
        for (days, lo, hi) in [
            (30, 3.0, 5.0),
            (365 * 3, 11.0, 16.5),
            (365 * 12, 30.0, 45.0),
        ] {
            let w = child_weight(days, &mut rng);
            assert!((lo..=hi).contains(&w), "{days} days: {w} kg");
        }
        assert_eq!(adult_weight("pat-1", true), adult_weight("pat-1", true));
    }

    #[test]
    fn every_problem_has_a_category() {
        for (code, rate) in INJECTED {
            assert!(injected_category(code).is_some(), "{code}");
            assert!(rate > 0.0 && rate < 0.05);
        }
        let total: f64 = INJECTED.iter().map(|x| x.1).sum();
        assert!(total < 0.2);
    }
}
