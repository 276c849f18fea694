-- The run queue of seed 004 under schema ops, with its SQL interface, so that psql, PostgREST or
-- edge functions share one queue with ospdeck. The Rust store calls these functions.

CREATE SCHEMA IF NOT EXISTS ops;

CREATE TABLE ops.projects (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_key text NOT NULL UNIQUE,
    slug          text NOT NULL UNIQUE,
    name          text NOT NULL,
    odoo_version  text,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ops.project_memberships (
    project_id bigint NOT NULL REFERENCES ops.projects (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE ops.workflows (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES ops.projects (id) ON DELETE CASCADE,
    name          text NOT NULL,
    workflow_type text NOT NULL CHECK (workflow_type IN ('build', 'test', 'deploy', 'backup', 'upgrade', 'service')),
    task_queue    text NOT NULL DEFAULT 'default',
    command       text NOT NULL,
    timeout_secs  integer NOT NULL DEFAULT 3600 CHECK (timeout_secs BETWEEN 1 AND 604800),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- The legal moves of the run state machine; the trigger below and the domain's table must agree.
CREATE TABLE ops.run_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO ops.run_transitions (from_status, to_status) VALUES
    ('queued', 'claimed'), ('queued', 'canceled'),
    ('claimed', 'running'), ('claimed', 'canceled'), ('claimed', 'queued'), ('claimed', 'failed'),
    ('running', 'succeeded'), ('running', 'failed'), ('running', 'canceled'), ('running', 'queued');

CREATE TABLE ops.runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id       bigint NOT NULL REFERENCES ops.projects (id),
    workflow_id      bigint NOT NULL REFERENCES ops.workflows (id),
    queue            text NOT NULL,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'claimed', 'running', 'succeeded', 'failed', 'canceled')),
    priority         integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    payload          jsonb NOT NULL DEFAULT '{}' CHECK (octet_length(payload::text) <= 1048576),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0 AND attempt <= max_attempts),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    worker_id        text,
    lease_expires_at timestamptz,
    run_after        timestamptz NOT NULL DEFAULT now(),
    cancel_requested boolean NOT NULL DEFAULT false,
    exit_code        integer,
    error            text,
    retry_of         bigint REFERENCES ops.runs (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz
);

CREATE INDEX runs_claim_idx ON ops.runs (queue, priority DESC, id) WHERE status = 'queued';
CREATE INDEX runs_claim_any_idx ON ops.runs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX runs_lease_idx ON ops.runs (lease_expires_at) WHERE status IN ('claimed', 'running');
CREATE INDEX runs_status_idx ON ops.runs (status, id);
CREATE INDEX runs_project_idx ON ops.runs (project_id, id);

CREATE TABLE ops.run_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES ops.runs (id),
    event_type  text NOT NULL CHECK (event_type IN ('state_change', 'cancel_requested', 'error', 'warning', 'info')),
    from_status text,
    to_status   text,
    attempt     integer NOT NULL,
    actor       text NOT NULL,
    message     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_events_run_idx ON ops.run_events (run_id, id);

CREATE TABLE ops.run_artifacts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES ops.runs (id),
    key          text NOT NULL,
    url          text,
    sha256       text CHECK (sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes   bigint CHECK (size_bytes IS NULL OR size_bytes >= 0),
    content_type text,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, key)
);

CREATE TABLE ops.run_logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     bigint NOT NULL REFERENCES ops.runs (id),
    level      text NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    message    text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}',
    search     tsvector GENERATED ALWAYS AS (to_tsvector('simple', message)) STORED,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_logs_run_idx ON ops.run_logs (run_id, id);
CREATE INDEX run_logs_search_idx ON ops.run_logs USING gin (search);

CREATE TABLE ops.tools (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    version    text NOT NULL,
    image      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE TABLE ops.upgrade_advisories (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tool_name    text NOT NULL,
    from_version text NOT NULL,
    to_version   text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'breaking')),
    title        text NOT NULL,
    guide_url    text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ops.audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor       text NOT NULL,
    action      text NOT NULL,
    entity_type text NOT NULL,
    entity_id   text NOT NULL,
    project_id  bigint,
    before      jsonb,
    after       jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON ops.audit_log (entity_type, entity_id, id);

-- Who is acting: set per transaction by the functions below; raw SQL falls back to the role.
CREATE FUNCTION ops.current_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('ospdeck.actor', true), ''), current_user::text)
$$;

-- The state machine, enforced for every writer, raw SQL included. Statement-level triggers with
-- transition tables: a batched claim or completion pays one check and one event insert per
-- statement, not per row.
CREATE FUNCTION ops.runs_check_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE status <> 'queued' OR attempt <> 0) THEN
        RAISE EXCEPTION 'illegal run transition: a run is created queued with attempt 0'
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO ops.run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    SELECT n.id, 'state_change', NULL, 'queued', 0, ops.current_actor(),
           CASE WHEN n.retry_of IS NOT NULL THEN 'retry of run ' || n.retry_of END
    FROM new_rows n ORDER BY n.id;
    PERFORM pg_notify('ospdeck_runs', q.queue) FROM (SELECT DISTINCT queue FROM new_rows) q;
    RETURN NULL;
END;
$$;

CREATE FUNCTION ops.runs_check_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT o.id, o.status AS from_status, n.status AS to_status INTO bad
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE (o.status IN ('succeeded', 'failed', 'canceled') AND o IS DISTINCT FROM n)
       OR (o.status <> n.status AND NOT EXISTS (
              SELECT 1 FROM ops.run_transitions t WHERE t.from_status = o.status AND t.to_status = n.status))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal run transition: run % % -> %', bad.id, bad.from_status, bad.to_status
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO ops.run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    SELECT n.id,
           CASE WHEN o.status <> n.status THEN 'state_change' ELSE 'cancel_requested' END,
           o.status, n.status, n.attempt, ops.current_actor(),
           CASE WHEN o.status <> n.status AND n.status IN ('failed', 'queued', 'canceled') THEN n.error END
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.status <> n.status OR (n.cancel_requested AND NOT o.cancel_requested)
    ORDER BY n.id;
    PERFORM pg_notify('ospdeck_runs', q.queue)
    FROM (SELECT DISTINCT n.queue FROM old_rows o JOIN new_rows n ON n.id = o.id
          WHERE n.status = 'queued' AND o.status <> 'queued') q;
    RETURN NULL;
END;
$$;

CREATE TRIGGER runs_check_insert AFTER INSERT ON ops.runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.runs_check_insert();
CREATE TRIGGER runs_check_update AFTER UPDATE ON ops.runs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.runs_check_update();

CREATE FUNCTION ops.reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER run_events_append_only BEFORE UPDATE OR DELETE ON ops.run_events
    FOR EACH STATEMENT EXECUTE FUNCTION ops.reject_change();
CREATE TRIGGER run_events_no_truncate BEFORE TRUNCATE ON ops.run_events
    FOR EACH STATEMENT EXECUTE FUNCTION ops.reject_change();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON ops.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ops.reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON ops.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION ops.reject_change();

-- ---------------------------------------------------------------------------------------------
-- The queue interface.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION ops.enqueue_runs(
    p_actor text, p_project_ids bigint[], p_workflow_ids bigint[], p_priorities integer[],
    p_payloads jsonb[], p_max_attempts integer[], p_run_after timestamptz[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('ospdeck.actor', p_actor, true);
    RETURN QUERY
    INSERT INTO ops.runs (project_id, workflow_id, queue, priority, payload, max_attempts, run_after)
    SELECT i.project_id, i.workflow_id, w.task_queue, i.priority, i.payload, i.max_attempts,
           coalesce(i.run_after, now())
    FROM unnest(p_project_ids, p_workflow_ids, p_priorities, p_payloads, p_max_attempts, p_run_after)
         WITH ORDINALITY AS i (project_id, workflow_id, priority, payload, max_attempts, run_after, ord)
    JOIN ops.workflows w ON w.id = i.workflow_id AND w.project_id = i.project_id
    ORDER BY i.ord
    RETURNING id;
END;
$$;

-- Claim up to p_limit runs: lock exactly the rows chosen (CTE + LIMIT + SKIP LOCKED), then update by
-- id. One statement per shape (all queues, one queue, several), so each cached plan walks its own
-- index in claim order instead of sorting the whole backlog.
CREATE FUNCTION ops.claim_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer)
RETURNS SETOF ops.runs
LANGUAGE plpgsql AS $$
DECLARE
    picked bigint[];
BEGIN
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    IF p_queues IS NULL THEN
        picked := ARRAY(SELECT r.id FROM ops.runs r
                        WHERE r.status = 'queued' AND r.run_after <= now()
                        ORDER BY r.priority DESC, r.id LIMIT p_limit FOR UPDATE SKIP LOCKED);
    ELSIF cardinality(p_queues) = 1 THEN
        picked := ARRAY(SELECT r.id FROM ops.runs r
                        WHERE r.status = 'queued' AND r.queue = p_queues[1] AND r.run_after <= now()
                        ORDER BY r.priority DESC, r.id LIMIT p_limit FOR UPDATE SKIP LOCKED);
    ELSE
        picked := ARRAY(SELECT r.id FROM ops.runs r
                        WHERE r.status = 'queued' AND r.queue = ANY (p_queues) AND r.run_after <= now()
                        ORDER BY r.priority DESC, r.id LIMIT p_limit FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN QUERY
    UPDATE ops.runs r
       SET status = 'claimed', worker_id = p_worker_id, attempt = r.attempt + 1, claimed_at = now(),
           lease_expires_at = now() + make_interval(secs => p_lease_secs)
     WHERE r.id = ANY (picked)
    RETURNING r.*;
END;
$$;

CREATE FUNCTION ops.claim_next_run(p_worker_id text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('run_id', c.id, 'project_id', c.project_id, 'workflow_id', c.workflow_id,
                              'attempt', c.attempt, 'payload', c.payload)
    FROM ops.claim_runs(p_worker_id, NULL, 1, 300) c
$$;

CREATE FUNCTION ops.start_workflow_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    RETURN QUERY
    UPDATE ops.runs r SET status = 'running', started_at = now()
      FROM unnest(p_run_ids, p_attempts) AS h (id, attempt)
     WHERE r.id = h.id AND r.worker_id = p_worker_id AND r.status = 'claimed'
       AND (h.attempt IS NULL OR r.attempt = h.attempt)
    RETURNING r.id;
END;
$$;

CREATE FUNCTION ops.start_workflow_run(p_run_id bigint, p_worker_id text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM ops.start_workflow_runs(p_worker_id, ARRAY[p_run_id], ARRAY[NULL::integer]))
$$;

-- Extend the leases a worker still holds; answers which it holds and whether a cancel was asked.
CREATE FUNCTION ops.heartbeat_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[], p_lease_secs integer)
RETURNS TABLE (run_id bigint, cancel_requested boolean)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    UPDATE ops.runs r SET lease_expires_at = now() + make_interval(secs => p_lease_secs)
      FROM unnest(p_run_ids, p_attempts) AS h (id, attempt)
     WHERE r.id = h.id AND r.worker_id = p_worker_id AND r.attempt = h.attempt
       AND r.status IN ('claimed', 'running')
    RETURNING r.id, r.cancel_requested;
END;
$$;

-- Finish runs only while this worker still holds this attempt (fencing). p_canceled marks a run the
-- worker stopped on request. Exit code 0 without error succeeds, anything else fails.
CREATE FUNCTION ops.complete_workflow_runs(
    p_worker_id text, p_run_ids bigint[], p_attempts integer[], p_exit_codes integer[], p_errors text[],
    p_canceled boolean[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('ospdeck.actor', coalesce(p_worker_id, current_user::text), true);
    RETURN QUERY
    UPDATE ops.runs r
       SET status = CASE WHEN c.canceled THEN 'canceled'
                         WHEN c.exit_code = 0 AND c.error IS NULL THEN 'succeeded'
                         ELSE 'failed' END,
           exit_code = c.exit_code, error = c.error, finished_at = now(), lease_expires_at = NULL
      FROM unnest(p_run_ids, p_attempts, p_exit_codes, p_errors, p_canceled)
           AS c (id, attempt, exit_code, error, canceled)
     WHERE r.id = c.id AND r.status = 'running'
       AND (p_worker_id IS NULL OR r.worker_id = p_worker_id)
       AND (c.attempt IS NULL OR r.attempt = c.attempt)
    RETURNING r.id;
END;
$$;

CREATE FUNCTION ops.complete_workflow_run(
    p_run_id bigint, p_exit_code integer, p_error text DEFAULT NULL,
    p_worker_id text DEFAULT NULL, p_attempt integer DEFAULT NULL
) RETURNS boolean
LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM ops.complete_workflow_runs(
        p_worker_id, ARRAY[p_run_id], ARRAY[p_attempt], ARRAY[p_exit_code], ARRAY[p_error], ARRAY[false]))
$$;

-- Give runs back to the queue (a worker shutting down). The attempt is handed back too: the run
-- was never tried to the end, and the worker id no longer matches, so the old holder stays fenced.
CREATE FUNCTION ops.release_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    RETURN QUERY
    UPDATE ops.runs r
       SET status = CASE WHEN r.cancel_requested THEN 'canceled' ELSE 'queued' END,
           attempt = CASE WHEN r.cancel_requested THEN r.attempt ELSE r.attempt - 1 END,
           worker_id = NULL, lease_expires_at = NULL, claimed_at = NULL, started_at = NULL,
           error = 'released by worker ' || p_worker_id,
           finished_at = CASE WHEN r.cancel_requested THEN now() END
      FROM unnest(p_run_ids, p_attempts) AS h (id, attempt)
     WHERE r.id = h.id AND r.worker_id = p_worker_id AND r.attempt = h.attempt
       AND r.status IN ('claimed', 'running')
    RETURNING r.id;
END;
$$;

-- Runs whose lease ran out: back to the queue while attempts remain, else failed; canceled if a
-- cancel was asked for.
CREATE FUNCTION ops.rescue_expired_runs(p_actor text DEFAULT 'rescuer')
RETURNS TABLE (run_id bigint, status text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('ospdeck.actor', p_actor, true);
    RETURN QUERY
    WITH expired AS (
        SELECT r.id FROM ops.runs r
        WHERE r.status IN ('claimed', 'running') AND r.lease_expires_at < now()
        ORDER BY r.id
        FOR UPDATE SKIP LOCKED
    )
    UPDATE ops.runs r
       SET status = CASE WHEN r.cancel_requested THEN 'canceled'
                         WHEN r.attempt < r.max_attempts THEN 'queued'
                         ELSE 'failed' END,
           error = 'lease expired on attempt ' || r.attempt || ' (worker ' || coalesce(r.worker_id, '?') || ')',
           worker_id = CASE WHEN r.cancel_requested OR r.attempt >= r.max_attempts THEN r.worker_id END,
           lease_expires_at = NULL,
           finished_at = CASE WHEN r.cancel_requested OR r.attempt >= r.max_attempts THEN now() END
      FROM expired WHERE r.id = expired.id
    RETURNING r.id, r.status;
END;
$$;

-- Cancel: queued or claimed runs stop at once; a running one is asked to stop (its worker kills
-- the child and finishes it as canceled). Answers 'canceled', 'requested', 'finished:<status>' for a
-- run that had already ended, or NULL for an unknown run.
CREATE FUNCTION ops.cancel_run(p_run_id bigint, p_actor text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cur text;
BEGIN
    PERFORM set_config('ospdeck.actor', coalesce(p_actor, current_user::text), true);
    SELECT r.status INTO cur FROM ops.runs r WHERE r.id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF cur IN ('queued', 'claimed') THEN
        UPDATE ops.runs SET status = 'canceled', finished_at = now(), lease_expires_at = NULL,
                            error = 'canceled by ' || ops.current_actor()
         WHERE id = p_run_id;
        RETURN 'canceled';
    ELSIF cur = 'running' THEN
        UPDATE ops.runs SET cancel_requested = true WHERE id = p_run_id AND NOT cancel_requested;
        RETURN 'requested';
    END IF;
    RETURN 'finished:' || cur;
END;
$$;

-- A retry is a new run pointing at the one it retries; history is never rewritten.
CREATE FUNCTION ops.retry_run(p_run_id bigint, p_actor text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM set_config('ospdeck.actor', coalesce(p_actor, current_user::text), true);
    INSERT INTO ops.runs (project_id, workflow_id, queue, priority, payload, max_attempts, retry_of)
    SELECT r.project_id, r.workflow_id, w.task_queue, r.priority, r.payload, r.max_attempts, r.id
    FROM ops.runs r JOIN ops.workflows w ON w.id = r.workflow_id
    WHERE r.id = p_run_id AND r.status IN ('succeeded', 'failed', 'canceled')
    RETURNING id INTO new_id;
    RETURN new_id;
END;
$$;

CREATE FUNCTION ops.append_run_logs(p_run_id bigint, p_levels text[], p_messages text[], p_metadata jsonb[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO ops.run_logs (run_id, level, message, metadata)
    SELECT p_run_id, l.level, l.message, coalesce(l.metadata, '{}')
    FROM unnest(p_levels, p_messages, p_metadata) WITH ORDINALITY AS l (level, message, metadata, ord)
    ORDER BY l.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

CREATE FUNCTION ops.append_run_log(p_run_id bigint, p_level text, p_message text, p_metadata jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO ops.run_logs (run_id, level, message, metadata)
    VALUES (p_run_id, p_level, p_message, coalesce(p_metadata, '{}'))
    RETURNING id
$$;

CREATE FUNCTION ops.add_run_artifact(
    p_run_id bigint, p_key text, p_url text DEFAULT NULL, p_sha256 text DEFAULT NULL,
    p_size_bytes bigint DEFAULT NULL, p_content_type text DEFAULT NULL, p_expires_at timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO ops.run_artifacts (run_id, key, url, sha256, size_bytes, content_type, expires_at)
    VALUES (p_run_id, p_key, p_url, p_sha256, p_size_bytes, p_content_type, p_expires_at)
    RETURNING id
$$;

CREATE FUNCTION ops.list_queued_runs() RETURNS SETOF ops.runs
LANGUAGE sql STABLE AS $$
    SELECT * FROM ops.runs WHERE status = 'queued' ORDER BY priority DESC, id
$$;
