-- The queue's fast path (as migrations/postgres/0011): a claim that starts at once takes a run
-- from queued straight to running in one write. The run still passes through claimed: the move
-- is legal only as a claim (the next attempt, a worker, both times set) and is recorded as its
-- two legs. runs_status_idx leaves out claimed and running runs, which the lease index finds.

DROP TRIGGER runs_legal_transition;
CREATE TRIGGER runs_legal_transition BEFORE UPDATE OF status ON runs
WHEN OLD.status <> NEW.status
 AND NOT EXISTS (SELECT 1 FROM run_transitions t WHERE t.from_status = OLD.status AND t.to_status = NEW.status)
 AND NOT (OLD.status = 'queued' AND NEW.status = 'running' AND NEW.attempt = OLD.attempt + 1
          AND NEW.worker_id IS NOT NULL AND NEW.claimed_at IS NOT NULL AND NEW.started_at IS NOT NULL)
BEGIN
    SELECT RAISE(ABORT, 'illegal run transition');
END;

DROP TRIGGER runs_transition_event;
CREATE TRIGGER runs_transition_event AFTER UPDATE OF status ON runs
WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    SELECT NEW.id, 'state_change', 'queued', 'claimed', NEW.attempt, NEW.changed_by, NULL
    WHERE OLD.status = 'queued' AND NEW.status = 'running';
    INSERT INTO run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    VALUES (NEW.id, 'state_change',
            CASE WHEN OLD.status = 'queued' AND NEW.status = 'running' THEN 'claimed' ELSE OLD.status END,
            NEW.status, NEW.attempt, NEW.changed_by,
            CASE WHEN NEW.status IN ('failed', 'queued', 'canceled') THEN NEW.error END);
END;

DROP INDEX runs_status_idx;
CREATE INDEX runs_status_idx ON runs (status, id) WHERE status NOT IN ('claimed', 'running');
