-- The roles ospdeck_member and ospdeck_api are cluster-wide and may serve other databases of the
-- server: they are left in place; only this database's grants, policies and functions go.
DROP POLICY IF EXISTS deploy ON osp_metadata.worker_deploy_attempts;
DROP POLICY IF EXISTS read ON osp_metadata.worker_deploy_attempts;
DROP POLICY IF EXISTS work ON osp_metadata.worker_registry;
DROP POLICY IF EXISTS creating ON osp_metadata.worker_registry;
DROP POLICY IF EXISTS read ON osp_metadata.worker_registry;
DROP POLICY IF EXISTS write ON osp_metadata.service_manifests;
DROP POLICY IF EXISTS read ON osp_metadata.service_manifests;
DROP POLICY IF EXISTS creating ON osp_metadata.services;
DROP POLICY IF EXISTS read ON osp_metadata.services;
DROP POLICY IF EXISTS pointers ON ops.template_labels;
DROP POLICY IF EXISTS read ON ops.template_labels;
DROP POLICY IF EXISTS publish ON ops.template_artifacts;
DROP POLICY IF EXISTS read ON ops.template_artifacts;
DROP POLICY IF EXISTS discard ON ops.template_versions;
DROP POLICY IF EXISTS lifecycle ON ops.template_versions;
DROP POLICY IF EXISTS publish ON ops.template_versions;
DROP POLICY IF EXISTS read ON ops.template_versions;
DROP POLICY IF EXISTS pointers ON ops.templates;
DROP POLICY IF EXISTS creating ON ops.templates;
DROP POLICY IF EXISTS read ON ops.templates;
DROP POLICY IF EXISTS write ON ops.audit_log;
DROP POLICY IF EXISTS read ON ops.audit_log;
DROP POLICY IF EXISTS write ON ops.run_artifacts;
DROP POLICY IF EXISTS read ON ops.run_artifacts;
DROP POLICY IF EXISTS write ON ops.run_logs;
DROP POLICY IF EXISTS read ON ops.run_logs;
DROP POLICY IF EXISTS write ON ops.run_events;
DROP POLICY IF EXISTS read ON ops.run_events;
DROP POLICY IF EXISTS work ON ops.runs;
DROP POLICY IF EXISTS enqueue ON ops.runs;
DROP POLICY IF EXISTS read ON ops.runs;
DROP POLICY IF EXISTS change ON ops.workflows;
DROP POLICY IF EXISTS creating ON ops.workflows;
DROP POLICY IF EXISTS read ON ops.workflows;
DROP POLICY IF EXISTS remove ON ops.project_memberships;
DROP POLICY IF EXISTS change ON ops.project_memberships;
DROP POLICY IF EXISTS add ON ops.project_memberships;
DROP POLICY IF EXISTS read ON ops.project_memberships;
DROP POLICY IF EXISTS settings ON ops.projects;
DROP POLICY IF EXISTS creating ON ops.projects;
DROP POLICY IF EXISTS read ON ops.projects;

ALTER TABLE ops.projects DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.project_memberships DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.workflows DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.runs DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.run_events DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.run_logs DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.run_artifacts DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.audit_log DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.templates DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.template_versions DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.template_artifacts DISABLE ROW LEVEL SECURITY;
ALTER TABLE ops.template_labels DISABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.services DISABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.service_manifests DISABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.worker_registry DISABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.worker_deploy_attempts DISABLE ROW LEVEL SECURITY;

REVOKE ALL ON ALL TABLES IN SCHEMA ops, osp_metadata FROM ospdeck_member;
REVOKE ALL ON SCHEMA ops, osp_metadata FROM ospdeck_member;
DO $$
BEGIN
    IF to_regclass('public._sqlx_migrations') IS NOT NULL THEN
        REVOKE ALL ON public._sqlx_migrations FROM ospdeck_member;
    END IF;
END
$$;

DROP TRIGGER IF EXISTS worker_registry_permission ON osp_metadata.worker_registry;
DROP FUNCTION IF EXISTS osp_metadata.worker_registry_permission();
DROP TRIGGER IF EXISTS audit_log_actor ON ops.audit_log;
DROP FUNCTION IF EXISTS ops.audit_log_actor();
DROP TRIGGER IF EXISTS service_manifests_permission ON osp_metadata.service_manifests;
DROP FUNCTION IF EXISTS osp_metadata.service_manifests_permission();
DROP TRIGGER IF EXISTS services_create_schema ON osp_metadata.services;
DROP FUNCTION IF EXISTS osp_metadata.create_service_schema();
ALTER TABLE ops.templates DROP COLUMN IF EXISTS project_id;
DROP TRIGGER IF EXISTS runs_check_cancel ON ops.runs;
DROP FUNCTION IF EXISTS ops.runs_check_cancel();
DROP TRIGGER IF EXISTS projects_first_owner ON ops.projects;
DROP FUNCTION IF EXISTS ops.projects_first_owner();
DROP TRIGGER IF EXISTS projects_creator ON ops.projects;
DROP FUNCTION IF EXISTS ops.projects_creator();
ALTER TABLE ops.projects DROP COLUMN IF EXISTS created_by;
DROP FUNCTION IF EXISTS ops.ensure_member_login(text);
DROP FUNCTION IF EXISTS ops.require(text, bigint, text);
DROP FUNCTION IF EXISTS ops.current_user_role(bigint);
DROP FUNCTION IF EXISTS ops.may(text, bigint);
DROP FUNCTION IF EXISTS ops.projects_where(text);
DROP FUNCTION IF EXISTS ops.is_administrator();
DROP FUNCTION IF EXISTS ops.current_user_id();
DROP FUNCTION IF EXISTS ops.role_rank(text);
DROP TABLE IF EXISTS ops.permissions;

DROP FUNCTION IF EXISTS ops.claim_runs(text, text[], integer, integer, bigint[]);
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
