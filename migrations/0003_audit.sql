-- The audit log (contract section 5).
--
-- Two tables, because writing is not sequencing (tessera's design): request transactions INSERT
-- into audit_event; after they commit, audit_sequence() (a SECURITY DEFINER function, the only
-- writer of audit_log) gives each event its gap-free `index`. The service role can neither
-- write audit_log nor UPDATE/DELETE/TRUNCATE anything here, and triggers refuse those statements
-- for every role (ENABLE ALWAYS), so history can only be rewritten by a superuser who first
-- disables the triggers - which the Merkle tree and signed checkpoints then expose.
--
-- Commit-safe sequencing: identity order is not commit order, so "everything with id > last"
-- would skip rows that commit late. Each event records its transaction id (xid8); an event is
-- sequenced only once its xid is below the snapshot's xmin (every transaction below xmin has
-- finished), in (txid, id) order, continuing after the last sequenced (txid, id). An event with
-- a smaller (txid, id) than that cursor was already complete when the cursor passed it.

CREATE TABLE audit_event (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  txid        xid8 NOT NULL,
  at          timestamptz NOT NULL,
  actor_type  text NOT NULL CHECK (actor_type IN ('operator', 'client', 'anonymous')),
  actor_id    text NOT NULL,
  action      text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
  pin         text COLLATE "C" CHECK (pin IS NULL OR pin ~ '^[0-9]{12}$'),
  purpose     text,
  outcome     text NOT NULL,
  request_id  text,
  source_ip   text,
  details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_event_txid ON audit_event (txid, id);

-- The writer cannot choose its own time or transaction id.
CREATE FUNCTION audit_event_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.txid := pg_current_xact_id();
  NEW.at := date_trunc('milliseconds', clock_timestamp());
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_event_stamp BEFORE INSERT ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_stamp();
ALTER TABLE audit_event ENABLE ALWAYS TRIGGER audit_event_stamp;

CREATE TABLE audit_log (
  index         bigint PRIMARY KEY CHECK (index >= 0),
  event_id      bigint NOT NULL UNIQUE REFERENCES audit_event (id),
  txid          xid8 NOT NULL,
  sequenced_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
ALTER TABLE audit_event ENABLE ALWAYS TRIGGER audit_event_append_only;
ALTER TABLE audit_event ENABLE ALWAYS TRIGGER audit_event_no_truncate;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- Gap-free, in order: each new index is exactly one more than the last (checked per row, so a
-- multi-row insert is checked too; visible to the trigger because the function is VOLATILE).
CREATE FUNCTION audit_log_contiguous() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE expected bigint;
BEGIN
  SELECT coalesce(max(index) + 1, 0) INTO expected FROM audit_log;
  IF NEW.index <> expected THEN
    RAISE EXCEPTION 'audit_log index % is not the next one (%)', NEW.index, expected
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_contiguous BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_contiguous();
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_contiguous;

-- Sequence up to max_rows committed events; returns how many were sequenced. One sequencer at a
-- time (transaction-level advisory lock; others return 0 at once), any number of processes.
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
  INSERT INTO audit_log (index, event_id, txid)
    SELECT next_idx + row_number() OVER (ORDER BY e.txid, e.id) - 1, e.id, e.txid
      FROM (SELECT ae.id, ae.txid FROM audit_event ae
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

GRANT SELECT, INSERT ON audit_event TO idservice_service;
GRANT SELECT ON audit_log TO idservice_service;
GRANT EXECUTE ON FUNCTION audit_sequence(integer) TO idservice_service;
GRANT SELECT ON audit_event, audit_log TO idservice_auditor;

-- The event exactly as the API returns it (contract section 5), once it has its index.
CREATE VIEW audit_entry AS
  SELECT l.index, e.at, e.actor_type, e.actor_id, e.action, e.pin, e.purpose, e.outcome,
         e.request_id, e.source_ip, e.details, l.sequenced_at
    FROM audit_log l JOIN audit_event e ON e.id = l.event_id;
GRANT SELECT ON audit_entry TO idservice_service, idservice_auditor;
