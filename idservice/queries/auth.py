"""SQL of machine clients, operators and token revocation."""

GET_CLIENT = """
SELECT id, name, public_key_pem, roles, jurisdiction, enabled FROM client WHERE id = $1
"""

INSERT_CLIENT = """
INSERT INTO client (id, name, public_key_pem, cert_sha256, roles, jurisdiction, org_code,
                    org_name, system)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

LIST_CLIENTS = """
SELECT id, name, roles, jurisdiction, enabled, cert_sha256, created_at, org_code, org_name, system
  FROM client ORDER BY id
"""

DISABLE_CLIENT = """
UPDATE client SET enabled = false, changed_at = clock_timestamp() WHERE id = $1 RETURNING id
"""

REMEMBER_JTI = """
INSERT INTO client_assertion_jti (client_id, jti, expires_at) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING jti
"""

PURGE_JTIS = "DELETE FROM client_assertion_jti WHERE expires_at < now() - interval '10 minutes'"

REVOKE_TOKEN = """
INSERT INTO revoked_token (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING
"""

REVOKED_SINCE = """
SELECT jti, revoked_at, expires_at FROM revoked_token WHERE revoked_at > $1 AND expires_at > now()
"""

DISABLED_SUBJECTS = """
SELECT 'client' AS kind, id FROM client WHERE NOT enabled
UNION ALL
SELECT 'operator', id FROM operator WHERE NOT enabled
"""

PURGE_REVOKED = "DELETE FROM revoked_token WHERE expires_at < now() - interval '1 hour'"

# One hit on a fixed one-minute window; answers the count so far and the seconds left in it.
HIT_RATE_LIMIT = """
INSERT INTO auth_rate_limit AS r (scope, key, window_start, n)
VALUES ($1, $2, date_trunc('minute', now()), 1)
ON CONFLICT (scope, key, window_start) DO UPDATE SET n = r.n + 1
RETURNING n, greatest(1, ceil(extract(epoch FROM
    r.window_start + interval '1 minute' - clock_timestamp())))::int AS retry_after
"""

PURGE_RATE_LIMIT = "DELETE FROM auth_rate_limit WHERE window_start < now() - interval '2 minutes'"
