"""SQL of machine clients, operators and token revocation."""

GET_CLIENT = """
SELECT id, name, public_key_pem, roles, jurisdiction, enabled, cert_pem, cert_not_after
  FROM client WHERE id = $1
"""

INSERT_CLIENT = """
INSERT INTO client (id, name, public_key_pem, cert_sha256, roles, jurisdiction, cert_pem,
                    cert_not_after, cert_issuer, cert_serial, purpose, org_code, org_name,
                    system)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
"""

# Enabled clients with a stored certificate, for matching CRL entries (issuer, serial).
CLIENT_CERTIFICATES = """
SELECT id, cert_issuer, cert_serial FROM client WHERE enabled AND cert_issuer IS NOT NULL
"""

LIST_CLIENTS = """
SELECT id, name, roles, jurisdiction, enabled, cert_sha256, cert_not_after, created_at,
       purpose, org_code, org_name, system
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

# Commit-safe polling (migrations/0017): in one repeatable-read snapshot, its xmin (the next
# poll's start) and every live revocation by a transaction at or above the previous xmin.
REVOCATION_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"

REVOKED_SINCE = """
SELECT jti, expires_at FROM revoked_token WHERE txid >= $1::text::xid8 AND expires_at > now()
"""

# Clients whose certificate has expired count as disabled (their tokens end at notAfter anyway).
DISABLED_SUBJECTS = """
SELECT 'client' AS kind, id FROM client WHERE NOT enabled OR cert_not_after <= now()
UNION ALL
SELECT 'operator', id FROM operator WHERE NOT enabled
"""

PURGE_REVOKED = "DELETE FROM revoked_token WHERE expires_at < now() - interval '1 hour'"

# One hit on a fixed one-minute window of a verified identity (client, operator) or of a
# caller of /v1/pins/verify; answers the count so far and the seconds left in it.
HIT_RATE_LIMIT = """
INSERT INTO auth_rate_limit AS r (scope, key, window_start, n)
VALUES ($1, $2, date_trunc('minute', now()), 1)
ON CONFLICT (scope, key, window_start) DO UPDATE SET n = r.n + 1
RETURNING n, greatest(1, ceil(extract(epoch FROM
    r.window_start + interval '1 minute' - clock_timestamp())))::int AS retry_after
"""

PURGE_RATE_LIMIT = "DELETE FROM auth_rate_limit WHERE window_start < now() - interval '2 minutes'"

# -- per source address, over the three authentication endpoints (migrations/0019) ----------

# A request from $1 with limit $2: counted, and counted as limited (429) once over the limit.
ADMIT_SOURCE = """
INSERT INTO auth_source_window AS w (source, window_start, requests, limited)
VALUES ($1, date_trunc('minute', now()), 1, (1 > $2)::int)
ON CONFLICT (source, window_start) DO UPDATE
  SET requests = w.requests + 1, limited = w.limited + (w.requests + 1 > $2)::int
RETURNING requests, greatest(1, ceil(extract(epoch FROM
    w.window_start + interval '1 minute' - clock_timestamp())))::int AS retry_after
"""

# A 429 from a per-identity limit, counted into the source's minute.
COUNT_LIMITED = """
INSERT INTO auth_source_window AS w (source, window_start, limited)
VALUES ($1, date_trunc('minute', now()), 1)
ON CONFLICT (source, window_start) DO UPDATE SET limited = w.limited + 1
"""

# A failed login whose identity did not verify, with cap $2 per source and minute: `recorded`
# says whether it gets its own event (in the same transaction as this count).
COUNT_FAILURE = """
INSERT INTO auth_source_window AS w (source, window_start, failures, unrecorded)
VALUES ($1, date_trunc('minute', now()), 1, (1 > $2)::int)
ON CONFLICT (source, window_start) DO UPDATE
  SET failures = w.failures + 1, unrecorded = w.unrecorded + (w.failures + 1 > $2)::int
RETURNING failures <= $2 AS recorded
"""

# Minutes that ended at least $1 seconds ago with nothing to report are simply closed.
CLOSE_QUIET_WINDOWS = """
UPDATE auth_source_window SET reported = true
 WHERE NOT reported AND limited = 0 AND unrecorded = 0
   AND window_start <= now() - interval '1 minute' - make_interval(secs => $1)
"""

# ... the others are claimed (one process each: SKIP LOCKED) and reported in the same
# transaction that sets `reported`.
CLAIM_DUE_WINDOWS = """
SELECT source, window_start, requests, limited, failures, unrecorded FROM auth_source_window
 WHERE NOT reported AND window_start <= now() - interval '1 minute' - make_interval(secs => $1)
 ORDER BY window_start
 LIMIT $2
 FOR UPDATE SKIP LOCKED
"""

MARK_REPORTED = """
UPDATE auth_source_window SET reported = true WHERE source = $1 AND window_start = $2
"""

PURGE_SOURCE_WINDOWS = """
DELETE FROM auth_source_window WHERE reported AND window_start < now() - interval '1 hour'
"""
