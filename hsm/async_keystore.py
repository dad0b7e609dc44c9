"""asyncio facade over :class:`~hsm.keystore.KeyStore`.

PKCS#11 calls block (an RSA-2048 key generation takes hundreds of milliseconds, a
network HSM adds round trips), so they must never run on the event loop. Every call
goes to ONE dedicated worker thread: the token is serialised by the library lock
anyway, a single thread keeps the session's thread affinity predictable, and a slow
HSM queues requests instead of exhausting the loop's default executor that other code
relies on.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from hsm.jwk import PublicKey
from hsm.keystore import KeyKind, KeyStore, SignAlg

__all__ = ["AsyncKeyStore"]

P = ParamSpec("P")
T = TypeVar("T")


class AsyncKeyStore:
    """Async version of :class:`KeyStore`: same methods, awaited, run on one worker thread."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"AsyncKeyStore({self._store!r})"

    @property
    def sync(self) -> KeyStore:
        """The underlying blocking KeyStore (thread-safe; do not call it on the event loop)."""
        return self._store

    def _get_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsm")
        return self._executor

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._get_executor(), functools.partial(fn, *args, **kwargs)
        )

    async def open(self) -> None:
        await self._run(self._store.open)

    async def close(self) -> None:
        """Close the store and stop the worker thread (a later call starts a new one)."""
        executor = self._get_executor()
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._store.close)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncKeyStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ensure_key(self, label: str, kind: KeyKind = "EC_P256") -> None:
        await self._run(self._store.ensure_key, label, kind)

    async def sign(self, label: str, data: bytes, alg: SignAlg) -> bytes:
        return await self._run(self._store.sign, label, data, alg)

    async def public_key(self, label: str) -> PublicKey:
        return await self._run(self._store.public_key, label)

    async def jwk(self, label: str, alg: SignAlg | None = None) -> dict[str, str]:
        return await self._run(self._store.jwk, label, alg)

    async def kid(self, label: str) -> str:
        return await self._run(self._store.kid, label)

    async def ping(self) -> None:
        await self._run(self._store.ping)
