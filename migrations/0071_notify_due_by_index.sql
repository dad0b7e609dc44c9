-- Whether a subscription has events after its cursor is one probe of notify_event_topic_seq,
-- whatever the plans were made on (the rule of 0063/0066, docs/decisions.md "Statements whose
-- plan cannot go wrong").
--
-- Why: the delivery worker asks each round which confirmed subscriptions are due and have
-- events after their cursor (queries/notify.DUE_SUBSCRIPTION_IDS, then DUE_SUBSCRIPTIONS once
-- locked). Both joined notify_subscription to notify_event in one statement, and their plan, on
-- a new database and still with a few thousand events (bench/issuance.py, pg_stat_statements:
-- 3,190 blocks per call with no subscription at all), was a hash semi join over a sequential
-- scan of the outbox: every round read the whole outbox (its dead rows too) instead of one
-- index probe per subscription, so a subscriber that is down, whose events wait in the outbox,
-- made every round dearer.
--
-- Now the EXISTS is this function, a statement of one table with sequential and bitmap scans
-- off: the ordered index on (topic, seq) is its only plan. The queries that call it read one
-- table each (notify_subscription, small: a few subscriptions per client).
CREATE FUNCTION notify_has_events_after(p_topic text, p_after bigint) RETURNS boolean
LANGUAGE sql STABLE
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
  SELECT EXISTS (SELECT 1 FROM notify_event e WHERE e.topic = p_topic AND e.seq > p_after)
$$;

REVOKE ALL ON FUNCTION notify_has_events_after(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION notify_has_events_after(text, bigint) TO idservice_service;
