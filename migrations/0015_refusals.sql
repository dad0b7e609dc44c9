-- Refusals are audited by the service in one way (contract 7; issue 9 item 7).
--
-- issue_pin() of 0014 no longer writes the event of a registration conflict: it answers
-- 'registration_conflict' having written nothing, and the service records the refusal
-- (outcome `refused`, details.code `registration_conflict`) as it records every other one
-- (idservice/persons/refusals.py). It still writes the events of what it does: 'issued' and
-- 'replayed'.
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
  IF FOUND AND found_reg.body_sha256 <> p_digest THEN
    RETURN QUERY SELECT 'registration_conflict'::text, found_reg.pin::text, found_reg.status,
                        found_reg.issued_at, found_reg.reg;
    RETURN;
  END IF;
  IF FOUND THEN
    v_outcome := 'replayed';
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
