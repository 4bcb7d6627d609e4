//! The whistle loop 吹哨答卷 as a state machine, and the escalation policy 亮牌 as data.
//!
//! 出卷 → 吹哨 → 应哨 → 答卷 → 交卷 → 评卷: a case is `reported`, `accepted` after triage 三审,
//! `whistled` to one or more departments, `acknowledged` once every whistled department has
//! answered, `resolved` with an answer, `closed` once verified, and `evaluated` by the resident
//! (an unsatisfied rating reopens it). It may also be `rejected` or `merged` into another case.
//! Pure: no clock, no I/O; the caller supplies the facts a transition depends on.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a case is in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// 出卷: filed, waiting for triage
    Reported,
    /// triaged 三审; handled by the community or about to be whistled
    Accepted,
    /// 吹哨: whistled to departments, not all of them have answered
    Whistled,
    /// 应哨: every whistled department has answered; 答卷 in progress
    Acknowledged,
    /// 交卷: an answer was handed in, waiting for verification
    Resolved,
    /// verified and closed 办结, waiting for the resident's rating
    Closed,
    /// 评卷: rated satisfied; the loop is over
    Evaluated,
    /// not our responsibility, or not a real problem
    Rejected,
    /// a duplicate, merged into another case
    Merged,
}

impl CaseState {
    pub const ALL: [CaseState; 9] = [
        CaseState::Reported,
        CaseState::Accepted,
        CaseState::Whistled,
        CaseState::Acknowledged,
        CaseState::Resolved,
        CaseState::Closed,
        CaseState::Evaluated,
        CaseState::Rejected,
        CaseState::Merged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Reported => "reported",
            CaseState::Accepted => "accepted",
            CaseState::Whistled => "whistled",
            CaseState::Acknowledged => "acknowledged",
            CaseState::Resolved => "resolved",
            CaseState::Closed => "closed",
            CaseState::Evaluated => "evaluated",
            CaseState::Rejected => "rejected",
            CaseState::Merged => "merged",
        }
    }

    /// Nothing more happens to the case.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CaseState::Evaluated | CaseState::Rejected | CaseState::Merged
        )
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 二审难度: how hard the case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difficulty {
    /// the community solves it itself, no whistle needed
    Simple,
    /// a lead department handles it
    Complex,
    /// takes long: carries an agreed deadline
    Long,
    /// a coordinating leader (deputy district head) takes it over
    VeryComplex,
}

/// Something done to a case; see [`next_state`] for when each is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Accept,
    Reject,
    Merge,
    Whistle,
    Acknowledge,
    Resolve,
    Close,
    /// verification failed: back to work
    Reopen,
    Evaluate,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::Accept,
        Action::Reject,
        Action::Merge,
        Action::Whistle,
        Action::Acknowledge,
        Action::Resolve,
        Action::Close,
        Action::Reopen,
        Action::Evaluate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::Merge => "merge",
            Action::Whistle => "whistle",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
            Action::Close => "close",
            Action::Reopen => "reopen",
            Action::Evaluate => "evaluate",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts about a case that decide where an action leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseFacts {
    pub state: CaseState,
    /// set at acceptance
    pub difficulty: Option<Difficulty>,
    /// the case has been whistled to at least one department
    pub whistled: bool,
    /// after this action, every whistled department will have acknowledged
    pub all_acknowledged: bool,
    /// for `evaluate`: the resident's rating, 1–5
    pub satisfaction: Option<u8>,
}

impl CaseFacts {
    pub fn new(state: CaseState) -> Self {
        CaseFacts {
            state,
            difficulty: None,
            whistled: false,
            all_acknowledged: false,
            satisfaction: None,
        }
    }
}

/// A rating at or below this reopens the case.
pub const UNSATISFIED_AT_MOST: u8 = 2;

/// An action that the case's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a case that is {from}{}; allowed: {}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(), allowed_list(.allowed))]
pub struct IllegalTransition {
    pub from: CaseState,
    pub action: Action,
    pub allowed: Vec<Action>,
    pub reason: Option<String>,
}

fn allowed_list(allowed: &[Action]) -> String {
    if allowed.is_empty() {
        "nothing (the case is finished)".into()
    } else {
        allowed
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where `action` takes a case with `facts`, or why it may not.
///
/// - accept: reported → accepted; reject, merge: reported or accepted → rejected, merged
/// - whistle: accepted, whistled or acknowledged → whistled (more departments may be whistled)
/// - acknowledge: whistled → whistled, or acknowledged once every department has answered
/// - resolve: acknowledged → resolved; accepted → resolved only for a simple case (the community
///   handles it without a whistle)
/// - close: resolved → closed; reopen: resolved → acknowledged (or accepted if never whistled)
/// - evaluate: closed → evaluated, or back to accepted when the rating is unsatisfied (≤ 2)
pub fn next_state(facts: &CaseFacts, action: Action) -> Result<CaseState, IllegalTransition> {
    use CaseState::*;
    let refuse = |reason: Option<&str>| IllegalTransition {
        from: facts.state,
        action,
        allowed: allowed_actions(facts),
        reason: reason.map(str::to_owned),
    };
    match (facts.state, action) {
        (Reported, Action::Accept) => Ok(Accepted),
        (Reported | Accepted, Action::Reject) => Ok(Rejected),
        (Reported | Accepted, Action::Merge) => Ok(Merged),
        (Accepted | Whistled | Acknowledged, Action::Whistle) => Ok(Whistled),
        (Whistled, Action::Acknowledge) => Ok(if facts.all_acknowledged {
            Acknowledged
        } else {
            Whistled
        }),
        (Acknowledged, Action::Resolve) => Ok(Resolved),
        (Accepted, Action::Resolve) => {
            if facts.difficulty == Some(Difficulty::Simple) {
                Ok(Resolved)
            } else {
                Err(refuse(Some(
                    "only a simple case is resolved without a whistle",
                )))
            }
        }
        (Resolved, Action::Close) => Ok(Closed),
        (Resolved, Action::Reopen) => Ok(if facts.whistled {
            Acknowledged
        } else {
            Accepted
        }),
        (Closed, Action::Evaluate) => match facts.satisfaction {
            Some(s @ 1..=5) if s <= UNSATISFIED_AT_MOST => Ok(Accepted),
            Some(1..=5) => Ok(Evaluated),
            _ => Err(refuse(Some("a rating from 1 to 5 is needed"))),
        },
        _ => Err(refuse(None)),
    }
}

/// The actions a case with `facts` allows now.
pub fn allowed_actions(facts: &CaseFacts) -> Vec<Action> {
    use CaseState::*;
    let simple = facts.difficulty == Some(Difficulty::Simple);
    Action::ALL
        .into_iter()
        .filter(|a| match (facts.state, a) {
            (Reported, Action::Accept) => true,
            (Reported | Accepted, Action::Reject | Action::Merge) => true,
            (Accepted | Whistled | Acknowledged, Action::Whistle) => true,
            (Whistled, Action::Acknowledge) => true,
            (Acknowledged, Action::Resolve) => true,
            (Accepted, Action::Resolve) => simple,
            (Resolved, Action::Close | Action::Reopen) => true,
            (Closed, Action::Evaluate) => true,
            _ => false,
        })
        .collect()
}

/// 亮牌: the card a department shows for not answering a whistle.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Card {
    Yellow,
    Red,
}

/// One step of an escalation policy, counted from the whistle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscalationStep {
    /// minutes after the whistle
    pub after_minutes: i64,
    /// the number of the notice (SMS) sent to the department, if one is sent
    pub notice: Option<u8>,
    pub card: Option<Card>,
    /// who else is told, e.g. "centre_head" (who phones the department head)
    pub notify: Vec<String>,
    /// the case goes to the supervision platform
    pub push_to_supervision: bool,
}

/// Escalation as data; [`EscalationPolicy::haibowan`] is the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscalationPolicy {
    pub name: String,
    /// in ascending order of `after_minutes`
    pub steps: Vec<EscalationStep>,
}

impl EscalationPolicy {
    /// Haibowan district's: notice 1 on the whistle; no answer after 1 h → notice 2, yellow card,
    /// the centre's head phones; after 4 h → notice 3, red card, the deputy district head is told;
    /// after 15 h → pushed to the supervision platform.
    pub fn haibowan() -> Self {
        let step = |after_minutes, notice, card, notify: &[&str], push| EscalationStep {
            after_minutes,
            notice,
            card,
            notify: notify.iter().map(|s| (*s).to_owned()).collect(),
            push_to_supervision: push,
        };
        EscalationPolicy {
            name: "haibowan".into(),
            steps: vec![
                step(0, Some(1), None, &[], false),
                step(60, Some(2), Some(Card::Yellow), &["centre_head"], false),
                step(
                    240,
                    Some(3),
                    Some(Card::Red),
                    &["deputy_district_head"],
                    false,
                ),
                step(900, None, None, &[], true),
            ],
        }
    }

    /// When each step falls due for a whistle at `whistled_at`.
    pub fn schedule(&self, whistled_at: DateTime<Utc>) -> Vec<(usize, DateTime<Utc>)> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (i, whistled_at + Duration::minutes(s.after_minutes)))
            .collect()
    }

    /// The steps that have fired by `now` for a whistle at `whistled_at`; acknowledgement stops
    /// the clock, so steps due after `acknowledged_at` never fire.
    pub fn fired(
        &self,
        whistled_at: DateTime<Utc>,
        acknowledged_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Vec<usize> {
        let until = acknowledged_at.map_or(now, |a| a.min(now));
        self.schedule(whistled_at)
            .into_iter()
            .filter(|(i, due)| {
                *due <= until
                    && (self.steps[*i].after_minutes == 0
                        || acknowledged_at.is_none_or(|a| *due < a))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The highest card shown at `now`.
    pub fn card(
        &self,
        whistled_at: DateTime<Utc>,
        acknowledged_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<Card> {
        self.fired(whistled_at, acknowledged_at, now)
            .into_iter()
            .filter_map(|i| self.steps[i].card)
            .max()
    }

    /// Checks the policy is usable: steps in ascending order, non-negative times, notices 1–9.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("an escalation policy needs at least one step".into());
        }
        let mut last = -1;
        for (i, s) in self.steps.iter().enumerate() {
            if s.after_minutes < 0 {
                return Err(format!("steps[{i}].after_minutes must not be negative"));
            }
            if s.after_minutes <= last {
                return Err(format!(
                    "steps[{i}].after_minutes must be later than the step before"
                ));
            }
            if s.notice.is_some_and(|n| !(1..=9).contains(&n)) {
                return Err(format!("steps[{i}].notice must be 1–9"));
            }
            last = s.after_minutes;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts(state: CaseState) -> CaseFacts {
        CaseFacts::new(state)
    }

    /// The whole loop of a complex case, 出卷 to 评卷.
    #[test]
    fn a_complex_case_goes_round_the_loop() {
        let mut f = facts(CaseState::Reported);
        f.state = next_state(&f, Action::Accept).unwrap();
        f.difficulty = Some(Difficulty::Complex);
        assert_eq!(f.state, CaseState::Accepted);
        f.state = next_state(&f, Action::Whistle).unwrap();
        f.whistled = true;
        assert_eq!(f.state, CaseState::Whistled);
        // Two departments: the first answer leaves it whistled, the second acknowledges it.
        f.all_acknowledged = false;
        assert_eq!(next_state(&f, Action::Acknowledge), Ok(CaseState::Whistled));
        f.all_acknowledged = true;
        f.state = next_state(&f, Action::Acknowledge).unwrap();
        assert_eq!(f.state, CaseState::Acknowledged);
        f.state = next_state(&f, Action::Resolve).unwrap();
        // Verification fails once: back to the departments.
        assert_eq!(next_state(&f, Action::Reopen), Ok(CaseState::Acknowledged));
        f.state = next_state(&f, Action::Close).unwrap();
        assert_eq!(f.state, CaseState::Closed);
        f.satisfaction = Some(5);
        assert_eq!(next_state(&f, Action::Evaluate), Ok(CaseState::Evaluated));
        f.satisfaction = Some(2);
        assert_eq!(
            next_state(&f, Action::Evaluate),
            Ok(CaseState::Accepted),
            "an unsatisfied rating reopens"
        );
    }

    #[test]
    fn a_simple_case_is_resolved_without_a_whistle_but_a_complex_one_is_not() {
        let mut f = facts(CaseState::Accepted);
        f.difficulty = Some(Difficulty::Simple);
        assert_eq!(next_state(&f, Action::Resolve), Ok(CaseState::Resolved));
        assert!(allowed_actions(&f).contains(&Action::Resolve));
        f.difficulty = Some(Difficulty::Complex);
        let err = next_state(&f, Action::Resolve).unwrap_err();
        assert_eq!(
            err.reason.as_deref(),
            Some("only a simple case is resolved without a whistle")
        );
        assert!(!err.allowed.contains(&Action::Resolve));
        // Never whistled: a failed verification goes back to the community.
        let mut r = facts(CaseState::Resolved);
        r.difficulty = Some(Difficulty::Simple);
        assert_eq!(next_state(&r, Action::Reopen), Ok(CaseState::Accepted));
    }

    #[test]
    fn illegal_transitions_list_the_allowed_ones() {
        let err = next_state(&facts(CaseState::Reported), Action::Close).unwrap_err();
        assert_eq!(err.allowed, [Action::Accept, Action::Reject, Action::Merge]);
        assert_eq!(
            err.to_string(),
            "cannot close a case that is reported; allowed: accept, reject, merge"
        );
        let err = next_state(&facts(CaseState::Evaluated), Action::Reopen).unwrap_err();
        assert!(err.allowed.is_empty());
        assert!(err.to_string().ends_with("nothing (the case is finished)"));
        let err = next_state(&facts(CaseState::Closed), Action::Evaluate).unwrap_err();
        assert_eq!(
            err.reason.as_deref(),
            Some("a rating from 1 to 5 is needed")
        );
    }

    /// `allowed_actions` and `next_state` agree on every state and action.
    #[test]
    fn allowed_actions_are_exactly_the_legal_ones() {
        for state in CaseState::ALL {
            for difficulty in [None, Some(Difficulty::Simple), Some(Difficulty::Long)] {
                let f = CaseFacts {
                    state,
                    difficulty,
                    whistled: false,
                    all_acknowledged: true,
                    satisfaction: Some(4),
                };
                let allowed = allowed_actions(&f);
                for a in Action::ALL {
                    assert_eq!(
                        next_state(&f, a).is_ok(),
                        allowed.contains(&a),
                        "{state} {a} {difficulty:?}"
                    );
                }
                if state.is_final() {
                    assert!(allowed.is_empty(), "{state}");
                }
            }
        }
    }

    #[test]
    fn the_haibowan_cards_follow_the_clock_and_stop_at_acknowledgement() {
        let p = EscalationPolicy::haibowan();
        p.validate().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
        let at = |m: i64| t0 + Duration::minutes(m);
        assert_eq!(p.fired(t0, None, at(0)), [0]);
        assert_eq!(p.card(t0, None, at(59)), None);
        assert_eq!(p.card(t0, None, at(60)), Some(Card::Yellow));
        assert_eq!(p.card(t0, None, at(239)), Some(Card::Yellow));
        assert_eq!(p.card(t0, None, at(240)), Some(Card::Red));
        assert_eq!(p.fired(t0, None, at(900)), [0, 1, 2, 3]);
        // Acknowledged after 30 minutes: no card ever, however late it is now.
        assert_eq!(p.fired(t0, Some(at(30)), at(2000)), [0]);
        // Acknowledged at 2 h: the yellow card stays, the red one never comes.
        assert_eq!(p.card(t0, Some(at(120)), at(2000)), Some(Card::Yellow));
        // Acknowledged exactly at 1 h: in time, no yellow card.
        assert_eq!(p.card(t0, Some(at(60)), at(61)), None);
    }

    #[test]
    fn a_bad_policy_is_named() {
        let mut p = EscalationPolicy::haibowan();
        p.steps[2].after_minutes = 30;
        assert!(p.validate().unwrap_err().starts_with("steps[2]"));
        p.steps.clear();
        assert!(p.validate().is_err());
    }
}
