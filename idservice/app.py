"""Application factory. The lifespan opens the database pool and the HSM key store and starts
the background tasks (audit sequencer, revocation poller, notification delivery); nothing else
holds global state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from fastapi import FastAPI

from hsm.async_keystore import AsyncKeyStore
from hsm.keystore import KeyStore
from idservice.api import audit as audit_routes
from idservice.api import auth as auth_routes
from idservice.api import datatracker as datatracker_routes
from idservice.api import docs as docs_routes
from idservice.api import officer_auth as officer_auth_routes
from idservice.api import opencrvs as opencrvs_routes
from idservice.api import ops as ops_routes
from idservice.api import osia as osia_routes
from idservice.api import persons as persons_routes
from idservice.api import pins as pins_routes
from idservice.api import reservations as reservation_routes
from idservice.api.headers import SecurityHeadersMiddleware
from idservice.api.middleware import RequestContextMiddleware
from idservice.api.openapi import install_openapi
from idservice.api.problems import install_handlers
from idservice.audit.checkpoints import CheckpointSigner
from idservice.audit.integrator import Integrator
from idservice.audit.partitions import PartitionKeeper
from idservice.audit.sequencer import Sequencer
from idservice.audit.signed_note import origin_for
from idservice.auth.client_login import ClientLogin
from idservice.auth.client_pki import ClientPki
from idservice.auth.login_group import LoginCoalescer
from idservice.auth.officer_login import OfficerLogin
from idservice.auth.officer_pki import OfficerPki
from idservice.auth.rate_limit import AuthLimits, RateLimitReporter
from idservice.auth.token_revocation import RevocationState
from idservice.auth.tokens import AccessTokenIssuer, AccessTokenVerifier, TokenKey
from idservice.clock import Clock, SystemClock
from idservice.db.pool import create_pool
from idservice.heap import settle_heap
from idservice.logging import configure_logging, get_logger
from idservice.metrics import MetricsRefresher
from idservice.notify.delivery import Deliverer, DeliveryConfig
from idservice.notify.subscriptions import NotifyContext
from idservice.persons.coalesce import IssueCoalescer
from idservice.persons.context import PersonsContext
from idservice.persons.verification import VerifyCoalescer
from idservice.pin.allocator import AllocatorConfig
from idservice.pin.provinces import ProvinceTable
from idservice.runtime import DatabaseTarget, resolve_database, resolve_hsm
from idservice.services import Services
from idservice.settings import Settings, get_settings
from idservice.web import citizen as citizen_routes
from idservice.web import routes as ui_routes

__all__ = ["create_app", "create_app_from_env"]

_log = get_logger(__name__)


async def open_token_key(keystore: AsyncKeyStore, label: str, *, create: bool = True
                         ) -> TokenKey:
    """The signing key (created on first use in dev), or a retired key kept for verification
    only (`create=False`: it must exist; a missing one stops the start)."""
    if create:
        await keystore.ensure_key(label, "EC_P256")
    public = await keystore.public_key(label)
    jwk = await keystore.jwk(label, "ES256")
    if not isinstance(public, EllipticCurvePublicKey):
        raise TypeError(f"key {label} is not an EC key")
    return TokenKey(label=label, kid=jwk["kid"], public_key=public, jwk=jwk)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    allocator: AllocatorConfig | None = None,
    database: DatabaseTarget | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        db = database or await resolve_database(settings)
        owns_db = database is None
        target = resolve_hsm(settings)
        keystore = AsyncKeyStore(KeyStore(target.module_path, target.token_label, target.user_pin))
        pool = None
        try:
            await keystore.open()
            token_key = await open_token_key(keystore, settings.jwt_key_label)
            retired = [await open_token_key(keystore, label, create=False)
                       for label in settings.jwt_previous_key_labels]
            # Before any task starts: a missing retired key stops the start right here.
            audit_signer = CheckpointSigner(
                keystore, settings.audit_key_label, origin_for(settings.origin),
                retired_labels=settings.audit_previous_key_labels)
            await audit_signer.open()
            pool = await create_pool(db.service_url, min_size=settings.db_pool_min,
                                     max_size=settings.db_pool_max)
            revocation = RevocationState(pool, settings.revocation_poll_interval)
            await revocation.refresh()
            revocation.start()
            officer_pki = await OfficerPki.start(settings, pool, revocation, clock)
            client_pki = await ClientPki.start(settings, pool, revocation)
            limits = AuthLimits(pool, source_limit=settings.auth_source_rate_limit,
                                identity_limit=settings.auth_rate_limit,
                                failure_events=settings.auth_failure_events_per_minute,
                                verify_limit=settings.verify_rate_limit)
            rate_reporter = RateLimitReporter(pool, interval=settings.auth_report_interval)
            rate_reporter.start()
            partitions = PartitionKeeper(pool, settings.audit_partition_months_ahead)
            await partitions.start()
            sequencer = Sequencer(pool, settings.sequencer_interval)
            sequencer.start()
            integrator = Integrator(pool, audit_signer,
                                    interval=settings.audit_integrator_interval,
                                    checkpoint_interval=settings.audit_checkpoint_interval)
            integrator.start()
            deliverer = Deliverer(pool, keystore, DeliveryConfig(
                origin=settings.origin, key_label=token_key.label, kid=token_key.kid,
                allow_private=settings.notify_allow_private,
                timeout=settings.notify_timeout_seconds, batch=settings.notify_batch,
                concurrency=settings.notify_concurrency, interval=settings.notify_interval,
                confirm_seconds=settings.notify_confirm_seconds))
            deliverer.start()
            metrics = MetricsRefresher(pool, officer_pki.crls, clock,
                                       interval=settings.metrics_refresh_seconds,
                                       top_buckets=settings.metrics_top_buckets,
                                       bucket_interval=settings.metrics_bucket_refresh_seconds)
            metrics.start()
            coalescer = None if settings.issue_group_max == 1 else IssueCoalescer(
                pool, max_group=settings.issue_group_max,
                in_flight=settings.issue_groups_in_flight)
            verifier = None if settings.verify_group_max == 1 else VerifyCoalescer(
                pool, max_group=settings.verify_group_max,
                in_flight=settings.verify_groups_in_flight)
            logins = None if settings.login_group_max == 1 else LoginCoalescer(
                pool, max_group=settings.login_group_max,
                in_flight=settings.login_groups_in_flight)
            issuer = AccessTokenIssuer(keystore, token_key, issuer=settings.token_issuer,
                                       audience=settings.token_audience,
                                       ttl=settings.token_ttl, clock=clock)
            app.state.services = Services(
                settings=settings,
                clock=clock,
                pool=pool,
                keystore=keystore,
                token_key=token_key,
                retired_token_keys=retired,
                issuer=issuer,
                verifier=AccessTokenVerifier([token_key, *retired],
                                             issuer=settings.token_issuer,
                                             audience=settings.token_audience, clock=clock),
                revocation=revocation,
                persons=PersonsContext(pool=pool,
                                       provinces=ProvinceTable.load(settings.province_prefix_rule),
                                       clock=clock,
                                       allocator=allocator or AllocatorConfig(),
                                       max_hidden_days=settings.max_hidden_days,
                                       coalescer=coalescer, verifier=verifier),
                client_login=ClientLogin(
                    pool, issuer, clock, audience=settings.client_token_url,
                    max_lifetime=settings.client_assertion_max_lifetime,
                    limits=limits, pki=client_pki),
                officer_login=OfficerLogin(pool, officer_pki.validator, issuer, clock, limits,
                                           officer_pki.nonce_key, logins),
                auth_limits=limits,
                audit_signer=audit_signer,
                audit_integrator=integrator,
                crls=officer_pki.crls,
                notify=NotifyContext(pool, settings.notify_allow_private,
                                     settings.notify_max_subscriptions),
            )
            _log.info("started", origin=settings.origin, embedded_db=db.embedded is not None)
            try:
                yield
            finally:
                await ui_routes.stop_background(app)
                for group_commit in (coalescer, verifier, logins):
                    if group_commit is not None:
                        await group_commit.close()
                await metrics.stop()
                await deliverer.stop()
                await integrator.stop()
                await sequencer.stop()
                await partitions.stop()
                await revocation.stop()
                await rate_reporter.stop()
                await officer_pki.stop()
                await client_pki.stop()
        finally:
            if pool is not None:
                await pool.close()
            await keystore.close()
            if owns_db:
                db.close()

    app = FastAPI(
        title="idservice",
        version="1.0.0",
        summary="Personal identification numbers, officer login and a tamper-evident audit log",
        lifespan=lifespan,
        docs_url=None,  # served without a CDN by api/docs.py
        redoc_url=None,
    )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)  # added last: outermost, sees every answer
    install_handlers(app)
    # Routes are tried one after the other (FastAPI 0.165: several microseconds per route that
    # does not match), so the issuance interfaces come first, OSIA's right after our own
    # (before the persons routes), then the audit, docs, Data Tracker and UI routes: an OSIA or
    # OpenCRVS issuance does not pay for matching dozens of routes first (issue 12's speed).
    # No two routers share a path, so the order changes nothing else.
    for module in (ops_routes, auth_routes, officer_auth_routes, pins_routes):
        app.include_router(module.router)
    for interface in (osia_routes, opencrvs_routes):  # field interfaces, own error formats
        interface.install(app)
    for module in (persons_routes, audit_routes, docs_routes, datatracker_routes, ui_routes,
                   citizen_routes, reservation_routes):
        app.include_router(module.router)
    install_openapi(app)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` worker processes: the app, then the worker's heap
    settled for serving (idservice/heap.py)."""
    app = create_app()
    settle_heap()
    return app
