-- Push delivery (RFC 8935): the receiver's Authorization header for its endpoint, sealed with a
-- key derived from the master key; and each outbox row's delivery attempts, so a receiver that
-- was down gets its events when it is back, with backoff in between.
ALTER TABLE ssf_streams ADD COLUMN authorization_header BLOB;
ALTER TABLE ssf_outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ssf_outbox ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
