-- Region hierarchy: district → street → community → grid → micro-grid.
-- A region's identity (code, name, parent) lives in `region`; its boundary lives in
-- `region_version`, one row per drawn version, so that a redraw never rewrites history and a
-- report can keep the boundary it was filed against.

create extension if not exists postgis;

create table region (
    code        text primary key
                check (code ~ '^[0-9]{6}([0-9]{3}){0,3}$' or code ~ '^[0-9]{17}$'),
    level       text not null
                check (level in ('district', 'street', 'community', 'grid', 'micro_grid')),
    name        text not null check (name <> ''),
    parent_code text references region (code),
    -- true for generated demo data that does not describe a real boundary
    synthetic   boolean not null default false,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    check ((level = 'district') = (parent_code is null))
);

create index region_parent_code on region (parent_code);

create table region_version (
    id          bigserial primary key,
    region_code text not null references region (code),
    version     integer not null check (version > 0),
    geom        geometry(MultiPolygon, 4326) not null,
    valid_from  timestamptz not null,
    -- null while this is the current boundary
    valid_to    timestamptz,
    unique (region_code, version),
    check (valid_to is null or valid_to >= valid_from)
);

-- at most one current boundary per region
create unique index region_version_current on region_version (region_code) where valid_to is null;
create index region_version_geom on region_version using gist (geom);

-- the grid's party branch 网格党支部: the responsible party branch of every report in the grid
create table party_branch (
    region_code text primary key references region (code),
    name        text not null check (name <> ''),
    secretary   text,
    contact     text
);

-- "一格一长一警一专多兼": grid leader, police officer, full-time worker, part-time workers
create table grid_staff (
    id          bigserial primary key,
    region_code text not null references region (code),
    role        text not null
                check (role in ('grid_leader', 'police_officer', 'full_time_worker', 'part_time_worker')),
    name        text not null check (name <> ''),
    phone       text
);

create index grid_staff_region_code on grid_staff (region_code);
