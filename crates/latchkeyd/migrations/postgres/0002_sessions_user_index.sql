-- last_used_at changes on every refresh; keeping it in the index rewrote an index entry per
-- rotation. An account has at most a few hundred sessions: sorting them by last use is cheap.
DROP INDEX sessions_user;
CREATE INDEX sessions_user ON sessions (user_id);
