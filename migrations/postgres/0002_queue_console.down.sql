DROP TRIGGER run_artifacts_notify ON ops.run_artifacts;
DROP TRIGGER run_logs_notify ON ops.run_logs;
DROP TRIGGER runs_updated_notify ON ops.runs;
DROP TRIGGER runs_inserted_notify ON ops.runs;
DROP FUNCTION ops.notify_changed();
DROP INDEX ops.runs_finished_idx;
ALTER TABLE ops.runs RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold, autovacuum_vacuum_cost_delay
);
ALTER TABLE ops.run_events RESET (autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor);
