//! `GET /api/v1/hotspots`: Getis–Ord Gi* hot and cold spots of reports over the current grids
//! (of the city, or of one street or community), with permutation pseudo p-values and
//! false-discovery-rate control.

use super::error::{ApiError, ApiResult};
use super::extract::query;
use super::AppState;
use crate::analysis::hotspots::{gi_star, SpotClass};
use crate::workflow::intake::Link;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};

pub const MAX_PERMUTATIONS: usize = 9999;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct HotSpotQuery {
    /// a street or community code: only its grids (default: every grid of the city)
    parent: Option<String>,
    /// comma-separated category codes
    category: Option<String>,
    /// comma-separated sources
    source: Option<String>,
    /// comma-separated case states
    state: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// conditional permutations for the pseudo p-values, 0–9999 (default 9999: with n grids,
    /// false-discovery-rate control needs p-values below alpha·k/n, which 999 permutations
    /// (p ≥ 0.001) cannot give for a few hundred grids; 0: normal p-values)
    permutations: Option<usize>,
    /// false discovery rate, 0 < alpha ≤ 0.5 (default 0.05)
    alpha: Option<f64>,
    /// seed of the permutations (default 0), so an answer can be reproduced
    seed: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct GridSpot {
    code: String,
    name: String,
    reports: i64,
    /// areas in the neighbourhood, the grid itself included
    neighbourhood: usize,
    z: f64,
    p_norm: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_sim: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    z_sim: Option<f64>,
    class: SpotClass,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct HotSpotAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<Link>,
    permutations: usize,
    alpha: f64,
    /// the largest p-value found significant under FDR control; absent when none is
    #[serde(skip_serializing_if = "Option::is_none")]
    fdr_threshold: Option<f64>,
    hot: usize,
    cold: usize,
    grids: Vec<GridSpot>,
}

#[utoipa::path(
    get,
    path = "/api/v1/hotspots",
    operation_id = "hotspots",
    tag = "reports",
    summary = "Hot and cold spots of reports over grids: Getis–Ord Gi* with queen contiguity, permutation p-values and Benjamini–Hochberg FDR",
    params(HotSpotQuery),
    responses(
        (status = 200, description = "every grid with its z-score, p-values and class", body = HotSpotAnswer),
        (status = 404, description = "not found", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn hotspots(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<HotSpotAnswer>> {
    let q: HotSpotQuery = query(raw)?;
    let permutations = q.permutations.unwrap_or(MAX_PERMUTATIONS);
    if permutations > MAX_PERMUTATIONS {
        return Err(ApiError::invalid(
            "permutations",
            format!("at most {MAX_PERMUTATIONS}"),
        ));
    }
    let alpha = q.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha <= 0.5) {
        return Err(ApiError::invalid(
            "alpha",
            "must be above 0 and at most 0.5",
        ));
    }
    let filter =
        super::tiles::filter_from_parts(&s, &q.category, &q.source, &q.state, &q.from, &q.to)?;
    let parent = match &q.parent {
        None => None,
        Some(code) => {
            let record =
                s.gw.index()
                    .get(code)
                    .map(|r| (r.name.clone(), r.level))
                    .ok_or_else(|| ApiError::NotFound(format!("no region with code {code}")))?;
            if !matches!(
                record.1,
                crate::domain::Level::District
                    | crate::domain::Level::Street
                    | crate::domain::Level::Community
            ) {
                return Err(ApiError::invalid(
                    "parent",
                    format!(
                        "{code} is a {}: give a district, street or community",
                        record.1.as_str()
                    ),
                ));
            }
            Some(Link {
                code: code.clone(),
                name: record.0,
            })
        }
    };
    let areas =
        s.gw.db
            .grid_counts(parent.as_ref().map(|p| p.code.as_str()), &filter)
            .await?;
    let (y, neighbours) = crate::storage::tiles::values_and_neighbours(&areas);
    let seed = q.seed.unwrap_or(0);
    let result =
        tokio::task::spawn_blocking(move || gi_star(&y, &neighbours, permutations, alpha, seed))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::invalid("", e.0))?;
    let grids: Vec<GridSpot> = areas
        .into_iter()
        .zip(result.spots)
        .map(|(a, spot)| GridSpot {
            code: a.code,
            name: a.name,
            reports: a.reports,
            neighbourhood: spot.neighbourhood,
            z: spot.z,
            p_norm: spot.p_norm,
            p_sim: spot.p_sim,
            z_sim: spot.z_sim,
            class: spot.class,
        })
        .collect();
    Ok(Json(HotSpotAnswer {
        parent,
        permutations,
        alpha,
        fdr_threshold: result.threshold,
        hot: grids.iter().filter(|g| g.class == SpotClass::Hot).count(),
        cold: grids.iter().filter(|g| g.class == SpotClass::Cold).count(),
        grids,
    }))
}
