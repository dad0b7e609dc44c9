-- Officer login's database work in one statement (issue 16, goal 3).
--
-- A successful login used to take five round trips (nonce insert in autocommit, operator
-- lookup, BEGIN, the auth.login event, COMMIT) plus one for the per-operator limit. Every
-- check that needs no database (token format, certificate, purpose, policies, validity, path,
-- revocation, signature, and the nonce's MAC and expiry) now runs first in Python, and this
-- function does the rest as one statement, i.e. one transaction:
--
--   1. the nonce is recorded as used (INSERT ... ON CONFLICT DO NOTHING): already used ->
--      'nonce_used', nothing else happens;
--   2. the operator is mapped by certificate (SHA-256, or issuer + serial) -> 'operator_unknown'
--      / 'operator_disabled' (the nonce stays used: a refused login burns it, as before);
--   3. the per-operator limit is counted (p_identity_limit > 0); over it -> 'rate_limited' with
--      the seconds left in the minute, the 429 counted into the source's minute;
--   4. the auth.login event is written through audit_write() (the only writer of events), and
--      a certificate with an OCSP responder is tracked for live re-checks (p_live_cert_der).
--
-- Whatever fails inside (the event's insert, a constraint) rolls back the whole statement: the
-- nonce stays unused and nothing is half-written. Caller's rights (SECURITY INVOKER): the
-- service role's grants still decide what may be written.
CREATE FUNCTION officer_login(
  p_nonce_sha256 text, p_nonce_expires timestamptz,
  p_cert_sha256 text, p_cert_issuer text, p_cert_serial text,
  p_identity_limit integer, p_source text,
  p_request_id text, p_source_ip text, p_details text,
  p_live_cert_der bytea, p_live_until timestamptz
) RETURNS TABLE (outcome text, id text, name text, roles text[], jurisdiction text,
                 retry_after integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
  op record;
  hit record;
BEGIN
  INSERT INTO auth_nonce_used (nonce_sha256, expires_at)
  VALUES (p_nonce_sha256, p_nonce_expires) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'nonce_used'::text, NULL::text, NULL::text, NULL::text[], NULL::text,
                        NULL::integer;
    RETURN;
  END IF;

  SELECT o.id, o.name, o.roles, o.jurisdiction, o.enabled INTO op
    FROM operator o
   WHERE o.cert_sha256 = p_cert_sha256
      OR (o.cert_issuer = p_cert_issuer AND o.cert_serial = p_cert_serial)
   ORDER BY o.cert_sha256 = p_cert_sha256 DESC
   LIMIT 1;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'operator_unknown'::text, NULL::text, NULL::text, NULL::text[],
                        NULL::text, NULL::integer;
    RETURN;
  END IF;
  IF NOT op.enabled THEN
    RETURN QUERY SELECT 'operator_disabled'::text, op.id, op.name, op.roles, op.jurisdiction,
                        NULL::integer;
    RETURN;
  END IF;

  IF p_identity_limit > 0 THEN
    INSERT INTO auth_rate_limit AS r (scope, key, window_start, n)
    VALUES ('operator', left(op.id, 128), date_trunc('minute', now()), 1)
    ON CONFLICT (scope, key, window_start) DO UPDATE SET n = r.n + 1
    RETURNING r.n, greatest(1, ceil(extract(epoch FROM
        r.window_start + interval '1 minute' - clock_timestamp())))::int AS retry_after
    INTO hit;
    IF hit.n > p_identity_limit THEN
      INSERT INTO auth_source_window AS w (source, window_start, limited)
      VALUES (p_source, date_trunc('minute', now()), 1)
      ON CONFLICT (source, window_start) DO UPDATE SET limited = w.limited + 1;
      RETURN QUERY SELECT 'rate_limited'::text, op.id, op.name, op.roles, op.jurisdiction,
                          hit.retry_after;
      RETURN;
    END IF;
  END IF;

  PERFORM audit_write('operator', op.id, p_request_id, p_source_ip, ARRAY['auth.login'],
                      ARRAY[NULL::text], ARRAY[NULL::text], ARRAY['success'],
                      ARRAY[p_details]);
  IF p_live_cert_der IS NOT NULL THEN
    INSERT INTO officer_live_cert AS l (cert_sha256, cert_der, live_until, last_good_at,
                                        checked_at)
    VALUES (p_cert_sha256, p_live_cert_der, p_live_until, now(), now())
    ON CONFLICT (cert_sha256) DO UPDATE SET
      live_until = greatest(l.live_until, excluded.live_until),
      last_good_at = now(), checked_at = now(), revoked_at = NULL;
  END IF;
  RETURN QUERY SELECT 'success'::text, op.id, op.name, op.roles, op.jurisdiction,
                      NULL::integer;
END
$$;
REVOKE ALL ON FUNCTION officer_login(text, timestamptz, text, text, text, integer, text, text,
                                     text, text, bytea, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION officer_login(text, timestamptz, text, text, text, integer, text,
                                        text, text, text, bytea, timestamptz)
  TO idservice_service;
