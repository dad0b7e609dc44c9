-- Person records and PIN allocation. Rows are never deleted: a PIN, once issued, stays taken
-- (cancelled records keep their PIN), which is what makes "never reused" a database fact.
CREATE TABLE person (
  pin                     text COLLATE "C" PRIMARY KEY CHECK (pin ~ '^[0-9]{12}$'),
  status                  text NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'deceased', 'cancelled')),
  replaced_by             text COLLATE "C" REFERENCES person (pin),
  registration_authority  text NOT NULL,
  registration_number     text NOT NULL,
  registered_on           date NOT NULL,
  province_code           text NOT NULL,
  full_name               text NOT NULL,
  name_folded             text NOT NULL,
  other_names_folded      text[] NOT NULL DEFAULT '{}',
  sex                     text NOT NULL CHECK (sex IN ('M', 'F')),
  date_of_birth           date NOT NULL,
  record                  jsonb NOT NULL,
  issued_at               timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK ((status = 'cancelled') = (replaced_by IS NOT NULL))
);
CREATE INDEX person_name_dob ON person (name_folded, date_of_birth);
CREATE INDEX person_dob ON person (date_of_birth);
CREATE INDEX person_other_names ON person USING gin (other_names_folded);

-- Used numbers per 1,000-number block of each (province, G, YY) bucket: lets the allocator pick
-- the k-th free number exactly when random draws keep hitting used ones (bucket nearly full).
CREATE TABLE pin_block (
  prefix  text COLLATE "C" NOT NULL CHECK (prefix ~ '^[0-9]{6}$'),
  block   integer NOT NULL CHECK (block >= 0),
  used    integer NOT NULL CHECK (used >= 0),
  PRIMARY KEY (prefix, block)
);

-- Idempotency key of issuance: (authority, number) of the birth registration.
CREATE TABLE registration (
  authority    text NOT NULL,
  number       text NOT NULL,
  body_sha256  bytea NOT NULL,
  pin          text COLLATE "C" NOT NULL REFERENCES person (pin),
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (authority, number)
);

CREATE TABLE person_history (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pin         text COLLATE "C" NOT NULL REFERENCES person (pin),
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_type  text NOT NULL,
  actor_id    text NOT NULL,
  reason      text NOT NULL,
  changes     jsonb NOT NULL,
  previous    jsonb NOT NULL,
  new_pin     text COLLATE "C" REFERENCES person (pin)
);
CREATE INDEX person_history_pin ON person_history (pin);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

-- PINs are never freed: no DELETE or TRUNCATE of person records, for anyone.
CREATE TRIGGER person_no_delete BEFORE DELETE ON person
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER person_no_truncate BEFORE TRUNCATE ON person
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
ALTER TABLE person ENABLE ALWAYS TRIGGER person_no_delete;
ALTER TABLE person ENABLE ALWAYS TRIGGER person_no_truncate;
CREATE TRIGGER person_history_append_only BEFORE UPDATE OR DELETE ON person_history
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
ALTER TABLE person_history ENABLE ALWAYS TRIGGER person_history_append_only;

GRANT SELECT, INSERT, UPDATE ON person TO idservice_service;
GRANT SELECT, INSERT, UPDATE ON pin_block TO idservice_service;
GRANT SELECT, INSERT ON registration, person_history TO idservice_service;
