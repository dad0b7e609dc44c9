-- The record pages (issue 15) show, for a PIN that replaced another one after a correction of
-- sex or birth year, the PIN it replaced, and the auditor's PIN history links both ways. The
-- only link is person.replaced_by on the old row: without an index, "which PIN did this one
-- replace" reads the whole person table. Partial: only cancelled rows have replaced_by.
CREATE INDEX person_replaced_by ON person (replaced_by) WHERE replaced_by IS NOT NULL;
