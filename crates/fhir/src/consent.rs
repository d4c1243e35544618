//! A resident's privacy choices, as FHIR R4 Consent: which institutions may
//! not see the records other institutions hold about them.
//!
//! A Consent restricts sharing when it is `active`, its `provision.type` is
//! `deny`, and today falls in `provision.period` (when given). Without
//! `provision.actor` it denies every institution other than the one holding a
//! record; with actors it denies only the institutions they reference.

use serde_json::Value;

/// Whether `consent` keeps records held elsewhere from a reader at
/// `reader_institution` (`None`: a reader with no institution of their own,
/// such as the health commission) on `today` (`YYYY-MM-DD`).
pub fn denies(consent: &Value, reader_institution: Option<&str>, today: &str) -> bool {
    if consent["resourceType"] != "Consent" || consent["status"] != "active" {
        return false;
    }
    let provision = &consent["provision"];
    if provision["type"] != "deny" {
        return false;
    }
    let period = &provision["period"];
    let starts = period["start"].as_str().map(|s| &s[..s.len().min(10)]);
    let ends = period["end"].as_str().map(|s| &s[..s.len().min(10)]);
    if starts.is_some_and(|s| today < s) || ends.is_some_and(|e| today > e) {
        return false;
    }
    let actors: Vec<&str> = provision["actor"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["reference"]["reference"].as_str())
        .collect();
    actors.is_empty()
        || reader_institution.is_some_and(|inst| {
            actors
                .iter()
                .any(|r| r.strip_prefix("Organization/") == Some(inst))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn consent(provision: Value) -> Value {
        json!({ "resourceType": "Consent", "status": "active", "provision": provision })
    }

    #[test]
    fn deny_all_others_or_named_institutions() {
        let all = consent(json!({ "type": "deny" }));
        assert!(denies(&all, Some("t2"), "2026-11-25"));
        assert!(denies(&all, None, "2026-11-25"));
        let named = consent(json!({ "type": "deny", "actor": [{
            "role": { "text": "接收方" }, "reference": { "reference": "Organization/h1" } }] }));
        assert!(denies(&named, Some("h1"), "2026-11-25"));
        assert!(!denies(&named, Some("t2"), "2026-11-25"));
        let permit = consent(json!({ "type": "permit" }));
        assert!(!denies(&permit, Some("t2"), "2026-11-25"));
        let mut inactive = all.clone();
        inactive["status"] = json!("inactive");
        assert!(!denies(&inactive, Some("t2"), "2026-11-25"));
        let expired = consent(json!({ "type": "deny", "period": { "end": "2026-01-01" } }));
        assert!(!denies(&expired, Some("t2"), "2026-11-25"));
        let future = consent(json!({ "type": "deny", "period": { "start": "2027-01-01" } }));
        assert!(!denies(&future, Some("t2"), "2026-11-25"));
    }
}
