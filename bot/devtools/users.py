"""Accounts and admin API calls for tests.

Users are created with Synapse's shared-secret registration
(``/_synapse/admin/v1/register``, HMAC-SHA1 over nonce, user, password and admin flag),
since open registration is off on the test server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

_HTTP_TIMEOUT = aiohttp.ClientTimeout(total=60)


class AdminAPIError(RuntimeError):
    """An admin/client API call answered with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body!r}")
        self.method = method
        self.path = path
        self.status = status
        self.body = body


@dataclass(frozen=True)
class RegisteredUser:
    """An account on the test homeserver, as registration returned it.

    ``access_token``/``device_id`` belong to the device registration created; a
    :class:`~bot.devtools.client.TestClient` logs in with the password and gets its own
    device.
    """

    user_id: str
    localpart: str
    password: str
    access_token: str
    device_id: str
    admin: bool


def q(value: str) -> str:
    """Percent-encode a path segment (user and room IDs contain ``@ ! : #``)."""
    return quote(value, safe="")


async def admin_request(
    base_url: str,
    token: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    expect: int | tuple[int, ...] | None = 200,
    session: aiohttp.ClientSession | None = None,
) -> tuple[int, Any]:
    """Make an authenticated request to ``base_url + path``; return ``(status, body)``.

    ``body`` is the decoded JSON (or the text if it is not JSON). With ``expect`` set
    (default 200) any other status raises :class:`AdminAPIError`; pass ``expect=None`` to
    get whatever came back (e.g. to assert a 404 after a purge). Works for client API
    paths too; the name says what tests mostly use it for.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    own_session = session is None
    sess = session or aiohttp.ClientSession(timeout=_HTTP_TIMEOUT)
    try:
        async with sess.request(
            method, base_url.rstrip("/") + path, json=json, params=params, headers=headers
        ) as resp:
            text = await resp.text()
            try:
                body: Any = await resp.json(content_type=None) if text else None
            except ValueError:
                body = text
            status = resp.status
    finally:
        if own_session:
            await sess.close()
    if expect is not None:
        allowed = (expect,) if isinstance(expect, int) else expect
        if status not in allowed:
            raise AdminAPIError(method, path, status, body)
    return status, body


def registration_mac(shared_secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """The HMAC-SHA1 hex digest Synapse's shared-secret registration expects."""
    mac = hmac.new(shared_secret.encode("utf8"), digestmod=hashlib.sha1)
    for i, part in enumerate((nonce, user, password, "admin" if admin else "notadmin")):
        if i:
            mac.update(b"\x00")
        mac.update(part.encode("utf8"))
    return mac.hexdigest()


async def register_user(
    base_url: str,
    shared_secret: str,
    localpart: str,
    password: str,
    admin: bool = False,
    *,
    displayname: str | None = None,
) -> tuple[str, str, str]:
    """Register ``localpart`` via the shared secret; return ``(user_id, access_token,
    device_id)``. Raises :class:`AdminAPIError` on failure (e.g. the name is taken)."""
    path = "/_synapse/admin/v1/register"
    async with aiohttp.ClientSession(timeout=_HTTP_TIMEOUT) as sess:
        _, nonce_body = await admin_request(base_url, "", "GET", path, session=sess)
        nonce = nonce_body["nonce"]
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": registration_mac(shared_secret, nonce, localpart, password, admin),
        }
        if displayname is not None:
            body["displayname"] = displayname
        _, reg = await admin_request(base_url, "", "POST", path, json=body, session=sess)
    return reg["user_id"], reg["access_token"], reg["device_id"]


async def override_ratelimit(
    base_url: str,
    admin_token: str,
    user_id: str,
    messages_per_second: int = 0,
    burst_count: int = 0,
) -> None:
    """Set a per-user rate-limit override; the default 0/0 means "not rate limited"."""
    await admin_request(
        base_url,
        admin_token,
        "POST",
        f"/_synapse/admin/v1/users/{q(user_id)}/override_ratelimit",
        json={"messages_per_second": messages_per_second, "burst_count": burst_count},
    )


async def delete_ratelimit_override(base_url: str, admin_token: str, user_id: str) -> None:
    """Remove a user's override, so the server's rc_message applies again."""
    await admin_request(
        base_url,
        admin_token,
        "DELETE",
        f"/_synapse/admin/v1/users/{q(user_id)}/override_ratelimit",
    )


async def whoami(base_url: str, token: str) -> dict[str, Any]:
    """``GET /_matrix/client/v3/account/whoami`` for ``token``."""
    _, body = await admin_request(base_url, token, "GET", "/_matrix/client/v3/account/whoami")
    return dict(body)


async def get_user_admin_info(base_url: str, admin_token: str, user_id: str) -> dict[str, Any]:
    """``GET /_synapse/admin/v2/users/{user_id}`` (has ``admin``, ``deactivated``, ...)."""
    _, body = await admin_request(
        base_url, admin_token, "GET", f"/_synapse/admin/v2/users/{q(user_id)}"
    )
    return dict(body)


async def room_messages_admin(
    base_url: str, admin_token: str, room_id: str, limit: int = 50, direction: str = "b"
) -> dict[str, Any]:
    """The server's copy of a room's timeline: ``/_synapse/admin/v1/rooms/{id}/messages``."""
    _, body = await admin_request(
        base_url,
        admin_token,
        "GET",
        f"/_synapse/admin/v1/rooms/{q(room_id)}/messages",
        params={"dir": direction, "limit": str(limit)},
    )
    return dict(body)


class UserFactory:
    """Creates uniquely named accounts on one server, a bounded number at a time.

    Names are ``{prefix}-{counter}-{random}``, so they never collide within a session nor
    with a previous session's leftovers on the same server. Registration hashes the
    password on the server, so at most ``concurrency`` registrations run at once.

    Rate limits: each account gets an ``override_ratelimit`` (no limit) unless
    ``unlimited=False`` is passed, so tests that send a lot are not throttled.
    """

    def __init__(
        self,
        base_url: str,
        shared_secret: str,
        admin_token: str | None = None,
        *,
        concurrency: int = 2,
    ) -> None:
        self.base_url = base_url
        self.shared_secret = shared_secret
        self.admin_token = admin_token
        self._counter = itertools.count(1)
        self._concurrency = concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self.created: list[RegisteredUser] = []

    def _sem(self) -> asyncio.Semaphore:
        # Created lazily so it belongs to the loop that first uses it.
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        return self._semaphore

    def unique_localpart(self, prefix: str = "user") -> str:
        return f"{prefix}-{next(self._counter)}-{secrets.token_hex(3)}".lower()

    async def create(
        self,
        prefix: str = "user",
        *,
        admin: bool = False,
        unlimited: bool = True,
        displayname: str | None = None,
    ) -> RegisteredUser:
        localpart = self.unique_localpart(prefix)
        password = secrets.token_urlsafe(18)
        async with self._sem():
            user_id, token, device_id = await register_user(
                self.base_url,
                self.shared_secret,
                localpart,
                password,
                admin,
                displayname=displayname,
            )
        if unlimited and self.admin_token:
            await override_ratelimit(self.base_url, self.admin_token, user_id)
        user = RegisteredUser(user_id, localpart, password, token, device_id, admin)
        self.created.append(user)
        return user

    async def create_many(
        self, n: int, prefix: str = "user", **kwargs: Any
    ) -> list[RegisteredUser]:
        return list(await asyncio.gather(*(self.create(prefix, **kwargs) for _ in range(n))))
