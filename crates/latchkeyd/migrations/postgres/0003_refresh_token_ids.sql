-- Refresh tokens are found by row id (carried in the token) instead of by a random-keyed hash
-- index. Tokens issued before this version cannot be converted (only their hash was kept), so
-- their sessions are ended; this ran before any release.
UPDATE sessions SET revoked_at = CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT),
    revoked_by = 'system', revoke_reason = 'token_format_upgrade' WHERE revoked_at IS NULL;
DROP TABLE refresh_tokens;
CREATE TABLE refresh_tokens (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret_hash       BYTEA NOT NULL,
    session_id        TEXT NOT NULL REFERENCES sessions (id),
    generation        BIGINT NOT NULL,
    parent_generation BIGINT,
    state             TEXT NOT NULL CHECK (state IN ('active', 'rotated', 'revoked')),
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    issued_ip         TEXT,
    issued_user_agent TEXT,
    used_at           BIGINT,
    used_ip           TEXT,
    used_user_agent   TEXT,
    grace_replays     BIGINT NOT NULL DEFAULT 0,
    retired_reason    TEXT
);
CREATE UNIQUE INDEX refresh_tokens_one_live ON refresh_tokens (session_id) WHERE state = 'active';
CREATE INDEX refresh_tokens_chain ON refresh_tokens (session_id, generation);
