"""SQL of person records, registrations and PIN allocation.

PIN columns are `text COLLATE "C"`, so a bucket's block is a plain index range scan.
"""

# $1 prefix, $2 candidate serials (in draw order), $3 block size, $4.. person columns.
# Claims the first candidate not yet taken by inserting the person row; bumps the block count.
CLAIM = """
WITH cand AS (
  SELECT $1::text || lpad(c::text, 6, '0') AS pin, c, o
    FROM unnest($2::int[]) WITH ORDINALITY AS u(c, o)
), pick AS (
  SELECT cand.pin, cand.c FROM cand
   WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.pin = cand.pin)
   ORDER BY cand.o LIMIT 1
), ins AS (
  INSERT INTO person (pin, registration_authority, registration_number, registered_on,
                      province_code, full_name, name_folded, other_names_folded, sex,
                      date_of_birth, record)
  SELECT pick.pin, $4, $5, $6, $7, $8, $9, $10::text[], $11, $12, $13::text::jsonb FROM pick
  ON CONFLICT (pin) DO NOTHING
  RETURNING pin, issued_at
), blk AS (
  INSERT INTO pin_block (prefix, block, used)
  SELECT $1, pick.c / $3, 1 FROM pick JOIN ins ON ins.pin = pick.pin
  ON CONFLICT (prefix, block) DO UPDATE SET used = pin_block.used + 1
)
SELECT pin, issued_at FROM ins
"""

BLOCK_COUNTS = "SELECT block, used FROM pin_block WHERE prefix = $1"

USED_IN_RANGE = """
SELECT substr(pin, 7, 6)::int FROM person
 WHERE pin BETWEEN $1::text || lpad($2::int::text, 6, '0')
               AND $1::text || lpad($3::int::text, 6, '0')
 ORDER BY pin
"""

LOCK_REGISTRATION = "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 7305))"

FIND_REGISTRATION = """
SELECT r.body_sha256, p.pin, p.status, p.issued_at, p.record
  FROM registration r JOIN person p ON p.pin = r.pin
 WHERE r.authority = $1 AND r.number = $2
"""

INSERT_REGISTRATION = """
INSERT INTO registration (authority, number, body_sha256, pin) VALUES ($1, $2, $3, $4)
"""

GET_PERSON = """
SELECT pin, status, replaced_by, record, issued_at, updated_at FROM person WHERE pin = $1
"""

GET_PERSON_FOR_UPDATE = GET_PERSON + " FOR UPDATE"

VERIFY = "SELECT full_name, date_of_birth FROM person WHERE pin = $1"

# $1 folded name, $2 dob or null, $3 PIN prefix (3 digits) or null, $4 limit.
SEARCH_FOLDED = """
SELECT pin, status, replaced_by, record, issued_at, updated_at FROM person
 WHERE (name_folded = $1 OR other_names_folded @> ARRAY[$1]::text[])
   AND ($2::date IS NULL OR date_of_birth = $2)
   AND ($3::text IS NULL OR province_code = $3)
 ORDER BY pin LIMIT $4
"""

SEARCH_EXACT = """
SELECT pin, status, replaced_by, record, issued_at, updated_at FROM person
 WHERE (name_folded = $5 OR other_names_folded @> ARRAY[$5]::text[])
   AND (full_name = $1 OR record->'child'->'other_names' ? $1)
   AND ($2::date IS NULL OR date_of_birth = $2)
   AND ($3::text IS NULL OR province_code = $3)
 ORDER BY pin LIMIT $4
"""

UPDATE_RECORD = """
UPDATE person SET record = $2::text::jsonb, full_name = $3, name_folded = $4,
                  other_names_folded = $5::text[], updated_at = clock_timestamp()
 WHERE pin = $1
RETURNING updated_at
"""

CANCEL = """
UPDATE person SET status = 'cancelled', replaced_by = $2, updated_at = clock_timestamp()
 WHERE pin = $1 AND status <> 'cancelled'
"""

INSERT_HISTORY = """
INSERT INTO person_history (pin, actor_type, actor_id, reason, changes, previous, new_pin)
VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7)
"""

# ---- bulk forms used by the batch path: one statement per chunk instead of per line ----

# Sorted, de-duplicated lock order, so two batches can never deadlock on registration locks.
LOCK_REGISTRATIONS = """
SELECT count(pg_advisory_xact_lock(h)) FROM (
  SELECT DISTINCT hashtextextended(a || chr(31) || n, 7305) AS h
    FROM unnest($1::text[], $2::text[]) AS u(a, n) ORDER BY 1) s
"""

FIND_REGISTRATIONS = """
SELECT r.authority, r.number, r.body_sha256, p.pin, p.status, p.issued_at,
       p.record->'registration' AS registration
  FROM unnest($1::text[], $2::text[]) AS u(a, n)
  JOIN registration r ON r.authority = u.a AND r.number = u.n
  JOIN person p ON p.pin = r.pin
"""

TAKEN_PINS = "SELECT pin FROM person WHERE pin = ANY($1::text[])"

INSERT_PERSONS = """
INSERT INTO person (pin, registration_authority, registration_number, registered_on,
                    province_code, full_name, name_folded, other_names_folded, sex,
                    date_of_birth, record)
SELECT u.pin, u.ra, u.rn, u.ro, u.pc, u.fn, u.nf,
       ARRAY(SELECT jsonb_array_elements_text(u.onf::jsonb)),
       u.sex, u.dob, u.rec::jsonb
  FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[], $6::text[],
              $7::text[], $8::text[], $9::text[], $10::date[], $11::text[])
       AS u(pin, ra, rn, ro, pc, fn, nf, onf, sex, dob, rec)
ON CONFLICT (pin) DO NOTHING
RETURNING pin, issued_at
"""

BUMP_BLOCKS = """
INSERT INTO pin_block (prefix, block, used)
SELECT * FROM unnest($1::text[], $2::int[], $3::int[]) ORDER BY 1, 2
ON CONFLICT (prefix, block) DO UPDATE SET used = pin_block.used + EXCLUDED.used
"""

INSERT_REGISTRATIONS = """
INSERT INTO registration (authority, number, body_sha256, pin)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
"""

# One-statement single issuance (migrations/0006_issue_function.sql).
ISSUE_PIN = """
SELECT outcome, pin, status, issued_at, registration
  FROM issue_pin($1, $2, $3, $4, $5::int[], $6, $7, $8, $9, $10, $11::text[], $12, $13,
                 $14::text::jsonb, $15, $16, $17, $18)
"""
