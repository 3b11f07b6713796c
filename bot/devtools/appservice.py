"""A loopback appservice: the smallest bridge a homeserver will talk to.

A bridge is an appservice that owns a namespace of user IDs (`@_bridge_.*` here) and
acts for them ("puppets"). :class:`LoopbackAppservice` is that, and nothing more: an
aiohttp server on 127.0.0.1 that answers the homeserver's side of the appservice API
(transactions with `{}`, after checking the `hs_token`; user queries for the users it
registered), and a registration to hand to Synapse (`app_service_config_files`).

Its users are made and logged in the way bridges do: registered with the `as_token`
(`m.login.application_service`, no password), then given a device by an appservice
login, so that an E2EE client can run on the access token it gets (what a bridge with
end-to-bridge encryption does for the user that decrypts). What the homeserver pushed
is kept in `events`, so a test can see what a bridge without a device would receive.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bot.devtools.synapse import HOST, free_port
from bot.devtools.users import admin_request

AS_LOGIN = "m.login.application_service"


@dataclass(frozen=True)
class Registration:
    """What Synapse reads from the registration file, with the tokens of both sides."""

    id: str
    url: str
    as_token: str = field(repr=False)
    hs_token: str = field(repr=False)
    sender_localpart: str
    user_prefix: str  # the exclusive namespace is `@<user_prefix>.*`

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            "namespaces": {
                "users": [{"exclusive": True, "regex": f"@{re.escape(self.user_prefix)}.*"}],
                "aliases": [],
                "rooms": [],
            },
            "rate_limited": False,
        }

    def write(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.as_dict(), sort_keys=False))
        path.chmod(0o600)
        return path


@dataclass(frozen=True)
class Puppet:
    """A user the appservice registered, with the device an appservice login made."""

    user_id: str
    device_id: str
    access_token: str = field(repr=False)


class LoopbackAppservice:
    """The appservice's HTTP side on 127.0.0.1; `start()` before the homeserver does, so
    its first transaction finds someone to answer."""

    def __init__(self, user_prefix: str = "_bridge_", port: int | None = None) -> None:
        self.port = port or free_port(HOST)
        self.registration = Registration(
            id=f"loopback-bridge-{secrets.token_hex(3)}",
            url=f"http://{HOST}:{self.port}",
            as_token=secrets.token_urlsafe(32),
            hs_token=secrets.token_urlsafe(32),
            sender_localpart=f"{user_prefix}bot",
            user_prefix=user_prefix,
        )
        self.transactions: set[str] = set()
        self.events: list[dict[str, Any]] = []  # every event pushed, once, oldest first
        self.refused = 0  # requests without the homeserver's token
        self.users: set[str] = set()  # registered through this appservice
        self._runner: web.AppRunner | None = None

    # -------------------------------------------------------------- the server

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/_matrix/app/v1/transactions/{txn}", self._transaction)
        app.router.add_get("/_matrix/app/v1/users/{user}", self._user_query)
        app.router.add_get("/_matrix/app/v1/rooms/{alias}", self._alias_query)
        app.router.add_post("/_matrix/app/v1/ping", self._ping)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        token = token or request.query.get("access_token")
        if token is not None and secrets.compare_digest(token, self.registration.hs_token):
            return True
        self.refused += 1
        return False

    @staticmethod
    def _forbidden() -> web.Response:
        return web.json_response({"errcode": "M_FORBIDDEN", "error": "bad hs_token"}, status=403)

    async def _transaction(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._forbidden()
        txn = request.match_info["txn"]
        body = await request.json()
        if txn not in self.transactions:  # a retried transaction is answered, not re-read
            self.transactions.add(txn)
            self.events.extend(body.get("events", []))
        return web.json_response({})

    async def _user_query(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._forbidden()
        if request.match_info["user"] in self.users:
            return web.json_response({})
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)

    async def _alias_query(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._forbidden()
        return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)

    async def _ping(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._forbidden()
        return web.json_response({})

    # ------------------------------------------------------- acting for users

    async def register(self, base_url: str, localpart: str) -> str:
        """Register `@<prefix><localpart>` as the appservice (no password, no device)."""
        _, reg = await admin_request(
            base_url,
            self.registration.as_token,
            "POST",
            "/_matrix/client/v3/register",
            json={
                "type": AS_LOGIN,
                "username": self.registration.user_prefix + localpart,
                "inhibit_login": True,
            },
        )
        user_id = str(reg["user_id"])
        self.users.add(user_id)
        return user_id

    async def puppet(self, base_url: str, localpart: str, device_name: str) -> Puppet:
        """Register a user and log it in as a new device, as a bridge with end-to-bridge
        encryption does."""
        user_id = await self.register(base_url, localpart)
        _, login = await admin_request(
            base_url,
            self.registration.as_token,
            "POST",
            "/_matrix/client/v3/login",
            json={
                "type": AS_LOGIN,
                "identifier": {"type": "m.id.user", "user": user_id},
                "initial_device_display_name": device_name,
            },
        )
        return Puppet(user_id, str(login["device_id"]), str(login["access_token"]))

    async def act_as(
        self, base_url: str, user_id: str, method: str, path: str, body: Any = None
    ) -> Any:
        """A client API call for one of its users, with the `as_token` (`?user_id=`): how
        a bridge without encryption acts, with no device at all."""
        _, answer = await admin_request(
            base_url,
            self.registration.as_token,
            method,
            path,
            json=body,
            params={"user_id": user_id},
        )
        return answer

    def pushed(self, room_id: str, *, sender: str | None = None) -> list[dict[str, Any]]:
        """The events of `room_id` the homeserver pushed to the appservice."""
        return [
            e
            for e in self.events
            if e.get("room_id") == room_id and (sender is None or e.get("sender") == sender)
        ]


async def ping(base_url: str, registration: Registration) -> int:
    """Ask the homeserver to ping the appservice (`POST /_matrix/client/v1/appservice/
    {id}/ping`): 200 once the homeserver reaches it with the right token."""
    status, _ = await admin_request(
        base_url,
        registration.as_token,
        "POST",
        f"/_matrix/client/v1/appservice/{registration.id}/ping",
        json={},
        expect=None,
    )
    return status
