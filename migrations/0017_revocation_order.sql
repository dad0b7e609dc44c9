-- Revocations are found in commit order, not insert order (issue 9 item 3).
--
-- Every service process polls revoked_token for what it has not seen. `revoked_at` is stamped
-- when the row is inserted, so a logout whose transaction commits after a later one's was
-- skipped by a poller that had already moved past the later `revoked_at`: that token kept
-- working in every other process. As the audit sequencer does (0003), each row now records its
-- transaction id, and a poll asks for rows with txid >= the xmin of the previous poll's
-- snapshot: every transaction below that xmin had finished when that poll read the table.
-- A row may be read twice; none is missed.
ALTER TABLE revoked_token ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX revoked_token_txid ON revoked_token (txid);
