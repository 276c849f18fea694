-- Who may do what, enforced by the database itself: one login role per member (all of them in the
-- group role ospdeck_member), project memberships as the source of authority, and row-level
-- security policies that apply the permission matrix of domain::permission. psql, PostgREST and
-- ospdeck meet the same rules. Administrators (superusers, roles with BYPASSRLS such as Supabase's
-- service_role, and the owner of these tables) are not subject to row-level security.

-- Roles are cluster-wide: several databases of one server share them, so create them once and
-- tolerate another database's migration creating them at the same moment.
DO $$
BEGIN
    BEGIN
        CREATE ROLE ospdeck_member NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    -- Login roles that an API gateway (PostgREST, Supabase's authenticator) connects as after it
    -- has verified a JWT: for sessions of these roles the JWT subject is the identity. For any other
    -- role a JWT claim is ignored, so nobody becomes someone else by setting one.
    BEGIN
        CREATE ROLE ospdeck_api NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;

-- The matrix, as domain::permission::Permission::least_role has it (a test compares the two).
CREATE TABLE ops.permissions (
    permission text PRIMARY KEY,
    least_role text NOT NULL CHECK (least_role IN ('viewer', 'developer', 'admin', 'owner'))
);
INSERT INTO ops.permissions (permission, least_role) VALUES
    ('read', 'viewer'),
    ('enqueue_run', 'developer'), ('create_workflow', 'developer'), ('propose_manifest', 'developer'),
    ('publish_draft_template', 'developer'), ('claim_and_finish_runs', 'developer'),
    ('activate_manifest', 'admin'), ('deploy_worker', 'admin'), ('promote_template', 'admin'),
    ('deprecate_template', 'admin'), ('move_pointers', 'admin'), ('cancel_any_run', 'admin'),
    ('lock_manifest', 'owner'), ('manage_members', 'owner'), ('manage_project', 'owner');

CREATE FUNCTION ops.role_rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_role WHEN 'viewer' THEN 1 WHEN 'developer' THEN 2 WHEN 'admin' THEN 3
                       WHEN 'owner' THEN 4 END
$$;

-- Who is asking: the role the session logged in as, or for a gateway session (ospdeck_api) the
-- JWT subject. session_user rather than current_user, so that the answer is the same inside the
-- SECURITY DEFINER helpers below as outside them.
CREATE FUNCTION ops.current_user_id() RETURNS text
LANGUAGE plpgsql STABLE AS $$
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
$$;

-- Row-level security does not apply to the current role: ops checks are skipped for it too.
CREATE FUNCTION ops.is_administrator() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_roles r
                   WHERE r.rolname = current_user AND (r.rolsuper OR r.rolbypassrls))
        OR pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = 'ops.runs'::regclass),
                       'USAGE')
$$;

-- The projects in which the caller holds a permission. SECURITY DEFINER so that policies on
-- project_memberships can use it without recursing into their own table; the identity is taken
-- from the session, never from an argument.
CREATE FUNCTION ops.projects_where(p_permission text) RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(m.project_id), '{}')
    FROM ops.project_memberships m
    JOIN ops.permissions p ON p.permission = p_permission
    WHERE m.user_id = ops.current_user_id() AND ops.role_rank(m.role) >= ops.role_rank(p.least_role)
$$;

CREATE FUNCTION ops.may(p_permission text, p_project_id bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM ops.project_memberships m
        JOIN ops.permissions p ON p.permission = p_permission
        WHERE m.project_id = p_project_id AND m.user_id = ops.current_user_id()
          AND ops.role_rank(m.role) >= ops.role_rank(p.least_role))
$$;

-- Seed 004's helper: the caller's role in a project, or NULL.
CREATE FUNCTION ops.current_user_role(p_project_id bigint) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.role FROM ops.project_memberships m
    WHERE m.project_id = p_project_id AND m.user_id = ops.current_user_id()
$$;

REVOKE ALL ON FUNCTION ops.projects_where(text), ops.may(text, bigint), ops.current_user_role(bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.projects_where(text), ops.may(text, bigint), ops.current_user_role(bigint)
    TO ospdeck_member;

-- Refuses with the one SQLSTATE both stores map to "permission denied".
CREATE FUNCTION ops.require(p_permission text, p_project_id bigint, p_what text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT ops.is_administrator() AND NOT coalesce(ops.may(p_permission, p_project_id), false) THEN
        RAISE EXCEPTION 'permission denied: % needs permission % in project %', p_what, p_permission,
            p_project_id USING ERRCODE = 'insufficient_privilege';
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Projects: whoever creates one becomes its owner.
-- ---------------------------------------------------------------------------------------------

ALTER TABLE ops.projects ADD COLUMN created_by text;
-- Projects from before this migration: their creator as the audit trail recorded it.
UPDATE ops.projects p SET created_by = a.actor
FROM ops.audit_log a
WHERE a.entity_type = 'project' AND a.action = 'create' AND a.project_id = p.id;
INSERT INTO ops.project_memberships (project_id, user_id, role)
SELECT p.id, p.created_by, 'owner' FROM ops.projects p
WHERE p.created_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ops.project_memberships m WHERE m.project_id = p.id AND m.role = 'owner')
ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'owner';

-- A member cannot name someone else as the creator; an administrator may create for someone.
CREATE FUNCTION ops.projects_creator() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.created_by IS NULL OR NOT ops.is_administrator() THEN
        NEW.created_by := ops.current_user_id();
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER projects_creator BEFORE INSERT ON ops.projects
    FOR EACH ROW EXECUTE FUNCTION ops.projects_creator();

CREATE FUNCTION ops.projects_first_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO ops.project_memberships (project_id, user_id, role)
    VALUES (NEW.id, NEW.created_by, 'owner')
    ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'owner';
    RETURN NULL;
END;
$$;
CREATE TRIGGER projects_first_owner AFTER INSERT ON ops.projects
    FOR EACH ROW EXECUTE FUNCTION ops.projects_first_owner();

-- ---------------------------------------------------------------------------------------------
-- Runs: cancel is an admin's act even though claiming and finishing are a developer's.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION ops.runs_check_cancel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ops.require('cancel_any_run', NEW.project_id, 'canceling run ' || NEW.id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER runs_check_cancel BEFORE UPDATE ON ops.runs FOR EACH ROW
    WHEN ((OLD.status IN ('queued', 'claimed') AND NEW.status = 'canceled')
          OR (NEW.cancel_requested AND NOT OLD.cancel_requested))
    EXECUTE FUNCTION ops.runs_check_cancel();

-- A worker claims only in the projects it may work in. Row-level security already narrows a
-- member's claims; the scope is for an administrator's connection acting for a member.
DROP FUNCTION ops.claim_runs(text, text[], integer, integer);
CREATE FUNCTION ops.claim_runs(p_worker_id text, p_queues text[], p_limit integer, p_lease_secs integer,
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

-- ---------------------------------------------------------------------------------------------
-- Templates belong to a project (NULL: shared, governed by administrators only).
-- ---------------------------------------------------------------------------------------------

ALTER TABLE ops.templates ADD COLUMN project_id bigint REFERENCES ops.projects (id);

-- ---------------------------------------------------------------------------------------------
-- Services: the database creates a service's schema when its row is inserted, so a member who may
-- create services needs no CREATE privilege on the database.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION osp_metadata.create_service_schema() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- schema_name passed the table's CHECK (^[a-z][a-z0-9_]{1,62}$); quoted all the same.
    EXECUTE format('CREATE SCHEMA %I', NEW.schema_name);
    RETURN NULL;
END;
$$;
CREATE TRIGGER services_create_schema AFTER INSERT ON osp_metadata.services
    FOR EACH ROW EXECUTE FUNCTION osp_metadata.create_service_schema();

-- Manifest transitions carry different permissions: propose (draft), activate, lock and unlock.
CREATE FUNCTION osp_metadata.service_manifests_permission() RETURNS trigger
LANGUAGE plpgsql AS $$
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
$$;
CREATE TRIGGER service_manifests_permission BEFORE INSERT OR UPDATE OR DELETE ON osp_metadata.service_manifests
    FOR EACH ROW EXECUTE FUNCTION osp_metadata.service_manifests_permission();

-- A heartbeat (and the first one's pending -> deployed) is a service worker's; any other change
-- of the registry row is deploying.
CREATE FUNCTION osp_metadata.worker_registry_permission() RETURNS trigger
LANGUAGE plpgsql AS $$
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
$$;
CREATE TRIGGER worker_registry_permission BEFORE UPDATE ON osp_metadata.worker_registry
    FOR EACH ROW EXECUTE FUNCTION osp_metadata.worker_registry_permission();

-- ---------------------------------------------------------------------------------------------
-- The audit trail: a member's rows carry the member's own identity, whatever the writer claims.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION ops.audit_log_actor() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ops.is_administrator() THEN
        NEW.actor := ops.current_user_id();
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_actor BEFORE INSERT ON ops.audit_log
    FOR EACH ROW EXECUTE FUNCTION ops.audit_log_actor();

-- A login role for a member, in ospdeck_member; needs CREATEROLE (an administrator's call).
-- Answers whether the role was created (false: it existed and was only added to the group).
CREATE FUNCTION ops.ensure_member_login(p_user text) RETURNS boolean
LANGUAGE plpgsql AS $$
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
$$;
REVOKE ALL ON FUNCTION ops.ensure_member_login(text) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Grants: what a member's role may touch at all; the policies below narrow it to rows.
-- ---------------------------------------------------------------------------------------------

GRANT USAGE ON SCHEMA ops, osp_metadata TO ospdeck_member;
-- ospdeck checks that the store is migrated before it acts (sqlx keeps the list in public;
-- SQL applied by other tools has no such table).
DO $$
BEGIN
    IF to_regclass('public._sqlx_migrations') IS NOT NULL THEN
        GRANT SELECT ON public._sqlx_migrations TO ospdeck_member;
    END IF;
END
$$;
GRANT SELECT ON ALL TABLES IN SCHEMA ops, osp_metadata TO ospdeck_member;
GRANT INSERT, UPDATE ON ops.projects, ops.workflows, ops.runs, ops.templates,
    osp_metadata.worker_registry TO ospdeck_member;
GRANT INSERT, UPDATE, DELETE ON ops.project_memberships, ops.template_versions, ops.template_labels,
    osp_metadata.service_manifests TO ospdeck_member;
GRANT INSERT ON ops.run_events, ops.run_logs, ops.run_artifacts, ops.audit_log,
    ops.template_artifacts, osp_metadata.services, osp_metadata.worker_deploy_attempts
    TO ospdeck_member;

ALTER TABLE ops.projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.project_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.workflows ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.run_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.run_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.run_artifacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.template_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.template_artifacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE ops.template_labels ENABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.services ENABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.service_manifests ENABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.worker_registry ENABLE ROW LEVEL SECURITY;
ALTER TABLE osp_metadata.worker_deploy_attempts ENABLE ROW LEVEL SECURITY;

-- `(SELECT ops.projects_where(…))` is evaluated once per statement (an init plan), not per row.

CREATE POLICY read ON ops.projects FOR SELECT
    USING (id = ANY ((SELECT ops.projects_where('read'))::bigint[])
           -- INSERT … RETURNING checks visibility before the owner row exists.
           OR created_by = (SELECT ops.current_user_id()));
CREATE POLICY creating ON ops.projects FOR INSERT WITH CHECK (true);
CREATE POLICY settings ON ops.projects FOR UPDATE
    USING (id = ANY ((SELECT ops.projects_where('manage_project'))::bigint[]));

CREATE POLICY read ON ops.project_memberships FOR SELECT
    USING (project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));
CREATE POLICY add ON ops.project_memberships FOR INSERT
    WITH CHECK (project_id = ANY ((SELECT ops.projects_where('manage_members'))::bigint[]));
CREATE POLICY change ON ops.project_memberships FOR UPDATE
    USING (project_id = ANY ((SELECT ops.projects_where('manage_members'))::bigint[]));
CREATE POLICY remove ON ops.project_memberships FOR DELETE
    USING (project_id = ANY ((SELECT ops.projects_where('manage_members'))::bigint[]));

CREATE POLICY read ON ops.workflows FOR SELECT
    USING (project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));
CREATE POLICY creating ON ops.workflows FOR INSERT
    WITH CHECK (project_id = ANY ((SELECT ops.projects_where('create_workflow'))::bigint[]));
CREATE POLICY change ON ops.workflows FOR UPDATE
    USING (project_id = ANY ((SELECT ops.projects_where('create_workflow'))::bigint[]));

CREATE POLICY read ON ops.runs FOR SELECT
    USING (project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));
-- The built-in deploy workflow launches workers: queuing it is deploying.
CREATE POLICY enqueue ON ops.runs FOR INSERT
    WITH CHECK (project_id = ANY ((SELECT ops.projects_where('enqueue_run'))::bigint[])
                AND (project_id = ANY ((SELECT ops.projects_where('deploy_worker'))::bigint[])
                     OR NOT EXISTS (SELECT 1 FROM ops.workflows w
                                    WHERE w.id = workflow_id AND w.command = 'ospdeck:deploy-service')));
CREATE POLICY work ON ops.runs FOR UPDATE
    USING (project_id = ANY ((SELECT ops.projects_where('claim_and_finish_runs'))::bigint[]));

-- A child row is its run's: EXISTS with the run's key is one index probe per row (an IN list
-- would hash every visible run on every statement).
CREATE POLICY read ON ops.run_events FOR SELECT
    USING (EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = run_events.run_id));
CREATE POLICY write ON ops.run_events FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = run_events.run_id
                        AND r.project_id = ANY ((SELECT ops.projects_where('enqueue_run'))::bigint[])));
CREATE POLICY read ON ops.run_logs FOR SELECT
    USING (EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = run_logs.run_id));
CREATE POLICY write ON ops.run_logs FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = run_logs.run_id
                        AND r.project_id = ANY ((SELECT ops.projects_where('claim_and_finish_runs'))::bigint[])));
CREATE POLICY read ON ops.run_artifacts FOR SELECT
    USING (EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = run_artifacts.run_id));
CREATE POLICY write ON ops.run_artifacts FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM ops.runs r WHERE r.id = run_artifacts.run_id
                        AND r.project_id = ANY ((SELECT ops.projects_where('claim_and_finish_runs'))::bigint[])));

CREATE POLICY read ON ops.audit_log FOR SELECT
    USING (project_id IS NULL OR project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));
CREATE POLICY write ON ops.audit_log FOR INSERT
    WITH CHECK (project_id = ANY ((SELECT ops.projects_where('enqueue_run'))::bigint[]));

CREATE POLICY read ON ops.templates FOR SELECT
    USING (project_id IS NULL OR project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));
CREATE POLICY creating ON ops.templates FOR INSERT
    WITH CHECK (project_id = ANY ((SELECT ops.projects_where('publish_draft_template'))::bigint[]));
CREATE POLICY pointers ON ops.templates FOR UPDATE
    USING (project_id = ANY ((SELECT ops.projects_where('move_pointers'))::bigint[]));

CREATE POLICY read ON ops.template_versions FOR SELECT
    USING (EXISTS (SELECT 1 FROM ops.templates t WHERE t.id = template_versions.template_id));
CREATE POLICY publish ON ops.template_versions FOR INSERT
    WITH CHECK (status = 'draft' AND EXISTS (SELECT 1 FROM ops.templates t WHERE t.id = template_versions.template_id AND t.project_id = ANY ((SELECT ops.projects_where('publish_draft_template'))::bigint[])));
CREATE POLICY lifecycle ON ops.template_versions FOR UPDATE
    USING (EXISTS (SELECT 1 FROM ops.templates t WHERE t.id = template_versions.template_id AND t.project_id = ANY ((SELECT ops.projects_where('promote_template'))::bigint[])))
    WITH CHECK (status <> 'deprecated' OR EXISTS (SELECT 1 FROM ops.templates t WHERE t.id = template_versions.template_id AND t.project_id = ANY ((SELECT ops.projects_where('deprecate_template'))::bigint[])));
CREATE POLICY discard ON ops.template_versions FOR DELETE
    USING (EXISTS (SELECT 1 FROM ops.templates t WHERE t.id = template_versions.template_id AND t.project_id = ANY ((SELECT ops.projects_where('publish_draft_template'))::bigint[])));

CREATE POLICY read ON ops.template_artifacts FOR SELECT
    USING (EXISTS (SELECT 1 FROM ops.template_versions v WHERE v.id = template_artifacts.version_id));
CREATE POLICY publish ON ops.template_artifacts FOR INSERT
    WITH CHECK (EXISTS (
        SELECT 1 FROM ops.template_versions v JOIN ops.templates t ON t.id = v.template_id
        WHERE v.id = template_artifacts.version_id
          AND t.project_id = ANY ((SELECT ops.projects_where('publish_draft_template'))::bigint[])));

CREATE POLICY read ON ops.template_labels FOR SELECT
    USING (EXISTS (SELECT 1 FROM ops.templates t WHERE t.id = template_labels.template_id));
CREATE POLICY pointers ON ops.template_labels FOR ALL
    USING (EXISTS (SELECT 1 FROM ops.templates t WHERE t.id = template_labels.template_id AND t.project_id = ANY ((SELECT ops.projects_where('move_pointers'))::bigint[])));

CREATE POLICY read ON osp_metadata.services FOR SELECT
    USING (project_id = ANY ((SELECT ops.projects_where('read'))::bigint[]));
-- A new service activates its first manifest and queues its worker's deployment.
CREATE POLICY creating ON osp_metadata.services FOR INSERT
    WITH CHECK (project_id = ANY ((SELECT ops.projects_where('activate_manifest'))::bigint[])
                AND project_id = ANY ((SELECT ops.projects_where('deploy_worker'))::bigint[]));

-- Which manifest transition needs which permission is the trigger's business; rows are the
-- service's project's.
CREATE POLICY read ON osp_metadata.service_manifests FOR SELECT
    USING (EXISTS (SELECT 1 FROM osp_metadata.services s WHERE s.id = service_manifests.service_id));
CREATE POLICY write ON osp_metadata.service_manifests FOR ALL
    USING (EXISTS (SELECT 1 FROM osp_metadata.services s WHERE s.id = service_manifests.service_id AND s.project_id = ANY ((SELECT ops.projects_where('propose_manifest'))::bigint[])));

CREATE POLICY read ON osp_metadata.worker_registry FOR SELECT
    USING (EXISTS (SELECT 1 FROM osp_metadata.services s WHERE s.id = worker_registry.service_id));
CREATE POLICY creating ON osp_metadata.worker_registry FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM osp_metadata.services s WHERE s.id = worker_registry.service_id AND s.project_id = ANY ((SELECT ops.projects_where('deploy_worker'))::bigint[])));
-- Service workers heartbeat here (developer); the trigger below keeps deploying an admin's.
CREATE POLICY work ON osp_metadata.worker_registry FOR UPDATE
    USING (EXISTS (SELECT 1 FROM osp_metadata.services s WHERE s.id = worker_registry.service_id AND s.project_id = ANY ((SELECT ops.projects_where('claim_and_finish_runs'))::bigint[])));

CREATE POLICY read ON osp_metadata.worker_deploy_attempts FOR SELECT
    USING (EXISTS (SELECT 1 FROM osp_metadata.worker_registry r
                   WHERE r.id = worker_deploy_attempts.registry_id));
CREATE POLICY deploy ON osp_metadata.worker_deploy_attempts FOR INSERT
    WITH CHECK (EXISTS (
        SELECT 1 FROM osp_metadata.worker_registry r JOIN osp_metadata.services s ON s.id = r.service_id
        WHERE r.id = worker_deploy_attempts.registry_id
          AND s.project_id = ANY ((SELECT ops.projects_where('deploy_worker'))::bigint[])));
