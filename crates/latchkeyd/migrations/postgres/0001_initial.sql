-- Latchkey schema. Times are Unix milliseconds (BIGINT) so that SQLite and PostgreSQL store
-- them alike and the server's clock stays the only source of "now". Secrets (refresh tokens,
-- authorization codes, client secrets, CSRF tokens) are stored only as SHA-256 hashes; signing
-- keys only encrypted with the master key.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'support')),
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('public', 'confidential')),
    secret_hash   BYTEA,
    redirect_uris TEXT NOT NULL,
    builtin       BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

-- A sign-in form in progress: the validated authorization request, bound to the browser.
CREATE TABLE auth_requests (
    id              TEXT PRIMARY KEY,
    browser_hash    BYTEA NOT NULL,
    csrf_hash       BYTEA NOT NULL,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    state           TEXT,
    nonce           TEXT,
    code_challenge  TEXT NOT NULL,
    device_name     TEXT,
    device_platform TEXT,
    app_version     TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX auth_requests_expiry ON auth_requests (expires_at);

CREATE TABLE auth_codes (
    code_hash       BYTEA PRIMARY KEY,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id),
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT NOT NULL,
    device_name     TEXT,
    device_platform TEXT,
    app_version     TEXT,
    auth_time       BIGINT NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    redeemed_at     BIGINT,
    session_id      TEXT
);
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

-- One sign-in on one device: the session and its refresh-token family are the same thing.
CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    device_name      TEXT,
    device_platform  TEXT,
    app_version      TEXT,
    auth_time        BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    last_used_at     BIGINT NOT NULL,
    first_ip         TEXT,
    first_user_agent TEXT,
    last_ip          TEXT,
    last_user_agent  TEXT,
    generation       BIGINT NOT NULL,
    revoked_at       BIGINT,
    revoked_by       TEXT,
    revoke_reason    TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, last_used_at);

CREATE TABLE refresh_tokens (
    token_hash        BYTEA PRIMARY KEY,
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
-- The family invariant, enforced by the database itself: at most one live token per family.
CREATE UNIQUE INDEX refresh_tokens_one_live ON refresh_tokens (session_id) WHERE state = 'active';
CREATE INDEX refresh_tokens_chain ON refresh_tokens (session_id, generation);

CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE security_events (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    user_id    TEXT,
    session_id TEXT,
    ip         TEXT,
    user_agent TEXT,
    details    TEXT NOT NULL
);
CREATE INDEX security_events_user ON security_events (user_id, at);
CREATE INDEX security_events_session ON security_events (session_id, at);

CREATE TABLE signin_failures (
    subject TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX signin_failures_subject ON signin_failures (subject, at);
