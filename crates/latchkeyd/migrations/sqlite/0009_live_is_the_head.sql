-- A token is live when it is its session's head (`sessions.head_token_id`) and the session is
-- not revoked; a rotated token's use is its successor's issue. So a rotation writes the new
-- token and the session, and no longer rewrites the retired row: that UPDATE, which grew the
-- row and removed an entry from the one-live index, was a quarter of the rotator's time
-- (docs/BENCHMARKS.md). A family cannot hold two live tokens: a session has one head.
DROP INDEX refresh_tokens_one_live;
ALTER TABLE refresh_tokens DROP COLUMN state;
ALTER TABLE refresh_tokens DROP COLUMN retired_reason;
ALTER TABLE refresh_tokens DROP COLUMN used_at;
ALTER TABLE refresh_tokens DROP COLUMN used_ip;
ALTER TABLE refresh_tokens DROP COLUMN used_user_agent;
