-- A batch chunk's registrations (contract 7's idempotency key) are locked and looked up in one
-- statement, as 0068 does for the duplicate check, for the same reasons: the chunk's three key
-- arrays went out twice (one round trip and one encoding of 3 x 500 strings fewer now), and
-- the look-up still reads after the locks: it is a statement of its own inside this VOLATILE
-- function, so under READ COMMITTED it sees the registration a concurrent chunk committed while
-- this one waited for its lock (and answers it as a replay or a conflict, never claims a second
-- PIN for it; tests/integration/test_batch_locks.py).
CREATE FUNCTION registration_find_locked(p_province text[], p_authority text[], p_number text[])
RETURNS TABLE (province_code text, authority text, number text, body_sha256 bytea, pin text,
               status text, issued_at timestamptz, registration jsonb)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM count(pg_advisory_xact_lock(s.h)) FROM (
    SELECT DISTINCT registration_lock_key(u.p, u.a, u.n) AS h
      FROM unnest(p_province, p_authority, p_number) AS u(p, a, n) ORDER BY 1) s;
  RETURN QUERY SELECT f.province_code, f.authority, f.number, f.body_sha256, f.pin, f.status,
                      f.issued_at, f.registration
                 FROM registration_find(p_province, p_authority, p_number) f;
END
$$;

REVOKE ALL ON FUNCTION registration_find_locked(text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION registration_find_locked(text[], text[], text[]) TO idservice_service;
