"""SQL of a person's correction history and of the small lookups around a record page
(`persons/history.py`)."""

# Corrections of $1 (`pin = $1`) and the correction that replaced an older PIN by $1
# (`new_pin = $1`), oldest first. Uses person_history_pin; the replacement side is found
# through the old record's `replaced_by` (person is keyed by pin).
HISTORY = """
SELECT h.id, h.pin, h.at, h.actor_type, h.actor_id, h.reason, h.changes, h.previous, h.new_pin
  FROM person_history h
 WHERE h.pin = $1
    OR h.pin IN (SELECT p.pin FROM person p WHERE p.replaced_by = $1)
 ORDER BY h.at, h.id
"""

# Which of the PINs $1 are in the registry.
EXISTING_PINS = "SELECT pin FROM person WHERE pin = ANY($1::text[])"

# What an auditor sees of a PIN beside its access history: name, status, replacement links.
SUMMARY = """
SELECT p.pin, p.full_name, p.status, p.replaced_by,
       ARRAY(SELECT o.pin FROM person o WHERE o.replaced_by = p.pin ORDER BY o.pin) AS replaces
  FROM person p WHERE p.pin = $1
"""
