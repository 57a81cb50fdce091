-- The device authorization grant (RFC 8628): a device with no usable browser asks for a code,
-- a person enters the code at /device in any browser and signs in, and the device, polling the
-- token endpoint, gets its session. Both codes are stored only as hashes.
CREATE TABLE device_authorizations (
    id                  TEXT PRIMARY KEY,
    device_code_hash    BLOB NOT NULL UNIQUE,
    -- The user code normalized (upper case, no separator) before hashing.
    user_code_hash      BLOB NOT NULL UNIQUE,
    client_id           TEXT NOT NULL,
    scope               TEXT NOT NULL,
    dpop_jkt            TEXT,
    device_name         TEXT,
    device_platform     TEXT,
    app_version         TEXT,
    -- The device that asked (and will poll), not the browser that approves.
    ip                  TEXT,
    user_agent          TEXT,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    -- RFC 8628 §3.5: the least wait between polls, raised by 5 s at each slow_down.
    interval_secs       BIGINT NOT NULL,
    polled_at           BIGINT,
    state               TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'denied')),
    -- The approval form in progress: the browser that opened it and its CSRF token.
    browser_hash        BLOB,
    csrf_hash           BLOB,
    failed_signins      BIGINT NOT NULL DEFAULT 0,
    user_id             TEXT REFERENCES users (id),
    granted_scope       TEXT,
    auth_time           BIGINT,
    approver_ip         TEXT,
    approver_user_agent TEXT
);
CREATE INDEX device_authorizations_expiry ON device_authorizations (expires_at);
