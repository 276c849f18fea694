-- Queue tables churn: every run is updated three times and leaves dead tuples in the claim index.
-- PostgreSQL's default (vacuum after 20% of a table changed) lets a large table's claim index fill
-- with dead entries that every claim walks past, and leaves planner statistics stale after a burst
-- of inserts (a fresh table's claim then sorts the whole backlog). Vacuum and analyze early instead.
ALTER TABLE ops.runs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE ops.run_events SET (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);

-- The console's sparkline: runs finished per minute; covering, so counting reads only the index.
CREATE INDEX runs_finished_idx ON ops.runs (finished_at, status) WHERE finished_at IS NOT NULL;

-- The console wants to hear about every change, not only newly queued runs (channel
-- ospdeck_runs, for workers). One notification per statement that changed rows; PostgreSQL folds
-- identical notifications of one transaction into one.
CREATE FUNCTION ops.notify_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed_rows) THEN
        PERFORM pg_notify('ospdeck_changes', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER runs_inserted_notify AFTER INSERT ON ops.runs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.notify_changed();
CREATE TRIGGER runs_updated_notify AFTER UPDATE ON ops.runs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.notify_changed();
CREATE TRIGGER run_logs_notify AFTER INSERT ON ops.run_logs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.notify_changed();
CREATE TRIGGER run_artifacts_notify AFTER INSERT ON ops.run_artifacts
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.notify_changed();
