//! Open311 GeoReport v2 against a real client: tests/open311/client.py drives a fresh
//! `gridwatch serve --demo` with the `georeport` library (services, definitions, requests and
//! tokens, JSON and XML, errors), filing with the demo's api_key.

use crate::support::{fresh_db, repo_dir, url_of, Child};
use std::process::Command;

#[tokio::test]
async fn a_real_open311_client_files_and_reads_requests() {
    let python = repo_dir().join("tests/.venv/bin/python");
    assert!(
        python.exists(),
        "tests/.venv is missing: run scripts/setup --with-browser"
    );
    let (_db, options) = fresh_db().await;
    let url = url_of(&options);
    let server = Child::serve(
        &["--listen", "127.0.0.1:0", "--demo"],
        &[("DATABASE_URL", &url), ("RUST_LOG", "warn")],
    );
    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(repo_dir().join("tests/open311/client.py"))
            .arg(&base)
            .output()
            .expect("run the Open311 client")
    })
    .await
    .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Open311 client checks failed");
    assert!(server.terminate().success());
}
