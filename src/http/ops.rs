//! Operations endpoints: `GET /readyz` (can the service do its work: the database answers and
//! the region index is loaded) and `GET /metrics` (Prometheus text format: request counts and
//! latency by route, reports taken in, cases by state, overdue cases, notices not delivered);
//! and the middleware that times every request for them.

use super::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How long the database may take to answer the readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Histogram {
    /// requests at most as long as each bucket's bound (not cumulative here)
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Requests seen by this process, by method, route template (not the raw path, so the label set
/// stays bounded) and status.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
}

impl HttpMetrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // a route seen before is found without building a key (every request passes here)
        let key = (method, route, status);
        let h = match map.get_mut(&key as &dyn RequestKey) {
            Some(h) => h,
            None => map
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default(),
        };
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    fn write(&self, out: &mut String) {
        let map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.push_str("# HELP gridwatch_http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE gridwatch_http_requests_total counter\n");
        for ((method, route, status), h) in map.iter() {
            let _ = writeln!(
                out,
                "gridwatch_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP gridwatch_http_request_duration_seconds Time to answer an HTTP request, by method and route.\n");
        out.push_str("# TYPE gridwatch_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), Histogram> = BTreeMap::new();
        for ((method, route, _), h) in map.iter() {
            let total = by_route.entry((method, route)).or_default();
            for (t, b) in total.buckets.iter_mut().zip(h.buckets) {
                *t += b;
            }
            total.count += h.count;
            total.sum += h.sum;
        }
        for ((method, route), h) in by_route {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "gridwatch_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "gridwatch_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "gridwatch_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "gridwatch_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }
}

/// The metrics' key, borrowed or owned: lets `observe` look a route up by `&str`s.
trait RequestKey {
    fn key(&self) -> (&str, &str, u16);
}

impl RequestKey for (String, String, u16) {
    fn key(&self) -> (&str, &str, u16) {
        (&self.0, &self.1, self.2)
    }
}

impl RequestKey for (&str, &str, u16) {
    fn key(&self) -> (&str, &str, u16) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn RequestKey + 'a> for (String, String, u16) {
    fn borrow(&self) -> &(dyn RequestKey + 'a) {
        self
    }
}

impl PartialEq for dyn RequestKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn RequestKey + '_ {}

impl PartialOrd for dyn RequestKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn RequestKey + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Times every request; the route is the matched template (`/api/v1/cases/{id}`), or `static`
/// for the web files and anything unmatched.
pub(super) async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        method.as_str(),
        route.as_ref().map_or("static", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// While the database is known to be down (`storage::health`), answers requests that need it
/// with 503 and Retry-After at once, in the API's error format or Open311's, instead of letting
/// each wait out the pool's acquire timeout. A response that failed for want of the database
/// has the watcher probe at once.
pub(super) async fn database_gate(
    State(s): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let health = s.gw.db.health();
    if health.is_down() {
        let path = request.uri().path();
        return match path.strip_prefix("/open311/v2/") {
            Some(rest) => super::open311::database_unavailable(rest),
            None => super::error::ApiError::DatabaseDown(format!(
                "the database is unavailable (no answer for {:.1} s); try again shortly",
                health.down_for().unwrap_or_default().as_secs_f64()
            ))
            .into_response(),
        };
    }
    let response = next.run(request).await;
    if response
        .extensions()
        .get::<super::error::DatabaseUnavailable>()
        .is_some()
    {
        health.suspect();
    }
    response
}

/// `GET /readyz`: 200 when the database answers within 2 s and the region index is loaded,
/// else 503 with `Retry-After` and what is wrong.
pub(super) async fn readyz(State(s): State<AppState>) -> Response {
    let regions = s.gw.index().len();
    let database = match tokio::time::timeout(
        READY_TIMEOUT,
        sqlx::query_scalar::<_, i32>("select 1").fetch_one(s.gw.db.pool()),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("the database failed: {e}")),
        Err(_) => Err(format!(
            "the database did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    };
    match database {
        Ok(()) => {
            Json(json!({"status": "ready", "database": "ok", "regions": regions})).into_response()
        }
        Err(problem) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": problem, "regions": regions})),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition format. The case and notice figures are read
/// from the database at each scrape; without it they are left out and
/// `gridwatch_database_up` is 0.
pub(super) async fn metrics(State(s): State<AppState>, http: Arc<HttpMetrics>) -> Response {
    let mut out = String::with_capacity(4096);
    http.write(&mut out);
    let counters = &s.gw.counters;
    let _ = write!(
        out,
        "# HELP gridwatch_reports_ingested_total Reports taken in by this process, by way.\n\
         # TYPE gridwatch_reports_ingested_total counter\n\
         gridwatch_reports_ingested_total{{way=\"filed\"}} {}\n\
         gridwatch_reports_ingested_total{{way=\"imported\"}} {}\n\
         # HELP gridwatch_regions Regions in the locate index.\n\
         # TYPE gridwatch_regions gauge\n\
         gridwatch_regions {}\n",
        counters.reports_filed.load(Ordering::Relaxed),
        counters.reports_imported.load(Ordering::Relaxed),
        s.gw.index().len()
    );
    let figures = tokio::time::timeout(READY_TIMEOUT, database_figures(&s)).await;
    match figures {
        Ok(Ok(text)) => {
            out.push_str(&text);
            out.push_str("# HELP gridwatch_database_up Whether the database answered this scrape.\n# TYPE gridwatch_database_up gauge\ngridwatch_database_up 1\n");
        }
        Ok(Err(e)) => {
            tracing::warn!("metrics without the database figures: {e}");
            out.push_str("# HELP gridwatch_database_up Whether the database answered this scrape.\n# TYPE gridwatch_database_up gauge\ngridwatch_database_up 0\n");
        }
        Err(_) => {
            tracing::warn!("metrics without the database figures: no answer in time");
            out.push_str("# HELP gridwatch_database_up Whether the database answered this scrape.\n# TYPE gridwatch_database_up gauge\ngridwatch_database_up 0\n");
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn database_figures(s: &AppState) -> Result<String, crate::storage::StorageError> {
    let now = s.gw.clock.now();
    let (by_state, overdue) =
        s.gw.db
            .case_counts(now, &crate::storage::dispatch::CaseFilter::default())
            .await?;
    let undelivered = s.gw.db.undelivered_notices().await?;
    let mut out = String::new();
    out.push_str("# HELP gridwatch_cases Cases by state.\n# TYPE gridwatch_cases gauge\n");
    for (state, n) in by_state {
        let _ = writeln!(out, "gridwatch_cases{{state=\"{}\"}} {n}", escape(&state));
    }
    let _ = write!(
        out,
        "# HELP gridwatch_cases_overdue Open cases past their deadline or with an unanswered card.\n\
         # TYPE gridwatch_cases_overdue gauge\n\
         gridwatch_cases_overdue {overdue}\n\
         # HELP gridwatch_notices_undelivered Notices not delivered yet, and of them those whose last attempt failed.\n\
         # TYPE gridwatch_notices_undelivered gauge\n\
         gridwatch_notices_undelivered{{failing=\"false\"}} {}\n\
         gridwatch_notices_undelivered{{failing=\"true\"}} {}\n",
        undelivered.0 - undelivered.1,
        undelivered.1
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_request() {
        let m = HttpMetrics::default();
        m.observe("GET", "/api/v1/cases", 200, 0.003);
        m.observe("GET", "/api/v1/cases", 200, 0.2);
        m.observe("GET", "/api/v1/cases", 404, 30.0);
        let mut out = String::new();
        m.write(&mut out);
        assert!(out.contains(
            "gridwatch_http_requests_total{method=\"GET\",route=\"/api/v1/cases\",status=\"200\"} 2\n"
        ));
        assert!(out.contains(
            "gridwatch_http_requests_total{method=\"GET\",route=\"/api/v1/cases\",status=\"404\"} 1\n"
        ));
        let bucket = |le: &str| {
            let key = format!(
                "gridwatch_http_request_duration_seconds_bucket{{method=\"GET\",route=\"/api/v1/cases\",le=\"{le}\"}} "
            );
            let line = out
                .lines()
                .find(|l| l.starts_with(&key))
                .unwrap_or_default();
            line[key.len().min(line.len())..].to_owned()
        };
        assert_eq!(bucket("0.001"), "0");
        assert_eq!(bucket("0.005"), "1");
        assert_eq!(bucket("0.25"), "2");
        assert_eq!(bucket("10"), "2");
        assert_eq!(bucket("+Inf"), "3");
        assert!(out.contains(
            "gridwatch_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/cases\"} 3\n"
        ));
    }

    #[test]
    fn routes_seen_before_are_found_by_their_borrowed_key() {
        let m = HttpMetrics::default();
        let keys = [
            ("GET", "/tiles/{layer}/{z}/{x}/{y}", 200),
            ("GET", "/api/v1/cases", 200),
            ("POST", "/api/v1/cases", 200),
            ("GET", "/api/v1/cases", 304),
            ("GET", "static", 404),
            ("GET", "/api/v1/cases/{id}", 200),
        ];
        for round in 1..=3u64 {
            // a different order each round, so lookups walk the tree different ways
            let mut order = keys;
            order.rotate_left(round as usize);
            if round % 2 == 0 {
                order.reverse();
            }
            for (method, route, status) in order {
                m.observe(method, route, status, 0.01);
            }
            let map = m.requests.lock().unwrap();
            assert_eq!(map.len(), keys.len(), "one entry a key");
            assert!(map.values().all(|h| h.count == round), "round {round}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
