"""The executor against the real server: effects that must happen once, even when retried."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.core.events import CreateRoom, Retire, RoomCreated, RoomRef, Say, Text
from bot.core.ids import OfferID, RoomID, SessionID, UserID
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


async def test_a_kicked_volunteer_gets_no_further_room_keys(make_user, make_client, tmp_path: Path):
    """The bot's own kick never reaches nio through the sync (the bot's own events are
    filtered out of it), so the executor tells nio: the volunteer leaves nio's member list
    and the next message goes out under a new Megolm session, which is not shared with
    the volunteer's devices."""
    bot = await make_client(await make_user("bot"))
    volunteer = await make_client(await make_user("vol"))
    db = await open_database(tmp_path / "bot.db")
    rooms: dict[RoomRef, RoomID] = {}
    try:
        executor = Executor(
            bot.client,
            texts=Texts(),
            resolve=rooms.get,
            relay_map=RelayMap(db),
            media=MediaSeen(db),
            trust=AllDevices(),
            retention=timedelta(days=1),
            bot_user=bot.user_id,
        )
        ref = RoomRef(SessionID(1), Role.VOLUNTEER, OfferID(1))
        [created] = await executor.run(
            CreateRoom(ref, UserID(volunteer.user_id), "Chatter #0001"), "txn-1"
        )
        room = rooms[ref] = created.room
        await volunteer.wait_for_invite(room_id=room, timeout=30)
        await volunteer.join(room)
        await bot.wait_for_join(room, volunteer.user_id, timeout=30)
        await executor.run(Say(ref, Text("x"), "nb"), "txn-2")
        first = bot.client.olm.outbound_group_sessions[room]
        assert any(user == volunteer.user_id for user, _ in first.users_shared_with)

        await executor.run(Retire(ref, UserID(volunteer.user_id)), "txn-3")
        assert volunteer.user_id not in bot.client.rooms[room].users
        await executor.run(Say(ref, Text("x"), "nb"), "txn-4")
        second = bot.client.olm.outbound_group_sessions[room]
        assert second.id != first.id
        assert not any(user == volunteer.user_id for user, _ in second.users_shared_with)
    finally:
        await db.close()
