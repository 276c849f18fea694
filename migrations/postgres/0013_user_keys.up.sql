-- SSH public keys that name users (`ospdeck user key`, `ospdeck serve`): a key names exactly one
-- user, whose project roles then apply to the SSH session. Only administrators manage keys: row-
-- level security is on with no policy and members hold no grant, so a member reads nothing. The
-- SSH server connects as a gateway role (ospdeck_api) and asks two things of the database through
-- SECURITY DEFINER functions: whose key a fingerprint is, and to record a session's events.
CREATE TABLE ops.user_keys (
    -- `SHA256:` and the unpadded base64 of the digest, as `ssh-keygen -lf` prints it.
    fingerprint text PRIMARY KEY CHECK (fingerprint ~ '^SHA256:[A-Za-z0-9+/]{43}$'),
    user_id     text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 63),
    algorithm   text NOT NULL CHECK (algorithm IN ('ssh-ed25519', 'ecdsa-sha2-nistp256',
                                                   'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521')),
    public_key  text NOT NULL CHECK (length(public_key) BETWEEN 1 AND 8192),
    comment     text NOT NULL DEFAULT '' CHECK (length(comment) <= 1024),
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_keys_user_idx ON ops.user_keys (user_id, added_at);

ALTER TABLE ops.user_keys ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON ops.user_keys FROM PUBLIC, ospdeck_member, ospdeck_api;

-- The gateway group may look functions up in ops even when it is granted alone.
GRANT USAGE ON SCHEMA ops TO ospdeck_api;

-- Whose key this is (NULL: nobody's). The SSH server asks before any session exists, as the
-- gateway role; nothing else of the table is revealed.
CREATE FUNCTION ops.user_for_key(p_fingerprint text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT k.user_id FROM ops.user_keys k WHERE k.fingerprint = p_fingerprint
$$;
REVOKE ALL ON FUNCTION ops.user_for_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.user_for_key(text) TO ospdeck_api;

-- One audit row for an SSH session's login, logout or refusal; its entity is the peer's address.
-- The actor is who the session is (ops.current_user_id(): the JWT subject the gateway set, else
-- the role), never an argument; an administrator's connection may name its actor
-- (ospdeck.actor), as everywhere else.
CREATE FUNCTION ops.record_session_event(p_action text, p_address text, p_detail jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    actor text := ops.current_user_id();
    event_id bigint;
BEGIN
    IF p_action IS NULL OR p_action NOT IN ('ssh.login', 'ssh.logout', 'ssh.refused') THEN
        RAISE EXCEPTION 'session event %: the action is ssh.login, ssh.logout or ssh.refused',
            coalesce(p_action, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_address IS NULL OR length(p_address) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'session event %: the address is 1 to 255 characters', p_action
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_detail IS NOT NULL AND (jsonb_typeof(p_detail) <> 'object' OR length(p_detail::text) > 4096) THEN
        RAISE EXCEPTION 'session event %: the detail is a JSON object of at most 4096 bytes', p_action
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ops.caller_is_administrator() THEN
        actor := coalesce(nullif(current_setting('ospdeck.actor', true), ''), actor);
    END IF;
    INSERT INTO ops.audit_log (actor, action, entity_type, entity_id, project_id, before, after)
    VALUES (actor, p_action, 'ssh_session', p_address, NULL, NULL, p_detail)
    RETURNING id INTO event_id;
    RETURN event_id;
END;
$$;
REVOKE ALL ON FUNCTION ops.record_session_event(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ops.record_session_event(text, text, jsonb) TO ospdeck_api;
