"""A real HTTP subscriber for the notification tests: a threading HTTP server on loopback that
records every POST (headers and body) and answers 200; it can be stopped (the port then
refuses connections: the subscriber is down) and started again on the same port."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "Subscriber"]


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.raw)
        return value

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body["message"])
        return value


class Subscriber:
    def __init__(self, port: int, *, delay: float = 0.0) -> None:
        self.port = port
        self.delay = delay  # seconds before each answer (a slow subscriber)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/idservice"

    def start(self) -> Subscriber:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if owner.delay:
                    time.sleep(owner.delay)
                with owner._lock:
                    owner.received.append(Received(
                        {k.lower(): v for k, v in self.headers.items()}, raw))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of_type(self, kind: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.headers.get("message-type") == kind]

    def wait_for(self, condition: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; received {len(self.received)}"
            time.sleep(0.05)

    def confirmation(self, subscription: str, timeout: float = 30.0) -> Received:
        def found() -> Received | None:
            for r in self.of_type("SubscriptionConfirmation"):
                if r.headers.get("subscription-id") == subscription:
                    return r
            return None

        self.wait_for(lambda: found() is not None, timeout)
        received = found()
        assert received is not None
        return received
