-- What an anonymous caller can make the database keep is bounded (contract 7, issue 9 item 1).
--
-- auth_source_window: one row per source address (IPv6: its /64) and UTC calendar minute,
-- counting over the three authentication endpoints: requests (the limit,
-- IDSERVICE_AUTH_SOURCE_RATE_LIMIT, is checked with one upsert before any other work),
-- `limited` (429s answered), `failures` (failed logins whose identity did not verify) and
-- `unrecorded` (those beyond IDSERVICE_AUTH_FAILURE_EVENTS_PER_MINUTE, which get no event of
-- their own). After the minute, one `auth.rate_limited` event per source counts limited +
-- unrecorded; `reported` is set in the event's transaction, and the rows are claimed with
-- FOR UPDATE SKIP LOCKED, so several processes never write it twice. Rows are deleted an hour
-- after their minute: at most one per source and minute ever exists.
--
-- auth_rate_limit keeps the per-identity limits, which now count only requests whose
-- signature verified (a client or operator id), and the per-caller limit of /v1/pins/verify.
--
-- Challenge nonces are stateless now: 32 bytes = expiry || random || HMAC (a server secret in
-- auth_secret, created by the first service process). A challenge writes nothing; only a nonce
-- presented with a valid MAC before its expiry is remembered (auth_nonce_used), until it
-- expires, to keep it single use.

CREATE TABLE auth_source_window (
  source        text NOT NULL CHECK (length(source) <= 64),
  window_start  timestamptz NOT NULL,
  requests      integer NOT NULL DEFAULT 0,
  limited       integer NOT NULL DEFAULT 0,
  failures      integer NOT NULL DEFAULT 0,
  unrecorded    integer NOT NULL DEFAULT 0,
  reported      boolean NOT NULL DEFAULT false,
  PRIMARY KEY (source, window_start)
);
CREATE INDEX auth_source_window_due ON auth_source_window (window_start) WHERE NOT reported;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_source_window TO idservice_service;

DELETE FROM auth_rate_limit;  -- minute windows of the old scopes
DO $$
DECLARE
  name text;
BEGIN
  FOR name IN SELECT conname FROM pg_constraint
               WHERE conrelid = 'public.auth_rate_limit'::regclass AND contype = 'c'
                 AND pg_get_constraintdef(oid) LIKE '%scope%'
  LOOP
    EXECUTE format('ALTER TABLE public.auth_rate_limit DROP CONSTRAINT %I', name);
  END LOOP;
END
$$;
ALTER TABLE auth_rate_limit ADD CONSTRAINT auth_rate_limit_scope_check
  CHECK (scope IN ('client', 'operator', 'verify'));

DROP TABLE auth_nonce;
CREATE TABLE auth_nonce_used (
  nonce_sha256  text PRIMARY KEY CHECK (nonce_sha256 ~ '^[0-9a-f]{64}$'),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX auth_nonce_used_expiry ON auth_nonce_used (expires_at);
GRANT SELECT, INSERT, DELETE ON auth_nonce_used TO idservice_service;

CREATE TABLE auth_secret (
  name    text PRIMARY KEY,
  secret  bytea NOT NULL CHECK (length(secret) >= 32)
);
GRANT SELECT, INSERT ON auth_secret TO idservice_service;
