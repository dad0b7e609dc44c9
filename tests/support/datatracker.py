"""A Data Tracker test server: the session database and HSM token, with a clock the test
moves (the app's injected `Clock`, never the product's code), and helpers to make people,
officers and portals with real tokens minted by the server's own HSM key.

Only backwards moves keep tokens usable: PyJWT checks `nbf`/`exp` against the wall clock as
well, so a token minted with a clock ahead of it would be refused. Tests that need "after the
date" therefore first move the clock back, create the covert access, then move it forward to
now (docs/datatracker.md says the same).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from hsm.softhsm import SoftHsmToken
from idservice.app import create_app
from idservice.audit.sequencer import sequence_once
from idservice.clock import CIVIL_TIMEZONE
from idservice.db.migrate import migrate
from idservice.db.pool import connect
from idservice.queries import audit as aq
from idservice.runtime import DatabaseTarget
from idservice.settings import Settings
from tests.support.bodies import issue_body
from tests.support.debian_pg import PgServer
from tests.support.server import ServerThread, free_port

PROVINCE = "001"  # Hà Nội: the same PIN code before and after the 2025 merger


class MovableClock:
    """System time plus an offset the test sets."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def today(self) -> date:
        return self.now().astimezone(CIVIL_TIMEZONE).date()


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


@dataclass
class TrackerEnv:
    server: ServerThread
    clock: MovableClock
    admin_url: str  # operators and clients are written by the administrator role only
    _registrar: tuple[float, httpx.Client] | None = field(default=None, init=False)

    @property
    def registrar(self) -> httpx.Client:
        """A registrar of the tracker's province, its token renewed after 10 minutes."""
        if self._registrar is None or time.monotonic() - self._registrar[0] > 600:
            if self._registrar is not None:
                self._registrar[1].close()
            self._registrar = (time.monotonic(), self.client(
                ("registrar",), PROVINCE, name="Phần mềm hộ tịch Hà Nội"))
        return self._registrar[1]

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def token(self, kind: str, roles: tuple[str, ...], jurisdiction: str = "*",
              subject: str | None = None) -> str:
        issued = self.server.call(self.server.services.issuer.issue(
            kind=kind, subject=subject or f"{kind}-{secrets.token_hex(5)}",  # type: ignore[arg-type]
            roles=roles, jurisdiction=jurisdiction,
            extra={"cnf": {"x5t#S256": secrets.token_hex(16)}} if kind == "operator" else None))
        return issued.token

    def sql(self, query: str, *args: Any) -> list[Any]:
        return self.server.call(self.server.services.pool.fetch(query, *args))

    def admin_sql(self, query: str, *args: Any) -> None:
        async def run() -> None:
            conn = await connect(self.admin_url)
            try:
                await conn.execute(query, *args)
            finally:
                await conn.close()
        self.server.call(run())

    def operator(self, roles: tuple[str, ...] = ("officer",), jurisdiction: str = PROVINCE, *,
                 org_code: str | None = None, org_name: str | None = None,
                 system: str | None = None) -> httpx.Client:
        """A registered operator (with its organisation) and an HTTP client with its token."""
        operator_id = f"officer-{secrets.token_hex(5)}"
        self.admin_sql("INSERT INTO operator (id, name, cert_sha256, cert_issuer, cert_serial, "
                 "cert_pem, roles, jurisdiction, org_code, org_name, system) VALUES "
                 "($1, $2, $3, 'CN=Test CA', $4, '-', $5, $6, $7, $8, $9)",
                 operator_id, f"Cán bộ {operator_id}", secrets.token_hex(32),
                 secrets.token_hex(8), list(roles), jurisdiction, org_code, org_name, system)
        return self.server.client(self.token("operator", roles, jurisdiction, operator_id))

    def client(self, roles: tuple[str, ...], jurisdiction: str = "*", *,
               name: str = "Cổng dịch vụ công") -> httpx.Client:
        """A registered machine client and an HTTP client with its token."""
        client_id = f"client-{secrets.token_hex(5)}"
        self.admin_sql("INSERT INTO client (id, name, public_key_pem, cert_sha256, roles, "
                 "jurisdiction) VALUES ($1, $2, '-', $3, $4, $5)", client_id, name,
                 secrets.token_hex(32), list(roles), jurisdiction)
        return self.server.client(self.token("client", roles, jurisdiction, client_id))

    def portal(self) -> httpx.Client:
        return self.client(("portal",))

    def person(self, dob: date, *, mother: str | None = None, father: str | None = None,
               full_name: str = "Nguyễn Thị Minh Anh") -> str:
        registered = max(dob, date(1900, 1, 1)) + timedelta(days=5)
        body = issue_body(PROVINCE, dob=dob.isoformat(),
                          registered_on=min(registered, self.clock.today()).isoformat(),
                          full_name=full_name)
        # Without a mother's PIN, issue_body's own (derived from the registration key): each
        # call is another child, which the duplicate check (contract 9) does not refuse.
        body["mother"] = {"full_name": "Trần Thị Lan",
                          "pin": mother or body["mother"]["pin"], "nationality": "VN"}
        body["father"] = {"full_name": "Nguyễn Văn Hùng", "pin": father, "nationality": "VN"}
        response = self.registrar.post("/v1/pins", json=body)
        assert response.status_code == 201, response.text
        pin: str = response.json()["pin"]
        return pin

    def flush(self) -> None:
        """Sequence, integrate and checkpoint what is committed now."""
        svc = self.server.services
        assert svc.audit_integrator is not None
        deadline = time.monotonic() + 10
        while self.server.call(svc.pool.fetchval(aq.COUNT_UNSEQUENCED)):
            assert time.monotonic() < deadline, "events were not sequenced in 10 s"
            self.server.call(sequence_once(svc.pool))
            time.sleep(0.01)
        self.server.call(svc.audit_integrator.flush())

    def stop(self) -> None:
        if self._registrar is not None:
            self._registrar[1].close()
        self.server.stop()


@dataclass
class TrackerDatabase:
    """A fresh database of the session cluster, so this server's checkpoints (signed by its own
    token's key) are the only ones in it."""

    name: str
    target: DatabaseTarget


def start_tracker(settings: Settings, pg_server: PgServer, service_token: SoftHsmToken,
                  user_pin: str) -> tuple[TrackerEnv, TrackerDatabase]:
    """Its own server (own port, origin, SoftHSM token and database)."""
    name = f"test_tracker_{uuid.uuid4().hex[:10]}"
    urls = asyncio.run(pg_server.ensure_database(name))
    asyncio.run(migrate(urls.owner))
    database = DatabaseTarget(service_url=urls.service, owner_url=urls.owner,
                              auditor_url=urls.auditor, embedded=None, admin_url=urls.admin)
    port = free_port()
    clock = MovableClock()
    tracker_settings = settings.model_copy(update={
        "origin": f"http://127.0.0.1:{port}", "audit_integrator_interval": 0.1,
        "audit_checkpoint_interval": 0.2, "pkcs11_module": service_token.module_path,
        "pkcs11_token_label": service_token.token_label,
        "pkcs11_pin": SecretStr(user_pin), "jwt_key_label": "tracker-es256"})
    thread = ServerThread(create_app(tracker_settings, clock=clock, database=database),
                          port).start()
    return TrackerEnv(thread, clock, urls.admin), TrackerDatabase(name, database)


def usage_headers(citizen: str) -> dict[str, str]:
    return {"X-Road-UserId": f"VN{citizen}"}


FIND = "/datatracker/v2/findUsage"


def find(portal: httpx.Client, citizen: str, subject: str | None = None,
         **params: Any) -> httpx.Response:
    return portal.get(FIND, params={"userCode": subject or citizen, **params},
                      headers=usage_headers(citizen))


def usages(portal: httpx.Client, citizen: str, subject: str | None = None,
           **params: Any) -> dict[str, Any]:
    response = find(portal, citizen, subject, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def adult(tracker: TrackerEnv, **kw: Any) -> str:
    return tracker.person(years_before(tracker.clock.today(), 30), **kw)


def read(officer: httpx.Client, pin: str, purpose: str, **params: str) -> httpx.Response:
    return officer.get(f"/v1/persons/{pin}", params={"purpose": purpose, **params})
