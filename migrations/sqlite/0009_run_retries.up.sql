-- The runs that retry a run, for its detail ("retried as 812"): without it that read scans every run.
CREATE INDEX runs_retry_of_idx ON runs (retry_of) WHERE retry_of IS NOT NULL;
