"""Cross-signing for a matrix-nio device: the bot's own identity, and checking others'.

Current Element talks only to devices their owner has cross-signed (MSC4153), and nio has
no cross-signing, so this module does it with `cryptography`'s ed25519:

- `bot.matrix.signing`: `canonical_json`, `sign_json`, `verify_json`, the spec's signing
  of JSON objects (sorted keys, no spaces, UTF-8, `signatures` and `unsigned` left out of
  what is signed).
- `bot.matrix.keyfile`: `CrossSigningKeys`, the account's master, self-signing and
  user-signing keys, and `KeyFile`, which keeps their seeds encrypted with the store key
  (AES-256-GCM, key from scrypt), mode 0600, written atomically.
- here, `ensure_cross_signing`: on every start, makes sure the keys are published and the
  bot's current device is signed by the self-signing key; uploads only what is missing,
  and checks the result with a fresh `/keys/query` (`/keys/signatures/upload` answers 200
  even when it rejects a signature).
- `bot.matrix.keysapi`: requests nio has no call for (`NioHttp`), `/keys/query`, and
  `identity_from_query`, the Element rule for someone else's devices, from the raw
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

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.matrix.keyfile import CrossSigningKeys, KeyFile, KeyFileError
from bot.matrix.keysapi import (
    CLIENT,
    CrossSigningError,
    Http,
    brief,
    query_keys,
    single_ed25519,
)
from bot.matrix.signing import SigningKey, sign_json, verify_json

log = logging.getLogger(__name__)


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
        single_ed25519(master_obj, user_id, "master") == keys.master.public
        and single_ed25519(ssk_obj, user_id, "self_signing") == keys.self_signing.public
        and single_ed25519(usk_obj, user_id, "user_signing") == keys.user_signing.public
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
        raise CrossSigningError(f"uploading the cross-signing keys failed: {status} {brief(body)}")
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
            f"uploading the cross-signing keys with the password failed: {status} {brief(body)}"
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
            f" {json.dumps(failures)[:300] if failures else brief(body)}"
        )
