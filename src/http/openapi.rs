//! The OpenAPI 3 document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and response types' `ToSchema` derives, served at
//! `/api/openapi.json` and browsable at `/api/docs`.
//!
//! Errors every operation can answer (400 for an unreadable request, 500, 503 with Retry-After)
//! are added here once; each operation lists its own (404, 409, 413, 415, 422).

use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gridwatch API",
        description = "Grid map, report intake, dispatch (吹哨答卷) and sketch digitising for urban grid governance (网格化管理). Coordinates are WGS-84 unless a `crs` (wgs84, gcj02, bd09) says otherwise. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`. The Open311 GeoReport v2 endpoints under /open311/v2 follow their own specification.",
        license(name = "MIT")
    ),
    paths(
        super::config,
        super::regions::list,
        super::regions::detail,
        super::regions::import,
        super::regions::redraw_check,
        super::regions::redraw_publish,
        super::regions::publications,
        super::regions::locate_one,
        super::regions::locate_batch,
        super::geometry::split,
        super::geometry::merge,
        super::reports::categories,
        super::reports::create,
        super::reports::get_one,
        super::reports::list,
        super::reports::heat,
        super::reports::trend,
        super::hotspots::hotspots,
        super::emerging::emerging,
        super::dashboard::dashboard,
        super::photos::upload,
        super::photos::full,
        super::photos::thumbnail,
        super::dispatch::departments,
        super::dispatch::put_category_dispatch,
        super::dispatch::rules,
        super::dispatch::create_rule,
        super::dispatch::update_rule,
        super::dispatch::delete_rule,
        super::dispatch::preview,
        super::dispatch::policy,
        super::dispatch::put_policy,
        super::dispatch::stats,
        super::dispatch::package_proposals,
        super::dispatch::packages,
        super::dispatch::create_package,
        super::dispatch::clock,
        super::dispatch::advance_clock,
        super::cases::list,
        super::cases::get_one,
        super::cases::act,
        super::cases::photo,
        super::cases::notices,
        super::notices::receipt,
        super::cases::stream,
        super::sketches::upload,
        super::sketches::list,
        super::sketches::get_one,
        super::sketches::image,
        super::sketches::put_gcps,
        super::sketches::overlay,
        super::sketches::vectorise,
        super::sketches::review,
        super::auth::whoami,
        super::auth::log_in,
        super::auth::log_out,
        super::auth::change_password,
        super::auth::users,
        super::auth::add_user,
        super::auth::disable_user,
        super::auth::audit
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&CommonErrors),
    tags(
        (name = "meta", description = "client settings"),
        (name = "regions", description = "the grid hierarchy: districts, streets, communities, grids, micro-grids"),
        (name = "geometry", description = "editing helpers for planners"),
        (name = "reports", description = "filing and listing reports"),
        (name = "photos", description = "report photos"),
        (name = "dispatch", description = "routing, escalation, figures, packages"),
        (name = "cases", description = "the dispatcher's case queue and the whistle loop"),
        (name = "sketches", description = "hand-drawn grid maps (手绘网格图) to polygons"),
        (name = "access", description = "sessions, users and the audit log; every operation needs a session cookie (`gw_session`, from POST /session) or `Authorization: Bearer <token>` unless it answers without 401"),
    )
)]
pub struct ApiDoc;

/// Adds the errors any operation may answer to every operation that does not list them.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, doc: &mut Document) {
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        let common = [
            (
                "400",
                "the request cannot be read: malformed JSON, an unknown or mistyped parameter",
            ),
            ("500", "internal error; the cause is in the server's log"),
            (
                "503",
                "the database (or the photo folder) is unavailable; see Retry-After",
            ),
        ];
        use crate::access::Capability;
        for (path, item) in doc.paths.paths.iter_mut() {
            let route = path.trim_start_matches("/api/v1");
            let ops = [
                ("GET", &mut item.get),
                ("PUT", &mut item.put),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
                ("PATCH", &mut item.patch),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let mut errors = common.to_vec();
                match crate::access::rule(method, route).map(|r| r.capability) {
                    Some(Capability::Public) => {
                        errors.push(("401", "the API token sent is unknown or revoked"))
                    }
                    Some(Capability::FileReport) => {
                        errors.push(("401", "the API token sent is unknown or revoked"));
                        errors.push((
                            "429",
                            "too many submissions from this client without logging in; see Retry-After",
                        ));
                    }
                    _ => {
                        errors.push(("401", "no session or token, or an unknown or revoked one"));
                        errors.push(("403", "the caller's role or region does not allow it"));
                    }
                }
                for (status, description) in errors {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                }
            }
        }
    }
}

/// The document as JSON.
pub fn document() -> Document {
    ApiDoc::openapi()
}

pub(super) async fn serve() -> impl IntoResponse {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The paths `app` routes under `/api/v1`, read from the router's source.
    fn routed_paths() -> BTreeSet<String> {
        let source = include_str!("mod.rs");
        let start = source
            .find("let api = Router::new()")
            .expect("the API router");
        let end = start + source[start..].find(".fallback(").expect("its fallback");
        source[start..end]
            .split(".route(")
            .skip(1)
            .filter_map(|chunk| {
                let chunk = chunk.trim_start();
                let rest = chunk.strip_prefix('"')?;
                Some(format!("/api/v1{}", &rest[..rest.find('"')?]))
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let documented: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
        let routed = routed_paths();
        assert!(routed.len() > 40, "read {} routes", routed.len());
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes without docs: {undocumented:?}"
        );
        assert!(unrouted.is_empty(), "docs without routes: {unrouted:?}");
    }

    #[test]
    fn every_operation_has_an_access_rule() {
        let doc = serde_json::to_value(document()).expect("serialises");
        let mut missing = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                let m = method.to_uppercase();
                if crate::access::rule(&m, path.trim_start_matches("/api/v1")).is_none() {
                    missing.push(format!("{m} {path}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "operations without an access rule: {missing:?}"
        );
    }

    #[test]
    fn every_operation_documents_the_common_errors_in_the_error_format() {
        let doc = serde_json::to_value(document()).expect("serialises");
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                operations += 1;
                for status in ["400", "500", "503"] {
                    let schema = &op["responses"][status]["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
                let statuses: Vec<&String> = op["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .collect();
                assert!(
                    statuses.iter().any(|s| s.starts_with('2')),
                    "{method} {path} has no success answer"
                );
            }
        }
        assert!(operations >= 48, "{operations} operations");
        assert!(doc["components"]["schemas"]["ReportInput"].is_object());
        assert!(doc["components"]["schemas"]["CaseDetail"].is_object());
    }
}
