-- Issuance reads `person` and `registration` only through their indexes, whatever the plans
-- were made on (issue 16 goals 1 and 2; docs/decisions.md "Statements whose plan cannot go
-- wrong with the statistics").
--
-- Why: the batch bench's rate fell within every run (5,234 -> 2,500 records/s over 200,000
-- records) while `person` grew, and pg_stat_user_tables counted a sequential scan of `person`
-- for about every second chunk. The cause, reproduced in
-- tests/integration/test_issuance_plans.py (plans made while the tables were small, then
-- 100,000 persons loaded, as a new service's first day or a bulk load gives):
-- * the liveBirth trigger (0044) joins the new registrations to `person`. Its statement has no
--   parameters, so each connection keeps the plan it made at its first use: with `person`
--   small, a hash join over a sequential scan of the whole table. Every later registration
--   statement on that connection, a batch chunk or a single issuance alike, then read every
--   person: 60 ms at 200,000 persons, per single issuance too.
-- * the batch chunk's three reads, as generic plans made on small tables: the check of the
--   candidate PINs (`pin = ANY(...)`: a sequential scan, 5.2 s per chunk at 200,000 persons),
--   the duplicate check (a sequential scan per line: 12.3 s per chunk) and the look-up of the
--   chunk's registrations (hash joins over both tables: 55 ms).
-- * a single issuance's look-up of its registration in issue_pin() (0014), planned on an empty
--   `registration`: a sequential scan of the table per issuance.
-- * an offline office's sync: person_take_reserved() (0030) joins its PINs to `person`, a hash
--   join over the whole table when planned on a small one.
-- The plan cache picks such a generic plan by itself when it is no dearer by estimate than the
-- custom ones, which on small tables it is not; an autoanalyze replaces it, until the next
-- bulk load.
--
-- The rule of 0065: the statements run inside functions that turn off sequential and bitmap
-- scans (and, where two tables are joined in one statement, hash and merge joins), so an index
-- probe per row is their only plan. Same answers as before; the queries in
-- idservice/queries/persons.py call the functions. A function's SET clauses cost ~0.2 us per
-- call (measured: 200,000 calls of a plpgsql function with four of them, 44 ms more than
-- without).

-- A single issuance (and each member of a group: issue_pins() calls issue_pin()) looks its
-- registration up by key and its external key (issue_pins()) by key: index probes only. Join
-- methods stay as they are here: the plans issue_pin() makes for person_insert() are kept by
-- the connection and serve the batch's 500-row calls too.
ALTER FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text, text, text,
                         text, text) SET enable_seqscan = off;
ALTER FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text, text, text,
                         text, text) SET enable_bitmapscan = off;
ALTER FUNCTION issue_pins(person_row[], bytea[], text[], integer[], integer, integer, text[],
                          text[], text[], text[], text[], text[], text[], text[], text[])
  SET enable_seqscan = off;
ALTER FUNCTION issue_pins(person_row[], bytea[], text[], integer[], integer, integer, text[],
                          text[], text[], text[], text[], text[], text[], text[], text[])
  SET enable_bitmapscan = off;

-- The liveBirth trigger: one person probe per new registration (a nested loop is the only
-- join left).
ALTER FUNCTION notify_live_birth() SET enable_seqscan = off;
ALTER FUNCTION notify_live_birth() SET enable_bitmapscan = off;
ALTER FUNCTION notify_live_birth() SET enable_hashjoin = off;
ALTER FUNCTION notify_live_birth() SET enable_mergejoin = off;

-- An office's offline issuances take their reserved rows (contract 8, 0030): one probe per
-- PIN, not a hash join over every person.
ALTER FUNCTION person_take_reserved(text[], person_row[]) SET enable_seqscan = off;
ALTER FUNCTION person_take_reserved(text[], person_row[]) SET enable_bitmapscan = off;
ALTER FUNCTION person_take_reserved(text[], person_row[]) SET enable_hashjoin = off;
ALTER FUNCTION person_take_reserved(text[], person_row[]) SET enable_mergejoin = off;

-- The PINs of `p_pins` already used (any status: a reserved number is taken too).
CREATE FUNCTION person_taken(p_pins text[]) RETURNS TABLE (pin text)
LANGUAGE sql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
  SELECT p.pin::text FROM person p WHERE p.pin = ANY(p_pins)
$$;

-- For each row of `p_rows` (1-based `i`) with matches, the active persons it matches
-- (contract 9's rule, person_duplicates()). The rows come from unnest() in the select list,
-- numbered by generate_subscripts() beside it, not `p_rows[i]`: finding the i-th element of an
-- array of variable-length rows walks the i-1 before it (quadratic in the chunk).
CREATE FUNCTION person_duplicates_of(p_rows person_row[])
RETURNS TABLE (i integer, pins text[])
LANGUAGE sql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
  SELECT u.i, d.pins
    FROM (SELECT unnest(p_rows) AS r, generate_subscripts(p_rows, 1) AS i) u
   CROSS JOIN LATERAL (SELECT array_agg(x.pin ORDER BY x.pin) AS pins
                         FROM person_duplicates(u.r) x) d
   WHERE d.pins IS NOT NULL
$$;

-- The registrations of the keys (province, authority, number) that exist, with their persons.
CREATE FUNCTION registration_find(p_province text[], p_authority text[], p_number text[])
RETURNS TABLE (province_code text, authority text, number text, body_sha256 bytea, pin text,
               status text, issued_at timestamptz, registration jsonb)
LANGUAGE sql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
  SELECT r.province_code, r.authority, r.number, r.body_sha256, p.pin::text, p.status,
         p.issued_at, p.record->'registration'
    FROM unnest(p_province, p_authority, p_number) AS u(p, a, n)
    JOIN registration r ON r.province_code = u.p AND r.authority = u.a AND r.number = u.n
    JOIN person p ON p.pin = r.pin
$$;

REVOKE ALL ON FUNCTION person_taken(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION person_duplicates_of(person_row[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION registration_find(text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION person_taken(text[]) TO idservice_service;
GRANT EXECUTE ON FUNCTION person_duplicates_of(person_row[]) TO idservice_service;
GRANT EXECUTE ON FUNCTION registration_find(text[], text[], text[]) TO idservice_service;
