-- Suspicion signals: a per-minute refresh counter on each session (updated in the rotation's
-- own session UPDATE, so it costs no extra write), and "this was me" acknowledgements.
ALTER TABLE sessions ADD COLUMN rate_window_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN rate_window_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE security_events ADD COLUMN acknowledged_at BIGINT;
ALTER TABLE security_events ADD COLUMN acknowledged_by TEXT;
CREATE INDEX security_events_at ON security_events (at);

-- The audit log: append-only, each record carrying the hash of the one before (see
-- store::audit). The head row holds the last sequence number and hash; taking it is what
-- serializes writers, across replicas too.
CREATE TABLE audit_log (
    seq               BIGINT PRIMARY KEY,
    at                BIGINT NOT NULL,
    actor_kind        TEXT NOT NULL,
    actor_id          TEXT,
    action            TEXT NOT NULL,
    target_user_id    TEXT,
    target_session_id TEXT,
    reason            TEXT,
    ip                TEXT,
    user_agent        TEXT,
    details           TEXT NOT NULL,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target_user_id, seq);
CREATE INDEX audit_log_actor ON audit_log (actor_id, seq);
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
-- No code path updates or deletes audit records; the database refuses it too.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
