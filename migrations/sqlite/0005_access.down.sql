ALTER TABLE templates DROP COLUMN project_id;
ALTER TABLE projects DROP COLUMN created_by;
