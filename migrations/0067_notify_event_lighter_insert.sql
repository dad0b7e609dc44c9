-- The outbox row of every issuance (the liveBirth trigger, 0044) is written with two index
-- entries and one row lock fewer.
--
-- Why: per birth the outbox row cost five WAL records: its heap tuple, its primary key, a NULL
-- entry in the unique index on `seq` (a B-tree indexes NULLs), its entry in
-- `notify_event_unsequenced`, and a FOR KEY SHARE lock on the `notify_topic` row 'liveBirth' by
-- the foreign key's check, taken by every birth of every transaction on the same row (two
-- concurrent batches share it through a MultiXact). Measured on 200,000 rows in statements of
-- 500: 2.17 s with them, 1.50 s without (3.3 us per row; about 2.5 % of a batch record's
-- PostgreSQL time, and every single issuance's row too).
--
-- * `seq` stays unique where it is set: a partial unique index. Unsequenced rows are found by
--   `notify_event_unsequenced`, never by `seq`.
-- * `topic` is checked against the topics' names by a CHECK instead of a foreign key. The
--   topics are created here and only here (0044: "nobody else creates any"), so the list is
--   written down twice: a test compares the two (tests/integration/test_notify_outbox.py). A
--   new topic is a migration that inserts it and widens the CHECK. Subscriptions keep their
--   foreign key (a subscription is rare; its topic must exist).
CREATE UNIQUE INDEX notify_event_seq ON notify_event (seq) WHERE seq IS NOT NULL;
ALTER TABLE notify_event DROP CONSTRAINT notify_event_seq_key;
ALTER TABLE notify_event DROP CONSTRAINT notify_event_topic_fkey;
ALTER TABLE notify_event ADD CONSTRAINT notify_event_topic_check CHECK (topic IN (
  'liveBirth', 'death', 'changeOfName', 'updatePerson', 'birthCancellation', 'changeOfGender'));
