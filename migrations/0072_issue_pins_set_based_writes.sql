-- Issue 16 goal 1: a group of single issuances writes its registrations and its audit events
-- once per group, set-based, as a batch chunk does, instead of one statement per member.
--
-- Why (pg_stat_statements, track = all, under bench/issuance.py's single issuances): inside
-- issue_pins(), each member's issue_pin() wrote its registration with an INSERT of its own
-- (0.059 ms per row, 0.028 of it the liveBirth trigger, a statement-level trigger that ran once
-- per member) and its event with an audit_write() of its own (0.046 ms); the batch writes the
-- same rows once per 500-line chunk for about half of that per row.
--
-- 1. audit_write_each(): events of several requests (actor, request id and source per event)
--    in one INSERT, in array order: the one INSERT INTO audit_event. audit_write() (0013),
--    every event of one request, is now audit_write_each() with its actor repeated, so an
--    event has one writer whichever path writes it; queries/audit.WRITE_EVENT_EACH (a group
--    of verifications) calls it too.
-- 2. issue_pins() (0059, 0060) does issue_pin()'s steps itself for each member, in the group's
--    order, and keeps each issued member's registration and every member's events in arrays:
--    one INSERT INTO registration (one liveBirth trigger call) and one audit_write_each() at
--    the end of the group, inside the same statement and transaction. Same outcomes:
--    - the persons are still inserted member by member (person_claim()), so a later member
--      of the group sees an earlier one as a possible duplicate, as before;
--    - a later member with an earlier member's registration key finds it among the group's
--      pending registrations (its registration row is not written yet): the same body is a
--      replay of that PIN, another body a registration_conflict, as if it had been written;
--    - another transaction with one of the group's keys waits for the group's advisory locks,
--      held until the commit, and then finds the committed row: nothing changes there;
--    - events keep the group's order (members, then each member's own order), and any error
--      still aborts the whole statement.
-- 3. issue_pin() (a request alone) is issue_pins() of that one member, as issue_pin_claimed()
--    already is (0060): one definition of a single issuance.
-- These functions are PL/pgSQL, not SQL: PostgreSQL 15 plans a (non-inlined) SQL function's
-- body again at every call, where PL/pgSQL keeps its plans for the session. Measured on
-- Debian's 15, one audit_write() per transaction from a client: ~100 us more per call as a
-- SQL function calling a SQL function. issue_pin_claimed() (a SQL function since 0060) is
-- PL/pgSQL now for the same reason.

CREATE FUNCTION audit_write_each(p_actor_types text[], p_actor_ids text[],
                                 p_request_ids text[], p_source_ips text[], p_action text[],
                                 p_pin text[], p_purpose text[], p_outcome text[],
                                 p_details text[])
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO audit_event (actor_type, actor_id, action, pin, purpose, outcome, request_id,
                           source_ip, details)
  SELECT u.actor_type, u.actor_id, u.action, u.pin, u.purpose, u.outcome, u.request_id,
         u.source_ip, u.details::jsonb
    FROM unnest(p_actor_types, p_actor_ids, p_request_ids, p_source_ips, p_action, p_pin,
                p_purpose, p_outcome, p_details) WITH ORDINALITY
         AS u(actor_type, actor_id, request_id, source_ip, action, pin, purpose, outcome,
              details, k)
   ORDER BY u.k;
END
$$;
REVOKE ALL ON FUNCTION audit_write_each(text[], text[], text[], text[], text[], text[], text[],
                                        text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_write_each(text[], text[], text[], text[], text[], text[],
                                           text[], text[], text[])
  TO idservice_service, idservice_auditor, idservice_administrator;

CREATE OR REPLACE FUNCTION audit_write(p_actor_type text, p_actor_id text, p_request_id text,
                                       p_source_ip text, p_action text[], p_pin text[],
                                       p_purpose text[], p_outcome text[], p_details text[])
RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  n integer := coalesce(cardinality(p_action), 0);
BEGIN
  PERFORM audit_write_each(array_fill(p_actor_type, ARRAY[n]), array_fill(p_actor_id, ARRAY[n]),
                           array_fill(p_request_id, ARRAY[n]), array_fill(p_source_ip, ARRAY[n]),
                           p_action, p_pin, p_purpose, p_outcome, p_details);
END
$$;

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
  v_dups text[];
  k integer;
  v_key text;
  -- the registrations this group issued, written at the end (member positions)
  reg_members integer[] := '{}';
  reg_keys text[] := '{}';  -- registration_lock_key()'s text: province, authority, number
  reg_pins text[] := '{}';
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
        SELECT c.pin, c.issued_at INTO v_pin, v_at
          FROM person_claim(p_prefixes[e], p_candidates[(e - 1) * p_tries + 1 : e * p_tries],
                            p_block_size, r) c;
        IF v_pin IS NULL THEN
          outcome := 'needs_exact';
        ELSE
          outcome := 'issued';
          pin := v_pin; status := 'active'; issued_at := v_at;
          registration := r.record::jsonb->'registration'; duplicates := v_dups;
          reg_members := reg_members || e; reg_keys := reg_keys || v_key;
          reg_pins := reg_pins || v_pin;
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

-- A request alone: issue_pins() of that one member (same outcomes, same locks); a keyed
-- request alone, issue_pin_claimed() (0060), likewise.
CREATE OR REPLACE FUNCTION issue_pin(
  p_row person_row, p_digest bytea, p_prefix text, p_candidates integer[],
  p_block_size integer, p_actor_type text, p_actor_id text, p_request_id text,
  p_source_ip text, p_details text, p_override_details text
) RETURNS TABLE (outcome text, pin text, status text, issued_at timestamptz,
                 registration jsonb, duplicates text[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RETURN QUERY
    SELECT g.outcome, g.pin, g.status, g.issued_at, g.registration, g.duplicates
      FROM issue_pins(ARRAY[p_row], ARRAY[p_digest], ARRAY[p_prefix], p_candidates,
                      coalesce(array_length(p_candidates, 1), 0), p_block_size,
                      ARRAY[p_actor_type], ARRAY[p_actor_id], ARRAY[p_request_id],
                      ARRAY[p_source_ip], ARRAY[p_details], ARRAY[p_override_details],
                      ARRAY[NULL::text], ARRAY[NULL::text], ARRAY[NULL::text]) g;
END
$$;

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
BEGIN
  SELECT g.outcome, g.pin, g.status, g.issued_at, g.registration, g.duplicates, g.claimed
    INTO outcome, pin, status, issued_at, registration, duplicates, claimed
    FROM issue_pins(ARRAY[p_row], ARRAY[p_digest], ARRAY[p_prefix], p_candidates,
                    coalesce(array_length(p_candidates, 1), 0), p_block_size,
                    ARRAY[p_actor_type], ARRAY[p_actor_id], ARRAY[p_request_id],
                    ARRAY[p_source_ip], ARRAY[p_details], ARRAY[p_override_details],
                    ARRAY[p_source], ARRAY[p_scope], ARRAY[p_external_id]) g;
END
$$;
