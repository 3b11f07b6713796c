"""Synapse's admin API, as the purge and the web chat use it: is a room gone, delete a room
(block and purge) and wait for it, delete the media a conversation's participants
uploaded; make a throw-away account, deactivate it with erase, and check that it is.

The token goes only into the Authorization header of requests to the homeserver; errors
are reported by status code, never with the request (whose headers carry it), and nothing
logged carries an ID. Transport trouble, 5xx and a rate limit that does not pass raise
`Transient` (the purge is tried again later); a refused token or something that is not
Synapse's admin API answering raise `AdminUnusable`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from bot.core.ids import RoomID, UserID
from bot.matrix.errors import TRANSPORT_ERRORS, Kind, kind_of_status
from bot.outcomes import Transient

log = logging.getLogger("bot.matrix.purge")  # its lines are the purge's, as before the split

DELETE_TRIES = 3
DELETE_TIMEOUT_S = 120.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


class AdminUnusable(Exception):
    """The admin API cannot be used. `code` "admin_refused": the token was refused (401,
    403: not an admin account, or revoked). "admin_unavailable": what answers is not
    Synapse's admin API, e.g. a reverse proxy that blocks /_synapse/admin and answers 404
    to everything, which must never pass for "the room is gone"."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class AdminAPI:
    """The few Synapse admin endpoints the purge uses, over aiohttp.

    The token goes only into the Authorization header of requests to the homeserver;
    errors are reported by status code, never with the request (whose headers carry it).
    """

    def __init__(self, homeserver: str, token: str) -> None:
        self._base = homeserver.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<AdminAPI {self._base}>"  # never the token

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        for _ in range(10):
            try:
                async with self._session.request(
                    method, self._base + path, json=body, headers=self._headers
                ) as resp:
                    status = resp.status
                    try:
                        data = await resp.json(content_type=None)
                    except ValueError:
                        data = None
            except TRANSPORT_ERRORS as exc:
                raise Transient(type(exc).__name__) from None
            data = data if isinstance(data, dict) else {}
            kind = kind_of_status(status)
            if kind is Kind.RATE_LIMITED:
                await asyncio.sleep(min(10.0, int(data.get("retry_after_ms", 1000)) / 1000))
                continue
            if kind is Kind.TRANSIENT:
                raise Transient(f"admin API {status}")
            if status in (401, 403):
                raise AdminUnusable("admin_refused")
            return status, data
        raise Transient("admin API rate limited")

    async def room_gone(self, room: RoomID) -> bool:
        """True only on Synapse's own "Room not found"."""
        path = f"/_synapse/admin/v1/rooms/{quote(room, safe='')}"
        status, body = await self.request("GET", path)
        if status == 200:
            return False
        if _not_found(status, body):
            return True
        raise AdminUnusable("admin_unavailable")

    async def delegates_accounts(self) -> bool:
        """Whether the homeserver hands its accounts to an OpenID provider (Matrix
        Authentication Service): then it publishes its auth metadata (MSC2965, stable since
        Matrix 1.15, or the older unstable issuer), and Synapse's admin API cannot make
        accounts. An unreachable server is not taken for one that delegates."""
        for path in (
            "/_matrix/client/v1/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
        ):
            try:
                status, body = await self.request("GET", path)
            except (Transient, AdminUnusable):
                continue
            if status == 200 and ("issuer" in body):
                return True
        return False

    async def create_user(self, user: UserID, password: str, displayname: str) -> bool:
        """Make the account; False if it existed already (Synapse then updates it, so a
        caller must never hand out an ID it did not just make)."""
        path = f"/_synapse/admin/v2/users/{quote(user, safe='')}"
        body = {"password": password, "displayname": displayname, "admin": False}
        status, _ = await self.request("PUT", path, body)
        if status in (200, 201):
            return status == 201
        if status == 404:
            raise AdminUnusable("admin_unavailable")
        raise Transient(f"admin API {status}")

    async def deactivate(self, user: UserID) -> None:
        """Deactivate with erase: devices, tokens, profile gone; an account that does not
        exist (never made, or made and lost in a crash) is as good as erased."""
        path = f"/_synapse/admin/v1/deactivate/{quote(user, safe='')}"
        status, body = await self.request("POST", path, {"erase": True})
        if status == 200 or _not_found(status, body):
            return
        if status == 404:
            raise AdminUnusable("admin_unavailable")
        raise Transient(f"admin API {status}")

    async def deactivated(self, user: UserID) -> bool:
        """Whether the account is deactivated (or does not exist)."""
        status, body = await self.request("GET", f"/_synapse/admin/v2/users/{quote(user, safe='')}")
        if status == 200:
            return bool(body.get("deactivated"))
        if _not_found(status, body):
            return True
        raise AdminUnusable("admin_unavailable")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def delete_room(self, room: RoomID) -> None:
        """Delete the room with block and purge, and wait until the server has; a deletion
        already under way (one started before a crash) is waited for, not started again."""
        path = f"/_synapse/admin/v2/rooms/{quote(room, safe='')}"
        for _ in range(DELETE_TRIES):
            if await self.room_gone(room):
                return
            status, body = await self.request("DELETE", path, {"block": True, "purge": True})
            delete_id = body.get("delete_id") if status == 200 else None
            if status == 400 and "in progress" in str(body.get("error", "")):
                delete_id = await self._running_delete(room)
            elif _not_found(status, body):
                return
            elif status != 200:
                log.error("room deletion refused", extra={"status": status})
                return
            if isinstance(delete_id, str) and await self._await_delete(delete_id):
                return
            log.warning("room deletion failed on the server; trying again")
        # Not a reason to give up on the room: the purge is tried again later.
        raise Transient("room deletion kept failing")

    async def _running_delete(self, room: RoomID) -> str | None:
        """The deletion already under way for `room` (one started before a crash)."""
        path = f"/_synapse/admin/v2/rooms/{quote(room, safe='')}/delete_status"
        status, body = await self.request("GET", path)
        for task in body.get("results", []) if status == 200 else []:
            if task.get("status") in ("scheduled", "active") and task.get("delete_id"):
                return str(task["delete_id"])
        return None

    async def _await_delete(self, delete_id: str) -> bool:
        """Poll until the server's delete task ends; True if it completed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DELETE_TIMEOUT_S
        delay = 0.05
        path = f"/_synapse/admin/v2/rooms/delete_status/{quote(delete_id, safe='')}"
        while True:
            status, body = await self.request("GET", path)
            state = body.get("status") if status == 200 else "unknown"
            if state == "complete":
                return True
            if state in ("failed", "unknown"):
                return False
            if loop.time() > deadline:
                raise Transient("room deletion still running")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    async def delete_media(
        self,
        media: Sequence[str],
        posters: Mapping[str, UserID | None],
        participants: Sequence[UserID],
    ) -> tuple[int, int, int]:
        """Delete the media that whoever posted it in the conversation uploaded. An mxc://
        comes from a message, and anyone can name anyone's upload in one (a volunteer's,
        a stranger's): the uploader, as the admin media API records it, must be the one
        who posted it (for items recorded before the poster was kept: a participant).
        No uploader known (another server's media, an old Synapse that does not say):
        kept.

        Returns how many were deleted (or gone already), kept (not deletable), and not
        deleted because someone else uploaded them."""
        gone = kept = foreign = 0
        for mxc in media:
            path = _media_path(mxc)
            found = await self._media(path, posters.get(mxc), participants) if path else None
            if found is _Media.GONE:
                gone += 1  # already gone, or never uploaded
                continue
            if found is _Media.FOREIGN:
                foreign += 1
                continue
            if path is None or found is not _Media.OURS:
                kept += 1
                continue
            status, body = await self.request("DELETE", path)
            # 404: gone meanwhile; 400: another server's media, which only that
            # server can delete.
            if status == 200 or _not_found(status, body):
                gone += 1
            else:
                kept += 1
        return gone, kept, foreign

    async def media_left(
        self,
        media: Sequence[str],
        posters: Mapping[str, UserID | None],
        participants: Sequence[UserID],
    ) -> int:
        """How many of the items `delete_media` deletes are still on the server: the
        purge's check. Items it keeps (another's upload, another server's) do not count."""
        left = 0
        for mxc in media:
            path = _media_path(mxc)
            if path and await self._media(path, posters.get(mxc), participants) is _Media.OURS:
                left += 1
        return left

    async def _media(
        self, path: str, poster: UserID | None, participants: Sequence[UserID]
    ) -> _Media:
        """What the admin media API says of one item, held against who posted it."""
        status, body = await self.request("GET", path)
        if _not_found(status, body):
            return _Media.GONE
        if status != 200:
            return _Media.UNKNOWN
        info = body.get("media_info", body)  # the envelope since Synapse 1.12x
        uploader = info.get("user_id") if isinstance(info, dict) else None
        if uploader is None or uploader not in ([poster] if poster else participants):
            return _Media.FOREIGN
        return _Media.OURS


class _Media(enum.Enum):
    GONE = "gone"  # Synapse's own 404
    UNKNOWN = "unknown"  # the server would not say
    FOREIGN = "foreign"  # uploaded by someone other than whoever posted it
    OURS = "ours"  # there, and the conversation's to delete


def _media_path(mxc: str) -> str | None:
    parts = urlsplit(mxc)
    server, media_id = parts.netloc, parts.path.lstrip("/")
    if parts.scheme != "mxc" or not server or not media_id:
        return None
    return f"/_synapse/admin/v1/media/{quote(server, safe='')}/{quote(media_id, safe='')}"


def _not_found(status: int, body: dict[str, Any]) -> bool:
    """Synapse's own 404, not a proxy's or an unknown endpoint's (M_UNRECOGNIZED)."""
    return status == 404 and body.get("errcode") == "M_NOT_FOUND"
