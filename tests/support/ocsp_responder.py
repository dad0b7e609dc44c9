"""A real OCSP responder for tests (RFC 6960 over HTTP POST), on a loopback port in a thread.

Answers are built with `cryptography`'s `OCSPResponseBuilder` and signed by the issuing CA's
key, by a delegated responder certificate the CA issued (id-kp-OCSPSigning + ocsp-nocheck), or
by an unrelated key. What it answers is set per certificate serial (`Behaviour`): status,
nonce (echoed, wrong, missing), thisUpdate/nextUpdate offsets, signer. Every request it
received is kept, so tests can see what the service sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

__all__ = ["Behaviour", "OcspResponder", "with_ocsp_url"]


def with_ocsp_url(cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
                  url: str) -> x509.Certificate:
    """The same certificate (subject, key, serial, extensions) plus an AIA OCSP URL, re-signed."""
    builder = (x509.CertificateBuilder()
               .subject_name(cert.subject).issuer_name(cert.issuer)
               .public_key(cert.public_key())  # type: ignore[arg-type]
               .serial_number(cert.serial_number)
               .not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc))
    for extension in cert.extensions:
        if not isinstance(extension.value, x509.AuthorityInformationAccess):
            builder = builder.add_extension(extension.value, extension.critical)
    builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))]),
        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Behaviour:
    status: Literal["good", "revoked", "unknown"] = "good"
    nonce: Literal["echo", "wrong", "none"] = "echo"
    this_update: timedelta = timedelta(seconds=-5)  # relative to the time of the request
    next_update: timedelta | None = timedelta(hours=1)
    signer: Literal["ca", "delegated", "unrelated"] = "ca"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class OcspResponder:
    issuer_cert: x509.Certificate
    issuer_key: ec.EllipticCurvePrivateKey
    behaviours: dict[int, Behaviour] = field(default_factory=dict)
    requests: list[ocsp.OCSPRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        now = datetime.now(UTC)
        self.delegated_key = ec.generate_private_key(ec.SECP256R1())
        self.delegated_cert = (
            x509.CertificateBuilder().subject_name(_name("Test Officer CA OCSP responder"))
            .issuer_name(self.issuer_cert.subject).public_key(self.delegated_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),
                           critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.issuer_key.public_key()), critical=False)
            .sign(self.issuer_key, hashes.SHA256()))
        self.unrelated_key = ec.generate_private_key(ec.SECP256R1())
        self.unrelated_cert = (
            x509.CertificateBuilder().subject_name(_name("Unrelated OCSP responder"))
            .issuer_name(_name("Unrelated OCSP responder"))
            .public_key(self.unrelated_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),
                           critical=False)
            .sign(self.unrelated_key, hashes.SHA256()))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="ocsp-responder")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/ocsp"

    def start(self) -> OcspResponder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, request_der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(request_der)
        self.requests.append(request)
        how = self.behaviours.get(request.serial_number, Behaviour())
        now = datetime.now(UTC)
        status = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED,
                  "unknown": ocsp.OCSPCertStatus.UNKNOWN}[how.status]
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            request.issuer_name_hash, request.issuer_key_hash, request.serial_number,
            request.hash_algorithm, status, now + how.this_update,
            None if how.next_update is None else now + how.next_update,
            now - timedelta(hours=1) if how.status == "revoked" else None, None)
        signer_cert, signer_key = {
            "ca": (self.issuer_cert, self.issuer_key),
            "delegated": (self.delegated_cert, self.delegated_key),
            "unrelated": (self.unrelated_cert, self.unrelated_key)}[how.signer]
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
        if how.signer != "ca":
            builder = builder.certificates([signer_cert])
        try:
            ours = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            ours = None
        if how.nonce == "wrong":
            builder = builder.add_extension(x509.OCSPNonce(b"\x00" * 32), critical=False)
        elif how.nonce == "echo" and ours is not None:
            builder = builder.add_extension(x509.OCSPNonce(ours), critical=False)
        return builder.sign(signer_key, hashes.SHA256()).public_bytes(Encoding.DER)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    answer = responder.answer(body)
                except ValueError:
                    answer = ocsp.OCSPResponseBuilder.build_unsuccessful(
                        ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(Encoding.DER)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
