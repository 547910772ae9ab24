"""HMAC-SHA256 signatures over the raw body: pure functions, no I/O.

Commet signs the raw body bytes with the endpoint's whole signing secret
(``whsec_`` prefix included) and sends the lowercase hex digest in
``X-Commet-Signature``. Verification here never raises on hostile input: a
malformed signature, a non-ASCII header or an empty secret simply fails.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from hashlib import sha256

__all__ = ["SecretKeys", "normalize_secrets", "sign", "verify"]

_HEX_DIGEST_LENGTH = 64


def _to_bytes(payload: bytes | bytearray | memoryview | str) -> bytes | bytearray | memoryview:
    if isinstance(payload, str):
        # ``surrogatepass`` keeps lone surrogates signable instead of raising.
        return payload.encode("utf-8", "surrogatepass")
    return payload


def sign(payload: bytes | str, secret: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret``."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be a non-empty string")
    return hmac.digest(secret.encode("utf-8"), _to_bytes(payload), sha256).hex()


class SecretKeys:
    """Signing secrets pre-encoded once, so the hot path does no per-call encoding.

    ``repr`` never shows the secrets.
    """

    __slots__ = ("_keys",)

    def __init__(self, secrets: str | Sequence[str]) -> None:
        self._keys: tuple[bytes, ...] = tuple(s.encode("utf-8") for s in normalize_secrets(secrets))

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<SecretKeys: {len(self._keys)} secret(s), redacted>"

    def verify(self, payload: bytes | bytearray | memoryview | str, signature: object) -> bool:
        """True when ``signature`` is the hex HMAC of ``payload`` under any of the keys."""
        expected = _normalize_signature(signature)
        if expected is None:
            return False
        body = _to_bytes(payload)
        matched = False
        # Compare against every key (no early exit) so timing does not reveal
        # which secret of a rotation set matched.
        for key in self._keys:
            matched |= hmac.compare_digest(hmac.digest(key, body, sha256).hex(), expected)
        return matched


def normalize_secrets(secrets: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a secret or a rotation list; raise ``ValueError`` on anything unusable."""
    if isinstance(secrets, str):
        candidates: Sequence[object] = (secrets,)
    elif isinstance(secrets, Sequence):
        candidates = secrets
    else:
        raise ValueError("webhook secret must be a string or a sequence of strings")
    if not candidates:
        raise ValueError("at least one webhook secret is required")
    result = []
    for item in candidates:
        if not isinstance(item, str) or not item.strip():
            raise ValueError("webhook secrets must be non-empty strings")
        result.append(item)
    return tuple(result)


def _normalize_signature(signature: object) -> str | None:
    """The signature as 64 lowercase hex characters, or None when it cannot match."""
    if isinstance(signature, bytes):
        try:
            signature = signature.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(signature, str):
        return None
    signature = signature.strip()
    if len(signature) != _HEX_DIGEST_LENGTH or not signature.isascii():
        return None
    return signature.lower()


def verify(
    payload: bytes | str,
    signature: str | None,
    secret: str | Sequence[str],
) -> bool:
    """Constant-time check of ``signature`` against ``payload``.

    ``secret`` may be a list of secrets to support rotation. Never raises:
    any malformed input (including an empty secret) returns ``False``.
    """
    try:
        keys = SecretKeys(secret)
    except (ValueError, TypeError):
        return False
    try:
        return keys.verify(payload, signature)
    except (TypeError, ValueError):
        return False
