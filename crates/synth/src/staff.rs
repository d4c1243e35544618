//! Practitioners of every institution, with titles, departments and the
//! secondments (派驻) that send lead-hospital doctors to township centres.

use crate::geography::{COUNTY_DEPARTMENTS, Geography, TOWNSHIP_DEPARTMENTS};
use crate::names;
use chrono::{Duration, NaiveDate};
use rand::Rng;
use yigong_core::{OrgKind, Practitioner, Role, Secondment, Sex, Title};

/// Physicians (and village doctors) per institution, for assigning visits.
pub struct Staff {
    pub practitioners: Vec<Practitioner>,
    pub physicians: Vec<(String, Vec<String>)>,
}

impl Staff {
    pub fn physicians_of(&self, inst: &str) -> &[String] {
        self.physicians
            .iter()
            .find(|(i, _)| i == inst)
            .map_or(&[], |(_, p)| p.as_slice())
    }
}

fn pick<T: Copy>(rng: &mut impl Rng, weighted: &[(T, u32)]) -> T {
    let total: u32 = weighted.iter().map(|w| w.1).sum();
    let mut r = rng.random_range(0..total);
    for (v, w) in weighted {
        if r < *w {
            return *v;
        }
        r -= w;
    }
    weighted[0].0
}

fn licence(rng: &mut impl Rng) -> String {
    format!("1105100{:08}", rng.random_range(0..100_000_000u32))
}

pub fn build(geo: &Geography, rng: &mut impl Rng, as_of: NaiveDate) -> Staff {
    let mut out: Vec<Practitioner> = vec![];
    let mut physicians: Vec<(String, Vec<String>)> = vec![];
    let year_start = as_of - Duration::days(364);

    // (institution, staff count, department names, is county level)
    let mut plan: Vec<(String, usize, &[&str], bool)> = vec![];
    for h in &geo.hospitals {
        plan.push((h.id.clone(), h.staff, &COUNTY_DEPARTMENTS[..], true));
    }
    for t in &geo.townships {
        let n = if geo.orgs.iter().any(|o| o.id == t.centre && o.sub_centre) {
            30
        } else {
            rng.random_range(12..=24)
        };
        plan.push((t.centre.clone(), n, &TOWNSHIP_DEPARTMENTS[..], false));
    }
    for (inst, count, dept_names, county) in plan {
        let depts = geo.departments_of(&inst).to_vec();
        let public_health = geo
            .hospitals
            .iter()
            .any(|h| h.id == inst && h.kind == OrgKind::Cdc);
        let mut docs = vec![];
        for _ in 0..count {
            let role = if public_health {
                Role::PublicHealth
            } else if county {
                pick(
                    rng,
                    &[
                        (Role::Physician, 45),
                        (Role::Nurse, 40),
                        (Role::Pharmacist, 5),
                        (Role::Technician, 10),
                    ],
                )
            } else {
                pick(
                    rng,
                    &[
                        (Role::Physician, 40),
                        (Role::Nurse, 38),
                        (Role::Pharmacist, 7),
                        (Role::PublicHealth, 15),
                    ],
                )
            };
            let sex = match role {
                Role::Nurse => {
                    if rng.random_bool(0.95) {
                        Sex::Female
                    } else {
                        Sex::Male
                    }
                }
                _ => {
                    if rng.random_bool(0.55) {
                        Sex::Male
                    } else {
                        Sex::Female
                    }
                }
            };
            let title = match role {
                Role::Physician if county => pick(
                    rng,
                    &[
                        (Title::ChiefPhysician, 8),
                        (Title::AssociateChief, 20),
                        (Title::Attending, 35),
                        (Title::Resident, 37),
                    ],
                ),
                Role::Physician => pick(
                    rng,
                    &[
                        (Title::AssociateChief, 3),
                        (Title::Attending, 30),
                        (Title::Resident, 40),
                        (Title::AssistantPhysician, 27),
                    ],
                ),
                Role::Pharmacist => Title::Pharmacist,
                Role::PublicHealth => Title::Resident,
                _ => Title::Nurse,
            };
            // Department by role: pharmacists to the pharmacy, technicians to lab/imaging/ECG.
            let dept_index = match role {
                Role::Pharmacist => dept_names.len() - 1,
                Role::Technician => rng.random_range(6..9),
                Role::PublicHealth if !county => 2,
                _ if county => rng.random_range(0..6),
                _ => rng.random_range(0..2),
            };
            let id = format!("pr-{:06}", out.len() + 1);
            if role == Role::Physician {
                docs.push(id.clone());
            }
            out.push(Practitioner {
                id,
                name: format!(
                    "{}{}",
                    names::surname(rng),
                    names::given(rng, sex == Sex::Male)
                ),
                sex,
                role,
                title,
                licence: matches!(role, Role::Physician | Role::Pharmacist | Role::Nurse)
                    .then(|| licence(rng)),
                primary_institution: inst.clone(),
                department: depts.get(dept_index).cloned(),
                secondments: vec![],
            });
        }
        physicians.push((inst, docs));
    }

    // Village doctors: one or two per clinic.
    for v in &geo.villages {
        let Some(clinic) = &v.clinic else { continue };
        let n = if rng.random_bool(0.35) { 2 } else { 1 };
        let mut docs = vec![];
        for _ in 0..n {
            let sex = if rng.random_bool(0.7) {
                Sex::Male
            } else {
                Sex::Female
            };
            let id = format!("pr-{:06}", out.len() + 1);
            docs.push(id.clone());
            out.push(Practitioner {
                id,
                name: format!(
                    "{}{}",
                    names::surname(rng),
                    names::given(rng, sex == Sex::Male)
                ),
                sex,
                role: Role::VillageDoctor,
                title: Title::VillageDoctor,
                licence: Some(licence(rng)),
                primary_institution: clinic.clone(),
                department: None,
                secondments: vec![],
            });
        }
        physicians.push((clinic.clone(), docs));
    }

    // Secondments: every township centre has an attending physician from its
    // community's lead hospital all year; chief physicians hold a clinic at
    // a branch one day in every ten (每旬).
    for (ti, t) in geo.townships.iter().enumerate() {
        let lead = &geo.leads[t.community];
        let candidates: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                &p.primary_institution == lead
                    && p.title == Title::Attending
                    && p.secondments.is_empty()
            })
            .map(|(i, _)| i)
            .collect();
        if let Some(&i) = candidates.get(ti % candidates.len().max(1)) {
            out[i].secondments.push(Secondment {
                institution: t.centre.clone(),
                start: year_start,
                end: Some(as_of),
            });
        }
        let experts: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, p)| &p.primary_institution == lead && p.title == Title::ChiefPhysician)
            .map(|(i, _)| i)
            .collect();
        if !experts.is_empty() {
            let e = experts[rng.random_range(0..experts.len())];
            let mut day = year_start + Duration::days(rng.random_range(0..10));
            while day <= as_of {
                out[e].secondments.push(Secondment {
                    institution: t.centre.clone(),
                    start: day,
                    end: Some(day),
                });
                day += Duration::days(10);
            }
        }
    }
    Staff {
        practitioners: out,
        physicians,
    }
}
