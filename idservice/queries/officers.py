"""SQL of officer login: challenge nonces and the operator registry."""

INSERT_NONCE = "INSERT INTO auth_nonce (nonce_sha256, expires_at) VALUES ($1, $2)"

CONSUME_NONCE = "DELETE FROM auth_nonce WHERE nonce_sha256 = $1 RETURNING expires_at"

# Expired nonces are kept an hour so a late attempt still hears `nonce_expired`.
PURGE_NONCES = "DELETE FROM auth_nonce WHERE expires_at < $1::timestamptz - interval '1 hour'"

FIND_OPERATOR = """
SELECT id, name, roles, jurisdiction, enabled FROM operator
WHERE cert_sha256 = $1 OR (cert_issuer = $2 AND cert_serial = $3)
ORDER BY cert_sha256 = $1 DESC
LIMIT 1
"""

INSERT_OPERATOR = """
INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, cert_pem, roles,
                      jurisdiction)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""

LIST_OPERATORS = """
SELECT id, name, roles, jurisdiction, enabled, cert_sha256, cert_issuer, cert_serial, created_at
FROM operator ORDER BY id
"""

DISABLE_OPERATOR = """
UPDATE operator SET enabled = false, changed_at = clock_timestamp() WHERE id = $1 RETURNING id
"""

OPERATOR_CERTIFICATES = "SELECT cert_issuer, cert_serial, cert_pem FROM operator WHERE enabled"
