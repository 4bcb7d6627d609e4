-- Report categories and geolocated reports.

-- national event classes (GB/T 30428 family) that local categories extend
create table event_class (
    code    text primary key,
    name_zh text not null,
    name_en text not null
);

create table category (
    code        text primary key check (code ~ '^[a-z][a-z0-9_]*$'),
    name_zh     text not null,
    name_en     text not null,
    event_class text not null references event_class (code),
    sort_order  integer not null
);

insert into event_class (code, name_zh, name_en) values
    ('city_appearance', '市容环境', 'City appearance and environment'),
    ('advertising',     '宣传广告', 'Advertising'),
    ('construction',    '施工管理', 'Construction management'),
    ('street_order',    '街面秩序', 'Street order'),
    ('emergency',       '突发事件', 'Emergencies'),
    ('other',           '其他',     'Other');

insert into category (code, name_zh, name_en, event_class, sort_order) values
    ('fire_lane_blocked',    '消防通道堵塞', 'Fire-lane blockage',               'street_order',    10),
    ('flying_lead_charging', '飞线充电',     'Flying-lead e-bike charging',      'emergency',       20),
    ('oil_smoke',            '油烟排放',     'Illegal oil-smoke vent',           'city_appearance', 30),
    ('sewer_blockage',       '下水管道堵塞', 'Sewer blockage',                   'city_appearance', 40),
    ('wall_leak',            '墙面漏水',     'Wall leak',                        'other',           50),
    ('water_supply',         '用水难',       'Water supply problem',             'other',           60),
    ('random_piling',        '乱堆乱放',     'Random piling',                    'city_appearance', 70),
    ('road_hazard',          '路面安全隐患', 'Road safety hazard',               'street_order',    80),
    ('food_safety',          '食品安全隐患', 'Food-safety hazard',               'other',           90),
    ('uncivil_behaviour',    '不文明行为',   'Uncivil behaviour',                'street_order',   100),
    ('neighbour_dispute',    '邻里纠纷',     'Neighbour dispute',                'other',          110),
    ('charging_wanted',      '充电难',       'E-bike charging points wanted',    'other',          120);

create table report (
    id              bigserial primary key,
    category        text not null references category (code),
    -- WGS-84 position used for assignment
    geom            geometry(Point, 4326) not null,
    -- the coordinates as the client sent them, and their reference system
    input_lon       double precision not null,
    input_lat       double precision not null,
    input_crs       text not null check (input_crs in ('wgs84', 'gcj02', 'bd09')),
    description     text not null default '',
    source          text not null
                    check (source in ('grid_worker', 'rider', 'resident', 'hotline')),
    reported_at     timestamptz not null,
    received_at     timestamptz not null default now(),
    -- outcome of the assignment at intake time; never recomputed when boundaries change
    locate_status   text not null check (locate_status in ('inside', 'near', 'outside')),
    district_code   text references region (code),
    street_code     text references region (code),
    community_code  text references region (code),
    grid_code       text references region (code),
    micro_grid_code text references region (code),
    -- the deepest assigned region and the boundary version it was filed against
    region_code     text references region (code),
    region_version_id bigint references region_version (id),
    -- distance to the assigned grid when locate_status = 'near'
    distance_m      double precision
);

create index report_geom on report using gist (geom);
create index report_reported_at on report (reported_at);
create index report_category_reported_at on report (category, reported_at);
create index report_region_code on report (region_code text_pattern_ops);

-- one-off facts about this database, such as whether the demo data was loaded
create table meta (
    key   text primary key,
    value text not null
);
