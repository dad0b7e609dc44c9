"""SQL of notifications out: topics, subscriptions, the outbox and its delivery
(contract 9; migrations/0044_notifications.sql)."""

# ---- topics ----

TOPICS = "SELECT id::text AS id, name FROM notify_topic ORDER BY name"

TOPIC_BY_NAME = "SELECT id::text AS id, name FROM notify_topic WHERE name = $1"

TOPIC_BY_ID = "SELECT id::text AS id, name FROM notify_topic WHERE id = $1::uuid"

# ---- the outbox ----

# $1 topics, $2 uins, $3 uin1s, $4 uin2s, $5 previous uins: one event per position, in order.
ENQUEUE = """
INSERT INTO notify_event (topic, uin, uin1, uin2, previous_uin)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
"""

# Give `seq` (in `id` order) to at most $1 final rows: migrations 0044 (the rule), 0063 (read
# in id order, a plan that cannot depend on the statistics) and 0069 (one UPDATE for them all).
SEQUENCE = "SELECT notify_sequence_batch($1)"

# $1 topic, $2 after this seq, $3 limit.
EVENTS_AFTER = """
SELECT seq, message_id::text AS message_id, topic, uin, uin1, uin2, previous_uin, created_at
  FROM notify_event WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""

LAST_SEQ = "SELECT last FROM notify_sequence"

# Events every subscription of their topic has passed (or of a topic nobody subscribes to), at
# most $1 per topic: per topic a range of notify_event_topic_seq from its low end (migrations
# 0064, 0069: one DELETE), so a large backlog of undelivered events is never read by it.
PRUNE = "SELECT notify_prune_batch($1)"

# ---- subscriptions ----

# Every query answering subscriptions names the same columns (id as text).

COUNT_FOR_CLIENT = "SELECT count(*) FROM notify_subscription WHERE client_id = $1"

LOCK_CLIENT = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7310))"

FIND_SUBSCRIPTION = """
SELECT id::text AS id, client_id, jurisdiction, topic, protocol, address,
       countdown, max_retries, active, cursor, attempts FROM notify_subscription
 WHERE client_id = $1 AND topic = $2 AND protocol = $3 AND address = $4
"""

# $1 client, $2 jurisdiction, $3 topic, $4 protocol, $5 address, $6 countdown, $7 max retries.
INSERT_SUBSCRIPTION = """
INSERT INTO notify_subscription (client_id, jurisdiction, topic, protocol, address, countdown,
                                 max_retries, cursor)
VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT last FROM notify_sequence))
RETURNING id::text AS id, client_id, jurisdiction, topic, protocol, address,
       countdown, max_retries, active, cursor, attempts
"""

# The same subscription asked again: its policy as now given; unconfirmed, a new confirmation.
RESUBSCRIBE = """
UPDATE notify_subscription
   SET countdown = $2, max_retries = $3,
       confirm_next_at = CASE WHEN active THEN confirm_next_at ELSE clock_timestamp() END,
       confirm_attempts = CASE WHEN active THEN confirm_attempts ELSE 0 END
 WHERE id = $1::uuid
RETURNING id::text AS id, client_id, jurisdiction, topic, protocol, address,
       countdown, max_retries, active, cursor, attempts
"""

LIST_FOR_CLIENT = """
SELECT id::text AS id, client_id, jurisdiction, topic, protocol, address,
       countdown, max_retries, active, cursor, attempts
  FROM notify_subscription WHERE client_id = $1 ORDER BY created_at, id
"""

DELETE_SUBSCRIPTION = """
DELETE FROM notify_subscription WHERE id = $1::uuid AND client_id = $2
RETURNING id::text AS id, topic, address
"""

# $1 token digest, $2 client.
CONFIRM = """
UPDATE notify_subscription SET active = true, confirm_next_at = NULL,
       next_at = clock_timestamp(), attempts = 0
 WHERE token_sha256 = $1 AND client_id = $2
RETURNING id::text AS id, topic, address
"""

# ---- delivery ----

# The housekeeping of a round (sequencing, confirmations, pruning): one worker at a time.
WORKER_TRY_LOCK = "SELECT pg_try_advisory_lock(7311)"
WORKER_UNLOCK = "SELECT pg_advisory_unlock(7311)"

# Every delivering worker holds this shared lock on its session for as long as it runs, so
# each can count the others and take its share of the due subscriptions.
DELIVERER_REGISTER = "SELECT pg_advisory_lock_shared(7313)"
DELIVERERS = """
SELECT count(*) FROM pg_locks
 WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = 7313 AND objsubid = 1
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

# One subscription is delivered by one worker at a time (session lock; $1 its id).
SUBSCRIPTION_TRY_LOCK = "SELECT pg_try_advisory_lock(7314, hashtext($1))"
SUBSCRIPTION_UNLOCK = "SELECT pg_advisory_unlock(7314, hashtext($1))"

# Confirmed subscriptions whose retry time has come and that have events after their cursor
# (one index probe of the outbox each: notify_has_events_after(), migration 0071).
DUE_SUBSCRIPTION_IDS = """
SELECT id::text AS id FROM notify_subscription s
 WHERE s.active AND s.next_at <= clock_timestamp() AND notify_has_events_after(s.topic, s.cursor)
 ORDER BY s.next_at LIMIT $1
"""

# The same conditions, read again once locked ($1 their ids): another worker may have moved
# the cursor between the first read and the lock.
DUE_SUBSCRIPTIONS = """
SELECT id::text AS id, client_id, jurisdiction, topic, protocol, address,
       countdown, max_retries, active, cursor, attempts FROM notify_subscription s
 WHERE s.id = ANY($1::uuid[]) AND s.active AND s.next_at <= clock_timestamp()
   AND notify_has_events_after(s.topic, s.cursor)
"""

DUE_CONFIRMATIONS = """
SELECT id::text AS id, client_id, jurisdiction, topic, protocol, address,
       countdown, max_retries, active, cursor, attempts, confirm_attempts FROM notify_subscription
 WHERE NOT active AND confirm_next_at <= clock_timestamp()
 ORDER BY confirm_next_at LIMIT $1
"""

SET_TOKEN = "UPDATE notify_subscription SET token_sha256 = $2 WHERE id = $1::uuid AND NOT active"

# $1 id, $2 next attempt in seconds (null: none: sent, or given up), $3 attempts.
CONFIRMATION_TRIED = """
UPDATE notify_subscription
   SET confirm_next_at = CASE WHEN $2::float8 IS NULL THEN NULL
                              ELSE clock_timestamp() + make_interval(secs => $2::float8) END,
       confirm_attempts = $3
 WHERE id = $1::uuid AND NOT active
"""

# $1 id, $2 new cursor, $3 attempts, $4 seconds until the next attempt. Only while the cursor
# is where this round read it ($5): an unsubscribe-resubscribe in between starts over.
ADVANCE = """
UPDATE notify_subscription
   SET cursor = $2, attempts = $3,
       next_at = clock_timestamp() + make_interval(secs => $4::float8)
 WHERE id = $1::uuid AND cursor = $5
"""

# Unconfirmed subscriptions older than $1 seconds: gone (they would hold the outbox back).
EXPIRE_UNCONFIRMED = """
DELETE FROM notify_subscription
 WHERE NOT active AND created_at < clock_timestamp() - make_interval(secs => $1::float8)
"""

# /metrics: undelivered (subscription, event) pairs of confirmed subscriptions, and events not
# yet sequenced; the age of the oldest of either.
BACKLOG = """
WITH pending AS (
  SELECT e.created_at FROM notify_subscription s
    JOIN notify_event e ON e.topic = s.topic AND e.seq > s.cursor
   WHERE s.active
  UNION ALL
  SELECT created_at FROM notify_event WHERE seq IS NULL)
SELECT count(*) AS n,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS age
  FROM pending
"""
