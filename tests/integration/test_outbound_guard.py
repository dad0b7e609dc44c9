"""The delivery client's SSRF guard (idservice/outbound.py) against a real HTTP server on
loopback: without private targets allowed, neither a loopback literal nor a name that resolves
to loopback is requested (the server sees nothing); allowed, the request goes to the checked
address with the URL's Host header; redirects are not followed; answers are capped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from idservice.outbound import OutboundClient, OutboundError, TargetRefused, check_url, guard_target
from tests.support.server import free_port
from tests.support.subscriber import Subscriber


@pytest.fixture
def loopback() -> Iterator[Subscriber]:
    sub = Subscriber(free_port()).start()
    yield sub
    sub.stop()


async def _deliver(url: str, allow_private: bool) -> int:
    client = OutboundClient(timeout=5)
    try:
        [address, *_] = await guard_target(check_url(url), allow_private=allow_private)
        reply = await client.request("POST", url, content=b"{}", max_bytes=1024,
                                     headers={"Content-Type": "application/json"},
                                     pin_to=address)
        return reply.status
    finally:
        await client.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_target_refused_without_allow_private_nothing_sent(
        loopback: Subscriber, host: str) -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        asyncio.run(_deliver(f"http://{host}:{loopback.port}/hook", allow_private=False))
    assert loopback.received == []


def test_loopback_target_reached_with_allow_private(loopback: Subscriber) -> None:
    assert asyncio.run(_deliver(f"http://localhost:{loopback.port}/hook",
                                allow_private=True)) == 200
    [received] = loopback.received
    assert received.headers["host"] == f"localhost:{loopback.port}"


def test_unresolvable_host_refused() -> None:
    with pytest.raises(TargetRefused, match="does not resolve"):
        asyncio.run(_deliver("http://no-such-host.invalid/hook", allow_private=True))


def test_redirect_not_followed_and_large_answer_refused() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path == "/redirect":
                self.send_response(307)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(10_000))
            self.end_headers()
            self.wfile.write(b"x" * 10_000)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert asyncio.run(_deliver(f"{base}/redirect", allow_private=True)) == 307
        with pytest.raises(OutboundError, match="over 1024 bytes"):
            asyncio.run(_deliver(f"{base}/large", allow_private=True))
    finally:
        server.shutdown()
        server.server_close()
