ALTER INDEX ops.run_logs_search_idx RESET (fastupdate);
