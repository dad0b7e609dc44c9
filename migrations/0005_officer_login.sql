-- Officer login (contract 3.1): single-use challenge nonces with a 5-minute lifetime.
-- Only the SHA-256 of a nonce is kept, so reading the table does not give usable nonces.
-- A nonce is consumed with DELETE ... RETURNING before the login is validated: it works once.
CREATE TABLE auth_nonce (
  nonce_sha256  text PRIMARY KEY CHECK (nonce_sha256 ~ '^[0-9a-f]{64}$'),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX auth_nonce_expiry ON auth_nonce (expires_at);

GRANT SELECT, INSERT, DELETE ON auth_nonce TO idservice_service;
