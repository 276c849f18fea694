-- Data integrity that PostgreSQL enforces against hostile members (issue 11), for every writer of
-- the file: SQLite has no roles, so what is a permission there is ospdeck's, but what keeps the
-- data whole is the file's own.

-- A run is its workflow's: in its workflow's project, on its workflow's queue when queued; a
-- retry retries a run of the same workflow.
CREATE TRIGGER runs_belong_to_their_workflow BEFORE INSERT ON runs
WHEN NOT EXISTS (SELECT 1 FROM workflows w
                 WHERE w.id = NEW.workflow_id AND w.project_id = NEW.project_id AND w.task_queue = NEW.queue)
BEGIN
    SELECT RAISE(ABORT, 'run rule: a run takes its workflow''s project and queue');
END;

CREATE TRIGGER runs_retry_the_same_workflow BEFORE INSERT ON runs
WHEN NEW.retry_of IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = NEW.retry_of AND r.workflow_id = NEW.workflow_id)
BEGIN
    SELECT RAISE(ABORT, 'run rule: a retry retries a run of the same workflow');
END;

-- `UPDATE OF`: the queue's own statements never set these columns, so they never fire this.
CREATE TRIGGER runs_identity_frozen
BEFORE UPDATE OF payload, project_id, workflow_id, queue, retry_of, created_at ON runs
WHEN NEW.payload IS NOT OLD.payload OR NEW.project_id IS NOT OLD.project_id
  OR NEW.workflow_id IS NOT OLD.workflow_id OR NEW.queue IS NOT OLD.queue
  OR NEW.retry_of IS NOT OLD.retry_of OR NEW.created_at IS NOT OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'run rule: a run''s payload, project, workflow, queue, retry_of and created_at never change once it is queued');
END;

-- A workflow stays in its project (its runs with it). The built-in deploy workflow launches
-- workers: it keeps its command, type and queue, and no workflow may become it.
CREATE TRIGGER workflows_guard BEFORE UPDATE ON workflows
BEGIN
    SELECT RAISE(ABORT, 'workflow rule: a workflow never moves to another project')
    WHERE NEW.project_id IS NOT OLD.project_id;
    SELECT RAISE(ABORT, 'workflow rule: the built-in deploy workflow keeps its command, type and queue')
    WHERE OLD.command = 'ospdeck:deploy-service'
      AND (NEW.command IS NOT OLD.command OR NEW.workflow_type IS NOT OLD.workflow_type
           OR NEW.task_queue IS NOT OLD.task_queue);
    SELECT RAISE(ABORT, 'workflow rule: no workflow may become the built-in deploy workflow')
    WHERE NEW.command = 'ospdeck:deploy-service' AND OLD.command IS NOT 'ospdeck:deploy-service';
END;

-- JSON nesting: nothing deeper than domain::json::MAX_JSON_DEPTH (64 arrays/objects) is stored.
-- Text with at most 64 brackets cannot nest deeper, so ordinary payloads cost one pass of
-- replace(); only the rest walk json_tree, following parent links level by level.
CREATE TRIGGER runs_payload_depth BEFORE INSERT ON runs
WHEN length(NEW.payload) - length(replace(replace(NEW.payload, '[', ''), '{', '')) > 64
BEGIN
    SELECT RAISE(ABORT, 'run rule: a payload is nested at most 64 arrays and objects deep')
    WHERE EXISTS (
        WITH RECURSIVE
            node (id, parent) AS MATERIALIZED (
                SELECT id, parent FROM json_tree(NEW.payload) WHERE type IN ('array', 'object')),
            walk (id, depth) AS (
                SELECT id, 1 FROM node WHERE parent IS NULL
                UNION ALL
                SELECT node.id, walk.depth + 1 FROM walk JOIN node ON node.parent = walk.id
                WHERE walk.depth <= 64)
        SELECT 1 FROM walk WHERE depth > 64);
END;

CREATE TRIGGER service_manifests_insert_depth BEFORE INSERT ON service_manifests
WHEN length(NEW.manifest_content)
     - length(replace(replace(NEW.manifest_content, '[', ''), '{', '')) > 64
BEGIN
    SELECT RAISE(ABORT, 'manifest rule: a manifest is nested at most 64 arrays and objects deep')
    WHERE EXISTS (
        WITH RECURSIVE
            node (id, parent) AS MATERIALIZED (
                SELECT id, parent FROM json_tree(NEW.manifest_content) WHERE type IN ('array', 'object')),
            walk (id, depth) AS (
                SELECT id, 1 FROM node WHERE parent IS NULL
                UNION ALL
                SELECT node.id, walk.depth + 1 FROM walk JOIN node ON node.parent = walk.id
                WHERE walk.depth <= 64)
        SELECT 1 FROM walk WHERE depth > 64);
END;

CREATE TRIGGER service_manifests_update_depth BEFORE UPDATE OF manifest_content ON service_manifests
WHEN length(NEW.manifest_content)
     - length(replace(replace(NEW.manifest_content, '[', ''), '{', '')) > 64
BEGIN
    SELECT RAISE(ABORT, 'manifest rule: a manifest is nested at most 64 arrays and objects deep')
    WHERE EXISTS (
        WITH RECURSIVE
            node (id, parent) AS MATERIALIZED (
                SELECT id, parent FROM json_tree(NEW.manifest_content) WHERE type IN ('array', 'object')),
            walk (id, depth) AS (
                SELECT id, 1 FROM node WHERE parent IS NULL
                UNION ALL
                SELECT node.id, walk.depth + 1 FROM walk JOIN node ON node.parent = walk.id
                WHERE walk.depth <= 64)
        SELECT 1 FROM walk WHERE depth > 64);
END;
