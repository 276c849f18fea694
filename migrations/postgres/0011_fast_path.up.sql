-- The queue's fast path: fewer row versions and index writes per run, every guarantee kept.
--
-- 1. A claim that starts at once (ops.claim_and_start_runs): a worker with a free slot takes a run
--    from queued straight to running in one write. The run still passes through claimed: the
--    trigger checks both legs and records both events, so its history reads as before.
-- 2. A claim of named queues walks each queue's own claim index, never the index of every queued
--    run: a backlog in a queue nobody serves no longer slows the queues that are served. The
--    claim index is keyed on -priority so that it is the only index with the claim's order.
-- 3. run_events keeps its foreign key, checked once per event row: a statement-level check of the
--    same rule measured 8 to 16% more runs/s at 16 workers, but PostgREST embeds a run's events
--    only through a foreign key, and the SQL interface is for PostgREST too.
-- 4. runs_status_idx leaves out claimed and running runs, which are few and which the lease index
--    already finds: a claim, a start and a heartbeat no longer write into it.
-- 5. Updates of runs no longer NOTIFY ospdeck_changes: PostgreSQL commits a transaction that
--    notified under one database-wide lock, so a NOTIFY from every claim and completion made the
--    workers commit one at a time (measured: 9 500 against 15 700 runs/s at 16 workers). The
--    console reads ops.runs_change_clock() instead, which moves with every run event. Inserts
--    still notify (they are batched, and workers wake on ospdeck_runs).

-- 1 and 2 -----------------------------------------------------------------------------------------

DROP INDEX ops.runs_claim_idx;
CREATE INDEX runs_claim_idx ON ops.runs (queue, (-priority), id) WHERE status = 'queued';

CREATE FUNCTION ops.take_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer,
                              p_projects bigint[], p_start boolean)
RETURNS SETOF ops.runs
LANGUAGE plpgsql AS $$
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
$$;

CREATE OR REPLACE FUNCTION ops.claim_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer,
                                          p_projects bigint[] DEFAULT NULL)
RETURNS SETOF ops.runs
LANGUAGE sql AS $$
    SELECT * FROM ops.take_runs(p_worker_id, p_queues, p_limit, p_lease_secs, p_projects, false)
$$;

-- For a worker that runs what it claims at once: claimed and started in one write.
CREATE FUNCTION ops.claim_and_start_runs(p_worker_id text, p_queues text[], p_limit integer,
                                         p_lease_secs integer, p_projects bigint[] DEFAULT NULL)
RETURNS SETOF ops.runs
LANGUAGE sql AS $$
    SELECT * FROM ops.take_runs(p_worker_id, p_queues, p_limit, p_lease_secs, p_projects, true)
$$;

CREATE OR REPLACE FUNCTION ops.runs_check_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
$$;

-- 4 -----------------------------------------------------------------------------------------------

DROP INDEX ops.runs_status_idx;
CREATE INDEX runs_status_idx ON ops.runs (status, id) WHERE status NOT IN ('claimed', 'running');

-- 5 -----------------------------------------------------------------------------------------------

DROP TRIGGER runs_updated_notify ON ops.runs;

-- A number that changes whenever a run event is written. It says only that some run changed (a
-- member learns no more than the queue's pace), which is why it may bypass row-level security.
CREATE FUNCTION ops.runs_change_clock() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT last_value FROM ops.run_events_id_seq
$$;
