//! The state machines of the four tracked flows. Each flow is a FHIR Task whose
//! `businessStatus` carries our fine state and whose `status` carries the FHIR
//! task status that state maps to.

use crate::CareError;

/// What a Task tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Two-way referral (双向转诊).
    Referral,
    /// An order to a shared diagnostic centre (lab, imaging, ECG, pathology).
    Exam,
    /// Remote consultation (远程会诊).
    Consult,
    /// Acknowledgement of a critical value (危急值) by the ordering institution.
    CriticalAck,
}

/// Which side of a flow may take a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The institution that asked (Task.requester).
    Requester,
    /// The institution asked (Task.owner).
    Performer,
    /// Only the server (a report completes an exam).
    Server,
}

impl Flow {
    pub const ALL: [Flow; 4] = [Flow::Referral, Flow::Exam, Flow::Consult, Flow::CriticalAck];

    pub fn code(self) -> &'static str {
        match self {
            Flow::Referral => "referral",
            Flow::Exam => "exam",
            Flow::Consult => "consult",
            Flow::CriticalAck => "critical-ack",
        }
    }

    pub fn from_code(code: &str) -> Option<Flow> {
        Flow::ALL.into_iter().find(|f| f.code() == code)
    }

    pub fn label(self) -> &'static str {
        match self {
            Flow::Referral => "转诊",
            Flow::Exam => "检查检验申请",
            Flow::Consult => "远程会诊",
            Flow::CriticalAck => "危急值确认",
        }
    }

    /// Every state of the flow, in the order a page lists them.
    pub fn states(self) -> &'static [&'static str] {
        match self {
            Flow::Referral => &[
                "draft",
                "requested",
                "accepted",
                "rejected",
                "scheduled",
                "arrived",
                "completed",
                "cancelled",
            ],
            Flow::Exam => &[
                "requested",
                "collected",
                "in-transit",
                "received",
                "reported",
                "cancelled",
            ],
            Flow::Consult => &[
                "requested",
                "accepted",
                "rejected",
                "answered",
                "closed",
                "cancelled",
            ],
            Flow::CriticalAck => &["requested", "acknowledged"],
        }
    }

    /// The legal steps (from, to, who takes them).
    fn steps(self) -> &'static [(&'static str, &'static str, Side)] {
        use Side::*;
        match self {
            Flow::Referral => &[
                ("draft", "requested", Requester),
                ("draft", "cancelled", Requester),
                ("requested", "accepted", Performer),
                ("requested", "rejected", Performer),
                ("requested", "cancelled", Requester),
                ("accepted", "scheduled", Performer),
                // Green channel: the patient is taken in before a visit is booked.
                ("accepted", "arrived", Performer),
                ("accepted", "cancelled", Requester),
                ("scheduled", "arrived", Performer),
                ("scheduled", "cancelled", Requester),
                ("arrived", "completed", Performer),
            ],
            Flow::Exam => &[
                ("requested", "collected", Requester),
                ("requested", "cancelled", Requester),
                ("collected", "in-transit", Requester),
                // An ECG tracing or image is uploaded: no transport.
                ("collected", "received", Performer),
                ("collected", "cancelled", Requester),
                ("in-transit", "received", Performer),
                ("in-transit", "cancelled", Requester),
                ("received", "reported", Server),
                ("received", "cancelled", Performer),
            ],
            Flow::Consult => &[
                ("requested", "accepted", Performer),
                ("requested", "rejected", Performer),
                ("requested", "cancelled", Requester),
                ("accepted", "answered", Performer),
                ("accepted", "cancelled", Requester),
                ("answered", "closed", Requester),
            ],
            // The owner of an acknowledgement task is the ordering institution.
            Flow::CriticalAck => &[("requested", "acknowledged", Performer)],
        }
    }

    pub fn is_state(self, state: &str) -> bool {
        self.states().contains(&state)
    }

    /// States a new Task may start in (through the API).
    pub fn is_initial(self, state: &str) -> bool {
        match self {
            Flow::Referral => state == "draft" || state == "requested",
            _ => state == "requested",
        }
    }

    pub fn is_terminal(self, state: &str) -> bool {
        matches!(
            state,
            "rejected" | "completed" | "cancelled" | "reported" | "closed" | "acknowledged"
        )
    }

    /// States in which the other side owes an answer by the deadline.
    pub fn awaits_response(self, state: &str) -> bool {
        match self {
            Flow::Exam => state == "received",
            _ => state == "requested",
        }
    }

    /// Who may move the flow from `from` to `to`, or why nobody may.
    pub fn step(self, from: &str, to: &str) -> Result<Side, CareError> {
        if !self.is_state(to) {
            return Err(CareError::invalid(
                "unknown-state",
                format!("{}没有状态“{to}”", self.label()),
            ));
        }
        self.steps()
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .map(|(_, _, side)| *side)
            .ok_or_else(|| {
                CareError::conflict(
                    "illegal-transition",
                    format!(
                        "{}不能从“{}”变为“{}”",
                        self.label(),
                        state_label(from),
                        state_label(to)
                    ),
                )
            })
    }

    /// The FHIR Task.status a state maps to.
    pub fn task_status(self, state: &str) -> &'static str {
        match state {
            "draft" => "draft",
            "requested" => "requested",
            "accepted" => "accepted",
            "rejected" => "rejected",
            "scheduled" => "ready",
            "received" => "received",
            "arrived" | "collected" | "in-transit" | "answered" => "in-progress",
            "cancelled" => "cancelled",
            _ => "completed",
        }
    }
}

/// The Chinese name of a state (for pages and messages).
pub fn state_label(state: &str) -> &'static str {
    match state {
        "draft" => "草稿",
        "requested" => "已申请",
        "accepted" => "已接收",
        "rejected" => "已拒绝",
        "scheduled" => "已预约",
        "arrived" => "已到院",
        "completed" => "已完成",
        "cancelled" => "已取消",
        "collected" => "已采集",
        "in-transit" => "运送中",
        "received" => "已签收",
        "reported" => "已报告",
        "answered" => "已出具意见",
        "closed" => "已结束",
        "acknowledged" => "已确认",
        _ => "未知状态",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_names_known_states() {
        for f in Flow::ALL {
            for (from, to, _) in f.steps() {
                assert!(f.is_state(from) && f.is_state(to), "{f:?} {from}->{to}");
                assert_ne!(state_label(to), "未知状态");
            }
            for s in f.states() {
                // Every non-initial state can be reached; every non-terminal state can be left.
                let reached = f.is_initial(s) || f.steps().iter().any(|(_, t, _)| t == s);
                let left = f.is_terminal(s) || f.steps().iter().any(|(fr, _, _)| fr == s);
                assert!(reached && left, "{f:?} {s}");
            }
        }
    }

    #[test]
    fn illegal_steps_are_conflicts_with_chinese_messages() {
        let e = Flow::Referral.step("requested", "arrived").unwrap_err();
        assert_eq!(e.status, 409);
        assert!(
            e.zh.contains("已申请") && e.zh.contains("已到院"),
            "{}",
            e.zh
        );
        assert_eq!(
            Flow::Referral.step("requested", "accepted").unwrap(),
            Side::Performer
        );
        assert_eq!(
            Flow::Exam.step("received", "reported").unwrap(),
            Side::Server
        );
        assert_eq!(
            Flow::Referral
                .step("completed", "bogus")
                .unwrap_err()
                .status,
            422
        );
        assert!(Flow::Referral.step("completed", "cancelled").is_err());
    }

    #[test]
    fn task_status_follows_the_fhir_value_set() {
        let fhir = [
            "draft",
            "requested",
            "received",
            "accepted",
            "rejected",
            "ready",
            "cancelled",
            "in-progress",
            "on-hold",
            "failed",
            "completed",
            "entered-in-error",
        ];
        for f in Flow::ALL {
            for s in f.states() {
                assert!(fhir.contains(&f.task_status(s)), "{s}");
            }
        }
    }
}
