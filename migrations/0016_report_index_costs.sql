-- What each report costs its indexes on the way in (scripts/import-floor.sql; README "Bulk
-- import"), measured with COPY of 200,000 rows on top of the heap's 0.45 s:
--
--   * `report_category_reported_at` (category, reported_at): +0.42 s, the second dearest. No
--     query can use it: every report query filters categories as `(… is null or category =
--     any(…))`, which a prepared statement's generic plan cannot turn into an index condition,
--     and lists order by reported_at, which `report_reported_at` serves. Dropped.
--   * `report_geom`, GiST: +0.65 s, the dearest. SP-GiST (a quadtree, PostGIS's
--     spgist_geometry_ops_2d, for points) costs +0.41 s, and answers the `&&` box queries of
--     z16, z13 and z10 tiles over a million points in about the same time (warm: 0.8 / 17 /
--     77 ms against GiST's 1.4 / 16 / 77 ms). Nothing asks report.geom for nearest neighbours
--     (`<->`), which only GiST would serve.
drop index report_category_reported_at;
drop index report_geom;
create index report_geom on report using spgist (geom);
