"""Which invites the bot accepts: the configured rooms, and DMs from allowed servers.

Everything else (a stranger's group room, invite spam) is rejected, and an inviter who
keeps trying is rate limited: at most `PER_HOUR` invites an hour are even looked at. A DM
from a server `intake.allowed_servers` does not list is rejected with a reason the inviter
reads (`refusal`: whom the line serves, and where else to write): never silence.

The `is_direct` flag is the inviter's word, not a fact: a "DM" that turns out to hold
anyone but the inviter and the bot (joined or invited) is left and forgotten at once, so
that nothing a third person writes there is ever read, and the bot keeps no room it has
no business in. What the gate remembers of inviters is bounded in time and in size.

An invite from another server can reach the bot before the inviter's server has stored
it: a join at once is then refused there ("not invited"). Such a join is asked again a
few times, within the invite's own task, so nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from nio import Api, AsyncClient, JoinResponse, RoomGetStateResponse, RoomLeaveResponse

from bot.core.ids import RoomID, UserID
from bot.core.model import Policy

log = logging.getLogger(__name__)

PER_HOUR = 5
REMEMBERED = 10_000  # inviters remembered at most; the oldest are forgotten first
# Seconds between joins of a room on another server that does not know its invite yet.
REMOTE_JOIN_DELAYS = (0.5, 1.0, 2.0, 4.0)


class InviteGate:
    def __init__(
        self,
        client: AsyncClient,
        policy: Policy,
        *,
        configured: Any,  # (room) -> bool: the volunteers' room or a lobby
        refusal: str | None = None,  # the reason a DM from a server not served reads
    ) -> None:
        self.client = client
        self.policy = policy
        self.configured = configured
        self.refusal = refusal
        self._recent: OrderedDict[str, list[float]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_invite(self, room: RoomID, inviter: UserID, is_direct: bool) -> None:
        task = asyncio.create_task(self._decide(room, inviter, is_direct), name="invite")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _count(self, inviter: str, now: float) -> int:
        recent = [t for t in self._recent.pop(inviter, []) if now - t < 3600]
        recent.append(now)
        self._recent[inviter] = recent  # the most recent inviter last
        # Inviters are kept for the hour the limit looks at, no longer, and at most
        # REMEMBERED of them: the map must not become a list of everyone who ever wrote.
        while self._recent:
            oldest = next(iter(self._recent.values()))
            if now - oldest[-1] < 3600 and len(self._recent) <= REMEMBERED:
                break
            self._recent.popitem(last=False)
        return len(recent)

    async def _decide(self, room: RoomID, inviter: UserID, is_direct: bool) -> None:
        count = self._count(inviter, asyncio.get_running_loop().time())
        configured = self.configured(room)
        staff = self.policy.is_staff(inviter)
        server_ok = self.policy.allows(inviter)
        accept = configured or (
            is_direct and (staff or (self.policy.direct_messages and server_ok))
        )
        if count > PER_HOUR and not staff:
            accept = False
        try:
            if not accept:
                foreign = is_direct and not server_ok and count <= PER_HOUR
                await self._leave(room, reason=self.refusal if foreign else None)
                log.info("invite rejected", extra={"other_server": foreign})
                return
            if not await self._join(room, remote=self.policy.is_remote(inviter)):
                log.info("invite could not be joined")
                return
            if not configured and not await self._only_two(room, inviter):
                await self._leave(room)
                log.info("a direct chat with others in it was left")
                return
            log.info("invite accepted", extra={"kind": "direct" if is_direct else "room"})
        except Exception as exc:  # a stranger's invite must never take anything down
            log.warning("invite handling failed", extra={"error": type(exc).__name__})

    async def _join(self, room: RoomID, *, remote: bool) -> bool:
        for delay in (*(REMOTE_JOIN_DELAYS if remote else ()), None):
            resp = await self.client.join(room)
            if isinstance(resp, JoinResponse):
                return True
            if delay is None or getattr(resp, "status_code", None) != "M_FORBIDDEN":
                return False
            await asyncio.sleep(delay)
        return False

    async def _only_two(self, room: RoomID, inviter: UserID) -> bool:
        """Whether the room's members (joined or invited) are just the inviter and the bot."""
        resp = await self.client.room_get_state(room)
        if not isinstance(resp, RoomGetStateResponse):
            return False
        members = {
            ev.get("state_key")
            for ev in resp.events
            if isinstance(ev, dict)
            and ev.get("type") == "m.room.member"
            and isinstance(ev.get("content"), dict)
            and ev["content"].get("membership") in ("join", "invite")
        }
        return members <= {inviter, self.client.user_id}

    async def _leave(self, room: RoomID, reason: str | None = None) -> None:
        if reason is None:
            await self.client.room_leave(room)
        else:
            # nio's room_leave sends no reason: the same request with one.
            method, path = Api.room_leave(self.client.access_token, room)
            body = Api.to_json({"reason": reason})
            await self.client._send(RoomLeaveResponse, method, path, body)
        await self.client.room_forget(room)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
