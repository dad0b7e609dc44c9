-- Issue 16 goal 1: concurrent single issuances of one worker coalesced into one statement and
-- one transaction (idservice/persons/coalesce.py): one commit (one WAL flush) and one round
-- trip for the whole group instead of one per request.
--
-- issue_pins() runs issue_pin() (0042) for each element of the arrays, in array order, inside
-- the caller's one statement, and returns each element's result with its position `i`:
-- - issue_pin()'s expected outcomes (issued, replayed, registration_conflict,
--   possible_duplicate, needs_exact) are per-row results; none aborts the group;
-- - issue_pin() is VOLATILE, so each of its queries sees what the earlier elements of the same
--   call wrote: two elements with one registration key behave as two requests one after the
--   other (the second is replayed or refused as a conflict), two registrations of one child
--   as today (the second sees the first as a possible duplicate);
-- - any error aborts the whole statement: nothing of the group is committed (the service then
--   retries the members one by one, so one bad request cannot refuse the others).
-- Lock order: every registration lock of the group first, then every duplicate lock, each set
-- sorted (issue_pin() takes them again: advisory locks are re-entrant in a transaction). Two
-- groups, or a group and a single issue_pin() (registration lock, then duplicate lock), then
-- cannot wait on each other in a cycle. Taking a replay's duplicate lock too costs nothing.
-- `p_candidates` holds each element's candidate serials one after another, `p_tries` each.
CREATE FUNCTION issue_pins(
  p_rows person_row[], p_digests bytea[], p_prefixes text[], p_candidates integer[],
  p_tries integer, p_block_size integer, p_actor_types text[], p_actor_ids text[],
  p_request_ids text[], p_source_ips text[], p_details text[], p_override_details text[]
) RETURNS TABLE (i integer, outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb, duplicates text[])
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  n integer := coalesce(array_length(p_rows, 1), 0);
BEGIN
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT registration_lock_key((r).province_code, (r).registration_authority,
                                          (r).registration_number) AS k
      FROM unnest(p_rows) AS r ORDER BY 1) s;
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT person_duplicate_lock_key(r) AS k
      FROM unnest(p_rows) AS r ORDER BY 1) s;
  FOR e IN 1 .. n LOOP
    RETURN QUERY
      SELECT e, x.outcome, x.pin, x.status, x.issued_at, x.registration, x.duplicates
        FROM issue_pin(p_rows[e], p_digests[e], p_prefixes[e],
                       p_candidates[(e - 1) * p_tries + 1 : e * p_tries], p_block_size,
                       p_actor_types[e], p_actor_ids[e], p_request_ids[e], p_source_ips[e],
                       p_details[e], p_override_details[e]) x;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION issue_pins FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_pins TO idservice_service;
