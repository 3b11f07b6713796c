"""The invite gate's rate limit remembers inviters for its hour, not for ever."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bot.app import InviteGate
from bot.core.ids import RoomID, UserID


def test_an_inviter_is_forgotten_an_hour_after_their_last_invite() -> None:
    async def go() -> dict[str, Any]:
        async def nothing(*args: Any) -> None:
            return None

        conn = SimpleNamespace(
            client=SimpleNamespace(join=nothing, room_leave=nothing), staff_room=None, lobbies=set()
        )
        policy = SimpleNamespace(
            is_staff=lambda user: False, allowed_servers={"*"}, direct_messages=True
        )
        gate = InviteGate(conn, SimpleNamespace(), policy)  # type: ignore[arg-type]
        now = asyncio.get_running_loop().time()
        gate._recent["@long-ago:localhost"] = [now - 4000]
        gate._recent["@a-minute-ago:localhost"] = [now - 60]
        await gate._decide(RoomID("!dm:localhost"), UserID("@new:localhost"), True)
        return gate._recent

    recent = asyncio.run(go())
    assert set(recent) == {"@a-minute-ago:localhost", "@new:localhost"}
