-- Citizen access report (Data Tracker, contract section 11; issue 14): what citizens are told
-- about who used their record, and the index that finds it.
--
-- 1. The organisation behind an operator or a client, as a usage names it (`receiverCode`,
--    `receiverName`, `receiverSystem`): set with `--org-code`, `--org-name`, `--system` of
--    `operators add` / `clients add`; all optional (without them a usage names the
--    jurisdiction, see idservice/datatracker/usage.py). Plain text a citizen reads, so no
--    control characters and a bounded length.
--
-- 2. findUsage is "the accesses to this PIN in this period, newest first": one range scan of
--    (pin, at) in each monthly partition of audit_event, whatever the size of the log. It
--    replaces audit_event_pin (pin alone), which every `pin = $1` search of the auditors can
--    use just as well as its prefix, so the write path keeps the same number of indexes.
--    (Built before any production log exists; on a large log each partition's index would be
--    built CONCURRENTLY first and attached, then the parent index created.)

ALTER TABLE client
  ADD COLUMN org_code text CHECK (org_code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  ADD COLUMN org_name text
    CHECK (char_length(org_name) BETWEEN 1 AND 200 AND org_name !~ '[[:cntrl:]]'),
  ADD COLUMN system text
    CHECK (char_length(system) BETWEEN 1 AND 200 AND system !~ '[[:cntrl:]]');

ALTER TABLE operator
  ADD COLUMN org_code text CHECK (org_code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  ADD COLUMN org_name text
    CHECK (char_length(org_name) BETWEEN 1 AND 200 AND org_name !~ '[[:cntrl:]]'),
  ADD COLUMN system text
    CHECK (char_length(system) BETWEEN 1 AND 200 AND system !~ '[[:cntrl:]]');

CREATE INDEX audit_event_pin_at ON audit_event (pin, at) WHERE pin IS NOT NULL;
DROP INDEX audit_event_pin;
