#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report
//! Integration tests: one binary, a real PostgreSQL + PostGIS (the embedded cluster under
//! target/tmp, or `TEST_DATABASE_URL`), each test in its own database cloned from a migrated
//! template.

mod access;
mod api;
mod api_contract;
mod backup;
mod browser;
mod cli;
mod crs_reference;
mod dashboard;
mod demo;
mod dispatch;
mod hotspots;
mod import;
mod locate_oracle;
mod open311;
mod ops;
mod photos;
mod redraw;
mod report_import;
mod sketches;
mod support;
mod tiles;
