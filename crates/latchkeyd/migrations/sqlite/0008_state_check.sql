-- SQLite compiles a CHECK of the form `state IN ('active', 'rotated', 'revoked')` into a
-- temporary B-tree of the three values, built and torn down on every insert and update of a
-- token: about a tenth of the rotator's time (docs/BENCHMARKS.md). The same rule as a chain of
-- comparisons costs nothing. A CHECK cannot be altered in SQLite, so the table is rebuilt with
-- its columns in the same order.
CREATE TABLE refresh_tokens_next (
    id                INTEGER PRIMARY KEY,
    secret_hash       BLOB NOT NULL,
    session_id        TEXT NOT NULL REFERENCES sessions (id),
    generation        BIGINT NOT NULL,
    parent_generation BIGINT,
    state             TEXT NOT NULL CHECK (state = 'active' OR state = 'rotated' OR state = 'revoked'),
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    issued_ip         TEXT,
    issued_user_agent TEXT,
    used_at           BIGINT,
    used_ip           TEXT,
    used_user_agent   TEXT,
    grace_replays     BIGINT NOT NULL DEFAULT 0,
    retired_reason    TEXT,
    parent_id         BIGINT
);
INSERT INTO refresh_tokens_next SELECT * FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_next RENAME TO refresh_tokens;
CREATE UNIQUE INDEX refresh_tokens_one_live ON refresh_tokens (session_id) WHERE state = 'active';
