//! HTTP: the only layer that knows axum and wire formats. `app(state)` builds the router, so
//! tests can call it in-process and `serve` can bind it to a port.

pub mod auth;
mod cases;
mod dashboard;
mod dispatch;
mod emerging;
pub mod error;
pub mod extract;
mod geometry;
mod hotspots;
mod notices;
mod open311;
pub mod openapi;
mod ops;
mod photos;
mod regions;
mod reports;
mod sketches;
mod tiles;

use crate::workflow::Gridwatch;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use error::ApiError;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Largest request body in general, and for region imports.
pub const BODY_LIMIT: usize = 1024 * 1024;
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// folder with index.html, app.js … and node_modules/maplibre-gl
    pub web_dir: PathBuf,
    /// optional MapLibre style URL for a basemap under our layers
    pub basemap_style_url: Option<String>,
    /// mark the session cookie `Secure` (also done when `X-Forwarded-Proto: https`)
    pub secure_cookies: bool,
}

/// What every handler and middleware is given. Behind one `Arc`: axum clones the state for each
/// middleware and extractor of every request, and a `Gridwatch` is a dozen handles and a path.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub gw: Gridwatch,
    pub config: Arc<HttpConfig>,
    /// login and public-submission throttles
    pub limits: Arc<auth::Limits>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(gw: Gridwatch, config: HttpConfig) -> Self {
        AppState(Arc::new(Shared {
            gw,
            config: Arc::new(config),
            limits: Arc::default(),
        }))
    }
}

/// Logs a failed response: 5xx at error level, except a 503, whose cause (the database down,
/// the photo folder unwritable) is logged once where it is found, so that an outage does not
/// write a line per refused request.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass as Class;
    let latency_ms = latency.as_millis() as u64;
    match class {
        Class::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms, "answered 503")
        }
        other => tracing::error!(classification = %other, latency_ms, "response failed"),
    }
}

/// The whole application router.
pub fn app(state: AppState) -> Router {
    let web_dir = state.config.web_dir.clone();
    let api = Router::new()
        .route("/config", get(config))
        .route(
            "/session",
            get(auth::whoami).post(auth::log_in).delete(auth::log_out),
        )
        .route(
            "/session/password",
            axum::routing::put(auth::change_password),
        )
        .route("/users", get(auth::users).post(auth::add_user))
        .route("/users/{username}/disable", post(auth::disable_user))
        .route("/audit", get(auth::audit))
        .route("/categories", get(reports::categories))
        .route("/regions", get(regions::list))
        .route(
            "/regions/import",
            post(regions::import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route("/regions/{code}", get(regions::detail))
        .route(
            "/regions/{code}/redraw/check",
            post(regions::redraw_check).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route(
            "/regions/{code}/redraw",
            post(regions::redraw_publish).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route("/publications", get(regions::publications))
        .route("/geometry/split", post(geometry::split))
        .route("/geometry/merge", post(geometry::merge))
        .route(
            "/locate",
            get(regions::locate_one).post(regions::locate_batch),
        )
        .route("/reports", get(reports::list).post(reports::create))
        .route("/reports/heat", get(reports::heat))
        .route("/reports/trend", get(reports::trend))
        .route("/hotspots", get(hotspots::hotspots))
        .route("/emerging", get(emerging::emerging))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/reports/{id}", get(reports::get_one))
        .route(
            "/photos",
            post(photos::upload).layer(DefaultBodyLimit::max(photos::PHOTO_BODY_LIMIT)),
        )
        .route("/photos/{id}", get(photos::full))
        .route("/photos/{id}/thumbnail", get(photos::thumbnail))
        .route("/departments", get(dispatch::departments))
        .route(
            "/categories/{code}/dispatch",
            axum::routing::put(dispatch::put_category_dispatch),
        )
        .route(
            "/routing-rules",
            get(dispatch::rules).post(dispatch::create_rule),
        )
        .route(
            "/routing-rules/{id}",
            axum::routing::put(dispatch::update_rule).delete(dispatch::delete_rule),
        )
        .route("/routing/preview", get(dispatch::preview))
        .route(
            "/escalation-policy",
            get(dispatch::policy).put(dispatch::put_policy),
        )
        .route("/cases", get(cases::list))
        .route("/cases/stream", get(cases::stream))
        .route("/cases/{id}", get(cases::get_one))
        .route(
            "/cases/{id}/actions",
            post(cases::act).layer(DefaultBodyLimit::max(cases::ACTION_BODY_LIMIT)),
        )
        .route("/cases/{id}/photos/{n}", get(cases::photo))
        .route("/cases/{id}/notices", get(cases::notices))
        .route(
            "/notices/{id}/receipt",
            post(notices::receipt).layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/dispatch/stats", get(dispatch::stats))
        .route(
            "/packages",
            get(dispatch::packages).post(dispatch::create_package),
        )
        .route("/packages/proposals", get(dispatch::package_proposals))
        .route("/clock", get(dispatch::clock))
        .route("/clock/advance", post(dispatch::advance_clock))
        .route(
            "/sketches",
            get(sketches::list)
                .post(sketches::upload)
                .layer(DefaultBodyLimit::max(sketches::SKETCH_BODY_LIMIT)),
        )
        .route("/sketches/{id}", get(sketches::get_one))
        .route("/sketches/{id}/image", get(sketches::image))
        .route(
            "/sketches/{id}/gcps",
            axum::routing::put(sketches::put_gcps),
        )
        .route("/sketches/{id}/overlay.png", get(sketches::overlay))
        .route("/sketches/{id}/vectorise", post(sketches::vectorise))
        .route("/sketches/{id}/review", post(sketches::review))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .fallback(api_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::database_gate,
        ));
    let gate = || axum::middleware::from_fn_with_state(state.clone(), ops::database_gate);
    let metrics = Arc::new(ops::HttpMetrics::default());
    let scraped = metrics.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ops::readyz))
        .route(
            "/metrics",
            get(move |state: State<AppState>| ops::metrics(state, scraped.clone())),
        )
        .route("/api/openapi.json", get(openapi::serve))
        .route("/tiles/{file}", get(tiles::tilejson))
        .route("/tiles/{layer}/{z}/{x}/{y}", get(tiles::tile).layer(gate()))
        .route(
            "/api/docs",
            get(|| async { axum::response::Redirect::permanent("/api-docs.html") }),
        )
        .route(
            "/open311/v2/{*path}",
            axum::routing::any(open311::handle)
                .layer(DefaultBodyLimit::max(photos::PHOTO_BODY_LIMIT + 64 * 1024))
                .layer(gate()),
        )
        .nest("/api/v1", api)
        .nest_service(
            "/vendor/maplibre-gl",
            ServeDir::new(web_dir.join("node_modules/maplibre-gl/dist")),
        )
        .nest_service(
            "/vendor/swagger-ui",
            ServeDir::new(web_dir.join("node_modules/swagger-ui-dist")),
        )
        .nest_service(
            "/vendor/terra-draw",
            ServeDir::new(web_dir.join("node_modules/terra-draw/dist")),
        )
        .nest_service(
            "/vendor/terra-draw-maplibre-gl-adapter",
            ServeDir::new(web_dir.join("node_modules/terra-draw-maplibre-gl-adapter/dist")),
        )
        .fallback_service(ServeDir::new(&web_dir))
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http().on_failure(log_failure))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(60),
                ))
                .layer(CompressionLayer::new())
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .layer(axum::middleware::from_fn_with_state(metrics, ops::track))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/api/v1/config",
    operation_id = "config",
    tag = "meta",
    summary = "Client settings: the basemap style URL",
    responses(
        (status = 200, description = "settings", body = serde_json::Value)
    )
)]
async fn config(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    Json(json!({"basemap_style_url": state.config.basemap_style_url}))
}

async fn api_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no API endpoint at {}", uri.path()))
}
