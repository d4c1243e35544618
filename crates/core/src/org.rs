//! The organisation tree: county → medical community → institution → department.

use crate::{DivisionCode, DomainError};
use serde::{Deserialize, Serialize};

/// The three tiers of county care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    County,
    Township,
    Village,
}

impl Tier {
    pub fn code(self) -> &'static str {
        match self {
            Tier::County => "county",
            Tier::Township => "township",
            Tier::Village => "village",
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            Tier::County => "县级",
            Tier::Township => "乡镇级",
            Tier::Village => "村级",
        }
    }
    pub fn from_code(s: &str) -> Option<Tier> {
        [Tier::County, Tier::Township, Tier::Village]
            .into_iter()
            .find(|t| t.code() == s)
    }
    /// Height in the referral ladder: village 1, township 2, county 3 (up-referral
    /// goes to a higher level, down-referral to a lower one).
    pub fn level(self) -> u8 {
        match self {
            Tier::Village => 1,
            Tier::Township => 2,
            Tier::County => 3,
        }
    }
    /// Primary level (基层) = township and village.
    pub fn is_primary(self) -> bool {
        !matches!(self, Tier::County)
    }
}

/// What an organisation node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrgKind {
    /// The county itself (a health commission's jurisdiction).
    County,
    /// A medical community (医共体).
    Community,
    GeneralHospital,
    TcmHospital,
    MaternalChildHospital,
    TownshipCentre,
    CommunityCentre,
    VillageClinic,
    Cdc,
    MentalHealth,
    Department,
    /// Care providers outside the county (县外医疗机构), recorded so that
    /// out-of-county care is attributed but never counted as a county tier.
    External,
}

pub const ALL_KINDS: [OrgKind; 12] = [
    OrgKind::County,
    OrgKind::Community,
    OrgKind::GeneralHospital,
    OrgKind::TcmHospital,
    OrgKind::MaternalChildHospital,
    OrgKind::TownshipCentre,
    OrgKind::CommunityCentre,
    OrgKind::VillageClinic,
    OrgKind::Cdc,
    OrgKind::MentalHealth,
    OrgKind::Department,
    OrgKind::External,
];

impl OrgKind {
    pub fn code(self) -> &'static str {
        match self {
            OrgKind::County => "county",
            OrgKind::Community => "community",
            OrgKind::GeneralHospital => "general-hospital",
            OrgKind::TcmHospital => "tcm-hospital",
            OrgKind::MaternalChildHospital => "maternal-child-hospital",
            OrgKind::TownshipCentre => "township-centre",
            OrgKind::CommunityCentre => "community-centre",
            OrgKind::VillageClinic => "village-clinic",
            OrgKind::Cdc => "cdc",
            OrgKind::MentalHealth => "mental-health",
            OrgKind::Department => "department",
            OrgKind::External => "external",
        }
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            OrgKind::County => "县(区)",
            OrgKind::Community => "医共体",
            OrgKind::GeneralHospital => "综合医院",
            OrgKind::TcmHospital => "中医医院",
            OrgKind::MaternalChildHospital => "妇幼保健院",
            OrgKind::TownshipCentre => "乡镇卫生院",
            OrgKind::CommunityCentre => "社区卫生服务中心",
            OrgKind::VillageClinic => "村卫生室",
            OrgKind::Cdc => "疾病预防控制中心",
            OrgKind::MentalHealth => "精神卫生机构",
            OrgKind::Department => "科室",
            OrgKind::External => "县外医疗机构",
        }
    }
    pub fn from_code(s: &str) -> Option<OrgKind> {
        ALL_KINDS.into_iter().find(|k| k.code() == s)
    }
    /// The care tier of an institution kind; `None` for grouping nodes and departments.
    pub fn tier(self) -> Option<Tier> {
        match self {
            OrgKind::GeneralHospital
            | OrgKind::TcmHospital
            | OrgKind::MaternalChildHospital
            | OrgKind::Cdc
            | OrgKind::MentalHealth => Some(Tier::County),
            OrgKind::TownshipCentre | OrgKind::CommunityCentre => Some(Tier::Township),
            OrgKind::VillageClinic => Some(Tier::Village),
            OrgKind::County | OrgKind::Community | OrgKind::Department | OrgKind::External => None,
        }
    }
    /// Treats patients (owns encounters and departments).
    pub fn is_institution(self) -> bool {
        self.tier().is_some() || self == OrgKind::External
    }
    /// Public-health bodies that may join a community without treating patients.
    pub fn is_public_health(self) -> bool {
        matches!(
            self,
            OrgKind::Cdc | OrgKind::MentalHealth | OrgKind::MaternalChildHospital
        )
    }
}

/// One node of the organisation tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub kind: OrgKind,
    /// Parent node: county for a community, community for an institution,
    /// institution for a department; `None` only for the county.
    pub parent: Option<String>,
    /// Division code (county code for the county; township code for institutions if known).
    pub division: Option<DivisionCode>,
    /// The community's lead hospital (牵头医院); only on communities.
    pub lead: bool,
    /// 县域医疗次中心 (sub-centre), flagged on township centres.
    pub sub_centre: bool,
    /// Official institution code (组织机构代码 / 统一社会信用代码), if any.
    pub code: Option<String>,
}

impl Organization {
    pub fn tier(&self) -> Option<Tier> {
        self.kind.tier()
    }

    /// Checks the node's own fields and that it hangs under the right kind of parent.
    pub fn validate(&self, parent_kind: Option<OrgKind>) -> Result<(), DomainError> {
        if self.name.trim().is_empty() {
            return Err(DomainError::invalid("org-name", "机构名称不能为空"));
        }
        if self.name.chars().count() > 100 {
            return Err(DomainError::invalid("too-long", "机构名称过长(最多100字)"));
        }
        let ok = match (self.kind, parent_kind) {
            (OrgKind::County, None) => true,
            (OrgKind::Community, Some(OrgKind::County)) => true,
            (OrgKind::Department, Some(p)) => p.is_institution(),
            (OrgKind::External, Some(OrgKind::County)) => true,
            // Institutions belong to a community; a few stand alone under the county.
            (k, Some(OrgKind::Community | OrgKind::County)) if k.tier().is_some() => true,
            _ => false,
        };
        if !ok {
            return Err(DomainError::invalid(
                "org-hierarchy",
                format!(
                    "{}不能隶属于{}",
                    self.kind.label_zh(),
                    parent_kind.map_or("(无上级)", OrgKind::label_zh)
                ),
            ));
        }
        if self.sub_centre && self.kind != OrgKind::TownshipCentre {
            return Err(DomainError::invalid(
                "org-subcentre",
                "只有乡镇卫生院可以标记为县域医疗次中心",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(kind: OrgKind) -> Organization {
        Organization {
            id: "x".into(),
            name: "测试".into(),
            kind,
            parent: None,
            division: None,
            lead: false,
            sub_centre: false,
            code: None,
        }
    }

    #[test]
    fn tiers_of_kinds() {
        assert_eq!(OrgKind::VillageClinic.tier(), Some(Tier::Village));
        assert_eq!(OrgKind::TownshipCentre.tier(), Some(Tier::Township));
        assert_eq!(OrgKind::TcmHospital.tier(), Some(Tier::County));
        assert_eq!(OrgKind::Community.tier(), None);
        for k in ALL_KINDS {
            assert_eq!(OrgKind::from_code(k.code()), Some(k));
        }
    }

    #[test]
    fn hierarchy_rules() {
        assert!(
            org(OrgKind::Community)
                .validate(Some(OrgKind::County))
                .is_ok()
        );
        assert!(
            org(OrgKind::VillageClinic)
                .validate(Some(OrgKind::Community))
                .is_ok()
        );
        assert!(
            org(OrgKind::Department)
                .validate(Some(OrgKind::GeneralHospital))
                .is_ok()
        );
        assert!(
            org(OrgKind::Department)
                .validate(Some(OrgKind::Community))
                .is_err()
        );
        assert!(
            org(OrgKind::Community)
                .validate(Some(OrgKind::Community))
                .is_err()
        );
        assert!(org(OrgKind::County).validate(None).is_ok());
        let mut v = org(OrgKind::VillageClinic);
        v.sub_centre = true;
        assert_eq!(
            v.validate(Some(OrgKind::Community)).unwrap_err().code(),
            "org-subcentre"
        );
    }
}
