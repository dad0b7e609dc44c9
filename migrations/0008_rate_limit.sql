-- Rate limits of the authentication endpoints (docs/decisions.md), shared by every service
-- process: one fixed-window counter per (scope, key, minute), bumped with an upsert. Windows
-- older than the current one are deleted by the revocation poller's periodic purge.
CREATE TABLE auth_rate_limit (
  scope         text NOT NULL CHECK (scope IN ('client-token', 'challenge', 'token')),
  key           text NOT NULL CHECK (length(key) <= 128),
  window_start  timestamptz NOT NULL,
  n             integer NOT NULL,
  PRIMARY KEY (scope, key, window_start)
);
CREATE INDEX auth_rate_limit_window ON auth_rate_limit (window_start);

GRANT SELECT, INSERT, UPDATE, DELETE ON auth_rate_limit TO idservice_service;
