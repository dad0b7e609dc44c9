-- Idempotency keys of the field interfaces (contract 10), mapped to the registration they were
-- first used for:
-- - OSIA `POST /osia/v1/uin?transactionId=T`: the same T with the same attributes answers the
--   same PIN, with other attributes 400. Scope: the caller ('client:<id>'); T is its own.
-- - OpenCRVS REGISTER: idempotent on the event id. Scope: the province; event ids are UUIDs.
--   A retried REGISTER (another day, another office) keeps the registration authority and date
--   of the first attempt, so it replays the PIN instead of issuing a second one.
-- Only authenticated registrars write here, one row per registration attempt (a refused attempt
-- releases its row), so the table grows with registrations, not with what anonymous callers send.
CREATE TABLE external_registration (
  source          text NOT NULL CHECK (source IN ('osia', 'opencrvs')),
  scope           text NOT NULL CHECK (length(scope) BETWEEN 1 AND 100),
  external_id     text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),
  province_code   text NOT NULL,
  authority       text NOT NULL,
  number          text NOT NULL,
  registered_on   date NOT NULL,
  request_sha256  bytea NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (source, scope, external_id)
);

-- Claim an external id before issuing; returns the row that holds it (this call's, `claimed`,
-- or the earlier one). Concurrent claims of one id serialise on the primary key: ON CONFLICT
-- waits for the other inserter, and the SELECT after it (a fresh snapshot per statement in
-- PL/pgSQL) sees the row it committed; a row released in between is claimed again.
-- The claim commits with synchronous_commit off: the issuance that follows commits
-- synchronously, and flushing its commit record flushes every earlier WAL record, this claim's
-- included. A claim lost in a crash before that issuance guarded nothing, so no answer ever
-- rests on a claim that is not durable, and the claim costs no second fsync per request.
CREATE FUNCTION claim_external_registration(
  p_source text, p_scope text, p_external_id text, p_province text, p_authority text,
  p_number text, p_registered_on date, p_digest bytea
) RETURNS TABLE (claimed boolean, province_code text, authority text, number text,
                 registered_on date, request_sha256 bytea)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  LOOP
    INSERT INTO external_registration (source, scope, external_id, province_code, authority,
                                       number, registered_on, request_sha256)
    VALUES (p_source, p_scope, p_external_id, p_province, p_authority, p_number,
            p_registered_on, p_digest)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      RETURN QUERY SELECT true, p_province, p_authority, p_number, p_registered_on, p_digest;
      RETURN;
    END IF;
    RETURN QUERY SELECT false, e.province_code, e.authority, e.number, e.registered_on,
                        e.request_sha256
                   FROM external_registration e
                  WHERE e.source = p_source AND e.scope = p_scope
                    AND e.external_id = p_external_id;
    IF FOUND THEN
      RETURN;
    END IF;
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION claim_external_registration FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_external_registration TO idservice_service;

-- A claim whose issuance was refused (nothing issued) is released, so the caller can correct
-- the request and retry under the same id.
GRANT SELECT, INSERT, DELETE ON external_registration TO idservice_service;
