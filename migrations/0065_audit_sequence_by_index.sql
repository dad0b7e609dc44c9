-- The sequencer's statements read the end of audit_log through its primary key only, whatever
-- their plans were made on.
--
-- Why: bench/scale.py at 10,000,000 entries found each sequencing round costing 42-58 ms of
-- PostgreSQL CPU on average (about half a core at a few hundred requests a second). The cause
-- was the contiguity check of 0062, `EXISTS (SELECT 1 FROM audit_log WHERE index > last_new)`:
-- its generic plan (the one the plan cache settles on, as cheaper by estimate) is a sequential
-- scan, since a third of any log is expected above a parameter and the first such row would
-- come at once; no row is ever above it, so the scan reads the whole log (388 ms at 10M). The
-- other end-of-log look-ups (`max(index) ... WHERE index < first_new`, `ORDER BY index DESC
-- LIMIT 1`) get the same kind of plan when they are planned on a small log, which a new
-- database always is (tests/integration/test_bulk_plans.py counts the connection's own
-- sequential scans of audit_log: 8 in 3 rounds before this migration, 0 after).
--
-- The rule of docs/decisions.md ("Statements whose plan cannot go wrong with the statistics"):
-- sequential and bitmap scans are off inside both functions, so the index walk is their only
-- plan. Nothing else about sequencing changes.
ALTER FUNCTION audit_sequence(integer) SET enable_seqscan = off;
ALTER FUNCTION audit_sequence(integer) SET enable_bitmapscan = off;
ALTER FUNCTION audit_log_contiguous() SET enable_seqscan = off;
ALTER FUNCTION audit_log_contiguous() SET enable_bitmapscan = off;
