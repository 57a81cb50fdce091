-- A token is live when it is its session's head (`sessions.head_token_id`) and the session is
-- not revoked; a rotated token's use is its successor's issue. So a rotation writes the new
-- token and the session, and no longer rewrites the retired row (docs/BENCHMARKS.md). A family
-- cannot hold two live tokens: a session has one head.
-- `first_used_at` is written only when a token is replayed within the grace window: the
-- window runs from its first use, which its replacement successor no longer shows.
-- Replicas still running the previous version write `state`: stop them all before upgrading.
ALTER TABLE refresh_tokens ADD COLUMN first_used_at BIGINT;
UPDATE refresh_tokens SET first_used_at = used_at WHERE grace_replays > 0;
DROP INDEX refresh_tokens_one_live;
ALTER TABLE refresh_tokens
    DROP COLUMN state,
    DROP COLUMN retired_reason,
    DROP COLUMN used_at,
    DROP COLUMN used_ip,
    DROP COLUMN used_user_agent;
