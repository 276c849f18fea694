DROP TABLE ops.worker_presence;
