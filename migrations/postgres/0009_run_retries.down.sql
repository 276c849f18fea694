DROP INDEX ops.runs_retry_of_idx;
