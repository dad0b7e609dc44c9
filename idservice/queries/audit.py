"""SQL of the audit log."""

# The one writer of events (migrations/0013_audit_write.sql); arguments as
# audit/recorder.EventColumns.args().
WRITE_EVENTS = """
SELECT audit_write(p_actor_type => $1, p_actor_id => $2, p_request_id => $3, p_source_ip => $4,
                   p_action => $5::text[], p_pin => $6::text[], p_purpose => $7::text[],
                   p_outcome => $8::text[], p_details => $9::text[])
"""

# Events of several requests (actors and request ids differ: a group of verifications,
# persons/verification.py) in one INSERT, in array order (migrations/0072; audit_write() is
# this with one actor repeated).
WRITE_EVENT_EACH = """
SELECT audit_write_each($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::text[], $8::text[], $9::text[])
"""

SEQUENCE = "SELECT audit_sequence($1)"

COUNT_UNSEQUENCED = """
SELECT count(*) FROM audit_event e
 WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)
"""

# -- the Merkle tree and checkpoints (migrations/0004_audit_tree.sql) ------------------------

INTEGRATOR_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(7305118202)"
INTEGRATOR_LOCK = "SELECT pg_advisory_xact_lock(7305118202)"

TREE_HEAD = "SELECT size, root, frontier FROM audit_tree ORDER BY size DESC LIMIT 1"

TREE_AT = "SELECT size, root FROM audit_tree WHERE size = $1"

TREE_APPEND = "SELECT audit_tree_append($1, $2, $3, $4, $5, $6, $7)"

LAST_CHECKPOINT = """
SELECT tree_size, note, created_at, clock_timestamp() - created_at AS age
  FROM audit_checkpoint ORDER BY tree_size DESC LIMIT 1
"""

CHECKPOINT_ADD = "SELECT audit_checkpoint_add($1, $2)"

CHECKPOINTS_SINCE = """
SELECT tree_size, note FROM audit_checkpoint WHERE tree_size >= $1 ORDER BY tree_size LIMIT $2
"""

NODES = """
SELECT n.level, n.idx, n.hash
  FROM unnest($1::smallint[], $2::bigint[]) AS u(level, idx)
  JOIN audit_node n ON n.level = u.level AND n.idx = u.idx
"""

LEAF_HASHES = """
SELECT idx, hash FROM audit_node WHERE level = 0 AND idx >= $1 AND idx < $2 ORDER BY idx
"""

ENTRY = """
SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
       details
  FROM audit_entry WHERE index = $1
"""

# Search: every filter optional ($n IS NULL), keyset pagination on index; $9 is the auditor's
# jurisdiction (contract 7): events of PINs of that province, and events without a PIN. Events
# newer than $7 (index > $7), oldest first, $8 rows (`search`, exports, and the newer side of
# `browse`, which reverses them). With no filter but $9 the reads use ENTRIES_NEWER and its
# siblings below: this view's join is estimated at one row (see _BY_INDEX), so unfiltered it
# was planned as a read of every partition; with a filter the plan starts from that column's
# index (pin, actor, action) or from the months of the time range.
SEARCH = """
SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
       details
  FROM audit_entry
 WHERE ($1::text IS NULL OR pin = $1)
   AND ($2::text IS NULL OR actor_type = $2)
   AND ($3::text IS NULL OR actor_id = $3)
   AND ($4::text IS NULL OR action = $4)
   AND ($5::timestamptz IS NULL OR at >= $5)
   AND ($6::timestamptz IS NULL OR at < $6)
   AND index > $7
   AND ($9::text IS NULL OR pin IS NULL OR starts_with(pin, $9))
 ORDER BY index
 LIMIT $8
"""

# Newest-first browsing (the auditor UI, audit/reads.browse): the filters of SEARCH, $1..$6,
# and its jurisdiction prefix $9. Events older than $7 (index < $7), newest first, $8 rows.
BROWSE_OLDER = """
SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
       details
  FROM audit_entry
 WHERE ($1::text IS NULL OR pin = $1)
   AND ($2::text IS NULL OR actor_type = $2)
   AND ($3::text IS NULL OR actor_id = $3)
   AND ($4::text IS NULL OR action = $4)
   AND ($5::timestamptz IS NULL OR at >= $5)
   AND ($6::timestamptz IS NULL OR at < $6)
   AND index < $7
   AND ($9::text IS NULL OR pin IS NULL OR starts_with(pin, $9))
 ORDER BY index DESC
 LIMIT $8
"""

# How many events match, counted up to $7 (a count over millions of rows would cost seconds);
# $8 the jurisdiction prefix.
BROWSE_COUNT = """
SELECT count(*) FROM (
  SELECT 1 FROM audit_entry
   WHERE ($1::text IS NULL OR pin = $1)
     AND ($2::text IS NULL OR actor_type = $2)
     AND ($3::text IS NULL OR actor_id = $3)
     AND ($4::text IS NULL OR action = $4)
     AND ($5::timestamptz IS NULL OR at >= $5)
     AND ($6::timestamptz IS NULL OR at < $6)
     AND ($8::text IS NULL OR pin IS NULL OR starts_with(pin, $8))
   LIMIT $7) AS matching
"""

MAX_INDEX = "SELECT max(index) FROM audit_log"

# Seconds since the first event from index $1 on joined the log (`audit verify`: events no
# checkpoint covers must have been sequenced within its grace period; a checkpoint is due from
# then on, whatever the event's own `at`). now() is the transaction's start: the age is on the
# database's clock, in the snapshot verify reads.
UNCOVERED_AGE = """
SELECT EXTRACT(EPOCH FROM now() - min(sequenced_at))::float8 FROM audit_log WHERE index >= $1
"""

# The newest recorded in-service verification (the auditor UI's "Verify now", an `audit.verify`
# event); uses audit_event_action.
LAST_VERIFICATION = """
SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
       details
  FROM audit_entry WHERE action = 'audit.verify' ORDER BY index DESC LIMIT 1
"""

# -- monthly partitions of audit_event (migrations/0009_audit_event_partitions.sql) ----------

ADD_PARTITIONS = "SELECT audit_event_add_partitions(clock_timestamp(), $1)"

PARTITIONED_UNTIL = "SELECT audit_event_partitioned_until()"

# -- reads of the log in index order ---------------------------------------------------------
# audit_entry joins audit_log to audit_event on (event_id, event_at) = (id, at). PostgreSQL
# multiplies the selectivities of the two equalities and estimates that join at about one row
# whatever the tables hold, so a LIMIT promises it nothing: "audit_entry WHERE index >= $1
# ORDER BY index LIMIT $2" was planned as a hash join (with hash joins off, as the integrator
# has them: a nested loop) over a sequential scan of every audit_event partition, then a sort:
# 5.5 s for a batch of 5,000 at 3M events, the 10M bench's integration stalled (bench/README.md,
# issue 14; tests/db/test_audit_index_reads.py). Reads by index range therefore walk
# audit_log's primary key and fetch each entry's event in a LATERAL subquery by audit_event's
# primary key (id, at), which finds the event's partition at run time: the cost is that of the
# rows read, not of the log's size. The subquery's LIMIT 1 is true anyway ((id, at) is unique)
# and keeps the planner from flattening it back into the join above. Same rows, same order as
# the view (an inner join: a log row without its event - impossible - is left out, as there).
_BY_INDEX = """
  FROM audit_log l
 CROSS JOIN LATERAL (
       SELECT e.at, e.actor_type, e.actor_id, e.action, e.pin, e.purpose, e.outcome,
              e.request_id, e.source_ip, e.details
         FROM audit_event e WHERE e.id = l.event_id AND e.at = l.event_at LIMIT 1) e"""

# The view's columns but sequenced_at, read through _BY_INDEX.
_ENTRIES = """
SELECT l.index, e.at, e.actor_type, e.actor_id, e.action, e.pin, e.purpose, e.outcome,
       e.request_id, e.source_ip, e.details""" + _BY_INDEX

# Up to $2 entries from index $1 (DbSource.events, `audit verify`).
ENTRIES_FROM = _ENTRIES + """
 WHERE l.index >= $1 ORDER BY l.index LIMIT $2
"""

# An auditor's reads without a filter on an event column (audit/reads.py): BROWSE_OLDER, SEARCH
# and BROWSE_COUNT with $1..$6 NULL; their jurisdiction prefix is $3 here ($2 in the count).
_VISIBLE = "($3::text IS NULL OR e.pin IS NULL OR starts_with(e.pin, $3))"

# Entries older than $1 (index < $1), newest first, $2 rows.
ENTRIES_OLDER = _ENTRIES + """
 WHERE l.index < $1 AND """ + _VISIBLE + """
 ORDER BY l.index DESC LIMIT $2
"""

# Entries newer than $1 (index > $1), oldest first, $2 rows.
ENTRIES_NEWER = _ENTRIES + """
 WHERE l.index > $1 AND """ + _VISIBLE + """
 ORDER BY l.index LIMIT $2
"""

# How many entries the caller sees, counted up to $1.
ENTRIES_COUNT = """
SELECT count(*) FROM (
  SELECT 1""" + _BY_INDEX + """
   WHERE ($2::text IS NULL OR e.pin IS NULL OR starts_with(e.pin, $2))
   LIMIT $1) AS matching
"""

# -- bulk reads of events (integrator, verifier): entry.row_leaf_hashes --------------------
# The columns of `entry.render_row`, in `entry.ROW_COLUMNS` order, `details` as its JSON text so
# the leaf path parses it itself; read by index range as ENTRIES_FROM (_BY_INDEX).
_ROWS = """
SELECT l.index, e.at, e.actor_type, e.actor_id, e.action, e.pin, e.purpose, e.outcome,
       e.request_id, e.source_ip, e.details::text AS details""" + _BY_INDEX

# Up to $2 events from index $1 (the integrator).
ROWS_FROM = _ROWS + "\n WHERE l.index >= $1 ORDER BY l.index LIMIT $2"

# Every event with $1 <= index <= $2 (a verifier's chunk; the first and the last chunks pass the
# bigint bounds, so rows outside [0, size) are seen too).
ROWS_RANGE = _ROWS + "\n WHERE l.index >= $1 AND l.index <= $2 ORDER BY l.index"

# Stored leaf hashes of [$1, $2] concatenated, with their count and first index: contiguous when
# count = $2 - $1 + 1 (primary key), so a verifier compares them in one go.
LEAF_HASHES_PACKED = """
SELECT count(*) AS n, min(idx) AS first, string_agg(hash, ''::bytea ORDER BY idx) AS hashes
  FROM audit_node WHERE level = 0 AND idx >= $1 AND idx <= $2
"""

EXPORT_SNAPSHOT = "SELECT pg_export_snapshot()"
