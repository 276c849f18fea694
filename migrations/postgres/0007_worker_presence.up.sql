-- Every worker process, general or service, keeps a row here while it runs: where it runs, what
-- it serves, and when it last said so. Rows expire by time: readers ignore beats older than they
-- care about, and a registering worker removes rows a day old.
CREATE TABLE ops.worker_presence (
    worker_id     text PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 200),
    host          text NOT NULL CHECK (length(host) <= 255),
    pid           bigint NOT NULL CHECK (pid >= 0),
    queues        text[] NOT NULL DEFAULT '{}' CHECK (cardinality(queues) <= 256),
    concurrency   integer NOT NULL CHECK (concurrency BETWEEN 0 AND 100000),
    version       text NOT NULL CHECK (length(version) <= 64),
    service       text CHECK (length(service) <= 63),
    runs_held     integer NOT NULL DEFAULT 0 CHECK (runs_held >= 0),
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    -- The login role that registered it: members write only their own workers' rows.
    registered_by text NOT NULL DEFAULT current_user
);
CREATE INDEX worker_presence_heartbeat_idx ON ops.worker_presence (heartbeat_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON ops.worker_presence TO ospdeck_member;
ALTER TABLE ops.worker_presence ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON ops.worker_presence FOR SELECT USING (true);
CREATE POLICY own ON ops.worker_presence FOR ALL
    USING (registered_by = current_user) WITH CHECK (registered_by = current_user);
