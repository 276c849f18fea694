-- Back to 0005: the queue functions as 0001 (claim_runs as 0005) wrote them, the run triggers
-- without the member split, members' grants and policies on workflows and run_events.

CREATE OR REPLACE FUNCTION ops.rescue_expired_runs(p_actor text DEFAULT 'rescuer')
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

CREATE OR REPLACE FUNCTION ops.release_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
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

CREATE OR REPLACE FUNCTION ops.complete_workflow_runs(
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

CREATE OR REPLACE FUNCTION ops.heartbeat_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[], p_lease_secs integer)
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

CREATE OR REPLACE FUNCTION ops.start_workflow_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
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

CREATE OR REPLACE FUNCTION ops.claim_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer,
                                          p_projects bigint[] DEFAULT NULL)
RETURNS SETOF ops.runs
LANGUAGE plpgsql AS $$
DECLARE
    picked bigint[];
BEGIN
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    IF p_queues IS NULL THEN
        picked := ARRAY(SELECT r.id FROM ops.runs r
                        WHERE r.status = 'queued' AND r.run_after <= now()
                          AND (p_projects IS NULL OR r.project_id = ANY (p_projects))
                        ORDER BY r.priority DESC, r.id LIMIT p_limit FOR UPDATE SKIP LOCKED);
    ELSIF cardinality(p_queues) = 1 THEN
        picked := ARRAY(SELECT r.id FROM ops.runs r
                        WHERE r.status = 'queued' AND r.queue = p_queues[1] AND r.run_after <= now()
                          AND (p_projects IS NULL OR r.project_id = ANY (p_projects))
                        ORDER BY r.priority DESC, r.id LIMIT p_limit FOR UPDATE SKIP LOCKED);
    ELSE
        picked := ARRAY(SELECT r.id FROM ops.runs r
                        WHERE r.status = 'queued' AND r.queue = ANY (p_queues) AND r.run_after <= now()
                          AND (p_projects IS NULL OR r.project_id = ANY (p_projects))
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

DROP FUNCTION ops.require_worker_id(text, text);

DROP TRIGGER runs_check_member_update ON ops.runs;
DROP TRIGGER runs_check_member_insert ON ops.runs;
DROP TRIGGER runs_check_update ON ops.runs;
DROP TRIGGER runs_check_insert ON ops.runs;
CREATE OR REPLACE FUNCTION ops.runs_check_insert() RETURNS trigger
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

CREATE OR REPLACE FUNCTION ops.runs_check_update() RETURNS trigger
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

CREATE OR REPLACE FUNCTION ops.current_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('ospdeck.actor', true), ''), current_user::text)
$$;
DROP FUNCTION ops.named_actor();

CREATE TRIGGER runs_check_insert AFTER INSERT ON ops.runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.runs_check_insert();
CREATE TRIGGER runs_check_update AFTER UPDATE ON ops.runs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.runs_check_update();

GRANT INSERT ON ops.run_events TO ospdeck_member;
CREATE POLICY write ON ops.run_events FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = run_events.run_id
                        AND r.project_id = ANY ((SELECT ops.projects_where('enqueue_run'))::bigint[])));

ALTER TABLE ops.runs DROP COLUMN claimed_by;

DROP TRIGGER runs_schedule_frozen_for_members ON ops.runs;
DROP FUNCTION ops.runs_refuse_member_reschedule();
DROP TRIGGER runs_identity_frozen ON ops.runs;
DROP FUNCTION ops.runs_refuse_rewrite();
DROP TRIGGER runs_check_belonging ON ops.runs;
DROP FUNCTION ops.runs_check_belonging();

DROP TRIGGER service_manifests_content_depth ON osp_metadata.service_manifests;
DROP TRIGGER runs_payload_depth ON ops.runs;
DROP FUNCTION ops.refuse_deep_json();
DROP FUNCTION ops.json_too_deep(jsonb);

DROP FUNCTION ops.update_service_workflow(bigint, text, text);
DROP FUNCTION ops.caller_is_administrator();
DROP TRIGGER workflows_deploy_permission ON ops.workflows;
DROP FUNCTION ops.workflows_deploy_permission();
DROP TRIGGER workflows_audit ON ops.workflows;
DROP FUNCTION ops.workflows_audit();
DROP TRIGGER workflows_guard ON ops.workflows;
DROP FUNCTION ops.workflows_guard();

GRANT UPDATE ON ops.workflows TO ospdeck_member;
CREATE POLICY change ON ops.workflows FOR UPDATE
    USING (project_id = ANY ((SELECT ops.projects_where('create_workflow'))::bigint[]));
