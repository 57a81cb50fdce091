-- A token is live when it is its session's head (`sessions.head_token_id`) and the session is
-- not revoked; a rotated token's use is its successor's issue. So a rotation writes the new
-- token and the session, and no longer rewrites the retired row: that UPDATE, which grew the
-- row and removed an entry from the one-live index, was a quarter of the rotator's time
-- (docs/BENCHMARKS.md). A family cannot hold two live tokens: a session has one head.
-- `first_used_at` is written only when a token is replayed within the grace window: the
-- window runs from its first use, which its replacement successor no longer shows.
-- The table is rebuilt once (five DROP COLUMNs would rewrite it five times), columns in order.
DROP INDEX refresh_tokens_one_live;
CREATE TABLE refresh_tokens_next (
    id                INTEGER PRIMARY KEY,
    secret_hash       BLOB NOT NULL,
    session_id        TEXT NOT NULL REFERENCES sessions (id),
    generation        BIGINT NOT NULL,
    parent_generation BIGINT,
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    issued_ip         TEXT,
    issued_user_agent TEXT,
    grace_replays     BIGINT NOT NULL DEFAULT 0,
    parent_id         BIGINT,
    first_used_at     BIGINT
);
INSERT INTO refresh_tokens_next (id, secret_hash, session_id, generation, parent_generation, issued_at,
    expires_at, issued_ip, issued_user_agent, grace_replays, parent_id, first_used_at)
SELECT id, secret_hash, session_id, generation, parent_generation, issued_at, expires_at, issued_ip,
    issued_user_agent, grace_replays, parent_id, CASE WHEN grace_replays > 0 THEN used_at END
FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_next RENAME TO refresh_tokens;
