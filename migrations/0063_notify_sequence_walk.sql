-- The notification outbox is sequenced (the rule of 0044, unchanged) by a walk over its
-- unsequenced rows in `id` order, numbering each row where the walk stands, instead of by one
-- UPDATE joined to a numbered subquery.
--
-- Why: that UPDATE was only as good as the plan the delivery worker's connection cached for it.
-- With the outbox vacuumed while empty (a new database), the generic plan was a nested loop
-- that re-ran the numbering subquery (a scan and a window over every unsequenced row) for each
-- row of the outbox. In bench/scale.py's bulk load of 100,000 births one call ran for 8 minutes
-- and another for 18, at full CPU, and its snapshot held back the xmin horizon, so no audit
-- event could be sequenced or checkpointed meanwhile (tests/integration/test_bulk_plans.py:
-- the 10 s statement timeout with 60,000 events).
--
-- Now a cursor walks notify_event_unsequenced in `id` order (sequential scans, bitmap scans and
-- sorts are off inside the function, so that ordered index walk is its only plan whatever the
-- statistics), each row is numbered through WHERE CURRENT OF (no look-up), and the walk ends
-- before the first row whose transaction is not yet below the snapshot's xmin, or after
-- max_rows rows: work in proportion to the rows numbered, on any table size. Rows of
-- transactions still in progress are not visible to the walk, as they were not to the UPDATE.
CREATE FUNCTION notify_sequence_batch(max_rows integer) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off AS $$
DECLARE
  horizon  xid8 := pg_snapshot_xmin(pg_current_snapshot());
  last_seq bigint;
  n        bigint := 0;
  todo CURSOR FOR SELECT e.xid FROM notify_event e WHERE e.seq IS NULL ORDER BY e.id
    FOR UPDATE;
BEGIN
  SELECT s.last INTO last_seq FROM notify_sequence s FOR UPDATE;
  FOR r IN todo LOOP
    EXIT WHEN n >= max_rows OR r.xid >= horizon;
    n := n + 1;
    UPDATE notify_event SET seq = last_seq + n WHERE CURRENT OF todo;
  END LOOP;
  IF n > 0 THEN
    UPDATE notify_sequence SET last = last_seq + n;
  END IF;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION notify_sequence_batch(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notify_sequence_batch(integer) TO idservice_service;
