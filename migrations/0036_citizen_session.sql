-- The citizen's page (/citizen/usage, issue 14 item 5): short-lived sessions a portal opens for
-- the citizen it authenticated (idservice/datatracker/sessions.py).
--
-- The portal asks for a page link with its access token and the citizen's PIN (X-Road-UserId);
-- the link carries a random single-use ticket. Opening it swaps the ticket for a random
-- session cookie. Only SHA-256 of ticket and cookie are kept, so reading this table gives
-- nothing usable. A session carries what the page needs to act for the portal (its client id,
-- roles, jurisdiction, token id and expiry: a revoked portal token or a disabled portal ends
-- the session like the token), and never outlives the portal's token.
--
-- Bounded: only an authenticated portal creates rows; expired rows are deleted whenever a new
-- one is made (citizen_session_expiry).

CREATE TABLE citizen_session (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ticket_sha256      bytea UNIQUE CHECK (octet_length(ticket_sha256) = 32),
  session_sha256     bytea UNIQUE CHECK (octet_length(session_sha256) = 32),
  ticket_expires_at  timestamptz NOT NULL,
  expires_at         timestamptz NOT NULL,
  portal_id          text NOT NULL,
  portal_roles       text[] NOT NULL,
  portal_jurisdiction text NOT NULL,
  portal_token_id    text NOT NULL,
  portal_token_exp   bigint NOT NULL,
  requester_pin      text COLLATE "C" NOT NULL CHECK (requester_pin ~ '^[0-9]{12}$'),
  subject_pin        text COLLATE "C" NOT NULL CHECK (subject_pin ~ '^[0-9]{12}$'),
  created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- a ticket is swapped for a session exactly once
  CHECK (ticket_sha256 IS NULL OR session_sha256 IS NULL)
);
CREATE INDEX citizen_session_expiry ON citizen_session (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON citizen_session TO idservice_service;
