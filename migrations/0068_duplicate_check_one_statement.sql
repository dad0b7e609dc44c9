-- The duplicate check of a chunk of rows (contract 9; the batch, the exact allocator's path and
-- an office's offline sync: idservice/persons/issuance.duplicates_in_transaction) in one
-- statement: take the rows' duplicate locks, then find their matches.
--
-- Why: it was two statements, each sending the chunk's rows as a person_row[] (asyncpg encodes
-- such an array at ~3 us per row, and PostgreSQL decodes it again): with the person insert, a
-- 500-line chunk sent its rows three times. Now twice, and one round trip fewer.
--
-- The order matters and is kept: the locks first (sorted, so two chunks cannot deadlock), the
-- look-up after them, in a statement of its own inside this VOLATILE function, so under READ
-- COMMITTED it reads with a snapshot taken once the locks are held and sees a person committed
-- by the chunk that held one of them (tests/integration/test_duplicates.py: a second chunk
-- waits for the first and then finds its child). One SQL statement for both would read with
-- the snapshot taken before it waited, and miss that person.
CREATE FUNCTION person_duplicates_locked(p_rows person_row[])
RETURNS TABLE (i integer, pins text[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM count(pg_advisory_xact_lock(s.h)) FROM (
    SELECT DISTINCT person_duplicate_lock_key(r) AS h FROM unnest(p_rows) AS r ORDER BY 1) s;
  RETURN QUERY SELECT d.i, d.pins FROM person_duplicates_of(p_rows) d;
END
$$;

REVOKE ALL ON FUNCTION person_duplicates_locked(person_row[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION person_duplicates_locked(person_row[]) TO idservice_service;
