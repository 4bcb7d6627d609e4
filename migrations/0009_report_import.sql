-- Bulk imports (a 12345 hotline export): the source system's own number of a record (工单编号),
-- so importing the same file again adds nothing twice.
alter table report add column external_ref text check (length(external_ref) between 1 and 100);
create unique index report_external_ref on report (external_ref) where external_ref is not null;
