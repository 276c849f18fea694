DROP INDEX runs_finished_idx;
