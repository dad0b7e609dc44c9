"""The HTTP/1.1 client of idservice/outbound.py (deliveries, OCSP, CRLs) against real servers
on loopback (asyncio streams, speaking raw HTTP/1.1 so each can misbehave on purpose): the
timeout covers the whole exchange (a server that answers a byte at a time is cut off), the size
cap holds for chunked answers too, a 3xx is returned and not followed, https verifies the
server's certificate, and a connection is kept alive between requests and replaced when the
server closed it meanwhile."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from idservice.outbound import OutboundClient, OutboundError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def _serve(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[
        asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    return server, f"{'https' if tls else 'http'}://localhost:{port}/hook"


def test_server_answering_slowly_cut_off_by_whole_exchange_timeout() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):  # every byte well within any per-read timeout
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)

    async def run() -> float:
        server, url = await _serve(drip)
        client = OutboundClient(timeout=1.0)
        started = time.monotonic()
        try:
            with pytest.raises(OutboundError, match=r"no complete answer within 1\.0 s"):
                await client.request("POST", url, content=b"{}", max_bytes=1024,
                                     pin_to="127.0.0.1")
            return time.monotonic() - started
        finally:
            await client.aclose()
            server.close()

    assert asyncio.run(run()) < 2.0


def test_server_never_answering_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def run() -> None:
        server, url = await _serve(silent)
        client = OutboundClient(timeout=0.5)
        try:
            with pytest.raises(OutboundError, match="no complete answer"):
                await client.request("GET", url, max_bytes=1024)
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())


def test_chunked_answer_over_cap_refused() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(40):
            writer.write(b"100\r\n" + b"y" * 256 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def run() -> None:
        server, url = await _serve(chunked)
        client = OutboundClient(timeout=5)
        try:
            with pytest.raises(OutboundError, match="over 4096 bytes"):
                await client.request("POST", url, content=b"{}", max_bytes=4096)
            reply = await client.request("POST", url, content=b"{}", max_bytes=20_000)
            assert (reply.status, len(reply.body)) == (200, 40 * 256)
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())


def test_redirect_returned_not_followed() -> None:
    asked: list[bytes] = []

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def run() -> int:
        server, url = await _serve(redirect)
        client = OutboundClient(timeout=5)
        try:
            return (await client.request("POST", url, content=b"{}", max_bytes=1024)).status
        finally:
            await client.aclose()
            server.close()

    assert asyncio.run(run()) == 302
    [request] = asked
    assert request.startswith(b"POST /hook HTTP/1.1\r\n")


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_https_server_with_untrusted_certificate_refused(tmp_path: Path) -> None:
    asked: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            asked.append(await _read_request(reader))
            writer.write(OK)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass

    async def run() -> None:
        server, url = await _serve(answer, _self_signed(tmp_path))
        client = OutboundClient(timeout=5)
        try:
            with pytest.raises(OutboundError, match="TLS with localhost failed"):
                await client.request("POST", url, content=b"{}", max_bytes=1024,
                                     pin_to="127.0.0.1")
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())
    assert asked == []


@pytest.mark.parametrize("pause", [0.05, 0.0])  # the close arrives while idle / as we send
def test_connection_kept_alive_and_replaced_when_server_closed_it(pause: float) -> None:
    connections: list[int] = []

    async def keep_two(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        for _ in range(2):  # two requests per connection, then the server closes it
            await _read_request(reader)
            writer.write(OK)
            await writer.drain()
        writer.close()

    async def run() -> list[int]:
        server, url = await _serve(keep_two)
        client = OutboundClient(timeout=5)
        try:
            statuses = []
            for _ in range(5):
                statuses.append((await client.request("POST", url, content=b"{}",
                                                      max_bytes=1024)).status)
                await asyncio.sleep(pause)
            return statuses
        finally:
            await client.aclose()
            server.close()

    assert asyncio.run(run()) == [200] * 5
    assert len(connections) == 3


def test_header_with_line_break_refused_nothing_sent() -> None:
    asked: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.read(65536))
        writer.close()

    async def run() -> None:
        server, url = await _serve(record)
        client = OutboundClient(timeout=5)
        try:
            with pytest.raises(OutboundError, match="control character"):
                await client.request("POST", url, content=b"{}", max_bytes=1024,
                                     headers={"message-id": "x\r\nX-Smuggled: 1"})
            await asyncio.sleep(0.1)
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())
    assert asked == []


def test_answer_head_over_16_kib_refused() -> None:
    async def big_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"z" * 20_000 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(2)

    async def run() -> None:
        server, url = await _serve(big_head)
        client = OutboundClient(timeout=5)
        try:
            with pytest.raises(OutboundError, match="head is over 16384 bytes"):
                await client.request("POST", url, content=b"{}", max_bytes=1024)
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())


def test_continue_skipped_and_body_until_close_read() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                     b"Connection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async def run() -> tuple[int, bytes]:
        server, url = await _serve(until_close)
        client = OutboundClient(timeout=5)
        try:
            reply = await client.request("POST", url, content=b"{}", max_bytes=1024)
            return reply.status, reply.body
        finally:
            await client.aclose()
            server.close()

    assert asyncio.run(run()) == (200, b"all of it")


def test_kept_connection_closed_unanswered_sent_again_on_a_new_one() -> None:
    """A server that drops a kept connection on the next request (idle timeout racing the
    request): nothing was answered, so the request goes again on a new connection."""
    requests: list[int] = []

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        requests.append(1)
        writer.write(OK)
        await writer.drain()
        await _read_request(reader)  # the next one on this connection: dropped unanswered
        requests.append(1)
        writer.close()

    async def run() -> list[int]:
        server, url = await _serve(one_answer)
        client = OutboundClient(timeout=5)
        try:
            return [(await client.request("POST", url, content=b"{}", max_bytes=1024)).status
                    for _ in range(2)]
        finally:
            await client.aclose()
            server.close()

    assert asyncio.run(run()) == [200, 200]
    assert len(requests) == 3  # the dropped one was sent again


def test_method_other_than_get_post_refused_nothing_sent() -> None:
    asked: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await reader.read(65536))
        writer.close()

    async def run() -> None:
        server, url = await _serve(record)
        client = OutboundClient(timeout=5)
        try:
            with pytest.raises(OutboundError, match="method HEAD is not offered"):
                await client.request("HEAD", url, max_bytes=1024)
            await asyncio.sleep(0.1)
        finally:
            await client.aclose()
            server.close()

    asyncio.run(run())
    assert asked == []
