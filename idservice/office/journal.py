"""The office's journal (contract 8): a local SQLite database under `--dir`, the only state of
an offline registration office.

- Durable before anything is shown: WAL with `synchronous=FULL`, so a committed record has
  reached the disk when `issue` returns; the CLI prints the PIN only after that.
- One PIN to one birth: `issue` takes the next unused PIN inside `BEGIN IMMEDIATE` (the
  database's write lock), so two `office issue` running at once never take the same one; the
  record's `pin` is UNIQUE as a second guard. The same birth again (registration key and
  content, as the service compares them) gets its PIN again, not a second one: an officer who
  runs `issue` again after a crash that hid the PIN writes the PIN the service will store.
- Trust: reservations are kept as the service's JWS and verified against the JWKS saved when
  reserving, every time a PIN is taken from them; a PIN is used only if the verified payload
  holds it, so an altered journal or a forged reservation is refused before any PIN is used.
- Non-repudiation: each record is signed with the office key when written
  (`persons/office_records.py`); the service keeps that signature in the event.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from idservice.auth.assertion import load_private_key
from idservice.i18n import N_
from idservice.persons.models import IssueRequest
from idservice.persons.office_records import birth_digest, sign_issuance, signed_payload
from idservice.persons.reservations import RESERVATION_TYP, bucket_name

__all__ = ["Journal", "JournalError", "Record"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reservation (
  id TEXT PRIMARY KEY, jws TEXT NOT NULL, exp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pin (
  pin TEXT PRIMARY KEY, reservation_id TEXT NOT NULL REFERENCES reservation (id),
  bucket TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS pin_free ON pin (bucket, used);
CREATE TABLE IF NOT EXISTS record (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  pin TEXT NOT NULL UNIQUE REFERENCES pin (pin),
  reservation_id TEXT NOT NULL,
  issued_offline_at TEXT NOT NULL,
  birth TEXT NOT NULL,
  registration_key TEXT NOT NULL UNIQUE,  -- JSON [province, authority, number]
  birth_sha256 TEXT NOT NULL,             -- the service's idempotency digest of the birth
  signature TEXT NOT NULL,
  sync_status INTEGER,          -- 201/200 once stored by the service; NULL until then
  sync_error TEXT);             -- the problem the service answered, if it refused the line
"""

FILE = "journal.sqlite3"


class JournalError(Exception):
    """Something the officer must act on; the message says what to do.

    `message` is an English text marked for translation (`N_`) with `%(name)s` placeholders
    filled from `params`: the office tool shows it in the officer's language (`text`), and
    `str()` is the English (logs, tracebacks)."""

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params

    def text(self, gettext: Callable[[str], str]) -> str:
        translated = gettext(self.message)
        return translated % self.params if self.params else translated


@dataclass(frozen=True)
class Record:
    seq: int
    pin: str
    reservation_id: str
    issued_offline_at: str
    birth: dict[str, Any]
    signature: str

    def line(self) -> dict[str, Any]:
        return {"pin": self.pin, "issued_offline_at": self.issued_offline_at,
                "birth": self.birth, "office_signature": self.signature}


class Journal:
    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE
        if not self.path.exists():
            raise JournalError(N_("no office journal in %(dir)s: run `idservice office init "
                                  "--dir %(dir)s` first"), dir=str(directory))
        self.db = _connect(self.path)

    @classmethod
    def create(cls, directory: Path, *, server: str, client_id: str, key_path: Path) -> Journal:
        directory.mkdir(parents=True, exist_ok=True)
        load_private_key(key_path.read_bytes())  # refuse a key file that is not a key now
        db = _connect(directory / FILE)
        with db:
            db.executescript(SCHEMA)
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("server", server.rstrip("/")), ("client_id", client_id),
                ("key", str(key_path.resolve()))])
        db.close()
        return cls(directory)

    def meta(self, key: str) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise JournalError(N_("the journal has no %(key)s: run `office init` or "
                                  "`office reserve`"), key=key)
        return str(row[0])

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- reservations -------------------------------------------------------------------

    def verify_reservation(self, jws: str) -> dict[str, Any]:
        """The payload of a reservation JWS signed by the service for this office."""
        try:
            jwks = json.loads(self.meta("jwks"))
            header = jwt.get_unverified_header(jws)
            keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
            if header.get("typ") != RESERVATION_TYP or header.get("alg") != "ES256" or not keys:
                raise JournalError(N_("the reservation is not signed by the service's key: "
                                      "do not use it; reserve again while online"))
            payload: dict[str, Any] = jwt.decode(
                jws, jwt.PyJWK(keys[0]).key, algorithms=["ES256"],
                options={"verify_exp": False})
        except jwt.PyJWTError as exc:
            raise JournalError(N_("the reservation's signature does not verify (%(reason)s): "
                                  "do not use it; reserve again while online"),
                               reason=str(exc)) from exc
        if payload.get("client_id") != self.meta("client_id"):
            raise JournalError(N_("the reservation was made for another office: do not use "
                                  "it; reserve again with this office's key"))
        return payload

    def add_reservation(self, jws: str, jwks: dict[str, Any]) -> dict[str, Any]:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('jwks', ?)",
                       (json.dumps(jwks),))
        payload = self.verify_reservation(jws)
        with self._write() as db:
            db.execute("INSERT INTO reservation (id, jws, exp) VALUES (?, ?, ?)",
                       (payload["reservation_id"], jws, int(payload["exp"])))
            db.executemany("INSERT INTO pin (pin, reservation_id, bucket) VALUES (?, ?, ?)",
                           [(pin, payload["reservation_id"], bucket)
                            for bucket, pins in payload["pins"].items() for pin in pins])
        return payload

    # ---- offline issuance ---------------------------------------------------------------

    def issue(self, req: IssueRequest, birth: dict[str, Any], now: datetime | None = None
              ) -> str:
        """Take the next unused PIN of the birth's bucket, write the signed record durably,
        and return the PIN (only then may it be shown). A birth already in the journal gets
        its own PIN again; its key with other content is refused."""
        now = now or datetime.now(UTC)
        bucket = bucket_name(req.child.sex, req.child.date_of_birth.year)
        province = req.registration.province_code
        key = load_private_key(Path(self.meta("key")).read_bytes())
        client_id = self.meta("client_id")
        issued_at = now.replace(microsecond=0).isoformat()
        digest = birth_digest(req)
        reg = req.registration
        reg_key = json.dumps([reg.province_code, reg.authority, reg.number], ensure_ascii=False)
        with self._write() as db:
            known = db.execute("SELECT pin, birth_sha256 FROM record WHERE registration_key = ?",
                               (reg_key,)).fetchone()
            if known is not None:
                if known[1] != digest.hex():
                    raise JournalError(N_(
                        "registration %(number)s of %(authority)s already has PIN %(pin)s in "
                        "this journal with other data: do not give a second PIN; correct the "
                        "record through the province after `office sync`"),
                        number=reg.number, authority=reg.authority, pin=str(known[0]))
                return str(known[0])
            row = db.execute(
                "SELECT p.pin, p.reservation_id, r.jws FROM pin p "
                "JOIN reservation r ON r.id = p.reservation_id "
                "WHERE p.bucket = ? AND p.used = 0 AND r.exp > ? AND substr(p.pin, 1, 3) = ? "
                "ORDER BY r.exp, p.rowid LIMIT 1",
                (bucket, int(now.timestamp()), province)).fetchone()
            if row is None:
                raise JournalError(N_(
                    "no unused reserved PIN left for bucket %(bucket)s of province "
                    "%(province)s: connect, run `office sync` and `office reserve` for this "
                    "bucket"), bucket=bucket, province=province)
            pin, reservation_id, jws = row
            payload = self.verify_reservation(jws)
            if payload["reservation_id"] != reservation_id or \
                    pin not in payload["pins"].get(bucket, []):
                raise JournalError(N_("PIN %(pin)s is not in the signed reservation: the "
                                      "journal was altered; do not use it, call the province"),
                                   pin=str(pin))
            signature = sign_issuance(key, client_id,
                                      signed_payload(reservation_id, pin, issued_at, digest))
            db.execute("UPDATE pin SET used = 1 WHERE pin = ? AND used = 0", (pin,))
            db.execute("INSERT INTO record (pin, reservation_id, issued_offline_at, birth, "
                       "registration_key, birth_sha256, signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (pin, reservation_id, issued_at, json.dumps(birth, ensure_ascii=False),
                        reg_key, digest.hex(), signature))
        return str(pin)

    # ---- sync and status ----------------------------------------------------------------

    def unsynced(self) -> list[Record]:
        rows = self.db.execute(
            "SELECT seq, pin, reservation_id, issued_offline_at, birth, signature FROM record "
            "WHERE sync_status IS NULL ORDER BY seq").fetchall()
        return [Record(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def mark(self, results: list[tuple[int, int | None, str | None]]) -> None:
        """(seq, status, error): the service's answer for each record (durable at once, so a
        cut sync resumes where it stopped)."""
        with self._write() as db:
            db.executemany("UPDATE record SET sync_status = ?, sync_error = ? WHERE seq = ?",
                           [(status, error, seq) for seq, status, error in results])

    def override(self, pin: str, reason: str) -> None:
        """Send a birth the service refused as a possible duplicate again, with the officer's
        `duplicate_override` (contract 9): the family already holds this PIN, and the officer
        has checked that the child is not the person the service named. The override is not
        part of the record (`IssueRequest.record`), so the birth's digest and the office's
        signature stay as they were; the record becomes unsynced for the next `office sync`."""
        reason = reason.strip()
        if not reason:
            raise JournalError(N_("give the reason (for example: twins, checked with the "
                                  "family)"))
        with self._write() as db:
            row = db.execute("SELECT birth, sync_error FROM record WHERE pin = ?",
                             (pin,)).fetchone()
            if row is None:
                raise JournalError(N_("PIN %(pin)s is not a birth of this journal: check the "
                                      "number"), pin=pin)
            code = json.loads(row[1]).get("code") if row[1] else None
            if code != "possible_duplicate":
                raise JournalError(N_("PIN %(pin)s was not refused as a possible duplicate: "
                                      "only such a birth can be sent again with an override"),
                                   pin=pin)
            birth = json.loads(row[0])
            birth["duplicate_override"] = {"reason": reason}
            db.execute("UPDATE record SET birth = ?, sync_status = NULL, sync_error = NULL "
                       "WHERE pin = ?", (json.dumps(birth, ensure_ascii=False), pin))

    def refused(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT pin, sync_error FROM record WHERE sync_error IS NOT NULL ORDER BY seq")]

    def status(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Per bucket: reserved, used, left (in reservations not expired), synced, unsynced."""
        at = int((now or datetime.now(UTC)).timestamp())
        rows = self.db.execute("""
            SELECT p.bucket, substr(p.pin, 1, 3), count(*),
                   sum(p.used), sum(CASE WHEN p.used = 0 AND r.exp > ? THEN 1 ELSE 0 END),
                   sum(CASE WHEN rec.sync_status IS NOT NULL THEN 1 ELSE 0 END),
                   sum(CASE WHEN rec.pin IS NOT NULL AND rec.sync_status IS NULL
                            THEN 1 ELSE 0 END),
                   min(r.exp)
              FROM pin p JOIN reservation r ON r.id = p.reservation_id
              LEFT JOIN record rec ON rec.pin = p.pin
             GROUP BY 1, 2 ORDER BY 2, 1""", (at,)).fetchall()
        out = []
        for bucket, province, reserved, used, left, synced, unsynced, exp in rows:
            out.append({"province_code": province, "bucket": bucket, "reserved": reserved,
                        "used": used, "left": left, "synced": synced, "unsynced": unsynced,
                        "expires": datetime.fromtimestamp(exp, UTC).isoformat(),
                        "warning": left < 0.2 * reserved})
        return out


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=60)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=60000")
    return db
