"""The one way the service makes an outbound HTTP request: OCSP queries, CRL downloads and
notification deliveries.

Every request has a timeout, never follows a redirect, ignores proxy variables, and reads at most
`max_bytes` of the answer (a larger one is an error, read no further). Targets the caller does
not configure itself (a subscriber's address) also pass `guard_target`: http(s) only, no
credentials in the URL, and every address the host resolves to must be public (not loopback,
link-local, private, multicast or reserved) unless private targets are allowed (dev, tests).
The request then goes to the address that was checked (`pin_to`), so a DNS answer that changes
between the check and the connection (rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

__all__ = ["OutboundClient", "OutboundError", "Reply", "Target", "TargetRefused",
           "check_url", "guard_target"]


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


class OutboundClient:
    """An httpx client with the rules above; one per task that makes requests (connections
    are kept alive between them)."""

    def __init__(self, *, timeout: float, max_connections: int = 100) -> None:
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, url: str, *, max_bytes: int,
                      content: bytes | None = None, headers: dict[str, str] | None = None,
                      pin_to: str | None = None) -> Reply:
        """Send one request; `pin_to`: connect to this (checked) address instead of resolving
        the URL's host again (the Host header and TLS server name stay the URL's)."""
        extensions: dict[str, str] = {}
        send_headers = dict(headers or {})
        if pin_to is not None:
            target = check_url(url)
            host = f"[{pin_to}]" if ":" in pin_to else pin_to
            netloc = host if target.url.port is None else f"{host}:{target.url.port}"
            send_headers["Host"] = target.url.netloc
            if target.url.scheme == "https":
                extensions["sni_hostname"] = target.host
            url = urlunsplit(target.url._replace(netloc=netloc))
        try:
            async with self._client.stream(method, url, content=content, headers=send_headers,
                                           extensions=extensions) as reply:
                body = bytearray()
                async for chunk in reply.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise OutboundError(f"the answer is over {max_bytes} bytes")
                return Reply(reply.status_code, bytes(body))
        except httpx.HTTPError as exc:
            raise OutboundError(f"{type(exc).__name__}") from exc
