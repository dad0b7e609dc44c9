"""AsyncKeyStore: every call runs on one worker thread, off the event loop."""

from __future__ import annotations

import asyncio
import threading

from hsm_verify import verify

from hsm.async_keystore import AsyncKeyStore
from hsm.keystore import KeyStore
from hsm.softhsm import SoftHsmToken


async def test_gather_many_signatures(keystore: KeyStore) -> None:
    store = AsyncKeyStore(keystore)
    assert store.sync is keystore
    jobs = [
        ("es", f"m{i}".encode(), "ES256") if i % 4 else ("rsa", f"m{i}".encode(), "PS256")
        for i in range(64)
    ]
    signatures = await asyncio.gather(
        *(store.sign(label, data, alg) for label, data, alg in jobs)  # type: ignore[arg-type]
    )
    for (label, data, alg), signature in zip(jobs, signatures, strict=True):
        verify(await store.public_key(label), data, signature, alg)
    assert (await store.jwk("es"))["kid"] == await store.kid("es") == keystore.kid("es")
    await store.ping()


async def test_calls_run_on_one_worker_thread_and_loop_stays_responsive(
    hsm_token: SoftHsmToken,
) -> None:
    store = AsyncKeyStore(
        KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin)
    )
    seen: set[str] = set()
    original = store.sync.sign

    def spy(*args: object) -> bytes:
        seen.add(threading.current_thread().name)
        return original(*args)  # type: ignore[arg-type]

    store.sync.sign = spy  # type: ignore[method-assign,assignment]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async with store:
        await store.ensure_key("async-rsa", "RSA_2048")
        tick_task = asyncio.create_task(ticker())
        signatures = await asyncio.gather(
            *(store.sign("async-rsa", b"%d" % i, "RS256") for i in range(32))
        )
        tick_task.cancel()
        public = await store.public_key("async-rsa")
        for i, signature in enumerate(signatures):
            verify(public, b"%d" % i, signature, "RS256")
    assert len(seen) == 1 and next(iter(seen)).startswith("hsm")
    assert threading.current_thread().name not in seen
    assert ticks > 0
    assert "closed" in repr(store)
