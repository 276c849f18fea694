-- The database holds against members who skip ospdeck and write SQL themselves (issue 11): what
-- ospdeck refuses, psql, PostgREST and edge functions are refused too. Administrators (superusers,
-- BYPASSRLS roles, the owner of these tables) keep today's paths: the member checks are either
-- skipped by a trigger's WHEN, or sit on columns the queue's hot statements never set.

-- ---------------------------------------------------------------------------------------------
-- Workflows: a workflow's command runs on a worker's host, so changing one is an administrator's
-- act, audited by the database itself. The built-in deploy workflow launches workers: it keeps
-- its command, type and queue for everyone, nothing else may become it, and creating it is
-- deploying.
-- ---------------------------------------------------------------------------------------------

REVOKE UPDATE ON ops.workflows FROM ospdeck_member;
DROP POLICY change ON ops.workflows;

CREATE FUNCTION ops.workflows_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.project_id <> OLD.project_id THEN
        RAISE EXCEPTION 'workflow %: a workflow never moves to another project (its runs stay with it)',
            OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.command = 'ospdeck:deploy-service'
       AND (NEW.command, NEW.workflow_type, NEW.task_queue)
           IS DISTINCT FROM (OLD.command, OLD.workflow_type, OLD.task_queue) THEN
        RAISE EXCEPTION 'workflow %: the built-in deploy workflow keeps its command, type and queue',
            OLD.name USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.command = 'ospdeck:deploy-service' AND OLD.command <> 'ospdeck:deploy-service' THEN
        RAISE EXCEPTION 'workflow %: no workflow may become the built-in deploy workflow', OLD.name
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER workflows_guard BEFORE UPDATE ON ops.workflows
    FOR EACH ROW EXECUTE FUNCTION ops.workflows_guard();

CREATE FUNCTION ops.workflows_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.audit_log (actor, action, entity_type, entity_id, project_id, before, after)
    VALUES (ops.current_actor(), 'update', 'workflow', NEW.id::text, NEW.project_id,
            to_jsonb(OLD), to_jsonb(NEW));
    RETURN NULL;
END;
$$;
CREATE TRIGGER workflows_audit AFTER UPDATE ON ops.workflows
    FOR EACH ROW EXECUTE FUNCTION ops.workflows_audit();

-- Activating a manifest brings its service's workflows up to date: that is the admin path by which
-- a workflow's command or queue changes (members hold no UPDATE on ops.workflows). It runs as the
-- tables' owner, so it decides who may call it from the caller's own session: an administrator,
-- or a member holding activate_manifest in the workflow's project. Only a service's workflow is
-- touched, and the guard and audit triggers above apply as to any update.
CREATE FUNCTION ops.caller_is_administrator() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- `role` (SET ROLE) and session_user are the caller's even inside SECURITY DEFINER code,
    -- where current_user is this function's owner.
    SELECT EXISTS (SELECT 1 FROM pg_roles r
                   WHERE r.rolname = coalesce(nullif(current_setting('role'), 'none'), session_user::text)
                     AND (r.rolsuper OR r.rolbypassrls
                          OR pg_has_role(r.oid, (SELECT c.relowner FROM pg_class c
                                                 WHERE c.oid = 'ops.runs'::regclass), 'USAGE')))
$$;

CREATE FUNCTION ops.update_service_workflow(p_workflow_id bigint, p_task_queue text, p_command text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wf record;
BEGIN
    SELECT w.project_id, w.service_id, w.name INTO wf FROM ops.workflows w WHERE w.id = p_workflow_id;
    IF NOT FOUND OR wf.service_id IS NULL THEN
        RAISE EXCEPTION 'workflow %: only a service''s workflow changes with its manifest', p_workflow_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT ops.caller_is_administrator() AND NOT ops.may('activate_manifest', wf.project_id) THEN
        RAISE EXCEPTION 'permission denied: changing workflow % needs permission activate_manifest in project %',
            wf.name, wf.project_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE ops.workflows SET task_queue = p_task_queue, command = p_command WHERE id = p_workflow_id;
    RETURN p_workflow_id;
END;
$$;
REVOKE ALL ON FUNCTION ops.update_service_workflow(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.update_service_workflow(bigint, text, text) TO ospdeck_member;

CREATE FUNCTION ops.workflows_deploy_permission() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops.require('deploy_worker', NEW.project_id,
                        'creating workflow ' || NEW.name || ' with the deploy command');
    RETURN NEW;
END;
$$;
CREATE TRIGGER workflows_deploy_permission BEFORE INSERT ON ops.workflows
    FOR EACH ROW WHEN (NEW.command = 'ospdeck:deploy-service')
    EXECUTE FUNCTION ops.workflows_deploy_permission();

-- ---------------------------------------------------------------------------------------------
-- JSON nesting: nothing deeper than domain::json::MAX_JSON_DEPTH (64 arrays/objects) is stored,
-- so every decoder can read what is stored. A container 64 levels below the root is the 65th.
-- Triggers rather than CHECKs: a CHECK is evaluated again on every UPDATE of the row (each claim,
-- start and completion), and would stop a run stored before this migration from ever finishing.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION ops.json_too_deep(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_path_exists(p_value, 'strict $.**{64} ? (@.type() == "array" || @.type() == "object")')
$$;

CREATE FUNCTION ops.refuse_deep_json() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of % is nested deeper than 64 arrays and objects', TG_ARGV[0], TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER runs_payload_depth BEFORE INSERT OR UPDATE OF payload ON ops.runs
    FOR EACH ROW WHEN (ops.json_too_deep(NEW.payload))
    EXECUTE FUNCTION ops.refuse_deep_json('payload');
CREATE TRIGGER service_manifests_content_depth
    BEFORE INSERT OR UPDATE OF manifest_content ON osp_metadata.service_manifests
    FOR EACH ROW WHEN (ops.json_too_deep(NEW.manifest_content))
    EXECUTE FUNCTION ops.refuse_deep_json('manifest_content');

-- ---------------------------------------------------------------------------------------------
-- Runs, for every writer: a run is its workflow's, in its workflow's project and (when queued)
-- its workflow's queue; a retry retries a run of the same workflow; what was queued never changes.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION ops.runs_check_belonging() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.project_id, n.workflow_id, n.queue INTO bad
    FROM new_rows n LEFT JOIN ops.workflows w ON w.id = n.workflow_id
    WHERE w.project_id IS DISTINCT FROM n.project_id OR w.task_queue IS DISTINCT FROM n.queue
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'run %: workflow % is not a workflow of project % on queue % (a run takes its workflow''s project and queue)',
            bad.id, bad.workflow_id, bad.project_id, bad.queue USING ERRCODE = 'check_violation';
    END IF;
    SELECT n.id, n.retry_of INTO bad
    FROM new_rows n
    WHERE n.retry_of IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = n.retry_of AND r.workflow_id = n.workflow_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'run %: it retries run %, which is not a run of the same workflow', bad.id, bad.retry_of
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER runs_check_belonging AFTER INSERT ON ops.runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.runs_check_belonging();

-- `UPDATE OF`: the queue's own statements never set these columns, so they never fire this.
CREATE FUNCTION ops.runs_refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'run %: its payload, project, workflow, queue, retry_of and created_at never change once it is queued',
        OLD.id USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER runs_identity_frozen
    BEFORE UPDATE OF payload, project_id, workflow_id, queue, retry_of, created_at ON ops.runs
    FOR EACH ROW WHEN ((NEW.payload, NEW.project_id, NEW.workflow_id, NEW.queue, NEW.retry_of, NEW.created_at)
                       IS DISTINCT FROM
                       (OLD.payload, OLD.project_id, OLD.workflow_id, OLD.queue, OLD.retry_of, OLD.created_at))
    EXECUTE FUNCTION ops.runs_refuse_rewrite();

-- Priority, attempts and the earliest start are the enqueuer's; a member changing them on a run
-- already queued would reorder, starve or postpone other people's work (cancel is an admin's).
CREATE FUNCTION ops.runs_refuse_member_reschedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ops.is_administrator() THEN
        RAISE EXCEPTION 'permission denied: run %: its priority, max_attempts and run_after are set when it is queued',
            OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER runs_schedule_frozen_for_members
    BEFORE UPDATE OF priority, max_attempts, run_after ON ops.runs
    FOR EACH ROW WHEN ((NEW.priority, NEW.max_attempts, NEW.run_after)
                       IS DISTINCT FROM (OLD.priority, OLD.max_attempts, OLD.run_after))
    EXECUTE FUNCTION ops.runs_refuse_member_reschedule();

-- ---------------------------------------------------------------------------------------------
-- Runs, for members: fencing in the database. A claim records who claimed (claimed_by, the
-- session's identity, never an argument); only that identity may start, heartbeat, finish or
-- release the run, keeping its worker and attempt; anyone who may work in the project may rescue
-- a run whose lease has expired. The run_events rows of a member's statement name the member.
-- ---------------------------------------------------------------------------------------------

ALTER TABLE ops.runs ADD COLUMN claimed_by text;

-- Only the runs triggers below write events: members lose the grant to insert them directly.
DROP POLICY write ON ops.run_events;
REVOKE INSERT ON ops.run_events FROM ospdeck_member;

-- Who is acting, as events, manifests and cancel messages record it: a member is always the
-- member; an administrator is the worker or actor it names (ospdeck.actor), else its role.
-- `role` rather than current_user, so that the answer is the same inside the SECURITY DEFINER
-- triggers below as outside them.
CREATE FUNCTION ops.named_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('ospdeck.actor', true), ''),
                    nullif(current_setting('role'), 'none'), session_user::text)
$$;
CREATE OR REPLACE FUNCTION ops.current_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN ops.is_administrator() THEN ops.named_actor() ELSE ops.current_user_id() END
$$;

-- The run triggers run as the tables' owner (SECURITY DEFINER), so that they write the
-- run_events rows a member cannot. Whether the writer is a member is decided by each trigger's
-- WHEN, in the writer's own context, once per statement, and handed over as the argument:
-- administrators skip the member checks and keep naming their actor.
CREATE OR REPLACE FUNCTION ops.runs_check_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    member boolean := TG_ARGV[0] = 'member';
    actor text := CASE WHEN member THEN ops.current_user_id() ELSE ops.named_actor() END;
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE status <> 'queued' OR attempt <> 0) THEN
        RAISE EXCEPTION 'illegal run transition: a run is created queued with attempt 0'
            USING ERRCODE = 'check_violation';
    END IF;
    IF member AND EXISTS (
        SELECT 1 FROM new_rows
        WHERE (worker_id, claimed_by, lease_expires_at, claimed_at, started_at, finished_at, exit_code,
               error) IS DISTINCT FROM (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
           OR cancel_requested) THEN
        RAISE EXCEPTION 'permission denied: a run is queued unclaimed, with no outcome and no cancel request'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO ops.run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    SELECT n.id, 'state_change', NULL, 'queued', 0, actor,
           CASE WHEN n.retry_of IS NOT NULL THEN 'retry of run ' || n.retry_of END
    FROM new_rows n ORDER BY n.id;
    PERFORM pg_notify('ospdeck_runs', q.queue) FROM (SELECT DISTINCT queue FROM new_rows) q;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION ops.runs_check_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    member boolean := TG_ARGV[0] = 'member';
    actor text := CASE WHEN member THEN ops.current_user_id() ELSE ops.named_actor() END;
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

    IF member THEN
        -- Each row a member changes must be one of these moves. Cancels (queued|claimed ->
        -- canceled, and asking a running run to stop) passed runs_check_cancel's check already.
        SELECT o.id, o.status AS from_status, n.status AS to_status, o.worker_id, o.attempt,
               coalesce(o.claimed_by, 'nobody') AS holder, o.claimed_by IS NOT DISTINCT FROM actor AS mine,
               o.status = 'queued' AND n.status = 'claimed' AS claiming
          INTO bad
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE NOT (
            -- Nothing of the hold or the outcome changes (a no-op, or a cancel request).
            (n.status = o.status AND n.cancel_requested >= o.cancel_requested
             AND (n.worker_id, n.claimed_by, n.attempt, n.lease_expires_at, n.exit_code, n.error,
                  n.claimed_at, n.started_at, n.finished_at)
                 IS NOT DISTINCT FROM
                 (o.worker_id, o.claimed_by, o.attempt, o.lease_expires_at, o.exit_code, o.error,
                  o.claimed_at, o.started_at, o.finished_at))
            -- A claim, in the member's own name.
            OR (o.status = 'queued' AND n.status = 'claimed' AND n.claimed_by = actor
                AND n.worker_id IS NOT NULL AND n.attempt = o.attempt + 1
                AND n.cancel_requested = o.cancel_requested)
            -- A cancel.
            OR (o.status IN ('queued', 'claimed') AND n.status = 'canceled' AND n.attempt = o.attempt
                AND n.cancel_requested >= o.cancel_requested
                AND (n.claimed_by IS NULL OR n.claimed_by = o.claimed_by)
                AND (n.worker_id IS NULL OR n.worker_id = o.worker_id))
            -- The holder, same worker and attempt: start, heartbeat, finish (canceled only on request).
            OR (o.claimed_by = actor AND n.claimed_by = actor AND n.worker_id = o.worker_id
                AND n.attempt = o.attempt AND n.cancel_requested = o.cancel_requested
                AND ((n.status = o.status AND o.status IN ('claimed', 'running'))
                     OR (o.status = 'claimed' AND n.status = 'running')
                     OR (o.status = 'running' AND n.status IN ('succeeded', 'failed'))
                     OR (o.status = 'running' AND n.status = 'canceled' AND o.cancel_requested)))
            -- The holder releases: the attempt is given back (or the requested cancel happens).
            OR (o.claimed_by = actor AND o.status IN ('claimed', 'running')
                AND n.claimed_by IS NULL AND n.worker_id IS NULL AND n.cancel_requested = o.cancel_requested
                AND ((n.status = 'queued' AND n.attempt = o.attempt - 1 AND NOT o.cancel_requested)
                     OR (n.status = 'canceled' AND n.attempt = o.attempt AND o.cancel_requested)))
            -- Anyone rescues an expired lease, as ops.rescue_expired_runs does.
            OR (o.status IN ('claimed', 'running') AND o.lease_expires_at < now()
                AND n.attempt = o.attempt AND n.cancel_requested = o.cancel_requested
                AND ((n.status = 'queued' AND NOT o.cancel_requested AND o.attempt < o.max_attempts
                      AND n.worker_id IS NULL AND n.claimed_by IS NULL)
                     OR (n.status = 'failed' AND NOT o.cancel_requested AND o.attempt >= o.max_attempts)
                     OR (n.status = 'canceled' AND o.cancel_requested)))
        )
        ORDER BY o.id
        LIMIT 1;
        IF FOUND THEN
            IF bad.claiming THEN
                RAISE EXCEPTION 'permission denied: claiming run %: a claim is in the claimer''s own name (claimed_by = ops.current_user_id(), here %), with a worker id and the next attempt',
                    bad.id, actor USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF bad.mine THEN
                RAISE EXCEPTION 'permission denied: run % (% -> %): its holder keeps worker % and attempt %, finishes a running run (canceled only when a cancel was asked for) and gives the attempt back on release',
                    bad.id, bad.from_status, bad.to_status, bad.worker_id, bad.attempt
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RAISE EXCEPTION 'permission denied: run % (% -> %) is held by % (worker %), not by %: only its holder starts, heartbeats, finishes or releases it; others may rescue it once its lease has expired',
                bad.id, bad.from_status, bad.to_status, bad.holder, coalesce(bad.worker_id, 'none'), actor
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;

    INSERT INTO ops.run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    SELECT n.id,
           CASE WHEN o.status <> n.status THEN 'state_change' ELSE 'cancel_requested' END,
           o.status, n.status, n.attempt, actor,
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

DROP TRIGGER runs_check_insert ON ops.runs;
DROP TRIGGER runs_check_update ON ops.runs;
CREATE TRIGGER runs_check_insert AFTER INSERT ON ops.runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (ops.is_administrator()) EXECUTE FUNCTION ops.runs_check_insert('administrator');
CREATE TRIGGER runs_check_update AFTER UPDATE ON ops.runs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (ops.is_administrator()) EXECUTE FUNCTION ops.runs_check_update('administrator');
CREATE TRIGGER runs_check_member_insert AFTER INSERT ON ops.runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (NOT ops.is_administrator()) EXECUTE FUNCTION ops.runs_check_insert('member');
CREATE TRIGGER runs_check_member_update AFTER UPDATE ON ops.runs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    WHEN (NOT ops.is_administrator()) EXECUTE FUNCTION ops.runs_check_update('member');

-- ---------------------------------------------------------------------------------------------
-- The queue functions: same signatures; a worker id is required wherever it fences, and claims
-- and releases keep claimed_by.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION ops.require_worker_id(p_worker_id text, p_function text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_worker_id IS NULL OR p_worker_id = '' THEN
        RAISE EXCEPTION '%: a worker id is required (the worker that holds the runs)', p_function
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION ops.claim_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer,
                                          p_projects bigint[] DEFAULT NULL)
RETURNS SETOF ops.runs
LANGUAGE plpgsql AS $$
DECLARE
    picked bigint[];
    claimer text;
BEGIN
    PERFORM ops.require_worker_id(p_worker_id, 'ops.claim_runs');
    claimer := ops.current_user_id();
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
       SET status = 'claimed', worker_id = p_worker_id, claimed_by = claimer, attempt = r.attempt + 1,
           claimed_at = now(), lease_expires_at = now() + make_interval(secs => p_lease_secs)
     WHERE r.id = ANY (picked)
    RETURNING r.*;
END;
$$;

CREATE OR REPLACE FUNCTION ops.start_workflow_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops.require_worker_id(p_worker_id, 'ops.start_workflow_runs');
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    RETURN QUERY
    UPDATE ops.runs r SET status = 'running', started_at = now()
      FROM unnest(p_run_ids, p_attempts) AS h (id, attempt)
     WHERE r.id = h.id AND r.worker_id = p_worker_id AND r.status = 'claimed'
       AND (h.attempt IS NULL OR r.attempt = h.attempt)
    RETURNING r.id;
END;
$$;

CREATE OR REPLACE FUNCTION ops.heartbeat_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[], p_lease_secs integer)
RETURNS TABLE (run_id bigint, cancel_requested boolean)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops.require_worker_id(p_worker_id, 'ops.heartbeat_runs');
    RETURN QUERY
    UPDATE ops.runs r SET lease_expires_at = now() + make_interval(secs => p_lease_secs)
      FROM unnest(p_run_ids, p_attempts) AS h (id, attempt)
     WHERE r.id = h.id AND r.worker_id = p_worker_id AND r.attempt = h.attempt
       AND r.status IN ('claimed', 'running')
    RETURNING r.id, r.cancel_requested;
END;
$$;

CREATE OR REPLACE FUNCTION ops.complete_workflow_runs(
    p_worker_id text, p_run_ids bigint[], p_attempts integer[], p_exit_codes integer[], p_errors text[],
    p_canceled boolean[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops.require_worker_id(p_worker_id, 'ops.complete_workflow_runs');
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    RETURN QUERY
    UPDATE ops.runs r
       SET status = CASE WHEN c.canceled THEN 'canceled'
                         WHEN c.exit_code = 0 AND c.error IS NULL THEN 'succeeded'
                         ELSE 'failed' END,
           exit_code = c.exit_code, error = c.error, finished_at = now(), lease_expires_at = NULL
      FROM unnest(p_run_ids, p_attempts, p_exit_codes, p_errors, p_canceled)
           AS c (id, attempt, exit_code, error, canceled)
     WHERE r.id = c.id AND r.status = 'running' AND r.worker_id = p_worker_id
       AND (c.attempt IS NULL OR r.attempt = c.attempt)
    RETURNING r.id;
END;
$$;

CREATE OR REPLACE FUNCTION ops.release_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops.require_worker_id(p_worker_id, 'ops.release_runs');
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    RETURN QUERY
    UPDATE ops.runs r
       SET status = CASE WHEN r.cancel_requested THEN 'canceled' ELSE 'queued' END,
           attempt = CASE WHEN r.cancel_requested THEN r.attempt ELSE r.attempt - 1 END,
           worker_id = NULL, claimed_by = NULL, lease_expires_at = NULL, claimed_at = NULL,
           started_at = NULL, error = 'released by worker ' || p_worker_id,
           finished_at = CASE WHEN r.cancel_requested THEN now() END
      FROM unnest(p_run_ids, p_attempts) AS h (id, attempt)
     WHERE r.id = h.id AND r.worker_id = p_worker_id AND r.attempt = h.attempt
       AND r.status IN ('claimed', 'running')
    RETURNING r.id;
END;
$$;

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
           claimed_by = CASE WHEN r.cancel_requested OR r.attempt >= r.max_attempts THEN r.claimed_by END,
           lease_expires_at = NULL,
           finished_at = CASE WHEN r.cancel_requested OR r.attempt >= r.max_attempts THEN now() END
      FROM expired WHERE r.id = expired.id
    RETURNING r.id, r.status;
END;
$$;
