//! Dispatch storage: departments, routing rules, cases and their append-only history, whistles,
//! escalation deadlines, the notice outbox, packages and the figures leaders watch.
//!
//! Every change of a case happens in a [`CaseTx`]: the case row is locked (`for update`), the
//! caller decides, and the new state, its event and its notices commit together or not at all.
//! Times always come from the caller (the service clock), never from `now()`.

use super::reports::NewReport;
use super::{db, Db, Result};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, Postgres, Transaction};

// ---- reference data --------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Department {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

/// A category's duplicate and packaging settings.
#[derive(
    Debug, Clone, Copy, Serialize, serde::Deserialize, sqlx::FromRow, PartialEq, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct CategoryDispatch {
    pub duplicate_radius_m: f64,
    pub duplicate_window_days: i32,
    pub package_min_reports: i32,
    pub package_window_days: i32,
}

/// A routing rule as stored; `None` category or territory means "any".
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RuleRow {
    pub id: i64,
    pub category: Option<String>,
    pub territory: Option<String>,
    pub territory_name: Option<String>,
    pub lead_department: Option<String>,
    pub co_departments: Vec<String>,
    pub note: String,
}

/// The fields of a rule a client sets.
#[derive(Debug, Clone)]
pub struct RuleFields {
    pub category: Option<String>,
    pub territory: Option<String>,
    pub lead_department: Option<String>,
    pub co_departments: Vec<String>,
    pub note: String,
}

const RULE_SELECT: &str = "select r.id, r.category, r.territory, t.name as territory_name,
        r.lead_department, r.co_departments, r.note
   from routing_rule r left join region t on t.code = r.territory";

// ---- cases -----------------------------------------------------------------------------------

/// What intake decided for a new case, beside its report.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub party_branch_code: Option<String>,
    pub routed_kind: &'static str,
    pub routed_lead: String,
    pub routed_co: Vec<String>,
    pub routing_rule_id: Option<i64>,
    pub routing_why: String,
    pub routing_why_zh: String,
    pub opened_at: DateTime<Utc>,
    /// who filed it, for the first event (e.g. "resident")
    pub actor: String,
    /// tell the grid's staff (not for the past cases a demo loads)
    pub notify_staff: bool,
}

/// Where a notice goes: the channel and, for a webhook, its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channel: &'static str,
    pub target: Option<String>,
}

/// A notice to write into the outbox.
#[derive(Debug, Clone)]
pub struct NewNotice {
    /// the deduplication key: the same cause always produces the same id
    pub id: String,
    pub kind: &'static str,
    pub case_id: Option<i64>,
    pub route: Route,
    pub recipient: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// A case as read, with the names of the regions and routing.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CaseRow {
    pub id: i64,
    pub report_id: i64,
    pub state: String,
    pub category: String,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub reported_at: DateTime<Utc>,
    pub source: String,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub district_code: Option<String>,
    pub district_name: Option<String>,
    pub street_code: Option<String>,
    pub street_name: Option<String>,
    pub community_code: Option<String>,
    pub community_name: Option<String>,
    pub grid_code: Option<String>,
    pub grid_name: Option<String>,
    pub micro_grid_code: Option<String>,
    pub micro_grid_name: Option<String>,
    pub party_branch_code: Option<String>,
    pub pb_name: Option<String>,
    pub pb_secretary: Option<String>,
    pub pb_contact: Option<String>,
    pub routed_kind: String,
    pub routed_lead: String,
    pub routed_lead_name: String,
    pub routed_co: Vec<String>,
    pub routing_rule_id: Option<i64>,
    pub routing_why: String,
    pub routing_why_zh: String,
    pub responsibility: Option<String>,
    pub difficulty: Option<String>,
    pub urgency: Option<String>,
    pub lead_department: Option<String>,
    pub co_departments: Vec<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub coordinator: Option<String>,
    pub answer: Option<String>,
    pub satisfaction: Option<i16>,
    pub merged_into: Option<i64>,
    pub reject_reason: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub evaluated_at: Option<DateTime<Utc>>,
    pub duplicate_count: i64,
    pub overdue: bool,
}

/// `$1` is always "now" (for `overdue`).
const CASE_SELECT: &str = "select c.id, c.report_id, c.state, c.category, r.description,
        st_x(c.geom) as lon, st_y(c.geom) as lat, r.reported_at, r.source, c.opened_at, c.updated_at,
        c.district_code, dr.name as district_name, c.street_code, sr.name as street_name,
        c.community_code, cr.name as community_name, c.grid_code, gr.name as grid_name,
        c.micro_grid_code, mr.name as micro_grid_name,
        c.party_branch_code, pb.name as pb_name, pb.secretary as pb_secretary, pb.contact as pb_contact,
        c.routed_kind, c.routed_lead, coalesce(ld.name_zh, lr.name, c.routed_lead) as routed_lead_name,
        c.routed_co, c.routing_rule_id, c.routing_why, c.routing_why_zh, c.responsibility, c.difficulty, c.urgency,
        c.lead_department, c.co_departments, c.deadline, c.coordinator, c.answer, c.satisfaction,
        c.merged_into, c.reject_reason, c.accepted_at, c.resolved_at, c.closed_at, c.evaluated_at,
        (select count(*) from dispatch_case o
          where o.category = c.category and o.id <> c.id
            and o.state not in ('rejected', 'merged', 'evaluated')
            and o.opened_at between c.opened_at - make_interval(days => cat.duplicate_window_days)
                                and c.opened_at + make_interval(days => cat.duplicate_window_days)
            and o.geom && st_expand(c.geom, cat.duplicate_radius_m / 70000.0)
            and st_dwithin(o.geom::geography, c.geom::geography, cat.duplicate_radius_m)) as duplicate_count,
        (c.state in ('accepted', 'whistled', 'acknowledged')
          and (exists (select 1 from case_whistle w
                        where w.case_id = c.id and w.acknowledged_at is null and w.card is not null)
               or coalesce(c.deadline < $1, false))) as overdue
   from dispatch_case c
   join report r on r.id = c.report_id
   join category cat on cat.code = c.category
   left join region dr on dr.code = c.district_code
   left join region sr on sr.code = c.street_code
   left join region cr on cr.code = c.community_code
   left join region gr on gr.code = c.grid_code
   left join region mr on mr.code = c.micro_grid_code
   left join party_branch pb on pb.region_code = c.party_branch_code
   left join department ld on c.routed_kind = 'department' and ld.code = c.routed_lead
   left join region lr on c.routed_kind = 'territory' and lr.code = c.routed_lead";

/// The filters of the dispatcher's queue.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub states: Vec<String>,
    pub street: Option<String>,
    /// a region code: cases in it and below
    pub region: Option<String>,
    pub categories: Vec<String>,
    pub overdue_only: bool,
    /// a department code: only cases it leads, assists or was whistled on (a responder's view)
    pub department: Option<String>,
}

/// `$1` now, `$2` states, `$3` street, `$4` region, `$5` categories, `$6` overdue only,
/// `$7` department.
const CASE_FILTER: &str = "(cardinality($2::text[]) = 0 or c.state = any($2))
    and ($3::text is null or c.street_code = $3)
    and ($4::text is null or coalesce(c.micro_grid_code, c.grid_code, c.community_code, c.street_code, c.district_code) like $4 || '%')
    and (cardinality($5::text[]) = 0 or c.category = any($5))
    and ($7::text is null or c.lead_department = $7 or $7 = any(c.co_departments)
         or exists (select 1 from case_whistle w7 where w7.case_id = c.id and w7.department = $7))";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WhistleRow {
    pub id: i64,
    pub case_id: i64,
    pub department: String,
    pub department_name: String,
    pub role: String,
    pub whistled_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub card: Option<String>,
    pub supervised: bool,
    pub policy: Value,
    /// the next pending escalation step, if any
    pub next_step: Option<i32>,
    pub next_due_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub case_id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub department: Option<String>,
    pub department_name: Option<String>,
    pub note: String,
    pub data: Value,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DuplicateRow {
    pub id: i64,
    pub state: String,
    pub category: String,
    pub distance_m: f64,
    pub reported_at: DateTime<Utc>,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NoticeRow {
    pub id: String,
    pub kind: String,
    pub case_id: Option<i64>,
    pub channel: String,
    pub target: Option<String>,
    pub recipient: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// the SMS gateway's last word on it: `delivered` or `failed` (none: no receipt yet)
    pub receipt: Option<String>,
    pub receipt_at: Option<DateTime<Utc>>,
    pub receipt_detail: Option<String>,
}

const NOTICE_SELECT: &str = "select id, kind, case_id, channel, target, recipient, payload,
        created_at, attempts, delivered_at, last_error, receipt, receipt_at, receipt_detail
        from outbox";

/// A notice after its delivery receipt.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ReceiptOutcome {
    pub id: String,
    pub receipt: String,
    pub receipt_at: DateTime<Utc>,
    /// failed receipts so far
    pub receipt_failures: i32,
    pub delivered_at: Option<DateTime<Utc>>,
    /// the notice waits in the outbox to be sent (again)
    pub pending: bool,
}

/// The triage 三审 written at acceptance.
#[derive(Debug, Clone)]
pub struct Triage {
    pub responsibility: &'static str,
    pub difficulty: &'static str,
    pub urgency: &'static str,
    pub lead_department: Option<String>,
    pub co_departments: Vec<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub coordinator: Option<String>,
}

/// One event of a case's history.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub department: Option<String>,
    pub note: String,
    pub data: Value,
}

/// A due escalation step, as the scheduler claims it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueStep {
    pub deadline_id: i64,
    pub whistle_id: i64,
    pub step: i32,
    pub due_at: DateTime<Utc>,
    pub case_id: i64,
    pub department: String,
    /// the step of the whistle's policy (an `EscalationStep`)
    pub policy_step: Value,
    pub category: String,
    pub street_code: Option<String>,
}

/// What firing a batch of steps writes beside marking them fired.
#[derive(Debug, Clone, Default)]
pub struct Escalations {
    /// whistle id, card to show (the highest so far wins), pushed to supervision
    pub whistles: Vec<(i64, Option<&'static str>, bool)>,
    pub events: Vec<(i64, NewEvent)>,
    pub notices: Vec<NewNotice>,
}

/// A claimed notice, to deliver.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingNotice {
    pub id: String,
    pub kind: String,
    pub case_id: Option<i64>,
    pub channel: String,
    pub target: Option<String>,
    pub recipient: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

// ---- figures ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsBy {
    Department,
    Street,
    Grid,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StatsRow {
    pub code: String,
    pub name: String,
    pub cases: i64,
    pub closed: i64,
    pub closure_rate: Option<f64>,
    pub whistles: i64,
    pub acknowledged_on_time: i64,
    pub on_time_rate: Option<f64>,
    pub mean_ack_minutes: Option<f64>,
    pub mean_resolve_hours: Option<f64>,
    pub rated: i64,
    pub satisfied: i64,
    pub satisfaction_rate: Option<f64>,
    pub overdue: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PackageProposal {
    pub street_code: String,
    pub street_name: String,
    pub category: String,
    pub count: i64,
    pub window_days: i32,
    pub case_ids: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PackageRow {
    pub id: i64,
    pub street_code: String,
    pub street_name: String,
    pub category: String,
    pub note: String,
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub case_ids: Vec<i64>,
}

/// Where a case stands after its past (the demo's history): its row's columns.
#[derive(Debug, Clone)]
pub struct PastCase {
    pub case_id: i64,
    pub state: &'static str,
    pub triage: Option<Triage>,
    pub answer: Option<String>,
    pub satisfaction: Option<i16>,
    pub reject_reason: Option<&'static str>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub evaluated_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// One escalation step of a past whistle: (step, due, fired at, cancelled at).
pub type PastStep = (
    i32,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// A past whistle and its escalation steps.
#[derive(Debug, Clone)]
pub struct PastWhistle {
    pub case_id: i64,
    pub department: String,
    pub role: &'static str,
    pub whistled_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub card: Option<&'static str>,
    pub supervised: bool,
    pub steps: Vec<PastStep>,
}

/// The past of freshly opened cases, written in bulk.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub cases: Vec<PastCase>,
    pub whistles: Vec<PastWhistle>,
    pub events: Vec<(i64, NewEvent)>,
    pub policy: Value,
}

/// A rating at or above this counts as satisfied 满意.
pub const SATISFIED_AT_LEAST: i16 = 4;

impl Db {
    pub async fn departments(&self) -> Result<Vec<Department>> {
        sqlx::query_as("select code, name_zh, name_en from department order by sort_order, code")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing departments"))
    }

    pub async fn category_dispatch(&self) -> Result<Vec<(String, CategoryDispatch)>> {
        let rows: Vec<(String, f64, i32, i32, i32)> = sqlx::query_as(
            "select code, duplicate_radius_m, duplicate_window_days, package_min_reports,
                    package_window_days from category order by sort_order, code",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading category dispatch settings"))?;
        Ok(rows
            .into_iter()
            .map(|(code, r, w, m, p)| {
                (
                    code,
                    CategoryDispatch {
                        duplicate_radius_m: r,
                        duplicate_window_days: w,
                        package_min_reports: m,
                        package_window_days: p,
                    },
                )
            })
            .collect())
    }

    /// Returns false when there is no such category.
    pub async fn set_category_dispatch(&self, code: &str, s: &CategoryDispatch) -> Result<bool> {
        let n = sqlx::query(
            "update category set duplicate_radius_m = $2, duplicate_window_days = $3,
                    package_min_reports = $4, package_window_days = $5 where code = $1",
        )
        .bind(code)
        .bind(s.duplicate_radius_m)
        .bind(s.duplicate_window_days)
        .bind(s.package_min_reports)
        .bind(s.package_window_days)
        .execute(&self.pool)
        .await
        .map_err(db("updating category dispatch settings"))?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn routing_rules(&self) -> Result<Vec<RuleRow>> {
        sqlx::query_as(&format!("{RULE_SELECT} order by r.id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing routing rules"))
    }

    pub async fn routing_rule(&self, id: i64) -> Result<Option<RuleRow>> {
        sqlx::query_as(&format!("{RULE_SELECT} where r.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a routing rule"))
    }

    /// Inserts (`id` None) or updates a rule; `Ok(None)` when the rule to update does not exist.
    pub async fn save_routing_rule(&self, id: Option<i64>, r: &RuleFields) -> Result<Option<i64>> {
        let q = match id {
            None => sqlx::query_scalar(
                "insert into routing_rule (category, territory, lead_department, co_departments, note)
                 values ($1, $2, $3, $4, $5) returning id",
            ),
            Some(_) => sqlx::query_scalar(
                "update routing_rule set category = $1, territory = $2, lead_department = $3,
                        co_departments = $4, note = $5, updated_at = now()
                  where id = $6 returning id",
            ),
        };
        q.bind(&r.category)
            .bind(&r.territory)
            .bind(&r.lead_department)
            .bind(&r.co_departments)
            .bind(&r.note)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("saving a routing rule"))
    }

    pub async fn delete_routing_rule(&self, id: i64) -> Result<bool> {
        let n = sqlx::query("delete from routing_rule where id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a routing rule"))?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn dispatch_setting(&self, key: &str) -> Result<Option<Value>> {
        sqlx::query_scalar("select value from dispatch_setting where key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a dispatch setting"))
    }

    pub async fn set_dispatch_setting(&self, key: &str, value: &Value) -> Result<()> {
        sqlx::query(
            "insert into dispatch_setting (key, value) values ($1, $2)
             on conflict (key) do update set value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db("writing a dispatch setting"))?;
        Ok(())
    }

    /// Writes reports and opens their cases in one statement: the report, the case, its first
    /// event and the notice to the grid's staff, routed by `routes[i]` (a grouped write may hold
    /// reports of services with different channels). Returns (report id, case id) in input order.
    pub async fn file_reports(
        &self,
        items: &[(NewReport, NewCase)],
        routes: &[Route],
    ) -> Result<Vec<(i64, i64)>> {
        let mut conn = self.pool.acquire().await.map_err(db("filing reports"))?;
        file_reports(&mut conn, items, routes).await
    }

    /// [`Db::file_reports`] for a bulk load guarded by a `meta` marker; `history` turns the new
    /// (report id, case id) pairs into the past of those cases, written in the same transaction
    /// (the demo). `Ok(None)` when the marker was set already.
    pub async fn file_reports_once(
        &self,
        items: &[(NewReport, NewCase)],
        staff_route: &Route,
        marker: &str,
        history: impl FnOnce(&[(i64, i64)]) -> History,
    ) -> Result<Option<Vec<(i64, i64)>>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a bulk load"))?;
        if !super::claim_marker(&mut tx, marker).await? {
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(items.len());
        for chunk in items.chunks(5000) {
            let routes = vec![staff_route.clone(); chunk.len()];
            ids.extend(file_reports(&mut tx, chunk, &routes).await?);
        }
        write_history(&mut tx, &history(&ids)).await?;
        tx.commit().await.map_err(db("committing a bulk load"))?;
        Ok(Some(ids))
    }

    /// Writes the past of cases opened already (the benchmark's deadlines).
    pub async fn write_history(&self, h: &History) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db("writing a history"))?;
        write_history(&mut tx, h).await?;
        tx.commit().await.map_err(db("committing a history"))
    }

    /// The queue: newest first, `before_id` continues a page.
    pub async fn cases(
        &self,
        now: DateTime<Utc>,
        f: &CaseFilter,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<CaseRow>> {
        let sql = format!(
            "select * from ({CASE_SELECT} where {CASE_FILTER} and ($8::int8 is null or c.id < $8)
              order by c.id desc) q
              where not $6 or q.overdue limit $9"
        );
        sqlx::query_as(&sql)
            .bind(now)
            .bind(&f.states)
            .bind(&f.street)
            .bind(&f.region)
            .bind(&f.categories)
            .bind(f.overdue_only)
            .bind(&f.department)
            .bind(before_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing cases"))
    }

    /// Notices not delivered yet, and how many of them failed their last attempt.
    pub async fn undelivered_notices(&self) -> Result<(i64, i64)> {
        sqlx::query_as(
            "select count(*), count(*) filter (where last_error is not null)
               from outbox where delivered_at is null",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("counting undelivered notices"))
    }

    /// Cases per state, and overdue ones, under the filter's street, region and categories.
    pub async fn case_counts(
        &self,
        now: DateTime<Utc>,
        f: &CaseFilter,
    ) -> Result<(Vec<(String, i64)>, i64)> {
        let unstated = CaseFilter {
            states: Vec::new(),
            ..f.clone()
        };
        let sql = format!(
            "select c.state, count(*) from dispatch_case c where {CASE_FILTER} and $1::timestamptz is not null
              and $6::bool is not null group by c.state"
        );
        let by_state: Vec<(String, i64)> = sqlx::query_as(&sql)
            .bind(now)
            .bind(&unstated.states)
            .bind(&unstated.street)
            .bind(&unstated.region)
            .bind(&unstated.categories)
            .bind(false)
            .bind(&unstated.department)
            .fetch_all(&self.pool)
            .await
            .map_err(db("counting cases"))?;
        let sql = format!(
            "select count(*) from dispatch_case c where {CASE_FILTER} and $6::bool is not null
               and c.state in ('accepted', 'whistled', 'acknowledged')
               and (exists (select 1 from case_whistle w
                             where w.case_id = c.id and w.acknowledged_at is null and w.card is not null)
                    or coalesce(c.deadline < $1, false))"
        );
        let overdue: i64 = sqlx::query_scalar(&sql)
            .bind(now)
            .bind(&unstated.states)
            .bind(&unstated.street)
            .bind(&unstated.region)
            .bind(&unstated.categories)
            .bind(false)
            .bind(&unstated.department)
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting overdue cases"))?;
        Ok((by_state, overdue))
    }

    pub async fn case(&self, now: DateTime<Utc>, id: i64) -> Result<Option<CaseRow>> {
        sqlx::query_as(&format!("{CASE_SELECT} where c.id = $2"))
            .bind(now)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a case"))
    }

    /// The case a report opened.
    pub async fn case_of_report(
        &self,
        now: DateTime<Utc>,
        report_id: i64,
    ) -> Result<Option<CaseRow>> {
        sqlx::query_as(&format!("{CASE_SELECT} where c.report_id = $2"))
            .bind(now)
            .bind(report_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a report's case"))
    }

    /// The whistles of the cases, oldest first, with each one's next pending step.
    pub async fn whistles(&self, case_ids: &[i64]) -> Result<Vec<WhistleRow>> {
        whistles(
            &mut *self.pool.acquire().await.map_err(db("reading whistles"))?,
            case_ids,
        )
        .await
    }

    pub async fn case_events(&self, case_id: i64) -> Result<Vec<EventRow>> {
        sqlx::query_as(
            "select e.id, e.case_id, e.at, e.actor, e.action, e.from_state, e.to_state,
                    e.department, d.name_zh as department_name, e.note, e.data
               from case_event e left join department d on d.code = e.department
              where e.case_id = $1 order by e.id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a case's history"))
    }

    /// Cases offered as duplicates of `case_id`: same category, within the category's radius
    /// and window, not finished; nearest first.
    pub async fn duplicates(&self, case_id: i64) -> Result<Vec<DuplicateRow>> {
        sqlx::query_as(
            "select o.id, o.state, o.category,
                    st_distance(o.geom::geography, c.geom::geography) as distance_m,
                    r.reported_at, r.description, st_x(o.geom) as lon, st_y(o.geom) as lat
               from dispatch_case c
               join category cat on cat.code = c.category
               join dispatch_case o on o.category = c.category and o.id <> c.id
               join report r on r.id = o.report_id
              where c.id = $1
                and o.state not in ('rejected', 'merged', 'evaluated')
                and o.opened_at between c.opened_at - make_interval(days => cat.duplicate_window_days)
                                    and c.opened_at + make_interval(days => cat.duplicate_window_days)
                and o.geom && st_expand(c.geom, cat.duplicate_radius_m / 70000.0)
                and st_dwithin(o.geom::geography, c.geom::geography, cat.duplicate_radius_m)
              order by distance_m, o.id
              limit 50",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("finding duplicates"))
    }

    /// Ids of the cases merged into `case_id`.
    pub async fn merged_cases(&self, case_id: i64) -> Result<Vec<i64>> {
        sqlx::query_scalar("select id from dispatch_case where merged_into = $1 order by id")
            .bind(case_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing merged cases"))
    }

    pub async fn case_staff(
        &self,
        grid_code: &str,
    ) -> Result<Vec<(String, String, Option<String>)>> {
        sqlx::query_as(
            "select role, name, phone from grid_staff where region_code = $1 order by role, id",
        )
        .bind(grid_code)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing grid staff"))
    }

    pub async fn case_photo_count(&self, case_id: i64) -> Result<i64> {
        sqlx::query_scalar("select count(*) from case_photo where case_id = $1")
            .bind(case_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting photos"))
    }

    pub async fn case_photo(&self, case_id: i64, n: i32) -> Result<Option<(String, Vec<u8>)>> {
        sqlx::query_as("select content_type, data from case_photo where case_id = $1 and n = $2")
            .bind(case_id)
            .bind(n)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a photo"))
    }

    pub async fn case_notices(&self, case_id: i64) -> Result<Vec<NoticeRow>> {
        sqlx::query_as(&format!(
            "{NOTICE_SELECT} where case_id = $1 order by created_at, id"
        ))
        .bind(case_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing notices"))
    }

    /// Locks a case for a change; `None` when it does not exist.
    pub async fn begin_case(&self, id: i64) -> Result<Option<CaseTx>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a case change"))?;
        let Some(state) = lock_case(&mut tx, id).await? else {
            return Ok(None);
        };
        Ok(Some(CaseTx { tx, id, state }))
    }

    /// Claims up to `limit` escalation steps due by `now` (skipping ones another scheduler
    /// holds), marks them fired and writes what `decide` makes of them, in one transaction.
    /// Returns the steps fired.
    pub async fn fire_due_steps(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        decide: impl FnOnce(&[DueStep]) -> Escalations,
    ) -> Result<Vec<DueStep>> {
        let mut tx = self.pool.begin().await.map_err(db("starting escalation"))?;
        let due: Vec<DueStep> = sqlx::query_as(
            "select d.id as deadline_id, d.whistle_id, d.step, d.due_at, w.case_id, w.department,
                    w.policy->'steps'->d.step as policy_step, c.category, c.street_code
               from escalation_deadline d
               join case_whistle w on w.id = d.whistle_id
               join dispatch_case c on c.id = w.case_id
              where d.fired_at is null and d.cancelled_at is null and d.due_at <= $1
              order by d.due_at, d.id
              limit $2
                for update of d skip locked",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("claiming due escalation steps"))?;
        if due.is_empty() {
            return Ok(due);
        }
        let esc = decide(&due);
        let ids: Vec<i64> = due.iter().map(|d| d.deadline_id).collect();
        sqlx::query("update escalation_deadline set fired_at = $2 where id = any($1)")
            .bind(&ids)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("marking escalation steps fired"))?;
        apply_escalations(&mut tx, &esc, now).await?;
        tx.commit().await.map_err(db("committing escalation"))?;
        Ok(due)
    }

    /// Open escalation steps and the earliest due one.
    pub async fn pending_steps(&self) -> Result<(i64, Option<DateTime<Utc>>)> {
        sqlx::query_as(
            "select count(*), min(due_at) from escalation_deadline
              where fired_at is null and cancelled_at is null",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("counting pending escalation steps"))
    }

    /// Leases up to `limit` notices due for delivery by `now` for `lease`; each lease counts as
    /// an attempt. A notice whose lease ran out (its deliverer died) is claimed again.
    pub async fn claim_notices(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<PendingNotice>> {
        sqlx::query_as(
            "update outbox o set leased_until = $1 + $3 * interval '1 millisecond',
                    attempts = o.attempts + 1
               from (select id from outbox
                      where delivered_at is null and next_attempt_at <= $1
                        and (leased_until is null or leased_until <= $1)
                      order by next_attempt_at, id
                      limit $2
                        for update skip locked) due
              where o.id = due.id
          returning o.id, o.kind, o.case_id, o.channel, o.target, o.recipient, o.payload,
                    o.created_at, o.attempts",
        )
        .bind(now)
        .bind(limit)
        .bind(lease.num_milliseconds() as f64)
        .fetch_all(&self.pool)
        .await
        .map_err(db("claiming notices"))
    }

    pub async fn notice_delivered(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            // A failed receipt was for the send before this one: the next receipt tells.
            "update outbox set delivered_at = $2, leased_until = null, last_error = null,
                    receipt = case when receipt = 'failed' then null else receipt end,
                    receipt_at = case when receipt = 'failed' then null else receipt_at end,
                    receipt_detail = case when receipt = 'failed' then null else receipt_detail end
              where id = $1",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(db("marking a notice delivered"))?;
        Ok(())
    }

    /// Records the SMS gateway's receipt for notice `id`. `delivered` marks it delivered (also
    /// when the receipt overtakes the courier's own mark); `failed` after delivery puts it back
    /// in the outbox to go out at once, unless `max_failures` failed receipts were reached — then
    /// it stays delivered-and-failed, for people to follow up. A failed receipt counts once per
    /// send (the courier's next delivery clears it), so a repeated one changes nothing more.
    /// `None`: no such notice.
    pub async fn notice_receipt(
        &self,
        id: &str,
        delivered: bool,
        detail: Option<&str>,
        now: DateTime<Utc>,
        max_failures: i32,
    ) -> Result<Option<ReceiptOutcome>> {
        sqlx::query_as(
            "with old as (select id, delivered_at, receipt_failures,
                                 (not $2 and delivered_at is not null
                                  and receipt is distinct from 'failed') as counts
                            from outbox where id = $1 for update)
             update outbox o set
                 receipt = case when $2 then 'delivered' else 'failed' end,
                 receipt_at = $4,
                 receipt_detail = $3,
                 receipt_failures = old.receipt_failures + old.counts::int,
                 delivered_at = case
                     when $2 then coalesce(old.delivered_at, $4)
                     when old.counts and old.receipt_failures + 1 < $5 then null
                     else old.delivered_at end,
                 next_attempt_at = case
                     when old.counts and old.receipt_failures + 1 < $5 then $4
                     else o.next_attempt_at end,
                 last_error = case
                     when $2 then null
                     when old.counts then 'the SMS gateway could not deliver it: '
                                          || coalesce($3, 'no reason given')
                     else o.last_error end,
                 leased_until = case when $2 then null else o.leased_until end
               from old where o.id = old.id
             returning o.id, o.receipt, o.receipt_at, o.receipt_failures, o.delivered_at,
                       o.delivered_at is null as pending",
        )
        .bind(id)
        .bind(delivered)
        .bind(detail)
        .bind(now)
        .bind(max_failures)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("recording a delivery receipt"))
    }

    pub async fn notice_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "update outbox set last_error = $2, next_attempt_at = $3, leased_until = null where id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(&self.pool)
        .await
        .map_err(db("marking a notice failed"))?;
        Ok(())
    }

    /// Undelivered notices, and the earliest next attempt.
    pub async fn pending_notices(&self) -> Result<(i64, Option<DateTime<Utc>>)> {
        sqlx::query_as(
            "select count(*), min(next_attempt_at) from outbox where delivered_at is null",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("counting pending notices"))
    }

    /// Figures per department, street or grid over cases opened in `[from, to)`.
    pub async fn dispatch_stats(
        &self,
        now: DateTime<Utc>,
        by: StatsBy,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<StatsRow>> {
        // Per case: its unit (one row per whistled department when by department).
        let (unit_from, unit_key, unit_name) = match by {
            StatsBy::Department => (
                "dispatch_case c join case_whistle uw on uw.case_id = c.id
                 join department u on u.code = uw.department",
                "u.code",
                "u.name_zh",
            ),
            StatsBy::Street => (
                "dispatch_case c join region u on u.code = c.street_code",
                "u.code",
                "u.name",
            ),
            StatsBy::Grid => (
                "dispatch_case c join region u on u.code = c.grid_code",
                "u.code",
                "u.name",
            ),
        };
        let whistle_scope = match by {
            StatsBy::Department => "w.department = base.code",
            _ => "true",
        };
        let sql = format!(
            "with base as (
                select distinct {unit_key} as code, {unit_name} as name, c.id, c.state, c.opened_at,
                       c.resolved_at, c.satisfaction, c.deadline
                  from {unit_from}
                 where c.state <> 'merged'
                   and ($2::timestamptz is null or c.opened_at >= $2)
                   and ($3::timestamptz is null or c.opened_at < $3)
            ), w as (
                select base.code, w.whistled_at, w.acknowledged_at, w.card
                  from base join case_whistle w on w.case_id = base.id and {whistle_scope}
            ), cases as (
                select code, min(name) as name, count(*) as cases,
                       count(*) filter (where state in ('closed', 'evaluated')) as closed,
                       count(*) filter (where state <> 'rejected') as accountable,
                       avg(extract(epoch from resolved_at - opened_at) / 3600.0) as mean_resolve_hours,
                       count(satisfaction) as rated,
                       count(*) filter (where satisfaction >= {SATISFIED_AT_LEAST}) as satisfied,
                       count(*) filter (where state in ('accepted', 'whistled', 'acknowledged')
                                          and (coalesce(deadline < $1, false)
                                               or exists (select 1 from case_whistle x
                                                           where x.case_id = base.id
                                                             and x.acknowledged_at is null
                                                             and x.card is not null))) as overdue
                  from base group by code
            ), whistles as (
                select code, count(*) as whistles,
                       count(*) filter (where acknowledged_at is not null and card is null) as on_time,
                       count(*) filter (where acknowledged_at is not null or card is not null) as judged,
                       avg(extract(epoch from acknowledged_at - whistled_at) / 60.0) as mean_ack_minutes
                  from w group by code
            )
            select cases.code, cases.name, cases.cases, cases.closed,
                   cases.closed::float8 / nullif(cases.accountable, 0) as closure_rate,
                   coalesce(whistles.whistles, 0) as whistles,
                   coalesce(whistles.on_time, 0) as acknowledged_on_time,
                   whistles.on_time::float8 / nullif(whistles.judged, 0) as on_time_rate,
                   whistles.mean_ack_minutes::float8 as mean_ack_minutes,
                   cases.mean_resolve_hours::float8 as mean_resolve_hours,
                   cases.rated, cases.satisfied,
                   cases.satisfied::float8 / nullif(cases.rated, 0) as satisfaction_rate,
                   cases.overdue
              from cases left join whistles on whistles.code = cases.code
             order by cases.code"
        );
        sqlx::query_as(&sql)
            .bind(now)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(db("computing dispatch figures"))
    }

    /// Streets × categories with at least the category's `package_min_reports` cases in its
    /// `package_window_days` up to `now`, not yet packaged, rejected or merged.
    pub async fn package_proposals(&self, now: DateTime<Utc>) -> Result<Vec<PackageProposal>> {
        sqlx::query_as(
            "select c.street_code, s.name as street_name, c.category, count(*) as count,
                    min(cat.package_window_days) as window_days,
                    array_agg(c.id order by c.id) as case_ids
               from dispatch_case c
               join category cat on cat.code = c.category
               join region s on s.code = c.street_code
              where c.state not in ('rejected', 'merged')
                and c.opened_at > $1 - make_interval(days => cat.package_window_days)
                and c.opened_at <= $1
                and not exists (select 1 from case_package_member m where m.case_id = c.id)
              group by c.street_code, s.name, c.category
             having count(*) >= min(cat.package_min_reports)
              order by count(*) desc, c.street_code, c.category",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db("proposing packages"))
    }

    /// Packages the proposed cases of `street` × `category` and writes the upward notice, in
    /// one transaction; `Ok(None)` when nothing is proposed there.
    pub async fn create_package(
        &self,
        now: DateTime<Utc>,
        street: &str,
        category: &str,
        note: &str,
        actor: &str,
        notice: impl FnOnce(i64, &[i64]) -> NewNotice,
    ) -> Result<Option<PackageRow>> {
        let mut tx = self.pool.begin().await.map_err(db("packaging"))?;
        // One packager at a time per street and category, so a case is packaged once.
        sqlx::query("select pg_advisory_xact_lock(hashtext('package:' || $1 || ':' || $2))")
            .bind(street)
            .bind(category)
            .execute(&mut *tx)
            .await
            .map_err(db("locking a package"))?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "select c.id from dispatch_case c join category cat on cat.code = c.category
              where c.street_code = $1 and c.category = $2
                and c.state not in ('rejected', 'merged')
                and c.opened_at > $3 - make_interval(days => cat.package_window_days)
                and c.opened_at <= $3
                and not exists (select 1 from case_package_member m where m.case_id = c.id)
              order by c.id",
        )
        .bind(street)
        .bind(category)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("choosing packaged cases"))?;
        let min: i32 =
            sqlx::query_scalar("select package_min_reports from category where code = $1")
                .bind(category)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("reading the package threshold"))?
                .unwrap_or(i32::MAX);
        if (ids.len() as i64) < i64::from(min) {
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
            "insert into case_package (street_code, category, note, actor, created_at)
             values ($1, $2, $3, $4, $5) returning id",
        )
        .bind(street)
        .bind(category)
        .bind(note)
        .bind(actor)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("writing a package"))?;
        sqlx::query(
            "insert into case_package_member (package_id, case_id) select $1, unnest($2::int8[])",
        )
        .bind(id)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(db("writing package members"))?;
        insert_notices(&mut tx, &[notice(id, &ids)]).await?;
        tx.commit().await.map_err(db("committing a package"))?;
        Ok(self.packages(Some(id)).await?.into_iter().next())
    }

    pub async fn packages(&self, id: Option<i64>) -> Result<Vec<PackageRow>> {
        sqlx::query_as(
            "select p.id, p.street_code, s.name as street_name, p.category, p.note, p.actor,
                    p.created_at,
                    array(select m.case_id from case_package_member m
                           where m.package_id = p.id order by m.case_id) as case_ids
               from case_package p join region s on s.code = p.street_code
              where $1::int8 is null or p.id = $1
              order by p.id desc limit 200",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing packages"))
    }

    pub async fn case_count(&self) -> Result<i64> {
        sqlx::query_scalar("select count(*) from dispatch_case")
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting cases"))
    }
}

/// A case locked for one change. Dropped without [`CaseTx::commit`], it changes nothing.
pub struct CaseTx {
    tx: Transaction<'static, Postgres>,
    pub id: i64,
    pub state: String,
}

async fn lock_case(conn: &mut PgConnection, id: i64) -> Result<Option<String>> {
    sqlx::query_scalar("select state from dispatch_case where id = $1 for update")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(db("locking a case"))
}

impl CaseTx {
    /// The case as of this transaction.
    pub async fn row(&mut self, now: DateTime<Utc>) -> Result<CaseRow> {
        sqlx::query_as(&format!("{CASE_SELECT} where c.id = $2"))
            .bind(now)
            .bind(self.id)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(db("reading a locked case"))
    }

    /// Writes an audit line that commits (or fails) with the change.
    pub async fn audit(&mut self, entry: &super::accounts::AuditEntry<'_>) -> Result<()> {
        super::accounts::write_audit(&mut self.tx, entry).await
    }

    /// The case's whistles as of this transaction.
    pub async fn whistles(&mut self) -> Result<Vec<WhistleRow>> {
        whistles(&mut self.tx, &[self.id]).await
    }

    /// Locks another case (a merge target) in the same transaction.
    pub async fn lock_other(&mut self, id: i64) -> Result<Option<(String, String)>> {
        sqlx::query_as("select state, category from dispatch_case where id = $1 for update")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(db("locking a merge target"))
    }

    pub async fn category(&mut self) -> Result<String> {
        sqlx::query_scalar("select category from dispatch_case where id = $1")
            .bind(self.id)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(db("reading a case's category"))
    }

    pub async fn set_state(&mut self, state: &str, at: DateTime<Utc>) -> Result<()> {
        let stamp = match state {
            "resolved" => ", resolved_at = $3",
            "closed" => ", closed_at = $3",
            "evaluated" => ", evaluated_at = $3",
            _ => "",
        };
        sqlx::query(&format!(
            "update dispatch_case set state = $2, updated_at = $3{stamp} where id = $1"
        ))
        .bind(self.id)
        .bind(state)
        .bind(at)
        .execute(&mut *self.tx)
        .await
        .map_err(db("changing a case's state"))?;
        self.state = state.to_owned();
        Ok(())
    }

    /// The case becomes a duplicate merged into `into` (state and target change together).
    pub async fn merge_into(&mut self, into: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "update dispatch_case set state = 'merged', merged_into = $2, updated_at = $3 where id = $1",
        )
        .bind(self.id)
        .bind(into)
        .bind(at)
        .execute(&mut *self.tx)
        .await
        .map_err(db("merging a case"))?;
        self.state = "merged".to_owned();
        Ok(())
    }

    pub async fn set_triage(&mut self, t: &Triage, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "update dispatch_case set responsibility = $2, difficulty = $3, urgency = $4,
                    lead_department = $5, co_departments = $6, deadline = $7, coordinator = $8,
                    accepted_at = coalesce(accepted_at, $9), updated_at = $9
              where id = $1",
        )
        .bind(self.id)
        .bind(t.responsibility)
        .bind(t.difficulty)
        .bind(t.urgency)
        .bind(&t.lead_department)
        .bind(&t.co_departments)
        .bind(t.deadline)
        .bind(&t.coordinator)
        .bind(at)
        .execute(&mut *self.tx)
        .await
        .map_err(db("writing a triage"))?;
        Ok(())
    }

    /// Sets the outcome columns given: the answer, the rating, the reason for a rejection.
    pub async fn set_outcome(
        &mut self,
        answer: Option<&str>,
        satisfaction: Option<i16>,
        reject_reason: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "update dispatch_case set answer = coalesce($2, answer),
                    satisfaction = coalesce($3, satisfaction),
                    reject_reason = coalesce($4, reject_reason)
              where id = $1",
        )
        .bind(self.id)
        .bind(answer)
        .bind(satisfaction)
        .bind(reject_reason)
        .execute(&mut *self.tx)
        .await
        .map_err(db("writing a case's outcome"))?;
        Ok(())
    }

    pub async fn add_photos(&mut self, photos: &[(&'static str, Vec<u8>)]) -> Result<()> {
        let first: i32 =
            sqlx::query_scalar("select coalesce(max(n), 0) + 1 from case_photo where case_id = $1")
                .bind(self.id)
                .fetch_one(&mut *self.tx)
                .await
                .map_err(db("numbering photos"))?;
        for (i, (ct, data)) in photos.iter().enumerate() {
            sqlx::query(
                "insert into case_photo (case_id, n, content_type, data) values ($1, $2, $3, $4)",
            )
            .bind(self.id)
            .bind(first + i as i32)
            .bind(*ct)
            .bind(data)
            .execute(&mut *self.tx)
            .await
            .map_err(db("storing a photo"))?;
        }
        Ok(())
    }

    /// Whistles `department`, writing its escalation steps due `after_minutes` after `at`;
    /// returns the whistle id. Steps due at once are left for the caller to fire with
    /// [`CaseTx::fire_now`].
    pub async fn add_whistle(
        &mut self,
        department: &str,
        role: &str,
        at: DateTime<Utc>,
        policy: &Value,
        after_minutes: &[i64],
    ) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "insert into case_whistle (case_id, department, role, whistled_at, policy)
             values ($1, $2, $3, $4, $5) returning id",
        )
        .bind(self.id)
        .bind(department)
        .bind(role)
        .bind(at)
        .bind(policy)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(db("writing a whistle"))?;
        let steps: Vec<i32> = (0..after_minutes.len() as i32).collect();
        let due: Vec<DateTime<Utc>> = after_minutes
            .iter()
            .map(|m| at + Duration::minutes(*m))
            .collect();
        sqlx::query(
            "insert into escalation_deadline (whistle_id, step, due_at)
             select $1, s, d from unnest($2::int4[], $3::timestamptz[]) as t(s, d)",
        )
        .bind(id)
        .bind(&steps)
        .bind(&due)
        .execute(&mut *self.tx)
        .await
        .map_err(db("writing escalation deadlines"))?;
        Ok(id)
    }

    /// Fires the steps of this case's whistles that are due by `at` inside this transaction
    /// (notice 1 goes out with the whistle itself), writing what `decide` makes of them.
    pub async fn fire_now(
        &mut self,
        at: DateTime<Utc>,
        decide: impl FnOnce(&[DueStep]) -> Escalations,
    ) -> Result<()> {
        let due: Vec<DueStep> = sqlx::query_as(
            "select d.id as deadline_id, d.whistle_id, d.step, d.due_at, w.case_id, w.department,
                    w.policy->'steps'->d.step as policy_step, c.category, c.street_code
               from escalation_deadline d
               join case_whistle w on w.id = d.whistle_id
               join dispatch_case c on c.id = w.case_id
              where w.case_id = $1 and d.fired_at is null and d.cancelled_at is null and d.due_at <= $2
              order by d.due_at, d.id
                for update of d",
        )
        .bind(self.id)
        .bind(at)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db("finding steps due now"))?;
        if due.is_empty() {
            return Ok(());
        }
        let esc = decide(&due);
        let ids: Vec<i64> = due.iter().map(|d| d.deadline_id).collect();
        sqlx::query("update escalation_deadline set fired_at = $2 where id = any($1)")
            .bind(&ids)
            .bind(at)
            .execute(&mut *self.tx)
            .await
            .map_err(db("marking steps fired"))?;
        apply_escalations(&mut self.tx, &esc, at).await
    }

    /// 应哨: the department answers; its pending escalation steps are cancelled.
    pub async fn acknowledge(&mut self, whistle_id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("update case_whistle set acknowledged_at = $2 where id = $1")
            .bind(whistle_id)
            .bind(at)
            .execute(&mut *self.tx)
            .await
            .map_err(db("acknowledging a whistle"))?;
        sqlx::query(
            "update escalation_deadline set cancelled_at = $2
              where whistle_id = $1 and fired_at is null and cancelled_at is null",
        )
        .bind(whistle_id)
        .bind(at)
        .execute(&mut *self.tx)
        .await
        .map_err(db("stopping the escalation clock"))?;
        Ok(())
    }

    /// Cancels every pending step of the case (it was rejected, merged or resolved without
    /// every department answering).
    pub async fn cancel_steps(&mut self, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "update escalation_deadline d set cancelled_at = $2
               from case_whistle w
              where w.id = d.whistle_id and w.case_id = $1
                and d.fired_at is null and d.cancelled_at is null",
        )
        .bind(self.id)
        .bind(at)
        .execute(&mut *self.tx)
        .await
        .map_err(db("cancelling escalation steps"))?;
        Ok(())
    }

    pub async fn event(&mut self, case_id: i64, e: &NewEvent) -> Result<()> {
        insert_events(&mut self.tx, &[(case_id, e.clone())]).await
    }

    pub async fn touch(&mut self, case_id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("update dispatch_case set updated_at = $2 where id = $1")
            .bind(case_id)
            .bind(at)
            .execute(&mut *self.tx)
            .await
            .map_err(db("touching a case"))?;
        Ok(())
    }

    pub async fn notices(&mut self, notices: &[NewNotice]) -> Result<()> {
        insert_notices(&mut self.tx, notices).await
    }

    pub async fn commit(self) -> Result<()> {
        self.tx
            .commit()
            .await
            .map_err(db("committing a case change"))
    }
}

async fn whistles(conn: &mut PgConnection, case_ids: &[i64]) -> Result<Vec<WhistleRow>> {
    sqlx::query_as(
        "select w.id, w.case_id, w.department, d.name_zh as department_name, w.role, w.whistled_at,
                w.acknowledged_at, w.card, w.supervised, w.policy,
                n.step as next_step, n.due_at as next_due_at
           from case_whistle w
           join department d on d.code = w.department
           left join lateral (select step, due_at from escalation_deadline e
                               where e.whistle_id = w.id and e.fired_at is null and e.cancelled_at is null
                               order by due_at limit 1) n on true
          where w.case_id = any($1)
          order by w.case_id, w.id",
    )
    .bind(case_ids)
    .fetch_all(conn)
    .await
    .map_err(db("reading whistles"))
}

/// The write behind [`Db::file_reports`]: one statement, so a single report costs one round
/// trip and commits atomically even outside a transaction. Ids are drawn from the sequences up
/// front, so every row of a report and its case is written from the same input row.
async fn file_reports(
    conn: &mut PgConnection,
    items: &[(NewReport, NewCase)],
    routes: &[Route],
) -> Result<Vec<(i64, i64)>> {
    let r = |f: fn(&NewReport) -> Option<String>| -> Vec<Option<String>> {
        items.iter().map(|(r, _)| f(r)).collect()
    };
    // Postgres has no arrays of arrays of different lengths: co-departments travel as JSON.
    let co: Vec<Value> = items.iter().map(|(_, c)| json!(c.routed_co)).collect();
    let ids: Vec<(i64, i64)> = sqlx::query_as(
        "with t as materialized (
             select nextval(pg_get_serial_sequence('report', 'id')) as rid,
                    nextval(pg_get_serial_sequence('dispatch_case', 'id')) as cid,
                    st_setsrid(st_makepoint(lon, lat), 4326) as geom, *
               from unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[],
                           $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[],
                           $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                           $16::text[], $17::int8[], $18::float8[],
                           $19::text[], $20::text[], $21::text[], $22::jsonb[], $23::int8[],
                           $24::text[], $25::text[], $26::timestamptz[], $27::text[],
                           $28::text[], $29::text[], $30::bool[], $31::jsonb[], $32::text[],
                           $33::text[], $34::jsonb[], $35::int8[])
                    with ordinality
                    as u(cat, lon, lat, ilon, ilat, icrs, descr, src, rep_at, status, d, s, c, g, m,
                         rc, rv, dist, pb, kind, lead, co, rule, why, why_zh, opened, actor,
                         channel, target, notify, o311, idem_key, idem_sha, extra, tk, ord)
         ), reports as (
             insert into report (id, category, geom, input_lon, input_lat, input_crs, description,
                                 source, reported_at, locate_status, district_code, street_code,
                                 community_code, grid_code, micro_grid_code, region_code,
                                 region_version_id, distance_m, tile_key)
             select rid, cat, geom, ilon, ilat, icrs, descr, src, rep_at, status, d, s, c, g, m, rc,
                    rv, dist, tk
               from t
         ), cases as (
             insert into dispatch_case (id, report_id, state, category, geom, district_code,
                                        street_code, community_code, grid_code, micro_grid_code,
                                        party_branch_code, routed_kind, routed_lead, routed_co,
                                        routing_rule_id, routing_why, routing_why_zh, opened_at,
                                        updated_at)
             select cid, rid, 'reported', cat, geom, d, s, c, g, m, pb, kind, lead,
                    array(select jsonb_array_elements_text(co)), rule, why, why_zh, opened, opened
               from t
         ), events as (
             insert into case_event (case_id, at, actor, action, to_state, data)
             select cid, opened, actor, 'report', 'reported',
                    jsonb_build_object('report_id', rid, 'why', why)
               from t
         ), notices as (
             -- the grid's staff hear of every new case in their grid
             insert into outbox (id, kind, case_id, channel, target, recipient, payload, created_at,
                                 next_attempt_at)
             select 'case-' || t.cid || '-opened', 'case_opened', t.cid, t.channel, t.target, 'grid:' || t.g,
                    jsonb_build_object(
                        'case_id', t.cid, 'category', t.cat, 'grid', t.g,
                        'text', '新案件：' || cat.name_zh || '（' || gr.name || '）',
                        'staff', coalesce((select jsonb_agg(jsonb_build_object(
                                               'role', st.role, 'name', st.name, 'phone', st.phone)
                                               order by st.id)
                                             from grid_staff st where st.region_code = t.g), '[]')),
                    t.opened, t.opened
               from t
               join category cat on cat.code = t.cat
               join region gr on gr.code = t.g
              where t.notify
             on conflict (id) do nothing
         ), open311 as (
             insert into open311_request (report_id, token, api_client_id, jurisdiction_id,
                                          attributes, reporter, address_string, media_url)
             select rid, o311->>'token', (o311->>'api_client_id')::int8, o311->>'jurisdiction_id',
                    coalesce(o311->'attributes', '{}'), coalesce(o311->'reporter', '{}'),
                    o311->>'address_string', o311->>'media_url'
               from t
              where o311 is not null
         ), idempotency as (
             insert into report_idempotency (key, report_id, request_sha256)
             select idem_key, rid, idem_sha from t where idem_key is not null
         ), photos as (
             insert into report_photo (report_id, photo_id, n)
             select t.rid, ph.id, ph.n::int
               from t, jsonb_array_elements_text(coalesce(t.extra->'photos', '[]')) with ordinality ph(id, n)
         ), reporters as (
             insert into report_reporter (report_id, name, phone)
             select rid, extra->'reporter'->>'name', extra->'reporter'->>'phone'
               from t where jsonb_typeof(extra->'reporter') = 'object'
         )
         select rid, cid from t order by ord",
    )
    .bind(items.iter().map(|(r, _)| r.category.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.lon).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.lat).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.input_lon).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.input_lat).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.input_crs).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.description.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.source).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.reported_at).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.locate_status).collect::<Vec<_>>())
    .bind(r(|r| r.district_code.clone()))
    .bind(r(|r| r.street_code.clone()))
    .bind(r(|r| r.community_code.clone()))
    .bind(r(|r| r.grid_code.clone()))
    .bind(r(|r| r.micro_grid_code.clone()))
    .bind(r(|r| r.region_code.clone()))
    .bind(items.iter().map(|(r, _)| r.region_version_id).collect::<Vec<_>>())
    .bind(items.iter().map(|(r, _)| r.distance_m).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.party_branch_code.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.routed_kind).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.routed_lead.as_str()).collect::<Vec<_>>())
    .bind(&co)
    .bind(items.iter().map(|(_, c)| c.routing_rule_id).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.routing_why.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.routing_why_zh.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.opened_at).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.actor.as_str()).collect::<Vec<_>>())
    .bind(routes.iter().map(|r| r.channel).collect::<Vec<_>>())
    .bind(routes.iter().map(|r| r.target.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|(_, c)| c.notify_staff).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|(r, _)| r.open311.as_ref().map(|o| json!(o)))
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(r, _)| r.idempotency.as_ref().map(|(k, _)| k.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(r, _)| r.idempotency.as_ref().map(|(_, h)| h.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(r, _)| {
                (!r.photos.is_empty() || r.reporter.is_some())
                    .then(|| json!({"photos": r.photos, "reporter": r.reporter}))
            })
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(r, _)| crate::tiles::quadkey::tile_key(r.lon, r.lat))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db("filing reports and opening their cases"))?;
    Ok(ids)
}

async fn insert_events(conn: &mut PgConnection, events: &[(i64, NewEvent)]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into case_event (case_id, at, actor, action, from_state, to_state, department, note, data)
         select * from unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::jsonb[])",
    )
    .bind(events.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.at).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.actor.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.action.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.from_state.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.to_state.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.department.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.note.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.data.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(db("writing case events"))?;
    Ok(())
}

/// Writes notices; one whose id exists already is the same notice and is skipped.
async fn insert_notices(conn: &mut PgConnection, notices: &[NewNotice]) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "insert into outbox (id, kind, case_id, channel, target, recipient, payload, created_at,
                             next_attempt_at)
         select id, kind, case_id, channel, target, recipient, payload, created_at, created_at
           from unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[],
                       $7::jsonb[], $8::timestamptz[])
                as t(id, kind, case_id, channel, target, recipient, payload, created_at)
         on conflict (id) do nothing",
    )
    .bind(notices.iter().map(|n| n.id.clone()).collect::<Vec<_>>())
    .bind(notices.iter().map(|n| n.kind).collect::<Vec<_>>())
    .bind(notices.iter().map(|n| n.case_id).collect::<Vec<_>>())
    .bind(notices.iter().map(|n| n.route.channel).collect::<Vec<_>>())
    .bind(
        notices
            .iter()
            .map(|n| n.route.target.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        notices
            .iter()
            .map(|n| n.recipient.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        notices
            .iter()
            .map(|n| n.payload.clone())
            .collect::<Vec<_>>(),
    )
    .bind(notices.iter().map(|n| n.created_at).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map_err(db("writing notices"))?;
    Ok(())
}

async fn apply_escalations(
    conn: &mut PgConnection,
    esc: &Escalations,
    at: DateTime<Utc>,
) -> Result<()> {
    if !esc.whistles.is_empty() {
        sqlx::query(
            "update case_whistle w
                set card = case when t.card = 'red' or w.card = 'red' then 'red'
                                else coalesce(t.card, w.card) end,
                    supervised = w.supervised or t.push
               from (select id, case when bool_or(card = 'red') then 'red' else max(card) end as card,
                            bool_or(push) as push
                       from unnest($1::int8[], $2::text[], $3::bool[]) as u(id, card, push)
                      group by id) t
              where w.id = t.id",
        )
        .bind(esc.whistles.iter().map(|w| w.0).collect::<Vec<_>>())
        .bind(esc.whistles.iter().map(|w| w.1).collect::<Vec<_>>())
        .bind(esc.whistles.iter().map(|w| w.2).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(db("showing cards"))?;
    }
    insert_events(conn, &esc.events).await?;
    insert_notices(conn, &esc.notices).await?;
    let mut cases: Vec<i64> = esc.events.iter().map(|(id, _)| *id).collect();
    cases.sort_unstable();
    cases.dedup();
    sqlx::query("update dispatch_case set updated_at = $2 where id = any($1)")
        .bind(&cases)
        .bind(at)
        .execute(&mut *conn)
        .await
        .map_err(db("touching escalated cases"))?;
    Ok(())
}

/// The bulk write of a [`History`].
async fn write_history(conn: &mut PgConnection, h: &History) -> Result<()> {
    for chunk in h.cases.chunks(5000) {
        let t = |f: fn(&Triage) -> Option<String>| -> Vec<Option<String>> {
            chunk
                .iter()
                .map(|c| c.triage.as_ref().and_then(f))
                .collect()
        };
        let co: Vec<Value> = chunk
            .iter()
            .map(|c| {
                json!(c
                    .triage
                    .as_ref()
                    .map(|t| t.co_departments.clone())
                    .unwrap_or_default())
            })
            .collect();
        sqlx::query(
            "update dispatch_case c
                set state = t.state, responsibility = t.resp, difficulty = t.diff, urgency = t.urg,
                    lead_department = t.lead, co_departments = array(select jsonb_array_elements_text(t.co)),
                    deadline = t.deadline, coordinator = t.coord, answer = t.answer,
                    satisfaction = t.sat, reject_reason = t.reason, accepted_at = t.acc,
                    resolved_at = t.res, closed_at = t.clo, evaluated_at = t.eva, updated_at = t.upd
               from unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::jsonb[], $8::timestamptz[], $9::text[], $10::text[], $11::int2[],
                           $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[],
                           $16::timestamptz[], $17::timestamptz[])
                    as t(id, state, resp, diff, urg, lead, co, deadline, coord, answer, sat, reason,
                         acc, res, clo, eva, upd)
              where c.id = t.id",
        )
        .bind(chunk.iter().map(|c| c.case_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.state).collect::<Vec<_>>())
        .bind(t(|t| Some(t.responsibility.to_owned())))
        .bind(t(|t| Some(t.difficulty.to_owned())))
        .bind(t(|t| Some(t.urgency.to_owned())))
        .bind(t(|t| t.lead_department.clone()))
        .bind(&co)
        .bind(chunk.iter().map(|c| c.triage.as_ref().and_then(|t| t.deadline)).collect::<Vec<_>>())
        .bind(t(|t| t.coordinator.clone()))
        .bind(chunk.iter().map(|c| c.answer.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.satisfaction).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.reject_reason).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.accepted_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.resolved_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.closed_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.evaluated_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|c| c.updated_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(db("writing case histories"))?;
    }
    for chunk in h.whistles.chunks(5000) {
        let ids: Vec<i64> = sqlx::query_scalar(
            "insert into case_whistle (case_id, department, role, whistled_at, acknowledged_at, card,
                                       supervised, policy)
             select cid, dep, role, wat, aat, card, sup, $8
               from unnest($1::int8[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                           $6::text[], $7::bool[]) with ordinality
                    as t(cid, dep, role, wat, aat, card, sup, ord)
              order by ord
             returning id",
        )
        .bind(chunk.iter().map(|w| w.case_id).collect::<Vec<_>>())
        .bind(chunk.iter().map(|w| w.department.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|w| w.role).collect::<Vec<_>>())
        .bind(chunk.iter().map(|w| w.whistled_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|w| w.acknowledged_at).collect::<Vec<_>>())
        .bind(chunk.iter().map(|w| w.card).collect::<Vec<_>>())
        .bind(chunk.iter().map(|w| w.supervised).collect::<Vec<_>>())
        .bind(&h.policy)
        .fetch_all(&mut *conn)
        .await
        .map_err(db("writing past whistles"))?;
        let mut wid = Vec::new();
        let mut step = Vec::new();
        let mut due = Vec::new();
        let mut fired = Vec::new();
        let mut cancelled = Vec::new();
        for (id, w) in ids.iter().zip(chunk) {
            for (s, d, f, c) in &w.steps {
                wid.push(*id);
                step.push(*s);
                due.push(*d);
                fired.push(*f);
                cancelled.push(*c);
            }
        }
        sqlx::query(
            "insert into escalation_deadline (whistle_id, step, due_at, fired_at, cancelled_at)
             select * from unnest($1::int8[], $2::int4[], $3::timestamptz[], $4::timestamptz[],
                                  $5::timestamptz[])",
        )
        .bind(&wid)
        .bind(&step)
        .bind(&due)
        .bind(&fired)
        .bind(&cancelled)
        .execute(&mut *conn)
        .await
        .map_err(db("writing past escalation steps"))?;
    }
    for chunk in h.events.chunks(20_000) {
        insert_events(conn, chunk).await?;
    }
    Ok(())
}
