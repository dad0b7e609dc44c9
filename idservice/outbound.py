"""The one way the service makes an outbound HTTP request: OCSP queries, CRL downloads and
notification deliveries.

Every request has a timeout over the whole exchange (connecting, TLS, sending, the answer to its
last byte), never follows a redirect (a 3xx is returned as it is; every caller takes only 2xx or
200 as success), ignores proxy variables, verifies the server's certificate for https (the
system's or certifi's trust store, the URL's host name), and reads at most `max_bytes` of the
answer's body (a larger one is an error, read no further; the head at most 16 KiB). Targets
the caller does not configure itself (a subscriber's address) also pass `guard_target`: http(s)
only, no credentials in the URL, and every address the host resolves to must be public (not
loopback, link-local, private, multicast or reserved) unless private targets are allowed (dev,
tests). The request then goes to the address that was checked (`pin_to`), so a DNS answer that
changes between the check and the connection (rebinding) cannot redirect it.

The client is HTTP/1.1 over asyncio streams: it writes the request itself (every part checked
for control characters) and parses the answer with httptools (llhttp, the parser uvicorn
uses), and keeps connections alive per (scheme, address, port, host). It replaced httpx here
because notification delivery sends thousands of small POSTs a second: httpx cost 1.2-1.4 ms
of CPU each on this machine, this client a fraction of it (bench/README.md, notifications).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import certifi
import httptools

__all__ = ["OutboundClient", "OutboundError", "Reply", "Target", "TargetRefused",
           "check_url", "guard_target"]

_READ_CHUNK = 64 * 1024
_MAX_HEAD_BYTES = 16 * 1024
_USER_AGENT = "idservice"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OutboundError(Exception):
    """The request failed: unreachable, timed out, or an answer over the size cap."""


class TargetRefused(OutboundError):
    """The URL or the addresses its host resolves to are not allowed (SSRF guard)."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


@dataclass(frozen=True)
class Target:
    url: SplitResult
    host: str
    port: int


def check_url(url: str) -> Target:
    """The URL's syntax rules: http or https, a host, no user or password, no fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("the address must be an http:// or https:// URL")
    if not parts.hostname:
        raise TargetRefused("the address has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the address must not carry a user name or password")
    if parts.fragment:
        raise TargetRefused("the address must not have a #fragment")
    return Target(parts, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def _refused_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                     allow_private: bool) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return "unspecified or multicast"
    if allow_private:
        return None
    for what, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("private", ip.is_private), ("reserved", ip.is_reserved),
                       ("not globally reachable", not ip.is_global)):
        if flag:
            return what
    return None


async def guard_target(target: Target, *, allow_private: bool,
                       timeout: float = 5.0) -> list[str]:
    """The addresses of the target's host, each checked; raises `TargetRefused` when the host
    does not resolve or any of its addresses is not allowed."""
    host = target.host
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                host, target.port, type=socket.SOCK_STREAM), timeout)
        except (OSError, TimeoutError) as exc:
            raise TargetRefused(f"the host {host} does not resolve") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"the host {host} does not resolve")
    for ip in addresses:
        why = _refused_address(ip, allow_private)
        if why is not None:
            raise TargetRefused(f"the host {host} resolves to a {why} address ({ip}), which "
                                "is not allowed")
    return [str(ip) for ip in addresses]


def _tls_context() -> ssl.SSLContext:
    """Certificate and host name verified (the defaults of `create_default_context`), with
    certifi's roots as httpx had them."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class _Answer:
    """httptools' callbacks for one answer: its status, body (capped), and how it ended."""

    def __init__(self, parser_ref: list[httptools.HttpResponseParser], max_bytes: int) -> None:
        self.parser_ref = parser_ref
        self.max_bytes = max_bytes
        self.status = 0
        self.body = bytearray()
        self.over = False
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the end is known without EOF
        self.complete = False
        self.keep_alive = False
        self.extra = False  # bytes after the answer: the connection is not reused

    def on_message_begin(self) -> None:
        self.extra = self.complete

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser_ref[0].get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if not self.over:
            self.body += body
            self.over = len(self.body) > self.max_bytes

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # informational (100 Continue): the answer follows
            self.status, self.headers_done, self.framed = 0, False, False
            return
        self.complete = True
        self.keep_alive = self.parser_ref[0].should_keep_alive()


class _Connection:
    """One HTTP/1.1 connection; used by one request at a time, kept for the next while both
    sides agree to keep it alive. The request is written here (its parts checked: no control
    characters); the answer is parsed by httptools (llhttp, the parser uvicorn uses)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.answered = False  # a byte of an answer arrived for the current request
        self.reusable = False

    def stale(self) -> bool:
        """The server closed it while it was idle (or sent something unasked)."""
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, head: bytes, content: bytes, max_bytes: int) -> Reply:
        self.answered = self.reusable = False
        self.writer.write(head + content if len(content) < 65536 else head)
        if len(content) >= 65536:
            self.writer.write(content)
        await self.writer.drain()
        parser_ref: list[httptools.HttpResponseParser] = []
        answer = _Answer(parser_ref, max_bytes)
        parser = httptools.HttpResponseParser(answer)
        parser_ref.append(parser)
        head_bytes = 0
        while not answer.complete:
            data = await self.reader.read(_READ_CHUNK)
            if not data:
                if answer.headers_done and not answer.framed:  # the body ends at close
                    return Reply(answer.status, bytes(answer.body))
                raise ConnectionResetError("the server closed the connection")
            self.answered = True
            if not answer.headers_done:
                head_bytes += len(data)
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                raise OutboundError("the server switched protocols") from None
            except httptools.HttpParserError as exc:
                raise OutboundError(f"the answer is not valid HTTP/1.1 ({exc})") from None
            if answer.over:
                raise OutboundError(f"the answer is over {max_bytes} bytes")
            if not answer.headers_done and head_bytes > _MAX_HEAD_BYTES:
                raise OutboundError(f"the answer's head is over {_MAX_HEAD_BYTES} bytes")
        self.reusable = answer.keep_alive and not answer.extra
        return Reply(answer.status, bytes(answer.body))


def _request_head(method: str, target: Target, headers: dict[str, str] | None,
                  length: int | None) -> bytes:
    """The request line and headers, every part checked for what would split or smuggle a
    request (CR, LF, NUL and other control characters; spaces in the path)."""
    path = target.url.path or "/"
    if target.url.query:
        path += "?" + target.url.query
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.url.netloc}",
             f"User-Agent: {_USER_AGENT}"]
    for name, value in (headers or {}).items():
        if not name or not name.isascii() or _CONTROL.search(name) or ":" in name \
                or " " in name:
            raise OutboundError(f"the header name {name!r} is not valid")
        if _CONTROL.search(value):
            raise OutboundError(f"the header {name} has a control character")
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if not method.isalpha() or _CONTROL.search(path) or " " in path or not path.isascii():
        raise OutboundError("the request line is not valid")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_PoolKey = tuple[str, str, int, str]  # scheme, address connected to, port, host (TLS name)


class OutboundClient:
    """An HTTP/1.1 client with the rules above; one per task that makes requests (connections
    are kept alive between them). `max_connections`: requests in flight at once (more wait)."""

    def __init__(self, *, timeout: float, max_connections: int = 100) -> None:
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: defaultdict[_PoolKey, list[_Connection]] = defaultdict(list)
        self._tls: ssl.SSLContext | None = None

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def request(self, method: str, url: str, *, max_bytes: int,
                      content: bytes | None = None, headers: dict[str, str] | None = None,
                      pin_to: str | None = None) -> Reply:
        """Send one request; `pin_to`: connect to this (checked) address instead of resolving
        the URL's host again (the Host header and TLS server name stay the URL's)."""
        if method not in ("GET", "POST"):  # what the service sends (a HEAD's answer has no body)
            raise OutboundError(f"the method {method} is not offered")
        target = check_url(url)
        key = (target.url.scheme, pin_to or target.host, target.port, target.host)
        body = content or b""
        head = _request_head(method, target, headers,
                             len(body) if body or method == "POST" else None)
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._send(key, head, body, max_bytes)
            except TimeoutError:
                raise OutboundError(f"no complete answer within {self._timeout} s") from None

    async def _send(self, key: _PoolKey, head: bytes, body: bytes, max_bytes: int) -> Reply:
        idle = self._idle[key]
        while idle:  # a kept connection; one the server closed meanwhile is dropped
            connection = idle.pop()
            if connection.stale():
                connection.close()
                continue
            try:
                reply = await self._on(connection, head, body, max_bytes)
            except _Unanswered:
                continue  # closed by the server as we sent: try the next, then a new one
            self._keep(key, connection)
            return reply
        connection = await self._connect(key)
        try:
            reply = await self._on(connection, head, body, max_bytes)
        except _Unanswered as exc:
            raise OutboundError(str(exc)) from None
        self._keep(key, connection)
        return reply

    async def _on(self, connection: _Connection, head: bytes, body: bytes,
                  max_bytes: int) -> Reply:
        """The exchange; `_Unanswered` when the connection died before any answer byte (safe
        to send again: nothing was answered), `OutboundError` for any other failure. The
        connection is closed on any failure (and on cancellation: the timeout)."""
        try:
            return await connection.exchange(head, body, max_bytes)
        except OutboundError:
            connection.close()
            raise
        except OSError as exc:
            connection.close()
            if not connection.answered:
                raise _Unanswered(f"the connection failed ({type(exc).__name__})") from None
            raise OutboundError(f"the answer was cut off ({type(exc).__name__})") from None
        except BaseException:
            connection.close()
            raise

    def _keep(self, key: _PoolKey, connection: _Connection) -> None:
        if connection.reusable:
            self._idle[key].append(connection)
        else:
            connection.close()

    async def _connect(self, key: _PoolKey) -> _Connection:
        scheme, address, port, host = key
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:
                self._tls = _tls_context()
            tls = self._tls
        try:
            reader, writer = await asyncio.open_connection(
                address, port, ssl=tls, server_hostname=host if tls else None,
                limit=_READ_CHUNK)
        except ssl.SSLError as exc:
            raise OutboundError(f"TLS with {host} failed ({exc.reason or exc})") from None
        except OSError as exc:
            raise OutboundError(f"cannot connect to {host}:{port} "
                                f"({exc.strerror or type(exc).__name__})") from None
        return _Connection(reader, writer)


class _Unanswered(Exception):
    """The connection failed before the server answered anything."""
