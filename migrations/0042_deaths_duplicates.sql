-- Live records (contract 9; issue 11 items 1 and 2): deaths and the duplicate check.
--
-- person gets three columns:
--   mother_pin, mother_name_folded: the mother as the duplicate check compares her (her PIN,
--     her name folded by idservice/persons/names.fold_name, the folding search uses); written
--     from the person_row like every other column, so the check is a lookup on the existing
--     index person_name_dob (name_folded, date_of_birth) plus a filter on the few rows found;
--   death: the death registration in force (null while the person is not deceased).
-- person_row grows the two mother attributes (idservice/persons/rows.PersonRow, same order);
-- person_insert() and person_update() write them.
--
-- Rows that exist already are folded here in SQL: NFD, combining marks U+0300-U+036F removed
-- (every mark Vietnamese uses), đ/Đ -> d, lower case, white space collapsed. On Vietnamese
-- names that is fold_name(); new rows are folded by fold_name() itself.
--
-- death_registration: the idempotency key space of death registrations, apart from births
-- (contract 9): (province_code, authority, number) -> the person and the body's digest.
-- A death undone by a correction leaves its registration row (history): the same key sent
-- again is answered as a replay, it never re-applies.
--
-- issue_pin() checks duplicates (contract 9) between the registration lookup and the claim:
-- an active person with the same folded name, date of birth, sex and mother answers
-- 'possible_duplicate' with the matching PINs, having written nothing, unless the request
-- carries an override (p_override_details not null): then it issues and writes
-- pin.duplicate_override beside pin.issue, naming the candidates.
ALTER TABLE person ADD COLUMN mother_pin text COLLATE "C";
ALTER TABLE person ADD COLUMN mother_name_folded text;
ALTER TABLE person ADD COLUMN death jsonb;

UPDATE person
   SET mother_pin = NULLIF(record->'mother'->>'pin', ''),
       mother_name_folded = btrim(regexp_replace(lower(regexp_replace(
           normalize(translate(record->'mother'->>'full_name', 'đĐ', 'dD'), NFD),
           '[\u0300-\u036f]', '', 'g')), '\s+', ' ', 'g'))
 WHERE record->'mother' IS NOT NULL AND jsonb_typeof(record->'mother') = 'object';

ALTER TYPE person_row ADD ATTRIBUTE mother_pin text;
ALTER TYPE person_row ADD ATTRIBUTE mother_name_folded text;

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

CREATE OR REPLACE FUNCTION person_update(p_pin text, p_row person_row) RETURNS timestamptz
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
         mother_pin = (p_row).mother_pin,
         mother_name_folded = (p_row).mother_name_folded,
         updated_at = clock_timestamp()
   WHERE pin = p_pin
  RETURNING updated_at INTO v_at;
  RETURN v_at;
END
$$;

-- The one statement of the duplicate rule (contract 9): active persons matching the row.
-- Used by issue_pin(), by the service's transactional paths (queries/persons.py
-- FIND_DUPLICATES) and, for pairs, by the quality report.
CREATE FUNCTION person_duplicates(p_row person_row) RETURNS TABLE (pin text)
LANGUAGE sql STABLE AS $$
  SELECT p.pin::text FROM person p
   WHERE p.name_folded = (p_row).name_folded
     AND p.date_of_birth = (p_row).date_of_birth
     AND p.sex = (p_row).sex
     AND p.status = 'active'
     AND CASE WHEN p.mother_pin IS NOT NULL AND (p_row).mother_pin IS NOT NULL
                THEN p.mother_pin = (p_row).mother_pin
              WHEN p.mother_name_folded IS NOT NULL AND (p_row).mother_name_folded IS NOT NULL
                THEN p.mother_name_folded = (p_row).mother_name_folded
              ELSE p.mother_name_folded IS NULL AND (p_row).mother_name_folded IS NULL END
   ORDER BY p.pin
$$;

CREATE FUNCTION person_duplicate_lock_key(p_row person_row) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashtextextended((p_row).name_folded || chr(31) || (p_row).date_of_birth::text
                        || chr(31) || (p_row).sex, 7307);

CREATE TABLE death_registration (
  province_code  text NOT NULL,
  authority      text NOT NULL,
  number         text NOT NULL,
  body_sha256    bytea NOT NULL,
  pin            text COLLATE "C" NOT NULL REFERENCES person (pin),
  created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (province_code, authority, number)
);
CREATE INDEX death_registration_pin ON death_registration (pin);
CREATE TRIGGER death_registration_append_only BEFORE UPDATE OR DELETE ON death_registration
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
ALTER TABLE death_registration ENABLE ALWAYS TRIGGER death_registration_append_only;
GRANT SELECT, INSERT ON death_registration TO idservice_service;

-- Its own advisory-lock key space (births use 7305).
CREATE FUNCTION death_registration_lock_key(province_code text, authority text, number text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashtextextended(province_code || chr(31) || authority || chr(31) || number, 7306);

DROP FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text, text, text,
                        text);

CREATE FUNCTION issue_pin(
  p_row person_row, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_actor_type text, p_actor_id text, p_request_id text,
  p_source_ip text, p_details text, p_override_details text
) RETURNS TABLE (outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb, duplicates text[])
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  found_reg record;
  v_pin text;
  v_at timestamptz;
  v_dups text[];
  v_province text := (p_row).province_code;
  v_authority text := (p_row).registration_authority;
  v_number text := (p_row).registration_number;
BEGIN
  PERFORM pg_advisory_xact_lock(registration_lock_key(v_province, v_authority, v_number));
  SELECT r.body_sha256, p.pin, p.status, p.issued_at, p.record->'registration' AS reg
    INTO found_reg
    FROM registration r JOIN person p ON p.pin = r.pin
   WHERE r.province_code = v_province AND r.authority = v_authority AND r.number = v_number;
  IF FOUND AND found_reg.body_sha256 <> p_digest THEN
    RETURN QUERY SELECT 'registration_conflict'::text, found_reg.pin::text, found_reg.status,
                        found_reg.issued_at, found_reg.reg, NULL::text[];
    RETURN;
  END IF;
  IF FOUND THEN
    PERFORM audit_write(p_actor_type, p_actor_id, p_request_id, p_source_ip,
                        ARRAY['pin.issue'], ARRAY[found_reg.pin::text], ARRAY[NULL::text],
                        ARRAY['replayed'], ARRAY[p_details]);
    RETURN QUERY SELECT 'replayed'::text, found_reg.pin::text, found_reg.status,
                        found_reg.issued_at, found_reg.reg, NULL::text[];
    RETURN;
  END IF;

  -- Two registrations of one child under different keys, at the same moment: the second
  -- waits for the first and then sees it.
  PERFORM pg_advisory_xact_lock(person_duplicate_lock_key(p_row));
  SELECT array_agg(d.pin) INTO v_dups FROM person_duplicates(p_row) d;
  IF v_dups IS NOT NULL AND p_override_details IS NULL THEN
    RETURN QUERY SELECT 'possible_duplicate'::text, NULL::text, NULL::text, NULL::timestamptz,
                        NULL::jsonb, v_dups;
    RETURN;
  END IF;

  SELECT c.pin, c.issued_at INTO v_pin, v_at
    FROM person_claim(p_prefix, p_candidates, p_block_size, p_row) c;
  IF v_pin IS NULL THEN
    RETURN QUERY SELECT 'needs_exact'::text, NULL::text, NULL::text, NULL::timestamptz,
                        NULL::jsonb, NULL::text[];
    RETURN;
  END IF;

  INSERT INTO registration (province_code, authority, number, body_sha256, pin)
  VALUES (v_province, v_authority, v_number, p_digest, v_pin);
  IF v_dups IS NULL THEN
    PERFORM audit_write(p_actor_type, p_actor_id, p_request_id, p_source_ip,
                        ARRAY['pin.issue'], ARRAY[v_pin], ARRAY[NULL::text], ARRAY['issued'],
                        ARRAY[p_details]);
  ELSE
    PERFORM audit_write(p_actor_type, p_actor_id, p_request_id, p_source_ip,
                        ARRAY['pin.issue', 'pin.duplicate_override'], ARRAY[v_pin, v_pin],
                        ARRAY[NULL::text, NULL::text], ARRAY['issued', 'issued'],
                        ARRAY[p_details, (p_override_details::jsonb
                                          || jsonb_build_object('candidates', v_dups))::text]);
  END IF;
  RETURN QUERY SELECT 'issued'::text, v_pin, 'active'::text, v_at,
                      (p_row).record::jsonb->'registration', v_dups;
END
$$;

REVOKE ALL ON FUNCTION person_duplicates(person_row) FROM PUBLIC;
REVOKE ALL ON FUNCTION person_duplicate_lock_key(person_row) FROM PUBLIC;
REVOKE ALL ON FUNCTION death_registration_lock_key(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text, text,
                                 text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION person_duplicates(person_row), person_duplicate_lock_key(person_row),
  death_registration_lock_key(text, text, text),
  issue_pin(person_row, bytea, text, integer[], integer, text, text, text, text, text, text)
  TO idservice_service;

-- An offline issuance synced into its reserved row (migrations/0030_reservations.sql) carries
-- the mother's columns too: the duplicate rule must see it like any other active person.
CREATE OR REPLACE FUNCTION person_take_reserved(p_pins text[], p_rows person_row[])
RETURNS TABLE (pin text, issued_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  UPDATE person AS p
     SET status = 'active',
         registration_authority = (r.pr).registration_authority,
         registration_number = (r.pr).registration_number,
         registered_on = (r.pr).registered_on,
         province_code = (r.pr).province_code,
         full_name = (r.pr).full_name,
         name_folded = (r.pr).name_folded,
         other_names_folded = (r.pr).other_names_folded,
         sex = (r.pr).sex,
         date_of_birth = (r.pr).date_of_birth,
         record = (r.pr).record::jsonb,
         mother_pin = (r.pr).mother_pin,
         mother_name_folded = (r.pr).mother_name_folded,
         issued_at = clock_timestamp(),
         updated_at = clock_timestamp()
    FROM (SELECT u.pin, p_rows[u.o] AS pr
            FROM unnest(p_pins) WITH ORDINALITY AS u(pin, o)) AS r
   WHERE p.pin = r.pin AND p.status = 'reserved'
  RETURNING p.pin::text, p.issued_at;
END
$$;
