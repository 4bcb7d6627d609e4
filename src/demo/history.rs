//! The demo's dispatch history: what happened to each demo case between its report and now,
//! so that the console has a year of closed cases, figures worth reading, and a few cases still
//! in the loop — some with a card showing and a step about to fire. Deterministic for a given
//! list of cases and `now`; pure.

use crate::domain::case::{Card, EscalationPolicy};
use crate::storage::dispatch::{History, NewEvent, PastCase, PastWhistle, Triage};
use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// A freshly opened demo case, as history needs it.
#[derive(Debug, Clone)]
pub struct OpenedCase {
    pub case_id: i64,
    pub opened_at: DateTime<Utc>,
    pub category: String,
    /// the proposed lead department, when routing proposed one
    pub lead: Option<String>,
    pub co: Vec<String>,
}

/// Who acts in the demo's history.
const DISPATCHER: &str = "调度员（演示）";
const COMMUNITY: &str = "社区（演示）";
const RESIDENT: &str = "居民（演示）";

fn minutes(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> Duration {
    Duration::minutes(rng.random_range(lo..hi))
}

/// One event, in the history's timeline.
fn ev(
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    from: &str,
    to: &str,
    department: Option<&str>,
    data: Value,
) -> NewEvent {
    NewEvent {
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        from_state: (!from.is_empty()).then(|| from.to_owned()),
        to_state: (!to.is_empty()).then(|| to.to_owned()),
        department: department.map(str::to_owned),
        note: String::new(),
        data,
    }
}

/// The answers departments and communities hand in, by category.
fn answer(category: &str) -> &'static str {
    match category {
        "fire_lane_blocked" => "已联系车主挪车，通道已畅通，并在通道口设置禁停标识。",
        "flying_lead_charging" => "已拆除飞线，告知住户到小区集中充电桩充电。",
        "oil_smoke" => "已责令商户整改排烟通道，加装油烟净化设备。",
        "sewer_blockage" => "已疏通下水管道，排水恢复正常。",
        "wall_leak" => "已修补外墙防水层，室内不再渗水。",
        "water_supply" => "已调整二次加压泵站，高层供水恢复。",
        "random_piling" => "已清理杂物，通知物业加强巡查。",
        "road_hazard" => "已填补路面坑洞并设置警示标志。",
        "food_safety" => "已现场检查，督促商户整改并复查合格。",
        "neighbour_dispute" => "已组织双方调解，达成一致。",
        "charging_wanted" => "已协调在小区增设充电桩。",
        _ => "已处理完毕。",
    }
}

/// The history of `cases` up to `now` under `policy`.
pub fn plan(cases: &[OpenedCase], now: DateTime<Utc>, policy: &EscalationPolicy) -> History {
    let mut h = History {
        policy: serde_json::to_value(policy).unwrap_or(Value::Null),
        ..History::default()
    };
    for (i, c) in cases.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x6772_6964 ^ i as u64);
        let (past, whistles, mut events) = story(c, &mut rng, now, policy);
        events.sort_by_key(|e| e.at);
        h.events.extend(events.into_iter().map(|e| (c.case_id, e)));
        h.whistles.extend(whistles);
        h.cases.push(past);
    }
    h
}

/// One case's story, cut off at `now`.
fn story(
    c: &OpenedCase,
    rng: &mut ChaCha8Rng,
    now: DateTime<Utc>,
    policy: &EscalationPolicy,
) -> (PastCase, Vec<PastWhistle>, Vec<NewEvent>) {
    let mut past = PastCase {
        case_id: c.case_id,
        state: "reported",
        triage: None,
        answer: None,
        satisfaction: None,
        reject_reason: None,
        accepted_at: None,
        resolved_at: None,
        closed_at: None,
        evaluated_at: None,
        updated_at: c.opened_at,
    };
    let mut events = Vec::new();
    let mut whistles = Vec::new();
    let t0 = c.opened_at;
    // Rejected: not a real problem, or not ours.
    if rng.random_bool(0.03) {
        let at = t0 + minutes(rng, 10, 120);
        if at <= now {
            let reason = if rng.random_bool(0.5) {
                "invalid"
            } else {
                "not_our_responsibility"
            };
            past.state = "rejected";
            past.reject_reason = Some(reason);
            past.updated_at = at;
            events.push(ev(
                at,
                DISPATCHER,
                "reject",
                "reported",
                "rejected",
                None,
                json!({"reason": reason}),
            ));
        }
        return (past, whistles, events);
    }
    let accepted = t0 + minutes(rng, 5, 90);
    if accepted > now {
        return (past, whistles, events);
    }
    let local = c.lead.is_none();
    let roll: f64 = rng.random();
    let difficulty = match (local, roll) {
        (true, r) if r < 0.8 => "simple",
        (_, r) if r < 0.86 => "complex",
        (_, r) if r < 0.96 => "long",
        _ => "very_complex",
    };
    // A community case too hard to handle locally goes to urban management.
    let lead = match (&c.lead, difficulty) {
        (Some(l), _) => Some(l.clone()),
        (None, "simple") => None,
        (None, _) => Some("urban_management".to_owned()),
    };
    let deadline =
        (difficulty == "long").then(|| accepted + Duration::days(rng.random_range(5..15)));
    let triage = Triage {
        responsibility: if lead.is_some() {
            "department"
        } else {
            "territory"
        },
        difficulty,
        urgency: if rng.random_bool(0.15) {
            "urgent"
        } else {
            "normal"
        },
        lead_department: lead.clone(),
        co_departments: c.co.clone(),
        deadline,
        coordinator: (difficulty == "very_complex").then(|| "分管副区长".to_owned()),
    };
    events.push(ev(
        accepted,
        DISPATCHER,
        "accept",
        "reported",
        "accepted",
        None,
        json!({
            "difficulty": difficulty, "lead_department": lead, "co_departments": c.co,
        }),
    ));
    past.state = "accepted";
    past.accepted_at = Some(accepted);
    past.updated_at = accepted;
    past.triage = Some(triage);

    // 吹哨 → 应哨 per department, with the cards the clock gave.
    let mut answered = accepted;
    if let Some(lead) = &lead {
        let whistled = accepted + minutes(rng, 0, 20);
        if whistled > now {
            return (past, whistles, events);
        }
        let departments: Vec<(&str, &'static str)> = std::iter::once((lead.as_str(), "lead"))
            .chain(
                c.co.iter()
                    .filter(|d| *d != lead)
                    .map(|d| (d.as_str(), "co")),
            )
            .collect();
        events.push(ev(
            whistled,
            DISPATCHER,
            "whistle",
            "accepted",
            "whistled",
            None,
            json!({
                "departments": departments.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
            }),
        ));
        let mut all_answered = true;
        let mut last_ack = whistled;
        for (dept, role) in &departments {
            let r: f64 = rng.random();
            let delay = if r < 0.75 {
                minutes(rng, 4, 59)
            } else if r < 0.92 {
                minutes(rng, 61, 239)
            } else if r < 0.99 {
                minutes(rng, 241, 899)
            } else {
                minutes(rng, 901, 1300)
            };
            let ack = Some(whistled + delay).filter(|a| *a <= now);
            let until = ack.unwrap_or(now);
            let mut card: Option<Card> = None;
            let mut supervised = false;
            let mut steps = Vec::new();
            for (k, s) in policy.steps.iter().enumerate() {
                let due = whistled + Duration::minutes(s.after_minutes);
                let fires = due <= until && (s.after_minutes == 0 || ack.is_none_or(|a| due < a));
                let (fired, cancelled) = if fires {
                    (Some(due), None)
                } else if ack.is_some() {
                    (None, ack)
                } else {
                    (None, None)
                };
                if fires {
                    card = card.max(s.card);
                    supervised |= s.push_to_supervision;
                    let mut e = ev(
                        due,
                        "scheduler",
                        "escalate",
                        "",
                        "",
                        Some(dept),
                        json!({
                            "step": k, "notice": s.notice, "card": s.card, "notify": s.notify,
                            "push_to_supervision": s.push_to_supervision, "lateness_ms": 0,
                        }),
                    );
                    e.note = super::super::workflow::dispatch::step_text(s);
                    events.push(e);
                }
                steps.push((k as i32, due, fired, cancelled));
            }
            let card = card.map(|c| match c {
                Card::Yellow => "yellow",
                Card::Red => "red",
            });
            match ack {
                Some(a) => {
                    events.push(ev(
                        a,
                        dept,
                        "acknowledge",
                        "whistled",
                        "whistled",
                        Some(dept),
                        json!({
                            "minutes": (a - whistled).num_seconds() as f64 / 60.0, "card": card,
                            "on_time": card.is_none(),
                        }),
                    ));
                    last_ack = last_ack.max(a);
                }
                None => all_answered = false,
            }
            whistles.push(PastWhistle {
                case_id: c.case_id,
                department: (*dept).to_owned(),
                role,
                whistled_at: whistled,
                acknowledged_at: ack,
                card,
                supervised,
                steps,
            });
        }
        // The last answer moves the case to acknowledged.
        let acks: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.action == "acknowledge")
            .map(|(i, _)| i)
            .collect();
        if let Some(&last) = acks.iter().max_by_key(|&&i| events[i].at) {
            if all_answered {
                events[last].to_state = Some("acknowledged".into());
            }
        }
        past.state = if all_answered {
            "acknowledged"
        } else {
            "whistled"
        };
        past.updated_at = last_ack.max(whistled);
        if !all_answered {
            return (past, whistles, events);
        }
        answered = last_ack;
    }
    let work = match difficulty {
        "simple" => minutes(rng, 60, 24 * 60),
        "long" => minutes(rng, 3 * 24 * 60, 12 * 24 * 60),
        _ => minutes(rng, 2 * 60, 96 * 60),
    };
    let resolved = answered + work;
    if resolved > now {
        return (past, whistles, events);
    }
    let who = lead.as_deref().unwrap_or(COMMUNITY);
    let text = answer(&c.category).to_owned();
    events.push(ev(
        resolved,
        who,
        "resolve",
        past.state,
        "resolved",
        lead.as_deref(),
        json!({"answer": text, "photos": 0}),
    ));
    past.state = "resolved";
    past.answer = Some(text);
    past.resolved_at = Some(resolved);
    past.updated_at = resolved;
    let closed = resolved + minutes(rng, 30, 12 * 60);
    if closed > now {
        return (past, whistles, events);
    }
    events.push(ev(
        closed,
        DISPATCHER,
        "close",
        "resolved",
        "closed",
        None,
        json!({}),
    ));
    past.state = "closed";
    past.closed_at = Some(closed);
    past.updated_at = closed;
    // Not every resident rates.
    if rng.random_bool(0.1) {
        return (past, whistles, events);
    }
    let rated = closed + minutes(rng, 60, 48 * 60);
    if rated > now {
        return (past, whistles, events);
    }
    let r: f64 = rng.random();
    let satisfaction: i16 = if r < 0.72 {
        5
    } else if r < 0.92 {
        4
    } else {
        3
    };
    events.push(ev(
        rated,
        RESIDENT,
        "evaluate",
        "closed",
        "evaluated",
        None,
        json!({"satisfaction": satisfaction, "reopened": false}),
    ));
    past.state = "evaluated";
    past.satisfaction = Some(satisfaction);
    past.evaluated_at = Some(rated);
    past.updated_at = rated;
    (past, whistles, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn case(i: i64, opened: DateTime<Utc>, lead: Option<&str>) -> OpenedCase {
        OpenedCase {
            case_id: i,
            opened_at: opened,
            category: "fire_lane_blocked".into(),
            lead: lead.map(str::to_owned),
            co: vec![],
        }
    }

    #[test]
    fn old_cases_finish_and_follow_the_loop() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let opened = now - Duration::days(60);
        let cases: Vec<_> = (1..=400)
            .map(|i| case(i, opened, Some("fire_rescue")))
            .collect();
        let h = plan(&cases, now, &EscalationPolicy::haibowan());
        let finished = h
            .cases
            .iter()
            .filter(|c| matches!(c.state, "evaluated" | "closed" | "rejected"))
            .count();
        assert!(finished as f64 > 0.95 * 400.0, "{finished}");
        // Every whistle's card agrees with the policy and its acknowledgement time.
        let p = EscalationPolicy::haibowan();
        for w in &h.whistles {
            let card = p
                .card(w.whistled_at, w.acknowledged_at, now)
                .map(|c| match c {
                    Card::Yellow => "yellow",
                    Card::Red => "red",
                });
            assert_eq!(w.card, card, "{w:?}");
        }
        assert!(h.whistles.iter().any(|w| w.card == Some("yellow")));
        assert!(h.whistles.iter().any(|w| w.card == Some("red")));
        // Each case's events are in time order and start where the case was reported.
        for c in &h.cases {
            let evs: Vec<_> = h
                .events
                .iter()
                .filter(|(id, _)| *id == c.case_id)
                .map(|(_, e)| e)
                .collect();
            assert!(evs.windows(2).all(|w| w[0].at <= w[1].at));
            if let Some(first) = evs.iter().find(|e| e.from_state.is_some()) {
                assert_eq!(first.from_state.as_deref(), Some("reported"));
            }
        }
    }

    #[test]
    fn recent_cases_stop_where_now_is() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let cases: Vec<_> = (1..=200)
            .map(|i| case(i, now - Duration::minutes(i * 3), Some("police")))
            .collect();
        let h = plan(&cases, now, &EscalationPolicy::haibowan());
        assert!(h.cases.iter().any(|c| c.state == "reported"));
        assert!(h.cases.iter().any(|c| c.state == "whistled"));
        assert!(h.events.iter().all(|(_, e)| e.at <= now));
        // A whistle not yet answered keeps its future steps pending.
        assert!(h.whistles.iter().any(|w| w.acknowledged_at.is_none()
            && w.steps
                .iter()
                .any(|(_, due, f, c)| *due > now && f.is_none() && c.is_none())));
    }
}
