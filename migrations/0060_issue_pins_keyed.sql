-- Issue 12 (speed): OSIA generateUIN requests join the single-issuance groups of
-- idservice/persons/coalesce.py (issue 16 goal 1) instead of each paying a statement and a
-- commit of its own. A member of a group may carry an external key (source, scope,
-- external_id: an OSIA transactionId), claimed inside the group's one statement and
-- transaction with exactly the outcomes issue_pin_claimed() (0057) had.
--
-- 1. external_claim_lock_key(): the advisory-lock key of one external key. A group takes every
--    member's claim lock first (sorted), then every registration lock, then every duplicate
--    lock (0059), so a claim's insert never waits on a transaction that holds other locks, and
--    two groups cannot wait on each other in a cycle. (The OpenCRVS claim,
--    claim_external_registration(), is a statement and transaction of its own that holds
--    nothing else while it waits.)
-- 2. issue_pins() takes three more arrays, p_sources, p_scopes, p_external_ids (an element
--    NULL in p_sources: that member has no key and is issue_pin() as in 0059), and answers
--    `claimed` per member (NULL without a key). For a keyed member, in the group's order:
--    the claim (insert, or find who holds the key; released meanwhile: claim again); the key
--    held with another digest: 'external_key_held', nothing written for that member; else
--    issue_pin(), and a refusal (registration_conflict, possible_duplicate) deletes the claim
--    this member made, so a corrected retry may use the key; needs_exact keeps it (the
--    service's exact path releases it if refused). Two members with one key behave as two
--    requests one after the other. The claim is written here once, inline: a function of
--    its own around issue_pin() cost about 0.05 ms of PostgreSQL CPU per OSIA issuance
--    (pg_stat_statements, track = all), half of what separated OSIA from POST /v1/pins.
-- 3. issue_pin_claimed() (a keyed request alone) is issue_pins() of that one member: the
--    same claim, locks and outcomes, one definition.

CREATE FUNCTION external_claim_lock_key(p_source text, p_scope text, p_external_id text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashtextextended(p_source || chr(31) || p_scope || chr(31) || p_external_id, 9281);
REVOKE ALL ON FUNCTION external_claim_lock_key(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION external_claim_lock_key(text, text, text) TO idservice_service;

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
  held bytea;
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
    i := e;
    claimed := NULL;
    IF p_sources[e] IS NOT NULL THEN
      LOOP
        INSERT INTO external_registration (source, scope, external_id, province_code,
                                           authority, number, registered_on, request_sha256)
        VALUES (p_sources[e], p_scopes[e], p_external_ids[e], (p_rows[e]).province_code,
                (p_rows[e]).registration_authority, (p_rows[e]).registration_number,
                (p_rows[e]).registered_on, p_digests[e])
        ON CONFLICT DO NOTHING;
        claimed := FOUND;
        EXIT WHEN claimed;
        SELECT x.request_sha256 INTO held
          FROM external_registration x
         WHERE x.source = p_sources[e] AND x.scope = p_scopes[e]
           AND x.external_id = p_external_ids[e];
        EXIT WHEN FOUND;  -- else released meanwhile: claim again
      END LOOP;
      IF NOT claimed AND held <> p_digests[e] THEN
        outcome := 'external_key_held';
        pin := NULL; status := NULL; issued_at := NULL; registration := NULL;
        duplicates := NULL;
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;
    SELECT x.outcome, x.pin, x.status, x.issued_at, x.registration, x.duplicates
      INTO outcome, pin, status, issued_at, registration, duplicates
      FROM issue_pin(p_rows[e], p_digests[e], p_prefixes[e],
                     p_candidates[(e - 1) * p_tries + 1 : e * p_tries], p_block_size,
                     p_actor_types[e], p_actor_ids[e], p_request_ids[e], p_source_ips[e],
                     p_details[e], p_override_details[e]) x;
    IF claimed AND outcome IN ('registration_conflict', 'possible_duplicate') THEN
      DELETE FROM external_registration x
       WHERE x.source = p_sources[e] AND x.scope = p_scopes[e]
         AND x.external_id = p_external_ids[e];
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION issue_pins FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_pins TO idservice_service;

-- Same signature and answer as 0057 (the service calls it for a keyed request alone; tests
-- revoke it to make that statement fail).
CREATE OR REPLACE FUNCTION issue_pin_claimed(
  p_source text, p_scope text, p_external_id text,
  p_row person_row, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_actor_type text, p_actor_id text, p_request_id text,
  p_source_ip text, p_details text, p_override_details text,
  OUT outcome text, OUT pin text, OUT status text, OUT issued_at timestamptz,
  OUT registration jsonb, OUT duplicates text[], OUT claimed boolean
)
LANGUAGE sql VOLATILE
BEGIN ATOMIC
  SELECT g.outcome, g.pin, g.status, g.issued_at, g.registration, g.duplicates, g.claimed
    FROM issue_pins(ARRAY[p_row], ARRAY[p_digest], ARRAY[p_prefix], p_candidates,
                    coalesce(array_length(p_candidates, 1), 0), p_block_size,
                    ARRAY[p_actor_type], ARRAY[p_actor_id], ARRAY[p_request_id],
                    ARRAY[p_source_ip], ARRAY[p_details], ARRAY[p_override_details],
                    ARRAY[p_source], ARRAY[p_scope], ARRAY[p_external_id]) g;
END;
