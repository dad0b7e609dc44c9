-- The contiguity rule of audit_log (0003), checked once per statement instead of once per row.
--
-- The row trigger's `SELECT max(index) FROM audit_log` has no parameter, so each connection
-- keeps one generic plan for it, made at its first use. On a new, small log that plan is a
-- sequential scan, and it ran for every row inserted: sequencing a backlog cost rows x log size
-- until an ANALYZE happened to invalidate the plan (tests/integration/test_bulk_plans.py: 60,000
-- events, 10,000 per round, hit a 10 s statement timeout in the second round).
--
-- Same rule, now over the statement's new rows (a transition table): they have exactly the
-- indexes last + 1 .. last + n, where last is the greatest index already there (-1 for an empty
-- log), and no row already there is above them. With the primary key (no index twice), that is
-- "appended at the end, without a gap", as before. Each check is one index probe per statement.
CREATE OR REPLACE FUNCTION audit_log_contiguous() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  first_new bigint;
  last_new  bigint;
  n         bigint;
  last_old  bigint;
BEGIN
  SELECT min(e.index), max(e.index), count(*) INTO first_new, last_new, n FROM new_entries e;
  IF n = 0 THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(max(l.index), -1) INTO last_old FROM audit_log l WHERE l.index < first_new;
  IF first_new <> last_old + 1 OR last_new - first_new + 1 <> n
     OR EXISTS (SELECT 1 FROM audit_log l WHERE l.index > last_new) THEN
    RAISE EXCEPTION 'audit_log indexes % to % (% rows) do not continue the log after %',
      first_new, last_new, n, last_old
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NULL;
END
$$;
DROP TRIGGER audit_log_contiguous ON audit_log;
CREATE TRIGGER audit_log_contiguous AFTER INSERT ON audit_log
  REFERENCING NEW TABLE AS new_entries
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_contiguous();
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_contiguous;
