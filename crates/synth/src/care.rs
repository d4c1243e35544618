//! A year of care for one resident: managed chronic conditions, outpatient and
//! emergency visits across the three tiers and out of the county, admissions,
//! and what each cost (integer fen).
//!
//! The rates are set so that the monitoring indicators land where the seeds put a
//! county like Luxian: about 3-5 visits per resident a year, about 64% of visits at
//! the primary level and 3-5% out of the county, about 15% of residents admitted
//! and about 85% of admissions inside the county.

use crate::dist::{Weighted, pick, poisson};
use crate::geography::{Geography, Service};
use crate::people::Person;
use crate::staff::Staff;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use rand::Rng;
use yigong_core::{Charges, Condition, Encounter, EncounterClass, Fen, Icd10, Sex};

/// How demanding an admission is; decides where it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    /// Within a township centre's reach (pneumonia, COPD exacerbation...).
    Simple,
    /// Needs a county hospital (stroke, fractures, surgery).
    Complex,
    /// Often treated in the city (cancer).
    Severe,
}

/// One diagnosis the model can draw.
#[derive(Debug)]
struct Dx {
    code: &'static str,
    name: &'static str,
    weight: u32,
    ages: (u32, u32),
    sex: Option<Sex>,
    service: Service,
    severity: Severity,
}

const fn dx(
    code: &'static str,
    name: &'static str,
    weight: u32,
    ages: (u32, u32),
    service: Service,
) -> Dx {
    Dx {
        code,
        name,
        weight,
        ages,
        sex: None,
        service,
        severity: Severity::Simple,
    }
}
const fn only(sex: Sex, d: Dx) -> Dx {
    Dx {
        sex: Some(sex),
        ..d
    }
}
const fn sev(severity: Severity, d: Dx) -> Dx {
    Dx { severity, ..d }
}

use Service::*;
use Severity::*;
const ALL: (u32, u32) = (0, 120);

/// Outpatient visits for new or acute problems.
static OUTPATIENT: [Dx; 27] = [
    dx("J06.9", "急性上呼吸道感染", 30, ALL, General),
    dx("J20.9", "急性支气管炎", 10, ALL, General),
    dx("J02.9", "急性咽炎", 6, (3, 120), General),
    dx("J30.4", "过敏性鼻炎", 2, (5, 70), General),
    dx("K29.7", "胃炎", 9, (12, 120), General),
    dx("K52.9", "非感染性胃肠炎", 5, ALL, General),
    dx("A09.9", "感染性腹泻", 3, ALL, General),
    dx("K59.0", "便秘", 2, (50, 120), General),
    dx("E78.5", "高脂血症", 3, (40, 120), General),
    dx("G47.0", "失眠", 2, (30, 120), Tcm),
    dx("R51", "头痛", 3, (10, 120), General),
    dx("M54.5", "腰痛", 8, (25, 120), Tcm),
    dx("M47.8", "颈椎病", 4, (35, 120), Tcm),
    dx("M17.9", "膝关节骨关节炎", 5, (45, 120), Tcm),
    dx("S93.4", "踝关节扭伤", 2, (8, 70), Surgery),
    dx("S61.0", "手指开放性伤口", 2, (6, 80), Surgery),
    dx("L30.9", "皮炎", 4, ALL, General),
    dx("B02.9", "带状疱疹", 1, (40, 120), General),
    dx("H10.9", "结膜炎", 2, ALL, General),
    dx("N39.0", "尿路感染", 4, (15, 120), General),
    only(
        Sex::Female,
        dx("N76.0", "急性阴道炎", 3, (18, 60), Gynaecology),
    ),
    only(
        Sex::Female,
        dx("Z34.9", "正常妊娠监督", 3, (20, 40), Obstetrics),
    ),
    only(Sex::Male, dx("N40", "前列腺增生", 3, (50, 120), Surgery)),
    dx("Z00.0", "一般医学检查", 3, (18, 64), General),
    dx("Z00.0", "一般医学检查", 9, (65, 120), General),
    dx("Z00.1", "儿童常规健康检查", 12, (0, 6), Paediatrics),
    dx("F32.9", "抑郁发作", 1, (15, 120), Psychiatry),
];

static EMERGENCY: [Dx; 14] = [
    dx("R10.4", "腹痛", 10, (3, 120), Emergency),
    dx("R50.9", "发热", 10, ALL, Emergency),
    dx("J18.9", "肺炎", 5, ALL, Emergency),
    dx("T14.0", "体表浅表损伤", 6, ALL, Emergency),
    dx("S06.0", "脑震荡", 2, (3, 120), Emergency),
    dx("S52.5", "桡骨远端骨折", 3, (5, 120), Emergency),
    dx("R07.4", "胸痛", 5, (30, 120), Emergency),
    dx("I63.9", "脑梗死", 3, (50, 120), Emergency),
    dx("I21.9", "急性心肌梗死", 1, (45, 120), Emergency),
    dx("K35.8", "急性阑尾炎", 2, (8, 80), Emergency),
    dx("T60.0", "有机磷农药中毒", 1, (15, 120), Emergency),
    dx("R55", "晕厥", 2, (10, 120), Emergency),
    dx("J45.9", "哮喘", 2, (3, 120), Emergency),
    dx("T78.4", "过敏反应", 2, ALL, Emergency),
];

static INPATIENT: [Dx; 21] = [
    dx("J18.9", "肺炎", 20, ALL, General),
    dx("J20.9", "急性支气管炎", 5, (0, 14), General),
    dx("J44.1", "慢性阻塞性肺疾病急性加重", 8, (50, 120), General),
    dx("I10", "原发性高血压", 4, (45, 120), General),
    dx("E11.9", "2型糖尿病", 4, (40, 120), General),
    dx("K29.7", "胃炎", 3, (20, 120), General),
    dx("A09.9", "感染性腹泻", 3, ALL, General),
    dx("M51.2", "腰椎间盘突出症", 5, (30, 120), Tcm),
    dx("N39.0", "尿路感染", 2, (15, 120), General),
    sev(Complex, dx("I63.9", "脑梗死", 10, (45, 120), General)),
    sev(Complex, dx("I50.9", "心力衰竭", 5, (55, 120), General)),
    sev(
        Complex,
        dx("I25.1", "冠状动脉粥样硬化性心脏病", 5, (45, 120), General),
    ),
    sev(Complex, dx("K80.2", "胆囊结石", 5, (25, 120), Surgery)),
    sev(Complex, dx("K35.8", "急性阑尾炎", 4, (8, 80), Surgery)),
    sev(
        Complex,
        only(Sex::Male, dx("K40.9", "腹股沟疝", 2, (1, 120), Surgery)),
    ),
    sev(Complex, dx("S72.0", "股骨颈骨折", 3, (60, 120), Surgery)),
    sev(Complex, dx("S82.2", "胫骨骨折", 2, (10, 80), Surgery)),
    sev(Complex, dx("N18.9", "慢性肾脏病", 2, (40, 120), General)),
    sev(
        Complex,
        only(
            Sex::Female,
            dx("D25.9", "子宫平滑肌瘤", 2, (30, 55), Gynaecology),
        ),
    ),
    sev(Severe, dx("C34.9", "肺恶性肿瘤", 2, (45, 120), General)),
    sev(Severe, dx("C16.9", "胃恶性肿瘤", 1, (45, 120), General)),
];

/// Deliveries: vaginal and caesarean (about 40% in China).
static BIRTHS: [Dx; 2] = [
    only(Sex::Female, dx("O80", "单胎顺产", 60, (18, 45), Obstetrics)),
    only(Sex::Female, dx("O82.9", "剖宫产", 40, (18, 45), Obstetrics)),
];

/// Chronic diseases under management (慢病管理 / 严重精神障碍管理), with the
/// diagnosis used when one of them leads to an admission.
struct Chronic {
    code: &'static str,
    name: &'static str,
    prevalence: fn(u32) -> f64,
    admission: Option<usize>,
    service: Service,
}

static CHRONIC: [Chronic; 5] = [
    Chronic {
        code: "I10",
        name: "原发性高血压",
        prevalence: |age| match age {
            35..=44 => 0.04,
            45..=59 => 0.14,
            60.. => 0.25,
            _ => 0.0,
        },
        admission: Some(3),
        service: General,
    },
    Chronic {
        code: "E11.9",
        name: "2型糖尿病",
        prevalence: |age| match age {
            35..=49 => 0.04,
            50.. => 0.10,
            _ => 0.0,
        },
        admission: Some(4),
        service: General,
    },
    Chronic {
        code: "J44.9",
        name: "慢性阻塞性肺疾病",
        prevalence: |age| match age {
            50..=59 => 0.02,
            60.. => 0.06,
            _ => 0.0,
        },
        admission: Some(2),
        service: General,
    },
    Chronic {
        code: "I25.1",
        name: "冠状动脉粥样硬化性心脏病",
        prevalence: |age| match age {
            50..=59 => 0.015,
            60.. => 0.05,
            _ => 0.0,
        },
        admission: Some(11),
        service: General,
    },
    Chronic {
        code: "F20.9",
        name: "精神分裂症",
        prevalence: |age| if age >= 18 { 0.004 } else { 0.0 },
        admission: None,
        service: Psychiatry,
    },
];

const MAX_AGE: u32 = 110;

/// A diagnosis list with parsed codes and a draw table per age and sex.
struct DxTable {
    list: &'static [Dx],
    codes: Vec<Icd10>,
    /// None where nothing in the list fits (e.g. deliveries for men).
    by_age_sex: Vec<Option<Weighted<usize>>>,
}

impl DxTable {
    fn new(list: &'static [Dx]) -> Self {
        let codes = list
            .iter()
            .map(|d| Icd10::parse(d.code).expect("valid ICD-10 code in table"))
            .collect();
        let mut by_age_sex = vec![];
        for age in 0..=MAX_AGE {
            for sex in [Sex::Male, Sex::Female] {
                let fits: Vec<(usize, u32)> = list
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| {
                        d.ages.0 <= age && age <= d.ages.1 && d.sex.is_none_or(|s| s == sex)
                    })
                    .map(|(i, d)| (i, d.weight))
                    .collect();
                by_age_sex.push((!fits.is_empty()).then(|| Weighted::new(fits)));
            }
        }
        DxTable {
            list,
            codes,
            by_age_sex,
        }
    }

    fn draw(&self, rng: &mut impl Rng, age: u32, sex: Sex) -> Option<usize> {
        let i = age.min(MAX_AGE) as usize * 2 + usize::from(sex == Sex::Female);
        self.by_age_sex[i].as_ref().map(|t| t.pick(rng))
    }
}

/// Where a visit or admission takes place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Village,
    Township,
    County,
    OutOfCounty,
}

/// The Chinese display name the generator uses for a diagnosis code, if any.
pub fn diagnosis_name(code: &str) -> Option<&'static str> {
    CHRONIC
        .iter()
        .map(|c| (c.code, c.name))
        .chain(
            OUTPATIENT
                .iter()
                .chain(&EMERGENCY)
                .chain(&INPATIENT)
                .chain(&BIRTHS)
                .map(|d| (d.code, d.name)),
        )
        .find(|(c, _)| *c == code)
        .map(|(_, n)| n)
}

/// Running numbers for encounter and condition ids.
#[derive(Debug, Default)]
pub struct Counters {
    pub encounter: u64,
    pub condition: u64,
}

/// The care model, built once per county.
pub struct CareModel<'a> {
    geo: &'a Geography,
    staff: &'a Staff,
    as_of: NaiveDate,
    year_start: NaiveDate,
    outpatient: DxTable,
    emergency: DxTable,
    inpatient: DxTable,
    births: DxTable,
    chronic_codes: Vec<Icd10>,
    /// Sub-centres of each community (indices into `Geography::insts`).
    sub_centres: Vec<Vec<usize>>,
}

/// An encounter before it gets its id.
struct Planned {
    class: EncounterClass,
    inst: usize,
    dept: Option<usize>,
    practitioner: Option<String>,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    in_county: bool,
    diagnoses: Vec<Icd10>,
    charges: Charges,
}

/// Local clinic time (UTC+8) on `day`, between `from` and `to` minutes after midnight.
pub(crate) fn local_time(rng: &mut impl Rng, day: NaiveDate, from: u32, to: u32) -> DateTime<Utc> {
    let minute = rng.random_range(from..to);
    let local = day.and_time(NaiveTime::MIN) + Duration::minutes(minute as i64);
    Utc.from_utc_datetime(&(local - Duration::hours(8)))
}

/// Seasonal weight of respiratory illness by month (winter peak).
fn respiratory_season(month: u32) -> f64 {
    match month {
        12 | 1 | 2 => 1.0,
        3 | 11 => 0.8,
        4 | 10 => 0.6,
        _ => 0.45,
    }
}

/// Splits a total into drugs / consumables / exams / services and the insured part.
fn charges(
    rng: &mut impl Rng,
    total: i64,
    insured: (i64, i64),
    drugs: (i64, i64),
    consumables: (i64, i64),
    exams: (i64, i64),
) -> Charges {
    let part =
        |rng: &mut dyn rand::RngCore, r: (i64, i64)| total * rng.random_range(r.0..=r.1) / 100;
    let d = part(rng, drugs);
    let c = part(rng, consumables);
    let e = part(rng, exams);
    let s = total - d - c - e;
    let paid = part(rng, insured);
    Charges {
        drugs: Fen(d),
        consumables: Fen(c),
        exams: Fen(e),
        services: Fen(s),
        insurance_paid: Fen(paid),
    }
}

impl<'a> CareModel<'a> {
    pub fn new(geo: &'a Geography, staff: &'a Staff, as_of: NaiveDate) -> Self {
        let sub_centres = (0..geo.communities.len())
            .map(|c| {
                geo.townships
                    .iter()
                    .filter(|t| t.community == c && geo.insts[t.centre].sub_centre)
                    .map(|t| t.centre)
                    .collect()
            })
            .collect();
        CareModel {
            geo,
            staff,
            as_of,
            year_start: as_of - Duration::days(364),
            outpatient: DxTable::new(&OUTPATIENT),
            emergency: DxTable::new(&EMERGENCY),
            inpatient: DxTable::new(&INPATIENT),
            births: DxTable::new(&BIRTHS),
            chronic_codes: CHRONIC
                .iter()
                .map(|c| Icd10::parse(c.code).expect("valid ICD-10 code"))
                .collect(),
            sub_centres,
        }
    }

    /// A day in the simulated year on or after `first`, with a winter peak for
    /// respiratory problems.
    fn day(
        &self,
        rng: &mut impl Rng,
        first: NaiveDate,
        last: NaiveDate,
        seasonal: bool,
    ) -> NaiveDate {
        let span = (last - first).num_days().max(0);
        let mut day = first + Duration::days(rng.random_range(0..=span));
        if seasonal {
            for _ in 0..6 {
                if rng.random_bool(respiratory_season(day.month())) {
                    break;
                }
                day = first + Duration::days(rng.random_range(0..=span));
            }
        }
        day
    }

    /// A county-level institution for a patient of `community` needing `service`.
    fn county_institution(
        &self,
        rng: &mut impl Rng,
        community: usize,
        service: Service,
        age: u32,
    ) -> usize {
        let c = self.geo.county;
        match service {
            Psychiatry if rng.random_bool(0.8) => return c.mental,
            Gynaecology | Obstetrics if rng.random_bool(0.5) => return c.mch,
            Tcm if rng.random_bool(0.5) => return c.hospitals[2],
            _ if age < 14 && rng.random_bool(0.35) => return c.mch,
            _ => {}
        }
        if rng.random_bool(0.6) {
            self.geo.lead_of(community)
        } else {
            let h = c.hospitals;
            pick(rng, &[(h[0], 50), (h[1], 20), (h[2], 30)])
        }
    }

    /// Department and physician for an in-county encounter.
    fn staffing(
        &self,
        rng: &mut impl Rng,
        inst: usize,
        service: Service,
        age: u32,
    ) -> (Option<usize>, Option<String>) {
        let service = match service {
            General if age < 14 => Paediatrics,
            s => s,
        };
        let dept = self.geo.insts[inst].dept_for(service);
        let doc = self.staff.physician(rng, inst, dept).map(str::to_string);
        (dept, doc)
    }

    /// The resident's year: managed conditions, then encounters in time order.
    pub fn year(
        &self,
        rng: &mut impl Rng,
        person: &Person,
        n: &mut Counters,
    ) -> (Vec<Condition>, Vec<Encounter>) {
        let geo = self.geo;
        let p = &person.patient;
        let age = person.age;
        let village = &geo.villages[person.village];
        let township = &geo.townships[village.township];
        let community = township.community;
        let managing = village.clinic.unwrap_or(township.centre);
        let first_day = self.year_start.max(p.birth_date);

        // Managed chronic diseases.
        // Indices into CHRONIC of the resident's managed diseases.
        let mut managed: Vec<usize> = vec![];
        let mut conditions = vec![];
        for (kind, c) in CHRONIC.iter().enumerate() {
            let prevalence = (c.prevalence)(age);
            if prevalence > 0.0 && rng.random_bool(prevalence) {
                managed.push(kind);
                // Diagnosed between a month and twenty years ago, after turning 30
                // (18 for mental illness); some are new this year.
                let floor = if c.service == Psychiatry { 18 } else { 30 };
                let max_years = age.saturating_sub(floor).clamp(1, 20) as i64;
                let onset = (self.as_of - Duration::days(rng.random_range(30..=365 * max_years)))
                    .max(p.birth_date);
                n.condition += 1;
                conditions.push(Condition {
                    id: format!("cond-{:07}", n.condition),
                    patient: p.id.clone(),
                    code: self.chronic_codes[kind].clone(),
                    display: c.name.to_string(),
                    onset,
                    institution: geo.insts[managing].id.clone(),
                    encounter: None,
                    chronic: true,
                });
            }
        }

        let mut planned: Vec<Planned> = vec![];

        // Outpatient and emergency visits.
        let base = match age {
            0..=5 => 5.0,
            6..=14 => 2.2,
            15..=44 => 2.2,
            45..=59 => 3.2,
            60..=74 => 4.5,
            _ => 5.0,
        };
        let frailty = pick(rng, &[(0.4, 25), (0.8, 30), (1.2, 25), (2.0, 15), (3.0, 5)]);
        let follow_ups = poisson(rng, 3.0 * managed.len() as f64);
        let acute = poisson(rng, base * frailty);
        for v in 0..(follow_ups + acute) {
            let follow_up = v < follow_ups;
            let emergency = !follow_up && rng.random_bool(0.055);
            let (service, mut diagnoses, respiratory) = if follow_up {
                let m = managed[rng.random_range(0..managed.len())];
                (
                    CHRONIC[m].service,
                    vec![self.chronic_codes[m].clone()],
                    false,
                )
            } else {
                let table = if emergency {
                    &self.emergency
                } else {
                    &self.outpatient
                };
                let Some(i) = table.draw(rng, age, p.sex) else {
                    continue;
                };
                let d = &table.list[i];
                let resp = d.code.starts_with('J') || d.code == "R50.9";
                (d.service, vec![table.codes[i].clone()], resp)
            };
            // Chronic patients' other visits often record their chronic disease too.
            if !follow_up && !managed.is_empty() && rng.random_bool(0.3) {
                let m = managed[rng.random_range(0..managed.len())];
                diagnoses.push(self.chronic_codes[m].clone());
            }
            let mut place = if emergency {
                pick(
                    rng,
                    &[
                        (Place::Township, 16),
                        (Place::County, 79),
                        (Place::OutOfCounty, 5),
                    ],
                )
            } else if follow_up {
                let psych = service == Psychiatry;
                pick(
                    rng,
                    &[
                        (Place::Village, if psych { 30 } else { 55 }),
                        (Place::Township, if psych { 40 } else { 30 }),
                        (Place::County, if psych { 28 } else { 13 }),
                        (Place::OutOfCounty, 2),
                    ],
                )
            } else {
                pick(
                    rng,
                    &[
                        (Place::Village, 32),
                        (Place::Township, 33),
                        (Place::County, 31),
                        (Place::OutOfCounty, 4),
                    ],
                )
            };
            if place == Place::Village && village.clinic.is_none() {
                place = Place::Township;
            }
            let day = self.day(rng, first_day, self.as_of, respiratory);
            let start = local_time(rng, day, 8 * 60, 17 * 60 + 30);
            let class = if emergency {
                EncounterClass::Emergency
            } else {
                EncounterClass::Outpatient
            };
            let (inst, total, insured, exams) = match place {
                Place::Village => (managing, rng.random_range(2_000..=6_000), (45, 60), (0, 8)),
                Place::Township => (
                    township.centre,
                    if emergency {
                        rng.random_range(10_000..=30_000)
                    } else {
                        rng.random_range(6_000..=18_000)
                    },
                    (40, 60),
                    (10, 25),
                ),
                Place::County => (
                    self.county_institution(rng, community, service, age),
                    if emergency {
                        rng.random_range(30_000..=90_000)
                    } else {
                        rng.random_range(15_000..=45_000)
                    },
                    (30, 50),
                    (15, 30),
                ),
                Place::OutOfCounty => (
                    geo.county.out_of_county,
                    if emergency {
                        rng.random_range(50_000..=150_000)
                    } else {
                        rng.random_range(30_000..=100_000)
                    },
                    (30, 40),
                    (15, 30),
                ),
            };
            let in_county = place != Place::OutOfCounty;
            let (dept, practitioner) = if in_county {
                let s = if emergency { Emergency } else { service };
                self.staffing(rng, inst, s, age)
            } else {
                (None, None)
            };
            let drugs = if follow_up { (40, 45) } else { (30, 45) };
            planned.push(Planned {
                class,
                inst,
                dept,
                practitioner,
                start,
                end: None,
                in_county,
                diagnoses,
                charges: charges(rng, total, insured, drugs, (3, 10), exams),
            });
        }

        // Admissions.
        let mut admit_p: f64 = match age {
            0..=5 => 0.12,
            6..=14 => 0.06,
            15..=44 => 0.08,
            45..=59 => 0.15,
            60..=74 => 0.26,
            _ => 0.34,
        };
        admit_p += 0.04 * managed.len() as f64;
        let mut admissions: Vec<(Service, Severity, Icd10, Vec<Icd10>)> = vec![];
        // About 5% of women aged 20-40 give birth during the year.
        if p.sex == Sex::Female
            && (20..=40).contains(&age)
            && rng.random_bool(0.05)
            && let Some(i) = self.births.draw(rng, age, p.sex)
        {
            admissions.push((Obstetrics, Simple, self.births.codes[i].clone(), vec![]));
        }
        if rng.random_bool(admit_p.min(0.9)) {
            let count = if rng.random_bool(0.18) { 2 } else { 1 };
            for _ in 0..count {
                let chronic_admission = managed
                    .iter()
                    .filter_map(|&m| CHRONIC[m].admission)
                    .collect::<Vec<_>>();
                let i = if !chronic_admission.is_empty() && rng.random_bool(0.4) {
                    chronic_admission[rng.random_range(0..chronic_admission.len())]
                } else if let Some(i) = self.inpatient.draw(rng, age, p.sex) {
                    i
                } else {
                    continue;
                };
                let d = &self.inpatient.list[i];
                let secondary = managed
                    .iter()
                    .map(|&m| self.chronic_codes[m].clone())
                    .filter(|c| c != &self.inpatient.codes[i])
                    .collect();
                admissions.push((
                    d.service,
                    d.severity,
                    self.inpatient.codes[i].clone(),
                    secondary,
                ));
            }
        }
        for (service, severity, main, secondary) in admissions {
            let birth = service == Obstetrics;
            let place = if birth {
                pick(
                    rng,
                    &[
                        (Place::County, 80),
                        (Place::Township, 8),
                        (Place::OutOfCounty, 12),
                    ],
                )
            } else {
                match severity {
                    Simple => pick(
                        rng,
                        &[
                            (Place::Township, 50),
                            (Place::County, 42),
                            (Place::OutOfCounty, 8),
                        ],
                    ),
                    Complex => pick(
                        rng,
                        &[
                            (Place::Township, 8),
                            (Place::County, 66),
                            (Place::OutOfCounty, 26),
                        ],
                    ),
                    Severe => pick(rng, &[(Place::County, 40), (Place::OutOfCounty, 60)]),
                }
            };
            let los: i64 = match (birth, severity) {
                (true, _) if main.as_str() == "O80" => rng.random_range(3..=4),
                (true, _) => rng.random_range(5..=7),
                (_, Simple) if place == Place::Township => rng.random_range(3..=8),
                (_, Simple) => rng.random_range(4..=10),
                _ => rng.random_range(5..=12),
            };
            let last = self.as_of - Duration::days(los);
            if last < first_day {
                continue;
            }
            let day = self.day(rng, first_day, last, main.chapter() == 'J');
            let start = local_time(rng, day, 8 * 60, 17 * 60 + 30);
            let end = local_time(rng, day + Duration::days(los), 9 * 60, 11 * 60 + 30);
            // Cost grows with the length of stay.
            let spread = |rng: &mut dyn rand::RngCore, lo: i64, hi: i64| {
                let f = (los - 3) as f64 / 9.0 * 0.6 + rng.random::<f64>() * 0.4;
                lo + ((hi - lo) as f64 * f.min(1.0)) as i64
            };
            let (inst, total, insured) = match place {
                Place::Township => {
                    let subs = &self.sub_centres[community];
                    let inst = if (severity != Simple || birth || rng.random_bool(0.15))
                        && !subs.is_empty()
                    {
                        subs[rng.random_range(0..subs.len())]
                    } else {
                        township.centre
                    };
                    (inst, spread(rng, 150_000, 400_000), (65, 75))
                }
                Place::County => {
                    let inst = if birth && rng.random_bool(0.6) {
                        geo.county.mch
                    } else {
                        self.county_institution(rng, community, service, age)
                    };
                    (inst, spread(rng, 500_000, 1_500_000), (55, 68))
                }
                _ => (
                    geo.county.out_of_county,
                    spread(rng, 1_500_000, 4_000_000),
                    (50, 58),
                ),
            };
            let in_county = place != Place::OutOfCounty;
            let (dept, practitioner) = if in_county {
                self.staffing(rng, inst, service, age)
            } else {
                (None, None)
            };
            let mut diagnoses = vec![main];
            diagnoses.extend(secondary);
            planned.push(Planned {
                class: EncounterClass::Inpatient,
                inst,
                dept,
                practitioner,
                start,
                end: Some(end),
                in_county,
                diagnoses,
                charges: charges(rng, total, insured, (30, 42), (8, 15), (15, 28)),
            });
        }

        planned.sort_by_key(|e| e.start);
        let encounters = planned
            .into_iter()
            .map(|e| {
                n.encounter += 1;
                let inst = &geo.insts[e.inst];
                Encounter {
                    id: format!("enc-{:08}", n.encounter),
                    patient: p.id.clone(),
                    class: e.class,
                    institution: inst.id.clone(),
                    department: e.dept.map(|d| inst.depts[d].id.clone()),
                    practitioner: e.practitioner,
                    start: e.start,
                    end: e.end,
                    in_county: e.in_county,
                    diagnoses: e.diagnoses,
                    charges: e.charges,
                }
            })
            .collect();
        (conditions, encounters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_valid_and_age_appropriate() {
        for list in [&OUTPATIENT[..], &EMERGENCY, &INPATIENT, &BIRTHS] {
            let t = DxTable::new(list);
            assert_eq!(t.by_age_sex.len(), (MAX_AGE as usize + 1) * 2);
        }
        let t = DxTable::new(&OUTPATIENT);
        let mut rng = crate::dist::substream(1, 0, 0);
        for _ in 0..2_000 {
            let i = t.draw(&mut rng, 70, Sex::Male).unwrap();
            assert!(!t.list[i].code.starts_with('O') && !t.list[i].code.starts_with("Z34"));
            let i = t.draw(&mut rng, 3, Sex::Female).unwrap();
            assert!(t.list[i].ages.0 <= 3);
        }
        let births = DxTable::new(&BIRTHS);
        assert!(births.draw(&mut rng, 30, Sex::Male).is_none());
        assert!(births.draw(&mut rng, 30, Sex::Female).is_some());
        for age in 0..=MAX_AGE {
            for sex in [Sex::Male, Sex::Female] {
                for table in [&t, &DxTable::new(&EMERGENCY), &DxTable::new(&INPATIENT)] {
                    assert!(table.draw(&mut rng, age, sex).is_some());
                }
            }
        }
        for c in &CHRONIC {
            Icd10::parse(c.code).unwrap();
            if let Some(a) = c.admission {
                // Same category; COPD is admitted as an exacerbation (J44.1 for J44.9).
                assert_eq!(&INPATIENT[a].code[..3], &c.code[..3]);
            }
        }
    }

    #[test]
    fn charges_add_up() {
        let mut rng = crate::dist::substream(2, 0, 0);
        for total in [2_000, 17_999, 1_500_000] {
            let c = charges(&mut rng, total, (50, 75), (30, 45), (3, 15), (15, 30));
            c.validate().unwrap();
            assert_eq!(c.total(), Fen(total));
            assert!(c.services.0 >= total / 10);
        }
    }

    #[test]
    fn clinic_hours_are_beijing_time() {
        let mut rng = crate::dist::substream(3, 0, 0);
        let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        for _ in 0..500 {
            let t = local_time(&mut rng, day, 8 * 60, 17 * 60 + 30);
            let local = t + Duration::hours(8);
            assert_eq!(local.date_naive(), day);
            let minutes = local
                .time()
                .signed_duration_since(NaiveTime::MIN)
                .num_minutes();
            assert!((480..1050).contains(&minutes));
        }
    }
}
