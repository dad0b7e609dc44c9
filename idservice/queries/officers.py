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

# A login whose checks without the database passed: nonce used, operator mapped and enabled,
# per-operator limit, auth.login event, live certificate; one statement (migrations/0040).
OFFICER_LOGIN = """
SELECT outcome, id, name, roles, jurisdiction, retry_after
  FROM officer_login(p_nonce_sha256 => $1, p_nonce_expires => $2, p_cert_sha256 => $3,
                     p_cert_issuer => $4, p_cert_serial => $5, p_identity_limit => $6,
                     p_source => $7, p_request_id => $8, p_source_ip => $9, p_details => $10,
                     p_live_cert_der => $11, p_live_until => $12)
"""

# OFFICER_LOGIN for a group of logins (auth/login_group.py): $1-$12 its arguments as arrays,
# one element per member, $13 each member's position in the group; one statement, one
# transaction, officer_login() called for the members in array order (the caller sorts them
# by certificate, so that two groups take their rows' locks in one order).
OFFICER_LOGIN_EACH = """
SELECT u.i, l.outcome, l.id, l.name, l.roles, l.jurisdiction, l.retry_after
  FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::int[],
              $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[],
              $12::timestamptz[], $13::int[]) WITH ORDINALITY
       AS u(nonce_sha256, nonce_expires, cert_sha256, cert_issuer, cert_serial, identity_limit,
            source, request_id, source_ip, details, live_cert_der, live_until, i, k)
 CROSS JOIN LATERAL officer_login(u.nonce_sha256, u.nonce_expires, u.cert_sha256,
                                  u.cert_issuer, u.cert_serial, u.identity_limit, u.source,
                                  u.request_id, u.source_ip, u.details, u.live_cert_der,
                                  u.live_until) AS l
 ORDER BY u.k
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

# Certificates behind live officer tokens, re-checked by OCSP (auth/live_certs.py); a login
# records its certificate in officer_login() (migrations/0040).
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
