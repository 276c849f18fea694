-- Back to 0010: claims in two writes, the claim index by priority, the full status index, a NOTIFY
-- from every update of runs.

DROP FUNCTION ops.runs_change_clock();
CREATE TRIGGER runs_updated_notify AFTER UPDATE ON ops.runs
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION ops.notify_changed();

DROP INDEX ops.runs_claim_idx;
CREATE INDEX runs_claim_idx ON ops.runs (queue, priority DESC, id) WHERE status = 'queued';

DROP INDEX ops.runs_status_idx;
CREATE INDEX runs_status_idx ON ops.runs (status, id);

DROP FUNCTION ops.claim_and_start_runs(text, text[], integer, integer, bigint[]);
CREATE OR REPLACE FUNCTION ops.claim_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer, p_projects bigint[] DEFAULT NULL::bigint[])
 RETURNS SETOF ops.runs
 LANGUAGE plpgsql
AS $$
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

DROP FUNCTION ops.take_runs(text, text[], integer, integer, bigint[], boolean);

CREATE OR REPLACE FUNCTION ops.runs_check_update()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
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
