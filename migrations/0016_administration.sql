-- Administration as a role of its own, and audited (contract 7, issue 9 item 9).
--
-- `idservice operators|clients add|disable` connect as a member of idservice_administrator
-- (embedded: the login role idservice_admin; configured: IDSERVICE_ADMIN_DATABASE_URL), which
-- alone may INSERT and UPDATE the operator and client tables; the service role keeps SELECT
-- only. So a compromised service process cannot make itself a client, give an operator more
-- roles or wake a disabled one. Each change writes its `admin.*` audit event in the same
-- transaction, with the actor type `admin` (the OS user who ran the command).
--
-- Failed logins whose certificate path did not validate name the certificate, not an operator:
-- actor type `certificate` (id `sha256:<hex of the DER>`).
--
-- audit_event_add_partitions() is callable by the service role; it now refuses it a first month
-- more than one month before the current one (the tables' owner may still), so that role cannot
-- create partitions for the past (no event can be written there anyway: `at` is the database's clock).

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'idservice_administrator') THEN
    CREATE ROLE idservice_administrator NOLOGIN;
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO idservice_administrator;

REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON client, operator FROM idservice_service;
GRANT SELECT ON client, operator TO idservice_service;
GRANT SELECT, INSERT, UPDATE ON client, operator TO idservice_administrator;

-- The administrator writes its own events, naming only what it describes (as the service).
GRANT INSERT (actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
              details) ON audit_event TO idservice_administrator;
-- ... through the one writer of events (0013), as every other writer does.
GRANT EXECUTE ON FUNCTION audit_write(text, text, text, text, text[], text[], text[], text[],
                                      text[]) TO idservice_administrator;

-- (0009 created the check while 0003's table still held its name: look it up by what it checks.)
DO $$
DECLARE
  name text;
BEGIN
  FOR name IN SELECT conname FROM pg_constraint
               WHERE conrelid = 'public.audit_event'::regclass AND contype = 'c'
                 AND pg_get_constraintdef(oid) LIKE '%actor_type%'
  LOOP
    EXECUTE format('ALTER TABLE public.audit_event DROP CONSTRAINT %I', name);
  END LOOP;
END
$$;
ALTER TABLE audit_event ADD CONSTRAINT audit_event_actor_type_check
  CHECK (actor_type IN ('operator', 'client', 'anonymous', 'certificate', 'admin'));

CREATE OR REPLACE FUNCTION audit_event_add_partitions(first_at timestamptz,
                                                      months_ahead integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public SET TimeZone = 'UTC' AS $$
DECLARE
  low timestamptz := date_trunc('month', least(first_at, clock_timestamp()));
  last timestamptz := date_trunc('month', clock_timestamp()) + make_interval(months => months_ahead);
  part text;
  created integer := 0;
BEGIN
  IF months_ahead NOT BETWEEN 0 AND 120 THEN
    RAISE EXCEPTION 'months_ahead must be between 0 and 120' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The owner (migrations, imports and benchmarks of old events) may reach back further.
  IF low < date_trunc('month', clock_timestamp()) - interval '1 month'
     AND NOT pg_has_role(session_user,
                         (SELECT relowner FROM pg_class WHERE oid = 'public.audit_event'::regclass),
                         'USAGE') THEN
    RAISE EXCEPTION 'first month % is more than one month in the past', to_char(low, 'YYYY-MM')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pg_advisory_xact_lock(7305118204);
  WHILE low <= last LOOP
    part := 'audit_event_' || to_char(low, 'YYYY_MM');
    IF to_regclass('public.' || quote_ident(part)) IS NULL THEN
      EXECUTE format('CREATE TABLE public.%I PARTITION OF public.audit_event FOR VALUES FROM (%L) TO (%L)',
                     part, low, low + interval '1 month');
      EXECUTE format('CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON public.%I '
                     'FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()', part);
      EXECUTE format('ALTER TABLE public.%I ENABLE ALWAYS TRIGGER audit_event_no_truncate', part);
      created := created + 1;
    END IF;
    low := low + interval '1 month';
  END LOOP;
  RETURN created;
END
$$;
