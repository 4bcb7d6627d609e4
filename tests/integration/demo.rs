//! The demo data: loads idempotently and its synthetic hierarchy tiles exactly (checked by PostGIS).

use crate::support::spawn_app;

#[tokio::test]
async fn demo_loads_once_and_tiles_its_parents() {
    let app = spawn_app().await;
    let first = gridwatch::demo::load(&app.gw).await.unwrap();
    assert_eq!(first.regions_created, 765);
    let incidents = 20_000 + gridwatch::demo::LIVE_INCIDENTS;
    assert_eq!(first.incidents_loaded, incidents);
    let second = gridwatch::demo::load(&app.gw).await.unwrap();
    assert_eq!(second.regions_created, 0);
    assert_eq!(second.incidents_loaded, 0);
    assert_eq!(
        app.scalar_i64("select count(*) from report").await,
        incidents as i64
    );
    assert_eq!(
        app.scalar_i64("select count(*) from region where level = 'grid'")
            .await,
        704
    );
    assert_eq!(
        app.scalar_i64("select count(*) from region where level = 'micro_grid'")
            .await,
        12
    );

    // Every parent below the district is tiled by its children: union area equals the parent's
    // area within 0.1 %, and no two siblings overlap.
    let worst: f64 = sqlx::query_scalar(
        "select max(abs(st_area(pv.geom::geography) - u.area) / st_area(pv.geom::geography))
           from (select r.parent_code, st_area(st_union(v.geom)::geography) as area
                   from region r join region_version v on v.region_code = r.code and v.valid_to is null
                  where r.level <> 'district' and r.level <> 'street'
                  group by r.parent_code) u
           join region_version pv on pv.region_code = u.parent_code and pv.valid_to is null",
    )
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert!(worst < 1e-3, "children differ from their parent by {worst}");
    let overlap: f64 = sqlx::query_scalar(
        "select coalesce(sum(st_area(st_intersection(a.geom, b.geom)::geography)), 0)
           from region ra join region_version a on a.region_code = ra.code and a.valid_to is null
           join region rb on rb.parent_code = ra.parent_code and rb.code > ra.code
           join region_version b on b.region_code = rb.code and b.valid_to is null
          where a.geom && b.geom",
    )
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert!(overlap < 1.0, "siblings overlap by {overlap} m²");
    let invalid = app
        .scalar_i64("select count(*) from region_version where not st_isvalid(geom)")
        .await;
    assert_eq!(invalid, 0);

    // Demo incidents: most in grids, some out in the districts (属地兜底), none unassigned.
    let outside = app
        .scalar_i64("select count(*) from report where locate_status = 'outside'")
        .await;
    let unassigned = app
        .scalar_i64("select count(*) from report where district_code is null")
        .await;
    assert!(outside > 50 && outside < 1000, "{outside}");
    assert_eq!(unassigned, 0);
    // Oil smoke clusters: a handful of grids carry a large share.
    let top_share: f64 = sqlx::query_scalar(
        "select sum(n)::float8 / (select count(*) from report where category = 'oil_smoke')
           from (select count(*) n from report where category = 'oil_smoke'
                  group by grid_code order by n desc limit 20) t",
    )
    .fetch_one(app.gw.db.pool())
    .await
    .unwrap();
    assert!(
        top_share > 0.3,
        "oil smoke is not clustered: top 20 grids hold {top_share}"
    );

    // Dispatch: every report opened a case; the year is handled, the last day and a half is not.
    assert_eq!(
        app.scalar_i64("select count(*) from dispatch_case").await,
        incidents as i64
    );
    assert_eq!(
        app.scalar_i64("select count(*) from routing_rule").await,
        gridwatch::demo::DEMO_RULES.len() as i64
    );
    let finished = app
        .scalar_i64(
            "select count(*) from dispatch_case where state in ('evaluated', 'closed', 'rejected')",
        )
        .await;
    assert!(finished > 19_000, "{finished}");
    let open = app
        .scalar_i64("select count(*) from dispatch_case where state in ('reported', 'accepted', 'whistled', 'acknowledged', 'resolved')")
        .await;
    assert!(
        (5..=gridwatch::demo::LIVE_INCIDENTS as i64).contains(&open),
        "{open}"
    );
    // Each case's history starts with its report and its states chain: every event's from_state
    // is the to_state of the state change before it.
    let broken = app
        .scalar_i64(
            "select count(*) from (
               select from_state, lag(to_state) over (partition by case_id order by id) as prev
                 from case_event where from_state is not null or action = 'report') e
              where e.prev is not null and e.from_state is distinct from e.prev",
        )
        .await;
    assert_eq!(broken, 0, "a history skips a state");
    let first_not_report = app
        .scalar_i64(
            "select count(*) from (select distinct on (case_id) action from case_event
                                    order by case_id, id) f where action <> 'report'",
        )
        .await;
    assert_eq!(first_not_report, 0);
    // The scheduler has steps to fire, and the recurring flying-lead reports make a package.
    let (pending, _) = app.gw.db.pending_steps().await.unwrap();
    assert!(pending > 0, "no open whistle in the demo");
    let proposals = app
        .gw
        .db
        .package_proposals(app.gw.clock.now())
        .await
        .unwrap();
    assert!(
        proposals
            .iter()
            .any(|p| p.category == "flying_lead_charging"),
        "{proposals:?}"
    );
}
