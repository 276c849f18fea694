-- Every worker process, general or service, keeps a row here while it runs: where it runs, what
-- it serves, and when it last said so. Rows expire by time: readers ignore beats older than they
-- care about, and a registering worker removes rows a day old.
CREATE TABLE worker_presence (
    worker_id     TEXT PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 200),
    host          TEXT NOT NULL CHECK (length(host) <= 255),
    pid           INTEGER NOT NULL CHECK (pid >= 0),
    queues        TEXT NOT NULL DEFAULT '[]'
                  CHECK (json_valid(queues) AND json_type(queues) = 'array'),
    concurrency   INTEGER NOT NULL CHECK (concurrency BETWEEN 0 AND 100000),
    version       TEXT NOT NULL CHECK (length(version) <= 64),
    service       TEXT CHECK (length(service) <= 63),
    runs_held     INTEGER NOT NULL DEFAULT 0 CHECK (runs_held >= 0),
    started_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    heartbeat_at  INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    registered_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX worker_presence_heartbeat_idx ON worker_presence (heartbeat_at);
