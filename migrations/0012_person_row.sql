-- One person row and one way to claim a PIN (issue 10, item 1).
--
-- person_row: what a birth registration puts in `person`, attribute for attribute in the order
-- of idservice/persons/rows.py `PersonRow` (tests/integration/test_person_row.py compares the
-- two). Every statement that writes a person takes its row as this one type, so no statement
-- picks columns by position. `record` is the record's canonical JSON text (stored as jsonb).
--
-- make_pin(prefix, serial): the only place SQL builds a PIN; idservice/pin/format.make_pin is
-- the same rule in Python (null, hence refused by person's primary key, for anything but a
-- 6-digit prefix and a serial in 0..999999). No SQL reads digits out of a PIN: callers pass
-- prefix and serial.
--
-- person_insert(): the only INSERT INTO person. Each row goes to its number unless that number
-- is taken (ON CONFLICT: a PIN is never issued twice, a race is simply lost), and the numbers
-- it took are counted in pin_block (in key order, so concurrent callers cannot deadlock on the
-- counters). Returns the rows inserted. The numbers passed must be distinct.
-- person_claim(): the allocator's random step for one row: the first of the candidate serials
-- (in draw order) not yet taken, claimed through person_insert(). Used by issue_pin() and by
-- the exact allocator's store (idservice/persons/bucket_store.py).
-- person_update(): a person's row rewritten in place (a correction that keeps the PIN).
-- issue_pin(): migration 0006's one-statement issuance, now fed a person_row and claiming
-- through person_claim(); same steps, same concurrency argument (see 0006).
CREATE TYPE person_row AS (
  registration_authority  text,
  registration_number     text,
  registered_on           date,
  province_code           text,
  full_name               text,
  name_folded             text,
  other_names_folded      text[],
  sex                     text,
  date_of_birth           date,
  record                  text
);

-- Not STRICT, so that the planner inlines it (a STRICT SQL function whose body is not strict is
-- called instead: measured ~150 us more per issuance); null in, null out all the same.
CREATE FUNCTION make_pin(prefix text, serial integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN prefix ~ '^[0-9]{6}$' AND serial BETWEEN 0 AND 999999
            THEN prefix || lpad(serial::text, 6, '0') END;

CREATE FUNCTION person_insert(p_prefix text[], p_serial integer[], p_row person_row[],
                              p_block_size integer)
RETURNS TABLE (pin text, issued_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH ins AS (
    INSERT INTO person AS p (pin, registration_authority, registration_number, registered_on,
                             province_code, full_name, name_folded, other_names_folded, sex,
                             date_of_birth, record)
    SELECT make_pin(p_prefix[r.ordinality], p_serial[r.ordinality]), r.registration_authority,
           r.registration_number, r.registered_on, r.province_code, r.full_name, r.name_folded,
           r.other_names_folded, r.sex, r.date_of_birth, r.record::jsonb
      FROM unnest(p_row) WITH ORDINALITY AS r
    ON CONFLICT ON CONSTRAINT person_pkey DO NOTHING
    RETURNING p.pin, p.issued_at
  ), counted AS (
    INSERT INTO pin_block AS b (prefix, block, used)
    SELECT u.prefix, u.serial / p_block_size, count(*)::integer
      FROM unnest(p_prefix, p_serial) AS u(prefix, serial)
      JOIN ins ON ins.pin = make_pin(u.prefix, u.serial)
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (prefix, block) DO UPDATE SET used = b.used + EXCLUDED.used
  )
  SELECT ins.pin::text, ins.issued_at FROM ins;
END
$$;

CREATE FUNCTION person_claim(p_prefix text, p_candidates integer[], p_block_size integer,
                             p_row person_row)
RETURNS TABLE (pin text, issued_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  v_serial integer;
BEGIN
  SELECT u.serial INTO v_serial
    FROM unnest(p_candidates) WITH ORDINALITY AS u(serial, o)
   WHERE NOT EXISTS (SELECT 1 FROM person x WHERE x.pin = make_pin(p_prefix, u.serial))
   ORDER BY u.o LIMIT 1;
  IF v_serial IS NOT NULL THEN
    RETURN QUERY SELECT c.pin, c.issued_at
                   FROM person_insert(ARRAY[p_prefix], ARRAY[v_serial], ARRAY[p_row],
                                      p_block_size) c;
  END IF;
END
$$;

CREATE FUNCTION person_update(p_pin text, p_row person_row) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_at timestamptz;
BEGIN
  UPDATE person
     SET registration_authority = (p_row).registration_authority,
         registration_number = (p_row).registration_number,
         registered_on = (p_row).registered_on,
         province_code = (p_row).province_code,
         full_name = (p_row).full_name,
         name_folded = (p_row).name_folded,
         other_names_folded = (p_row).other_names_folded,
         sex = (p_row).sex,
         date_of_birth = (p_row).date_of_birth,
         record = (p_row).record::jsonb,
         updated_at = clock_timestamp()
   WHERE pin = p_pin
  RETURNING updated_at INTO v_at;
  RETURN v_at;
END
$$;

DROP FUNCTION issue_pin(text, text, bytea, text, integer[], integer, date, text, text, text,
                        text[], text, date, jsonb, text, text, text, text);

CREATE FUNCTION issue_pin(
  p_row person_row, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_actor_type text, p_actor_id text, p_request_id text,
  p_source_ip text
) RETURNS TABLE (outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  found_reg record;
  v_pin text;
  v_at timestamptz;
  v_outcome text;
  v_authority text := (p_row).registration_authority;
  v_number text := (p_row).registration_number;
  v_details jsonb := jsonb_build_object(
    'registration', jsonb_build_object('authority', (p_row).registration_authority,
                                       'number', (p_row).registration_number));
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(v_authority || chr(31) || v_number, 7305));
  SELECT r.body_sha256, p.pin, p.status, p.issued_at, p.record->'registration' AS reg
    INTO found_reg
    FROM registration r JOIN person p ON p.pin = r.pin
   WHERE r.authority = v_authority AND r.number = v_number;
  IF FOUND THEN
    v_outcome := CASE WHEN found_reg.body_sha256 = p_digest THEN 'replayed'
                      ELSE 'registration_conflict' END;
    INSERT INTO audit_event (actor_type, actor_id, action, pin, outcome, request_id, source_ip,
                             details)
    VALUES (p_actor_type, p_actor_id, 'pin.issue', found_reg.pin, v_outcome, p_request_id,
            p_source_ip, v_details);
    RETURN QUERY SELECT v_outcome, found_reg.pin::text, found_reg.status, found_reg.issued_at,
                        found_reg.reg;
    RETURN;
  END IF;

  SELECT c.pin, c.issued_at INTO v_pin, v_at
    FROM person_claim(p_prefix, p_candidates, p_block_size, p_row) c;
  IF v_pin IS NULL THEN
    RETURN QUERY SELECT 'needs_exact'::text, NULL::text, NULL::text, NULL::timestamptz,
                        NULL::jsonb;
    RETURN;
  END IF;

  INSERT INTO registration (authority, number, body_sha256, pin)
  VALUES (v_authority, v_number, p_digest, v_pin);
  INSERT INTO audit_event (actor_type, actor_id, action, pin, outcome, request_id, source_ip,
                           details)
  VALUES (p_actor_type, p_actor_id, 'pin.issue', v_pin, 'issued', p_request_id, p_source_ip,
          v_details);
  RETURN QUERY SELECT 'issued'::text, v_pin, 'active'::text, v_at,
                      (p_row).record::jsonb->'registration';
END
$$;

REVOKE ALL ON FUNCTION make_pin(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION person_insert(text[], integer[], person_row[], integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION person_claim(text, integer[], integer, person_row) FROM PUBLIC;
REVOKE ALL ON FUNCTION person_update(text, person_row) FROM PUBLIC;
REVOKE ALL ON FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text, text,
                                 text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION make_pin(text, integer), person_insert(text[], integer[], person_row[],
  integer), person_claim(text, integer[], integer, person_row), person_update(text, person_row),
  issue_pin(person_row, bytea, text, integer[], integer, text, text, text, text)
  TO idservice_service;
