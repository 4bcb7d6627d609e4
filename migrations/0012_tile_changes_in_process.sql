-- Migration 0011's per-statement NOTIFY on report and case writes serialised every committing
-- transaction (NOTIFY takes a database-wide lock at commit) and cut concurrent intake by more than
-- half. The service now drops the tiles over its own writes in process, and a bulk import sends
-- one notification for all its rows (storage/bulk.rs); boundary changes, which are rare, keep
-- their trigger.
drop trigger report_tiles on report;
drop trigger case_tiles_insert on dispatch_case;
drop trigger case_tiles_update on dispatch_case;
