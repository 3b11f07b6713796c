"""Matrix's signing of JSON objects, with `cryptography`'s ed25519: canonical JSON (sorted
keys, no spaces, UTF-8, integers in the spec's range), unpadded base64, and `sign_json` /
`verify_json`, which leave `signatures` and `unsigned` out of what is signed. Key IDs are
`ed25519:<unpadded base64 public key>`; a device's own key stays `ed25519:<device_id>`.
Nothing here logs a key."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


def canonical_json(value: Any) -> bytes:
    """The spec's canonical JSON: sorted keys, no insignificant whitespace, UTF-8 with no
    escapes beyond JSON's own; integers only (an integral float such as 1e10 is written
    as the integer it is, anything else is refused)."""
    return json.dumps(
        _integers(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


_MAX_INT = 2**53 - 1


def _integers(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -_MAX_INT <= value <= _MAX_INT:
            raise ValueError("canonical JSON allows integers up to 2**53 - 1 only")
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _MAX_INT:
            return int(value)
        raise ValueError("canonical JSON has no fractional numbers")
    if isinstance(value, Mapping):
        return {str(k): _integers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_integers(v) for v in value]
    raise TypeError(f"not JSON: {type(value).__name__}")


def b64encode(data: bytes) -> str:
    """Unpadded standard base64, as Matrix writes keys and signatures."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Unpadded (or padded) standard base64; raises ValueError on anything else."""
    if not isinstance(text, str):
        raise ValueError("not a base64 string")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _signable(obj: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})


class SigningKey:
    """An ed25519 key made from a 32-byte seed, as Matrix (and libolm) store them."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        self.seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes_raw()
        self.public = b64encode(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(32))

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.public}"

    def sign(self, data: bytes) -> str:
        return b64encode(self._key.sign(data))

    def __repr__(self) -> str:  # never the seed
        return f"SigningKey({self.key_id})"


def sign_json(obj: Mapping[str, Any], signer: str, key_id: str, key: SigningKey) -> dict[str, Any]:
    """A copy of `obj` with `signatures[signer][key_id]` added (others kept)."""
    signature = key.sign(_signable(obj))
    out = dict(obj)
    sigs = {s: dict(v) for s, v in (obj.get("signatures") or {}).items()}
    sigs.setdefault(signer, {})[key_id] = signature
    out["signatures"] = sigs
    return out


def verify_json(obj: Any, signer: str, key_id: str, public: str) -> bool:
    """Whether `obj` carries a valid `signer`/`key_id` signature by `public` (base64)."""
    try:
        signature = b64decode(obj["signatures"][signer][key_id])
        key = Ed25519PublicKey.from_public_bytes(b64decode(public))
        key.verify(signature, _signable(obj))
    except (KeyError, TypeError, ValueError, InvalidSignature):
        return False
    return True
