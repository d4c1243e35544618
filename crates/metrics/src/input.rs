//! The indicator input: what a full recompute reads of each resource. The
//! store keeps it beside the resource, written in the same transaction.
//!
//! Encounters, Claims, Tasks, DiagnosticReports and ServiceRequests are kept
//! as one short line holding exactly what their rules read ([`input_text`]);
//! a recompute runs the same rules on it ([`contributions`]) and reads a few
//! dozen bytes per resource instead of a kilobyte or two of JSON.
//! PractitionerRoles are few and are kept whole.

use crate::indicators::{self, Context, Sink};
use serde_json::Value as Json;
use std::borrow::Cow;

/// The types a full recompute reads: those with indicators, and the orders
/// (ServiceRequest) that reports and tasks are counted against.
pub const INPUT_TYPES: [&str; 6] = [
    "Encounter",
    "Claim",
    "DiagnosticReport",
    "Task",
    "PractitionerRole",
    "ServiceRequest",
];

pub fn is_input_type(rtype: &str) -> bool {
    INPUT_TYPES.contains(&rtype)
}

/// Names what stored inputs hold: inputs of another version are rebuilt from
/// the resources before a recompute reads them.
pub fn input_version() -> String {
    format!("{}:{}", indicators::INPUT_FORMAT, INPUT_TYPES.join(","))
}

/// The input of a resource given parsed and as its stored text; `None` for
/// types that are not inputs.
pub fn input_text<'a>(rtype: &str, body: &Json, text: &'a str) -> Option<Cow<'a, str>> {
    if indicators::has_input_line(rtype) {
        return indicators::input_of_json(rtype, body).map(Cow::Owned);
    }
    is_input_type(rtype).then_some(Cow::Borrowed(text))
}

/// [`input_text`] from the stored text alone (rebuilding inputs).
pub fn input_of_text<'a>(rtype: &str, text: &'a str) -> Option<Cow<'a, str>> {
    if indicators::has_input_line(rtype) {
        return indicators::input_of_text(rtype, text).map(Cow::Owned);
    }
    is_input_type(rtype).then_some(Cow::Borrowed(text))
}

/// The order (ServiceRequest id) a Task's or DiagnosticReport's input
/// refers to: a recompute counts the two together.
pub fn order_of(rtype: &str, input: &str) -> Option<String> {
    indicators::input_request(rtype, input)
}

/// The facts of a resource from its stored input: exactly those
/// [`indicators::contributions`] gives for the resource itself. `request`
/// gives the input of an order by its id (for tasks and reports).
pub fn contributions(
    rtype: &str,
    input: &str,
    request: &dyn Fn(&str) -> Option<String>,
    ctx: &Context<'_>,
    sink: &mut Sink<'_>,
) {
    if indicators::has_input_line(rtype) {
        indicators::contributions_of_input(rtype, input, request, ctx, sink);
    } else if is_input_type(rtype)
        && let Ok(v) = serde_json::from_str::<Json>(input)
    {
        indicators::contributions_each(rtype, &v, ctx, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The line format is stored: a change to it must come with a new
    /// [`indicators::INPUT_FORMAT`], so that stored lines are rebuilt.
    #[test]
    fn the_line_format_is_versioned() {
        let e = json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
            "subject": {"reference": "Patient/p1"},
            "class": {"code": "IMP"}, "serviceProvider": {"reference": "Organization/o-1"},
            "period": {"start": "2026-01-01T23:30:00+08:00", "end": "2026-01-05T01:00:00Z"},
            "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]}]});
        let text = e.to_string();
        let line = input_text("Encounter", &e, &text).unwrap();
        assert_eq!(line, "S|739617|739621|0|0|0|0|0|1|I10|o-1");
        assert_eq!(input_of_text("Encounter", &text), Some(line));
        assert_eq!(indicators::INPUT_FORMAT, 2);
        let c = json!({"resourceType": "Claim", "status": "active", "provider": {"reference": "Organization/x"},
            "created": "2026-03-31T20:00:00Z", "total": {"value": 12.5, "currency": "CNY"}});
        assert_eq!(
            input_of_text("Claim", &c.to_string()).unwrap(),
            "2026-04|1250|1|x"
        );
    }

    #[test]
    fn what_counts_nothing_has_an_empty_line() {
        let planned = json!({"resourceType": "Encounter", "status": "planned"});
        assert_eq!(
            input_of_text("Encounter", &planned.to_string()).unwrap(),
            ""
        );
        assert_eq!(input_of_text("Claim", "not json").unwrap(), "");
    }

    #[test]
    fn other_inputs_are_kept_whole() {
        let role = json!({"resourceType": "PractitionerRole", "id": "r", "active": true});
        let text = role.to_string();
        assert_eq!(
            input_text("PractitionerRole", &role, &text).as_deref(),
            Some(text.as_str())
        );
        // A Task that is neither a referral nor an exam counts nothing.
        let task = json!({"resourceType": "Task", "id": "t", "status": "requested"});
        assert_eq!(input_text("Task", &task, "").as_deref(), Some(""));
        assert_eq!(input_text("Patient", &json!({}), "{}"), None);
        assert!(input_version().starts_with("2:Encounter,Claim"));
    }
}
