-- Certificates behind live officer access tokens that name an OCSP responder (contract 3.3:
-- revoking a certificate stops its tokens within 60 s, also when only OCSP knows). Every
-- service process re-asks the responder about the rows due (claimed with SKIP LOCKED, so the
-- work is shared) and reads back which certificates must stop.
CREATE TABLE officer_live_cert (
  cert_sha256   text PRIMARY KEY CHECK (cert_sha256 ~ '^[0-9a-f]{64}$'),
  cert_der      bytea NOT NULL,
  live_until    timestamptz NOT NULL,  -- expiry of the newest access token bound to it
  last_good_at  timestamptz NOT NULL,  -- last time its status was confirmed (login or re-check)
  checked_at    timestamptz,           -- last re-check claimed
  revoked_at    timestamptz            -- a verified 'revoked' was seen
);
CREATE INDEX officer_live_cert_live ON officer_live_cert (live_until);

GRANT SELECT, INSERT, UPDATE, DELETE ON officer_live_cert TO idservice_service;
