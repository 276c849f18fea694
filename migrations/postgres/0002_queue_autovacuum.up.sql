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
