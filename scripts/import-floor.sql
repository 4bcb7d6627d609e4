-- The floor under `reports import`: what PostgreSQL itself takes to add 200,000 rows to a copy of
-- `report`, with none, each one and all of its indexes, and with all of them built after the load
-- instead of kept up row by row. README "Bulk import" quotes it.
--
--   psql "$DATABASE_URL" -f scripts/import-floor.sql
--
-- Run against a migrated gridwatch database (e.g. the demo's). It works in a schema of its own,
-- dropped at the end; `report` is not touched. The indexes are taken from `report` itself
-- (pg_indexes), so the figures follow the migrations.
\set ON_ERROR_STOP on
drop schema if exists import_floor cascade;
create schema import_floor;

-- 200,000 rows like a hotline import's: twelve categories, points over Wuhai's urban core, a
-- month of times, real-shaped region codes and ticket numbers.
create table import_floor.stage as
select (array['fire_lane_blocked', 'flying_lead_charging', 'oil_smoke', 'sewer_blockage',
              'wall_leak', 'water_supply', 'random_piling', 'road_hazard', 'food_safety',
              'uncivil_behaviour', 'neighbour_dispute', 'charging_wanted'])[1 + i % 12] as category,
       st_setsrid(st_makepoint(106.76 + random() * 0.12, 39.62 + random() * 0.1), 4326) as geom,
       106.8::float8 as input_lon, 39.66::float8 as input_lat, 'wgs84' as input_crs,
       '市民来电反映：消防通道堵塞，请尽快处理' as description, 'hotline' as source,
       timestamptz '2026-10-01 00:00+08' + random() * interval '28 days' as reported_at,
       'inside' as locate_status, '150302' as district_code,
       '150302' || lpad((1 + i % 7)::text, 3, '0') as street_code,
       '150302' || lpad((1 + i % 7)::text, 3, '0') || lpad((1 + i % 9)::text, 3, '0') as community_code,
       '150302' || lpad((1 + i % 7)::text, 3, '0') || lpad((1 + i % 9)::text, 3, '0')
           || lpad((1 + i % 11)::text, 3, '0') as grid_code,
       null::text as micro_grid_code,
       '150302' || lpad((1 + i % 7)::text, 3, '0') || lpad((1 + i % 9)::text, 3, '0')
           || lpad((1 + i % 11)::text, 3, '0') as region_code,
       null::bigint as region_version_id, null::float8 as distance_m,
       '12345-' || lpad(i::text, 8, '0') as external_ref
  from generate_series(1, 200000) i;
alter table import_floor.stage add column tile_key bigint;
update import_floor.stage set tile_key = gw_tile_key(st_x(geom), st_y(geom));

create table import_floor.result (variant text, seconds float8, rows_per_s float8);

-- Gives the target the named indexes of `report` (all of them when `which` is null).
create function import_floor.add_indexes(which text[]) returns void
language plpgsql as $$
declare
    ix record;
begin
    for ix in select indexname, indexdef from pg_indexes
               where schemaname = 'public' and tablename = 'report'
                 and (which is null or indexname = any(which)) loop
        execute replace(replace(ix.indexdef, 'ON public.report ', 'ON import_floor.target '),
                        ix.indexname, 'floor_' || ix.indexname);
    end loop;
end $$;

-- Loads the stage into a fresh copy of `report` carrying the named indexes, kept up row by row,
-- or built after the load when `after`.
create function import_floor.run(variant text, which text[], after bool) returns void
language plpgsql as $$
declare
    started timestamptz;
    took float8;
begin
    drop table if exists import_floor.target;
    create table import_floor.target (like public.report including defaults);
    started := clock_timestamp();
    if not after then
        perform import_floor.add_indexes(which);
    end if;
    insert into import_floor.target (category, geom, input_lon, input_lat, input_crs, description,
                                     source, reported_at, locate_status, district_code,
                                     street_code, community_code, grid_code, micro_grid_code,
                                     region_code, region_version_id, distance_m, external_ref,
                                     tile_key)
    select * from import_floor.stage;
    if after then
        perform import_floor.add_indexes(which);
    end if;
    took := extract(epoch from clock_timestamp() - started);
    insert into import_floor.result values (variant, took, 200000 / took);
end $$;

select import_floor.run('heap only, no index', array[]::text[], false);
select import_floor.run('+ primary key', array['report_pkey'], false);
select import_floor.run('+ ' || indexname, array['report_pkey', indexname], false)
  from pg_indexes
 where schemaname = 'public' and tablename = 'report' and indexname <> 'report_pkey'
 order by indexname;
select import_floor.run('all indexes, kept up row by row', null, false);
select import_floor.run('all indexes, built after the load', null, true);

select variant, round(seconds::numeric, 2) as seconds, round(rows_per_s) as rows_per_s
  from import_floor.result;
drop schema import_floor cascade;
