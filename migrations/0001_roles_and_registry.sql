-- Group roles the service and auditors log in through, and the machine-client / operator registry.
-- The login roles (idservice_app, idservice_audit in the embedded default) are members of these;
-- in production the DBA grants these group roles to whichever login roles the deployment uses.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'idservice_service') THEN
    CREATE ROLE idservice_service NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'idservice_auditor') THEN
    CREATE ROLE idservice_auditor NOLOGIN;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO idservice_service, idservice_auditor;

-- Civil-status software (OAuth 2.0 client credentials with private_key_jwt, RFC 7523).
CREATE TABLE client (
  id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  name          text NOT NULL,
  public_key_pem text NOT NULL,
  cert_sha256   text NOT NULL,
  roles         text[] NOT NULL CHECK (cardinality(roles) > 0),
  jurisdiction  text NOT NULL CHECK (jurisdiction ~ '^([0-9]{3}|\*)$'),
  enabled       boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  changed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Officers and auditors (USB-token certificates); mapped by issuer+serial or certificate SHA-256.
CREATE TABLE operator (
  id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  name          text NOT NULL,
  cert_sha256   text NOT NULL UNIQUE,
  cert_issuer   text NOT NULL,
  cert_serial   text NOT NULL,
  cert_pem      text NOT NULL,
  roles         text[] NOT NULL CHECK (cardinality(roles) > 0),
  jurisdiction  text NOT NULL CHECK (jurisdiction ~ '^([0-9]{3}|\*)$'),
  enabled       boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now(),
  changed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (cert_issuer, cert_serial)
);

-- One row per client assertion accepted: a second use of the same jti is a replay.
CREATE TABLE client_assertion_jti (
  client_id   text NOT NULL,
  jti         text NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jti_expiry ON client_assertion_jti (expires_at);

-- Access tokens revoked before their expiry (logout); polled by every service process.
CREATE TABLE revoked_token (
  jti         text PRIMARY KEY,
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX revoked_token_revoked_at ON revoked_token (revoked_at);

GRANT SELECT, INSERT, UPDATE ON client, operator TO idservice_service;
GRANT SELECT, INSERT, DELETE ON client_assertion_jti, revoked_token TO idservice_service;
