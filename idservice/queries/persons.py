"""SQL of person records, registrations and PIN allocation.

PIN columns are `text COLLATE "C"`, so a bucket's block is a plain index range scan.
"""

# A person is written only through the functions of migrations/0012_person_row.sql, each taking
# its row as the composite `person_row` (idservice/persons/rows.PersonRow).

# $1 prefix, $2 candidate serials (in draw order), $3 block size, $4 the row: the first free
# candidate claimed (no row when all are taken).
PERSON_CLAIM = """
SELECT pin, issued_at FROM person_claim($1, $2::int[], $3, $4::person_row)
"""

# $1 prefixes, $2 serials, $3 rows, $4 block size: each row inserted at its number unless taken.
PERSON_INSERT = """
SELECT pin, issued_at FROM person_insert($1::text[], $2::int[], $3::person_row[], $4)
"""

# $1 PIN, $2 the corrected row.
PERSON_UPDATE = "SELECT person_update($1, $2::person_row)"

BLOCK_COUNTS = "SELECT block, used FROM pin_block WHERE prefix = $1"

# $1, $2 the first and last PIN of a block (built by idservice/pin/format.make_pin).
PINS_BETWEEN = "SELECT pin FROM person WHERE pin BETWEEN $1 AND $2 ORDER BY pin"

# The registration key is (province_code, authority, number): migrations/0014_registration_key.sql.
LOCK_REGISTRATION = "SELECT pg_advisory_xact_lock(registration_lock_key($1, $2, $3))"

FIND_REGISTRATION = """
SELECT r.body_sha256, p.pin, p.status, p.issued_at, p.record
  FROM registration r JOIN person p ON p.pin = r.pin
 WHERE r.province_code = $1 AND r.authority = $2 AND r.number = $3
"""

INSERT_REGISTRATION = """
INSERT INTO registration (province_code, authority, number, body_sha256, pin)
VALUES ($1, $2, $3, $4, $5)
"""

# A 'reserved' row (contract 8, migrations/0030_reservations.sql) is a number held for an offline
# office, not a person: reads, searches and verification never see it.
GET_PERSON = """
SELECT pin, status, replaced_by, record, issued_at, updated_at, death FROM person
 WHERE pin = $1 AND status <> 'reserved'
"""

GET_PERSON_FOR_UPDATE = GET_PERSON + " FOR UPDATE"

# One /v1/pins/verify: the caller's hit on its one-minute window when $3 (the limit) > 0,
# and the record's name and birth date (the limit's table is unlogged: migrations/0041).
VERIFY_COUNTED = """
WITH hit AS (
  INSERT INTO auth_rate_limit AS r (scope, key, window_start, n)
  SELECT 'verify', $2, date_trunc('minute', now()), 1 WHERE $3::int > 0
  ON CONFLICT (scope, key, window_start) DO UPDATE SET n = r.n + 1
  RETURNING n, greatest(1, ceil(extract(epoch FROM
      r.window_start + interval '1 minute' - clock_timestamp())))::int AS retry_after)
SELECT h.n, h.retry_after, p.full_name, p.date_of_birth
  FROM (SELECT 1) AS one
  LEFT JOIN hit h ON true
  LEFT JOIN person p ON p.pin = $1 AND p.status <> 'reserved'
"""

# VERIFY_COUNTED for a group of verifications (persons/verification.py): $1 PINs, $2 their
# callers' keys, in arrival order; $3 the limit. Each caller's window rises once by its
# members in the group (callers in key order: two groups lock their rows in one order), and
# member i sees the count it would have seen alone in that order.
VERIFY_COUNTED_EACH = """
WITH m AS (
  SELECT u.pin, u.key, u.i::int AS i
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(pin, key, i)),
c AS (SELECT key, count(*)::int AS k FROM m GROUP BY key),
hit AS (
  INSERT INTO auth_rate_limit AS r (scope, key, window_start, n)
  SELECT 'verify', c.key, date_trunc('minute', now()), c.k FROM c WHERE $3::int > 0
   ORDER BY c.key
  ON CONFLICT (scope, key, window_start) DO UPDATE SET n = r.n + excluded.n
  RETURNING r.key, r.n, greatest(1, ceil(extract(epoch FROM
      r.window_start + interval '1 minute' - clock_timestamp())))::int AS retry_after)
SELECT m.i, h.n - c.k + row_number() OVER (PARTITION BY m.key ORDER BY m.i) AS n,
       h.retry_after, p.full_name, p.date_of_birth
  FROM m
  JOIN c ON c.key = m.key
  LEFT JOIN hit h ON h.key = m.key
  LEFT JOIN person p ON p.pin = m.pin AND p.status <> 'reserved'
"""

# The PINs whose folded name or one of whose folded other names is `$1`, born on `$2` if given.
# Two branches, so that each reads its own index (a single `name_folded = $1 OR other_names
# @> ...` condition can only be served by the date of birth index, which reads every person
# born that day: ~430 heap pages per search at 10M persons, 10x that for the country). The
# other-names branch is fenced (`OFFSET 0`) so that its only index is the GIN one: its row
# estimate is a default while few records carry other names, and the planner would otherwise
# go back to the date of birth index. bench/scale.py, docs/decisions.md.
_SEARCH_CANDIDATES = """
SELECT n.pin FROM person n
 WHERE n.name_folded = $1 AND ($2::date IS NULL OR n.date_of_birth = $2)
UNION ALL
SELECT o.pin FROM (SELECT pin, date_of_birth FROM person
                    WHERE other_names_folded @> ARRAY[$1]::text[] OFFSET 0) o
 WHERE $2::date IS NULL OR o.date_of_birth = $2
"""

# $1 folded name, $2 dob or null, $3 PIN prefix (3 digits) or null, $4 limit.
SEARCH_FOLDED = """
SELECT pin, status, replaced_by, record, issued_at, updated_at, death FROM person
 WHERE pin IN (""" + _SEARCH_CANDIDATES + """)
   AND ($3::text IS NULL OR province_code = $3) AND status <> 'reserved'
 ORDER BY pin LIMIT $4
"""

# As SEARCH_FOLDED, and $5 the name as written: one of the record's names exactly.
SEARCH_EXACT = """
SELECT pin, status, replaced_by, record, issued_at, updated_at, death FROM person
 WHERE pin IN (""" + _SEARCH_CANDIDATES + """)
   AND (full_name = $5 OR record->'child'->'other_names' ? $5)
   AND ($3::text IS NULL OR province_code = $3) AND status <> 'reserved'
 ORDER BY pin LIMIT $4
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

# The registrations of the keys ($1 provinces, $2 authorities, $3 numbers) that exist, with
# their persons, read after taking the keys' locks (sorted and de-duplicated, so two batches can
# never deadlock on them): migrations 0066 (registration_find(): an index probe per row is its
# only plan, whatever the statistics said when the connection planned it) and 0070 (one
# statement for the locks and the look-up).
FIND_REGISTRATIONS_LOCKED = """
SELECT province_code, authority, number, body_sha256, pin, status, issued_at, registration
  FROM registration_find_locked($1::text[], $2::text[], $3::text[])
"""

# The function of migration 0066 whose plan cannot depend on the statistics.
TAKEN_PINS = "SELECT pin FROM person_taken($1::text[])"

INSERT_REGISTRATIONS = """
INSERT INTO registration (province_code, authority, number, body_sha256, pin)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[])
"""

# One-statement single issuance (migrations/0014_registration_key.sql).
ISSUE_PIN = """
SELECT outcome, pin, status, issued_at, registration, duplicates
  FROM issue_pin(p_row => $1::person_row, p_digest => $2, p_prefix => $3,
                 p_candidates => $4::int[], p_block_size => $5, p_actor_type => $6,
                 p_actor_id => $7, p_request_id => $8, p_source_ip => $9, p_details => $10,
                 p_override_details => $11)
"""

# Many issue_pin() calls in one statement and one transaction, results by position `i`
# (1-based; migrations/0059_issue_pins.sql; idservice/persons/coalesce.py): $1 person rows,
# $2 digests, $3 prefixes, $4 every row's candidates one after another, $5 candidates per row,
# $6 block size, $7.. per row: actor type, actor id, request id, source ip, details, override
# details, and the external key (0060): source, scope, external id (source NULL: no key; with
# a key, the row is issue_pin_claimed()'s and `claimed` says whether this member claimed it).
ISSUE_PINS = """
SELECT i, outcome, pin, status, issued_at, registration, duplicates, claimed
  FROM issue_pins(p_rows => $1::person_row[], p_digests => $2::bytea[], p_prefixes => $3::text[],
                  p_candidates => $4::int[], p_tries => $5, p_block_size => $6,
                  p_actor_types => $7::text[], p_actor_ids => $8::text[],
                  p_request_ids => $9::text[], p_source_ips => $10::text[],
                  p_details => $11::text[], p_override_details => $12::text[],
                  p_sources => $13::text[], p_scopes => $14::text[],
                  p_external_ids => $15::text[])
"""

# The same, with an external idempotency key claimed in the same statement
# (migrations/0056_claim_in_issuance.sql, 0057): $12 source, $13 scope, $14 external id; the
# key stands for the body digest $2. Adds `claimed`; outcome 'external_key_held' when another
# request holds the key.
ISSUE_PIN_CLAIMED = """
SELECT outcome, pin, status, issued_at, registration, duplicates, claimed
  FROM issue_pin_claimed(p_row => $1::person_row, p_digest => $2, p_prefix => $3,
                         p_candidates => $4::int[], p_block_size => $5, p_actor_type => $6,
                         p_actor_id => $7, p_request_id => $8, p_source_ip => $9,
                         p_details => $10, p_override_details => $11, p_source => $12,
                         p_scope => $13, p_external_id => $14)
"""

# ---- duplicate check (contract 9; migrations/0042_deaths_duplicates.sql) ----

# $1 person rows -> (i, pins): their duplicate locks taken (sorted and de-duplicated: no
# deadlock between batches), then for each row (1-based) with matches the active persons it
# matches, each row one lookup on person_name_dob (migrations/0068: person_duplicates_locked(),
# over 0066's person_duplicates_of()).
FIND_DUPLICATES_LOCKED = "SELECT i, pins FROM person_duplicates_locked($1::person_row[])"

# The plan of one row's check (the test that shows it is an index lookup).
EXPLAIN_DUPLICATES = "EXPLAIN SELECT pin FROM person_duplicates($1::person_row)"

# ---- death registration (contract 9; migrations/0042_deaths_duplicates.sql) ----

LOCK_DEATH_REGISTRATION = "SELECT pg_advisory_xact_lock(death_registration_lock_key($1, $2, $3))"

FIND_DEATH_REGISTRATION = """
SELECT pin, body_sha256 FROM death_registration
 WHERE province_code = $1 AND authority = $2 AND number = $3
"""

INSERT_DEATH_REGISTRATION = """
INSERT INTO death_registration (province_code, authority, number, body_sha256, pin)
VALUES ($1, $2, $3, $4, $5)
"""

# $1 PIN, $2 the death registration (JSON text).
SET_DECEASED = """
UPDATE person SET status = 'deceased', death = $2::text::jsonb, updated_at = clock_timestamp()
 WHERE pin = $1
"""

# An erroneous death undone by a correction (contract 9).
SET_ALIVE = """
UPDATE person SET status = 'active', death = NULL, updated_at = clock_timestamp()
 WHERE pin = $1 AND status = 'deceased'
"""
