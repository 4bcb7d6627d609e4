-- Open311 GeoReport v2: the clients allowed to file requests, and what an Open311 request carries
-- beyond its report. Reporter details are private: no public response ever shows them.

-- a client of the API; only the SHA-256 of its key is kept
create table api_client (
    id         bigserial primary key,
    name       text not null check (name <> ''),
    key_sha256 text not null unique check (key_sha256 ~ '^[0-9a-f]{64}$'),
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);

-- one row per report filed through Open311, written in the same statement as the report
create table open311_request (
    report_id       bigint primary key references report (id),
    -- the request's token (GET tokens/{token})
    token           text not null unique,
    api_client_id   bigint not null references api_client (id),
    jurisdiction_id text,
    -- answers to the service definition's attributes, by attribute code
    attributes      jsonb not null default '{}',
    -- private: email, first_name, last_name, phone, device_id, account_id
    reporter        jsonb not null default '{}',
    address_string  text,
    media_url       text
);
