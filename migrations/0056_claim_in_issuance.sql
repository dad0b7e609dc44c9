-- Issue 12 (speed): the OSIA transactionId is claimed in the issuance statement itself, not in
-- a statement and transaction of its own before it (one round trip, one commit per request).
--
-- 1. The claim loop of claim_external_registration() (0028) moves into
--    external_registration_claim(), which does not touch synchronous_commit, so it can run
--    inside another transaction; claim_external_registration() (the OpenCRVS path, a claim
--    committed before its issuance) keeps its behaviour: synchronous_commit off, then the loop.
-- 2. issue_pin_claimed() = the claim, then issue_pin() (0042) in the same transaction:
--    - the id held with another request digest: 'external_key_held', nothing written (the
--      caller refuses: OSIA 1100);
--    - issue_pin() refuses (registration_conflict, possible_duplicate): a claim this call made
--      is deleted again before the statement ends, so the caller can correct and retry under
--      the same id (what releasing the claim did);
--    - any error rolls the whole statement back: no claim without its issuance;
--    - needs_exact: the claim is kept (committed with this statement), and the service's exact
--      path releases it if that issuance is refused, as before.
--    Lock order: the claim first (a concurrent claim of the same id waits for this
--    transaction's end, holding nothing), then issue_pin()'s advisory locks; no statement takes
--    a claim after those locks, so the two cannot deadlock.

CREATE FUNCTION external_registration_claim(
  p_source text, p_scope text, p_external_id text, p_province text, p_authority text,
  p_number text, p_registered_on date, p_digest bytea
) RETURNS TABLE (claimed boolean, province_code text, authority text, number text,
                 registered_on date, request_sha256 bytea)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  LOOP
    INSERT INTO external_registration (source, scope, external_id, province_code, authority,
                                       number, registered_on, request_sha256)
    VALUES (p_source, p_scope, p_external_id, p_province, p_authority, p_number,
            p_registered_on, p_digest)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      RETURN QUERY SELECT true, p_province, p_authority, p_number, p_registered_on, p_digest;
      RETURN;
    END IF;
    RETURN QUERY SELECT false, e.province_code, e.authority, e.number, e.registered_on,
                        e.request_sha256
                   FROM external_registration e
                  WHERE e.source = p_source AND e.scope = p_scope
                    AND e.external_id = p_external_id;
    IF FOUND THEN
      RETURN;
    END IF;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION external_registration_claim FROM PUBLIC;
GRANT EXECUTE ON FUNCTION external_registration_claim TO idservice_service;

CREATE OR REPLACE FUNCTION claim_external_registration(
  p_source text, p_scope text, p_external_id text, p_province text, p_authority text,
  p_number text, p_registered_on date, p_digest bytea
) RETURNS TABLE (claimed boolean, province_code text, authority text, number text,
                 registered_on date, request_sha256 bytea)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  -- Committed on its own before the issuance: see 0028 for why asynchronously.
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN QUERY SELECT * FROM external_registration_claim(p_source, p_scope, p_external_id,
                                                         p_province, p_authority, p_number,
                                                         p_registered_on, p_digest);
END
$$;

CREATE FUNCTION issue_pin_claimed(
  p_source text, p_scope text, p_external_id text, p_claim_digest bytea,
  p_row person_row, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_actor_type text, p_actor_id text, p_request_id text,
  p_source_ip text, p_details text, p_override_details text
) RETURNS TABLE (outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb, duplicates text[], claimed boolean)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  held record;
  issued record;
BEGIN
  SELECT c.claimed, c.request_sha256 INTO held
    FROM external_registration_claim(p_source, p_scope, p_external_id, (p_row).province_code,
                                     (p_row).registration_authority,
                                     (p_row).registration_number, (p_row).registered_on,
                                     p_claim_digest) c;
  IF held.request_sha256 <> p_claim_digest THEN
    RETURN QUERY SELECT 'external_key_held'::text, NULL::text, NULL::text,
                        NULL::timestamptz, NULL::jsonb, NULL::text[], false;
    RETURN;
  END IF;
  SELECT i.outcome, i.pin, i.status, i.issued_at, i.registration, i.duplicates INTO issued
    FROM issue_pin(p_row, p_digest, p_prefix, p_candidates, p_block_size, p_actor_type,
                   p_actor_id, p_request_id, p_source_ip, p_details, p_override_details) i;
  IF held.claimed AND issued.outcome IN ('registration_conflict', 'possible_duplicate') THEN
    DELETE FROM external_registration e
     WHERE e.source = p_source AND e.scope = p_scope AND e.external_id = p_external_id;
  END IF;
  RETURN QUERY SELECT issued.outcome, issued.pin, issued.status, issued.issued_at,
                      issued.registration, issued.duplicates, held.claimed;
END
$$;
REVOKE ALL ON FUNCTION issue_pin_claimed FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_pin_claimed TO idservice_service;
