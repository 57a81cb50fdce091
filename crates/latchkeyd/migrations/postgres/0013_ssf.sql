-- Shared Signals (SSF 1.0) streams and their outbox. A stream belongs to the service account
-- (client) that created it. Every session revocation is written as one event, and one outbox
-- row per stream that wants it, in the revoking transaction: an event waits here until its
-- receiver acknowledges it or it expires, across restarts and replicas.
CREATE TABLE ssf_streams (
    id               TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL,
    delivery_method  TEXT NOT NULL,
    endpoint_url     TEXT,
    events_requested TEXT NOT NULL,
    description      TEXT,
    status           TEXT NOT NULL CHECK (status IN ('enabled', 'paused', 'disabled')),
    status_reason    TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX ssf_streams_client ON ssf_streams (client_id);
CREATE TABLE ssf_events (
    id      TEXT PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE ssf_outbox (
    stream_id  TEXT NOT NULL REFERENCES ssf_streams (id) ON DELETE CASCADE,
    jti        TEXT NOT NULL,
    event_id   TEXT NOT NULL REFERENCES ssf_events (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (stream_id, jti)
);
CREATE INDEX ssf_outbox_event ON ssf_outbox (event_id);
