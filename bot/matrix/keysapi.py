"""The keys endpoints nio has no call for: `NioHttp` sends requests through a logged-in
nio client's own session and token; `query_keys` asks `/keys/query`; `identity_from_query`
reads someone's identity from its raw answer (the Element rule: which devices their master
key vouches for). Nothing here logs a user's ID."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.matrix.errors import TRANSPORT_ERRORS
from bot.matrix.signing import verify_json
from bot.outcomes import Transient


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
        raise CrossSigningError(f"/keys/query answered {status}: {brief(body)}")
    return body


def brief(body: Any) -> str:
    """An error answer in a few words (its errcode and error), for `CrossSigningError`."""
    if isinstance(body, dict):
        return f"{body.get('errcode', '')} {body.get('error', '')}".strip() or "no error code"
    return str(body)[:200]


# --------------------------------------------------------------------------------------
# reading a /keys/query answer


def single_ed25519(key: Any, user_id: str, usage: str) -> str | None:
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
    master = single_ed25519(master_obj, user_id, "master")
    if master is None:
        return Identity(None, problem="malformed master key")
    ssk_obj = (query.get("self_signing_keys") or {}).get(user_id)
    ssk = single_ed25519(ssk_obj, user_id, "self_signing")
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
