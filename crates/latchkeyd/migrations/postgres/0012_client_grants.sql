-- The grants a client may use: `authorization_code` (a user's sign-in, and the refresh tokens
-- it brings) and `client_credentials` (a service account's own token, RFC 6749 §4.4),
-- space-separated. Every client registered before could sign users in, and only that.
ALTER TABLE clients ADD COLUMN grant_types TEXT NOT NULL DEFAULT 'authorization_code';
