DROP TABLE worker_presence;
