//! The whistle loop against real PostGIS: routing at intake, the states and their 409s, cards
//! fired by the scheduler on a controllable clock, exactly once across restarts and concurrent
//! schedulers, notices through a real webhook with retries, duplicates and merges, packages,
//! figures, and bad input that writes nothing.

use crate::support::{demo_app_with, fresh_db, url_of, Child, TestApp};
use axum::http::StatusCode;
use gridwatch::workflow::clock::Clock;
use gridwatch::workflow::courier::Courier;
use gridwatch::workflow::dispatch::NoticeConfig;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Haibowan, 新华街道 康乐社区: inside a demo grid.
const KANGLE: (f64, f64) = (106.8405, 39.672);

async fn dispatch_app() -> TestApp {
    let app = demo_app_with(|gw| gw.with_clock(Clock::controllable())).await;
    gridwatch::demo::seed_rules(&app.gw).await.unwrap();
    app
}

async fn report(app: &TestApp, category: &str, lon: f64, lat: f64) -> Value {
    let (status, body) = app
        .post(
            "/api/v1/reports",
            &json!({"category": category, "lon": lon, "lat": lat, "source": "resident",
                    "description": "测试"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn act(app: &TestApp, id: i64, body: Value) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/cases/{id}/actions"), &body)
        .await
}

async fn act_ok(app: &TestApp, id: i64, body: Value) -> Value {
    let (status, v) = act(app, id, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body} → {v}");
    v
}

fn card_of(case: &Value, department: &str) -> Value {
    case["whistles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["department"]["code"] == department)
        .map(|w| w["card"].clone())
        .unwrap_or(Value::Null)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.scalar_i64(sql).await
}

/// 出卷 → 吹哨 → 应哨 → 答卷 → 交卷 → 评卷, with a yellow card after an hour without an answer.
#[tokio::test]
async fn a_case_goes_round_the_loop_and_the_clock_shows_cards() {
    let app = dispatch_app().await;
    let filed = report(&app, "fire_lane_blocked", KANGLE.0, KANGLE.1).await;
    // Routed at intake by the city-wide rule, with why.
    assert_eq!(filed["routing"]["lead"]["code"], "fire_rescue");
    assert_eq!(
        filed["routing"]["co_departments"][0]["code"],
        "urban_management"
    );
    assert!(filed["routing"]["why"]
        .as_str()
        .unwrap()
        .contains("消防救援大队"));
    let id = filed["case_id"].as_i64().unwrap();
    let (_, case) = app.get(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(case["state"], "reported");
    assert_eq!(case["grid"]["code"].as_str().unwrap().len(), 15);
    assert!(case["party_branch"]["name"].is_string(), "{case}");
    assert!(
        !case["staff"].as_array().unwrap().is_empty(),
        "the grid staff to notify"
    );

    act_ok(
        &app,
        id,
        json!({"action": "accept", "difficulty": "complex", "urgency": "urgent"}),
    )
    .await;
    let case = act_ok(
        &app,
        id,
        json!({"action": "whistle", "actor": "综治中心 王"}),
    )
    .await;
    assert_eq!(case["state"], "whistled");
    assert_eq!(case["whistles"].as_array().unwrap().len(), 2);
    assert_eq!(case["whistles"][0]["next_step"]["card"], "yellow");
    // Notice 1 went out with the whistle, to each department.
    let n1 = count(
        &app,
        &format!("select count(*) from outbox where case_id = {id} and kind = 'whistle_notice'"),
    )
    .await;
    assert_eq!(n1, 2);

    // 59 minutes: nothing yet. 61: the yellow card, notice 2 and the centre head.
    app.gw.clock.advance(chrono::Duration::minutes(59)).unwrap();
    assert_eq!(app.gw.escalate_due().await.unwrap(), 0);
    app.gw.clock.advance(chrono::Duration::minutes(2)).unwrap();
    assert_eq!(app.gw.escalate_due().await.unwrap(), 2);
    let (_, case) = app.get(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(card_of(&case, "fire_rescue"), "yellow");
    assert_eq!(case["card"], "yellow");
    assert_eq!(case["overdue"], true);
    let heads = count(
        &app,
        &format!(
            "select count(*) from outbox where case_id = {id} and recipient = 'role:centre_head'"
        ),
    )
    .await;
    assert_eq!(heads, 2);

    // The lead answers: its clock stops. The co-department does not, and gets a red card.
    act_ok(
        &app,
        id,
        json!({"action": "acknowledge", "department": "fire_rescue"}),
    )
    .await;
    app.gw
        .clock
        .advance(chrono::Duration::minutes(180))
        .unwrap();
    assert_eq!(
        app.gw.escalate_due().await.unwrap(),
        1,
        "only urban management's red step"
    );
    let (_, case) = app.get(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(card_of(&case, "fire_rescue"), "yellow");
    assert_eq!(card_of(&case, "urban_management"), "red");
    let case = act_ok(
        &app,
        id,
        json!({"action": "acknowledge", "department": "urban_management"}),
    )
    .await;
    assert_eq!(case["state"], "acknowledged");
    // Acknowledged: the 15-hour push never comes.
    app.gw.clock.advance(chrono::Duration::hours(20)).unwrap();
    assert_eq!(app.gw.escalate_due().await.unwrap(), 0);

    let png = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n0000")
    };
    act_ok(&app, id, json!({"action": "resolve", "answer": "已清理通道", "photos": [{"content_type": "image/png", "data_base64": png}]})).await;
    act_ok(&app, id, json!({"action": "close"})).await;
    let case = act_ok(
        &app,
        id,
        json!({"action": "evaluate", "satisfaction": 5, "actor": "居民"}),
    )
    .await;
    assert_eq!(case["state"], "evaluated");
    assert_eq!(case["photos"].as_array().unwrap().len(), 1);
    let (status, _, bytes) = app
        .raw("GET", &format!("/api/v1/cases/{id}/photos/1"), "", vec![])
        .await;
    assert_eq!((status, &bytes[..4]), (StatusCode::OK, &b"\x89PNG"[..]));

    let actions: Vec<&str> = case["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "report",
            "accept",
            "whistle",
            "escalate",
            "escalate",
            "escalate",
            "escalate",
            "acknowledge",
            "escalate",
            "acknowledge",
            "resolve",
            "close",
            "evaluate"
        ],
    );
    // The history names the logged-in user, whatever `actor` the client sent.
    assert_eq!(case["events"][2]["actor"], "测试管理员");

    // The history is append-only, in the database itself.
    let err = sqlx::query("update case_event set note = 'x' where case_id = $1")
        .bind(id)
        .execute(app.gw.db.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(sqlx::query("delete from case_event")
        .execute(app.gw.db.pool())
        .await
        .is_err());
}

/// A case action and its audit line commit together: a refused action writes no line, and when
/// the line cannot be written the action is not kept either.
#[tokio::test]
async fn a_case_action_and_its_audit_line_are_kept_together_or_not_at_all() {
    let app = dispatch_app().await;
    let id = report(&app, "oil_smoke", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let lines = format!(
        "select count(*) from audit_event where subject = 'case:{id}' and action = 'case.action'"
    );
    let (status, _) = act(&app, id, json!({"action": "close"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        count(&app, &lines).await,
        0,
        "a refused action is not audited"
    );
    act_ok(
        &app,
        id,
        json!({"action": "accept", "difficulty": "complex"}),
    )
    .await;
    assert_eq!(count(&app, &lines).await, 1);
    let (actor, state): (String, String) = sqlx::query_as(&format!(
        "select actor, detail->>'state' from audit_event where subject = 'case:{id}' and action = 'case.action'"
    ))
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert_eq!((actor.as_str(), state.as_str()), ("admin", "accepted"));

    // The audit log refuses every line: the whistle fails and the case stays accepted.
    sqlx::raw_sql(
        "create function refuse_audit() returns trigger language plpgsql as
             $$ begin raise exception 'the audit log is unavailable'; end $$;
         create trigger refuse_audit before insert on audit_event
             for each row execute function refuse_audit();",
    )
    .execute(app.gw.db.pool())
    .await
    .unwrap();
    let events = format!("select count(*) from case_event where case_id = {id}");
    let before = count(&app, &events).await;
    let (status, body) = act(&app, id, json!({"action": "whistle"})).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert_eq!(
        count(&app, &events).await,
        before,
        "no event without its audit line"
    );
    assert_eq!(
        count(
            &app,
            &format!("select count(*) from dispatch_case where id = {id} and state = 'accepted'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "select count(*) from outbox where case_id = {id} and kind = 'whistle_notice'"
            )
        )
        .await,
        0,
        "no notice without its audit line"
    );
}

#[tokio::test]
async fn illegal_actions_are_refused_with_the_allowed_ones_and_write_nothing() {
    let app = dispatch_app().await;
    let id = report(&app, "oil_smoke", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let events = || format!("select count(*) from case_event where case_id = {id}");
    let before = count(&app, &events()).await;
    let (status, body) = act(&app, id, json!({"action": "close"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "illegal_transition");
    assert_eq!(
        body["error"]["allowed"],
        json!(["accept", "reject", "merge"])
    );
    assert_eq!(body["error"]["state"], "reported");

    // Bad input names its field.
    for (input, field) in [
        (json!({"action": "fly"}), "action"),
        (json!({"action": "accept"}), "difficulty"),
        (
            json!({"action": "accept", "difficulty": "hard"}),
            "difficulty",
        ),
        (
            json!({"action": "accept", "difficulty": "long"}),
            "deadline",
        ),
        (
            json!({"action": "accept", "difficulty": "very_complex"}),
            "coordinator",
        ),
        (
            json!({"action": "accept", "difficulty": "complex", "lead_department": "nasa"}),
            "lead_department",
        ),
        (
            json!({"action": "accept", "difficulty": "complex", "urgency": "now"}),
            "urgency",
        ),
        (json!({"action": "reject", "reason": "bored"}), "reason"),
        (json!({"action": "merge"}), "into"),
        (json!({"action": "merge", "into": id}), "into"),
        (json!({"action": "merge", "into": 999_999}), "into"),
    ] {
        let (status, body) = act(&app, id, input.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{input} → {body}");
        assert_eq!(body["error"]["field"], field, "{input} → {body}");
    }
    let (status, body) = act(
        &app,
        id,
        json!({"action": "accept", "difficulty": "complex", "colour": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(count(&app, &events()).await, before, "nothing written");
    assert_eq!(
        count(
            &app,
            &format!("select count(*) from dispatch_case where id = {id} and state = 'reported'")
        )
        .await,
        1
    );

    act_ok(
        &app,
        id,
        json!({"action": "accept", "difficulty": "complex"}),
    )
    .await;
    for (input, field) in [
        (
            json!({"action": "whistle", "departments": ["nasa"]}),
            "departments[0]",
        ),
        (json!({"action": "resolve", "answer": "x"}), ""),
    ] {
        let (status, body) = act(&app, id, input.clone()).await;
        if field.is_empty() {
            assert_eq!(status, StatusCode::CONFLICT, "{input} → {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("simple"),
                "{body}"
            );
        } else {
            assert_eq!(body["error"]["field"], field, "{input} → {body}");
        }
    }
    act_ok(
        &app,
        id,
        json!({"action": "whistle", "departments": ["urban_management"]}),
    )
    .await;
    let (status, body) = act(
        &app,
        id,
        json!({"action": "acknowledge", "department": "police"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("department")),
        "{body}"
    );
    act_ok(
        &app,
        id,
        json!({"action": "acknowledge", "department": "urban_management"}),
    )
    .await;
    for (input, field) in [
        (json!({"action": "resolve"}), "answer"),
        (
            json!({"action": "resolve", "answer": "ok", "photos": [{"content_type": "image/png", "data_base64": "%%%"}]}),
            "photos[0].data_base64",
        ),
        (
            json!({"action": "resolve", "answer": "ok", "photos": [{"content_type": "image/gif", "data_base64": "AA=="}]}),
            "photos[0].content_type",
        ),
    ] {
        let (status, body) = act(&app, id, input.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{input} → {body}");
        assert_eq!(body["error"]["field"], field, "{input} → {body}");
    }
    act_ok(&app, id, json!({"action": "resolve", "answer": "已整改"})).await;
    act_ok(&app, id, json!({"action": "close"})).await;
    let (_, body) = act(&app, id, json!({"action": "evaluate", "satisfaction": 7})).await;
    assert_eq!(body["error"]["field"], "satisfaction");
    // Unsatisfied: the case goes back to work.
    let case = act_ok(&app, id, json!({"action": "evaluate", "satisfaction": 2})).await;
    assert_eq!(case["state"], "accepted");
    // ... and the same department can be whistled again, with the co-department this time.
    let case = act_ok(&app, id, json!({"action": "whistle"})).await;
    let departments: Vec<&str> = case["whistles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["department"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        departments,
        ["urban_management", "urban_management", "market_regulation"]
    );

    let (status, _) = app.get("/api/v1/cases/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = act(
        &app,
        999_999,
        json!({"action": "accept", "difficulty": "simple"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_simple_case_is_closed_by_the_community_and_a_very_complex_one_gets_a_coordinator() {
    let app = dispatch_app().await;
    let id = report(&app, "uncivil_behaviour", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let (_, case) = app.get(&format!("/api/v1/cases/{id}")).await;
    // No rule: 属地兜底, the community takes it.
    assert_eq!(case["routing"]["lead"]["kind"], "territory");
    assert!(case["routing"]["why"]
        .as_str()
        .unwrap()
        .contains("属地兜底"));
    act_ok(
        &app,
        id,
        json!({"action": "accept", "difficulty": "simple"}),
    )
    .await;
    let (_, body) = act(&app, id, json!({"action": "whistle"})).await;
    assert_eq!(body["error"]["field"], "departments", "{body}");
    let case = act_ok(
        &app,
        id,
        json!({"action": "resolve", "answer": "社区已劝导"}),
    )
    .await;
    assert_eq!(case["state"], "resolved");
    assert!(case["whistles"].as_array().unwrap().is_empty());

    let id = report(&app, "wall_leak", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let deadline = (app.gw.clock.now() + chrono::Duration::days(10)).to_rfc3339();
    let case = act_ok(
        &app,
        id,
        json!({"action": "accept", "difficulty": "long", "deadline": deadline}),
    )
    .await;
    assert!(case["deadline"].is_string());
    let id = report(&app, "water_supply", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let case = act_ok(
        &app,
        id,
        json!({"action": "accept", "difficulty": "very_complex", "coordinator": "张副区长",
                                        "co_departments": ["housing_construction"]}),
    )
    .await;
    assert_eq!(case["coordinator"], "张副区长");
    assert_eq!(case["lead_department"]["code"], "water_affairs");
    assert_eq!(case["co_departments"][0]["code"], "housing_construction");
    assert_eq!(
        count(
            &app,
            &format!("select count(*) from outbox where case_id = {id} and kind = 'coordinator'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn routing_rules_are_data_territory_first() {
    let app = dispatch_app().await;
    let preview = |cat: &str| {
        format!(
            "/api/v1/routing/preview?lon={}&lat={}&category={cat}",
            KANGLE.0, KANGLE.1
        )
    };
    // The district's oil-smoke rule beats the city's.
    let (_, p) = app.get(&preview("oil_smoke")).await;
    assert_eq!(p["routing"]["lead"]["code"], "urban_management", "{p}");
    assert_eq!(p["located"]["street"]["code"], "150302001");
    // A rule for the street beats both; it is used by the next report at once.
    let (status, rule) = app
        .post("/api/v1/routing-rules", &json!({"category": "oil_smoke", "territory": "150302001",
              "lead_department": "market_regulation", "co_departments": ["market_regulation", "police"], "note": "试点"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(
        rule["co_departments"],
        json!(["police"]),
        "the lead is not its own co-department"
    );
    assert_eq!(rule["territory"]["name"], "新华街道");
    let filed = report(&app, "oil_smoke", KANGLE.0, KANGLE.1).await;
    assert_eq!(filed["routing"]["lead"]["code"], "market_regulation");
    assert_eq!(filed["routing"]["rule_id"], rule["id"]);
    // Same scope twice: 409. Bad fields: 422 naming them.
    let (status, body) = app
        .post(
            "/api/v1/routing-rules",
            &json!({"category": "oil_smoke", "territory": "150302001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for (input, field) in [
        (json!({"territory": "150302001001"}), "territory"),
        (json!({"category": "ufo"}), "category"),
        (json!({"lead_department": "nasa"}), "lead_department"),
        (
            json!({"co_departments": ["police", "nasa"]}),
            "co_departments[1]",
        ),
    ] {
        let (status, body) = app.post("/api/v1/routing-rules", &input).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{input} → {body}");
        assert_eq!(body["error"]["field"], field);
    }
    // Edit to "handled by the community", then delete: back to the district rule.
    let rid = rule["id"].as_i64().unwrap();
    let (status, edited) = app
        .call(
            "PUT",
            &format!("/api/v1/routing-rules/{rid}"),
            Some(
                serde_json::to_vec(&json!({"category": "oil_smoke", "territory": "150302001"}))
                    .unwrap(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let (_, p) = app.get(&preview("oil_smoke")).await;
    assert_eq!(p["routing"]["lead"]["kind"], "territory");
    assert!(
        p["routing"]["why"].as_str().unwrap().contains("新华街道"),
        "{p}"
    );
    let (status, _, _) = app
        .raw(
            "DELETE",
            &format!("/api/v1/routing-rules/{rid}"),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, p) = app.get(&preview("oil_smoke")).await;
    assert_eq!(p["routing"]["lead"]["code"], "urban_management");
    let (status, _, _) = app
        .raw(
            "DELETE",
            &format!("/api/v1/routing-rules/{rid}"),
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicates_are_offered_and_merged_and_recurring_problems_packaged() {
    let app = dispatch_app().await;
    let (status, _) = app
        .call("PUT", "/api/v1/categories/flying_lead_charging/dispatch",
              Some(serde_json::to_vec(&json!({"duplicate_radius_m": 80.0, "duplicate_window_days": 7,
                                               "package_min_reports": 4, "package_window_days": 30})).unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let a = report(&app, "flying_lead_charging", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    // ~33 m away: a duplicate. ~300 m away: not one.
    let b = report(
        &app,
        "flying_lead_charging",
        KANGLE.0 + 0.0003,
        KANGLE.1 + 0.0001,
    )
    .await["case_id"]
        .as_i64()
        .unwrap();
    let c = report(&app, "flying_lead_charging", KANGLE.0 + 0.0035, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let (_, detail) = app.get(&format!("/api/v1/cases/{b}")).await;
    assert_eq!(detail["duplicate_count"], 1);
    assert_eq!(detail["duplicates"][0]["id"], a);
    let d = detail["duplicates"][0]["distance_m"].as_f64().unwrap();
    assert!((20.0..50.0).contains(&d), "{d}");
    let (_, far) = app.get(&format!("/api/v1/cases/{c}")).await;
    assert_eq!(far["duplicate_count"], 0);

    let merged = act_ok(&app, b, json!({"action": "merge", "into": a})).await;
    assert_eq!(
        (merged["state"].as_str(), merged["merged_into"].as_i64()),
        (Some("merged"), Some(a))
    );
    let (_, target) = app.get(&format!("/api/v1/cases/{a}")).await;
    assert_eq!(target["merged_cases"], json!([b]));
    assert_eq!(
        target["events"].as_array().unwrap().last().unwrap()["action"],
        "merge_in"
    );
    let (status, _) = act(&app, b, json!({"action": "merge", "into": a})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a merged case is finished");
    let other = report(&app, "oil_smoke", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let (_, body) = act(&app, other, json!({"action": "merge", "into": a})).await;
    assert_eq!(body["error"]["field"], "into", "only the same category");

    // 4 flying-lead reports in 新华街道 within 30 days (the merged one does not count): a package.
    let (_, proposals) = app.get("/api/v1/packages/proposals").await;
    assert!(proposals.as_array().unwrap().is_empty(), "{proposals}");
    report(&app, "flying_lead_charging", KANGLE.0 + 0.0015, KANGLE.1).await;
    report(
        &app,
        "flying_lead_charging",
        KANGLE.0 + 0.0025,
        KANGLE.1 + 0.0005,
    )
    .await;
    let (_, proposals) = app.get("/api/v1/packages/proposals").await;
    let p = &proposals[0];
    assert_eq!(
        (
            p["street"]["code"].as_str(),
            p["category"].as_str(),
            p["count"].as_i64()
        ),
        (Some("150302001"), Some("flying_lead_charging"), Some(4)),
        "{proposals}"
    );
    let (status, bad) = app
        .post(
            "/api/v1/packages",
            &json!({"street": "150302009", "category": "flying_lead_charging"}),
        )
        .await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("street"))
    );
    let (status, pkg) = app
        .post(
            "/api/v1/packages",
            &json!({"street": "150302001", "category": "flying_lead_charging", "note": "集中整治"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pkg}");
    assert_eq!(pkg["case_ids"].as_array().unwrap().len(), 4);
    assert_eq!(
        count(&app, "select count(*) from outbox where kind = 'package'").await,
        1
    );
    // Packaged cases are not proposed again.
    let (_, proposals) = app.get("/api/v1/packages/proposals").await;
    assert!(proposals.as_array().unwrap().is_empty(), "{proposals}");
    let (status, _) = app
        .post(
            "/api/v1/packages",
            &json!({"street": "150302001", "category": "flying_lead_charging"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn figures_by_department_street_and_grid_agree_with_the_cases() {
    let app = dispatch_app().await;
    // Two fire-lane cases: one acknowledged on time and rated 5, one acknowledged after a card.
    let ids: Vec<i64> = [
        report(&app, "fire_lane_blocked", KANGLE.0, KANGLE.1).await,
        report(&app, "fire_lane_blocked", KANGLE.0 + 0.001, KANGLE.1).await,
    ]
    .iter()
    .map(|f| f["case_id"].as_i64().unwrap())
    .collect();
    for id in &ids {
        act_ok(
            &app,
            *id,
            json!({"action": "accept", "difficulty": "complex", "co_departments": []}),
        )
        .await;
        act_ok(&app, *id, json!({"action": "whistle"})).await;
    }
    app.gw.clock.advance(chrono::Duration::minutes(30)).unwrap();
    act_ok(
        &app,
        ids[0],
        json!({"action": "acknowledge", "department": "fire_rescue"}),
    )
    .await;
    act_ok(&app, ids[0], json!({"action": "resolve", "answer": "ok"})).await;
    act_ok(&app, ids[0], json!({"action": "close"})).await;
    act_ok(
        &app,
        ids[0],
        json!({"action": "evaluate", "satisfaction": 5}),
    )
    .await;
    app.gw.clock.advance(chrono::Duration::minutes(60)).unwrap();
    app.gw.escalate_due().await.unwrap();
    let (_, stats) = app.get("/api/v1/dispatch/stats?by=department").await;
    let row = stats["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "fire_rescue")
        .unwrap()
        .clone();
    assert_eq!(row["cases"], 2);
    assert_eq!(row["closed"], 1);
    assert_eq!(row["closure_rate"], 0.5);
    assert_eq!(row["whistles"], 2);
    assert_eq!(row["acknowledged_on_time"], 1);
    assert_eq!(row["on_time_rate"], 0.5, "one on time, one carded");
    assert!(
        (row["mean_ack_minutes"].as_f64().unwrap() - 30.0).abs() < 0.1,
        "{row}"
    );
    assert_eq!(row["satisfaction_rate"], 1.0);
    assert_eq!(row["overdue"], 1);
    let (_, by_street) = app.get("/api/v1/dispatch/stats?by=street").await;
    assert_eq!(by_street["rows"][0]["code"], "150302001");
    let (status, ct, csv) = app
        .raw(
            "GET",
            "/api/v1/dispatch/stats?by=grid&format=csv",
            "",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/csv"));
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.trim_start_matches('\u{feff}')
            .starts_with("code,name,cases,closed,closure_rate"),
        "{csv}"
    );
    assert!(csv.lines().count() >= 2);
    let (status, body) = app.get("/api/v1/dispatch/stats?by=planet").await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("by"))
    );
    // The queue's overdue filter finds the carded one.
    let (_, q) = app.get("/api/v1/cases?overdue=true").await;
    assert_eq!(q["cases"].as_array().unwrap().len(), 1);
    assert_eq!(q["cases"][0]["id"], ids[1]);
    assert_eq!(q["counts"]["overdue"], 1);
    let (_, q) = app
        .get("/api/v1/cases?state=evaluated&street=150302001")
        .await;
    assert_eq!(q["cases"][0]["id"], ids[0]);
    let (status, _) = app.get("/api/v1/cases?state=lost").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Two schedulers on one database fire every due step exactly once between them.
#[tokio::test]
async fn concurrent_schedulers_fire_each_step_once() {
    let app = dispatch_app().await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let f = report(
            &app,
            "road_hazard",
            KANGLE.0 + f64::from(i) * 0.0001,
            KANGLE.1,
        )
        .await;
        let id = f["case_id"].as_i64().unwrap();
        act_ok(
            &app,
            id,
            json!({"action": "accept", "difficulty": "complex"}),
        )
        .await;
        act_ok(&app, id, json!({"action": "whistle"})).await;
        ids.push(id);
    }
    // A second service on the same database, with its clock at the same time.
    let other = gridwatch::workflow::Gridwatch::open(app.gw.db.clone(), 50.0)
        .await
        .unwrap()
        .with_clock(Clock::controllable());
    let ahead = chrono::Duration::hours(16);
    app.gw.clock.advance(ahead).unwrap();
    other.clock.advance(ahead).unwrap();
    let (a, b) = tokio::join!(app.gw.escalate_due(), other.escalate_due());
    let fired = a.unwrap() + b.unwrap();
    // 60 cases × 2 departments × steps 1, 2, 3.
    assert_eq!(fired, 360);
    assert_eq!(count(&app, "select count(*) from case_event where action = 'escalate' and (data->>'step')::int > 0").await, 360);
    assert_eq!(count(&app, "select count(*) from escalation_deadline where fired_at is null and cancelled_at is null").await, 0);
    assert_eq!(app.gw.escalate_due().await.unwrap(), 0);
    assert_eq!(
        count(
            &app,
            "select count(*) from case_whistle where supervised and card = 'red'"
        )
        .await,
        120
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from outbox where kind = 'supervision'"
        )
        .await,
        120
    );
}

/// What the test webhook keeps: the ids it accepted, and how many calls it had.
type Hook = (Arc<Mutex<Vec<String>>>, Arc<std::sync::atomic::AtomicUsize>);

/// A webhook receiver that fails the first `fail_first` requests and records the ids it got.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let state = (seen.clone(), calls);
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                move |axum::extract::State((seen, calls)): axum::extract::State<Hook>,
                      headers: axum::http::HeaderMap,
                      axum::Json(body): axum::Json<Value>| async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let id = body["id"].as_str().unwrap_or_default().to_owned();
                    assert_eq!(
                        headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
                        Some(id.as_str())
                    );
                    seen.lock().unwrap().push(id);
                    StatusCode::OK
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A service whose notices go to a webhook receiver that fails its first `fail_first` calls,
/// with one sewer case accepted and whistled; the receiver's list of notice ids it kept.
async fn whistled_with_webhook(fail_first: usize) -> (TestApp, i64, Arc<Mutex<Vec<String>>>) {
    let (url, seen) = receiver(fail_first).await;
    let app = demo_app_with(|gw| {
        gw.with_clock(Clock::controllable())
            .with_notices(NoticeConfig {
                sms_webhook: Some(url.clone()),
                supervision_webhook: Some(url.clone()),
            })
    })
    .await;
    gridwatch::demo::seed_rules(&app.gw).await.unwrap();
    let case = report(&app, "sewer_blockage", KANGLE.0, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    act_ok(
        &app,
        case,
        json!({"action": "accept", "difficulty": "complex"}),
    )
    .await;
    act_ok(&app, case, json!({"action": "whistle"})).await;
    (app, case, seen)
}

/// The SMS gateway calls back with a receipt per notice, with its own key: a failed one sends the
/// notice through the webhook again (at most MAX_RECEIPT_FAILURES times), a delivered one
/// settles it; the case's notices show the last word. Nobody else may post receipts.
#[tokio::test]
async fn delivery_receipts_come_from_the_gateway_key_alone_and_failed_ones_resend() {
    use gridwatch::access::ClientPurpose;
    use gridwatch::workflow::courier::MAX_RECEIPT_FAILURES;
    let (app, case, seen) = whistled_with_webhook(0).await;
    let courier = Courier::new();
    let (sent, failed) = app.gw.deliver_notices(&courier).await.unwrap();
    assert_eq!((sent, failed), (2, 0), "opened and notice 1");
    let (_, notices) = app.get(&format!("/api/v1/cases/{case}/notices")).await;
    let whistle = notices
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "whistle_notice")
        .unwrap_or_else(|| panic!("{notices}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let opened = format!("case-{case}-opened");
    let times_sent = |id: &str| seen.lock().unwrap().iter().filter(|s| *s == id).count();
    assert_eq!(times_sent(&whistle), 1);

    app.gw
        .add_api_key("短信网关", "sms-key-for-tests", ClientPurpose::SmsGateway)
        .await
        .unwrap();
    let gateway = app.as_caller(Some("sms-key-for-tests".into()));
    let receipt_uri = |id: &str| format!("/api/v1/notices/{id}/receipt");

    // Failed receipts: sent again each time, until the limit; then it stays failed for people.
    for n in 1..=MAX_RECEIPT_FAILURES {
        let (s, outcome) = gateway
            .post(
                &receipt_uri(&whistle),
                &json!({"status": "failed", "detail": "handset unreachable"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{outcome}");
        assert_eq!(outcome["receipt"], "failed");
        assert_eq!(outcome["receipt_failures"], n);
        let resent = n < MAX_RECEIPT_FAILURES;
        assert_eq!(outcome["pending"], resent, "receipt {n}: {outcome}");
        // The same receipt twice (the gateway retries its callback) counts once.
        let (_, again) = gateway
            .post(
                &receipt_uri(&whistle),
                &json!({"status": "failed", "detail": "handset unreachable"}),
            )
            .await;
        assert_eq!(
            again["receipt_failures"], n,
            "a repeated receipt counted again: {again}"
        );
        let delivered = app.gw.deliver_notices(&courier).await.unwrap();
        assert_eq!(delivered, (usize::from(resent), 0), "receipt {n}");
        assert_eq!(times_sent(&whistle), n as usize + usize::from(resent));
    }
    let (_, notices) = app.get(&format!("/api/v1/cases/{case}/notices")).await;
    let shown = notices
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == whistle.as_str())
        .unwrap()
        .clone();
    assert_eq!(shown["receipt"], "failed", "{shown}");
    assert_eq!(shown["receipt_detail"], "handset unreachable");
    assert!(
        shown["delivered_at"].is_string(),
        "given up on, not pending: {shown}"
    );
    assert_eq!(app.gw.deliver_notices(&courier).await.unwrap(), (0, 0));

    // A delivered receipt settles a notice, and shows.
    let (s, outcome) = gateway
        .post(
            &receipt_uri(&opened),
            &json!({"status": "delivered", "detail": "ref 88120"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{outcome}");
    assert_eq!(
        (outcome["receipt"].as_str(), outcome["pending"].as_bool()),
        (Some("delivered"), Some(false))
    );
    assert_eq!(
        count(&app, &format!("select count(*) from outbox where id = '{opened}' and receipt = 'delivered' and receipt_detail = 'ref 88120'")).await,
        1
    );

    // Bad receipts are named and change nothing.
    let before = count(
        &app,
        "select coalesce(sum(receipt_failures), 0) from outbox",
    )
    .await;
    let (s, b) = gateway
        .post(
            &receipt_uri("no-such-notice"),
            &json!({"status": "delivered"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = gateway
        .post(&receipt_uri(&opened), &json!({"status": "lost"}))
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("status")),
        "{b}"
    );
    let (s, b) = gateway
        .post(
            &receipt_uri(&opened),
            &json!({"status": "failed", "detail": "x".repeat(501)}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("detail")),
        "{b}"
    );
    assert_eq!(
        count(
            &app,
            "select coalesce(sum(receipt_failures), 0) from outbox"
        )
        .await,
        before
    );
    assert_eq!(
        count(
            &app,
            &format!("select count(*) from outbox where id = '{opened}' and receipt = 'delivered'")
        )
        .await,
        1
    );

    // Only the gateway's key: not the admin, not a reporting client, not anonymous callers.
    app.gw
        .add_api_key(
            "12345 hotline",
            "hotline-key-for-receipts",
            ClientPurpose::Reports,
        )
        .await
        .unwrap();
    for (who, caller, want) in [
        (
            "admin",
            app.as_caller(app.token.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "hotline key",
            app.as_caller(Some("hotline-key-for-receipts".into())),
            StatusCode::FORBIDDEN,
        ),
        ("anonymous", app.as_caller(None), StatusCode::UNAUTHORIZED),
    ] {
        let (s, b) = caller
            .post(&receipt_uri(&opened), &json!({"status": "failed"}))
            .await;
        assert_eq!(s, want, "{who}: {b}");
    }
    // And the gateway's key files no reports, by the API or by Open311.
    let (s, b) = gateway
        .post(
            "/api/v1/reports",
            &json!({"category": "sewer_blockage", "lon": KANGLE.0, "lat": KANGLE.1, "source": "resident"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let form = format!(
        "api_key=sms-key-for-tests&service_code=sewer_blockage&lat={}&long={}",
        KANGLE.1, KANGLE.0
    );
    let (s, _, _) = app
        .as_caller(None)
        .raw(
            "POST",
            "/open311/v2/requests.json",
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        count(
            &app,
            "select count(*) from outbox where receipt = 'failed' and receipt_failures > 3"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn notices_reach_the_webhook_at_least_once_with_retries() {
    let (app, _case, seen) = whistled_with_webhook(3).await;
    app.gw.clock.advance(chrono::Duration::minutes(61)).unwrap();
    app.gw.escalate_due().await.unwrap();
    let courier = Courier::new();
    let expected: i64 = count(&app, "select count(*) from outbox").await;
    assert_eq!(expected, 4, "opened, notice 1, notice 2, centre head");
    let mut rounds = 0;
    let mut failures = 0;
    while count(
        &app,
        "select count(*) from outbox where delivered_at is null",
    )
    .await
        > 0
    {
        rounds += 1;
        assert!(
            rounds < 20,
            "notices still undelivered after {rounds} rounds"
        );
        failures += app.gw.deliver_notices(&courier).await.unwrap().1;
        // Retries wait a doubling delay; move past it.
        app.gw.clock.advance(chrono::Duration::seconds(30)).unwrap();
    }
    assert_eq!(failures, 3);
    let mut ids = seen.lock().unwrap().clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as i64, expected);
    let retried = count(
        &app,
        "select count(*) from outbox where attempts > 1 and last_error is null",
    )
    .await;
    assert!(
        retried >= 1,
        "failed notices were retried and then delivered"
    );

    // A deliverer that dies after sending: the lease runs out and the notice is sent again;
    // the receiver sees the same id twice and keeps one.
    let id2 = report(&app, "sewer_blockage", KANGLE.0 + 0.001, KANGLE.1).await["case_id"]
        .as_i64()
        .unwrap();
    let claimed = app
        .gw
        .db
        .claim_notices(app.gw.clock.now(), 10, chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    courier.deliver(&claimed[0]).await.unwrap();
    assert_eq!(
        app.gw.deliver_notices(&courier).await.unwrap(),
        (0, 0),
        "leased: not sent twice at once"
    );
    app.gw.clock.advance(chrono::Duration::seconds(61)).unwrap();
    assert_eq!(app.gw.deliver_notices(&courier).await.unwrap(), (1, 0));
    let opened = format!("case-{id2}-opened");
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| **s == opened)
            .count(),
        2
    );
}

/// The scheduler survives a kill -9 and a restart: a step falls due while no process runs, fires
/// after the restart, and a later restart does not fire it again.
#[tokio::test]
async fn escalations_survive_a_crash_and_never_fire_twice() {
    let (_db, options) = fresh_db().await;
    let url = url_of(&options);
    let envs = [("DATABASE_URL", url.as_str()), ("RUST_LOG", "warn")];
    let args = ["--listen", "127.0.0.1:0", "--controllable-clock"];
    let regions = gridwatch::demo::REGIONS_GEOJSON.to_owned();
    let mut first = Child::serve(&args, &envs);
    let client = first.first_admin_client().await;
    let post = |base: String, path: &str, body: Value| {
        let client = client.clone();
        let url = format!("{base}/api/v1{path}");
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert!(status.is_success(), "{status} {v}");
            v
        }
    };
    let r = client
        .post(format!("{}/api/v1/regions/import", first.base))
        .header("content-type", "application/json")
        .body(regions)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let filed = post(
        first.base.clone(),
        "/reports",
        json!({"category": "random_piling", "lon": KANGLE.0, "lat": KANGLE.1, "source": "rider"}),
    )
    .await;
    let id = filed["case_id"].as_i64().unwrap();
    post(
        first.base.clone(),
        &format!("/cases/{id}/actions"),
        json!({"action": "accept", "difficulty": "complex", "lead_department": "urban_management"}),
    )
    .await;
    post(
        first.base.clone(),
        &format!("/cases/{id}/actions"),
        json!({"action": "whistle"}),
    )
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let escalations = || async {
        let (db, _) = (
            gridwatch::storage::Db::connect(options.clone())
                .await
                .unwrap(),
            (),
        );
        let n: i64 =
            sqlx::query_scalar("select count(*) from case_event where action = 'escalate'")
                .fetch_one(db.pool())
                .await
                .unwrap();
        db.pool().close().await;
        n
    };
    assert_eq!(escalations().await, 1, "only notice 1, at the whistle");

    // Restarted, its clock 5 hours on: the yellow and red steps fire, each once.
    let second = Child::serve(&args, &envs);
    post(
        second.base.clone(),
        "/clock/advance",
        json!({"minutes": 300}),
    )
    .await;
    let mut n = 0;
    for _ in 0..50 {
        n = escalations().await;
        if n >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(n, 3);
    let case: Value = client
        .get(format!("{}/api/v1/cases/{id}", second.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(case["card"], "red");
    assert!(second.terminate().success());

    // Once more: nothing fires twice.
    let third = Child::serve(&args, &envs);
    post(
        third.base.clone(),
        "/clock/advance",
        json!({"minutes": 301}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(escalations().await, 3);
    // A console's open event stream does not hold up the shutdown.
    let stream = client
        .get(format!("{}/api/v1/cases/stream", third.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let started = std::time::Instant::now();
    assert!(third.terminate().success());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    drop(stream);
}
