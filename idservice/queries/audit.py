"""SQL of the audit log."""

INSERT_EVENTS = """
INSERT INTO audit_event (actor_type, actor_id, action, pin, purpose, outcome, request_id,
                         source_ip, details)
SELECT $1, $2, u.action, u.pin, u.purpose, u.outcome, $3, $4, u.details::jsonb
  FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
       AS u(action, pin, purpose, outcome, details)
"""

SEQUENCE = "SELECT audit_sequence($1)"

COUNT_UNSEQUENCED = """
SELECT count(*) FROM audit_event e
 WHERE NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.event_id = e.id)
"""
