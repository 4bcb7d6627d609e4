-- A report's references (its category, its chain of region codes from district to micro-grid,
-- the deepest region and that region's boundary version) are written only by gridwatch, from the
-- catalogue and the region index it loads from these tables, whose rows are never deleted
-- (boundaries change by new versions). Checked as eight foreign keys they cost eight lookups per
-- row, more than half the time of a bulk import; bulk loads check them set-wise instead
-- (storage/bulk.rs), and the single-report path takes them from the loaded catalogue and index.
alter table report
    drop constraint report_category_fkey,
    drop constraint report_district_code_fkey,
    drop constraint report_street_code_fkey,
    drop constraint report_community_code_fkey,
    drop constraint report_grid_code_fkey,
    drop constraint report_micro_grid_code_fkey,
    drop constraint report_region_code_fkey,
    drop constraint report_region_version_id_fkey;
