"""The account's cross-signing keys (master, self-signing, user-signing) and `KeyFile`,
which keeps their seeds encrypted with the store key (AES-256-GCM, key from scrypt), mode
0600, written atomically. A wrong store key never leads to new keys: the key file is
refused with `KeyFileError`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bot.matrix.signing import SigningKey, b64decode, b64encode, sign_json


@dataclass(frozen=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())

    def published_form(self, user_id: str) -> dict[str, dict[str, Any]]:
        """The body of /keys/device_signing/upload: the master key unsigned, the other two
        signed by it."""

        def key(k: SigningKey, usage: str) -> dict[str, Any]:
            return {"user_id": user_id, "usage": [usage], "keys": {k.key_id: k.public}}

        master = key(self.master, "master")
        ssk = sign_json(
            key(self.self_signing, "self_signing"), user_id, self.master.key_id, self.master
        )
        usk = sign_json(
            key(self.user_signing, "user_signing"), user_id, self.master.key_id, self.master
        )
        return {"master_key": master, "self_signing_key": ssk, "user_signing_key": usk}


class KeyFileError(Exception):
    """The key file exists but cannot be used (wrong store key, damaged, other account)."""


class KeyFile:
    """The cross-signing seeds on disk, encrypted with a key derived from the store key.

    scrypt (not a bare hash) because a store key may be a passphrase; AES-GCM's tag makes
    a wrong store key or a damaged file an error instead of garbage keys; the user ID is
    the associated data, so a file copied to another account's data dir is refused.
    """

    VERSION = 1
    _SCRYPT: ClassVar[dict[str, int]] = {"n": 2**15, "r": 8, "p": 1}

    def __init__(self, path: Path, store_key: str, user_id: str) -> None:
        self.path = path
        self._secret = store_key.encode("utf-8")
        self._aad = f"helpline-bot cross-signing v1 {user_id}".encode()

    def _derive(self, salt: bytes, params: Mapping[str, int]) -> bytes:
        return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(
            self._secret
        )

    def load(self) -> CrossSigningKeys | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if data.get("version") != self.VERSION:
                raise KeyFileError(f"{self.path}: unknown version {data.get('version')!r}")
            params = {k: int(v) for k, v in data["scrypt"].items()}
            key = self._derive(b64decode(data["salt"]), params)
            plain = AESGCM(key).decrypt(
                b64decode(data["nonce"]), b64decode(data["ciphertext"]), self._aad
            )
            seeds = json.loads(plain)
            return CrossSigningKeys(
                SigningKey(b64decode(seeds["master"])),
                SigningKey(b64decode(seeds["self_signing"])),
                SigningKey(b64decode(seeds["user_signing"])),
            )
        except InvalidTag as exc:
            raise KeyFileError(
                f"{self.path}: cannot be decrypted: storage.store_key differs from the one it"
                " was written with, the file belongs to another account, or it is damaged"
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"{self.path}: damaged ({type(exc).__name__})") from exc

    def save(self, keys: CrossSigningKeys) -> None:
        salt, nonce = os.urandom(16), os.urandom(12)
        plain = json.dumps(
            {
                "master": b64encode(keys.master.seed),
                "self_signing": b64encode(keys.self_signing.seed),
                "user_signing": b64encode(keys.user_signing.seed),
            }
        ).encode()
        sealed = AESGCM(self._derive(salt, self._SCRYPT)).encrypt(nonce, plain, self._aad)
        data = {
            "version": self.VERSION,
            "kdf": "scrypt",
            "scrypt": self._SCRYPT,
            "salt": b64encode(salt),
            "nonce": b64encode(nonce),
            "ciphertext": b64encode(sealed),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
