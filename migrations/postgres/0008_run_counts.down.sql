DROP TRIGGER runs_counted_delete ON ops.runs;
DROP TRIGGER runs_counted_update ON ops.runs;
DROP TRIGGER runs_counted_insert ON ops.runs;
DROP FUNCTION ops.prune_run_counts();
DROP FUNCTION ops.count_runs();
DROP INDEX ops.runs_due_idx;
DROP TABLE ops.run_minute_counts;
DROP TABLE ops.run_counts;
