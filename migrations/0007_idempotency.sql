-- Idempotent filing: a client may send an Idempotency-Key with a report; a retried submission
-- with the same key returns the report filed the first time instead of filing a second one.
-- Written in the same statement as the report.

create table report_idempotency (
    key            text primary key check (length(key) between 1 and 128),
    report_id      bigint not null unique references report (id),
    -- SHA-256 of the submission, so a key reused for a different report is refused
    request_sha256 text not null check (request_sha256 ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz not null default now()
);
