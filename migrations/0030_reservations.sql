-- Offline registration offices: reservations of PINs (contract 8, issue 13).
--
-- A reserved number is a `person` row with status 'reserved': claimed through the same
-- allocation path as any issuance (person_insert(): the primary key of `person` is the one
-- uniqueness of PINs, and pin_block counts it), so online issuance can never draw it, the
-- exact allocator still reports pin_space_exhausted exactly, and nothing in the hot path of
-- online issuance changed. Its person_row is a placeholder (empty names, the bucket's sex, the
-- 1st of January of the bucket's year); it is not a person: every read, search and verification
-- leaves 'reserved' rows out. An offline issuance synced later rewrites the row in place
-- (person_take_reserved()) and it becomes 'active' like any other person.
--
-- Retirement (docs/decisions.md "Offline registration offices"): an unused reserved number is
-- retired when its reservation is released or reaches `expires_at`. Retiring changes nothing
-- in the number's row: it stays 'reserved', so it is never drawn again, online or offline;
-- only the reservation's counts and the client's open-reservation limit see the difference.
-- Its reserving client may still sync it (a paper certificate may carry it).
ALTER TABLE person DROP CONSTRAINT person_status_check;
ALTER TABLE person ADD CONSTRAINT person_status_check
  CHECK (status IN ('active', 'deceased', 'cancelled', 'reserved'));

CREATE TABLE reservation (
  id            text PRIMARY KEY,
  client_id     text NOT NULL,
  province_code text NOT NULL CHECK (province_code ~ '^[0-9]{3}$'),
  issued_at     timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  released_at   timestamptz,
  counts        jsonb NOT NULL,            -- reserved per bucket at creation, e.g. {"M2026": 5}
  jws           text NOT NULL,
  CHECK (expires_at > issued_at)
);
CREATE INDEX reservation_client ON reservation (client_id);

CREATE TABLE reservation_pin (
  pin            text COLLATE "C" PRIMARY KEY REFERENCES person (pin),
  reservation_id text NOT NULL REFERENCES reservation (id),
  bucket         text NOT NULL CHECK (bucket ~ '^[MF][0-9]{4}$')
);
CREATE INDEX reservation_pin_reservation ON reservation_pin (reservation_id);

CREATE TRIGGER reservation_no_delete BEFORE DELETE ON reservation
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER reservation_pin_no_delete BEFORE DELETE ON reservation_pin
  FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Reserved rows become persons: each given row goes to its PIN if that PIN is still
-- 'reserved' (a PIN already taken by another registration is not returned). The PINs must be
-- distinct. issued_at is the time the service stored it (the office's time is in the event).
CREATE FUNCTION person_take_reserved(p_pins text[], p_rows person_row[])
RETURNS TABLE (pin text, issued_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  UPDATE person AS p
     SET status = 'active',
         registration_authority = (r.pr).registration_authority,
         registration_number = (r.pr).registration_number,
         registered_on = (r.pr).registered_on,
         province_code = (r.pr).province_code,
         full_name = (r.pr).full_name,
         name_folded = (r.pr).name_folded,
         other_names_folded = (r.pr).other_names_folded,
         sex = (r.pr).sex,
         date_of_birth = (r.pr).date_of_birth,
         record = (r.pr).record::jsonb,
         issued_at = clock_timestamp(),
         updated_at = clock_timestamp()
    FROM (SELECT u.pin, p_rows[u.o] AS pr
            FROM unnest(p_pins) WITH ORDINALITY AS u(pin, o)) AS r
   WHERE p.pin = r.pin AND p.status = 'reserved'
  RETURNING p.pin::text, p.issued_at;
END
$$;

REVOKE ALL ON FUNCTION person_take_reserved(text[], person_row[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION person_take_reserved(text[], person_row[]) TO idservice_service;
GRANT SELECT, INSERT ON reservation, reservation_pin TO idservice_service;
GRANT UPDATE (released_at) ON reservation TO idservice_service;
GRANT SELECT ON reservation, reservation_pin TO idservice_auditor;
