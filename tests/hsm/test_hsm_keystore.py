"""KeyStore against a real SoftHSM2 token (no mocks)."""

from __future__ import annotations

import gc
import logging
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Callable

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hsm_verify import jws_signing_input, pyjwt_decode, rfc7638_thumbprint, verify

from hsm.errors import HsmError, HsmUnavailable, KeyNotFound
from hsm.keystore import KeyStore
from hsm.softhsm import SoftHsmToken

# ----------------------------------------------------------------------- keys & JWKs


def test_ensure_key_is_idempotent_across_reopen(hsm_token: SoftHsmToken) -> None:
    store = KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin)
    with store:
        store.ensure_key("idem-ec")
        store.ensure_key("idem-ec")
        kid = store.kid("idem-ec")
        numbers = store.public_key("idem-ec").public_numbers()

    reopened = KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin)
    with reopened:
        reopened.ensure_key("idem-ec")
        assert reopened.kid("idem-ec") == kid
        assert reopened.public_key("idem-ec").public_numbers() == numbers


def test_generated_private_keys_are_unique_sensitive_and_non_extractable(
    keystore: KeyStore, hsm_token: SoftHsmToken
) -> None:
    keystore.ensure_key("es")  # again: must not create a second pair
    out = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            hsm_token.module_path,
            "--token-label",
            hsm_token.token_label,
            "--login",
            "--pin",
            hsm_token.user_pin,
            "--list-objects",
            "--type",
            "privkey",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SOFTHSM2_CONF": str(hsm_token.conf_path)},
    ).stdout
    # (pkcs11-tool 0.23 matches --token-label as a prefix: keep labels prefix-free)
    blocks = [
        b for b in out.split("Private Key Object")[1:] if re.search(r"^\s*label:\s*es$", b, re.M)
    ]
    assert len(blocks) == 1, out
    usage = re.search(r"Usage:\s*(.*)", blocks[0])
    access = re.search(r"Access:\s*(.*)", blocks[0])
    assert usage is not None and usage.group(1).strip() == "sign", blocks[0]
    assert access is not None and "never extractable" in access.group(1), blocks[0]
    assert "always sensitive" in access.group(1), blocks[0]


def test_ensure_key_refuses_other_kind_under_same_label(keystore: KeyStore) -> None:
    with pytest.raises(HsmError, match="RSA_2048, not EC_P256"):
        keystore.ensure_key("rsa", "EC_P256")


def test_missing_key_raises_key_not_found(keystore: KeyStore) -> None:
    with pytest.raises(KeyNotFound):
        keystore.sign("no-such-key", b"x", "ES256")
    with pytest.raises(KeyNotFound):
        keystore.jwk("no-such-key")


def test_jwk_and_kid_match_independent_rfc7638_thumbprint(keystore: KeyStore) -> None:
    ec_jwk = keystore.jwk("es")
    ec_pub = keystore.public_key("es")
    assert isinstance(ec_pub, ec.EllipticCurvePublicKey)
    numbers = ec_pub.public_numbers()
    assert ec_jwk["kty"] == "EC" and ec_jwk["crv"] == "P-256"
    assert ec_jwk["x"] == _b64url(numbers.x.to_bytes(32, "big"))
    assert ec_jwk["y"] == _b64url(numbers.y.to_bytes(32, "big"))
    assert ec_jwk["alg"] == "ES256" and ec_jwk["use"] == "sig"
    assert ec_jwk["kid"] == rfc7638_thumbprint(ec_jwk) == keystore.kid("es")
    assert len(ec_jwk["kid"]) == 43 and "=" not in ec_jwk["kid"]

    rsa_jwk = keystore.jwk("rsa")
    rsa_pub = keystore.public_key("rsa")
    assert isinstance(rsa_pub, rsa.RSAPublicKey) and rsa_pub.key_size == 2048
    assert rsa_jwk["e"] == "AQAB"
    assert rsa_jwk["n"] == _b64url(rsa_pub.public_numbers().n.to_bytes(256, "big"))
    assert rsa_jwk["alg"] == "PS256"
    assert keystore.jwk("rsa", "RS256")["alg"] == "RS256"
    assert rsa_jwk["kid"] == rfc7638_thumbprint(rsa_jwk) == keystore.kid("rsa")
    with pytest.raises(HsmError):
        keystore.jwk("es", "PS256")


# ----------------------------------------------------------------------- signatures


@pytest.mark.parametrize(("label", "alg"), [("es", "ES256"), ("rsa", "PS256"), ("rsa", "RS256")])
def test_signatures_verify(keystore: KeyStore, label: str, alg: str) -> None:
    data = b"idservice " + alg.encode()
    signature = keystore.sign(label, data, alg)  # type: ignore[arg-type]
    verify(keystore.public_key(label), data, signature, alg)
    with pytest.raises(InvalidSignature):
        verify(keystore.public_key(label), data + b"!", signature, alg)


@pytest.mark.parametrize(("label", "alg"), [("es", "ES256"), ("rsa", "PS256"), ("rsa", "RS256")])
def test_jws_verifies_with_pyjwt(keystore: KeyStore, label: str, alg: str) -> None:
    jwk = keystore.jwk(label, alg)  # type: ignore[arg-type]
    header = {"alg": alg, "typ": "JWT", "kid": jwk["kid"]}
    claims: dict[str, object] = {"sub": "38001085718", "iss": "idservice"}
    signing_input = jws_signing_input(header, claims)
    signature = keystore.sign(label, signing_input, alg)  # type: ignore[arg-type]
    token = signing_input.decode() + "." + _b64url(signature)

    assert jwt.get_unverified_header(token)["kid"] == keystore.kid(label)
    assert pyjwt_decode(token, jwk, alg) == claims
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        pyjwt_decode(tampered, jwk, alg)


def test_alg_must_match_key_type(keystore: KeyStore) -> None:
    with pytest.raises(HsmError, match="cannot sign"):
        keystore.sign("es", b"x", "PS256")
    with pytest.raises(ValueError, match="unsupported"):
        keystore.sign("es", b"x", "HS256")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- recovery


def test_sign_recovers_after_session_closed_behind_its_back(
    keystore: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    keystore.sign("es", b"warm up", "ES256")  # private key handle now cached
    assert keystore._session is not None
    keystore._session.close()  # C_Logout + C_CloseSession: handle and login are gone

    with caplog.at_level(logging.WARNING, logger="hsm"):
        signature = keystore.sign("es", b"after", "ES256")
    verify(keystore.public_key("es"), b"after", signature, "ES256")
    assert "SessionHandleInvalid" in caplog.text


def test_sign_recovers_after_module_reinitialised_behind_its_back(keystore: KeyStore) -> None:
    keystore.sign("rsa", b"warm up", "PS256")
    keystore._library.get().reinitialize()  # like a device reset: every session is dead
    signature = keystore.sign("rsa", b"after", "PS256")
    verify(keystore.public_key("rsa"), b"after", signature, "PS256")
    keystore.ping()


def test_ping(keystore: KeyStore, hsm_token: SoftHsmToken) -> None:
    keystore.ping()
    missing = KeyStore(hsm_token.module_path, "no-such-token", hsm_token.user_pin)
    with pytest.raises(HsmUnavailable, match="no token with this label"):
        missing.ping()
    with pytest.raises(HsmUnavailable):
        missing.open()
    # The module was re-initialised looking for the label; the open store recovers.
    keystore.ping()
    verify(keystore.public_key("es"), b"x", keystore.sign("es", b"x", "ES256"), "ES256")


def test_unloadable_module_is_unavailable(tmp_path: os.PathLike[str]) -> None:
    store = KeyStore(os.path.join(tmp_path, "missing.so"), "hsm-tests", "1234")
    with pytest.raises(HsmUnavailable, match="cannot load"):
        store.ping()


def test_token_created_after_module_load_becomes_visible(
    keystore: KeyStore, softhsm_token_factory: Callable[[str], SoftHsmToken]
) -> None:
    late = softhsm_token_factory(f"late-{uuid.uuid4().hex[:8]}")
    with KeyStore(late.module_path, late.token_label, late.user_pin) as store:
        store.ensure_key("late")
        verify(store.public_key("late"), b"x", store.sign("late", b"x", "ES256"), "ES256")
    # the store opened before the re-initialisation keeps working
    verify(keystore.public_key("es"), b"y", keystore.sign("es", b"y", "ES256"), "ES256")


def test_second_store_on_same_token_is_refused_until_first_closes(
    keystore: KeyStore, hsm_token: SoftHsmToken
) -> None:
    other = KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin)
    with pytest.raises(HsmError, match="already logged in"):
        other.open()
    keystore.close()
    other.open()
    try:
        verify(other.public_key("es"), b"x", other.sign("es", b"x", "ES256"), "ES256")
    finally:
        other.close()


def test_store_dropped_without_close_does_not_block_the_token(hsm_token: SoftHsmToken) -> None:
    leaked = KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin)
    leaked.open()
    del leaked
    gc.collect()
    with KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin) as store:
        verify(store.public_key("es"), b"x", store.sign("es", b"x", "ES256"), "ES256")


# ----------------------------------------------------------------------- PIN hygiene


def test_wrong_pin_is_hsm_error_without_the_pin(
    softhsm_token_factory: Callable[[str], SoftHsmToken], caplog: pytest.LogCaptureFixture
) -> None:
    token = softhsm_token_factory("hsm-pin-test")
    wrong_pin = "wrong-" + uuid.uuid4().hex
    store = KeyStore(token.module_path, token.token_label, wrong_pin)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(HsmError) as first:
            store.open()
        with pytest.raises(HsmError) as second:  # latched: PIN not presented again
            store.sign("k", b"x", "ES256")
    assert not isinstance(first.value, HsmUnavailable)
    assert "rejected the user PIN" in str(first.value)
    assert "rejected earlier" in str(second.value)
    for exc in (first.value, second.value):
        chain: BaseException | None = exc
        while chain is not None:
            assert wrong_pin not in str(chain) and wrong_pin not in repr(chain)
            chain = chain.__cause__ or chain.__context__
    assert wrong_pin not in caplog.text
    assert wrong_pin not in repr(store)
    # a store with the right PIN still works on that token
    with KeyStore(token.module_path, token.token_label, token.user_pin) as good:
        good.ping()


def test_repr_does_not_contain_pin(keystore: KeyStore, hsm_token: SoftHsmToken) -> None:
    assert hsm_token.user_pin not in repr(keystore)
    assert hsm_token.user_pin not in str(keystore)
    assert hsm_token.user_pin not in repr(vars(keystore))
    assert hsm_token.user_pin not in repr(hsm_token)
    assert "hsm-tests" in repr(keystore)


# ----------------------------------------------------------------------- concurrency


def test_concurrent_signing_from_16_threads(keystore: KeyStore) -> None:
    errors: list[BaseException] = []
    results: list[tuple[str, bytes, bytes, str]] = []
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(8):
                label, alg = ("es", "ES256") if (n + i) % 3 else ("rsa", "PS256")
                data = f"thread {n} message {i}".encode()
                results.append((label, data, keystore.sign(label, data, alg), alg))  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 16 * 8
    for label, data, signature, alg in results:
        verify(keystore.public_key(label), data, signature, alg)


def test_forked_child_reinitialises_module(keystore: KeyStore, hsm_token: SoftHsmToken) -> None:
    keystore.sign("es", b"parent before", "ES256")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not return into pytest
        status = 1
        try:
            os.close(read_fd)
            signature = keystore.sign("es", b"from child", "ES256")  # inherited store object
            os.write(write_fd, signature)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        child_signature = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    verify(keystore.public_key("es"), b"from child", child_signature, "ES256")
    verify(keystore.public_key("es"), b"parent", keystore.sign("es", b"parent", "ES256"), "ES256")


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# python-pkcs11 0.10.1: a search started on a dead session also fails in
# SearchIter.__del__ (C_FindObjectsFinal), which Python reports as "unraisable".
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_lookup_recovers_after_session_closed_behind_its_back(
    hsm_token: SoftHsmToken,
) -> None:
    with KeyStore(hsm_token.module_path, hsm_token.token_label, hsm_token.user_pin) as store:
        assert store._session is not None
        store._session.close()
        store.ensure_key("es")  # starts with C_FindObjectsInit on the dead handle
        assert store.kid("es")
        verify(store.public_key("es"), b"x", store.sign("es", b"x", "ES256"), "ES256")
