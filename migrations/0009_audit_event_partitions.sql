-- audit_event partitioned by calendar month (UTC) of `at` (issue 4, "ready for billions of rows").
--
-- Why by time: auditors' searches carry a time range most of the time (partition pruning); each
-- month's indexes stay small and hot; a month that is over is never written again, so it is
-- vacuumed/frozen once, backed up once and can move to cheaper storage (ALTER TABLE ... SET
-- TABLESPACE). Nothing is ever dropped: the Merkle tree needs every leaf.
--
-- What changes for the writer: `at` and `txid` are column DEFAULTs now, no longer a BEFORE
-- INSERT trigger: PostgreSQL routes a row to its partition before the partition's BEFORE ROW
-- triggers run, so a trigger cannot set the partition key. The service role is granted INSERT
-- only on the descriptive columns, so it cannot name `id`, `txid` or `at` at all (permission
-- denied) and every row gets the database's clock and transaction id, as before.
--
-- There is no DEFAULT partition: a row whose month has no partition is refused, so the access
-- fails (an access that cannot be audited does not happen) instead of landing in a catch-all
-- that would block creating that month later. audit_event_add_partitions() creates the months
-- ahead; every service process calls it at start and hourly (idservice/audit/partitions.py).
--
-- audit_log carries the event's `at` next to its id, so that reading an event by its log entry
-- touches only the partition of its month (run-time partition pruning). There is no foreign key
-- any more: against a partitioned table it cost ~60 us per sequenced row (measured: the
-- sequencer's main cost), and it added nothing, since audit_sequence() is the only writer of
-- audit_log and copies (id, at) from the audit_event row it has just read. audit_log, audit_node and audit_tree stay unpartitioned: they are
-- narrow (no jsonb) and only ever appended at the right edge of their primary keys.
--
-- Existing rows are copied (this runs before any production deployment; on a large log this
-- migration would be replaced by attaching the old table as the first partition).

DROP VIEW audit_entry;
DROP FUNCTION audit_sequence(integer);

ALTER TABLE audit_log RENAME TO audit_log_0003;
ALTER TABLE audit_event RENAME TO audit_event_0003;
ALTER SEQUENCE audit_event_id_seq RENAME TO audit_event_0003_id_seq;
ALTER INDEX audit_event_pkey RENAME TO audit_event_0003_pkey;
ALTER INDEX audit_event_txid RENAME TO audit_event_0003_txid;
ALTER INDEX audit_event_pin RENAME TO audit_event_0003_pin;
ALTER INDEX audit_event_actor RENAME TO audit_event_0003_actor;
ALTER INDEX audit_event_action RENAME TO audit_event_0003_action;
ALTER INDEX audit_log_pkey RENAME TO audit_log_0003_pkey;
ALTER INDEX audit_log_event_id_key RENAME TO audit_log_0003_event_id_key;

CREATE TABLE audit_event (
  id          bigint GENERATED ALWAYS AS IDENTITY,
  txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at          timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
  actor_type  text NOT NULL CHECK (actor_type IN ('operator', 'client', 'anonymous')),
  actor_id    text NOT NULL,
  action      text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
  pin         text COLLATE "C" CHECK (pin IS NULL OR pin ~ '^[0-9]{12}$'),
  purpose     text,
  outcome     text NOT NULL,
  request_id  text,
  source_ip   text,
  details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX audit_event_txid ON audit_event (txid, id);
CREATE INDEX audit_event_pin ON audit_event (pin) WHERE pin IS NOT NULL;
CREATE INDEX audit_event_actor ON audit_event (actor_type, actor_id);
CREATE INDEX audit_event_action ON audit_event (action);

-- Row triggers on the parent are cloned onto every partition, with their ENABLE ALWAYS state
-- (PostgreSQL 13+); statement (TRUNCATE) triggers are not, so each partition gets its own.
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
ALTER TABLE audit_event ENABLE ALWAYS TRIGGER audit_event_append_only;
ALTER TABLE audit_event ENABLE ALWAYS TRIGGER audit_event_no_truncate;

-- Create the monthly partitions from the month of `first_at` to `months_ahead` months after the
-- current one; returns how many were created. Idempotent; one caller at a time.
CREATE FUNCTION audit_event_add_partitions(first_at timestamptz, months_ahead integer DEFAULT 3)
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
REVOKE ALL ON FUNCTION audit_event_add_partitions(timestamptz, integer) FROM PUBLIC;

-- The upper bound of the last partition: no event can be written at or after it.
CREATE FUNCTION audit_event_partitioned_until() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT max((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz)
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = 'public.audit_event'::regclass
$$;
REVOKE ALL ON FUNCTION audit_event_partitioned_until() FROM PUBLIC;

SELECT audit_event_add_partitions(coalesce((SELECT min(at) FROM audit_event_0003),
                                           clock_timestamp()));

INSERT INTO audit_event (id, txid, at, actor_type, actor_id, action, pin, purpose, outcome,
                         request_id, source_ip, details)
  OVERRIDING SYSTEM VALUE
  SELECT id, txid, at, actor_type, actor_id, action, pin, purpose, outcome, request_id,
         source_ip, details
    FROM audit_event_0003 ORDER BY id;
SELECT setval(pg_get_serial_sequence('audit_event', 'id'),
              coalesce((SELECT max(id) FROM audit_event_0003), 0) + 1, false);

CREATE TABLE audit_log (
  index         bigint PRIMARY KEY CHECK (index >= 0),
  event_id      bigint NOT NULL UNIQUE,
  event_at      timestamptz NOT NULL,
  txid          xid8 NOT NULL,
  sequenced_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO audit_log (index, event_id, event_at, txid, sequenced_at)
  SELECT l.index, l.event_id, e.at, l.txid, l.sequenced_at
    FROM audit_log_0003 l JOIN audit_event_0003 e ON e.id = l.event_id ORDER BY l.index;

DROP TABLE audit_log_0003;
DROP TABLE audit_event_0003;
DROP FUNCTION audit_event_stamp();

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_contiguous BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_contiguous();
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_contiguous;

-- As in 0003, now carrying the event's `at` into audit_log for the foreign key.
CREATE FUNCTION audit_sequence(max_rows integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  horizon   xid8;
  last_txid xid8;
  last_id   bigint;
  next_idx  bigint;
  n         bigint;
BEGIN
  IF NOT pg_try_advisory_xact_lock(7305118201) THEN
    RETURN 0;
  END IF;
  horizon := pg_snapshot_xmin(pg_current_snapshot());
  SELECT l.index + 1, l.txid, l.event_id INTO next_idx, last_txid, last_id
    FROM audit_log l ORDER BY l.index DESC LIMIT 1;
  IF next_idx IS NULL THEN
    next_idx := 0; last_txid := '0'::xid8; last_id := 0;
  END IF;
  INSERT INTO audit_log (index, event_id, event_at, txid)
    SELECT next_idx + row_number() OVER (ORDER BY e.txid, e.id) - 1, e.id, e.at, e.txid
      FROM (SELECT ae.id, ae.at, ae.txid FROM audit_event ae
             WHERE ae.txid >= last_txid AND ae.txid < horizon
               AND (ae.txid, ae.id) > (last_txid, last_id)
             ORDER BY ae.txid, ae.id
             LIMIT max_rows) e
     ORDER BY e.txid, e.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION audit_sequence(integer) FROM PUBLIC;

-- The writer names only what it describes; id, txid and at are the database's.
GRANT INSERT (actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
              details) ON audit_event TO idservice_service;
GRANT SELECT ON audit_event TO idservice_service;
GRANT SELECT ON audit_log TO idservice_service;
GRANT EXECUTE ON FUNCTION audit_sequence(integer) TO idservice_service;
GRANT EXECUTE ON FUNCTION audit_event_add_partitions(timestamptz, integer) TO idservice_service;
GRANT EXECUTE ON FUNCTION audit_event_partitioned_until() TO idservice_service, idservice_auditor;
GRANT SELECT ON audit_event, audit_log TO idservice_auditor;

CREATE VIEW audit_entry AS
  SELECT l.index, e.at, e.actor_type, e.actor_id, e.action, e.pin, e.purpose, e.outcome,
         e.request_id, e.source_ip, e.details, l.sequenced_at
    FROM audit_log l JOIN audit_event e ON e.id = l.event_id AND e.at = l.event_at;
GRANT SELECT ON audit_entry TO idservice_service, idservice_auditor;
