-- Publications: a planner's redraw of one region's children (a community's grids, a grid's
-- micro-grids) written as new boundary versions at one instant. Each version a publication
-- created points back to it, so "what changed, when, from which sketch" can be answered.

create table publication (
    id           bigserial primary key,
    parent_code  text not null references region (code),
    -- the sketch the redraw came from, when it came from one
    sketch_id    bigint references sketch (id),
    -- the instant the new versions take effect (their valid_from, the old ones' valid_to)
    published_at timestamptz not null,
    -- per child: code, name, status (unchanged/changed/new/retired), areas, symmetric difference
    children     jsonb not null,
    created_at   timestamptz not null default now()
);

create index publication_parent_code on publication (parent_code);

alter table region_version add column publication_id bigint references publication (id);
