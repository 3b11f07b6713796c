"""The executor against the real server: effects that must happen once, even when retried."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.core.events import CreateRoom, RoomCreated, RoomRef
from bot.core.ids import SessionID, UserID
from bot.core.model import Role
from bot.matrix.executor import Executor
from bot.matrix.trust import AllDevices
from bot.messages import Texts
from bot.storage.db import open_database
from bot.storage.repos import Attempts, MediaSeen, RelayMap


async def test_room_creation_retried_after_a_crash_reuses_the_first_room(
    make_user, make_client, tmp_path: Path
):
    """The bot dies after the server made the room and before the result was stored: the
    retry (same transaction ID, read back from the outbox) must not make a second room
    with a second invite for the chatter."""
    bot = await make_client(await make_user("bot"))
    chatter = await make_user("chatter")
    db = await open_database(tmp_path / "bot.db")
    try:
        executor = Executor(
            bot.client,
            texts=Texts(),
            resolve=lambda ref: None,
            relay_map=RelayMap(db),
            media=MediaSeen(db),
            trust=AllDevices(),
            retention=timedelta(days=1),
            bot_user=bot.user_id,
            attempts=Attempts(db),
        )
        effect = CreateRoom(RoomRef(SessionID(1), Role.CHATTER), UserID(chatter.user_id), "X")
        [first] = await executor.run(effect, "txn-create-1")
        assert isinstance(first, RoomCreated)
        # The crash: the result was never committed, so the outbox runs the effect again.
        [again] = await executor.run(effect, "txn-create-1")
        assert again == first
        # A different effect (another transaction ID) does make a new room.
        [other] = await executor.run(effect, "txn-create-2")
        assert isinstance(other, RoomCreated) and other.room != first.room
        joined = await bot.client.joined_rooms()
        assert sorted(joined.rooms) == sorted([first.room, other.room])
    finally:
        await db.close()
