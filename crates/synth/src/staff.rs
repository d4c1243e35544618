//! Practitioners of every institution, with titles, departments and licences, and
//! the secondments (派驻) that send lead-hospital doctors to the township centres.

use crate::dist::pick;
use crate::geography::{COUNTY_CODE, DeptRole, Geography, Service};
use crate::names;
use chrono::{Duration, NaiveDate};
use rand::Rng;
use yigong_core::{OrgKind, Practitioner, Role, Secondment, Sex, Title};

/// Everybody on the payroll plus who sees patients where.
pub struct Staff {
    pub practitioners: Vec<Practitioner>,
    /// Physicians (indices into `practitioners`) per institution and department.
    by_dept: Vec<Vec<Vec<u32>>>,
    /// Physicians and village doctors who see patients at each institution all year,
    /// including physicians seconded there for the whole year.
    by_inst: Vec<Vec<u32>>,
}

impl Staff {
    /// A physician for a visit at institution `inst` in department `dept`: one of that
    /// department if it has any, else one of the institution.
    pub fn physician(&self, rng: &mut impl Rng, inst: usize, dept: Option<usize>) -> Option<&str> {
        let dept_docs = dept.map_or(&[][..], |d| self.by_dept[inst][d].as_slice());
        let docs = if dept_docs.is_empty() {
            self.by_inst[inst].as_slice()
        } else {
            dept_docs
        };
        if docs.is_empty() {
            return None;
        }
        let i = docs[rng.random_range(0..docs.len())];
        Some(self.practitioners[i as usize].id.as_str())
    }
}

/// Planned headcount of an institution.
fn headcount(rng: &mut impl Rng, geo: &Geography, inst: usize) -> usize {
    let c = geo.county;
    let i = &geo.insts[inst];
    match i.kind {
        _ if inst == c.hospitals[0] => 240,
        _ if inst == c.hospitals[1] => 160,
        _ if inst == c.hospitals[2] => 170,
        OrgKind::MaternalChildHospital => 120,
        OrgKind::MentalHealth => 50,
        OrgKind::Cdc => 40,
        OrgKind::TownshipCentre if i.sub_centre => rng.random_range(26..=30),
        OrgKind::CommunityCentre => rng.random_range(18..=24),
        OrgKind::TownshipCentre => rng.random_range(10..=22),
        _ => 0,
    }
}

fn role_mix(kind: OrgKind, has_lab: bool) -> Vec<(Role, u32)> {
    use Role::*;
    match kind {
        OrgKind::GeneralHospital | OrgKind::TcmHospital | OrgKind::MaternalChildHospital => {
            vec![
                (Physician, 38),
                (Nurse, 44),
                (Pharmacist, 6),
                (Technician, 12),
            ]
        }
        OrgKind::MentalHealth => vec![(Physician, 30), (Nurse, 60), (Pharmacist, 10)],
        OrgKind::Cdc => vec![(PublicHealth, 78), (Technician, 22)],
        _ => vec![
            (Physician, 40),
            (Nurse, 36),
            (Pharmacist, 8),
            (PublicHealth, 16),
            (Technician, if has_lab { 6 } else { 0 }),
        ],
    }
}

fn title(rng: &mut impl Rng, role: Role, county: bool) -> Title {
    use Title::*;
    match (role, county) {
        (Role::Physician, true) => pick(
            rng,
            &[
                (ChiefPhysician, 8),
                (AssociateChief, 20),
                (Attending, 35),
                (Resident, 37),
            ],
        ),
        (Role::Physician, false) => pick(
            rng,
            &[
                (AssociateChief, 3),
                (Attending, 30),
                (Resident, 40),
                (AssistantPhysician, 27),
            ],
        ),
        (Role::PublicHealth, true) => pick(
            rng,
            &[
                (ChiefPhysician, 3),
                (AssociateChief, 15),
                (Attending, 40),
                (Resident, 42),
            ],
        ),
        (Role::PublicHealth, false) => pick(
            rng,
            &[(Attending, 25), (Resident, 40), (AssistantPhysician, 35)],
        ),
        (Role::Nurse, _) => Nurse,
        (Role::Pharmacist, _) => Pharmacist,
        (Role::VillageDoctor, _) => VillageDoctor,
        // Core has no technician title (技师/主管技师); junior professional grade.
        _ => Resident,
    }
}

/// Birth years by grade, used only to give names the flavour of their era.
fn birth_year(rng: &mut impl Rng, role: Role, title: Title) -> i32 {
    let (lo, hi) = match (role, title) {
        (_, Title::ChiefPhysician) => (1962, 1976),
        (_, Title::AssociateChief) => (1966, 1984),
        (_, Title::Attending) => (1976, 1992),
        (Role::VillageDoctor, _) => (1952, 1990),
        (Role::Nurse, _) => (1975, 2002),
        _ => (1980, 2000),
    };
    rng.random_range(lo..=hi)
}

fn sex(rng: &mut impl Rng, role: Role) -> Sex {
    let male = match role {
        Role::Nurse => 0.04,
        Role::Physician => 0.58,
        Role::VillageDoctor => 0.72,
        Role::Pharmacist => 0.40,
        Role::PublicHealth => 0.45,
        _ => 0.50,
    };
    if rng.random_bool(male) {
        Sex::Male
    } else {
        Sex::Female
    }
}

/// Licence numbers, synthetic but shaped like the real ones: the 15-digit
/// 医师执业证书编码 (level, category, division code, serial), a 15-digit
/// village doctor certificate and the 12-digit nurse registration number.
fn licence(
    rng: &mut impl Rng,
    role: Role,
    title: Title,
    tcm: bool,
    serial: usize,
) -> Option<String> {
    match role {
        Role::Physician | Role::PublicHealth => {
            let level = if title == Title::AssistantPhysician {
                2
            } else {
                1
            };
            let category = match (role, tcm) {
                (Role::PublicHealth, _) => 4,
                (_, true) => 2,
                _ => 1,
            };
            Some(format!("{level}{category}{COUNTY_CODE}{serial:07}"))
        }
        Role::VillageDoctor => Some(format!(
            "{COUNTY_CODE}{}{serial:05}",
            rng.random_range(2005..=2022)
        )),
        Role::Nurse => Some(format!("{}51{serial:06}", rng.random_range(1996..=2024))),
        _ => None,
    }
}

/// Adds one practitioner and returns their index.
fn hire(
    geo: &Geography,
    out: &mut Vec<Practitioner>,
    rng: &mut impl Rng,
    inst: usize,
    dept: Option<usize>,
    role: Role,
    county: bool,
) -> u32 {
    let i = &geo.insts[inst];
    let title = title(rng, role, county);
    let sex = sex(rng, role);
    let year = birth_year(rng, role, title);
    let dept_name = dept.map_or("", |d| i.depts[d].spec.name);
    let tcm =
        i.kind == OrgKind::TcmHospital || dept_name.contains('中') || dept_name.contains("针灸");
    let serial = out.len() + 1;
    out.push(Practitioner {
        id: format!("pr-{serial:06}"),
        name: names::full_name(rng, sex, year),
        sex,
        role,
        title,
        licence: licence(rng, role, title, tcm, serial),
        primary_institution: i.id.clone(),
        department: dept.map(|d| i.depts[d].id.clone()),
        secondments: vec![],
    });
    (out.len() - 1) as u32
}

pub fn build(geo: &Geography, rng: &mut impl Rng, as_of: NaiveDate) -> Staff {
    let n_inst = geo.insts.len();
    let mut out: Vec<Practitioner> = vec![];
    let mut by_dept: Vec<Vec<Vec<u32>>> = geo
        .insts
        .iter()
        .map(|i| vec![vec![]; i.depts.len()])
        .collect();
    let mut by_inst: Vec<Vec<u32>> = vec![vec![]; n_inst];

    // Hospitals and township centres.
    for (inst_ix, inst) in geo.insts.iter().enumerate() {
        if inst.depts.is_empty() {
            continue;
        }
        let county = inst.kind.tier() == Some(yigong_core::Tier::County);
        let n = headcount(rng, geo, inst_ix);
        let has_lab = inst
            .depts
            .iter()
            .any(|d| d.spec.role == DeptRole::Technical);
        let mix = role_mix(inst.kind, has_lab);
        let depts_with = |r: DeptRole| -> Vec<(usize, u32)> {
            inst.depts
                .iter()
                .enumerate()
                .filter(|(_, d)| d.spec.role == r)
                .map(|(i, d)| {
                    (
                        i,
                        if d.spec.services.contains(&Service::General) {
                            3
                        } else {
                            1
                        },
                    )
                })
                .collect()
        };
        let clinical = depts_with(DeptRole::Clinical);
        let mut made = 0;
        // One physician in every clinical department first, so that each has a doctor.
        if !matches!(inst.kind, OrgKind::Cdc) {
            for &(d, _) in &clinical {
                let p = hire(
                    geo,
                    &mut out,
                    rng,
                    inst_ix,
                    Some(d),
                    Role::Physician,
                    county,
                );
                by_dept[inst_ix][d].push(p);
                by_inst[inst_ix].push(p);
                made += 1;
            }
        }
        while made < n {
            let role = pick(rng, &mix);
            let dept_role = match role {
                Role::Physician | Role::Nurse => DeptRole::Clinical,
                Role::Pharmacist => DeptRole::Pharmacy,
                Role::Technician => DeptRole::Technical,
                _ => DeptRole::PublicHealth,
            };
            let choices = depts_with(dept_role);
            let dept = (!choices.is_empty()).then(|| pick(rng, &choices));
            let p = hire(geo, &mut out, rng, inst_ix, dept, role, county);
            if role == Role::Physician {
                if let Some(d) = dept {
                    by_dept[inst_ix][d].push(p);
                }
                by_inst[inst_ix].push(p);
            }
            made += 1;
        }
    }

    // Village doctors: one, sometimes two, per clinic.
    for v in &geo.villages {
        let Some(clinic) = v.clinic else { continue };
        let n = if rng.random_bool(0.35) { 2 } else { 1 };
        for _ in 0..n {
            let p = hire(geo, &mut out, rng, clinic, None, Role::VillageDoctor, false);
            by_inst[clinic].push(p);
        }
    }

    second(geo, rng, as_of, &mut out, &mut by_dept, &mut by_inst);
    Staff {
        practitioners: out,
        by_dept,
        by_inst,
    }
}

/// Secondments (四个下沉): every township centre has an attending physician of its
/// community's lead hospital for the whole simulated year, who also sees patients
/// there; experts (chief / associate chief physicians) go for one to three months
/// to every sub-centre and to about half of the other centres.
fn second(
    geo: &Geography,
    rng: &mut impl Rng,
    as_of: NaiveDate,
    out: &mut [Practitioner],
    by_dept: &mut [Vec<Vec<u32>>],
    by_inst: &mut [Vec<u32>],
) {
    let year_start = as_of - Duration::days(364);
    for t in &geo.townships {
        let lead = geo.lead_of(t.community);
        let lead_id = &geo.insts[lead].id;
        let centre = &geo.insts[t.centre];
        let free = |out: &[Practitioner], title: Title| -> Vec<usize> {
            out.iter()
                .enumerate()
                .filter(|(_, p)| {
                    &p.primary_institution == lead_id
                        && p.role == Role::Physician
                        && p.title == title
                        && p.secondments.is_empty()
                })
                .map(|(i, _)| i)
                .collect()
        };
        let mut attendings = free(out, Title::Attending);
        if attendings.is_empty() {
            // Promote a resident rather than leave a centre without its attending.
            attendings = free(out, Title::Resident);
            for &i in &attendings {
                out[i].title = Title::Attending;
            }
        }
        if let Some(&i) = attendings.get(rng.random_range(0..attendings.len().max(1))) {
            out[i].secondments.push(Secondment {
                institution: centre.id.clone(),
                start: year_start,
                end: Some(as_of),
            });
            if let Some(d) = centre.dept_for(Service::General) {
                by_dept[t.centre][d].push(i as u32);
            }
            by_inst[t.centre].push(i as u32);
        }

        if centre.sub_centre || rng.random_bool(0.5) {
            // 兆雅: the TCM hospital's orthopaedic surgeons work with the centre (seeds).
            let mut experts: Vec<usize> = out
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    &p.primary_institution == lead_id
                        && matches!(p.title, Title::ChiefPhysician | Title::AssociateChief)
                })
                .map(|(i, _)| i)
                .collect();
            if t.name == "兆雅镇" {
                let surgery = geo.insts[lead].dept_for(Service::Surgery);
                let surgeons: Vec<usize> = experts
                    .iter()
                    .copied()
                    .filter(|&i| {
                        surgery.is_some_and(|d| {
                            out[i].department.as_deref() == Some(&geo.insts[lead].depts[d].id)
                        })
                    })
                    .collect();
                if !surgeons.is_empty() {
                    experts = surgeons;
                }
            }
            // Prefer experts not already away, so that postings do not overlap.
            let idle: Vec<usize> = experts
                .iter()
                .copied()
                .filter(|&i| out[i].secondments.is_empty())
                .collect();
            if !idle.is_empty() {
                experts = idle;
            }
            if experts.is_empty() {
                continue;
            }
            let e = experts[rng.random_range(0..experts.len())];
            let days = rng.random_range(30..=90);
            let start = year_start + Duration::days(rng.random_range(0..=(364 - days)));
            out[e].secondments.push(Secondment {
                institution: centre.id.clone(),
                start,
                end: Some(start + Duration::days(days)),
            });
        }
    }
    // Keep each practitioner's secondments in date order.
    for p in out.iter_mut() {
        p.secondments
            .sort_by_key(|s| (s.start, s.institution.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::substream;
    use crate::geography;

    #[test]
    fn every_centre_has_a_year_long_attending_from_its_lead() {
        let geo = geography::build();
        let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let staff = build(&geo, &mut substream(5, 1, 0), as_of);
        for t in &geo.townships {
            let lead = &geo.insts[geo.lead_of(t.community)].id;
            let centre = &geo.insts[t.centre].id;
            assert!(staff.practitioners.iter().any(|p| {
                &p.primary_institution == lead
                    && p.title == Title::Attending
                    && p.secondments.iter().any(|s| {
                        &s.institution == centre
                            && s.start == as_of - Duration::days(364)
                            && s.end == Some(as_of)
                    })
            }));
        }
        for p in &staff.practitioners {
            p.validate().unwrap();
        }
        let n = staff.practitioners.len();
        assert!((1_200..2_000).contains(&n), "{n} practitioners");
    }
}
