-- Tile invalidation: every statement that adds reports, opens or changes cases, or changes
-- boundaries tells listening servers where (`pg_notify('gridwatch_tiles', …)`), so cached vector
-- tiles over that area are dropped whichever process wrote: the service, an import, a script.
-- The payload is {"table": …, "bbox": [west, south, east, north]} (no bbox for boundaries).
create function gridwatch_notify_tiles() returns trigger language plpgsql as $$
declare
    w float8; s float8; e float8; n float8;
begin
    if tg_table_name = 'region_version' then
        perform pg_notify('gridwatch_tiles', json_build_object('table', tg_table_name)::text);
        return null;
    end if;
    select min(st_xmin(geom)), min(st_ymin(geom)), max(st_xmax(geom)), max(st_ymax(geom))
      into w, s, e, n from changed;
    if w is not null then
        perform pg_notify('gridwatch_tiles',
            json_build_object('table', tg_table_name, 'bbox', json_build_array(w, s, e, n))::text);
    end if;
    return null;
end $$;

create trigger report_tiles after insert on report
    referencing new table as changed for each statement execute function gridwatch_notify_tiles();
create trigger case_tiles_insert after insert on dispatch_case
    referencing new table as changed for each statement execute function gridwatch_notify_tiles();
create trigger case_tiles_update after update on dispatch_case
    referencing new table as changed for each statement execute function gridwatch_notify_tiles();
create trigger region_version_tiles_insert after insert on region_version
    for each statement execute function gridwatch_notify_tiles();
create trigger region_version_tiles_update after update on region_version
    for each statement execute function gridwatch_notify_tiles();
