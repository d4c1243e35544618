//! Identifier systems, code systems and extension URLs used by yigong's FHIR face.
//! National systems are used where they exist (ICD-10, v3 ActCode, UCUM); the
//! rest live under the project's own namespace.

pub const BASE: &str = "https://yigong.org.cn/fhir";
/// GB 11643 resident identity number (居民身份证号码).
pub const SID_RESIDENT_ID: &str = "https://yigong.org.cn/fhir/sid/resident-id";
/// Electronic health card number (电子健康卡号) of a master person.
pub const SID_HEALTH_CARD: &str = "https://yigong.org.cn/fhir/sid/health-card";
/// Tags on records whose identity is not verified.
pub const CS_IDENTITY_STATUS: &str = "https://yigong.org.cn/fhir/CodeSystem/identity-status";
/// A resident ID number as typed that fails its GB 11643 check: kept for look-up, never trusted.
pub const SID_RESIDENT_ID_UNVERIFIED: &str =
    "https://yigong.org.cn/fhir/sid/resident-id-unverified";
/// Basic medical insurance number (医保号).
pub const SID_INSURANCE: &str = "https://yigong.org.cn/fhir/sid/insurance-number";
/// Household number (户号).
pub const SID_HOUSEHOLD: &str = "https://yigong.org.cn/fhir/sid/household";
/// Unified social credit code of an institution (统一社会信用代码).
pub const SID_ORG_CODE: &str = "https://yigong.org.cn/fhir/sid/uscc";
/// Practising licence number (执业证书编码).
pub const SID_LICENCE: &str = "https://yigong.org.cn/fhir/sid/practising-licence";
/// GB/T 2260 administrative division code.
pub const SID_DIVISION: &str = "https://yigong.org.cn/fhir/sid/gbt2260";

pub const CS_ORG_KIND: &str = "https://yigong.org.cn/fhir/CodeSystem/org-kind";
pub const CS_ORG_TIER: &str = "https://yigong.org.cn/fhir/CodeSystem/org-tier";
pub const CS_PRACTITIONER_ROLE: &str = "https://yigong.org.cn/fhir/CodeSystem/practitioner-role";
pub const CS_TITLE: &str = "https://yigong.org.cn/fhir/CodeSystem/professional-title";
pub const CS_INSURANCE_SCHEME: &str = "https://yigong.org.cn/fhir/CodeSystem/insurance-scheme";
pub const CS_HL7_ORG_TYPE: &str = "http://terminology.hl7.org/CodeSystem/organization-type";
pub const CS_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const CS_ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
pub const CS_CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
pub const CS_CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";

pub const EXT_LEAD_HOSPITAL: &str = "https://yigong.org.cn/fhir/StructureDefinition/lead-hospital";
pub const EXT_SUB_CENTRE: &str = "https://yigong.org.cn/fhir/StructureDefinition/sub-centre";
pub const EXT_DIVISION: &str = "https://yigong.org.cn/fhir/StructureDefinition/division-code";
pub const EXT_VILLAGE: &str = "https://yigong.org.cn/fhir/StructureDefinition/household-village";
pub const EXT_INSURANCE: &str =
    "https://yigong.org.cn/fhir/StructureDefinition/insurance-enrolment";
pub const EXT_IN_COUNTY: &str = "https://yigong.org.cn/fhir/StructureDefinition/in-county";
pub const EXT_CHARGES: &str = "https://yigong.org.cn/fhir/StructureDefinition/charges";
pub const EXT_SECONDMENT: &str = "https://yigong.org.cn/fhir/StructureDefinition/secondment";
pub const EXT_RECORDED_AT: &str = "https://yigong.org.cn/fhir/StructureDefinition/recorded-at";
pub const EXT_CHRONIC: &str = "https://yigong.org.cn/fhir/StructureDefinition/chronic-managed";

/// The charge parts carried as sub-extensions of [`EXT_CHARGES`].
pub const CHARGE_PARTS: [&str; 5] = [
    "drugs",
    "consumables",
    "exams",
    "services",
    "insurance-paid",
];
