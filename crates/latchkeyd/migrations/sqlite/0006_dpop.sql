-- DPoP (RFC 9449). A session (its whole refresh-token family) may be bound to the SHA-256
-- JWK thumbprint of the client's key: from then on every refresh must prove possession of it.
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;
-- `dpop_jkt` on the authorization request binds the code it yields (§10).
ALTER TABLE auth_requests ADD COLUMN dpop_jkt TEXT;
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;

-- Proof ids seen, so that a proof is accepted once, by whichever replica sees it first. The key
-- is a hash of (key thumbprint, jti); rows are pruned once their proof is too old to accept.
CREATE TABLE dpop_proofs (
    proof_hash BLOB PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expiry ON dpop_proofs (expires_at);
