-- Single-request issuance in one statement (one round trip instead of seven).
--
-- The same steps as the Python path (idservice/persons/issuance.py), in the caller's rights
-- (SECURITY INVOKER): lock the registration key, look it up, and either answer the replay or
-- conflict, or claim the first free of the caller's CSPRNG candidates by inserting the person,
-- count it in its block, insert the registration, and write the audit event - all in the
-- statement's transaction. In PL/pgSQL each statement takes a fresh snapshot (READ COMMITTED,
-- VOLATILE), so the lookup after the lock sees a registration committed by the previous holder.
-- When every candidate is taken it returns outcome 'needs_exact' having written nothing, and
-- the caller falls back to the exact k-th-free allocator in Python.
CREATE FUNCTION issue_pin(
  p_authority text, p_number text, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_registered_on date, p_province text, p_full_name text,
  p_name_folded text, p_other_names_folded text[], p_sex text, p_dob date, p_record jsonb,
  p_actor_type text, p_actor_id text, p_request_id text, p_source_ip text
) RETURNS TABLE (outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  found_reg record;
  v_pin text;
  v_serial integer;
  v_at timestamptz;
  v_outcome text;
  v_details jsonb := jsonb_build_object(
    'registration', jsonb_build_object('authority', p_authority, 'number', p_number));
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(p_authority || chr(31) || p_number, 7305));
  SELECT r.body_sha256, p.pin, p.status, p.issued_at, p.record->'registration' AS reg
    INTO found_reg
    FROM registration r JOIN person p ON p.pin = r.pin
   WHERE r.authority = p_authority AND r.number = p_number;
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

  SELECT c.pin, c.serial INTO v_pin, v_serial
    FROM (SELECT p_prefix || lpad(u.serial::text, 6, '0') COLLATE "C" AS pin, u.serial, u.o
            FROM unnest(p_candidates) WITH ORDINALITY AS u(serial, o)) c
   WHERE NOT EXISTS (SELECT 1 FROM person x WHERE x.pin = c.pin)
   ORDER BY c.o LIMIT 1;
  IF v_pin IS NOT NULL THEN
    INSERT INTO person (pin, registration_authority, registration_number, registered_on,
                        province_code, full_name, name_folded, other_names_folded, sex,
                        date_of_birth, record)
    VALUES (v_pin, p_authority, p_number, p_registered_on, p_province, p_full_name,
            p_name_folded, p_other_names_folded, p_sex, p_dob, p_record)
    ON CONFLICT ON CONSTRAINT person_pkey DO NOTHING
    RETURNING person.issued_at INTO v_at;
  END IF;
  IF v_at IS NULL THEN
    RETURN QUERY SELECT 'needs_exact'::text, NULL::text, NULL::text, NULL::timestamptz,
                        NULL::jsonb;
    RETURN;
  END IF;

  INSERT INTO pin_block AS b (prefix, block, used)
  VALUES (p_prefix, v_serial / p_block_size, 1)
  ON CONFLICT (prefix, block) DO UPDATE SET used = b.used + 1;
  INSERT INTO registration (authority, number, body_sha256, pin)
  VALUES (p_authority, p_number, p_digest, v_pin);
  INSERT INTO audit_event (actor_type, actor_id, action, pin, outcome, request_id, source_ip,
                           details)
  VALUES (p_actor_type, p_actor_id, 'pin.issue', v_pin, 'issued', p_request_id, p_source_ip,
          v_details);
  RETURN QUERY SELECT 'issued'::text, v_pin, 'active'::text, v_at, p_record->'registration';
END
$$;
REVOKE ALL ON FUNCTION issue_pin FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_pin TO idservice_service;
