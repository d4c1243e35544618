//! Assessment and escalation: the notify / warn / summon rules (通报 → 预警 →
//! 约谈) that escalate an institution or community missing a target for N
//! consecutive periods, and the assessment cycle (自评 → 考核 → 结果评定 →
//! 反馈改进) as a state machine with a deadline per step. Pure: callers pass
//! the history and the dates.

use crate::Direction;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a rule, a history or a cycle step is refused (Chinese messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscalationError {
    #[error("预警规则有误（指标 {indicator}）：{reason}")]
    Rule { indicator: String, reason: String },
    #[error("考核期序列必须按时间严格递增且不重复（第 {0} 个考核期与前一个顺序不对）")]
    Unordered(usize),
    #[error("考核环节“{step}”的期限天数必须至少为 1（收到 {days}）")]
    Duration { step: &'static str, days: u32 },
    #[error("日期超出可表示范围")]
    DateOverflow,
    #[error("不能从“{from}”转到“{to}”：只能进入下一环节“{next}”")]
    IllegalTransition {
        from: &'static str,
        to: &'static str,
        next: &'static str,
    },
    #[error("考核周期已完成，不能再转换环节")]
    Closed,
    #[error("转换日期 {on} 早于{what} {earlier}")]
    DateBackwards {
        on: NaiveDate,
        what: &'static str,
        earlier: NaiveDate,
    },
}

/// An escalation level, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 通报
    Notify,
    /// 预警
    Warn,
    /// 约谈
    Summon,
}

impl Level {
    /// 通报 / 预警 / 约谈.
    pub fn name_zh(self) -> &'static str {
        match self {
            Level::Notify => "通报",
            Level::Warn => "预警",
            Level::Summon => "约谈",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name_zh())
    }
}

/// How a period without data counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingData {
    /// Counts as a missed period (reason: 无数据) — not reporting is no excuse.
    CountAsMissed,
    /// Skipped: neither extends nor breaks the run of missed periods.
    Skip,
}

/// An escalation rule (data, e.g. from a configuration file): the indicator's
/// target and direction, and after how many consecutive missed periods each
/// level is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    pub indicator: String,
    /// The target in the indicator's unit (e.g. permille 850 for 85%).
    pub target: i64,
    pub direction: Direction,
    /// Consecutive missed periods for 通报 (≥ 1).
    pub notify_after: u32,
    /// … for 预警 (≥ `notify_after`).
    pub warn_after: u32,
    /// … for 约谈 (≥ `warn_after`).
    pub summon_after: u32,
    pub missing: MissingData,
}

impl EscalationRule {
    /// Checks the rule: an indicator is named and 1 ≤ notify ≤ warn ≤ summon.
    pub fn check(&self) -> Result<(), EscalationError> {
        let err = |reason: String| EscalationError::Rule {
            indicator: self.indicator.clone(),
            reason,
        };
        if self.indicator.trim().is_empty() {
            return Err(err("未指定指标".into()));
        }
        if self.notify_after == 0 {
            return Err(err("通报所需的连续未达标期数至少为 1".into()));
        }
        if !(self.notify_after <= self.warn_after && self.warn_after <= self.summon_after) {
            return Err(err(format!(
                "连续未达标期数须满足 通报 ≤ 预警 ≤ 约谈（收到 {} / {} / {}）",
                self.notify_after, self.warn_after, self.summon_after
            )));
        }
        Ok(())
    }

    /// The level reached after `streak` consecutive missed periods.
    pub fn level(&self, streak: u32) -> Option<Level> {
        if streak >= self.summon_after {
            Some(Level::Summon)
        } else if streak >= self.warn_after {
            Some(Level::Warn)
        } else if streak >= self.notify_after {
            Some(Level::Notify)
        } else {
            None
        }
    }
}

/// How one period counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Target met: the run of missed periods ends.
    Met,
    /// Target missed.
    Missed,
    /// No data, counted as missed (reason: 无数据).
    MissedNoData,
    /// No data, skipped.
    Skipped,
}

/// One period of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodRecord<P> {
    pub period: P,
    pub value: Option<i64>,
    pub outcome: Outcome,
    /// Consecutive missed periods up to and including this one.
    pub streak: u32,
    /// The level in force after this period.
    pub level: Option<Level>,
}

/// The escalation state after a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escalation<P> {
    /// The level now (`None`: no escalation).
    pub level: Option<Level>,
    /// Consecutive missed periods at the end of the history.
    pub streak: u32,
    /// The missed periods of the current run, oldest first.
    pub missed: Vec<P>,
    /// The period at which each level of the current run was first reached.
    pub steps: Vec<(Level, P)>,
    /// Every period with how it counted.
    pub records: Vec<PeriodRecord<P>>,
}

/// Applies `rule` to `history` (one entry per period, oldest first, strictly
/// increasing; `None` = no data). Callers pass every period of the span,
/// with `None` for a period without data, so that "consecutive" is meaningful.
pub fn escalation<P: Clone + Ord>(
    history: &[(P, Option<i64>)],
    rule: &EscalationRule,
) -> Result<Escalation<P>, EscalationError> {
    rule.check()?;
    for (i, w) in history.windows(2).enumerate() {
        if w[0].0 >= w[1].0 {
            return Err(EscalationError::Unordered(i + 2));
        }
    }
    let mut streak: u32 = 0;
    let mut missed: Vec<P> = Vec::new();
    let mut steps: Vec<(Level, P)> = Vec::new();
    let mut records = Vec::with_capacity(history.len());
    for (period, value) in history {
        let outcome = match value {
            Some(v) if rule.direction.meets(*v, rule.target) => Outcome::Met,
            Some(_) => Outcome::Missed,
            None => match rule.missing {
                MissingData::CountAsMissed => Outcome::MissedNoData,
                MissingData::Skip => Outcome::Skipped,
            },
        };
        match outcome {
            Outcome::Met => {
                streak = 0;
                missed.clear();
                steps.clear();
            }
            Outcome::Missed | Outcome::MissedNoData => {
                streak = streak.saturating_add(1);
                missed.push(period.clone());
                if let Some(l) = rule.level(streak) {
                    // Record each level reached (a rule with equal counts
                    // reaches several levels in one period).
                    for lv in [Level::Notify, Level::Warn, Level::Summon] {
                        if lv <= l && !steps.iter().any(|(s, _)| *s == lv) {
                            steps.push((lv, period.clone()));
                        }
                    }
                }
            }
            Outcome::Skipped => {}
        }
        records.push(PeriodRecord {
            period: period.clone(),
            value: *value,
            outcome,
            streak,
            level: rule.level(streak),
        });
    }
    Ok(Escalation {
        level: rule.level(streak),
        streak,
        missed,
        steps,
        records,
    })
}

/// A step of the assessment cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// 自评
    SelfEvaluation,
    /// 实施考核
    Assessment,
    /// 结果评定
    Result,
    /// 反馈改进
    Feedback,
    /// 已完成
    Closed,
}

impl Step {
    /// The steps that have a deadline, in order.
    pub const WORKING: [Step; 4] = [
        Step::SelfEvaluation,
        Step::Assessment,
        Step::Result,
        Step::Feedback,
    ];

    /// The Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Step::SelfEvaluation => "自评",
            Step::Assessment => "实施考核",
            Step::Result => "结果评定",
            Step::Feedback => "反馈改进",
            Step::Closed => "已完成",
        }
    }

    /// The only legal next step (`None` after `Closed`).
    pub fn next(self) -> Option<Step> {
        match self {
            Step::SelfEvaluation => Some(Step::Assessment),
            Step::Assessment => Some(Step::Result),
            Step::Result => Some(Step::Feedback),
            Step::Feedback => Some(Step::Closed),
            Step::Closed => None,
        }
    }

    fn index(self) -> Option<usize> {
        Step::WORKING.iter().position(|s| *s == self)
    }
}

/// Days allowed for each working step, counted inclusively: a step of 15 days
/// starting on 1 January is due on 15 January.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDays {
    pub self_evaluation: u32,
    pub assessment: u32,
    pub result: u32,
    pub feedback: u32,
}

/// A recorded transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub from: Step,
    pub to: Step,
    pub on: NaiveDate,
    /// Days after the deadline of `from` (0 when on time).
    pub late_days: i64,
}

/// One assessment cycle: the current step, the deadline of each step (fixed
/// when the cycle is planned) and the record of transitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cycle {
    start: NaiveDate,
    due: [NaiveDate; 4],
    step: Step,
    log: Vec<Transition>,
}

impl Cycle {
    /// Plans a cycle starting on `start`: each step begins the day after the
    /// previous one's deadline and lasts its number of days (≥ 1).
    pub fn new(start: NaiveDate, days: StepDays) -> Result<Cycle, EscalationError> {
        let list = [
            days.self_evaluation,
            days.assessment,
            days.result,
            days.feedback,
        ];
        let mut due = [start; 4];
        let mut begin = start;
        for (i, d) in list.into_iter().enumerate() {
            if d == 0 {
                return Err(EscalationError::Duration {
                    step: Step::WORKING[i].name_zh(),
                    days: d,
                });
            }
            due[i] = begin
                .checked_add_days(Days::new(u64::from(d) - 1))
                .ok_or(EscalationError::DateOverflow)?;
            begin = due[i]
                .checked_add_days(Days::new(1))
                .ok_or(EscalationError::DateOverflow)?;
        }
        Ok(Cycle {
            start,
            due,
            step: Step::SelfEvaluation,
            log: Vec::new(),
        })
    }

    pub fn start(&self) -> NaiveDate {
        self.start
    }

    /// The current step.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The deadline of `step` (`None` for `Closed`).
    pub fn due(&self, step: Step) -> Option<NaiveDate> {
        step.index().map(|i| self.due[i])
    }

    /// The transitions so far.
    pub fn log(&self) -> &[Transition] {
        &self.log
    }

    /// Completes the current step on `on`, moving to `to`, which must be the
    /// next step. Late completion is allowed and recorded; a date before the
    /// start or before the previous transition is refused. A refused call
    /// changes nothing.
    pub fn advance(&mut self, to: Step, on: NaiveDate) -> Result<&Transition, EscalationError> {
        let Some(next) = self.step.next() else {
            return Err(EscalationError::Closed);
        };
        if to != next {
            return Err(EscalationError::IllegalTransition {
                from: self.step.name_zh(),
                to: to.name_zh(),
                next: next.name_zh(),
            });
        }
        let (what, earlier) = match self.log.last() {
            Some(t) => ("上一次转换日期", t.on),
            None => ("考核开始日期", self.start),
        };
        if on < earlier {
            return Err(EscalationError::DateBackwards { on, what, earlier });
        }
        let due = self.due(self.step).ok_or(EscalationError::Closed)?;
        let late_days = (on - due).num_days().max(0);
        self.log.push(Transition {
            from: self.step,
            to,
            on,
            late_days,
        });
        self.step = to;
        Ok(self.log.last().expect("just pushed"))
    }

    /// Days the current step is past its deadline on `today` (`None` when on
    /// time or closed).
    pub fn overdue_days(&self, today: NaiveDate) -> Option<i64> {
        let due = self.due(self.step)?;
        let d = (today - due).num_days();
        (d > 0).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(missing: MissingData) -> EscalationRule {
        EscalationRule {
            indicator: "inpatient_in_county_share".into(),
            target: 850,
            direction: Direction::HigherIsBetter,
            notify_after: 1,
            warn_after: 2,
            summon_after: 3,
            missing,
        }
    }

    #[test]
    fn escalates_over_consecutive_misses() {
        let h = [
            ("2025-01", Some(860)),
            ("2025-02", Some(840)),
            ("2025-03", Some(830)),
            ("2025-04", Some(820)),
        ];
        let e = escalation(&h, &rule(MissingData::CountAsMissed)).unwrap();
        assert_eq!(e.level, Some(Level::Summon));
        assert_eq!(e.streak, 3);
        assert_eq!(e.missed, ["2025-02", "2025-03", "2025-04"]);
        assert_eq!(
            e.steps,
            [
                (Level::Notify, "2025-02"),
                (Level::Warn, "2025-03"),
                (Level::Summon, "2025-04")
            ]
        );
        assert_eq!(e.records[0].outcome, Outcome::Met);
        assert_eq!(e.records[2].level, Some(Level::Warn));
        assert_eq!(Level::Summon.to_string(), "约谈");
    }

    #[test]
    fn meeting_the_target_resets() {
        let h = [
            (1, Some(800)),
            (2, Some(800)),
            (3, Some(850)),
            (4, Some(700)),
        ];
        let e = escalation(&h, &rule(MissingData::CountAsMissed)).unwrap();
        assert_eq!(e.level, Some(Level::Notify));
        assert_eq!(e.missed, [4]);
        assert_eq!(e.steps, [(Level::Notify, 4)]);
    }

    #[test]
    fn missing_data_policy() {
        let h = [(1, Some(800)), (2, None), (3, Some(800))];
        let counted = escalation(&h, &rule(MissingData::CountAsMissed)).unwrap();
        assert_eq!(counted.level, Some(Level::Summon));
        assert_eq!(counted.records[1].outcome, Outcome::MissedNoData);
        let skipped = escalation(&h, &rule(MissingData::Skip)).unwrap();
        assert_eq!(skipped.level, Some(Level::Warn));
        assert_eq!(skipped.missed, [1, 3]);
        assert_eq!(skipped.records[1].outcome, Outcome::Skipped);
        assert_eq!(skipped.records[1].streak, 1);
    }

    #[test]
    fn lower_is_better_and_empty() {
        let mut r = rule(MissingData::Skip);
        r.direction = Direction::LowerIsBetter;
        r.target = 300;
        let e = escalation(&[(1, Some(300)), (2, Some(301))], &r).unwrap();
        assert_eq!(e.level, Some(Level::Notify));
        let e = escalation::<u32>(&[], &r).unwrap();
        assert_eq!(e.level, None);
        assert!(e.records.is_empty());
    }

    #[test]
    fn refuses_bad_rules_and_histories() {
        let mut r = rule(MissingData::Skip);
        r.warn_after = 5;
        let e = escalation(&[(1, Some(1))], &r).unwrap_err();
        assert!(e.to_string().contains("通报 ≤ 预警 ≤ 约谈"), "{e}");
        let mut r = rule(MissingData::Skip);
        r.notify_after = 0;
        assert!(escalation(&[(1, Some(1))], &r).is_err());
        let e = escalation(&[(2, Some(1)), (1, Some(1))], &rule(MissingData::Skip)).unwrap_err();
        assert_eq!(e, EscalationError::Unordered(2));
        let e = escalation(&[(1, Some(1)), (1, Some(1))], &rule(MissingData::Skip)).unwrap_err();
        assert_eq!(e, EscalationError::Unordered(2));
    }

    #[test]
    fn rule_is_data() {
        let r: EscalationRule = serde_json::from_str(
            r#"{"indicator":"primary_visit_share","target":650,"direction":"higher_is_better",
                "notify_after":1,"warn_after":2,"summon_after":3,"missing":"count_as_missed"}"#,
        )
        .unwrap();
        assert_eq!(r.missing, MissingData::CountAsMissed);
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn days() -> StepDays {
        StepDays {
            self_evaluation: 15,
            assessment: 30,
            result: 10,
            feedback: 60,
        }
    }

    #[test]
    fn cycle_deadlines() {
        let c = Cycle::new(d(2025, 1, 1), days()).unwrap();
        assert_eq!(c.due(Step::SelfEvaluation), Some(d(2025, 1, 15)));
        assert_eq!(c.due(Step::Assessment), Some(d(2025, 2, 14)));
        assert_eq!(c.due(Step::Result), Some(d(2025, 2, 24)));
        assert_eq!(c.due(Step::Feedback), Some(d(2025, 4, 25)));
        assert_eq!(c.due(Step::Closed), None);
        let mut bad = days();
        bad.result = 0;
        assert!(matches!(
            Cycle::new(d(2025, 1, 1), bad),
            Err(EscalationError::Duration {
                step: "结果评定",
                ..
            })
        ));
        assert_eq!(
            Cycle::new(NaiveDate::MAX, days()),
            Err(EscalationError::DateOverflow)
        );
    }

    #[test]
    fn cycle_transitions() {
        let mut c = Cycle::new(d(2025, 1, 1), days()).unwrap();
        assert_eq!(c.overdue_days(d(2025, 1, 15)), None);
        assert_eq!(c.overdue_days(d(2025, 1, 18)), Some(3));
        let e = c.advance(Step::Result, d(2025, 1, 10)).unwrap_err();
        assert!(e.to_string().contains("只能进入下一环节“实施考核”"), "{e}");
        assert!(c.advance(Step::Assessment, d(2024, 12, 31)).is_err());
        assert_eq!(c.step(), Step::SelfEvaluation);
        let t = c.advance(Step::Assessment, d(2025, 1, 17)).unwrap();
        assert_eq!(t.late_days, 2);
        assert!(c.advance(Step::Result, d(2025, 1, 16)).is_err());
        c.advance(Step::Result, d(2025, 2, 1)).unwrap();
        c.advance(Step::Feedback, d(2025, 2, 20)).unwrap();
        let t = c.advance(Step::Closed, d(2025, 4, 1)).unwrap();
        assert_eq!(t.late_days, 0);
        assert_eq!(c.step(), Step::Closed);
        assert_eq!(c.log().len(), 4);
        assert_eq!(
            c.advance(Step::Closed, d(2025, 5, 1)),
            Err(EscalationError::Closed)
        );
        assert_eq!(c.overdue_days(d(2030, 1, 1)), None);
    }

    proptest! {
        /// The level equals the one for the trailing run computed directly.
        #[test]
        fn level_matches_trailing_run(
            values in proptest::collection::vec(proptest::option::of(0i64..1000), 0..30),
            skip in any::<bool>(),
            n in 1u32..4, w in 0u32..4, s in 0u32..4,
        ) {
            let mut r = rule(if skip { MissingData::Skip } else { MissingData::CountAsMissed });
            r.notify_after = n;
            r.warn_after = n + w;
            r.summon_after = n + w + s;
            let h: Vec<(usize, Option<i64>)> = values.iter().copied().enumerate().collect();
            let e = escalation(&h, &r).unwrap();
            let mut run = 0u32;
            for v in values.iter().rev() {
                match v {
                    Some(x) if *x >= 850 => break,
                    Some(_) => run += 1,
                    None if skip => {}
                    None => run += 1,
                }
            }
            prop_assert_eq!(e.streak, run);
            prop_assert_eq!(e.missed.len() as u32, run);
            let expect = if run >= r.summon_after { Some(Level::Summon) }
                else if run >= r.warn_after { Some(Level::Warn) }
                else if run >= r.notify_after { Some(Level::Notify) } else { None };
            prop_assert_eq!(e.level, expect);
            prop_assert_eq!(e.steps.last().map(|s| s.0), expect);
        }
    }
}
