-- Issue 12 (speed): OSIA generateUIN requests join the single-issuance groups of
-- idservice/persons/coalesce.py (issue 16 goal 1) instead of each paying a statement and a
-- commit of its own. A member of a group may carry an external key (source, scope,
-- external_id: an OSIA transactionId); it is then issued as issue_pin_claimed() (0057) issues
-- it, inside the group's one statement and transaction.
--
-- 1. external_claim_lock_key(): the advisory-lock key of one external key. Every statement
--    that claims a key for an issuance takes this lock before anything else, so the claim's
--    insert never waits on another transaction that holds other locks: issue_pin_claimed()
--    takes it first (then issue_pin()'s registration and duplicate locks, as before), and a
--    group takes every member's claim lock first (sorted), then every registration lock, then
--    every duplicate lock (0059). Two groups, or a group and a single statement, cannot wait on
--    each other in a cycle. (The OpenCRVS claim, claim_external_registration(), is a statement
--    and transaction of its own that holds nothing else while it waits.)
-- 2. issue_pin_claimed(): unchanged but for that first lock.
-- 3. issue_pins() takes three more arrays, p_sources, p_scopes, p_external_ids (an element
--    NULL in p_sources: that member has no key and runs issue_pin() as in 0059), and answers
--    `claimed` per member (NULL without a key). A keyed member's outcomes are exactly
--    issue_pin_claimed()'s, 'external_key_held' included (nothing written for that member);
--    two members of one group with one key behave as two requests one after the other (the
--    second finds the first's claim: the same digest is replayed, another one is held).

CREATE FUNCTION external_claim_lock_key(p_source text, p_scope text, p_external_id text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashtextextended(p_source || chr(31) || p_scope || chr(31) || p_external_id, 9281);
REVOKE ALL ON FUNCTION external_claim_lock_key(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION external_claim_lock_key(text, text, text) TO idservice_service;

CREATE OR REPLACE FUNCTION issue_pin_claimed(
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
  PERFORM pg_advisory_xact_lock(external_claim_lock_key(p_source, p_scope, p_external_id));
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

DROP FUNCTION issue_pins(person_row[], bytea[], text[], integer[], integer, integer, text[],
                         text[], text[], text[], text[], text[]);

CREATE FUNCTION issue_pins(
  p_rows person_row[], p_digests bytea[], p_prefixes text[], p_candidates integer[],
  p_tries integer, p_block_size integer, p_actor_types text[], p_actor_ids text[],
  p_request_ids text[], p_source_ips text[], p_details text[], p_override_details text[],
  p_sources text[], p_scopes text[], p_external_ids text[]
) RETURNS TABLE (i integer, outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb, duplicates text[], claimed boolean)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  n integer := coalesce(array_length(p_rows, 1), 0);
BEGIN
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT external_claim_lock_key(k.source, k.scope, k.external_id) AS k
      FROM unnest(p_sources, p_scopes, p_external_ids) AS k(source, scope, external_id)
     WHERE k.source IS NOT NULL ORDER BY 1) s;
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT registration_lock_key((r).province_code, (r).registration_authority,
                                          (r).registration_number) AS k
      FROM unnest(p_rows) AS r ORDER BY 1) s;
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT person_duplicate_lock_key(r) AS k
      FROM unnest(p_rows) AS r ORDER BY 1) s;
  FOR e IN 1 .. n LOOP
    IF p_sources[e] IS NULL THEN
      RETURN QUERY
        SELECT e, x.outcome, x.pin, x.status, x.issued_at, x.registration, x.duplicates,
               NULL::boolean
          FROM issue_pin(p_rows[e], p_digests[e], p_prefixes[e],
                         p_candidates[(e - 1) * p_tries + 1 : e * p_tries], p_block_size,
                         p_actor_types[e], p_actor_ids[e], p_request_ids[e], p_source_ips[e],
                         p_details[e], p_override_details[e]) x;
    ELSE
      RETURN QUERY
        SELECT e, x.outcome, x.pin, x.status, x.issued_at, x.registration, x.duplicates,
               x.claimed
          FROM issue_pin_claimed(p_sources[e], p_scopes[e], p_external_ids[e], p_rows[e],
                                 p_digests[e], p_prefixes[e],
                                 p_candidates[(e - 1) * p_tries + 1 : e * p_tries],
                                 p_block_size, p_actor_types[e], p_actor_ids[e],
                                 p_request_ids[e], p_source_ips[e], p_details[e],
                                 p_override_details[e]) x;
    END IF;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION issue_pins FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_pins TO idservice_service;
