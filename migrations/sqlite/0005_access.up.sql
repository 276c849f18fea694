-- Who may do what. SQLite has no users of its own: ospdeck checks the permission matrix against
-- these memberships for the acting OS user (or --as), and whoever can write the file can do
-- anything, so this is a guard for honest users, not a security boundary.

ALTER TABLE projects ADD COLUMN created_by TEXT;
-- Projects from before this migration: their creator as the audit trail recorded it, as owner.
UPDATE projects SET created_by = (
    SELECT a.actor FROM audit_log a
    WHERE a.entity_type = 'project' AND a.action = 'create' AND a.project_id = projects.id
    ORDER BY a.id LIMIT 1);
INSERT INTO project_memberships (project_id, user_id, role)
SELECT p.id, p.created_by, 'owner' FROM projects p
WHERE p.created_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM project_memberships m WHERE m.project_id = p.id AND m.role = 'owner')
ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'owner';

-- Templates belong to a project (NULL: shared, governed by administrators only).
ALTER TABLE templates ADD COLUMN project_id INTEGER REFERENCES projects (id);
