-- The live definition of every function in schemas ops and osp_metadata (trigger functions
-- included), as the newest migration under migrations/postgres leaves it: what replaying
-- 0001…NNNN by hand would otherwise tell. Not a migration (sqlx reads only the files directly
-- under migrations/postgres): a function is changed by a new migration, and this file with it.
--
-- Each definition is pg_get_functiondef's text (search_path empty, so names are qualified),
-- ordered by signature, after a `-- function: <regprocedure>` line. tests/conformance.rs
-- (postgres_functions) compares it with a migrated database and names any function that differs.
-- Regenerate it from the migrations after changing a function there:
--
--   OSPDECK_REQUIRE_PG=1 OSPDECK_WRITE_PG_FUNCTIONS=1 cargo test --test conformance postgres_functions

-- function: ops.add_run_artifact(bigint,text,text,text,bigint,text,timestamp with time zone)
CREATE OR REPLACE FUNCTION ops.add_run_artifact(p_run_id bigint, p_key text, p_url text DEFAULT NULL::text, p_sha256 text DEFAULT NULL::text, p_size_bytes bigint DEFAULT NULL::bigint, p_content_type text DEFAULT NULL::text, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS bigint
 LANGUAGE sql
AS $function$
    INSERT INTO ops.run_artifacts (run_id, key, url, sha256, size_bytes, content_type, expires_at)
    VALUES (p_run_id, p_key, p_url, p_sha256, p_size_bytes, p_content_type, p_expires_at)
    RETURNING id
$function$;

-- function: ops.append_run_log(bigint,text,text,jsonb)
CREATE OR REPLACE FUNCTION ops.append_run_log(p_run_id bigint, p_level text, p_message text, p_metadata jsonb DEFAULT '{}'::jsonb)
 RETURNS bigint
 LANGUAGE sql
AS $function$
    INSERT INTO ops.run_logs (run_id, level, message, metadata)
    VALUES (p_run_id, p_level, p_message, coalesce(p_metadata, '{}'))
    RETURNING id
$function$;

-- function: ops.append_run_logs(bigint,text[],text[],jsonb[])
CREATE OR REPLACE FUNCTION ops.append_run_logs(p_run_id bigint, p_levels text[], p_messages text[], p_metadata jsonb[])
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.audit_log_actor()
CREATE OR REPLACE FUNCTION ops.audit_log_actor()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NOT ops.is_administrator() THEN
        NEW.actor := ops.current_user_id();
    END IF;
    RETURN NEW;
END;
$function$;

-- function: ops.caller_is_administrator()
CREATE OR REPLACE FUNCTION ops.caller_is_administrator()
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    -- `role` (SET ROLE) and session_user are the caller's even inside SECURITY DEFINER code,
    -- where current_user is this function's owner.
    SELECT EXISTS (SELECT 1 FROM pg_roles r
                   WHERE r.rolname = coalesce(nullif(current_setting('role'), 'none'), session_user::text)
                     AND (r.rolsuper OR r.rolbypassrls
                          OR pg_has_role(r.oid, (SELECT c.relowner FROM pg_class c
                                                 WHERE c.oid = 'ops.runs'::regclass), 'USAGE')))
$function$;

-- function: ops.cancel_run(bigint,text)
CREATE OR REPLACE FUNCTION ops.cancel_run(p_run_id bigint, p_actor text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.claim_and_start_runs(text,text[],integer,integer,bigint[])
CREATE OR REPLACE FUNCTION ops.claim_and_start_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer, p_projects bigint[] DEFAULT NULL::bigint[])
 RETURNS SETOF ops.runs
 LANGUAGE sql
AS $function$
    SELECT * FROM ops.take_runs(p_worker_id, p_queues, p_limit, p_lease_secs, p_projects, true)
$function$;

-- function: ops.claim_next_run(text)
CREATE OR REPLACE FUNCTION ops.claim_next_run(p_worker_id text)
 RETURNS jsonb
 LANGUAGE sql
AS $function$
    SELECT jsonb_build_object('run_id', c.id, 'project_id', c.project_id, 'workflow_id', c.workflow_id,
                              'attempt', c.attempt, 'payload', c.payload)
    FROM ops.claim_runs(p_worker_id, NULL, 1, 300) c
$function$;

-- function: ops.claim_runs(text,text[],integer,integer,bigint[])
CREATE OR REPLACE FUNCTION ops.claim_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer, p_projects bigint[] DEFAULT NULL::bigint[])
 RETURNS SETOF ops.runs
 LANGUAGE sql
AS $function$
    SELECT * FROM ops.take_runs(p_worker_id, p_queues, p_limit, p_lease_secs, p_projects, false)
$function$;

-- function: ops.complete_workflow_run(bigint,integer,text,text,integer)
CREATE OR REPLACE FUNCTION ops.complete_workflow_run(p_run_id bigint, p_exit_code integer, p_error text DEFAULT NULL::text, p_worker_id text DEFAULT NULL::text, p_attempt integer DEFAULT NULL::integer)
 RETURNS boolean
 LANGUAGE sql
AS $function$
    SELECT EXISTS (SELECT 1 FROM ops.complete_workflow_runs(
        p_worker_id, ARRAY[p_run_id], ARRAY[p_attempt], ARRAY[p_exit_code], ARRAY[p_error], ARRAY[false]))
$function$;

-- function: ops.complete_workflow_runs(text,bigint[],integer[],integer[],text[],boolean[])
CREATE OR REPLACE FUNCTION ops.complete_workflow_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[], p_exit_codes integer[], p_errors text[], p_canceled boolean[])
 RETURNS SETOF bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.count_runs()
CREATE OR REPLACE FUNCTION ops.count_runs()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    own_stripe smallint := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ops.run_counts AS c (project_id, queue, status, stripe, n)
        SELECT project_id, queue, status, own_stripe, count(*) FROM new_rows
        GROUP BY project_id, queue, status ORDER BY project_id, queue, status
        ON CONFLICT (project_id, queue, status, stripe) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ops.run_counts AS c (project_id, queue, status, stripe, n)
        SELECT project_id, queue, status, own_stripe, -count(*) FROM old_rows
        GROUP BY project_id, queue, status ORDER BY project_id, queue, status
        ON CONFLICT (project_id, queue, status, stripe) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        -- Lease renewals and cancel requests change no status: their net is zero, nothing is
        -- written.
        INSERT INTO ops.run_counts AS c (project_id, queue, status, stripe, n)
        SELECT project_id, queue, status, own_stripe, sum(d) FROM (
            SELECT project_id, queue, status, 1 AS d FROM new_rows
            UNION ALL
            SELECT project_id, queue, status, -1 FROM old_rows
        ) moved
        GROUP BY project_id, queue, status HAVING sum(d) <> 0 ORDER BY project_id, queue, status
        ON CONFLICT (project_id, queue, status, stripe) DO UPDATE SET n = c.n + excluded.n;
        INSERT INTO ops.run_minute_counts AS c (minute, project_id, queue, event, stripe, n)
        SELECT date_trunc('minute', nr.finished_at), nr.project_id, nr.queue, nr.status, own_stripe,
               count(*)
        FROM new_rows nr JOIN old_rows o ON o.id = nr.id
        WHERE nr.status IN ('succeeded', 'failed', 'canceled') AND o.status <> nr.status
          AND nr.finished_at IS NOT NULL
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (minute, project_id, queue, event, stripe) DO UPDATE SET n = c.n + excluded.n;
        INSERT INTO ops.run_minute_counts AS c (minute, project_id, queue, event, stripe, n)
        SELECT date_trunc('minute', nr.started_at), nr.project_id, nr.queue, 'deploy_started',
               own_stripe, count(*)
        FROM new_rows nr JOIN old_rows o ON o.id = nr.id
             JOIN ops.workflows w ON w.id = nr.workflow_id
        WHERE nr.status = 'running' AND o.status <> 'running' AND nr.started_at IS NOT NULL
          AND w.workflow_type = 'deploy'
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (minute, project_id, queue, event, stripe) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $function$;

-- function: ops.current_actor()
CREATE OR REPLACE FUNCTION ops.current_actor()
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
    SELECT CASE WHEN ops.is_administrator() THEN ops.named_actor() ELSE ops.current_user_id() END
$function$;

-- function: ops.current_user_id()
CREATE OR REPLACE FUNCTION ops.current_user_id()
 RETURNS text
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
    sub text;
BEGIN
    IF pg_has_role(session_user, 'ospdeck_api', 'MEMBER') THEN
        sub := nullif(current_setting('request.jwt.claim.sub', true), '');
        IF sub IS NULL THEN
            sub := nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '');
        END IF;
        IF sub IS NOT NULL THEN
            RETURN sub;
        END IF;
    END IF;
    RETURN session_user::text;
END;
$function$;

-- function: ops.current_user_role(bigint)
CREATE OR REPLACE FUNCTION ops.current_user_role(p_project_id bigint)
 RETURNS text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT m.role FROM ops.project_memberships m
    WHERE m.project_id = p_project_id AND m.user_id = ops.current_user_id()
$function$;

-- function: ops.enqueue_runs(text,bigint[],bigint[],integer[],jsonb[],integer[],timestamp with time zone[])
CREATE OR REPLACE FUNCTION ops.enqueue_runs(p_actor text, p_project_ids bigint[], p_workflow_ids bigint[], p_priorities integer[], p_payloads jsonb[], p_max_attempts integer[], p_run_after timestamp with time zone[])
 RETURNS SETOF bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.ensure_member_login(text)
CREATE OR REPLACE FUNCTION ops.ensure_member_login(p_user text)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
DECLARE
    created boolean := false;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_user) THEN
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN', p_user);
            created := true;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    EXECUTE format('GRANT ospdeck_member TO %I', p_user);
    RETURN created;
END;
$function$;

-- function: ops.heartbeat_runs(text,bigint[],integer[],integer)
CREATE OR REPLACE FUNCTION ops.heartbeat_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[], p_lease_secs integer)
 RETURNS TABLE(run_id bigint, cancel_requested boolean)
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ops.require_worker_id(p_worker_id, 'ops.heartbeat_runs');
    RETURN QUERY
    UPDATE ops.runs r SET lease_expires_at = now() + make_interval(secs => p_lease_secs)
      FROM unnest(p_run_ids, p_attempts) AS h (id, attempt)
     WHERE r.id = h.id AND r.worker_id = p_worker_id AND r.attempt = h.attempt
       AND r.status IN ('claimed', 'running')
    RETURNING r.id, r.cancel_requested;
END;
$function$;

-- function: ops.is_administrator()
CREATE OR REPLACE FUNCTION ops.is_administrator()
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
    SELECT EXISTS (SELECT 1 FROM pg_roles r
                   WHERE r.rolname = current_user AND (r.rolsuper OR r.rolbypassrls))
        OR pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = 'ops.runs'::regclass),
                       'USAGE')
$function$;

-- function: ops.json_too_deep(jsonb)
CREATE OR REPLACE FUNCTION ops.json_too_deep(p_value jsonb)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT jsonb_path_exists(p_value, 'strict $.**{64} ? (@.type() == "array" || @.type() == "object")')
$function$;

-- function: ops.list_queued_runs()
CREATE OR REPLACE FUNCTION ops.list_queued_runs()
 RETURNS SETOF ops.runs
 LANGUAGE sql
 STABLE
AS $function$
    SELECT * FROM ops.runs WHERE status = 'queued' ORDER BY priority DESC, id
$function$;

-- function: ops.may(text,bigint)
CREATE OR REPLACE FUNCTION ops.may(p_permission text, p_project_id bigint)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT EXISTS (
        SELECT 1 FROM ops.project_memberships m
        JOIN ops.permissions p ON p.permission = p_permission
        WHERE m.project_id = p_project_id AND m.user_id = ops.current_user_id()
          AND ops.role_rank(m.role) >= ops.role_rank(p.least_role))
$function$;

-- function: ops.named_actor()
CREATE OR REPLACE FUNCTION ops.named_actor()
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
    SELECT coalesce(nullif(current_setting('ospdeck.actor', true), ''),
                    nullif(current_setting('role'), 'none'), session_user::text)
$function$;

-- function: ops.notify_changed()
CREATE OR REPLACE FUNCTION ops.notify_changed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF EXISTS (SELECT 1 FROM changed_rows) THEN
        PERFORM pg_notify('ospdeck_changes', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END;
$function$;

-- function: ops.projects_creator()
CREATE OR REPLACE FUNCTION ops.projects_creator()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NEW.created_by IS NULL OR NOT ops.is_administrator() THEN
        NEW.created_by := ops.current_user_id();
    END IF;
    RETURN NEW;
END;
$function$;

-- function: ops.projects_first_owner()
CREATE OR REPLACE FUNCTION ops.projects_first_owner()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    INSERT INTO ops.project_memberships (project_id, user_id, role)
    VALUES (NEW.id, NEW.created_by, 'owner')
    ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'owner';
    RETURN NULL;
END;
$function$;

-- function: ops.projects_where(text)
CREATE OR REPLACE FUNCTION ops.projects_where(p_permission text)
 RETURNS bigint[]
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT coalesce(array_agg(m.project_id), '{}')
    FROM ops.project_memberships m
    JOIN ops.permissions p ON p.permission = p_permission
    WHERE m.user_id = ops.current_user_id() AND ops.role_rank(m.role) >= ops.role_rank(p.least_role)
$function$;

-- function: ops.prune_run_counts()
CREATE OR REPLACE FUNCTION ops.prune_run_counts()
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    DELETE FROM ops.run_minute_counts WHERE minute < now() - interval '1 day';
$function$;

-- function: ops.record_session_event(text,text,jsonb)
CREATE OR REPLACE FUNCTION ops.record_session_event(p_action text, p_address text, p_detail jsonb)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    actor text := ops.current_user_id();
    event_id bigint;
BEGIN
    IF p_action IS NULL OR p_action NOT IN ('ssh.login', 'ssh.logout', 'ssh.refused') THEN
        RAISE EXCEPTION 'session event %: the action is ssh.login, ssh.logout or ssh.refused',
            coalesce(p_action, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_address IS NULL OR length(p_address) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'session event %: the address is 1 to 255 characters', p_action
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_detail IS NOT NULL AND (jsonb_typeof(p_detail) <> 'object' OR length(p_detail::text) > 4096) THEN
        RAISE EXCEPTION 'session event %: the detail is a JSON object of at most 4096 bytes', p_action
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ops.caller_is_administrator() THEN
        actor := coalesce(nullif(current_setting('ospdeck.actor', true), ''), actor);
    END IF;
    INSERT INTO ops.audit_log (actor, action, entity_type, entity_id, project_id, before, after)
    VALUES (actor, p_action, 'ssh_session', p_address, NULL, NULL, p_detail)
    RETURNING id INTO event_id;
    RETURN event_id;
END;
$function$;

-- function: ops.refuse_deep_json()
CREATE OR REPLACE FUNCTION ops.refuse_deep_json()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION '% of % is nested deeper than 64 arrays and objects', TG_ARGV[0], TG_TABLE_NAME
        USING ERRCODE = 'check_violation';
END;
$function$;

-- function: ops.reject_change()
CREATE OR REPLACE FUNCTION ops.reject_change()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$function$;

-- function: ops.release_runs(text,bigint[],integer[])
CREATE OR REPLACE FUNCTION ops.release_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
 RETURNS SETOF bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.require(text,bigint,text)
CREATE OR REPLACE FUNCTION ops.require(p_permission text, p_project_id bigint, p_what text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
    IF NOT ops.is_administrator() AND NOT coalesce(ops.may(p_permission, p_project_id), false) THEN
        RAISE EXCEPTION 'permission denied: % needs permission % in project %', p_what, p_permission,
            p_project_id USING ERRCODE = 'insufficient_privilege';
    END IF;
END;
$function$;

-- function: ops.require_worker_id(text,text)
CREATE OR REPLACE FUNCTION ops.require_worker_id(p_worker_id text, p_function text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF p_worker_id IS NULL OR p_worker_id = '' THEN
        RAISE EXCEPTION '%: a worker id is required (the worker that holds the runs)', p_function
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$function$;

-- function: ops.rescue_expired_runs(text)
CREATE OR REPLACE FUNCTION ops.rescue_expired_runs(p_actor text DEFAULT 'rescuer'::text)
 RETURNS TABLE(run_id bigint, status text)
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.retry_run(bigint,text)
CREATE OR REPLACE FUNCTION ops.retry_run(p_run_id bigint, p_actor text DEFAULT NULL::text)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.role_rank(text)
CREATE OR REPLACE FUNCTION ops.role_rank(p_role text)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT CASE p_role WHEN 'viewer' THEN 1 WHEN 'developer' THEN 2 WHEN 'admin' THEN 3
                       WHEN 'owner' THEN 4 END
$function$;

-- function: ops.runs_change_clock()
CREATE OR REPLACE FUNCTION ops.runs_change_clock()
 RETURNS bigint
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT last_value FROM ops.run_events_id_seq
$function$;

-- function: ops.runs_check_belonging()
CREATE OR REPLACE FUNCTION ops.runs_check_belonging()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.runs_check_cancel()
CREATE OR REPLACE FUNCTION ops.runs_check_cancel()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ops.require('cancel_any_run', NEW.project_id, 'canceling run ' || NEW.id);
    RETURN NEW;
END;
$function$;

-- function: ops.runs_check_insert()
CREATE OR REPLACE FUNCTION ops.runs_check_insert()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;

-- function: ops.runs_check_update()
CREATE OR REPLACE FUNCTION ops.runs_check_update()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    member boolean := TG_ARGV[0] = 'member';
    actor text := CASE WHEN member THEN ops.current_user_id() ELSE ops.named_actor() END;
    bad record;
BEGIN
    -- queued -> running is a claim that started at once: legal when it is one (the next attempt,
    -- a worker, both times set), and recorded below as its two legs.
    SELECT o.id, o.status AS from_status, n.status AS to_status INTO bad
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE (o.status IN ('succeeded', 'failed', 'canceled') AND o IS DISTINCT FROM n)
       OR (o.status <> n.status
           AND NOT EXISTS (SELECT 1 FROM ops.run_transitions t
                           WHERE t.from_status = o.status AND t.to_status = n.status)
           AND NOT (o.status = 'queued' AND n.status = 'running' AND n.attempt = o.attempt + 1
                    AND n.worker_id IS NOT NULL AND n.claimed_at IS NOT NULL AND n.started_at IS NOT NULL))
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
               o.status = 'queued' AND n.status IN ('claimed', 'running') AS claiming
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
            -- A claim (or a claim that starts at once), in the member's own name.
            OR (o.status = 'queued' AND n.status IN ('claimed', 'running') AND n.claimed_by = actor
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

    -- One event per move; a claim that started at once is two moves (queued -> claimed -> running).
    INSERT INTO ops.run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    SELECT n.id,
           CASE WHEN o.status <> n.status THEN 'state_change' ELSE 'cancel_requested' END,
           CASE WHEN leg.second AND o.status = 'queued' AND n.status = 'running' THEN 'claimed' ELSE o.status END,
           CASE WHEN NOT leg.second THEN 'claimed' ELSE n.status END,
           n.attempt, actor,
           CASE WHEN o.status <> n.status AND n.status IN ('failed', 'queued', 'canceled') THEN n.error END
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    CROSS JOIN (VALUES (false), (true)) AS leg (second)
    WHERE CASE WHEN leg.second THEN o.status <> n.status OR (n.cancel_requested AND NOT o.cancel_requested)
               ELSE o.status = 'queued' AND n.status = 'running' END
    ORDER BY n.id, leg.second;
    PERFORM pg_notify('ospdeck_runs', q.queue)
    FROM (SELECT DISTINCT n.queue FROM old_rows o JOIN new_rows n ON n.id = o.id
          WHERE n.status = 'queued' AND o.status <> 'queued') q;
    RETURN NULL;
END;
$function$;

-- function: ops.runs_refuse_member_reschedule()
CREATE OR REPLACE FUNCTION ops.runs_refuse_member_reschedule()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NOT ops.is_administrator() THEN
        RAISE EXCEPTION 'permission denied: run %: its priority, max_attempts and run_after are set when it is queued',
            OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$function$;

-- function: ops.runs_refuse_rewrite()
CREATE OR REPLACE FUNCTION ops.runs_refuse_rewrite()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION 'run %: its payload, project, workflow, queue, retry_of and created_at never change once it is queued',
        OLD.id USING ERRCODE = 'check_violation';
END;
$function$;

-- function: ops.start_workflow_run(bigint,text)
CREATE OR REPLACE FUNCTION ops.start_workflow_run(p_run_id bigint, p_worker_id text)
 RETURNS boolean
 LANGUAGE sql
AS $function$
    SELECT EXISTS (SELECT 1 FROM ops.start_workflow_runs(p_worker_id, ARRAY[p_run_id], ARRAY[NULL::integer]))
$function$;

-- function: ops.start_workflow_runs(text,bigint[],integer[])
CREATE OR REPLACE FUNCTION ops.start_workflow_runs(p_worker_id text, p_run_ids bigint[], p_attempts integer[])
 RETURNS SETOF bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: ops.take_runs(text,text[],integer,integer,bigint[],boolean)
CREATE OR REPLACE FUNCTION ops.take_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer, p_projects bigint[], p_start boolean)
 RETURNS SETOF ops.runs
 LANGUAGE plpgsql
AS $function$
DECLARE
    picked bigint[];
    claimer text;
BEGIN
    PERFORM ops.require_worker_id(p_worker_id,
                                  CASE WHEN p_start THEN 'ops.claim_and_start_runs' ELSE 'ops.claim_runs' END);
    claimer := ops.current_user_id();
    PERFORM set_config('ospdeck.actor', p_worker_id, true);
    IF p_queues IS NULL THEN
        picked := ARRAY(SELECT r.id FROM ops.runs r
                        WHERE r.status = 'queued' AND r.run_after <= now()
                          AND (p_projects IS NULL OR r.project_id = ANY (p_projects))
                        ORDER BY r.priority DESC, r.id LIMIT p_limit FOR UPDATE SKIP LOCKED);
    ELSE
        -- The head of each queue through that queue's claim index, then the best of those heads.
        -- `-priority` is the claim index's own key: only that index gives this order, so the
        -- planner cannot take the index of every queued run instead (which gives the same order
        -- for one queue) and walk past every other queue's backlog to reach this queue's runs
        -- (measured behind 50 000 runs of a queue nobody serves: 12 to 28 ms a claim that way,
        -- 0.1 to 0.5 ms this way). Rows locked here and not taken are free again at commit.
        picked := ARRAY(SELECT c.id
                        FROM unnest(p_queues) AS q (queue)
                        CROSS JOIN LATERAL (
                            SELECT r.id, r.priority FROM ops.runs r
                            WHERE r.status = 'queued' AND r.queue = q.queue AND r.run_after <= now()
                              AND (p_projects IS NULL OR r.project_id = ANY (p_projects))
                            ORDER BY -r.priority, r.id LIMIT p_limit FOR UPDATE SKIP LOCKED
                        ) c
                        ORDER BY c.priority DESC, c.id LIMIT p_limit);
    END IF;
    RETURN QUERY
    UPDATE ops.runs r
       SET status = CASE WHEN p_start THEN 'running' ELSE 'claimed' END,
           worker_id = p_worker_id, claimed_by = claimer, attempt = r.attempt + 1,
           claimed_at = now(), started_at = CASE WHEN p_start THEN now() END,
           lease_expires_at = now() + make_interval(secs => p_lease_secs)
     WHERE r.id = ANY (picked)
    RETURNING r.*;
END;
$function$;

-- function: ops.template_artifacts_guard()
CREATE OR REPLACE FUNCTION ops.template_artifacts_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    version_status text;
BEGIN
    SELECT status INTO version_status FROM ops.template_versions
     WHERE id = CASE WHEN TG_OP = 'INSERT' THEN NEW.version_id ELSE OLD.version_id END;
    -- A draft's files may change; a deleted draft takes its files with it (status NULL).
    IF version_status IS NOT NULL AND version_status <> 'draft' THEN
        RAISE EXCEPTION 'the files of a % version are immutable', version_status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$function$;

-- function: ops.template_labels_guard()
CREATE OR REPLACE FUNCTION ops.template_labels_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ops.template_versions
                   WHERE id = NEW.version_id AND template_id = NEW.template_id AND status = 'stable') THEN
        RAISE EXCEPTION 'a label names a stable version of its template'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$function$;

-- function: ops.template_versions_guard()
CREATE OR REPLACE FUNCTION ops.template_versions_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'template version %: only drafts can be deleted', OLD.semver
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.id <> OLD.id OR NEW.template_id <> OLD.template_id OR NEW.semver <> OLD.semver
       OR NEW.digest <> OLD.digest OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'a template version''s identity and digest never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT (
           (OLD.status = 'draft' AND NEW.status = 'stable')
        OR (OLD.status = 'stable' AND NEW.status = 'deprecated')) THEN
        RAISE EXCEPTION 'illegal template version transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$function$;

-- function: ops.templates_default_guard()
CREATE OR REPLACE FUNCTION ops.templates_default_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF NEW.default_version_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM ops.template_versions
         WHERE id = NEW.default_version_id AND template_id = NEW.id AND status = 'stable') THEN
        RAISE EXCEPTION 'the default must be a stable version of this template'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$function$;

-- function: ops.update_service_workflow(bigint,text,text)
CREATE OR REPLACE FUNCTION ops.update_service_workflow(p_workflow_id bigint, p_task_queue text, p_command text)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;

-- function: ops.user_for_key(text)
CREATE OR REPLACE FUNCTION ops.user_for_key(p_fingerprint text)
 RETURNS text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT k.user_id FROM ops.user_keys k WHERE k.fingerprint = p_fingerprint
$function$;

-- function: ops.workflows_audit()
CREATE OR REPLACE FUNCTION ops.workflows_audit()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO ops.audit_log (actor, action, entity_type, entity_id, project_id, before, after)
    VALUES (ops.current_actor(), 'update', 'workflow', NEW.id::text, NEW.project_id,
            to_jsonb(OLD), to_jsonb(NEW));
    RETURN NULL;
END;
$function$;

-- function: ops.workflows_deploy_permission()
CREATE OR REPLACE FUNCTION ops.workflows_deploy_permission()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM ops.require('deploy_worker', NEW.project_id,
                        'creating workflow ' || NEW.name || ' with the deploy command');
    RETURN NEW;
END;
$function$;

-- function: ops.workflows_guard()
CREATE OR REPLACE FUNCTION ops.workflows_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

-- function: osp_metadata.check_locked_fields(bigint,bigint,jsonb)
CREATE OR REPLACE FUNCTION osp_metadata.check_locked_fields(p_service_id bigint, p_except bigint, p_content jsonb)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    gov record;
    field text;
BEGIN
    SELECT manifest_content, locked_fields INTO gov FROM osp_metadata.service_manifests
     WHERE service_id = p_service_id AND status IN ('active', 'locked') AND id <> p_except;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOREACH field IN ARRAY gov.locked_fields LOOP
        IF gov.manifest_content -> field IS DISTINCT FROM p_content -> field THEN
            RAISE EXCEPTION 'locked field `%` cannot change', field USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
END;
$function$;

-- function: osp_metadata.create_service_schema()
CREATE OR REPLACE FUNCTION osp_metadata.create_service_schema()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    -- schema_name passed the table's CHECK (^[a-z][a-z0-9_]{1,62}$); quoted all the same.
    EXECUTE format('CREATE SCHEMA %I', NEW.schema_name);
    RETURN NULL;
END;
$function$;

-- function: osp_metadata.insert_service_manifest(bigint,text,text,jsonb,text,text[])
CREATE OR REPLACE FUNCTION osp_metadata.insert_service_manifest(p_service_id bigint, p_service_name text, p_version text, p_manifest_content jsonb, p_status text DEFAULT 'active'::text, p_locked_fields text[] DEFAULT ARRAY['service_id'::text, 'schema_name'::text])
 RETURNS TABLE(manifest_id bigint)
 LANGUAGE sql
AS $function$
    INSERT INTO osp_metadata.service_manifests
        (service_id, service_name, version, manifest_content, status, locked_fields, created_by)
    VALUES (p_service_id, p_service_name, p_version, p_manifest_content, p_status, p_locked_fields,
            ops.current_actor())
    RETURNING id
$function$;

-- function: osp_metadata.service_manifests_guard()
CREATE OR REPLACE FUNCTION osp_metadata.service_manifests_guard()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'manifest % %: only drafts can be deleted', OLD.service_id, OLD.version
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN ('draft', 'active') THEN
            RAISE EXCEPTION 'a manifest is created draft or active, not %', NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.status = 'active' AND EXISTS (SELECT 1 FROM osp_metadata.service_manifests
                WHERE service_id = NEW.service_id AND status = 'locked') THEN
            RAISE EXCEPTION 'the service is locked: nothing can be activated until it is unlocked'
                USING ERRCODE = 'check_violation';
        END IF;
        PERFORM osp_metadata.check_locked_fields(NEW.service_id, -1, NEW.manifest_content);
        RETURN NEW;
    END IF;
    -- UPDATE
    IF NEW.id <> OLD.id OR NEW.service_id <> OLD.service_id OR NEW.version <> OLD.version
       OR NEW.created_at <> OLD.created_at OR NEW.created_by <> OLD.created_by THEN
        RAISE EXCEPTION 'a manifest''s identity never changes' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status <> 'draft' AND (NEW.manifest_content IS DISTINCT FROM OLD.manifest_content
                                  OR NEW.locked_fields IS DISTINCT FROM OLD.locked_fields) THEN
        RAISE EXCEPTION 'manifest % is %: its content is immutable', OLD.version, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status <> OLD.status THEN
        IF NOT EXISTS (SELECT 1 FROM osp_metadata.manifest_transitions
                       WHERE from_status = OLD.status AND to_status = NEW.status) THEN
            RAISE EXCEPTION 'illegal manifest transition: % -> %', OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        IF OLD.status = 'draft' AND NEW.status = 'active' THEN
            IF EXISTS (SELECT 1 FROM osp_metadata.service_manifests
                       WHERE service_id = NEW.service_id AND status = 'locked') THEN
                RAISE EXCEPTION 'the service is locked: nothing can be activated until it is unlocked'
                    USING ERRCODE = 'check_violation';
            END IF;
            PERFORM osp_metadata.check_locked_fields(NEW.service_id, NEW.id, NEW.manifest_content);
        END IF;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$function$;

-- function: osp_metadata.service_manifests_permission()
CREATE OR REPLACE FUNCTION osp_metadata.service_manifests_permission()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    row_ osp_metadata.service_manifests := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    project bigint;
    needed text;
BEGIN
    IF ops.is_administrator() THEN
        RETURN row_;
    END IF;
    SELECT s.project_id INTO project FROM osp_metadata.services s WHERE s.id = row_.service_id;
    IF TG_OP = 'INSERT' THEN
        needed := CASE WHEN NEW.status = 'draft' THEN 'propose_manifest' ELSE 'activate_manifest' END;
    ELSIF TG_OP = 'DELETE' THEN
        needed := 'propose_manifest';
    ELSIF NEW.status = OLD.status THEN
        needed := 'propose_manifest';
    ELSIF NEW.status = 'locked' OR OLD.status = 'locked' AND NEW.status = 'active' THEN
        needed := 'lock_manifest';
    ELSE
        needed := 'activate_manifest';
    END IF;
    PERFORM ops.require(needed, project, 'manifest ' || row_.version || ' of service ' || row_.service_id);
    RETURN row_;
END;
$function$;

-- function: osp_metadata.worker_registry_permission()
CREATE OR REPLACE FUNCTION osp_metadata.worker_registry_permission()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    project bigint;
BEGIN
    IF (NEW.deployment_status IS DISTINCT FROM OLD.deployment_status
        AND NOT (OLD.deployment_status = 'pending' AND NEW.deployment_status = 'deployed'))
       OR NEW.attempts IS DISTINCT FROM OLD.attempts OR NEW.logs IS DISTINCT FROM OLD.logs
       OR NEW.manifest_id IS DISTINCT FROM OLD.manifest_id
       OR NEW.manifest_path IS DISTINCT FROM OLD.manifest_path THEN
        SELECT s.project_id INTO project FROM osp_metadata.services s WHERE s.id = NEW.service_id;
        PERFORM ops.require('deploy_worker', project, 'deploying service ' || NEW.service_schema);
    END IF;
    RETURN NEW;
END;
$function$;
