"""SQL of offline reservations (contract 8; migrations/0030_reservations.sql)."""

# Serialises one client's reservations, so its open-PIN limit holds under concurrency.
LOCK_CLIENT = "SELECT pg_advisory_xact_lock(hashtextextended('reservation:' || $1, 8308))"

# Unused reserved PINs of $1 (client) not retired at $2 (now): the open-reservation limit.
OPEN_PINS = """
SELECT count(*) FROM reservation r
  JOIN reservation_pin rp ON rp.reservation_id = r.id
  JOIN person p ON p.pin = rp.pin
 WHERE r.client_id = $1 AND r.released_at IS NULL AND r.expires_at > $2
   AND p.status = 'reserved'
"""

# Placeholder rows just claimed become 'reserved' (same transaction: never seen as active).
MARK_RESERVED = "UPDATE person SET status = 'reserved' WHERE pin = ANY($1::text[])"

INSERT_RESERVATION = """
INSERT INTO reservation (id, client_id, province_code, issued_at, expires_at, counts, jws)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)
"""

INSERT_PINS = """
INSERT INTO reservation_pin (pin, reservation_id, bucket)
SELECT pin, $2, bucket FROM unnest($1::text[], $3::text[]) AS u(pin, bucket)
"""

GET_RESERVATION = """
SELECT id, client_id, province_code, issued_at, expires_at, released_at FROM reservation
 WHERE id = $1
"""

GET_RESERVATION_FOR_UPDATE = GET_RESERVATION + " FOR UPDATE"

# $1 reservation id, $2 retired (released, or expired at the time of asking).
COUNTS = """
SELECT count(*) FILTER (WHERE p.status = 'reserved' AND NOT $2::boolean) AS reserved,
       count(*) FILTER (WHERE p.status <> 'reserved') AS issued,
       count(*) FILTER (WHERE p.status = 'reserved' AND $2::boolean) AS retired
  FROM reservation_pin rp JOIN person p ON p.pin = rp.pin
 WHERE rp.reservation_id = $1
"""

RELEASE = """
UPDATE reservation SET released_at = $2 WHERE id = $1 AND released_at IS NULL
RETURNING released_at
"""

# The reservations of province $1 (every province when NULL), newest first, at most $2, with
# their PINs used (issued) and unused (the administrator's page, issue 15 item 4).
LIST_RESERVATIONS = """
SELECT r.id, r.client_id, r.province_code, r.issued_at, r.expires_at, r.released_at,
       count(*) FILTER (WHERE p.status = 'reserved') AS unused,
       count(*) FILTER (WHERE p.status <> 'reserved') AS issued
  FROM reservation r
  JOIN reservation_pin rp ON rp.reservation_id = r.id
  JOIN person p ON p.pin = rp.pin
 WHERE $1::text IS NULL OR r.province_code = $1
 GROUP BY r.id
 ORDER BY r.issued_at DESC, r.id
 LIMIT $2
"""

# The offered PINs that belong to reservation $1, with their bucket (sync, step 1).
RESERVED_PINS = """
SELECT pin, bucket FROM reservation_pin WHERE reservation_id = $1 AND pin = ANY($2::text[])
"""

# $1 PINs (distinct), $2 rows: each still-reserved PIN becomes its person (sync, step 2).
TAKE_RESERVED = """
SELECT pin, issued_at FROM person_take_reserved($1::text[], $2::person_row[])
"""

# The client's registered key, to verify the office's signatures.
CLIENT_KEY = "SELECT public_key_pem FROM client WHERE id = $1"

# Numbers used (issued or reserved) in bucket $1: the exact free count before a reservation.
BUCKET_USED = "SELECT coalesce(sum(used), 0) FROM pin_block WHERE prefix = $1"
