-- The outbox's pruning (what every subscription of a topic has passed, or, with no
-- subscription, everything sequenced; at most max_rows per topic per call) by a walk, as 0063
-- does for sequencing, for the same reason: the DELETE ... WHERE id IN (subquery) of
-- queries/notify.py was planned on PostgreSQL 15, with the outbox vacuumed while empty, as a
-- loop over the outbox re-running the subquery per row, and hit the 10 s statement timeout
-- with 60,000 events (tests/integration/test_bulk_plans.py on Debian's server; PostgreSQL 18
-- happened to choose well).
--
-- Per topic, a cursor walks notify_event_topic_seq from the topic's lowest seq up to the
-- bound (sequential scans, bitmap scans and sorts off inside the function: that ordered range
-- walk is its only plan) and deletes each row where the walk stands (WHERE CURRENT OF): work in
-- proportion to the rows pruned, on any table size.
CREATE FUNCTION notify_prune_batch(max_rows integer) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off AS $$
DECLARE
  topic_name text;
  upto       bigint;
  k          bigint;
  n          bigint := 0;
  passed CURSOR (p_topic text, p_upto bigint) FOR
    SELECT e.seq FROM notify_event e
     WHERE e.topic = p_topic AND e.seq IS NOT NULL AND e.seq <= p_upto
     ORDER BY e.topic, e.seq FOR UPDATE;
BEGIN
  FOR topic_name IN SELECT t.name FROM notify_topic t ORDER BY t.name LOOP
    SELECT coalesce(min(s.cursor), (SELECT q.last FROM notify_sequence q)) INTO upto
      FROM notify_subscription s WHERE s.topic = topic_name;
    k := 0;
    FOR r IN passed(topic_name, upto) LOOP
      EXIT WHEN k >= max_rows;
      DELETE FROM notify_event WHERE CURRENT OF passed;
      k := k + 1;
    END LOOP;
    n := n + k;
  END LOOP;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION notify_prune_batch(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notify_prune_batch(integer) TO idservice_service;
