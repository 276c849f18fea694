DROP TRIGGER runs_counted_delete;
DROP TRIGGER runs_counted_update;
DROP TRIGGER runs_counted_insert;
DROP INDEX runs_due_idx;
DROP TABLE run_minute_counts;
DROP TABLE run_counts;
