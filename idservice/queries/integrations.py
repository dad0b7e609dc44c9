"""SQL of the field interfaces (OSIA, OpenCRVS): external idempotency keys, reader purposes."""

# $1 source, $2 scope, $3 external id, $4 province, $5 authority, $6 number, $7 registered_on,
# $8 request digest -> (claimed, province_code, authority, number, registered_on, digest).
CLAIM_EXTERNAL = """
SELECT claimed, province_code, authority, number, registered_on, request_sha256
  FROM claim_external_registration($1, $2, $3, $4, $5, $6, $7, $8)
"""

# Only the row this request claimed (same digest): never one another request holds.
RELEASE_EXTERNAL = """
DELETE FROM external_registration
 WHERE source = $1 AND scope = $2 AND external_id = $3 AND request_sha256 = $4
"""

# $1 source, $2 scope, $3 external id -> the digest of the request holding it (no row: none).
HELD_EXTERNAL = """
SELECT request_sha256 FROM external_registration
 WHERE source = $1 AND scope = $2 AND external_id = $3
"""

CLIENT_PURPOSE = "SELECT purpose FROM client WHERE id = $1"
