"""HMAC-SHA256 signatures over the raw body: pure functions, no I/O.

Commet signs the raw body bytes with the endpoint's whole signing secret
(``whsec_`` prefix included) and sends the lowercase hex digest in
``X-Commet-Signature``. Verification here never raises on hostile input: a
malformed signature, a non-ASCII header or an empty secret simply fails.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from hashlib import sha256

__all__ = ["SecretKeys", "normalize_secrets", "secret_keys", "sign", "verify"]

_HEX_DIGEST_LENGTH = 64


def sign(payload: bytes | str, secret: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``payload`` keyed with ``secret``."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be a non-empty string")
    if isinstance(payload, str):
        # ``surrogatepass`` keeps lone surrogates signable instead of raising.
        payload = payload.encode("utf-8", "surrogatepass")
    return hmac.digest(secret.encode("utf-8"), payload, sha256).hex()


_BLOCK = 64  # SHA-256 block size in bytes
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class _KeyedHash:
    """HMAC-SHA256 (RFC 2104) with the padded key absorbed once.

    Copying two pre-keyed SHA-256 states per message costs about half of
    ``hmac.new`` / ``hmac.digest``, which rebuild the keyed state on every call.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = sha256(key.translate(_INNER_PAD))
        self._outer = sha256(key.translate(_OUTER_PAD))

    def hexdigest(self, message: bytes | bytearray | memoryview) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


class SecretKeys:
    """Signing secrets prepared once, so the hot path does no per-call key work.

    ``repr`` never shows the secrets.
    """

    __slots__ = ("_fingerprints", "_keys")

    def __init__(self, secrets: str | Sequence[str]) -> None:
        normalized = normalize_secrets(secrets)
        self._keys: tuple[_KeyedHash, ...] = tuple(
            _KeyedHash(s.encode("utf-8")) for s in normalized
        )
        # 8 hex digits of SHA-256: enough to tell secrets apart, nothing to recover them.
        self._fingerprints = tuple(
            "sha256:" + hashlib.sha256(s.encode("utf-8")).hexdigest()[:8] for s in normalized
        )

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<SecretKeys: {len(self._keys)} secret(s), redacted>"

    def verify(self, payload: bytes | bytearray | memoryview | str, signature: object) -> bool:
        """True when ``signature`` is the hex HMAC of ``payload`` under any of the keys."""
        return self.match(payload, signature) is not None

    def match(self, payload: bytes | bytearray | memoryview | str, signature: object) -> int | None:
        """The position of the secret that signed ``payload``, or None when none did.

        Operators use it to see when an old secret of a rotation stops being used.
        """
        if type(signature) is str and len(signature) == _HEX_DIGEST_LENGTH and signature.isascii():
            expected = signature.lower()  # the common case, without further checks
        else:
            normalized = _normalize_signature(signature)
            if normalized is None:
                return None
            expected = normalized
        body = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
        if len(self._keys) == 1:
            return 0 if hmac.compare_digest(self._keys[0].hexdigest(body), expected) else None
        # Compare against every key (no early exit) so timing does not reveal
        # which secret of a rotation set matched.
        found = None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(key.hexdigest(body), expected) and found is None:
                found = index
        return found

    def fingerprint(self, index: int) -> str:
        """A short, non-reversible name for secret ``index`` (safe for logs and metrics)."""
        return self._fingerprints[index]


@functools.lru_cache(maxsize=32)
def _cached_keys(secrets: str | tuple[str, ...]) -> SecretKeys:
    return SecretKeys(secrets)


def secret_keys(secrets: str | Sequence[str]) -> SecretKeys:
    """The prepared keys for ``secrets``, reused across calls with the same secrets."""
    if isinstance(secrets, str):
        return _cached_keys(secrets)
    if isinstance(secrets, (list, tuple)) and all(isinstance(s, str) for s in secrets):
        return _cached_keys(tuple(secrets))
    return SecretKeys(secrets)


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
        keys = secret_keys(secret)
    except (ValueError, TypeError):
        return False
    try:
        return keys.verify(payload, signature)
    except (TypeError, ValueError):
        return False
