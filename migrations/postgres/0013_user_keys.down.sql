DROP FUNCTION ops.record_session_event(text, text, jsonb);
DROP FUNCTION ops.user_for_key(text);
REVOKE USAGE ON SCHEMA ops FROM ospdeck_api;
DROP TABLE ops.user_keys;
