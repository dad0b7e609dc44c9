-- Issue 16 goal 1: a group of single issuances counts its numbers in `pin_block` once, at its
-- end, as it writes its registrations and events since 0072.
--
-- Why: person_insert() (0012, 0042) counts the numbers it inserted in the same statement, a
-- CTE that upserts their (prefix, block) rows. For the one row of a single issuance that
-- count was about 40 % of the insert's time (a DO loop of 5,000 one-row person_insert() calls:
-- ~60-75 us per row with the count, ~37-49 without); counted for a group of 8 in one statement
-- it is about half of that per row.
--
-- 1. pin_block_count(): the one place that counts numbers in pin_block (sorted by prefix and
--    block: two transactions take the rows' locks in one order).
-- 2. person_insert(): counts through pin_block_count() the numbers it inserted, unless
--    `p_block_size` is NULL: then the caller counts them itself, later in its transaction.
-- 3. person_claim() also answers the serial it claimed, so that a caller that counts later
--    knows it (no SQL reads digits out of a PIN; 0012).
-- 4. issue_pins() claims each member's number uncounted and counts the group's numbers with
--    one pin_block_count() at its end, beside the registrations and the events (0072); the
--    rest of 0072's function is unchanged. Nothing reads pin_block inside the group: only the
--    exact allocator does, in a transaction of its own, which sees the group's counts once it
--    has committed, as before.

CREATE FUNCTION pin_block_count(p_prefix text[], p_serial integer[], p_block_size integer)
RETURNS void
LANGUAGE sql VOLATILE
BEGIN ATOMIC
  INSERT INTO pin_block AS b (prefix, block, used)
  SELECT u.prefix, u.serial / p_block_size, count(*)::integer
    FROM unnest(p_prefix, p_serial) AS u(prefix, serial)
   GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (prefix, block) DO UPDATE SET used = b.used + EXCLUDED.used;
END;
REVOKE ALL ON FUNCTION pin_block_count(text[], integer[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pin_block_count(text[], integer[], integer) TO idservice_service;

CREATE OR REPLACE FUNCTION person_insert(p_prefix text[], p_serial integer[],
                                         p_row person_row[], p_block_size integer)
RETURNS TABLE (pin text, issued_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH ins AS (
    INSERT INTO person AS p (pin, registration_authority, registration_number, registered_on,
                             province_code, full_name, name_folded, other_names_folded, sex,
                             date_of_birth, record, mother_pin, mother_name_folded)
    SELECT make_pin(p_prefix[r.ordinality], p_serial[r.ordinality]), r.registration_authority,
           r.registration_number, r.registered_on, r.province_code, r.full_name, r.name_folded,
           r.other_names_folded, r.sex, r.date_of_birth, r.record::jsonb, r.mother_pin,
           r.mother_name_folded
      FROM unnest(p_row) WITH ORDINALITY AS r
    ON CONFLICT ON CONSTRAINT person_pkey DO NOTHING
    RETURNING p.pin, p.issued_at
  ), counted AS (
    -- one row when there is something to count (else no pin_block statement at all); the
    -- outer join reads it once for the first inserted row and keeps every inserted row
    SELECT pin_block_count(array_agg(u.prefix), array_agg(u.serial), p_block_size)
      FROM unnest(p_prefix, p_serial) AS u(prefix, serial)
      JOIN ins ON ins.pin = make_pin(u.prefix, u.serial)
     WHERE p_block_size IS NOT NULL
    HAVING count(*) > 0
  )
  SELECT ins.pin::text, ins.issued_at FROM ins LEFT JOIN counted ON true;
END
$$;

DROP FUNCTION person_claim(text, integer[], integer, person_row);
CREATE FUNCTION person_claim(p_prefix text, p_candidates integer[], p_block_size integer,
                             p_row person_row)
RETURNS TABLE (pin text, issued_at timestamptz, serial integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_candidate integer;
  v_serial integer;
BEGIN
  FOREACH v_candidate IN ARRAY coalesce(p_candidates, '{}') LOOP
    PERFORM 1 FROM person x WHERE x.pin = make_pin(p_prefix, v_candidate);
    IF NOT FOUND THEN
      v_serial := v_candidate;
      EXIT;
    END IF;
  END LOOP;
  IF v_serial IS NOT NULL THEN
    RETURN QUERY SELECT c.pin, c.issued_at, v_serial
                   FROM person_insert(ARRAY[p_prefix], ARRAY[v_serial], ARRAY[p_row],
                                      p_block_size) c;
  END IF;
END
$$;
REVOKE ALL ON FUNCTION person_claim(text, integer[], integer, person_row) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION person_claim(text, integer[], integer, person_row)
  TO idservice_service;

-- 0072's issue_pins(), its numbers claimed uncounted and counted at the end.
CREATE OR REPLACE FUNCTION issue_pins(
  p_rows person_row[], p_digests bytea[], p_prefixes text[], p_candidates integer[],
  p_tries integer, p_block_size integer, p_actor_types text[], p_actor_ids text[],
  p_request_ids text[], p_source_ips text[], p_details text[], p_override_details text[],
  p_sources text[], p_scopes text[], p_external_ids text[]
) RETURNS TABLE (i integer, outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb, duplicates text[], claimed boolean)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
DECLARE
  n integer := coalesce(array_length(p_rows, 1), 0);
  held bytea;
  found_reg record;
  r person_row;
  v_pin text;
  v_at timestamptz;
  v_serial integer;
  v_dups text[];
  k integer;
  v_key text;
  -- the registrations this group issued, written at the end (member positions)
  reg_members integer[] := '{}';
  reg_keys text[] := '{}';  -- registration_lock_key()'s text: province, authority, number
  reg_pins text[] := '{}';
  reg_serials integer[] := '{}';
  reg_at timestamptz[] := '{}';
  -- the group's events, written at the end, in order
  ev_members integer[] := '{}';
  ev_action text[] := '{}';
  ev_pin text[] := '{}';
  ev_outcome text[] := '{}';
  ev_details text[] := '{}';
BEGIN
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT external_claim_lock_key(x.source, x.scope, x.external_id) AS k
      FROM unnest(p_sources, p_scopes, p_external_ids) AS x(source, scope, external_id)
     WHERE x.source IS NOT NULL ORDER BY 1) s;
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT registration_lock_key((x).province_code, (x).registration_authority,
                                          (x).registration_number) AS k
      FROM unnest(p_rows) AS x ORDER BY 1) s;
  PERFORM count(pg_advisory_xact_lock(s.k)) FROM (
    SELECT DISTINCT person_duplicate_lock_key(x) AS k
      FROM unnest(p_rows) AS x ORDER BY 1) s;
  FOR e IN 1 .. n LOOP
    i := e;
    r := p_rows[e];
    claimed := NULL;
    pin := NULL; status := NULL; issued_at := NULL; registration := NULL; duplicates := NULL;
    IF p_sources[e] IS NOT NULL THEN
      LOOP
        INSERT INTO external_registration (source, scope, external_id, province_code,
                                           authority, number, registered_on, request_sha256)
        VALUES (p_sources[e], p_scopes[e], p_external_ids[e], r.province_code,
                r.registration_authority, r.registration_number, r.registered_on,
                p_digests[e])
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
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;

    -- The registration key: issued earlier in this group (not written yet), or committed.
    v_key := r.province_code || chr(31) || r.registration_authority || chr(31)
             || r.registration_number;
    k := array_position(reg_keys, v_key);
    IF k IS NOT NULL THEN
      SELECT p_digests[reg_members[k]] AS body_sha256, reg_pins[k] AS pin,
             'active'::text AS status, reg_at[k] AS issued_at,
             (p_rows[reg_members[k]]).record::jsonb->'registration' AS reg
        INTO found_reg;
    ELSE
      SELECT x.body_sha256, p.pin, p.status, p.issued_at, p.record->'registration' AS reg
        INTO found_reg
        FROM registration x JOIN person p ON p.pin = x.pin
       WHERE x.province_code = r.province_code AND x.authority = r.registration_authority
         AND x.number = r.registration_number;
    END IF;
    IF k IS NOT NULL OR FOUND THEN
      pin := found_reg.pin; status := found_reg.status; issued_at := found_reg.issued_at;
      registration := found_reg.reg;
      IF found_reg.body_sha256 <> p_digests[e] THEN
        outcome := 'registration_conflict';
      ELSE
        outcome := 'replayed';
        ev_members := ev_members || e; ev_action := ev_action || 'pin.issue'::text;
        ev_pin := ev_pin || found_reg.pin::text; ev_outcome := ev_outcome || 'replayed'::text;
        ev_details := ev_details || p_details[e];
      END IF;
    ELSE
      SELECT array_agg(d.pin) INTO v_dups FROM person_duplicates(r) d;
      IF v_dups IS NOT NULL AND p_override_details[e] IS NULL THEN
        outcome := 'possible_duplicate';
        duplicates := v_dups;
      ELSE
        SELECT c.pin, c.issued_at, c.serial INTO v_pin, v_at, v_serial
          FROM person_claim(p_prefixes[e], p_candidates[(e - 1) * p_tries + 1 : e * p_tries],
                            NULL, r) c;  -- counted at the end
        IF v_pin IS NULL THEN
          outcome := 'needs_exact';
        ELSE
          outcome := 'issued';
          pin := v_pin; status := 'active'; issued_at := v_at;
          registration := r.record::jsonb->'registration'; duplicates := v_dups;
          reg_members := reg_members || e; reg_keys := reg_keys || v_key;
          reg_pins := reg_pins || v_pin; reg_serials := reg_serials || v_serial;
          reg_at := reg_at || v_at;
          ev_members := ev_members || e; ev_action := ev_action || 'pin.issue'::text;
          ev_pin := ev_pin || v_pin; ev_outcome := ev_outcome || 'issued'::text;
          ev_details := ev_details || p_details[e];
          IF v_dups IS NOT NULL THEN
            ev_members := ev_members || e;
            ev_action := ev_action || 'pin.duplicate_override'::text;
            ev_pin := ev_pin || v_pin; ev_outcome := ev_outcome || 'issued'::text;
            ev_details := ev_details || (p_override_details[e]::jsonb
                                         || jsonb_build_object('candidates', v_dups))::text;
          END IF;
        END IF;
      END IF;
    END IF;
    IF claimed AND outcome IN ('registration_conflict', 'possible_duplicate') THEN
      DELETE FROM external_registration x
       WHERE x.source = p_sources[e] AND x.scope = p_scopes[e]
         AND x.external_id = p_external_ids[e];
    END IF;
    RETURN NEXT;
  END LOOP;

  IF cardinality(reg_members) > 0 THEN
    PERFORM pin_block_count(ARRAY(SELECT p_prefixes[m] FROM unnest(reg_members)
                                   WITH ORDINALITY u(m, j) ORDER BY j),
                            reg_serials, p_block_size);
    INSERT INTO registration (province_code, authority, number, body_sha256, pin)
    SELECT (p_rows[m]).province_code, (p_rows[m]).registration_authority,
           (p_rows[m]).registration_number, p_digests[m], reg_pins[j]
      FROM unnest(reg_members) WITH ORDINALITY AS u(m, j)
     ORDER BY u.j;
  END IF;
  IF cardinality(ev_members) > 0 THEN
    PERFORM audit_write_each(
      ARRAY(SELECT p_actor_types[m] FROM unnest(ev_members) WITH ORDINALITY u(m, j) ORDER BY j),
      ARRAY(SELECT p_actor_ids[m] FROM unnest(ev_members) WITH ORDINALITY u(m, j) ORDER BY j),
      ARRAY(SELECT p_request_ids[m] FROM unnest(ev_members) WITH ORDINALITY u(m, j) ORDER BY j),
      ARRAY(SELECT p_source_ips[m] FROM unnest(ev_members) WITH ORDINALITY u(m, j) ORDER BY j),
      ev_action, ev_pin, array_fill(NULL::text, ARRAY[cardinality(ev_members)]), ev_outcome,
      ev_details);
  END IF;
END
$$;
