-- SSH public keys that name users (`ospdeck user key`, `ospdeck serve`): a key names exactly one
-- user, whose project roles then apply to the SSH session. Only the store's administrator manages
-- them (ops checks it; on SQLite whoever can write the file can anyway).
CREATE TABLE user_keys (
    -- `SHA256:` and the unpadded base64 of the digest, as `ssh-keygen -lf` prints it.
    fingerprint TEXT PRIMARY KEY CHECK (fingerprint LIKE 'SHA256:%' AND length(fingerprint) = 50),
    user_id     TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 63),
    algorithm   TEXT NOT NULL CHECK (algorithm IN ('ssh-ed25519', 'ecdsa-sha2-nistp256',
                                                   'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521')),
    public_key  TEXT NOT NULL CHECK (length(public_key) BETWEEN 1 AND 8192),
    comment     TEXT NOT NULL DEFAULT '' CHECK (length(comment) <= 1024),
    added_by    TEXT NOT NULL,
    added_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX user_keys_user_idx ON user_keys (user_id, added_at);
