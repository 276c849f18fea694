DROP TRIGGER service_manifests_update_depth;
DROP TRIGGER service_manifests_insert_depth;
DROP TRIGGER runs_payload_depth;
DROP TRIGGER workflows_guard;
DROP TRIGGER runs_identity_frozen;
DROP TRIGGER runs_retry_the_same_workflow;
DROP TRIGGER runs_belong_to_their_workflow;
