-- Dispatch: the whistle loop 吹哨答卷. A report opens a case; the case is routed by rules
-- (category × territory), triaged, whistled to departments, escalated by cards 亮牌 when a
-- department does not answer, resolved, closed and rated. Every transition is an event in an
-- append-only history. Escalation deadlines and outgoing notices are rows, so a restart neither
-- misses nor repeats them.

-- 职能部门: the departments a case can be whistled to
create table department (
    code       text primary key check (code ~ '^[a-z][a-z0-9_]*$'),
    name_zh    text not null check (name_zh <> ''),
    name_en    text not null check (name_en <> ''),
    sort_order integer not null default 0
);

insert into department (code, name_zh, name_en, sort_order) values
    ('urban_management',     '城市管理综合执法局', 'Urban Management Law Enforcement Bureau', 10),
    ('market_regulation',    '市场监督管理局',     'Market Regulation Administration',        20),
    ('fire_rescue',          '消防救援大队',       'Fire and Rescue Brigade',                 30),
    ('housing_construction', '住房和城乡建设局',   'Housing and Urban-Rural Development Bureau', 40),
    ('water_affairs',        '水务局',             'Water Affairs Bureau',                    50),
    ('police',               '公安分局/派出所',    'Public Security Sub-bureau / Police Station', 60),
    ('power_supply',         '供电公司',           'Power Supply Company',                    70);

-- duplicates and packaging per category: reports of the same category within the radius and the
-- window are offered as duplicates; a street with at least package_min_reports in
-- package_window_days is proposed as a package 打包 for upward reporting
alter table category
    add column duplicate_radius_m    double precision not null default 100 check (duplicate_radius_m > 0 and duplicate_radius_m <= 5000),
    add column duplicate_window_days integer not null default 7 check (duplicate_window_days between 1 and 365),
    add column package_min_reports   integer not null default 5 check (package_min_reports between 2 and 10000),
    add column package_window_days   integer not null default 30 check (package_window_days between 1 and 365);

-- routing rules: category × territory → lead department (null: handled by the community) and
-- co-departments; a null category or territory means "any"
create table routing_rule (
    id              bigserial primary key,
    category        text references category (code),
    -- a district or street code
    territory       text references region (code),
    lead_department text references department (code),
    co_departments  text[] not null default '{}',
    note            text not null default '',
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

create unique index routing_rule_scope on routing_rule (coalesce(category, ''), coalesce(territory, ''));

-- settings of the dispatch loop, such as the escalation policy (key 'escalation_policy')
create table dispatch_setting (
    key   text primary key,
    value jsonb not null
);

-- a case 案件: one per report; a merged duplicate points to the case that absorbed it. The chain
-- codes, category and rule id are copies made at intake (the report's own columns carry the
-- foreign keys); they have none here, so that filing a case locks no shared row (a foreign key
-- check takes a share lock on the category and region rows every report points to).
create table dispatch_case (
    id                bigserial primary key,
    report_id         bigint not null unique references report (id),
    state             text not null check (state in ('reported', 'accepted', 'whistled', 'acknowledged',
                      'resolved', 'closed', 'evaluated', 'rejected', 'merged')),
    category          text not null,
    geom              geometry(Point, 4326) not null,
    district_code     text,
    street_code       text,
    community_code    text,
    grid_code         text,
    micro_grid_code   text,
    -- the region whose party branch is responsible (the deepest with a branch at intake)
    party_branch_code text,
    -- routing proposed at intake, and why
    routed_kind       text not null check (routed_kind in ('department', 'territory')),
    routed_lead       text not null,
    routed_co         text[] not null default '{}',
    -- the rule that decided, as it was numbered then (the rule may be edited or deleted since)
    routing_rule_id   bigint,
    routing_why       text not null,
    routing_why_zh    text not null,
    -- triage 三审, set at acceptance
    responsibility    text check (responsibility in ('territory', 'department')),
    difficulty        text check (difficulty in ('simple', 'complex', 'long', 'very_complex')),
    urgency           text check (urgency in ('normal', 'urgent')),
    lead_department   text references department (code),
    co_departments    text[] not null default '{}',
    deadline          timestamptz,
    coordinator       text,
    answer            text,
    satisfaction      smallint check (satisfaction between 1 and 5),
    merged_into       bigint references dispatch_case (id),
    reject_reason     text check (reject_reason in ('not_our_responsibility', 'invalid')),
    opened_at         timestamptz not null,
    accepted_at       timestamptz,
    resolved_at       timestamptz,
    closed_at         timestamptz,
    evaluated_at      timestamptz,
    updated_at        timestamptz not null,
    check ((state = 'merged') = (merged_into is not null)),
    check (difficulty <> 'long' or deadline is not null)
);

create index dispatch_case_state on dispatch_case (state);
create index dispatch_case_street on dispatch_case (street_code);
create index dispatch_case_grid on dispatch_case (grid_code);
create index dispatch_case_category_opened on dispatch_case (category, opened_at);
create index dispatch_case_geom on dispatch_case using gist (geom);

-- the case history: who did what, when; never rewritten
create table case_event (
    id         bigserial primary key,
    case_id    bigint not null references dispatch_case (id),
    at         timestamptz not null,
    actor      text not null,
    action     text not null,
    from_state text,
    to_state   text,
    department text references department (code),
    note       text not null default '',
    data       jsonb not null default '{}'
);

create index case_event_case on case_event (case_id, id);

create function refuse_history_change() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name using errcode = 'P0001';
end $$;

create trigger case_event_append_only before update or delete on case_event
    for each row execute function refuse_history_change();

-- 吹哨: a case whistled to a department; acknowledgement 应哨 stops its clock. A case reopened
-- after an unsatisfied rating may whistle the same department again
create table case_whistle (
    id              bigserial primary key,
    case_id         bigint not null references dispatch_case (id),
    department      text not null references department (code),
    role            text not null check (role in ('lead', 'co')),
    whistled_at     timestamptz not null,
    acknowledged_at timestamptz,
    card            text check (card in ('yellow', 'red')),
    supervised      boolean not null default false,
    -- the escalation policy in force when the whistle blew
    policy          jsonb not null
);

-- at most one unanswered whistle per case and department
create unique index case_whistle_open on case_whistle (case_id, department) where acknowledged_at is null;
create index case_whistle_case on case_whistle (case_id);
create index case_whistle_department on case_whistle (department);

-- one row per escalation step of a whistle; the scheduler fires each exactly once
create table escalation_deadline (
    id           bigserial primary key,
    whistle_id   bigint not null references case_whistle (id),
    step         integer not null,
    due_at       timestamptz not null,
    fired_at     timestamptz,
    cancelled_at timestamptz,
    unique (whistle_id, step),
    check (fired_at is null or cancelled_at is null)
);

create index escalation_deadline_pending on escalation_deadline (due_at)
    where fired_at is null and cancelled_at is null;

-- photos handed in with an answer 答卷
create table case_photo (
    case_id      bigint not null references dispatch_case (id),
    n            integer not null,
    content_type text not null check (content_type in ('image/png', 'image/jpeg')),
    data         bytea not null,
    primary key (case_id, n)
);

-- the outbox: notices written in the same transaction as their cause, delivered afterwards by a
-- channel (log or webhook) at least once; the id is the receiver's deduplication key
create table outbox (
    id              text primary key,
    kind            text not null,
    case_id         bigint references dispatch_case (id),
    channel         text not null check (channel in ('log', 'webhook')),
    target          text,
    recipient       text not null,
    payload         jsonb not null,
    created_at      timestamptz not null,
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null,
    leased_until    timestamptz,
    delivered_at    timestamptz,
    last_error      text
);

create index outbox_pending on outbox (next_attempt_at) where delivered_at is null;
create index outbox_case on outbox (case_id);

-- 打包: recurring problems of one street reported upward together
create table case_package (
    id          bigserial primary key,
    street_code text not null references region (code),
    category    text not null references category (code),
    note        text not null default '',
    actor       text not null,
    created_at  timestamptz not null
);

create table case_package_member (
    package_id bigint not null references case_package (id),
    case_id    bigint not null references dispatch_case (id),
    primary key (package_id, case_id)
);
