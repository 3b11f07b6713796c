"""Which rooms a client was removed from, as its syncs report them.

nio keeps no trace of left rooms (an invite withdrawn by a kick stays in `invited_rooms`),
so :class:`LeaveWatcher` wraps the client's `sync` and keeps each left room's member
events: what the person's app would show as "you were removed" or "the invite was
withdrawn". Used by the tests and by `helpline-bot demo --simulate` to see the purge
from each side.
"""

from __future__ import annotations

from typing import Any

from nio import RoomMemberEvent, SyncResponse

from bot.devtools.client import TestClient


class LeaveWatcher:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.left: dict[str, list[RoomMemberEvent]] = {}
        inner = client.client.sync

        async def sync(*args: Any, **kwargs: Any) -> Any:
            resp = await inner(*args, **kwargs)
            if isinstance(resp, SyncResponse):
                for room_id, info in resp.rooms.leave.items():
                    events = [
                        e
                        for e in [*info.state, *info.timeline.events]
                        if isinstance(e, RoomMemberEvent) and e.state_key == client.user_id
                    ]
                    self.left.setdefault(room_id, []).extend(events)
            return resp

        client.client.sync = sync

    def removed_from(self, room: str) -> RoomMemberEvent | None:
        return next((e for e in self.left.get(room, []) if e.membership in ("leave", "ban")), None)

    async def wait_removed(self, room: str, timeout: float = 20.0) -> RoomMemberEvent:
        return await self.client.wait_until(
            lambda: self.removed_from(room), timeout, f"removal from {room}"
        )
