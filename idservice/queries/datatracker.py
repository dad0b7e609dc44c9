"""SQL of the citizen access report (contract section 11, idservice/datatracker/).

A usage is a *sequenced* event (`audit_entry`: joined to its `audit_log` index) about the PIN,
of a usage kind with a successful outcome, not hidden on the citizen's date. findUsage reads it
with one range scan of `audit_event_pin_at` (pin, at) per monthly partition
(migrations/0035_datatracker.sql), then one `audit_log` lookup by event id per row: the cost
follows the number of accesses to that PIN, not the size of the log.
"""

# A usage (idservice/datatracker/usage.py): a sequenced event (audit_entry) about the PIN, of
# a usage action with a successful outcome (the "action outcome" pairs), not hidden on the
# citizen's date ('YYYY-MM-DD', compared as text with a covert event's `hidden_until`).
# REPORT and USAGE_EVENT state this filter alike; tests/integration/test_datatracker*.py
# check both.

# The report in one statement (one snapshot, one round trip): $1 PIN, $2 .. $3 the period
# (inclusive), $4 today, $5 usage actions, $6 pairs; the period's total and the page ($7
# offset, $8 limit), newest first (logtime, then index), with who used it. Always one row at
# least: past the last page the usage columns are null and `total` is still there.
REPORT = """
WITH usage AS MATERIALIZED (
  SELECT index, at, actor_type, actor_id, action, purpose, details
    FROM audit_entry
   WHERE pin = $1 AND at BETWEEN $2 AND $3
     AND action = ANY($5::text[])
     AND action || ' ' || outcome = ANY($6::text[])
     AND coalesce(details->>'hidden_until', '') COLLATE "C" <= $4::text
)
SELECT t.total, u.index, u.at, u.actor_type, u.actor_id, u.action, u.purpose, u.details,
       coalesce(o.org_code, c.org_code) AS org_code,
       coalesce(o.org_name, c.org_name) AS org_name,
       coalesce(o.system, c.system) AS system,
       coalesce(o.jurisdiction, c.jurisdiction) AS jurisdiction,
       c.name AS client_name
  FROM (SELECT count(*) AS total FROM usage) t
  LEFT JOIN LATERAL (SELECT * FROM usage ORDER BY at DESC, index DESC OFFSET $7 LIMIT $8) u
    ON true
  LEFT JOIN operator o ON u.actor_type = 'operator' AND o.id = u.actor_id
  LEFT JOIN client c ON u.actor_type = 'client' AND c.id = u.actor_id
 ORDER BY u.at DESC, u.index DESC
"""

# The event at index $1 as the log holds it (the proof's leaf), if it is a usage shown on $2
# ($3 actions, $4 pairs).
USAGE_EVENT = """
SELECT index, at, actor_type, actor_id, action, pin, purpose, outcome, request_id, source_ip,
       details
  FROM audit_entry
 WHERE index = $1 AND pin IS NOT NULL
   AND action = ANY($3::text[])
   AND action || ' ' || outcome = ANY($4::text[])
   AND coalesce(details->>'hidden_until', '') COLLATE "C" <= $2::text
"""

# Who may ask about a subject: its birth date and the parents named by PIN.
SUBJECT = """
SELECT date_of_birth, record->'mother'->>'pin' AS mother_pin,
       record->'father'->>'pin' AS father_pin
  FROM person WHERE pin = $1
"""

# usagePeriod: the log keeps every event from its first one on.
FIRST_EVENT_AT = "SELECT at FROM audit_entry WHERE index = 0"

PING = "SELECT 1"

# -- the citizen's page sessions (migrations/0036_citizen_session.sql) ---------------------

PURGE_SESSIONS = "DELETE FROM citizen_session WHERE expires_at < $1::timestamptz"

OPEN_SESSION = """
INSERT INTO citizen_session (ticket_sha256, ticket_expires_at, expires_at, portal_id,
                             portal_roles, portal_jurisdiction, portal_token_id,
                             portal_token_exp, requester_pin, subject_pin)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

# Swap a live ticket ($1) for a session secret ($2), once; $3 is now.
REDEEM_TICKET = """
UPDATE citizen_session SET ticket_sha256 = NULL, session_sha256 = $2
 WHERE ticket_sha256 = $1 AND ticket_expires_at > $3 AND expires_at > $3
RETURNING expires_at, portal_id, portal_roles, portal_jurisdiction, portal_token_id,
          portal_token_exp, requester_pin, subject_pin
"""

GET_SESSION = """
SELECT expires_at, portal_id, portal_roles, portal_jurisdiction, portal_token_id,
       portal_token_exp, requester_pin, subject_pin
  FROM citizen_session WHERE session_sha256 = $1 AND expires_at > $2
"""
