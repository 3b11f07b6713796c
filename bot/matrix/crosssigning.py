"""Cross-signing for a matrix-nio device: the bot's own identity, and checking others'.

Current Element talks only to devices their owner has cross-signed (MSC4153), and nio has
no cross-signing, so this module does it with `cryptography`'s ed25519:

- `canonical_json`, `sign_json`, `verify_json`: the spec's signing of JSON objects
  (sorted keys, no spaces, UTF-8, `signatures` and `unsigned` left out of what is signed).
- `CrossSigningKeys`: the account's master, self-signing and user-signing keys, and
  `KeyFile`, which keeps their seeds encrypted with the store key (AES-256-GCM, key from
  scrypt), mode 0600, written atomically.
- `ensure_cross_signing`: on every start, makes sure the keys are published and the
  bot's current device is signed by the self-signing key; uploads only what is missing,
  and checks the result with a fresh `/keys/query` (`/keys/signatures/upload` answers 200
  even when it rejects a signature).
- `identity_from_query`: the Element rule for someone else's devices, from the raw
  `/keys/query` answer: which devices their master key vouches for.

Rules:
- Key IDs are `ed25519:<unpadded base64 public key>`; a device's own key stays
  `ed25519:<device_id>`.
- Seeds are saved before the keys are uploaded: a crash in between must not leave
  published keys whose private halves are gone (replacing them needs a password round
  trip, and every volunteer's client then sees a changed identity).
- A wrong store key never leads to new keys: the key file is refused with an error.
- Nothing here logs a private key or a user's ID.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bot.matrix.errors import TRANSPORT_ERRORS
from bot.outcomes import Transient

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# canonical JSON, base64, signing


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


# --------------------------------------------------------------------------------------
# the account's keys


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


# --------------------------------------------------------------------------------------
# HTTP


class Http(Protocol):
    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, Any]:
        """`path` under the homeserver, e.g. /_matrix/client/v3/keys/query; returns the
        status and the decoded JSON body."""


class NioHttp:
    """Requests through a logged-in nio client's own HTTP session and access token.

    nio has no call for these endpoints; its `send` gives the raw response. A 429 is
    waited out (retry_after_ms) up to five times; a broken transport raises `Transient`.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests = 0  # how many went out, for measurements and tests

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, Any]:
        headers = {
            "Authorization": f"Bearer {self.client.access_token}",
            "Content-Type": "application/json",
        }
        data = json.dumps(body) if body is not None else None
        for _ in range(5):
            self.requests += 1
            try:
                resp = await self.client.send(method, path, data, headers)
                async with resp:
                    text = await resp.text()
                    status = resp.status
            except TRANSPORT_ERRORS as exc:
                # A reset or a timeout is passing trouble, as for every other request.
                raise Transient(type(exc).__name__) from exc
            try:
                decoded = json.loads(text) if text else None
            except ValueError:
                decoded = text
            if status == 429 and isinstance(decoded, dict):
                await asyncio.sleep(min(int(decoded.get("retry_after_ms", 1000)), 30_000) / 1000)
                continue
            return status, decoded
        return status, decoded


CLIENT = "/_matrix/client/v3"


class CrossSigningError(Exception):
    """Cross-signing could not be set up; the message says what an admin can do."""


async def query_keys(http: Http, users: list[str]) -> dict[str, Any]:
    status, body = await http.request(
        "POST", f"{CLIENT}/keys/query", {"device_keys": {u: [] for u in users}}
    )
    if status != 200 or not isinstance(body, dict):
        raise CrossSigningError(f"/keys/query answered {status}: {_brief(body)}")
    return body


def _brief(body: Any) -> str:
    if isinstance(body, dict):
        return f"{body.get('errcode', '')} {body.get('error', '')}".strip() or "no error code"
    return str(body)[:200]


# --------------------------------------------------------------------------------------
# reading a /keys/query answer


def _single_ed25519(key: Any, user_id: str, usage: str) -> str | None:
    """The public key of a cross-signing key object, if it is well formed for `usage`."""
    if not isinstance(key, Mapping) or key.get("user_id") != user_id:
        return None
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        return None
    keys = key.get("keys")
    if not isinstance(keys, Mapping) or len(keys) != 1:
        return None
    ((key_id, public),) = keys.items()
    if not isinstance(public, str) or key_id != f"ed25519:{public}":
        return None
    return public


@dataclass(frozen=True)
class Identity:
    """What a user's cross-signing vouches for, as read from /keys/query.

    `devices`: device ID -> ed25519 key of each device signed by its own key and by the
    user's self-signing key, which is itself signed by `master`. `problem` says why
    nothing is vouched for (no cross-signing, a bad signature), for logs and tests.
    """

    master: str | None
    devices: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


def identity_from_query(query: Mapping[str, Any], user_id: str) -> Identity:
    """Element's rule (MSC4153) for one user, from a raw /keys/query answer."""
    master_obj = (query.get("master_keys") or {}).get(user_id)
    if master_obj is None:
        return Identity(None, problem="no cross-signing keys")
    master = _single_ed25519(master_obj, user_id, "master")
    if master is None:
        return Identity(None, problem="malformed master key")
    ssk_obj = (query.get("self_signing_keys") or {}).get(user_id)
    ssk = _single_ed25519(ssk_obj, user_id, "self_signing")
    if ssk is None:
        return Identity(master, problem="no usable self-signing key")
    if not verify_json(ssk_obj, user_id, f"ed25519:{master}", master):
        return Identity(master, problem="self-signing key not signed by the master key")
    devices: dict[str, str] = {}
    for device_id, dev in ((query.get("device_keys") or {}).get(user_id) or {}).items():
        if not isinstance(dev, Mapping):
            continue
        if dev.get("user_id") != user_id or dev.get("device_id") != device_id:
            continue
        own = (dev.get("keys") or {}).get(f"ed25519:{device_id}")
        if not isinstance(own, str):
            continue
        if not verify_json(dev, user_id, f"ed25519:{device_id}", own):
            continue
        if not verify_json(dev, user_id, f"ed25519:{ssk}", ssk):
            continue
        devices[device_id] = own
    return Identity(master, devices)


# --------------------------------------------------------------------------------------
# the bot's own identity


@dataclass
class Bootstrap:
    """What `ensure_cross_signing` found and did, for logs and measurements."""

    new_keys: bool = False  # no key file: keys were generated
    uploaded_keys: bool = False
    password_used: bool = False  # the server asked for interactive auth
    signed_device: bool = False
    requests: int = 0
    seconds: float = 0.0
    master: str = ""


async def ensure_cross_signing(
    http: Http,
    *,
    user_id: str,
    device_id: str,
    device_ed25519: str,
    key_file: KeyFile | None,
    password: str | None,
    keys: CrossSigningKeys | None = None,
) -> tuple[CrossSigningKeys, Bootstrap]:
    """Make the account's cross-signing keys published and `device_id` signed by them.

    Keys come from `keys`, else from `key_file`, else are generated (and saved there
    before anything is uploaded). Idempotent: on a healthy start it costs one
    /keys/query. Raises `CrossSigningError` when it cannot get there.
    """
    started = time.monotonic()
    report = Bootstrap()
    counting = _Counting(http)
    if keys is None and key_file is not None:
        try:
            keys = key_file.load()
        except KeyFileError as exc:
            raise CrossSigningError(str(exc)) from exc
    if keys is None:
        keys = CrossSigningKeys.generate()
        report.new_keys = True
        if key_file is not None:
            key_file.save(keys)
    report.master = keys.master.public
    wanted = keys.published_form(user_id)

    query = await query_keys(counting, [user_id])
    if not _published_match(query, user_id, keys):
        report.password_used = await _upload_keys(counting, user_id, wanted, password)
        report.uploaded_keys = True
        query = await query_keys(counting, [user_id])
        if not _published_match(query, user_id, keys):
            raise CrossSigningError(
                "the server accepted the cross-signing keys but does not return them"
            )

    device = ((query.get("device_keys") or {}).get(user_id) or {}).get(device_id)
    if not isinstance(device, Mapping):
        raise CrossSigningError("the bot's device has no keys on the server yet")
    published_ed = (device.get("keys") or {}).get(f"ed25519:{device_id}")
    if published_ed != device_ed25519:
        raise CrossSigningError(
            "the device keys on the server are not this device's (the ed25519 key differs):"
            " the crypto store and the server disagree; delete credentials.json and the"
            " crypto directory in the data dir to start a new device"
        )
    ssk = keys.self_signing
    if not verify_json(device, user_id, ssk.key_id, ssk.public):
        await _sign_device(counting, user_id, device_id, device, ssk)
        report.signed_device = True
        query = await query_keys(counting, [user_id])
        device = query["device_keys"][user_id][device_id]
        if not verify_json(device, user_id, ssk.key_id, ssk.public):
            raise CrossSigningError("the device signature was accepted but is not published")
    report.requests = counting.count
    report.seconds = time.monotonic() - started
    return keys, report


class _Counting:
    def __init__(self, inner: Http) -> None:
        self.inner = inner
        self.count = 0

    async def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, Any]:
        self.count += 1
        return await self.inner.request(method, path, body)


def _published_match(query: Mapping[str, Any], user_id: str, keys: CrossSigningKeys) -> bool:
    """The server holds exactly our three keys, the other two signed by the master."""
    master_obj = (query.get("master_keys") or {}).get(user_id)
    ssk_obj = (query.get("self_signing_keys") or {}).get(user_id)
    usk_obj = (query.get("user_signing_keys") or {}).get(user_id)
    return (
        _single_ed25519(master_obj, user_id, "master") == keys.master.public
        and _single_ed25519(ssk_obj, user_id, "self_signing") == keys.self_signing.public
        and _single_ed25519(usk_obj, user_id, "user_signing") == keys.user_signing.public
        and verify_json(ssk_obj, user_id, keys.master.key_id, keys.master.public)
        and verify_json(usk_obj, user_id, keys.master.key_id, keys.master.public)
    )


async def _upload_keys(
    http: Http, user_id: str, wanted: dict[str, Any], password: str | None
) -> bool:
    """Upload the keys; True if the server wanted (and got) the password."""
    path = f"{CLIENT}/keys/device_signing/upload"
    status, body = await http.request("POST", path, wanted)
    if status == 200:
        return False
    if status != 401 or not isinstance(body, dict) or "flows" not in body:
        raise CrossSigningError(f"uploading the cross-signing keys failed: {status} {_brief(body)}")
    flows = body.get("flows") or []
    if not any(f.get("stages") == ["m.login.password"] for f in flows if isinstance(f, dict)):
        stages = sorted({s for f in flows if isinstance(f, dict) for s in f.get("stages", [])})
        raise CrossSigningError(
            "the server wants interactive authentication the bot cannot do to replace the"
            f" account's cross-signing keys ({', '.join(stages) or 'no flows'}); approve the"
            " reset for the bot's account (Synapse admin API: POST /_synapse/admin/v1/users/"
            "<bot>/_allow_cross_signing_replacement_without_uia) and start again"
        )
    if not password:
        raise CrossSigningError("replacing the cross-signing keys needs the bot's password")
    log.warning(
        "replacing the account's published cross-signing keys (password authentication):"
        " volunteers' clients will see a changed identity for the bot"
    )
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
        "session": body.get("session"),
    }
    status, body = await http.request("POST", path, {**wanted, "auth": auth})
    if status != 200:
        raise CrossSigningError(
            f"uploading the cross-signing keys with the password failed: {status} {_brief(body)}"
        )
    return True


async def _sign_device(
    http: Http, user_id: str, device_id: str, device: Mapping[str, Any], ssk: SigningKey
) -> None:
    bare = {k: v for k, v in device.items() if k not in ("signatures", "unsigned")}
    signed = sign_json(bare, user_id, ssk.key_id, ssk)
    # Only our new signature goes up; the server merges it with the device's own.
    signed["signatures"] = {user_id: {ssk.key_id: signed["signatures"][user_id][ssk.key_id]}}
    status, body = await http.request(
        "POST", f"{CLIENT}/keys/signatures/upload", {user_id: {device_id: signed}}
    )
    failures = body.get("failures") if isinstance(body, dict) else None
    if status != 200 or failures:
        raise CrossSigningError(
            f"the server refused the device signature: {status}"
            f" {json.dumps(failures)[:300] if failures else _brief(body)}"
        )
