-- Each client may ask only for the scopes it was registered with. Third-party clients lose
-- `account` here (they had every scope before); `account` and `support` are for first-party
-- clients only, which the built-in desktop client is (`ensure_builtin` keeps it so).
ALTER TABLE clients ADD COLUMN scopes TEXT NOT NULL DEFAULT 'openid profile email offline_access';
ALTER TABLE clients ADD COLUMN first_party BIGINT NOT NULL DEFAULT 0;
UPDATE clients SET first_party = 1, scopes = 'openid profile email offline_access account support'
    WHERE builtin = 1;
