-- The registration key is (province_code, authority, number) (contract 7; issue 9 item 6).
--
-- Keyed on (authority, number) alone, a registrar of one province could issue a PIN for a
-- registration of another province's authority and block the real one forever (rows are never
-- deleted): the 409 registration_conflict of the rightful registrar. With the province in the
-- key the same authority and number in another province is another registration, and the
-- service refuses a province outside the registrar's jurisdiction before any lookup, so a
-- registrar can only ever create, probe or block keys of its own provinces.
--
-- Existing rows take the province of the registration they issued (copied into person at
-- issuance). registration_lock_key() is the one definition of the advisory-lock key that
-- serialises retries of one registration (issue_pin() and idservice/queries/persons.py).
ALTER TABLE registration ADD COLUMN province_code text;
UPDATE registration r SET province_code = p.province_code FROM person p WHERE p.pin = r.pin;
ALTER TABLE registration ALTER COLUMN province_code SET NOT NULL;
ALTER TABLE registration DROP CONSTRAINT registration_pkey;
ALTER TABLE registration ADD CONSTRAINT registration_pkey
  PRIMARY KEY (province_code, authority, number);

CREATE FUNCTION registration_lock_key(province_code text, authority text, number text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN hashtextextended(province_code || chr(31) || authority || chr(31) || number, 7305);
REVOKE ALL ON FUNCTION registration_lock_key(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION registration_lock_key(text, text, text) TO idservice_service;

-- issue_pin() of 0013 with the new key.
CREATE OR REPLACE FUNCTION issue_pin(
  p_row person_row, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_actor_type text, p_actor_id text, p_request_id text,
  p_source_ip text, p_details text
) RETURNS TABLE (outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  found_reg record;
  v_pin text;
  v_at timestamptz;
  v_outcome text;
  v_province text := (p_row).province_code;
  v_authority text := (p_row).registration_authority;
  v_number text := (p_row).registration_number;
BEGIN
  PERFORM pg_advisory_xact_lock(registration_lock_key(v_province, v_authority, v_number));
  SELECT r.body_sha256, p.pin, p.status, p.issued_at, p.record->'registration' AS reg
    INTO found_reg
    FROM registration r JOIN person p ON p.pin = r.pin
   WHERE r.province_code = v_province AND r.authority = v_authority AND r.number = v_number;
  IF FOUND THEN
    v_outcome := CASE WHEN found_reg.body_sha256 = p_digest THEN 'replayed'
                      ELSE 'registration_conflict' END;
    PERFORM audit_write(p_actor_type, p_actor_id, p_request_id, p_source_ip,
                        ARRAY['pin.issue'], ARRAY[found_reg.pin::text], ARRAY[NULL::text],
                        ARRAY[v_outcome], ARRAY[p_details]);
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

  INSERT INTO registration (province_code, authority, number, body_sha256, pin)
  VALUES (v_province, v_authority, v_number, p_digest, v_pin);
  PERFORM audit_write(p_actor_type, p_actor_id, p_request_id, p_source_ip,
                      ARRAY['pin.issue'], ARRAY[v_pin], ARRAY[NULL::text], ARRAY['issued'],
                      ARRAY[p_details]);
  RETURN QUERY SELECT 'issued'::text, v_pin, 'active'::text, v_at,
                      (p_row).record::jsonb->'registration';
END
$$;
