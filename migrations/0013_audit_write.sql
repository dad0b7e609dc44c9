-- One writer of audit events (issue 10, item 4).
--
-- audit_write() is the only statement of the service that inserts into audit_event: the Python
-- recorder (idservice/audit/recorder.py, queries/audit.WRITE_EVENTS) calls it for every event,
-- and issue_pin() calls it for the event of its one-statement issuance, instead of each writing
-- its own INSERT. One event per element of the arrays (same length), in array order; `details`
-- as JSON text, prepared by the recorder (idservice/audit/recorder.event_columns) on both
-- paths. Caller's rights (SECURITY INVOKER): the column grants of migration 0009 still decide
-- what a role may write, and the database still stamps id, txid and at.
CREATE FUNCTION audit_write(p_actor_type text, p_actor_id text, p_request_id text,
                            p_source_ip text, p_action text[], p_pin text[], p_purpose text[],
                            p_outcome text[], p_details text[])
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO audit_event (actor_type, actor_id, action, pin, purpose, outcome, request_id,
                           source_ip, details)
  SELECT p_actor_type, p_actor_id, u.action, u.pin, u.purpose, u.outcome, p_request_id,
         p_source_ip, u.details::jsonb
    FROM unnest(p_action, p_pin, p_purpose, p_outcome, p_details)
         AS u(action, pin, purpose, outcome, details);
END
$$;
REVOKE ALL ON FUNCTION audit_write(text, text, text, text, text[], text[], text[], text[],
                                   text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_write(text, text, text, text, text[], text[], text[], text[],
                                      text[]) TO idservice_service;

-- issue_pin() of 0012, writing its event through audit_write() with the details the Python
-- side prepared (`p_details`, the same for every outcome: the registration key), so the
-- pin.issue event has one source whichever path issues.
DROP FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text, text, text);

CREATE FUNCTION issue_pin(
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
  v_authority text := (p_row).registration_authority;
  v_number text := (p_row).registration_number;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(v_authority || chr(31) || v_number, 7305));
  SELECT r.body_sha256, p.pin, p.status, p.issued_at, p.record->'registration' AS reg
    INTO found_reg
    FROM registration r JOIN person p ON p.pin = r.pin
   WHERE r.authority = v_authority AND r.number = v_number;
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

  INSERT INTO registration (authority, number, body_sha256, pin)
  VALUES (v_authority, v_number, p_digest, v_pin);
  PERFORM audit_write(p_actor_type, p_actor_id, p_request_id, p_source_ip,
                      ARRAY['pin.issue'], ARRAY[v_pin], ARRAY[NULL::text], ARRAY['issued'],
                      ARRAY[p_details]);
  RETURN QUERY SELECT 'issued'::text, v_pin, 'active'::text, v_at,
                      (p_row).record::jsonb->'registration';
END
$$;
REVOKE ALL ON FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text, text,
                                 text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_pin(person_row, bytea, text, integer[], integer, text, text,
                                    text, text, text) TO idservice_service;
