"""SQL of officer login: challenge nonces and the operator registry."""

# Stateless nonces (auth/challenge.py): only a presented, authentic, unexpired one is kept,
# until it expires, so that it works once.
USE_NONCE = """
INSERT INTO auth_nonce_used (nonce_sha256, expires_at) VALUES ($1, $2)
ON CONFLICT DO NOTHING RETURNING 1
"""

PURGE_USED_NONCES = "DELETE FROM auth_nonce_used WHERE expires_at < now() - interval '1 minute'"

# The nonces' HMAC key: the first process creates it, every process reads the same one.
ENSURE_SECRET = "INSERT INTO auth_secret (name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING"

GET_SECRET = "SELECT secret FROM auth_secret WHERE name = $1"

FIND_OPERATOR = """
SELECT id, name, roles, jurisdiction, enabled FROM operator
WHERE cert_sha256 = $1 OR (cert_issuer = $2 AND cert_serial = $3)
ORDER BY cert_sha256 = $1 DESC
LIMIT 1
"""

INSERT_OPERATOR = """
INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, cert_pem, roles,
                      jurisdiction, org_code, org_name, system)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""

LIST_OPERATORS = """
SELECT id, name, roles, jurisdiction, enabled, cert_sha256, cert_issuer, cert_serial, created_at,
       org_code, org_name, system
FROM operator ORDER BY id
"""

# id -> display name, for the audit pages (auth/directory.py).
OPERATOR_NAMES = "SELECT id, name FROM operator"

DISABLE_OPERATOR = """
UPDATE operator SET enabled = false, changed_at = clock_timestamp() WHERE id = $1 RETURNING id
"""

OPERATOR_CERTIFICATES = "SELECT cert_issuer, cert_serial, cert_pem FROM operator WHERE enabled"

# Certificates behind live officer tokens, re-checked by OCSP (auth/live_certs.py).
TRACK_LIVE_CERT = """
INSERT INTO officer_live_cert (cert_sha256, cert_der, live_until, last_good_at, checked_at)
VALUES ($1, $2, $3, now(), now())
ON CONFLICT (cert_sha256) DO UPDATE SET
  live_until = greatest(officer_live_cert.live_until, excluded.live_until),
  last_good_at = now(), checked_at = now(), revoked_at = NULL
"""

CLAIM_LIVE_CERTS = """
UPDATE officer_live_cert SET checked_at = now()
WHERE cert_sha256 IN (
  SELECT cert_sha256 FROM officer_live_cert
  WHERE live_until > now() AND revoked_at IS NULL
    AND (checked_at IS NULL OR checked_at <= now() - make_interval(secs => $1))
  ORDER BY checked_at NULLS FIRST
  LIMIT $2
  FOR UPDATE SKIP LOCKED)
RETURNING cert_sha256, cert_der
"""

LIVE_CERTS_GOOD = "UPDATE officer_live_cert SET last_good_at = now() WHERE cert_sha256 = ANY($1)"

LIVE_CERTS_REVOKED = """
UPDATE officer_live_cert SET revoked_at = coalesce(revoked_at, now()) WHERE cert_sha256 = ANY($1)
"""

# Revoked, or its status unconfirmed for longer than the grace period (fail closed).
BLOCKED_LIVE_CERTS = """
SELECT cert_sha256 FROM officer_live_cert
WHERE live_until > now()
  AND (revoked_at IS NOT NULL OR last_good_at < now() - make_interval(secs => $1))
"""

PURGE_LIVE_CERTS = "DELETE FROM officer_live_cert WHERE live_until < now() - interval '1 hour'"
