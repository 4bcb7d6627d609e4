//! Locating points and filing reports: validate, convert to WGS-84, assign to the grid chain
//! with the in-memory index, write.

use super::dispatch::RoutingView;
use super::{Gridwatch, Result, WorkflowError};
use crate::domain::{CategoryCode, Crs, Level, ReportSource, Wgs84Point};
use crate::spatial::index::{Assignment, PartyBranchInfo};
use crate::spatial::{LocateStatus, RegionIndex};
use crate::storage::open311::Open311Extra;
use crate::storage::photos::Reporter;
use crate::storage::reports::NewReport;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Longest accepted description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

/// A region in a locate answer.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Link {
    pub code: String,
    pub name: String,
}

/// The answer to "where does this point belong".
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Located {
    pub status: LocateStatus,
    /// the position used for assignment, WGS-84
    pub lon: f64,
    pub lat: f64,
    pub district: Option<Link>,
    pub street: Option<Link>,
    pub community: Option<Link>,
    pub grid: Option<Link>,
    pub micro_grid: Option<Link>,
    pub party_branch: Option<PartyBranchInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

impl Located {
    pub fn new(index: &RegionIndex, p: Wgs84Point, a: &Assignment) -> Self {
        let link = |level: Level| {
            index.at_level(a, level).map(|r| Link {
                code: r.code.clone(),
                name: r.name.clone(),
            })
        };
        Located {
            status: a.status,
            lon: p.lon(),
            lat: p.lat(),
            district: link(Level::District),
            street: link(Level::Street),
            community: link(Level::Community),
            grid: link(Level::Grid),
            micro_grid: link(Level::MicroGrid),
            party_branch: index.party_branch(a).map(|b| (**b).clone()),
            distance_m: a.distance_m.map(|d| (d * 10.0).round() / 10.0),
        }
    }
}

/// A point as clients send it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lon": 106.8415, "lat": 39.664}))]
pub struct PointInput {
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    #[serde(default)]
    pub crs: Option<String>,
}

/// Parses an optional CRS name, naming `field` when it is unknown.
pub fn parse_crs(s: Option<&str>, field: &str) -> Result<Crs> {
    match s {
        None => Ok(Crs::Wgs84),
        Some(s) => s.parse().map_err(|e: crate::domain::point::UnknownCrs| {
            WorkflowError::invalid(field, e.to_string())
        }),
    }
}

/// Who filed a report, if they want to be called back: kept private.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReporterInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// A report as clients send it to `POST /api/v1/reports`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "category": "fire_lane_blocked", "lon": 106.8415, "lat": 39.664, "source": "grid_worker",
    "description": "消防通道被三轮车堵住"
}))]
pub struct ReportInput {
    /// a category code from `GET /categories`
    pub category: String,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    #[serde(default)]
    pub crs: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub source: String,
    #[serde(default)]
    pub reported_at: Option<DateTime<Utc>>,
    /// ids of photos uploaded with `POST /api/v1/photos`, at most four
    #[serde(default)]
    pub photos: Vec<String>,
    #[serde(default)]
    pub reporter: Option<ReporterInput>,
}

/// A filed report: its id and where it went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Filed {
    pub id: i64,
    pub category: String,
    pub reported_at: DateTime<Utc>,
    pub assignment: Located,
    /// the case the report opened
    pub case_id: i64,
    /// who the case is proposed to, and why
    pub routing: RoutingView,
    /// the photos it took
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<String>,
}

impl Gridwatch {
    /// Converts and locates one point.
    pub fn locate(&self, lon: f64, lat: f64, crs: Crs) -> Result<Located> {
        let p = Wgs84Point::from_crs(lon, lat, crs)
            .map_err(|e| WorkflowError::invalid(e.field(), e.to_string()))?;
        let index = self.index();
        let a = index.locate(p.lon(), p.lat());
        Ok(Located::new(&index, p, &a))
    }

    /// Validates a report into a row ready to write, assigned with the current index.
    pub fn prepare_report(
        &self,
        input: &ReportInput,
        now: DateTime<Utc>,
    ) -> Result<(NewReport, Located)> {
        let category = CategoryCode::parse(&input.category)
            .map_err(|e| WorkflowError::invalid(e.field, e.message))?;
        if !self.categories().contains_key(category.as_str()) {
            return Err(WorkflowError::invalid(
                "category",
                format!(
                    "unknown category {:?}; see GET /api/v1/categories",
                    input.category
                ),
            ));
        }
        let source = ReportSource::parse(&input.source)
            .map_err(|e| WorkflowError::invalid(e.field, e.message))?;
        let crs = parse_crs(input.crs.as_deref(), "crs")?;
        let description = input
            .description
            .clone()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if description.contains('\0') {
            return Err(WorkflowError::invalid(
                "description",
                "contains a NUL character (U+0000), which cannot be stored",
            ));
        }
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(WorkflowError::invalid(
                "description",
                format!("longer than {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        let reported_at = input.reported_at.unwrap_or(now);
        // A phone's clock may run a little fast; a report from the future is a client error.
        if reported_at > now + Duration::minutes(10) {
            return Err(WorkflowError::invalid("reported_at", "lies in the future"));
        }
        if reported_at < DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or(now) {
            return Err(WorkflowError::invalid(
                "reported_at",
                "is before 2000-01-01",
            ));
        }
        let p = Wgs84Point::from_crs(input.lon, input.lat, crs)
            .map_err(|e| WorkflowError::invalid(e.field(), e.to_string()))?;
        let index = self.index();
        let a = index.locate(p.lon(), p.lat());
        let code = |level| index.at_level(&a, level).map(|r| r.code.clone());
        let deepest = index.deepest(&a);
        let row = NewReport {
            category: category.as_str().to_owned(),
            lon: p.lon(),
            lat: p.lat(),
            input_lon: input.lon,
            input_lat: input.lat,
            input_crs: crs.as_str(),
            description,
            source: source.as_str(),
            reported_at,
            locate_status: a.status.as_str(),
            district_code: code(Level::District),
            street_code: code(Level::Street),
            community_code: code(Level::Community),
            grid_code: code(Level::Grid),
            micro_grid_code: code(Level::MicroGrid),
            region_code: deepest.map(|r| r.code.clone()),
            region_version_id: deepest.map(|r| r.version_id),
            distance_m: a.distance_m,
            open311: None,
            idempotency: None,
            photos: check_photo_ids(&input.photos)?,
            reporter: input
                .reporter
                .as_ref()
                .map(check_reporter)
                .transpose()?
                .flatten(),
        };
        Ok((row, Located::new(&index, p, &a)))
    }

    /// Files one report: writes it and opens its case, routed by the current rules, in one
    /// transaction.
    pub async fn file_report(&self, input: &ReportInput) -> Result<Filed> {
        self.file_report_with(input, None).await
    }

    /// [`Gridwatch::file_report`] for a request that came through Open311, with what it carries.
    pub async fn file_report_with(
        &self,
        input: &ReportInput,
        open311: Option<Open311Extra>,
    ) -> Result<Filed> {
        let mut filed = self.file_many(vec![(input, open311)]).await?;
        filed
            .pop()
            .ok_or_else(|| WorkflowError::invalid("report", "the database returned no id"))
    }

    /// [`Gridwatch::file_report`] under a client's Idempotency-Key: the first submission files
    /// the report; a retry with the same key and the same body gets that report back (`true`:
    /// replayed) and files nothing; the same key with another body is refused.
    pub async fn file_report_once(&self, input: &ReportInput, key: &str) -> Result<(Filed, bool)> {
        let ok = !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(WorkflowError::invalid(
                "Idempotency-Key",
                "must be 1 to 128 printable ASCII characters (a UUID is a good choice)",
            ));
        }
        let digest = crate::access::password::sha256_hex(format!("{input:?}"));
        if let Some(filed) = self.replay(key, &digest).await? {
            return Ok((filed, true));
        }
        let (mut row, located) = self.prepare_report(input, self.clock.now())?;
        row.idempotency = Some((key.to_owned(), digest.clone()));
        match self.file_rows(vec![(row, located)]).await {
            Ok(mut filed) => filed
                .pop()
                .map(|f| (f, false))
                .ok_or_else(|| WorkflowError::invalid("report", "the database returned no id")),
            // A concurrent retry filed it first: answer with that one.
            Err(WorkflowError::Storage(e)) if e.is_unique_violation("report_idempotency_pkey") => {
                self.replay(key, &digest)
                    .await?
                    .map(|f| (f, true))
                    .ok_or_else(|| {
                        WorkflowError::Conflict("the Idempotency-Key is in use; retry".into())
                    })
            }
            Err(e) => Err(e),
        }
    }

    /// The report filed under `key`, as it was answered then (its assignment as stored).
    async fn replay(&self, key: &str, digest: &str) -> Result<Option<Filed>> {
        let Some((id, stored)) = self.db.idempotent_report(key).await? else {
            return Ok(None);
        };
        if stored != digest {
            return Err(WorkflowError::invalid(
                "Idempotency-Key",
                format!("was used for a different report (#{id}); use a new key for a new report"),
            ));
        }
        let report = self
            .db
            .report(id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no report with id {id}")))?;
        let case = self
            .db
            .case_of_report(self.clock.now(), id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no case for report {id}")))?;
        let case_id = case.id;
        let index = self.index();
        let link = |code: &Option<String>| {
            code.as_ref().map(|c| Link {
                name: index.get(c).map_or_else(|| c.clone(), |r| r.name.clone()),
                code: c.clone(),
            })
        };
        let assignment = Located {
            status: match report.locate_status.as_str() {
                "inside" => LocateStatus::Inside,
                "near" => LocateStatus::Near,
                _ => LocateStatus::Outside,
            },
            lon: report.lon,
            lat: report.lat,
            district: link(&report.district_code),
            street: link(&report.street_code),
            community: link(&report.community_code),
            grid: link(&report.grid_code),
            micro_grid: link(&report.micro_grid_code),
            party_branch: case.party_branch_code.as_ref().and_then(|c| {
                index
                    .get(c)
                    .and_then(|r| r.party_branch.as_ref())
                    .map(|b| (**b).clone())
            }),
            distance_m: report.distance_m.map(|d| (d * 10.0).round() / 10.0),
        };
        let routing = self
            .summaries(vec![case])
            .await?
            .pop()
            .map(|c| c.routing)
            .ok_or_else(|| WorkflowError::NotFound(format!("no case for report {id}")))?;
        let photos = self.db.report_photos(id).await?;
        Ok(Some(Filed {
            id,
            category: report.category,
            reported_at: report.reported_at,
            assignment,
            case_id,
            routing,
            photos: photos.into_iter().map(|p| p.id).collect(),
        }))
    }

    /// Files reports together (one transaction, one commit): all are written or none.
    pub async fn file_reports(&self, inputs: &[ReportInput]) -> Result<Vec<Filed>> {
        self.file_many(inputs.iter().map(|i| (i, None)).collect())
            .await
    }

    async fn file_many(
        &self,
        inputs: Vec<(&ReportInput, Option<Open311Extra>)>,
    ) -> Result<Vec<Filed>> {
        let now = self.clock.now();
        let mut rows = Vec::with_capacity(inputs.len());
        for (input, open311) in inputs {
            let (mut row, located) = self.prepare_report(input, now)?;
            row.open311 = open311.map(Box::new);
            rows.push((row, located));
        }
        self.file_rows(rows).await
    }

    /// Routes prepared reports, opens their cases and writes them (group commit).
    async fn file_rows(&self, rows: Vec<(NewReport, Located)>) -> Result<Vec<Filed>> {
        let photos: Vec<String> = rows.iter().flat_map(|(r, _)| r.photos.clone()).collect();
        if photos
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
            != photos.len()
        {
            return Err(WorkflowError::invalid(
                "photos",
                "the same photo is given to more than one report",
            ));
        }
        self.check_photos(&photos).await?;
        let now = self.clock.now();
        let mut items = Vec::with_capacity(rows.len());
        let mut views = Vec::with_capacity(rows.len());
        for (row, located) in rows {
            let routed = self.route(&row.category, &located);
            let case = self.new_case(&routed, &located, row.source, now);
            items.push((row.clone(), case));
            let routing = self.routing_view(&routed, &located);
            views.push((row, located, routing));
        }
        let ids = self.intake.file(items, self.notice_config.sms()).await?;
        self.counters
            .reports_filed
            .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // The tiles over the new reports are stale now.
        for (_, located, _) in &views {
            self.tiles
                .invalidate_area([located.lon, located.lat, located.lon, located.lat]);
        }
        let filed: Vec<Filed> = ids
            .into_iter()
            .zip(views)
            .map(|((id, case_id), (row, located, routing))| Filed {
                id,
                category: row.category,
                reported_at: row.reported_at,
                assignment: located,
                case_id,
                routing,
                photos: row.photos,
            })
            .collect();
        for f in &filed {
            self.announce(f.case_id, "reported", "report");
        }
        Ok(filed)
    }
}

/// Photo ids as a report names them: valid, distinct, at most [`super::photos::MAX_PHOTOS`].
fn check_photo_ids(ids: &[String]) -> Result<Vec<String>> {
    if ids.len() > super::photos::MAX_PHOTOS {
        return Err(WorkflowError::invalid(
            "photos",
            format!(
                "{} photos; at most {} are accepted",
                ids.len(),
                super::photos::MAX_PHOTOS
            ),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        if !super::photos::valid_photo_id(id) {
            return Err(WorkflowError::invalid(
                format!("photos[{i}]"),
                format!("{id:?} is not a photo id (32 hex digits from POST /api/v1/photos)"),
            ));
        }
        if ids[..i].contains(id) {
            return Err(WorkflowError::invalid(
                format!("photos[{i}]"),
                format!("photo {id} is given twice"),
            ));
        }
    }
    Ok(ids.to_vec())
}

/// A reporter's name and phone, trimmed; `None` when both are empty.
fn check_reporter(r: &ReporterInput) -> Result<Option<Reporter>> {
    let clean = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = clean(&r.name);
    let phone = clean(&r.phone);
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(WorkflowError::invalid(
            "reporter.name",
            "longer than 100 characters",
        ));
    }
    if let Some(p) = &phone {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let allowed = p
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'));
        if !allowed || !(3..=20).contains(&digits) || p.len() > 32 {
            return Err(WorkflowError::invalid(
                "reporter.phone",
                format!("{p:?} is not a phone number (3 to 20 digits, with + - ( ) or spaces)"),
            ));
        }
    }
    Ok((name.is_some() || phone.is_some()).then_some(Reporter { name, phone }))
}
