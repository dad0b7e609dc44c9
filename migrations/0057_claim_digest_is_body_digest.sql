-- Issue 12 (speed): an OSIA generateUIN costs less than it did in 0056, same behaviour.
--
-- 1. The digest a claim is compared with is the registration's own body digest
--    (registration.body_sha256: of the record as stored, `issuance.prepare`), which the
--    issuance statement receives anyway, instead of a second digest of the whole request that
--    the service computed for the claim alone. For every request a field interface can send
--    (none carries `duplicate_override`, the only field a record leaves out) two requests have
--    the same record exactly when they are the same request, so "the same transactionId with
--    the same attributes" means what it meant.
-- 2. issue_pin_claimed() claims in its own body (no call of external_registration_claim(), a
--    set-returning function whose rows went through a tuplestore) and returns its one row as
--    OUT parameters, not as a set. Otherwise as in 0056: the claim first (a concurrent claim of
--    the same id waits for this transaction's end, holding nothing), then issue_pin() in the
--    same transaction; the id held with another digest: 'external_key_held', nothing written;
--    a refusal of issue_pin() deletes the claim this call made; any error rolls all back;
--    needs_exact keeps the claim (the service's exact path releases it if refused).
-- 3. Claims already stored are converted: an OSIA claim takes the body digest of the
--    registration it was made for. A claim is kept only when its issuance issued or replayed
--    that registration with the claiming request's record, so the two digests stand for the
--    same request. An OSIA claim without its registration (its issuance never completed: the
--    exact path interrupted) guarded nothing and is deleted, as a failed issuance's claim is;
--    the caller's retry claims the id again. OpenCRVS claims keep their digest: only the
--    request that made a claim compares it (to release it), within that request.

UPDATE external_registration e
   SET request_sha256 = r.body_sha256
  FROM registration r
 WHERE e.source = 'osia'
   AND r.province_code = e.province_code AND r.authority = e.authority
   AND r.number = e.number;

DELETE FROM external_registration e
 WHERE e.source = 'osia'
   AND NOT EXISTS (SELECT 1 FROM registration r
                    WHERE r.province_code = e.province_code AND r.authority = e.authority
                      AND r.number = e.number);

DROP FUNCTION issue_pin_claimed(text, text, text, bytea, person_row, bytea, text, integer[],
                                integer, text, text, text, text, text, text);

CREATE FUNCTION issue_pin_claimed(
  p_source text, p_scope text, p_external_id text,
  p_row person_row, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_actor_type text, p_actor_id text, p_request_id text,
  p_source_ip text, p_details text, p_override_details text,
  OUT outcome text, OUT pin text, OUT status text, OUT issued_at timestamptz,
  OUT registration jsonb, OUT duplicates text[], OUT claimed boolean
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  held bytea;
BEGIN
  -- The claim loop of external_registration_claim() (0056), keeping only the digest.
  LOOP
    INSERT INTO external_registration (source, scope, external_id, province_code, authority,
                                       number, registered_on, request_sha256)
    VALUES (p_source, p_scope, p_external_id, (p_row).province_code,
            (p_row).registration_authority, (p_row).registration_number,
            (p_row).registered_on, p_digest)
    ON CONFLICT DO NOTHING;
    claimed := FOUND;
    EXIT WHEN claimed;
    SELECT e.request_sha256 INTO held
      FROM external_registration e
     WHERE e.source = p_source AND e.scope = p_scope AND e.external_id = p_external_id;
    EXIT WHEN FOUND;  -- else released meanwhile: claim again
  END LOOP;
  IF NOT claimed AND held <> p_digest THEN
    outcome := 'external_key_held';
    RETURN;
  END IF;
  SELECT i.outcome, i.pin, i.status, i.issued_at, i.registration, i.duplicates
    INTO outcome, pin, status, issued_at, registration, duplicates
    FROM issue_pin(p_row, p_digest, p_prefix, p_candidates, p_block_size, p_actor_type,
                   p_actor_id, p_request_id, p_source_ip, p_details, p_override_details) i;
  IF claimed AND outcome IN ('registration_conflict', 'possible_duplicate') THEN
    DELETE FROM external_registration e
     WHERE e.source = p_source AND e.scope = p_scope AND e.external_id = p_external_id;
  END IF;
END
$$;
REVOKE ALL ON FUNCTION issue_pin_claimed FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_pin_claimed TO idservice_service;
