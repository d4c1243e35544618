//! Appointments: Schedule (a clinic session plan), Slot (one bookable time) and
//! Appointment (a booking). A share of slots is held for referrals from member
//! units until a release time (号源下沉); a slot is booked at most once.

use crate::CareError;
use crate::codes::*;
use serde_json::{Value, json};
use yigong_fhir::extract::parse_reference;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub schedule: String,
    pub status: String,
    pub start: String,
    pub end: String,
    /// Held for referrals until this instant.
    pub held_until: Option<String>,
}

pub fn read_slot(v: &Value) -> Result<SlotView, CareError> {
    let schedule = v
        .get("schedule")
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str)
        .and_then(parse_reference)
        .filter(|(t, _)| *t == "Schedule")
        .map(|(_, id)| id.to_string())
        .ok_or_else(|| {
            CareError::invalid("missing-schedule", "号源(Slot)必须引用所属排班(Schedule)")
        })?;
    let status = v.get("status").and_then(Value::as_str).unwrap_or("");
    if !matches!(
        status,
        "free" | "busy" | "busy-unavailable" | "busy-tentative" | "entered-in-error"
    ) {
        return Err(CareError::invalid(
            "bad-slot-status",
            format!("号源状态“{status}”无效"),
        ));
    }
    let start = v.get("start").and_then(Value::as_str).unwrap_or("");
    let end = v.get("end").and_then(Value::as_str).unwrap_or("");
    match (crate::epoch(start), crate::epoch(end)) {
        (Some(s), Some(e)) if s < e => {}
        _ => {
            return Err(CareError::invalid(
                "bad-slot-time",
                "号源的开始与结束时间必须为带时区的时间,且开始早于结束",
            ));
        }
    }
    Ok(SlotView {
        schedule,
        status: status.to_string(),
        start: start.to_string(),
        end: end.to_string(),
        held_until: held_until(v),
    })
}

fn held_until(v: &Value) -> Option<String> {
    v.get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(EXT_HELD_FOR_REFERRAL))?
        .get("valueDateTime")?
        .as_str()
        .map(str::to_string)
}

/// A Schedule: a practitioner's clinic at an institution (lead-hospital
/// clinics, or an expert's clinic at a branch).
pub fn schedule(
    id: &str,
    practitioner: &str,
    institution: &str,
    service: &str,
    comment: &str,
) -> Value {
    json!({
        "resourceType": "Schedule",
        "id": id,
        "extension": [{"url": EXT_RECORDED_AT, "valueReference": {"reference": format!("Organization/{institution}")}}],
        "active": true,
        "serviceType": [{"text": service}],
        "actor": [{"reference": format!("Practitioner/{practitioner}")}],
        "comment": comment,
    })
}

pub fn slot(id: &str, schedule: &str, start: &str, end: &str, held_until: Option<&str>) -> Value {
    let mut s = json!({
        "resourceType": "Slot",
        "id": id,
        "schedule": {"reference": format!("Schedule/{schedule}")},
        "status": "free",
        "start": start,
        "end": end,
    });
    if let Some(u) = held_until {
        s["extension"] = json!([{"url": EXT_HELD_FOR_REFERRAL, "valueDateTime": u}]);
    }
    s
}

/// A booking of a slot, optionally for a referral.
pub fn appointment(
    id: &str,
    slot: &SlotView,
    slot_id: &str,
    patient: &str,
    referral: Option<&str>,
) -> Value {
    let mut a = json!({
        "resourceType": "Appointment",
        "id": id,
        "status": "booked",
        "slot": [{"reference": format!("Slot/{slot_id}")}],
        "start": slot.start,
        "end": slot.end,
        "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}],
    });
    if let Some(r) = referral {
        a["basedOn"] = json!([{"reference": format!("ServiceRequest/{r}")}]);
    }
    a
}

/// What the store checks on an Appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentView {
    pub status: String,
    pub slot: Option<String>,
    pub patient: Option<String>,
    pub referral: Option<String>,
}

pub fn read_appointment(v: &Value) -> AppointmentView {
    let first_ref = |key: &str, rtype: &str| {
        v.get(key)?
            .as_array()?
            .iter()
            .filter_map(|r| r.get("reference")?.as_str())
            .filter_map(parse_reference)
            .find(|(t, _)| *t == rtype)
            .map(|(_, id)| id.to_string())
    };
    AppointmentView {
        status: v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        slot: first_ref("slot", "Slot"),
        patient: yigong_fhir::extract::appointment_patient(v).map(str::to_string),
        referral: first_ref("basedOn", "ServiceRequest"),
    }
}

/// The Chinese name of an appointment status.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "booked" => "已预约",
        "arrived" => "已签到",
        "fulfilled" => "已就诊",
        "cancelled" => "已取消",
        "noshow" => "爽约",
        _ => "未知",
    }
}

/// Whether an appointment may move from `from` (None: being created) to `to`.
pub fn appointment_step(from: Option<&str>, to: &str) -> Result<(), CareError> {
    let ok = match from {
        None => to == "booked",
        Some("booked") => matches!(to, "arrived" | "cancelled" | "noshow" | "booked"),
        Some("arrived") => matches!(to, "fulfilled" | "arrived"),
        Some(f) => f == to,
    };
    if ok {
        return Ok(());
    }
    Err(match from {
        None => CareError::invalid("bad-appointment-status", "新预约的状态必须为 booked"),
        Some(f) => CareError::conflict(
            "illegal-transition",
            format!("预约不能从“{}”变为“{}”", status_label(f), status_label(to)),
        ),
    })
}

/// Whether an appointment status keeps its slot taken.
pub fn holds_slot(status: &str) -> bool {
    matches!(status, "booked" | "arrived" | "fulfilled" | "noshow")
}

/// Whether a slot may be booked now (by a referral or by the public).
pub fn may_book(slot: &SlotView, now: &str, for_referral: bool) -> Result<(), CareError> {
    if slot.status != "free" {
        return Err(CareError::conflict(
            "slot-taken",
            "该号源已被预约,请选择其他号源",
        ));
    }
    if crate::epoch(&slot.end).is_some_and(|e| crate::epoch(now).is_some_and(|n| n >= e)) {
        return Err(CareError::conflict("slot-past", "该号源时间已过,不能预约"));
    }
    if let Some(until) = &slot.held_until
        && !for_referral
        && crate::epoch(now) < crate::epoch(until)
    {
        return Err(CareError::conflict(
            "slot-held",
            format!("该号源为医共体成员单位转诊预留,{until} 起对外开放"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_slots_open_to_the_public_at_release() {
        let s = slot(
            "s1",
            "sch",
            "2026-12-01T01:00:00Z",
            "2026-12-01T01:15:00Z",
            Some("2026-11-30T00:00:00Z"),
        );
        let v = read_slot(&s).unwrap();
        assert_eq!(
            may_book(&v, "2026-11-29T00:00:00Z", false)
                .unwrap_err()
                .code,
            "slot-held"
        );
        assert!(may_book(&v, "2026-11-29T00:00:00Z", true).is_ok());
        assert!(may_book(&v, "2026-11-30T00:00:01Z", false).is_ok());
        assert_eq!(
            may_book(&v, "2026-12-02T00:00:00Z", true).unwrap_err().code,
            "slot-past"
        );
        let busy = SlotView {
            status: "busy".into(),
            ..v
        };
        assert_eq!(
            may_book(&busy, "2026-11-29T00:00:00Z", true)
                .unwrap_err()
                .status,
            409
        );
    }

    #[test]
    fn appointment_steps() {
        assert!(appointment_step(None, "booked").is_ok());
        assert!(appointment_step(None, "arrived").is_err());
        assert!(appointment_step(Some("booked"), "arrived").is_ok());
        assert!(appointment_step(Some("arrived"), "fulfilled").is_ok());
        assert_eq!(
            appointment_step(Some("cancelled"), "booked")
                .unwrap_err()
                .status,
            409
        );
        let bad = json!({"resourceType": "Slot", "schedule": {"reference": "Schedule/x"}, "status": "free", "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T01:00:00Z"});
        assert_eq!(read_slot(&bad).unwrap_err().code, "bad-slot-time");
    }
}
