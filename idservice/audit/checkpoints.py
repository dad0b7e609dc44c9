"""Signing checkpoints of the audit tree with the HSM-held key (contract 5).

The key is an EC P-256 key in the HSM (`hsm.AsyncKeyStore`), created on first use; the HSM
returns raw r||s and the note is assembled by `signed_note.signed_note`. The note format and
its verification are in `signed_note.py`, which has no HSM dependency.

Key rotation: only the current key (`IDSERVICE_AUDIT_KEY_LABEL`) signs; retired keys
(`IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS`) must stay on the HSM and only join the verifier.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from hsm.async_keystore import AsyncKeyStore
from hsm.errors import KeyNotFound
from idservice.audit.signed_note import CheckpointError, NoteVerifier, note_text, signed_note

__all__ = ["CheckpointSigner"]


class CheckpointSigner:
    """Signs checkpoints with an HSM-held EC P-256 key (created on first use). Retired keys
    (`retired_labels`) must already be on the HSM; they only join the verifier, never sign."""

    def __init__(self, keystore: AsyncKeyStore, label: str, origin: str,
                 retired_labels: Sequence[str] = ()) -> None:
        self._keystore = keystore
        self._label = label
        self._origin = origin
        self._retired_labels = tuple(retired_labels)
        self._verifier: NoteVerifier | None = None

    async def _public(self, label: str) -> ec.EllipticCurvePublicKey:
        public = await self._keystore.public_key(label)
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise CheckpointError(f"key {label} is not an EC key")
        return public

    async def open(self) -> NoteVerifier:
        await self._keystore.ensure_key(self._label, "EC_P256")
        current = await self._public(self._label)
        retired = []
        for label in self._retired_labels:
            try:
                retired.append(await self._public(label))
            except KeyNotFound as exc:
                raise CheckpointError(
                    f"retired checkpoint key {label!r} (IDSERVICE_AUDIT_PREVIOUS_KEY_LABELS) is "
                    f"not on the HSM: {exc}") from exc
        self._verifier = NoteVerifier(self._origin, current, tuple(retired)).deduplicated()
        return self._verifier

    @property
    def verifier(self) -> NoteVerifier:
        if self._verifier is None:
            raise RuntimeError("CheckpointSigner.open() was not awaited")
        return self._verifier

    async def sign(self, size: int, root: bytes) -> str:
        verifier = self._verifier or await self.open()
        body = note_text(self._origin, size, root)
        raw = await self._keystore.sign(self._label, body.encode(), "ES256")
        return signed_note(body, self._origin, verifier.key_id, raw)
