-- Back to 0010: claims in two writes, the full status index.

DROP TRIGGER runs_legal_transition;
CREATE TRIGGER runs_legal_transition BEFORE UPDATE OF status ON runs
WHEN OLD.status <> NEW.status
 AND NOT EXISTS (SELECT 1 FROM run_transitions t WHERE t.from_status = OLD.status AND t.to_status = NEW.status)
BEGIN
    SELECT RAISE(ABORT, 'illegal run transition');
END;

DROP TRIGGER runs_transition_event;
CREATE TRIGGER runs_transition_event AFTER UPDATE OF status ON runs
WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO run_events (run_id, event_type, from_status, to_status, attempt, actor, message)
    VALUES (NEW.id, 'state_change', OLD.status, NEW.status, NEW.attempt, NEW.changed_by,
            CASE WHEN NEW.status IN ('failed', 'queued', 'canceled') THEN NEW.error END);
END;

DROP INDEX runs_status_idx;
CREATE INDEX runs_status_idx ON runs (status, id);
