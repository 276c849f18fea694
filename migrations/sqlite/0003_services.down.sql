DROP TABLE worker_deploy_attempts;
DROP TABLE worker_registry;
DROP TABLE service_manifests;
DROP TABLE manifest_transitions;
ALTER TABLE workflows DROP COLUMN service_id;
DROP TABLE services;
