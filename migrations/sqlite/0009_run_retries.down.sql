DROP INDEX runs_retry_of_idx;
