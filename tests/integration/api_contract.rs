//! The OpenAPI document against the running service: schemathesis (tests/.venv) generates
//! requests for every `/api/v1` operation from `/api/openapi.json`, valid and invalid, and
//! checks that none gets a 5xx, and that every status, content type and response body is the one
//! the document declares. The case stream (server-sent events) never ends, so it is left out.

use crate::support::{fresh_db, repo_dir, tmp_dir, url_of, Child};
use std::process::Command;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let schemathesis = repo_dir().join("tests/.venv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "tests/.venv is missing schemathesis: run scripts/setup --with-browser"
    );
    let (db, options) = fresh_db().await;
    let url = url_of(&options);
    let server = Child::serve(
        &["--listen", "127.0.0.1:0", "--demo"],
        &[("DATABASE_URL", &url), ("RUST_LOG", "error")],
    );
    let base = server.base.clone();
    // As the demo admin, so every operation is reached and not only refused with 401.
    let token = gridwatch::workflow::Gridwatch::open(db, 50.0)
        .await
        .unwrap()
        .add_user_token("admin", "schemathesis")
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .current_dir(tmp_dir())
            .args(["--no-color", "run", &format!("{base}/api/openapi.json")])
            .args(["--url", &base])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--exclude-path",
                "/api/v1/cases/stream",
                "--max-examples",
                "40",
                "--workers",
                "2",
                "--request-timeout",
                "60",
            ])
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "schemathesis found failures (see above)"
    );
    // It really ran every operation but the stream, not an empty selection.
    let doc = serde_json::to_value(gridwatch::http::openapi::document()).unwrap();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(
        stdout.contains(&format!("Tested: {}", operations - 1)),
        "not every operation was tested"
    );
    assert!(server.terminate().success());
}
