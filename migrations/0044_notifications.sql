-- Notifications out (contract 9, OSIA Notification; issue 11 item 4).
--
-- notify_topic: one topic per event type, created here (the service's topics; nobody else
--   creates any). The uuid is the spec's topic id (`topic-id` header).
-- notify_event: the transactional outbox. A row is written in the same transaction as the
--   change it announces, so a rolled-back change announces nothing and a committed one cannot
--   be lost. liveBirth is written by the trigger below on `registration` (every birth
--   registration, whichever path issued it: single, batch, offline sync, OSIA, OpenCRVS, is
--   exactly one registration row); death and the corrections' events by the service functions
--   (idservice/notify/outbox.py). The writer chooses only the event's facts: the transaction id,
--   time and message id are stamped here.
-- Sequencing (as audit_sequence() does for the audit log): `id` is drawn at insert, not at
--   commit, so a reader following `id` could pass a row that commits late. The delivery worker
--   gives `seq` in `id` order to rows whose transaction is below the snapshot's xmin (final:
--   every transaction below xmin has ended), stopping before the first committed unsequenced
--   row whose transaction is not yet below xmin. Two events of one person are written by
--   transactions that lock that person one after the other, so the later one has the higher
--   `id`, and it is never sequenced before the earlier one: delivery in `seq` order is in order
--   per person. The worker runs under an advisory lock, so `seq` is given by one at a time.
-- notify_subscription: a subscriber client's subscription to a topic (idempotent per client,
--   topic, protocol and address). `cursor` is the last `seq` of the topic it has handled;
--   `attempts` and `next_at` are the retry state of the event after it (policy `countdown`,
--   `max_retries`). Unconfirmed subscriptions get no events; the worker sends the confirmation
--   (a fresh token each time, stored as its SHA-256 only).
CREATE TABLE notify_topic (
  id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name  text NOT NULL UNIQUE
);
INSERT INTO notify_topic (name) VALUES ('liveBirth'), ('death'), ('changeOfName'),
  ('updatePerson'), ('birthCancellation'), ('changeOfGender');

CREATE TABLE notify_event (
  id            bigserial PRIMARY KEY,
  xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  seq           bigint UNIQUE,
  message_id    uuid NOT NULL DEFAULT gen_random_uuid(),
  topic         text NOT NULL REFERENCES notify_topic (name),
  uin           text COLLATE "C" NOT NULL,
  uin1          text,
  uin2          text,
  previous_uin  text,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX notify_event_unsequenced ON notify_event (id) WHERE seq IS NULL;
CREATE INDEX notify_event_topic_seq ON notify_event (topic, seq) WHERE seq IS NOT NULL;

CREATE TABLE notify_sequence (
  one   boolean PRIMARY KEY DEFAULT true CHECK (one),
  last  bigint NOT NULL
);
INSERT INTO notify_sequence VALUES (true, 0);

CREATE TABLE notify_subscription (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  client_id        text NOT NULL,
  jurisdiction     text NOT NULL,
  topic            text NOT NULL REFERENCES notify_topic (name),
  protocol         text NOT NULL CHECK (protocol = 'http'),
  address          text NOT NULL CHECK (length(address) <= 2000),
  countdown        integer NOT NULL CHECK (countdown >= 1),
  max_retries      integer NOT NULL CHECK (max_retries >= 0),
  active           boolean NOT NULL DEFAULT false,
  token_sha256     bytea UNIQUE,
  confirm_attempts integer NOT NULL DEFAULT 0,
  confirm_next_at  timestamptz DEFAULT clock_timestamp(),
  cursor           bigint NOT NULL,
  attempts         integer NOT NULL DEFAULT 0,
  next_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (client_id, topic, protocol, address)
);
CREATE INDEX notify_subscription_client ON notify_subscription (client_id);

-- liveBirth: one per new registration row, in the registering statement's transaction.
CREATE FUNCTION notify_live_birth() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO notify_event (topic, uin, uin1, uin2)
  SELECT 'liveBirth', n.pin, p.mother_pin, NULLIF(p.record->'father'->>'pin', '')
    FROM new_registrations n JOIN person p ON p.pin = n.pin
   ORDER BY n.pin;
  RETURN NULL;
END
$$;
CREATE TRIGGER registration_notify AFTER INSERT ON registration
  REFERENCING NEW TABLE AS new_registrations
  FOR EACH STATEMENT EXECUTE FUNCTION notify_live_birth();

GRANT SELECT ON notify_topic TO idservice_service;
GRANT INSERT (topic, uin, uin1, uin2, previous_uin) ON notify_event TO idservice_service;
GRANT SELECT, DELETE ON notify_event TO idservice_service;
GRANT UPDATE (seq) ON notify_event TO idservice_service;
GRANT USAGE ON SEQUENCE notify_event_id_seq TO idservice_service;
GRANT SELECT, UPDATE ON notify_sequence TO idservice_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON notify_subscription TO idservice_service;
GRANT SELECT ON notify_topic, notify_event, notify_subscription TO idservice_auditor;
