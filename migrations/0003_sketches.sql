-- Hand-drawn grid maps 手绘网格图: the uploaded photo, its ground control points and fit, and
-- the last vectorisation, kept so a planner can come back to a sketch.

create table sketch (
    id               bigserial primary key,
    title            text not null default '',
    -- the region whose children the sketch redraws (a community for grids, a grid for micro-grids)
    region_code      text references region (code),
    format           text not null check (format in ('png', 'jpeg')),
    -- upright size, after EXIF orientation
    width            integer not null check (width > 0),
    height           integer not null check (height > 0),
    exif_orientation smallint not null default 1,
    -- the file as uploaded
    image            bytea not null,
    gcps             jsonb not null default '[]',
    transform        text not null default 'auto',
    -- the report of the last successful fit
    fit              jsonb,
    -- candidate polygons and problems of the last vectorisation
    vectorised       jsonb,
    -- the boundary versions published from this sketch
    published_at     timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create index sketch_region_code on sketch (region_code);
