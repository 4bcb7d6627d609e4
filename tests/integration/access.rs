//! Region-scoped access, role by role: the demo's user of each role (and an anonymous caller)
//! against the endpoints, with two cases, one in 新华街道's 康乐社区第1网格 and one in another street.
//! Each row says what that caller must get: the status, and for lists what they may see.

use crate::support::{demo_app, grid_point, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

const USERS: [&str; 8] = [
    "admin",
    "diaodu",
    "xinhua",
    "kangle",
    "guihua",
    "wanggeyuan",
    "chengguan",
    "guancha",
];
/// 康乐社区第1网格 (新华街道): the grid worker's grid, inside the street and community leaders'.
const HOME_GRID: &str = "150302001001001";
/// A grid of 新华西街道: outside every scoped user's region.
const OTHER_STREET: &str = "150302002";

struct World {
    app: TestApp,
    /// a case in HOME_GRID, whistled to fire_rescue and urban_management, with a reporter
    home: i64,
    home_report: i64,
    /// a case in the other street
    away: i64,
    away_report: i64,
}

async fn inside(app: &TestApp, code_prefix: &str) -> (f64, f64) {
    let (_, lon, lat) = grid_point(app, code_prefix).await;
    (lon, lat)
}

async fn world() -> World {
    let app = demo_app().await;
    assert_eq!(
        app.gw.load_demo_users().await.unwrap(),
        7,
        "the admin exists already"
    );
    let file = |lon: f64, lat: f64, category: &str| {
        json!({"category": category, "lon": lon, "lat": lat, "source": "resident",
               "description": "测试", "reporter": {"name": "王女士", "phone": "13904731234"}})
    };
    let (lon, lat) = inside(&app, HOME_GRID).await;
    let (s, home) = app
        .post("/api/v1/reports", &file(lon, lat, "fire_lane_blocked"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    assert_eq!(home["assignment"]["grid"]["code"], HOME_GRID, "{home}");
    let (lon, lat) = inside(&app, OTHER_STREET).await;
    let (s, away) = app
        .post("/api/v1/reports", &file(lon, lat, "road_hazard"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{away}");
    let id = home["case_id"].as_i64().unwrap();
    for action in [
        json!({"action": "accept", "difficulty": "complex", "urgency": "urgent",
               "lead_department": "fire_rescue", "co_departments": ["urban_management"]}),
        json!({"action": "whistle"}),
    ] {
        let (s, b) = app
            .post(&format!("/api/v1/cases/{id}/actions"), &action)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    World {
        home: id,
        home_report: home["id"].as_i64().unwrap(),
        away: away["case_id"].as_i64().unwrap(),
        away_report: away["id"].as_i64().unwrap(),
        app,
    }
}

impl World {
    async fn caller(&self, user: &str) -> TestApp {
        if user == "anonymous" {
            return self.app.as_caller(None);
        }
        let token = self
            .app
            .gw
            .add_user_token(user, "access test")
            .await
            .unwrap();
        self.app.as_caller(Some(token))
    }
}

/// `(path, [status per USERS in order, then anonymous])`
const S200: u16 = 200;
const S401: u16 = 401;
const S403: u16 = 403;
const S404: u16 = 404;

#[tokio::test]
async fn each_role_gets_exactly_its_access_to_cases_reports_and_settings() {
    let w = world().await;
    let (home, away) = (w.home, w.away);
    let (home_r, away_r) = (w.home_report, w.away_report);
    // GET requests: the status each caller gets, in the order of USERS, then anonymous.
    let table: Vec<(String, [u16; 9])> = vec![
        (
            "/api/v1/cases".into(),
            [S200, S200, S200, S200, S403, S200, S200, S403, S401],
        ),
        (
            format!("/api/v1/cases/{home}"),
            [S200, S200, S200, S200, S403, S200, S200, S403, S401],
        ),
        (
            format!("/api/v1/cases/{away}"),
            [S200, S200, S404, S404, S403, S404, S404, S403, S401],
        ),
        // ID guessing: a case outside the region answers like one that does not exist.
        (
            "/api/v1/cases/999999".into(),
            [S404, S404, S404, S404, S403, S404, S404, S403, S401],
        ),
        (
            format!("/api/v1/cases/{away}/notices"),
            [S200, S200, S404, S404, S403, S404, S404, S403, S401],
        ),
        (
            "/api/v1/reports".into(),
            [S200, S200, S200, S200, S403, S200, S403, S403, S401],
        ),
        (
            format!("/api/v1/reports/{home_r}"),
            [S200, S200, S200, S200, S403, S200, S200, S403, S401],
        ),
        (
            format!("/api/v1/reports/{away_r}"),
            [S200, S200, S404, S404, S403, S404, S404, S403, S401],
        ),
        (
            format!("/api/v1/cases?region={OTHER_STREET}"),
            [S200, S200, S403, S403, S403, S403, S200, S403, S401],
        ),
        (
            "/api/v1/dashboard?region=150302".into(),
            [S200, S200, S200, S200, S200, S403, S200, S200, S401],
        ),
        (
            format!("/api/v1/dashboard?region={OTHER_STREET}"),
            [S200, S200, S403, S403, S200, S403, S200, S200, S401],
        ),
        (
            "/api/v1/routing-rules".into(),
            [S200, S200, S200, S200, S403, S403, S403, S403, S401],
        ),
        (
            "/api/v1/sketches".into(),
            [S200, S403, S403, S403, S200, S403, S403, S403, S401],
        ),
        (
            "/api/v1/users".into(),
            [S200, S403, S403, S403, S403, S403, S403, S403, S401],
        ),
        (
            "/api/v1/audit".into(),
            [S200, S403, S403, S403, S403, S403, S403, S403, S401],
        ),
        ("/api/v1/reports/trend".into(), [S200; 9]),
        // Public: the snap-and-report page's needs.
        ("/api/v1/categories".into(), [S200; 9]),
        ("/api/v1/regions?level=district".into(), [S200; 9]),
        ("/api/v1/locate?lon=106.8&lat=39.66".into(), [S200; 9]),
    ];
    let mut callers = Vec::new();
    for u in USERS.iter().copied().chain(["anonymous"]) {
        callers.push((u, w.caller(u).await));
    }
    let mut wrong = Vec::new();
    for (path, expected) in &table {
        for ((user, app), want) in callers.iter().zip(expected) {
            let (status, body) = app.get(path).await;
            if status.as_u16() != *want {
                wrong.push(format!(
                    "{user} GET {path}: {status}, expected {want}: {body}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Lists are filtered: each sees the cases of their region (or department) only.
    for (user, want) in [
        ("admin", vec![away, home]),
        ("diaodu", vec![away, home]),
        ("xinhua", vec![home]),
        ("kangle", vec![home]),
        ("wanggeyuan", vec![home]),
        ("chengguan", vec![home]),
    ] {
        let app = &callers.iter().find(|(u, _)| *u == user).unwrap().1;
        let (_, page) = app.get("/api/v1/cases").await;
        let mut ids: Vec<i64> = page["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        ids.sort();
        let mut want = want;
        want.sort();
        assert_eq!(ids, want, "{user}'s queue");
        let open: i64 = page["counts"]["reported"].as_i64().unwrap()
            + page["counts"]["whistled"].as_i64().unwrap();
        assert_eq!(
            open as usize,
            want.len(),
            "{user}'s counts follow the filter"
        );
    }
    let app = &callers[2].1; // xinhua
    let (_, page) = app.get("/api/v1/reports").await;
    let codes: Vec<&str> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["street_code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["150302001"],
        "a street leader lists their street's reports"
    );
    let (_, dash) = app.get("/api/v1/dashboard?region=150302").await;
    assert_eq!(
        dash["region"]["code"], "150302001",
        "narrowed to the street: {dash}"
    );

    // Personal data: the reporter's phone only for the roles that read it, and each read is audited.
    for (user, sees) in [
        ("admin", true),
        ("diaodu", true),
        ("xinhua", true),
        ("kangle", true),
        ("chengguan", true),
        ("wanggeyuan", false),
    ] {
        let app = &callers.iter().find(|(u, _)| *u == user).unwrap().1;
        let (_, case) = app.get(&format!("/api/v1/cases/{home}")).await;
        assert_eq!(
            case["reporter"]["phone"].as_str() == Some("13904731234"),
            sees,
            "{user}: {}",
            case["reporter"]
        );
        if !sees {
            assert!(case["reporter"].is_null(), "{user}");
        }
    }
    let (_, audit) = callers[0]
        .1
        .get(&format!("/api/v1/audit?subject=case:{home}"))
        .await;
    let viewers: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "personal_data.view")
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    for user in ["xinhua", "kangle", "chengguan", "diaodu"] {
        assert!(viewers.contains(&user), "{user} in {viewers:?}");
    }
    assert!(!viewers.contains(&"wanggeyuan"), "{viewers:?}");

    // Actions: a responder answers a whistle to their department, not a dispatcher's action;
    // nobody acts on a case outside their view.
    let act = |app: &TestApp, id: i64, action: Value| {
        let app = app.as_caller(app.token.clone());
        async move {
            app.post(&format!("/api/v1/cases/{id}/actions"), &action)
                .await
        }
    };
    let by = |u: &str| &callers.iter().find(|(x, _)| *x == u).unwrap().1;
    let (s, b) = act(
        by("chengguan"),
        home,
        json!({"action": "reject", "reason": "invalid"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = act(by("wanggeyuan"), home, json!({"action": "close"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = act(by("guancha"), home, json!({"action": "close"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = act(by("kangle"), away, json!({"action": "accept"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    // … and for their own department only.
    let (s, b) = act(
        by("chengguan"),
        home,
        json!({"action": "acknowledge", "department": "fire_rescue"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = act(by("chengguan"), 999_999, json!({"action": "acknowledge"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = act(
        by("chengguan"),
        home,
        json!({"action": "acknowledge", "department": "urban_management"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let last = b["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"], "陈刚（城市管理综合执法局）",
        "the history names the user: {last}"
    );

    // Grids: a planner edits inside their district only; others not at all.
    let check = |u: &str, code: &str| {
        let app = by(u).as_caller(by(u).token.clone());
        let path = format!("/api/v1/regions/{code}/redraw/check");
        async move {
            app.post(&path, &json!({"type": "FeatureCollection", "features": []}))
                .await
                .0
        }
    };
    assert_ne!(check("guihua", "150302001001").await, StatusCode::FORBIDDEN);
    assert_eq!(check("guihua", "150303001001").await, StatusCode::FORBIDDEN);
    assert_eq!(check("xinhua", "150302001001").await, StatusCode::FORBIDDEN);
    assert_eq!(
        check("anonymous", "150302001001").await,
        StatusCode::UNAUTHORIZED
    );
    // Settings: dispatchers change them, leaders read them.
    let (s, _) = by("xinhua")
        .call("PUT", "/api/v1/escalation-policy", Some(b"{}".to_vec()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Changes to the dispatch settings are audited under the user who made them.
    let (s, b) = by("diaodu")
        .post(
            "/api/v1/routing-rules",
            &json!({"category": "road_hazard", "territory": "150302001",
                    "lead_department": "urban_management", "co_departments": [], "note": "测试"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, audit) = callers[0].1.get("/api/v1/audit?actor=diaodu").await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "dispatch.change"),
        "{audit}"
    );
    let (_, audit) = callers[0].1.get("/api/v1/audit?actor=guihua").await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "grid.change"),
        "a check changes nothing: {audit}"
    );

    // Anonymous residents file reports (the snap-and-report page) without logging in.
    let (lon, lat) = inside(&w.app, HOME_GRID).await;
    let (s, b) = by("anonymous")
        .post(
            "/api/v1/reports",
            &json!({"category": "road_hazard", "lon": lon, "lat": lat, "source": "resident"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test]
async fn logins_are_throttled_sessions_end_and_disabled_users_are_locked_out() {
    let w = world().await;
    let app = w.app.as_caller(None);
    let login = |user: &str, password: &str| json!({"username": user, "password": password});
    let (s, b) = app
        .post("/api/v1/session", &login("xinhua", "gridwatch-demo"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["role"], "street_leader");
    assert_eq!(b["scope"], "150302001");
    assert_eq!(b["scope_name"], "新华街道");
    // A wrong password and an unknown user get the same answer.
    let (s1, b1) = app
        .post("/api/v1/session", &login("xinhua", "wrong password"))
        .await;
    let (s2, b2) = app
        .post("/api/v1/session", &login("nobody", "wrong password"))
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(b1["error"]["message"], b2["error"]["message"]);
    // Five failures for a user lock them out for a while, even with the right password.
    for _ in 0..4 {
        app.post("/api/v1/session", &login("kangle", "wrong password"))
            .await;
    }
    let (s, _) = app
        .post("/api/v1/session", &login("kangle", "wrong password"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = app
        .post("/api/v1/session", &login("kangle", "gridwatch-demo"))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    // Others are not locked out by it.
    let (s, _) = app
        .post("/api/v1/session", &login("guancha", "gridwatch-demo"))
        .await;
    assert_eq!(s, StatusCode::OK);

    // A disabled user's token stops working at once.
    let token = w.app.gw.add_user_token("diaodu", "test").await.unwrap();
    let dispatcher = w.app.as_caller(Some(token));
    assert_eq!(dispatcher.get("/api/v1/cases").await.0, StatusCode::OK);
    assert!(w.app.gw.disable_user("diaodu").await.unwrap());
    let (s, b) = dispatcher.get("/api/v1/cases").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, _) = app
        .post("/api/v1/session", &login("diaodu", "gridwatch-demo"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // An admin adds a user with a one-time password, which must be changed before anything else.
    let (s, b) = w
        .app
        .post(
            "/api/v1/users",
            &json!({"username": "zhao.min", "role": "community_leader", "scope": "150302001002"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let otp = b["one_time_password"].as_str().unwrap().to_owned();
    let (s, b) = w
        .app
        .post(
            "/api/v1/users",
            &json!({"username": "li", "role": "street_leader", "scope": HOME_GRID}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scope"))
    );
    let (s, b) = app.post("/api/v1/session", &login("zhao.min", &otp)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["must_change_password"], true);
}

#[tokio::test]
async fn anonymous_submissions_are_rate_limited_per_client() {
    let w = world().await;
    let app = w.app.as_caller(None);
    let (lon, lat) = inside(&w.app, HOME_GRID).await;
    let body = json!({"category": "road_hazard", "lon": lon, "lat": lat, "source": "resident"});
    let limit = gridwatch::http::auth::PUBLIC_SUBMISSIONS as usize;
    for i in 0..limit {
        let (s, b) = app.post("/api/v1/reports", &body).await;
        assert_eq!(s, StatusCode::CREATED, "submission {i}: {b}");
    }
    let (s, b) = app.post("/api/v1/reports", &body).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("too many"));
    // The demo's Open311 key is public: its requests share the same limit, answered in
    // Open311's error format.
    let form = format!(
        "api_key=demo&service_code=road_hazard&lat={lat}&long={lon}&description=%E6%B5%8B%E8%AF%95"
    );
    let (s, _, answer) = app
        .raw(
            "POST",
            "/open311/v2/requests.json",
            "application/x-www-form-urlencoded",
            form.clone().into_bytes(),
        )
        .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer[0]["code"], 429, "{answer}");
    // A key issued to a client (the hotline's gateway) is not limited by it.
    w.app
        .gw
        .add_api_key(
            "12345 hotline",
            "hotline-key-for-tests",
            gridwatch::access::ClientPurpose::Reports,
        )
        .await
        .unwrap();
    let form = form.replace("api_key=demo", "api_key=hotline-key-for-tests");
    let (s, _, answer) = app
        .raw(
            "POST",
            "/open311/v2/requests.json",
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A logged-in grid worker is not limited by it.
    let worker = w.caller("wanggeyuan").await;
    let (s, _) = worker.post("/api/v1/reports", &body).await;
    assert_eq!(s, StatusCode::CREATED);
}

/// Who may hold each capability, stated here independently of the code: a row per capability,
/// a column per role in the order of `USERS` (admin, dispatcher, street leader, community
/// leader, planner, grid worker, responder, viewer), then whether anonymous callers may.
fn policy(c: gridwatch::access::Capability) -> [bool; 9] {
    use gridwatch::access::Capability::*;
    const T: bool = true;
    const F: bool = false;
    match c {
        Public | FileReport => [T, T, T, T, T, T, T, T, T],
        Session | ViewMap => [T, T, T, T, T, T, T, T, F],
        ViewCases => [T, T, T, T, F, T, T, F, F],
        ViewReports => [T, T, T, T, F, T, F, F, F],
        ActOnCases => [T, T, T, T, F, F, T, F, F],
        ViewDispatch => [T, T, T, T, F, F, F, F, F],
        ConfigureDispatch => [T, T, F, F, F, F, F, F, F],
        EditGrids | ViewSketches => [T, F, F, F, T, F, F, F, F],
        ControlClock | ManageUsers => [T, F, F, F, F, F, F, F, F],
        // the SMS gateway's key only: delivery_receipts_come_from_the_gateway_key_alone
        DeliveryReceipts => [F, F, F, F, F, F, F, F, F],
    }
}

/// Every operation of the OpenAPI document, by every role and anonymously: a caller the policy
/// refuses gets exactly 401 (anonymous) or 403 from the gate, one it allows is never turned away
/// by the gate, and nobody gets a 5xx. Path parameters name things inside every scoped user's
/// region; bodies are empty objects, so nothing is changed.
#[tokio::test]
async fn every_operation_admits_exactly_the_roles_the_policy_names() {
    let w = world().await;
    let doc = serde_json::to_value(gridwatch::http::openapi::document()).unwrap();
    let mut callers = Vec::new();
    for u in USERS.iter().copied().chain(["anonymous"]) {
        callers.push((u, w.caller(u).await));
    }
    let roles: Vec<Option<gridwatch::access::Role>> = gridwatch::access::Role::ALL
        .iter()
        .copied()
        .map(Some)
        .chain([None])
        .collect();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(route) = path.strip_prefix("/api/v1") else {
            continue;
        };
        if route == "/cases/stream" {
            continue; // an endless stream: the_event_stream_carries_only_the_cases_a_caller_sees
        }
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            let upper = method.to_uppercase();
            let rule = gridwatch::access::rule(&upper, route)
                .unwrap_or_else(|| panic!("{upper} {route} has no rule"));
            let allowed = policy(rule.capability);
            let id = if route.starts_with("/reports/") {
                w.home_report
            } else if route.starts_with("/cases/") {
                w.home
            } else {
                999_999
            };
            let uri = path
                .replace("{id}", &id.to_string())
                .replace(
                    "{code}",
                    if route.starts_with("/categories") {
                        "road_hazard"
                    } else {
                        HOME_GRID
                    },
                )
                .replace("{username}", "nobody-here")
                .replace("{n}", "1");
            for (((user, app), role), allow) in callers.iter().zip(&roles).zip(allowed) {
                let body = if method == "get" || method == "delete" {
                    Vec::new()
                } else {
                    b"{}".to_vec()
                };
                let (status, _, bytes) = app.raw(&upper, &uri, "application/json", body).await;
                // Images, CSV and empty answers are fine: only errors are read.
                let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let s = status.as_u16();
                checked += 1;
                let message = answer["error"]["message"].as_str().unwrap_or("");
                let gate_refused = match role {
                    Some(r) => s == 403 && message.starts_with(&format!("a {r} (")),
                    None => s == 401,
                };
                let ok = if s >= 500 {
                    false
                } else if allow {
                    !gate_refused && s != 401
                } else if role.is_none() {
                    s == 401
                } else {
                    gate_refused
                };
                if !ok {
                    wrong.push(format!(
                        "{user} {upper} {uri}: {s} {answer} (policy: {})",
                        if allow { "allowed" } else { "refused" }
                    ));
                }
            }
        }
    }
    assert!(checked > 400, "{checked} requests");
    assert!(
        wrong.is_empty(),
        "{} wrong of {checked}:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The live queue's event stream tells a street leader of their street's cases only: an event
/// of another street's new case is never sent to them, the next one of their own is.
#[tokio::test]
async fn the_event_stream_carries_only_the_cases_a_caller_sees() {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let w = world().await;
    let leader = w.caller("xinhua").await;
    let req = Request::builder()
        .uri("/api/v1/cases/stream")
        .header(
            "authorization",
            format!("Bearer {}", leader.token.as_deref().unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    let resp = leader.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();

    let file = |(lon, lat): (f64, f64)| json!({"category": "road_hazard", "lon": lon, "lat": lat, "source": "grid_worker"});
    let (s, away) = w
        .app
        .post("/api/v1/reports", &file(inside(&w.app, OTHER_STREET).await))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{away}");
    let (s, home) = w
        .app
        .post("/api/v1/reports", &file(inside(&w.app, HOME_GRID).await))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{home}");
    let (away, home) = (
        away["case_id"].as_i64().unwrap(),
        home["case_id"].as_i64().unwrap(),
    );

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !text.contains(&format!("\"id\":{home},")) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no event of case {home} within 20 s; got {text:?}"))
            .expect("the stream stays open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(
        !text.contains(&format!("\"id\":{away},")),
        "another street's case was sent: {text}"
    );
}
