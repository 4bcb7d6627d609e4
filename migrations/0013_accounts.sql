-- Accounts, sessions, API tokens tied to users, and the audit log (issue: region-scoped access).
-- Secrets are never stored: passwords as Argon2id PHC strings, session ids and tokens as SHA-256.

create table account (
    id                   bigserial primary key,
    username             text not null unique check (username ~ '^[a-z0-9][a-z0-9._-]{1,39}$'),
    display_name         text not null check (display_name <> ''),
    role                 text not null check (role in ('admin', 'dispatcher', 'street_leader',
                         'community_leader', 'planner', 'grid_worker', 'responder', 'viewer')),
    -- the region the user is limited to (a street leader's street …); null: the whole city
    scope_code           text check (scope_code ~ '^[0-9]{6}([0-9]{3}){0,3}([0-9]{2})?$'),
    -- a responder's department
    department           text references department (code),
    password_hash        text not null check (password_hash like '$argon2%'),
    -- set for a printed one-time password: nothing but a password change is allowed
    must_change_password boolean not null default false,
    created_at           timestamptz not null default now(),
    disabled_at          timestamptz,
    check ((role = 'responder') = (department is not null)),
    check (role not in ('street_leader', 'community_leader', 'grid_worker', 'planner') or scope_code is not null),
    check (role <> 'admin' or scope_code is null)
);

-- a browser session: the cookie carries the id, the table its SHA-256
create table account_session (
    id_sha256    text primary key check (id_sha256 ~ '^[0-9a-f]{64}$'),
    account_id   bigint not null references account (id),
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null
);
create index account_session_account on account_session (account_id);

-- an API token may act for a user (hotline import, SMS gateway callbacks); without one it only
-- files reports (Open311 clients)
alter table api_client add column account_id bigint references account (id);

-- who viewed personal data, and who changed grids, cases, dispatch settings or users
create table audit_event (
    id         bigserial primary key,
    at         timestamptz not null default now(),
    account_id bigint references account (id),
    -- username, api:<client name> or anonymous@<address>
    actor      text not null,
    action     text not null check (action ~ '^[a-z_.]+$'),
    -- what it was about: case:12, region:150302001, user:wangli …
    subject    text not null,
    detail     jsonb not null default '{}'
);
create index audit_event_at on audit_event (at);
create index audit_event_subject on audit_event (subject);
