//! The Wuhai demo: real district boundaries with generated (synthetic) streets, communities,
//! grids and micro-grids, and a year of generated incidents. The data files in `geodata/` are
//! embedded in the binary so `gridwatch serve --demo` works from any directory; they are
//! rebuilt by `gridwatch demo generate` (see [`generate`]).

pub mod generate;
pub mod history;

use crate::domain::Crs;
use crate::workflow::intake::ReportInput;
use crate::workflow::{Gridwatch, WorkflowError};
use chrono::{DateTime, Duration, Utc};

/// The demo regions (WGS-84 GeoJSON FeatureCollection).
pub const REGIONS_GEOJSON: &str = include_str!("../../geodata/wuhai-regions.geojson");
/// The demo incidents (CSV: reported_at,category,lon,lat,crs,source,description).
pub const INCIDENTS_CSV: &str = include_str!("../../geodata/demo-incidents.csv");
/// Marker in the `meta` table; bump when the demo incidents or their history change.
pub const DEMO_MARKER: &str = "demo_incidents_v2";
/// Marker of the seeded routing rules: seeded once, then the dispatchers' to change.
pub const RULES_MARKER: &str = "demo_routing_rules_v1";
/// Reports filed "just now" by the demo: they are still in the loop when the service starts.
pub const LIVE_INCIDENTS: usize = 36;

/// The demo's routing rules: (category, territory, lead department, co-departments, note).
/// Territory first: the street rules beat the district one, which beats the city-wide ones.
/// A seeded rule: (category, territory, lead department, co-departments, note).
pub type RuleSeed = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    &'static [&'static str],
    &'static str,
);

pub const DEMO_RULES: &[RuleSeed] = &[
    (
        Some("fire_lane_blocked"),
        None,
        Some("fire_rescue"),
        &["urban_management"],
        "消防通道：消防牵头，城管配合清障",
    ),
    (
        Some("flying_lead_charging"),
        None,
        Some("fire_rescue"),
        &["power_supply"],
        "飞线充电：消防牵头，供电配合",
    ),
    (
        Some("oil_smoke"),
        None,
        Some("market_regulation"),
        &["urban_management"],
        "油烟：市场监管牵头",
    ),
    (
        Some("oil_smoke"),
        Some("150302"),
        Some("urban_management"),
        &["market_regulation"],
        "海勃湾区油烟由城管执法牵头",
    ),
    (Some("sewer_blockage"), None, Some("water_affairs"), &[], ""),
    (Some("water_supply"), None, Some("water_affairs"), &[], ""),
    (
        Some("wall_leak"),
        None,
        Some("housing_construction"),
        &[],
        "",
    ),
    (
        Some("random_piling"),
        None,
        Some("urban_management"),
        &[],
        "",
    ),
    (
        Some("random_piling"),
        Some("150302002"),
        None,
        &[],
        "新华西街道乱堆乱放由社区自行处置",
    ),
    (
        Some("road_hazard"),
        None,
        Some("urban_management"),
        &["police"],
        "",
    ),
    (
        Some("food_safety"),
        None,
        Some("market_regulation"),
        &[],
        "",
    ),
    (
        Some("charging_wanted"),
        None,
        Some("housing_construction"),
        &["power_supply"],
        "",
    ),
    (
        Some("neighbour_dispute"),
        Some("150304001"),
        None,
        &["police"],
        "巴音赛街道邻里纠纷：社区调解，派出所协助",
    ),
];

/// What `load` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLoad {
    pub regions_created: usize,
    pub incidents_loaded: usize,
}

/// Parses the incidents CSV into report inputs.
pub fn parse_incidents(csv: &str) -> Result<Vec<ReportInput>, String> {
    let mut out = Vec::new();
    for (n, line) in csv.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.splitn(7, ',').collect();
        let [at, category, lon, lat, crs, source, description] = cols[..] else {
            return Err(format!("line {}: expected 7 columns", n + 1));
        };
        let num = |s: &str, what: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("line {}: bad {what} {s:?}", n + 1))
        };
        let reported_at = DateTime::parse_from_rfc3339(at)
            .map_err(|e| format!("line {}: bad time {at:?}: {e}", n + 1))?
            .with_timezone(&Utc);
        out.push(ReportInput {
            category: category.to_owned(),
            lon: num(lon, "lon")?,
            lat: num(lat, "lat")?,
            crs: Some(crs.to_owned()),
            description: Some(description.to_owned()),
            source: source.to_owned(),
            reported_at: Some(reported_at),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Loads the demo regions, routing rules and incidents unless already loaded. Idempotent: the
/// regions import leaves identical boundaries alone, the rules are seeded once, and the incidents
/// are written with their cases, their history and their marker in one transaction.
pub async fn load(gw: &Gridwatch) -> Result<DemoLoad, WorkflowError> {
    let summary = gw
        .import_regions(REGIONS_GEOJSON.as_bytes(), Crs::Wgs84, true)
        .await?;
    seed_rules(gw).await?;
    // Open311 clients can try the demo at once with this key.
    gw.add_api_key(
        "demo",
        crate::workflow::open311::DEMO_API_KEY,
        crate::access::ClientPurpose::Reports,
    )
    .await?;
    let mut loaded = 0;
    if gw.db.meta(DEMO_MARKER).await?.is_none() {
        let mut inputs = parse_incidents(INCIDENTS_CSV)
            .map_err(|e| WorkflowError::invalid("demo-incidents.csv", e))?;
        let now = gw.clock.now();
        inputs.extend(live_incidents(&inputs, now));
        let mut items = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let (row, located) = gw.prepare_report(input, now)?;
            let routed = gw.route(&row.category, &located);
            // A case opens when its report is received; the demo's were received as reported.
            let mut case = gw.new_case(&routed, &located, row.source, row.reported_at);
            // The grid staff hear of the live cases only, not of a year of handled ones.
            case.notify_staff = row.reported_at > now - Duration::days(2);
            items.push((row, case));
        }
        let policy = gw.escalation_policy().await?;
        let written = gw
            .db
            .file_reports_once(&items, &gw.notice_config().sms(), DEMO_MARKER, |ids| {
                let opened: Vec<history::OpenedCase> = ids
                    .iter()
                    .zip(&items)
                    .map(|((_, case_id), (row, case))| history::OpenedCase {
                        case_id: *case_id,
                        opened_at: case.opened_at,
                        category: row.category.clone(),
                        lead: (case.routed_kind == "department").then(|| case.routed_lead.clone()),
                        co: case.routed_co.clone(),
                    })
                    .collect();
                history::plan(&opened, now, &policy)
            })
            .await?;
        if let Some(ids) = written {
            loaded = ids.len();
            gw.db.analyze_reports().await?;
        }
    }
    Ok(DemoLoad {
        regions_created: summary.created,
        incidents_loaded: loaded,
    })
}

/// Seeds [`DEMO_RULES`] once.
pub async fn seed_rules(gw: &Gridwatch) -> Result<(), WorkflowError> {
    if gw.db.meta(RULES_MARKER).await?.is_some() {
        return Ok(());
    }
    for (category, territory, lead, co, note) in DEMO_RULES {
        let input = crate::workflow::dispatch::RuleInput {
            category: category.map(str::to_owned),
            territory: territory.map(str::to_owned),
            lead_department: lead.map(str::to_owned),
            co_departments: co.iter().map(|c| (*c).to_owned()).collect(),
            note: Some((*note).to_owned()),
        };
        match gw.save_rule(None, &input).await {
            Ok(_) | Err(WorkflowError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    gw.db.set_meta(RULES_MARKER, "seeded").await?;
    Ok(())
}

/// Reports of the last day and a half, placed where the demo's incidents cluster, so that the
/// console opens with cases in every state of the loop; every fifth is a flying-lead report near
/// one spot, a recurring problem the console proposes to package 打包.
fn live_incidents(past: &[ReportInput], now: DateTime<Utc>) -> Vec<ReportInput> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261202);
    let recurring = past.iter().find(|p| p.category == "flying_lead_charging");
    (0..LIVE_INCIDENTS)
        .filter_map(|i| {
            let like = match recurring {
                Some(r) if i % 5 == 0 => r,
                _ => past.get(rng.random_range(0..past.len().max(1)))?,
            };
            // Spread over 36 hours, newest last; a few minutes apart at the end.
            let ago = Duration::minutes(((LIVE_INCIDENTS - i) as i64).pow(2) * 100 / 60 + 3);
            Some(ReportInput {
                reported_at: Some(now - ago),
                lon: like.lon + rng.random_range(-0.0004..0.0004),
                lat: like.lat + rng.random_range(-0.0003..0.0003),
                ..like.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_incidents_parse() {
        let inputs = parse_incidents(INCIDENTS_CSV).unwrap();
        assert!(inputs.len() >= 15_000, "{}", inputs.len());
    }

    #[test]
    fn live_incidents_are_recent_and_every_fifth_recurs_in_one_spot() {
        let past = parse_incidents(INCIDENTS_CSV).unwrap();
        let now = Utc::now();
        let live = live_incidents(&past, now);
        assert_eq!(live.len(), LIVE_INCIDENTS);
        assert!(live.iter().all(|r| r
            .reported_at
            .is_some_and(|t| t < now && t > now - Duration::hours(37))));
        let spot: Vec<&ReportInput> = live.iter().step_by(5).collect();
        assert!(spot.iter().all(|r| r.category == "flying_lead_charging"));
        assert!(spot
            .iter()
            .all(|r| (r.lon - spot[0].lon).abs() < 0.001 && (r.lat - spot[0].lat).abs() < 0.001));
    }

    #[test]
    fn bad_csv_names_the_line() {
        let err = parse_incidents("h\n2026-01-01T00:00:00+08:00,oil_smoke,x,39,wgs84,rider,d\n")
            .unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = parse_incidents("h\na,b\n").unwrap_err();
        assert!(err.contains("7 columns"));
    }
}
