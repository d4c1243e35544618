//! The exam catalogue of the shared diagnostic centres: items a member can order,
//! the centre that reads them, their fee, and the analytes a report carries with
//! reference ranges and critical limits (危急值界限).
//!
//! Codes: our own item code system; LOINC where the item has a well-known code.

/// The kind of shared centre that performs an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CentreKind {
    Lab,
    Imaging,
    Ecg,
    Pathology,
}

impl CentreKind {
    pub const ALL: [CentreKind; 4] = [
        CentreKind::Lab,
        CentreKind::Imaging,
        CentreKind::Ecg,
        CentreKind::Pathology,
    ];
    pub fn code(self) -> &'static str {
        match self {
            CentreKind::Lab => "lab",
            CentreKind::Imaging => "imaging",
            CentreKind::Ecg => "ecg",
            CentreKind::Pathology => "pathology",
        }
    }
    pub fn from_code(c: &str) -> Option<CentreKind> {
        CentreKind::ALL.into_iter().find(|k| k.code() == c)
    }
    pub fn label(self) -> &'static str {
        match self {
            CentreKind::Lab => "检验中心",
            CentreKind::Imaging => "影像中心",
            CentreKind::Ecg => "心电中心",
            CentreKind::Pathology => "病理中心",
        }
    }
    /// The DiagnosticReport.category code (HL7 v2-0074 diagnostic service section).
    pub fn v2_section(self) -> &'static str {
        match self {
            CentreKind::Lab => "LAB",
            CentreKind::Imaging => "RAD",
            CentreKind::Ecg => "EC",
            CentreKind::Pathology => "PAT",
        }
    }
}

/// One measured result of an item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Analyte {
    pub code: &'static str,
    pub loinc: Option<&'static str>,
    pub name: &'static str,
    pub unit: &'static str,
    pub low: f64,
    pub high: f64,
    pub critical_low: Option<f64>,
    pub critical_high: Option<f64>,
}

impl Analyte {
    /// HL7 v3 ObservationInterpretation code of a value: LL/HH beyond the
    /// critical limits, L/H outside the reference range, N inside.
    pub fn interpret(&self, value: f64) -> &'static str {
        if self.critical_low.is_some_and(|c| value <= c) {
            "LL"
        } else if self.critical_high.is_some_and(|c| value >= c) {
            "HH"
        } else if value < self.low {
            "L"
        } else if value > self.high {
            "H"
        } else {
            "N"
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExamItem {
    pub code: &'static str,
    pub name: &'static str,
    pub kind: CentreKind,
    pub loinc: Option<&'static str>,
    /// Fee in fen (what a repeated exam costs the patient and the fund).
    pub fee_fen: i64,
    pub analytes: &'static [Analyte],
}

const fn a(
    code: &'static str,
    loinc: Option<&'static str>,
    name: &'static str,
    unit: &'static str,
    range: (f64, f64),
    critical: (Option<f64>, Option<f64>),
) -> Analyte {
    Analyte {
        code,
        loinc,
        name,
        unit,
        low: range.0,
        high: range.1,
        critical_low: critical.0,
        critical_high: critical.1,
    }
}

const CBC: &[Analyte] = &[
    a(
        "WBC",
        Some("6690-2"),
        "白细胞计数",
        "10*9/L",
        (3.5, 9.5),
        (Some(1.0), Some(30.0)),
    ),
    a(
        "HGB",
        Some("718-7"),
        "血红蛋白",
        "g/L",
        (115.0, 175.0),
        (Some(50.0), None),
    ),
    a(
        "PLT",
        Some("777-3"),
        "血小板计数",
        "10*9/L",
        (125.0, 350.0),
        (Some(20.0), Some(1000.0)),
    ),
];
const POTASSIUM: &[Analyte] = &[a(
    "K",
    Some("2823-3"),
    "钾",
    "mmol/L",
    (3.5, 5.3),
    (Some(2.8), Some(6.2)),
)];
const GLUCOSE: &[Analyte] = &[a(
    "GLU",
    Some("2345-7"),
    "葡萄糖",
    "mmol/L",
    (3.9, 6.1),
    (Some(2.8), Some(22.2)),
)];
const CREATININE: &[Analyte] = &[a(
    "CREA",
    Some("2160-0"),
    "肌酐",
    "umol/L",
    (57.0, 111.0),
    (None, Some(707.0)),
)];
const TROPONIN: &[Analyte] = &[a(
    "CTNI",
    Some("10839-9"),
    "肌钙蛋白I",
    "ng/mL",
    (0.0, 0.04),
    (None, Some(0.5)),
)];
const HBA1C: &[Analyte] = &[a(
    "HBA1C",
    Some("4548-4"),
    "糖化血红蛋白",
    "%",
    (4.0, 6.0),
    (None, None),
)];
const ALT: &[Analyte] = &[a(
    "ALT",
    Some("1742-6"),
    "丙氨酸氨基转移酶",
    "U/L",
    (9.0, 50.0),
    (None, None),
)];
const ECG: &[Analyte] = &[a(
    "HR",
    Some("8867-4"),
    "心率",
    "/min",
    (60.0, 100.0),
    (Some(40.0), Some(180.0)),
)];

/// Every orderable item.
pub const CATALOGUE: &[ExamItem] = &[
    ExamItem {
        code: "CBC",
        name: "血常规",
        kind: CentreKind::Lab,
        loinc: Some("58410-2"),
        fee_fen: 2_000,
        analytes: CBC,
    },
    ExamItem {
        code: "K",
        name: "血钾测定",
        kind: CentreKind::Lab,
        loinc: Some("2823-3"),
        fee_fen: 1_000,
        analytes: POTASSIUM,
    },
    ExamItem {
        code: "GLU",
        name: "空腹血糖",
        kind: CentreKind::Lab,
        loinc: Some("2345-7"),
        fee_fen: 500,
        analytes: GLUCOSE,
    },
    ExamItem {
        code: "CREA",
        name: "血肌酐",
        kind: CentreKind::Lab,
        loinc: Some("2160-0"),
        fee_fen: 800,
        analytes: CREATININE,
    },
    ExamItem {
        code: "CTNI",
        name: "肌钙蛋白I",
        kind: CentreKind::Lab,
        loinc: Some("10839-9"),
        fee_fen: 8_000,
        analytes: TROPONIN,
    },
    ExamItem {
        code: "HBA1C",
        name: "糖化血红蛋白",
        kind: CentreKind::Lab,
        loinc: Some("4548-4"),
        fee_fen: 6_000,
        analytes: HBA1C,
    },
    ExamItem {
        code: "ALT",
        name: "肝功能(ALT)",
        kind: CentreKind::Lab,
        loinc: Some("1742-6"),
        fee_fen: 600,
        analytes: ALT,
    },
    ExamItem {
        code: "ECG12",
        name: "常规十二导联心电图",
        kind: CentreKind::Ecg,
        loinc: Some("11524-6"),
        fee_fen: 2_500,
        analytes: ECG,
    },
    ExamItem {
        code: "DR-CHEST",
        name: "胸部正位DR",
        kind: CentreKind::Imaging,
        loinc: None,
        fee_fen: 8_000,
        analytes: &[],
    },
    ExamItem {
        code: "CT-HEAD",
        name: "头颅CT平扫",
        kind: CentreKind::Imaging,
        loinc: None,
        fee_fen: 25_000,
        analytes: &[],
    },
    ExamItem {
        code: "US-ABD",
        name: "腹部彩超",
        kind: CentreKind::Imaging,
        loinc: None,
        fee_fen: 12_000,
        analytes: &[],
    },
    ExamItem {
        code: "PATH-TISSUE",
        name: "组织病理检查",
        kind: CentreKind::Pathology,
        loinc: None,
        fee_fen: 30_000,
        analytes: &[],
    },
];

pub fn item(code: &str) -> Option<&'static ExamItem> {
    CATALOGUE.iter().find(|i| i.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        let mut codes = std::collections::HashSet::new();
        for i in CATALOGUE {
            assert!(codes.insert(i.code), "duplicate {}", i.code);
            assert!(i.fee_fen > 0);
            for an in i.analytes {
                assert!(an.low <= an.high, "{}", an.code);
                assert!(an.critical_low.is_none_or(|c| c < an.low));
                assert!(an.critical_high.is_none_or(|c| c > an.high));
            }
        }
        for k in CentreKind::ALL {
            assert!(CATALOGUE.iter().any(|i| i.kind == k), "{k:?}");
        }
    }

    #[test]
    fn interpretation_uses_critical_limits() {
        let k = &item("K").unwrap().analytes[0];
        assert_eq!(k.interpret(2.5), "LL");
        assert_eq!(k.interpret(3.2), "L");
        assert_eq!(k.interpret(4.0), "N");
        assert_eq!(k.interpret(5.8), "H");
        assert_eq!(k.interpret(6.5), "HH");
    }
}
