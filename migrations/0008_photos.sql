-- Report photos and reporter details.
--
-- A photo is uploaded before its report (so the page can read its EXIF location first): the image
-- itself lives on disk in the photo directory, re-encoded without any metadata; this row is its
-- metadata. The id is 128 random bits: the photo's URL is a capability until roles exist.

create table photo (
    id           text primary key check (id ~ '^[0-9a-f]{32}$'),
    -- SHA-256 of the bytes as uploaded: the same upload again answers with the same photo
    upload_sha256 text not null unique check (upload_sha256 ~ '^[0-9a-f]{64}$'),
    upload_type  text not null check (upload_type in ('image/jpeg', 'image/png')),
    upload_bytes integer not null check (upload_bytes > 0),
    -- the stored copy (always JPEG) and its thumbnail
    width        integer not null check (width > 0),
    height       integer not null check (height > 0),
    stored_bytes integer not null check (stored_bytes > 0),
    thumb_bytes  integer not null check (thumb_bytes > 0),
    -- what the EXIF said before it was stripped (WGS-84)
    exif_lon     double precision,
    exif_lat     double precision,
    taken_at     timestamptz,
    uploaded_at  timestamptz not null default now(),
    check ((exif_lon is null) = (exif_lat is null))
);

-- A photo belongs to at most one report; written in the report's own statement.
create table report_photo (
    report_id bigint not null references report (id),
    photo_id  text not null unique references photo (id),
    n         integer not null check (n between 1 and 4),
    primary key (report_id, n)
);

-- Personal data of whoever filed a report from the snap-and-report page: never in public views.
create table report_reporter (
    report_id bigint primary key references report (id),
    name      text check (length(name) <= 100),
    phone     text check (length(phone) <= 32),
    check (name is not null or phone is not null)
);
