//! The whistle loop 吹哨答卷 as use cases: routing a report into a case, the dispatcher's and
//! departments' actions on it, escalation when a step falls due, and the views the console
//! reads. The rules of the loop live in `domain::case` and `domain::routing`; this module
//! applies them inside one locked transaction per change and says what changed on the
//! service's event channel.

use super::intake::{Link, Located};
use super::{Gridwatch, Result, WorkflowError};
use crate::domain::case::{
    allowed_actions, next_state, Action, CaseFacts, CaseState, Difficulty, EscalationPolicy,
    EscalationStep,
};
use crate::domain::routing::{route, Handler, Routed, RoutingRule, Territory};
use crate::storage::dispatch::{
    CaseRow, CaseTx, Department, DueStep, Escalations, EventRow, NewCase, NewEvent, NewNotice,
    Route, RuleFields, RuleRow, Triage, WhistleRow,
};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Key of the escalation policy in `dispatch_setting`.
pub const POLICY_KEY: &str = "escalation_policy";
/// Longest answer or note, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Photos handed in with one answer, and the size of each.
pub const MAX_PHOTOS: usize = 6;
pub const MAX_PHOTO_BYTES: usize = 8 * 1024 * 1024;

/// Where notices go. Without a URL a channel is the log.
#[derive(Debug, Clone, Default)]
pub struct NoticeConfig {
    /// SMS gateway: notices to departments, leaders and grid staff
    pub sms_webhook: Option<String>,
    /// the discipline-inspection supervision platform, and packages reported upward
    pub supervision_webhook: Option<String>,
}

impl NoticeConfig {
    fn route(url: &Option<String>) -> Route {
        match url {
            Some(u) => Route {
                channel: "webhook",
                target: Some(u.clone()),
            },
            None => Route {
                channel: "log",
                target: None,
            },
        }
    }

    pub fn sms(&self) -> Route {
        NoticeConfig::route(&self.sms_webhook)
    }

    pub fn supervision(&self) -> Route {
        NoticeConfig::route(&self.supervision_webhook)
    }
}

/// Something happened to a case: sent to the console's live stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaseChange {
    pub id: i64,
    pub state: String,
    pub action: String,
}

/// A lead as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LeadView {
    /// "department" or "territory" (handled by the community or another territorial unit)
    pub kind: String,
    pub code: String,
    pub name: String,
}

/// The proposed routing of a case, and why.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RoutingView {
    pub lead: LeadView,
    pub co_departments: Vec<Link>,
    pub rule_id: Option<i64>,
    pub why: String,
    pub why_zh: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextStep {
    pub due_at: DateTime<Utc>,
    pub notice: Option<u8>,
    pub card: Option<String>,
    pub push_to_supervision: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WhistleView {
    pub department: Link,
    pub role: String,
    pub whistled_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub card: Option<String>,
    pub supervised: bool,
    pub next_step: Option<NextStep>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartyBranchView {
    pub name: String,
    pub secretary: Option<String>,
    pub contact: Option<String>,
}

/// One case in the queue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseSummary {
    pub id: i64,
    pub report_id: i64,
    pub state: String,
    pub category: String,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub source: String,
    pub reported_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub district: Option<Link>,
    pub street: Option<Link>,
    pub community: Option<Link>,
    pub grid: Option<Link>,
    pub micro_grid: Option<Link>,
    pub party_branch: Option<PartyBranchView>,
    pub routing: RoutingView,
    pub responsibility: Option<String>,
    pub difficulty: Option<String>,
    pub urgency: Option<String>,
    pub lead_department: Option<Link>,
    pub co_departments: Vec<Link>,
    pub deadline: Option<DateTime<Utc>>,
    pub coordinator: Option<String>,
    pub satisfaction: Option<i16>,
    pub merged_into: Option<i64>,
    pub reject_reason: Option<String>,
    pub whistles: Vec<WhistleView>,
    pub card: Option<String>,
    pub overdue: bool,
    pub duplicate_count: i64,
    pub allowed_actions: Vec<Action>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StaffView {
    pub role: String,
    pub name: String,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub department: Option<Link>,
    pub note: String,
    pub data: Value,
}

/// One case with everything the detail panel shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub summary: CaseSummary,
    pub events: Vec<EventView>,
    pub staff: Vec<StaffView>,
    pub duplicates: Vec<crate::storage::dispatch::DuplicateRow>,
    pub merged_cases: Vec<i64>,
    pub answer: Option<String>,
    pub photos: Vec<String>,
    /// the photos the report came with
    pub report_photos: Vec<super::photos::PhotoView>,
    /// who filed the report, when they left their name or phone: personal data
    pub reporter: Option<crate::storage::photos::Reporter>,
}

/// A photo as clients send it with an answer.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhotoInput {
    pub content_type: String,
    pub data_base64: String,
}

/// The body of `POST /cases/{id}/actions`; which fields matter depends on `action`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "accept", "actor": "调度员", "responsibility": "department", "difficulty": "simple", "urgency": "normal"}))]
pub struct ActionInput {
    pub action: String,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    // accept (三审)
    #[serde(default)]
    pub responsibility: Option<String>,
    #[serde(default)]
    pub difficulty: Option<String>,
    #[serde(default)]
    pub urgency: Option<String>,
    /// absent: as proposed; null: handled by the community; a code: that department
    #[serde(default, deserialize_with = "present")]
    pub lead_department: Option<Option<String>>,
    #[serde(default)]
    pub co_departments: Option<Vec<String>>,
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    pub coordinator: Option<String>,
    // reject
    #[serde(default)]
    pub reason: Option<String>,
    // merge
    #[serde(default)]
    pub into: Option<i64>,
    // whistle
    #[serde(default)]
    pub departments: Option<Vec<String>>,
    // acknowledge
    #[serde(default)]
    pub department: Option<String>,
    // resolve
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub photos: Option<Vec<PhotoInput>>,
    // evaluate
    #[serde(default)]
    pub satisfaction: Option<i64>,
}

/// Tells a field given as `null` from one left out.
fn present<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A routing rule as clients send it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"category": "oil_smoke", "territory": "150302003", "lead_department": "market_regulation", "note": "凤凰岭街道的餐饮油烟由市场监管局牵头"}))]
pub struct RuleInput {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub territory: Option<String>,
    #[serde(default)]
    pub lead_department: Option<String>,
    #[serde(default)]
    pub co_departments: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: i64,
    pub category: Option<String>,
    pub territory: Option<Link>,
    pub lead_department: Option<String>,
    pub co_departments: Vec<String>,
    pub note: String,
}

impl From<RuleRow> for RuleView {
    fn from(r: RuleRow) -> Self {
        RuleView {
            id: r.id,
            category: r.category,
            territory: r.territory.map(|code| Link {
                name: r.territory_name.unwrap_or_else(|| code.clone()),
                code,
            }),
            lead_department: r.lead_department,
            co_departments: r.co_departments,
            note: r.note,
        }
    }
}

fn parse_difficulty(s: &str) -> Result<Difficulty> {
    match s {
        "simple" => Ok(Difficulty::Simple),
        "complex" => Ok(Difficulty::Complex),
        "long" => Ok(Difficulty::Long),
        "very_complex" => Ok(Difficulty::VeryComplex),
        other => Err(WorkflowError::invalid(
            "difficulty",
            format!(
                "{other:?} is not a difficulty: expected simple, complex, long or very_complex"
            ),
        )),
    }
}

fn difficulty_str(d: Difficulty) -> &'static str {
    match d {
        Difficulty::Simple => "simple",
        Difficulty::Complex => "complex",
        Difficulty::Long => "long",
        Difficulty::VeryComplex => "very_complex",
    }
}

fn parse_state(s: &str) -> Option<CaseState> {
    CaseState::ALL.into_iter().find(|c| c.as_str() == s)
}

fn parse_action(s: &str) -> Result<Action> {
    Action::ALL
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| {
            WorkflowError::invalid(
                "action",
                format!(
                    "unknown action {s:?}: expected one of {}",
                    Action::ALL.map(|a| a.as_str()).join(", ")
                ),
            )
        })
}

/// A required, trimmed text of at most [`MAX_TEXT_CHARS`].
fn text(field: &str, v: Option<&str>, required: bool) -> Result<Option<String>> {
    let t = v.map(str::trim).filter(|t| !t.is_empty());
    match t {
        None if required => Err(WorkflowError::invalid(field, "is required")),
        None => Ok(None),
        Some(t) if t.chars().count() > MAX_TEXT_CHARS => Err(WorkflowError::invalid(
            field,
            format!("longer than {MAX_TEXT_CHARS} characters"),
        )),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

/// The facts `next_state` needs, from a case row and its whistles.
fn facts(case: &CaseRow, whistles: &[WhistleRow]) -> CaseFacts {
    let mut f = CaseFacts::new(parse_state(&case.state).unwrap_or(CaseState::Reported));
    f.difficulty = case
        .difficulty
        .as_deref()
        .and_then(|d| parse_difficulty(d).ok());
    f.whistled = !whistles.is_empty();
    f.all_acknowledged = whistles.iter().all(|w| w.acknowledged_at.is_some());
    f
}

fn card_rank(c: Option<&str>) -> u8 {
    match c {
        Some("red") => 2,
        Some("yellow") => 1,
        _ => 0,
    }
}

fn card_str(c: crate::domain::case::Card) -> &'static str {
    match c {
        crate::domain::case::Card::Yellow => "yellow",
        crate::domain::case::Card::Red => "red",
    }
}

/// The Chinese name of a notify role, for texts.
fn role_name(role: &str) -> &str {
    match role {
        "centre_head" => "中心负责人",
        "deputy_district_head" => "分管副区长",
        other => other,
    }
}

/// What the history says a step did, e.g. "第2次短信 · 黄牌 · 通知中心负责人".
pub fn step_text(s: &EscalationStep) -> String {
    let mut parts = Vec::new();
    if let Some(n) = s.notice {
        parts.push(format!("第{n}次短信"));
    }
    match s.card {
        Some(crate::domain::case::Card::Yellow) => parts.push("黄牌".to_owned()),
        Some(crate::domain::case::Card::Red) => parts.push("红牌".to_owned()),
        None => {}
    }
    for r in &s.notify {
        parts.push(format!("通知{}", role_name(r)));
    }
    if s.push_to_supervision {
        parts.push("推送纪检监察监督平台".to_owned());
    }
    parts.join(" · ")
}

/// What firing `due` steps writes: cards, events, notices. Pure.
pub fn escalations_for(due: &[DueStep], at: DateTime<Utc>, notices: &NoticeConfig) -> Escalations {
    let mut esc = Escalations::default();
    for d in due {
        let Ok(step) = serde_json::from_value::<EscalationStep>(d.policy_step.clone()) else {
            tracing::error!(
                whistle = d.whistle_id,
                step = d.step,
                "unreadable escalation step: skipped"
            );
            continue;
        };
        let step = &step;
        let card = step.card.map(card_str);
        esc.whistles
            .push((d.whistle_id, card, step.push_to_supervision));
        let text = step_text(step);
        let lateness_ms = (at - d.due_at).num_milliseconds().max(0);
        esc.events.push((
            d.case_id,
            NewEvent {
                at,
                actor: "scheduler".into(),
                action: "escalate".into(),
                from_state: None,
                to_state: None,
                department: Some(d.department.clone()),
                note: text.clone(),
                data: json!({
                    "step": d.step, "after_minutes": step.after_minutes, "notice": step.notice,
                    "card": card, "notify": step.notify, "push_to_supervision": step.push_to_supervision,
                    "due_at": d.due_at, "lateness_ms": lateness_ms,
                }),
            },
        ));
        let base = json!({
            "case_id": d.case_id, "department": d.department, "category": d.category,
            "street": d.street_code, "step": d.step, "card": card, "due_at": d.due_at,
        });
        let with = |extra: Value| {
            let mut v = base.clone();
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        };
        let id = |what: &str| format!("whistle-{}-step-{}-{what}", d.whistle_id, d.step);
        if let Some(n) = step.notice {
            esc.notices.push(NewNotice {
                id: id("notice"),
                kind: "whistle_notice",
                case_id: Some(d.case_id),
                route: notices.sms(),
                recipient: format!("department:{}", d.department),
                payload: with(json!({"notice": n, "text": format!("案件 #{}：{text}，请及时应哨", d.case_id)})),
                created_at: at,
            });
        }
        for role in &step.notify {
            esc.notices.push(NewNotice {
                id: id(role),
                kind: "escalation",
                case_id: Some(d.case_id),
                route: notices.sms(),
                recipient: format!("role:{role}"),
                payload: with(json!({"role": role, "text": format!("案件 #{} 超时未应哨：{text}", d.case_id)})),
                created_at: at,
            });
        }
        if step.push_to_supervision {
            esc.notices.push(NewNotice {
                id: id("supervision"),
                kind: "supervision",
                case_id: Some(d.case_id),
                route: notices.supervision(),
                recipient: "supervision_platform".into(),
                payload: with(json!({"text": format!("案件 #{} 吹哨后 {} 小时未应哨", d.case_id, step.after_minutes / 60)})),
                created_at: at,
            });
        }
    }
    esc
}

fn link(code: &Option<String>, name: &Option<String>) -> Option<Link> {
    code.as_ref().map(|c| Link {
        code: c.clone(),
        name: name.clone().unwrap_or_else(|| c.clone()),
    })
}

impl Gridwatch {
    /// Routing rules, departments and the policy, from the database into memory.
    pub(super) async fn reload_dispatch(&self) -> Result<()> {
        let rules: Vec<RoutingRule> = self
            .db
            .routing_rules()
            .await?
            .into_iter()
            .map(|r| RoutingRule {
                id: r.id,
                category: r.category,
                territory: r.territory,
                lead_department: r.lead_department,
                co_departments: r.co_departments,
            })
            .collect();
        let departments: HashMap<String, Department> = self
            .db
            .departments()
            .await?
            .into_iter()
            .map(|d| (d.code.clone(), d))
            .collect();
        self.dispatch.set(rules, departments);
        Ok(())
    }

    pub fn departments(&self) -> Vec<Department> {
        let mut v: Vec<Department> = self.dispatch.departments().values().cloned().collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }

    fn department_link(&self, code: &str) -> Link {
        Link {
            code: code.to_owned(),
            name: self
                .dispatch
                .departments()
                .get(code)
                .map_or_else(|| code.to_owned(), |d| d.name_zh.clone()),
        }
    }

    /// The name a dispatcher reads for a category or department code.
    fn name_of(&self, code: &str) -> String {
        if let Some(d) = self.dispatch.departments().get(code) {
            return d.name_zh.clone();
        }
        self.categories()
            .get(code)
            .map_or_else(|| code.to_owned(), |c| c.name_zh.clone())
    }

    /// Routes a located report of `category` by the current rules.
    pub fn route(&self, category: &str, located: &Located) -> Routed {
        let territory = Territory {
            district: located
                .district
                .as_ref()
                .map(|l| (l.code.clone(), l.name.clone())),
            street: located
                .street
                .as_ref()
                .map(|l| (l.code.clone(), l.name.clone())),
            community: located
                .community
                .as_ref()
                .map(|l| (l.code.clone(), l.name.clone())),
        };
        let rules = self.dispatch.rules();
        route(&rules, category, &territory, &|c| self.name_of(c))
    }

    /// The case intake opens for a routed report.
    pub fn new_case(
        &self,
        routed: &Routed,
        located: &Located,
        actor: &str,
        at: DateTime<Utc>,
    ) -> NewCase {
        let (kind, lead) = match &routed.lead {
            Handler::Department(d) => ("department", d.clone()),
            Handler::Territory(t) => ("territory", t.clone()),
        };
        NewCase {
            party_branch_code: located.party_branch.as_ref().map(|b| b.region_code.clone()),
            routed_kind: kind,
            routed_lead: lead,
            routed_co: routed.co_departments.clone(),
            routing_rule_id: routed.rule_id,
            routing_why: routed.why.clone(),
            routing_why_zh: routed.why_zh.clone(),
            opened_at: at,
            actor: actor.to_owned(),
            notify_staff: true,
        }
    }

    pub fn routing_view(&self, routed: &Routed, located: &Located) -> RoutingView {
        let lead = match &routed.lead {
            Handler::Department(d) => LeadView {
                kind: "department".into(),
                code: d.clone(),
                name: self.name_of(d),
            },
            Handler::Territory(t) => LeadView {
                kind: "territory".into(),
                code: t.clone(),
                name: [&located.community, &located.street, &located.district]
                    .into_iter()
                    .flatten()
                    .find(|l| &l.code == t)
                    .map_or_else(|| "属地".to_owned(), |l| l.name.clone()),
            },
        };
        RoutingView {
            lead,
            co_departments: routed
                .co_departments
                .iter()
                .map(|c| self.department_link(c))
                .collect(),
            rule_id: routed.rule_id,
            why: routed.why.clone(),
            why_zh: routed.why_zh.clone(),
        }
    }

    /// The escalation policy in force: the stored one, else Haibowan's.
    pub async fn escalation_policy(&self) -> Result<EscalationPolicy> {
        match self.db.dispatch_setting(POLICY_KEY).await? {
            Some(v) => serde_json::from_value(v).map_err(|e| {
                WorkflowError::invalid(POLICY_KEY, format!("the stored policy is unreadable: {e}"))
            }),
            None => Ok(EscalationPolicy::haibowan()),
        }
    }

    pub async fn set_escalation_policy(&self, p: &EscalationPolicy) -> Result<()> {
        p.validate()
            .map_err(|m| WorkflowError::invalid("steps", m))?;
        if p.name.trim().is_empty() {
            return Err(WorkflowError::invalid("name", "is required"));
        }
        let v =
            serde_json::to_value(p).map_err(|e| WorkflowError::invalid("policy", e.to_string()))?;
        self.db.set_dispatch_setting(POLICY_KEY, &v).await?;
        Ok(())
    }

    fn check_department(&self, field: &str, code: &str) -> Result<()> {
        if self.dispatch.departments().contains_key(code) {
            Ok(())
        } else {
            Err(WorkflowError::invalid(
                field,
                format!("unknown department {code:?}; see GET /api/v1/departments"),
            ))
        }
    }

    /// Validates a routing rule's fields.
    fn rule_fields(&self, input: &RuleInput) -> Result<RuleFields> {
        if let Some(c) = &input.category {
            if !self.categories().contains_key(c) {
                return Err(WorkflowError::invalid(
                    "category",
                    format!("unknown category {c:?}"),
                ));
            }
        }
        if let Some(t) = &input.territory {
            let ok = self.index().get(t).is_some_and(|r| {
                matches!(
                    r.level,
                    crate::domain::Level::District | crate::domain::Level::Street
                )
            });
            if !ok {
                return Err(WorkflowError::invalid(
                    "territory",
                    format!("{t:?} is not a current district or street code"),
                ));
            }
        }
        if let Some(d) = &input.lead_department {
            self.check_department("lead_department", d)?;
        }
        let mut co = Vec::new();
        for (i, d) in input.co_departments.iter().enumerate() {
            self.check_department(&format!("co_departments[{i}]"), d)?;
            if Some(d) != input.lead_department.as_ref() && !co.contains(d) {
                co.push(d.clone());
            }
        }
        Ok(RuleFields {
            category: input.category.clone(),
            territory: input.territory.clone(),
            lead_department: input.lead_department.clone(),
            co_departments: co,
            note: text("note", input.note.as_deref(), false)?.unwrap_or_default(),
        })
    }

    pub async fn rules(&self) -> Result<Vec<RuleView>> {
        Ok(self
            .db
            .routing_rules()
            .await?
            .into_iter()
            .map(RuleView::from)
            .collect())
    }

    /// Creates (`id` None) or replaces a rule.
    pub async fn save_rule(&self, id: Option<i64>, input: &RuleInput) -> Result<RuleView> {
        let fields = self.rule_fields(input)?;
        let saved = match self.db.save_routing_rule(id, &fields).await {
            Ok(saved) => saved,
            Err(e) if e.is_unique_violation("routing_rule_scope") => {
                return Err(WorkflowError::Conflict(
                    "a rule for this category and territory exists already; edit that one".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let id = saved.ok_or_else(|| {
            WorkflowError::NotFound(format!("no routing rule {}", id.unwrap_or_default()))
        })?;
        self.reload_dispatch().await?;
        let row = self
            .db
            .routing_rule(id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no routing rule {id}")))?;
        Ok(row.into())
    }

    pub async fn delete_rule(&self, id: i64) -> Result<()> {
        if !self.db.delete_routing_rule(id).await? {
            return Err(WorkflowError::NotFound(format!("no routing rule {id}")));
        }
        self.reload_dispatch().await
    }

    fn summary(&self, c: CaseRow, whistles: Vec<&WhistleRow>) -> CaseSummary {
        let owned: Vec<WhistleRow> = whistles.iter().map(|w| (*w).clone()).collect();
        let f = facts(&c, &owned);
        let whistle_views: Vec<WhistleView> = owned
            .iter()
            .map(|w| {
                let next_step = match (w.next_step, w.next_due_at) {
                    (Some(step), Some(due_at)) => {
                        serde_json::from_value::<EscalationPolicy>(w.policy.clone())
                            .ok()
                            .and_then(|p| p.steps.get(step as usize).cloned())
                            .map(|s| NextStep {
                                due_at,
                                notice: s.notice,
                                card: s.card.map(|c| card_str(c).to_owned()),
                                push_to_supervision: s.push_to_supervision,
                            })
                    }
                    _ => None,
                };
                WhistleView {
                    department: Link {
                        code: w.department.clone(),
                        name: w.department_name.clone(),
                    },
                    role: w.role.clone(),
                    whistled_at: w.whistled_at,
                    acknowledged_at: w.acknowledged_at,
                    card: w.card.clone(),
                    supervised: w.supervised,
                    next_step,
                }
            })
            .collect();
        // A card once shown stays on the record of its whistle, and on the case.
        let card = owned
            .iter()
            .map(|w| w.card.clone())
            .max_by_key(|c| card_rank(c.as_deref()))
            .flatten();
        let lead_name = c.routed_lead_name.clone();
        let routing = RoutingView {
            lead: LeadView {
                kind: c.routed_kind.clone(),
                code: c.routed_lead.clone(),
                name: lead_name,
            },
            co_departments: c
                .routed_co
                .iter()
                .map(|d| self.department_link(d))
                .collect(),
            rule_id: c.routing_rule_id,
            why: c.routing_why.clone(),
            why_zh: c.routing_why_zh.clone(),
        };
        CaseSummary {
            id: c.id,
            report_id: c.report_id,
            state: c.state.clone(),
            category: c.category.clone(),
            description: c.description.clone(),
            lon: c.lon,
            lat: c.lat,
            source: c.source.clone(),
            reported_at: c.reported_at,
            opened_at: c.opened_at,
            updated_at: c.updated_at,
            district: link(&c.district_code, &c.district_name),
            street: link(&c.street_code, &c.street_name),
            community: link(&c.community_code, &c.community_name),
            grid: link(&c.grid_code, &c.grid_name),
            micro_grid: link(&c.micro_grid_code, &c.micro_grid_name),
            party_branch: c.pb_name.clone().map(|name| PartyBranchView {
                name,
                secretary: c.pb_secretary.clone(),
                contact: c.pb_contact.clone(),
            }),
            routing,
            responsibility: c.responsibility.clone(),
            difficulty: c.difficulty.clone(),
            urgency: c.urgency.clone(),
            lead_department: c
                .lead_department
                .as_deref()
                .map(|d| self.department_link(d)),
            co_departments: c
                .co_departments
                .iter()
                .map(|d| self.department_link(d))
                .collect(),
            deadline: c.deadline,
            coordinator: c.coordinator.clone(),
            satisfaction: c.satisfaction,
            merged_into: c.merged_into,
            reject_reason: c.reject_reason.clone(),
            whistles: whistle_views,
            card,
            overdue: c.overdue,
            duplicate_count: c.duplicate_count,
            allowed_actions: allowed_actions(&f),
        }
    }

    /// Case rows with their whistles, as summaries.
    pub async fn summaries(&self, rows: Vec<CaseRow>) -> Result<Vec<CaseSummary>> {
        let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
        let whistles = self.db.whistles(&ids).await?;
        Ok(rows
            .into_iter()
            .map(|c| {
                let mine = whistles.iter().filter(|w| w.case_id == c.id).collect();
                self.summary(c, mine)
            })
            .collect())
    }

    pub async fn case_detail(&self, id: i64) -> Result<CaseDetail> {
        let now = self.clock.now();
        let row = self
            .db
            .case(now, id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no case with id {id}")))?;
        let answer = row.answer.clone();
        let grid = row.grid_code.clone();
        let summary = self
            .summaries(vec![row])
            .await?
            .pop()
            .ok_or_else(|| WorkflowError::NotFound(format!("no case with id {id}")))?;
        let events = self
            .db
            .case_events(id)
            .await?
            .into_iter()
            .map(|e: EventRow| EventView {
                id: e.id,
                at: e.at,
                actor: e.actor,
                action: e.action,
                from_state: e.from_state,
                to_state: e.to_state,
                department: e.department.map(|code| Link {
                    name: e.department_name.unwrap_or_else(|| code.clone()),
                    code,
                }),
                note: e.note,
                data: e.data,
            })
            .collect();
        let staff = match grid {
            Some(g) => self
                .db
                .case_staff(&g)
                .await?
                .into_iter()
                .map(|(role, name, phone)| StaffView { role, name, phone })
                .collect(),
            None => Vec::new(),
        };
        let photos = (1..=self.db.case_photo_count(id).await?)
            .map(|n| format!("api/v1/cases/{id}/photos/{n}"))
            .collect();
        let report_id = summary.report_id;
        Ok(CaseDetail {
            report_photos: self
                .db
                .report_photos(report_id)
                .await?
                .iter()
                .map(super::photos::PhotoView::from)
                .collect(),
            reporter: self.db.report_reporter(report_id).await?,
            summary,
            events,
            staff,
            duplicates: self.db.duplicates(id).await?,
            merged_cases: self.db.merged_cases(id).await?,
            answer,
            photos,
        })
    }

    /// Tells the console a case changed. Nobody listening is fine.
    pub(super) fn announce(&self, id: i64, state: &str, action: &str) {
        let _ = self.changes.send(CaseChange {
            id,
            state: state.to_owned(),
            action: action.to_owned(),
        });
        self.notices_waiting.notify_one();
    }

    /// Applies one action to a case for `caller`: checks it against the loop, writes the new
    /// state, its event, its notices and the audit line in one transaction, announces it, and
    /// returns the case.
    pub async fn act(
        &self,
        id: i64,
        input: &ActionInput,
        caller: &crate::access::Caller,
    ) -> Result<CaseDetail> {
        let action = parse_action(&input.action)?;
        let actor =
            text("actor", input.actor.as_deref(), false)?.unwrap_or_else(|| "dispatcher".into());
        let note = text("note", input.note.as_deref(), false)?.unwrap_or_default();
        let mut tx = self
            .db
            .begin_case(id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no case with id {id}")))?;
        let now = self.clock.now();
        let case = tx.row(now).await?;
        let whistles = tx.whistles().await?;
        let mut f = facts(&case, &whistles);
        let from = case.state.clone();
        let event = |to: &str, department: Option<String>, data: Value| NewEvent {
            at: now,
            actor: actor.clone(),
            action: action.as_str().to_owned(),
            from_state: Some(from.clone()),
            to_state: Some(to.to_owned()),
            department,
            note: note.clone(),
            data,
        };
        let illegal = |e: crate::domain::case::IllegalTransition| WorkflowError::Illegal(e);
        let to: CaseState = match action {
            Action::Accept => {
                let difficulty =
                    parse_difficulty(input.difficulty.as_deref().ok_or_else(|| {
                        WorkflowError::invalid(
                            "difficulty",
                            "is required: simple, complex, long or very_complex",
                        )
                    })?)?;
                let to = next_state(&f, action).map_err(illegal)?;
                let triage = self.triage(&case, input, difficulty, now)?;
                tx.set_triage(&triage, now).await?;
                tx.set_state(to.as_str(), now).await?;
                if let Some(c) = &triage.coordinator {
                    tx.notices(&[NewNotice {
                        id: format!("case-{id}-coordinator"),
                        kind: "coordinator",
                        case_id: Some(id),
                        route: self.notice_config.sms(),
                        recipient: format!("coordinator:{c}"),
                        payload: json!({"case_id": id, "category": case.category,
                                        "text": format!("疑难复杂案件 #{id} 请{c}牵头协调")}),
                        created_at: now,
                    }])
                    .await?;
                }
                tx.event(id, &event(to.as_str(), None, json!({
                    "responsibility": triage.responsibility, "difficulty": triage.difficulty,
                    "urgency": triage.urgency, "lead_department": triage.lead_department,
                    "co_departments": triage.co_departments, "deadline": triage.deadline,
                    "coordinator": triage.coordinator,
                })))
                .await?;
                to
            }
            Action::Reject => {
                let reason = input.reason.as_deref().ok_or_else(|| {
                    WorkflowError::invalid(
                        "reason",
                        "is required: not_our_responsibility or invalid",
                    )
                })?;
                if !matches!(reason, "not_our_responsibility" | "invalid") {
                    return Err(WorkflowError::invalid(
                        "reason",
                        format!("{reason:?}: expected not_our_responsibility or invalid"),
                    ));
                }
                let to = next_state(&f, action).map_err(illegal)?;
                tx.cancel_steps(now).await?;
                tx.set_outcome(None, None, Some(reason)).await?;
                tx.set_state(to.as_str(), now).await?;
                tx.event(id, &event(to.as_str(), None, json!({"reason": reason})))
                    .await?;
                to
            }
            Action::Merge => {
                let into = input.into.ok_or_else(|| {
                    WorkflowError::invalid("into", "is required: the id of the case to merge into")
                })?;
                let to = next_state(&f, action).map_err(illegal)?;
                if into == id {
                    return Err(WorkflowError::invalid(
                        "into",
                        "a case cannot be merged into itself",
                    ));
                }
                let (target_state, target_category) =
                    tx.lock_other(into).await?.ok_or_else(|| {
                        WorkflowError::invalid("into", format!("no case with id {into}"))
                    })?;
                if parse_state(&target_state).is_none_or(|s| s.is_final()) {
                    return Err(WorkflowError::invalid(
                        "into",
                        format!(
                            "case {into} is {target_state}: only an open case can absorb another"
                        ),
                    ));
                }
                if target_category != case.category {
                    return Err(WorkflowError::invalid("into", format!("case {into} is {target_category}, not {}: only the same category is a duplicate", case.category)));
                }
                tx.cancel_steps(now).await?;
                tx.merge_into(into, now).await?;
                tx.event(id, &event(to.as_str(), None, json!({"into": into})))
                    .await?;
                tx.event(
                    into,
                    &NewEvent {
                        at: now,
                        actor: actor.clone(),
                        action: "merge_in".into(),
                        from_state: None,
                        to_state: None,
                        department: None,
                        note: note.clone(),
                        data: json!({"case_id": id}),
                    },
                )
                .await?;
                tx.touch(into, now).await?;
                self.announce(into, &target_state, "merge_in");
                to
            }
            Action::Whistle => {
                let to = next_state(&f, action).map_err(illegal)?;
                let names = self.whistle(&mut tx, &case, &whistles, input, now).await?;
                tx.set_state(to.as_str(), now).await?;
                tx.event(id, &event(to.as_str(), None, json!({"departments": names})))
                    .await?;
                let policy_notices = self.notice_config.clone();
                tx.fire_now(now, |due| escalations_for(due, now, &policy_notices))
                    .await?;
                to
            }
            Action::Acknowledge => {
                let dept = input.department.as_deref().ok_or_else(|| {
                    WorkflowError::invalid("department", "is required: the department that answers")
                })?;
                let open: Vec<&WhistleRow> = whistles
                    .iter()
                    .filter(|w| w.acknowledged_at.is_none())
                    .collect();
                let Some(w) = open.iter().find(|w| w.department == dept) else {
                    if f.state != CaseState::Whistled {
                        return Err(illegal(next_state(&f, action).err().unwrap_or_else(|| {
                            crate::domain::case::IllegalTransition {
                                from: f.state,
                                action,
                                allowed: allowed_actions(&f),
                                reason: None,
                            }
                        })));
                    }
                    return Err(WorkflowError::invalid(
                        "department",
                        format!(
                            "{dept:?} has no unanswered whistle on this case; waiting for: {}",
                            open.iter()
                                .map(|w| w.department.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                f.all_acknowledged = open.len() == 1;
                let to = next_state(&f, action).map_err(illegal)?;
                tx.acknowledge(w.id, now).await?;
                tx.set_state(to.as_str(), now).await?;
                tx.event(
                    id,
                    &event(
                        to.as_str(),
                        Some(dept.to_owned()),
                        json!({
                            "minutes": (now - w.whistled_at).num_seconds() as f64 / 60.0,
                            "card": w.card, "on_time": w.card.is_none(),
                        }),
                    ),
                )
                .await?;
                to
            }
            Action::Resolve => {
                let answer = text("answer", input.answer.as_deref(), true)?.unwrap_or_default();
                let photos = decode_photos(input.photos.as_deref().unwrap_or_default())?;
                let to = next_state(&f, action).map_err(illegal)?;
                tx.cancel_steps(now).await?;
                tx.set_outcome(Some(&answer), None, None).await?;
                tx.add_photos(&photos).await?;
                tx.set_state(to.as_str(), now).await?;
                tx.event(
                    id,
                    &event(
                        to.as_str(),
                        None,
                        json!({"answer": answer, "photos": photos.len()}),
                    ),
                )
                .await?;
                to
            }
            Action::Close | Action::Reopen => {
                let to = next_state(&f, action).map_err(illegal)?;
                tx.set_state(to.as_str(), now).await?;
                tx.event(id, &event(to.as_str(), None, json!({}))).await?;
                to
            }
            Action::Evaluate => {
                let s = input
                    .satisfaction
                    .ok_or_else(|| WorkflowError::invalid("satisfaction", "is required: 1 to 5"))?;
                if !(1..=5).contains(&s) {
                    return Err(WorkflowError::invalid(
                        "satisfaction",
                        format!("{s} is not a rating from 1 to 5"),
                    ));
                }
                f.satisfaction = Some(s as u8);
                let to = next_state(&f, action).map_err(illegal)?;
                tx.set_outcome(None, Some(s as i16), None).await?;
                tx.set_state(to.as_str(), now).await?;
                tx.event(
                    id,
                    &event(
                        to.as_str(),
                        None,
                        json!({
                            "satisfaction": s, "reopened": to == CaseState::Accepted,
                        }),
                    ),
                )
                .await?;
                to
            }
        };
        tx.audit(&crate::storage::accounts::AuditEntry {
            account_id: caller.principal().map(|p| p.account_id),
            actor: &caller.actor(),
            action: "case.action",
            subject: &format!("case:{id}"),
            detail: &json!({"action": action.as_str(), "state": to.as_str()}),
        })
        .await?;
        tx.commit().await?;
        self.announce(id, to.as_str(), action.as_str());
        let detail = self.case_detail(id).await?;
        // Its state and the grid's figures show in the tiles over it.
        let (lon, lat) = (detail.summary.lon, detail.summary.lat);
        self.tiles.invalidate_area([lon, lat, lon, lat]);
        Ok(detail)
    }

    /// 三审: responsibility, difficulty, urgency; the lead and co-departments as proposed or
    /// as the dispatcher changed them; the deadline of a long case, the coordinator of a very
    /// complex one.
    fn triage(
        &self,
        case: &CaseRow,
        input: &ActionInput,
        difficulty: Difficulty,
        now: DateTime<Utc>,
    ) -> Result<Triage> {
        let urgency = match input.urgency.as_deref().unwrap_or("normal") {
            "normal" => "normal",
            "urgent" => "urgent",
            other => {
                return Err(WorkflowError::invalid(
                    "urgency",
                    format!("{other:?}: expected normal or urgent"),
                ))
            }
        };
        let lead = match &input.lead_department {
            None => (case.routed_kind == "department").then(|| case.routed_lead.clone()),
            Some(None) => None,
            Some(Some(d)) => {
                self.check_department("lead_department", d)?;
                Some(d.clone())
            }
        };
        let co_in = input
            .co_departments
            .clone()
            .unwrap_or_else(|| case.routed_co.clone());
        let mut co = Vec::new();
        for (i, d) in co_in.iter().enumerate() {
            self.check_department(&format!("co_departments[{i}]"), d)?;
            if Some(d) != lead.as_ref() && !co.contains(d) {
                co.push(d.clone());
            }
        }
        let responsibility = match input.responsibility.as_deref() {
            None => {
                if lead.is_some() {
                    "department"
                } else {
                    "territory"
                }
            }
            Some("territory") => "territory",
            Some("department") => "department",
            Some(other) => {
                return Err(WorkflowError::invalid(
                    "responsibility",
                    format!("{other:?}: expected territory or department"),
                ))
            }
        };
        if responsibility == "department" && lead.is_none() {
            return Err(WorkflowError::invalid(
                "lead_department",
                "a department's responsibility needs a lead department",
            ));
        }
        let deadline = input.deadline;
        if difficulty == Difficulty::Long && deadline.is_none() {
            return Err(WorkflowError::invalid(
                "deadline",
                "a long case carries an agreed deadline",
            ));
        }
        if deadline.is_some_and(|d| d <= now) {
            return Err(WorkflowError::invalid("deadline", "lies in the past"));
        }
        let coordinator = text("coordinator", input.coordinator.as_deref(), difficulty == Difficulty::VeryComplex)
            .map_err(|e| match e {
                WorkflowError::Invalid { field, .. } if difficulty == Difficulty::VeryComplex => WorkflowError::invalid(field, "a very complex case needs a coordinating leader (e.g. the deputy district head)"),
                other => other,
            })?;
        Ok(Triage {
            responsibility,
            difficulty: difficulty_str(difficulty),
            urgency,
            lead_department: lead,
            co_departments: co,
            deadline,
            coordinator: if difficulty == Difficulty::VeryComplex {
                coordinator
            } else {
                coordinator.filter(|_| false)
            },
        })
    }

    /// Writes the whistles of a whistle action, with their escalation steps; returns the
    /// departments whistled.
    async fn whistle(
        &self,
        tx: &mut CaseTx,
        case: &CaseRow,
        existing: &[WhistleRow],
        input: &ActionInput,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let wanted: Vec<String> = match &input.departments {
            Some(d) => d.clone(),
            None => case
                .lead_department
                .iter()
                .chain(case.co_departments.iter())
                .cloned()
                .collect(),
        };
        if wanted.is_empty() {
            return Err(WorkflowError::invalid("departments", "the case is handled by the community (no lead department): name the departments to whistle, or accept it as simple and resolve it"));
        }
        let policy = self.escalation_policy().await?;
        let policy_json = serde_json::to_value(&policy)
            .map_err(|e| WorkflowError::invalid("policy", e.to_string()))?;
        let minutes: Vec<i64> = policy.steps.iter().map(|s| s.after_minutes).collect();
        let mut whistled: Vec<String> = Vec::new();
        for (i, d) in wanted.iter().enumerate() {
            self.check_department(&format!("departments[{i}]"), d)?;
            if whistled.contains(d)
                || existing
                    .iter()
                    .any(|w| &w.department == d && w.acknowledged_at.is_none())
            {
                continue;
            }
            // Without a lead department (a community case), the first one named leads.
            let lead = case
                .lead_department
                .as_deref()
                .map_or(whistled.is_empty(), |l| l == d);
            tx.add_whistle(
                d,
                if lead { "lead" } else { "co" },
                now,
                &policy_json,
                &minutes,
            )
            .await?;
            whistled.push(d.clone());
        }
        if whistled.is_empty() {
            return Err(WorkflowError::invalid(
                "departments",
                "every department named has an unanswered whistle on this case already",
            ));
        }
        Ok(whistled)
    }

    /// Fires every escalation step due by now, in batches; returns how many fired.
    pub async fn escalate_due(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let now = self.clock.now();
            let cfg = self.notice_config.clone();
            let fired = self
                .db
                .fire_due_steps(now, ESCALATION_BATCH, |due| escalations_for(due, now, &cfg))
                .await?;
            total += fired.len();
            let mut seen = std::collections::HashSet::new();
            for d in &fired {
                if seen.insert(d.case_id) {
                    self.announce(d.case_id, "whistled", "escalate");
                }
            }
            if (fired.len() as i64) < ESCALATION_BATCH {
                return Ok(total);
            }
        }
    }
}

/// Steps fired per transaction by the scheduler.
pub const ESCALATION_BATCH: i64 = 500;

fn decode_photos(photos: &[PhotoInput]) -> Result<Vec<(&'static str, Vec<u8>)>> {
    use base64::Engine;
    if photos.len() > MAX_PHOTOS {
        return Err(WorkflowError::invalid(
            "photos",
            format!("at most {MAX_PHOTOS} photos"),
        ));
    }
    photos
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let field = format!("photos[{i}]");
            let data = base64::engine::general_purpose::STANDARD
                .decode(p.data_base64.trim())
                .map_err(|e| {
                    WorkflowError::invalid(
                        format!("{field}.data_base64"),
                        format!("not base64: {e}"),
                    )
                })?;
            if data.len() > MAX_PHOTO_BYTES {
                return Err(WorkflowError::invalid(
                    field,
                    format!("larger than {} MiB", MAX_PHOTO_BYTES / 1024 / 1024),
                ));
            }
            let (ct, magic): (&'static str, &[u8]) = match p.content_type.as_str() {
                "image/png" => ("image/png", b"\x89PNG\r\n\x1a\n"),
                "image/jpeg" => ("image/jpeg", b"\xff\xd8\xff"),
                other => {
                    return Err(WorkflowError::invalid(
                        format!("{field}.content_type"),
                        format!("{other:?}: expected image/png or image/jpeg"),
                    ))
                }
            };
            if !data.starts_with(magic) {
                return Err(WorkflowError::invalid(
                    field,
                    format!("the data is not a {ct} image"),
                ));
            }
            Ok((ct, data))
        })
        .collect()
}

/// How long until a failed notice is tried again: doubling from 1 s, at most 15 minutes.
pub fn retry_delay(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 11) - 1;
    Duration::seconds((1i64 << exp).min(900))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn due(step: i32) -> DueStep {
        DueStep {
            deadline_id: 10 + i64::from(step),
            whistle_id: 7,
            step,
            due_at: Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
            case_id: 3,
            department: "fire_rescue".into(),
            policy_step: serde_json::to_value(&EscalationPolicy::haibowan().steps[step as usize])
                .unwrap(),
            category: "fire_lane_blocked".into(),
            street_code: Some("150302001".into()),
        }
    }

    #[test]
    fn the_yellow_step_cards_notices_and_calls_the_centre_head() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 2).unwrap();
        let esc = escalations_for(&[due(1)], at, &NoticeConfig::default());
        assert_eq!(esc.whistles, [(7, Some("yellow"), false)]);
        let ids: Vec<&str> = esc.notices.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            ["whistle-7-step-1-notice", "whistle-7-step-1-centre_head"]
        );
        assert_eq!(esc.notices[0].recipient, "department:fire_rescue");
        assert_eq!(esc.notices[0].route.channel, "log");
        let (case, e) = &esc.events[0];
        assert_eq!(*case, 3);
        assert_eq!(e.note, "第2次短信 · 黄牌 · 通知中心负责人");
        assert_eq!(e.data["lateness_ms"], 2000);
    }

    #[test]
    fn the_last_step_goes_to_the_supervision_webhook() {
        let cfg = NoticeConfig {
            sms_webhook: None,
            supervision_webhook: Some("http://127.0.0.1:9/s".into()),
        };
        let esc = escalations_for(&[due(3)], Utc::now(), &cfg);
        assert_eq!(esc.whistles, [(7, None, true)]);
        assert_eq!(esc.notices.len(), 1);
        assert_eq!(esc.notices[0].kind, "supervision");
        assert_eq!(esc.notices[0].route.channel, "webhook");
        assert_eq!(
            esc.notices[0].route.target.as_deref(),
            Some("http://127.0.0.1:9/s")
        );
    }

    #[test]
    fn the_same_step_always_gives_the_same_notice_ids() {
        let a = escalations_for(&[due(2)], Utc::now(), &NoticeConfig::default());
        let b = escalations_for(
            &[due(2)],
            Utc::now() + Duration::hours(1),
            &NoticeConfig::default(),
        );
        let ids = |e: &Escalations| e.notices.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
    }

    #[test]
    fn retries_back_off_and_stop_growing() {
        assert_eq!(retry_delay(1), Duration::seconds(1));
        assert_eq!(retry_delay(2), Duration::seconds(2));
        assert_eq!(retry_delay(5), Duration::seconds(16));
        assert_eq!(retry_delay(40), Duration::seconds(900));
    }

    #[test]
    fn photos_must_be_what_they_claim() {
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nrest");
        let ok = decode_photos(&[PhotoInput {
            content_type: "image/png".into(),
            data_base64: png.clone(),
        }])
        .unwrap();
        assert_eq!(ok[0].0, "image/png");
        let err = decode_photos(&[PhotoInput {
            content_type: "image/jpeg".into(),
            data_base64: png,
        }])
        .unwrap_err();
        assert!(err.to_string().starts_with("photos[0]"), "{err}");
        let err = decode_photos(&[PhotoInput {
            content_type: "image/gif".into(),
            data_base64: "AA==".into(),
        }])
        .unwrap_err();
        assert!(err.to_string().contains("content_type"), "{err}");
    }

    #[test]
    fn a_lead_override_tells_null_from_absent() {
        let a: ActionInput = serde_json::from_str(r#"{"action":"accept"}"#).unwrap();
        assert_eq!(a.lead_department, None);
        let b: ActionInput =
            serde_json::from_str(r#"{"action":"accept","lead_department":null}"#).unwrap();
        assert_eq!(b.lead_department, Some(None));
        let c: ActionInput =
            serde_json::from_str(r#"{"action":"accept","lead_department":"police"}"#).unwrap();
        assert_eq!(c.lead_department, Some(Some("police".into())));
    }
}

/// A package as clients request it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"street": "150302003", "category": "flying_lead_charging", "note": "飞线充电集中整治"}))]
pub struct PackageInput {
    pub street: String,
    pub category: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
}

impl Gridwatch {
    /// 打包: the proposed cases of a street and category reported upward together.
    pub async fn create_package(
        &self,
        input: &PackageInput,
    ) -> Result<crate::storage::dispatch::PackageRow> {
        if !self.categories().contains_key(&input.category) {
            return Err(WorkflowError::invalid(
                "category",
                format!("unknown category {:?}", input.category),
            ));
        }
        let street_name = self
            .index()
            .get(&input.street)
            .filter(|r| r.level == crate::domain::Level::Street)
            .map(|r| r.name.clone())
            .ok_or_else(|| {
                WorkflowError::invalid(
                    "street",
                    format!("{:?} is not a current street code", input.street),
                )
            })?;
        let note = text("note", input.note.as_deref(), false)?.unwrap_or_default();
        let actor =
            text("actor", input.actor.as_deref(), false)?.unwrap_or_else(|| "dispatcher".into());
        let now = self.clock.now();
        let route = self.notice_config.supervision();
        let category_name = self.name_of(&input.category);
        let row = self
            .db
            .create_package(now, &input.street, &input.category, &note, &actor, |id, cases| NewNotice {
                id: format!("package-{id}"),
                kind: "package",
                case_id: None,
                route,
                recipient: "upward".into(),
                payload: json!({
                    "package_id": id, "street": input.street, "category": input.category,
                    "case_ids": cases,
                    "text": format!("{street_name}近期{category_name}问题 {} 件，打包上报", cases.len()),
                }),
                created_at: now,
            })
            .await?
            .ok_or_else(|| {
                WorkflowError::invalid("category", format!("{street_name} has too few unpackaged {category_name} cases to package now"))
            })?;
        self.notices_waiting.notify_one();
        Ok(row)
    }

    /// Validates and stores a category's duplicate and packaging settings.
    pub async fn set_category_dispatch(
        &self,
        code: &str,
        s: &crate::storage::dispatch::CategoryDispatch,
    ) -> Result<()> {
        if !(s.duplicate_radius_m > 0.0 && s.duplicate_radius_m <= 5000.0) {
            return Err(WorkflowError::invalid(
                "duplicate_radius_m",
                "must be more than 0 and at most 5000",
            ));
        }
        if !(1..=365).contains(&s.duplicate_window_days) {
            return Err(WorkflowError::invalid(
                "duplicate_window_days",
                "must be 1 to 365",
            ));
        }
        if !(2..=10_000).contains(&s.package_min_reports) {
            return Err(WorkflowError::invalid(
                "package_min_reports",
                "must be 2 to 10000",
            ));
        }
        if !(1..=365).contains(&s.package_window_days) {
            return Err(WorkflowError::invalid(
                "package_window_days",
                "must be 1 to 365",
            ));
        }
        if !self.db.set_category_dispatch(code, s).await? {
            return Err(WorkflowError::NotFound(format!("no category {code:?}")));
        }
        Ok(())
    }
}
