"""The executor against the real server: effects that must happen once, even when retried."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nio import RoomCreateResponse, RoomVisibility

from bot.core.events import CreateRoom, Purge, Retire, RoomRef, Say, Text
from bot.core.ids import OfferID, RoomID, SessionID, UserID
from bot.core.model import Role
from bot.matrix.executor import Executor
from bot.matrix.trust import AllDevices
from bot.messages import Texts
from bot.outcomes import Known, RoomMade, Sent


class Rooms:
    """The room index the worker keeps, as a plain dict."""

    def __init__(self) -> None:
        self.refs: dict[RoomRef, RoomID] = {}

    def room(self, ref: RoomRef) -> RoomID | None:
        return self.refs.get(ref)

    def is_session_room(self, room: RoomID) -> bool:
        return room in self.refs.values()


async def _no_purge(effect: Purge) -> str:
    raise AssertionError("these tests carry out no purge")


def executor_for(
    bot, rooms: Rooms | None = None, retention: timedelta = timedelta(days=1)
) -> Executor:
    return Executor(
        bot.client,
        texts=Texts(),
        rooms=rooms or Rooms(),
        trust=AllDevices(),
        retention=retention,
        bot_user=bot.user_id,
        purge=_no_purge,
    )


async def test_room_creation_retried_after_a_crash_reuses_the_first_room(make_user, make_client):
    """The bot dies after the server made the room and before the result was stored: the
    retry (same transaction ID, read back from the outbox, marked as a retry by the
    worker) must not make a second room with a second invite for the chatter."""
    bot = await make_client(await make_user("bot"))
    chatter = await make_user("chatter")
    executor = executor_for(bot)
    effect = CreateRoom(RoomRef(SessionID(1), Role.CHATTER), UserID(chatter.user_id), "X")
    first = await executor.run(effect, "txn-create-1")
    assert isinstance(first, RoomMade)
    # The crash: the result was never committed, so the outbox runs the effect again.
    again = await executor.run(effect, "txn-create-1", Known(retry=True))
    assert again == first
    # A different effect (another transaction ID) does make a new room.
    other = await executor.run(effect, "txn-create-2", Known(retry=True))
    assert isinstance(other, RoomMade)
    assert other.room != first.room
    joined = await bot.client.joined_rooms()
    assert sorted(joined.rooms) == sorted([first.room, other.room])


async def test_a_kicked_volunteer_gets_no_further_room_keys(make_user, make_client):
    """The bot's own kick never reaches nio through the sync (the bot's own events are
    filtered out of it), so the executor tells nio: the volunteer leaves nio's member list
    and the next message goes out under a new Megolm session, which is not shared with
    the volunteer's devices."""
    bot = await make_client(await make_user("bot"))
    volunteer = await make_client(await make_user("vol"))
    rooms = Rooms()
    executor = executor_for(bot, rooms)
    ref = RoomRef(SessionID(1), Role.VOLUNTEER, OfferID(1))
    created = await executor.run(CreateRoom(ref, UserID(volunteer.user_id), "Chatter #0001"), "t1")
    assert isinstance(created, RoomMade)
    room = rooms.refs[ref] = created.room
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


async def test_a_room_the_sync_saw_first_is_still_sent_to_encrypted(make_user, make_client):
    """Under load the bot's sync can build nio's object for a room the bot just created
    before the creation's answer is handled; the sync leaves out the bot's own
    `m.room.encryption`, so that object says "unencrypted". The executor knows better
    from the creation: the next message goes out encrypted, at once."""
    bot = await make_client(await make_user("bot"))
    volunteer = await make_client(await make_user("vol"))
    rooms = Rooms()
    executor = executor_for(bot, rooms)
    ref = RoomRef(SessionID(1), Role.VOLUNTEER, OfferID(1))
    created = await executor.run(CreateRoom(ref, UserID(volunteer.user_id), "Chatter"), "t1")
    assert isinstance(created, RoomMade)
    room = rooms.refs[ref] = created.room
    await volunteer.wait_for_invite(room_id=room, timeout=30)
    await volunteer.join(room)
    await bot.wait_for_join(room, volunteer.user_id, timeout=30)
    bot.client.rooms[room].encrypted = False  # what the race leaves behind

    sent = await asyncio.wait_for(executor.run(Say(ref, Text("x"), "nb"), "t2"), 10)
    assert isinstance(sent, Sent)
    got = await volunteer.wait_for_message(room_id=room, sender=bot.user_id, timeout=30)
    assert got.decrypted
    assert got.event_id == sent.event_id
    # Nothing the bot sends can notify anyone through its power ("@room" in a relay).
    assert got.content["m.mentions"] == {}


async def test_a_reply_into_an_unencrypted_dm_goes_out_at_once_in_plaintext(make_user, make_client):
    """A DM without encryption never waits for encryption that will not come: the
    answer goes out as plaintext in well under a second (the bot never waits on a room
    it knows), even when nio has not seen the room since the start."""
    bot = await make_client(await make_user("bot"))
    chatter = await make_client(await make_user("chatter"))
    resp = await chatter.client.room_create(
        visibility=RoomVisibility.private, invite=[bot.user_id], is_direct=True
    )
    assert isinstance(resp, RoomCreateResponse)
    dm = RoomID(resp.room_id)
    await bot.join(dm)
    executor = executor_for(bot)
    for attempt, forget in enumerate((False, True)):
        if forget:
            bot.client.rooms.pop(dm)  # as after a restart: nio keeps no rooms
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = await asyncio.wait_for(executor.run(Say(dm, Text("x"), "nb"), f"t{attempt}"), 10)
        took = loop.time() - started
        assert isinstance(sent, Sent)
        assert took < 1.0, f"the answer took {took:.2f} s"
        got = await chatter.wait_for_message(room_id=dm, sender=bot.user_id, timeout=30)
        assert got.event_id == sent.event_id
        assert not got.decrypted


async def test_a_conversation_room_asks_the_server_to_drop_it_after_the_retention(
    make_user, make_client
):
    """privacy.retention_max_lifetime: the safety net a room carries from its creation, so
    that a server with retention on drops it even if the bot never purges it."""
    bot = await make_client(await make_user("bot"))
    chatter = await make_user("chatter")
    executor = executor_for(bot, retention=timedelta(hours=5))
    effect = CreateRoom(RoomRef(SessionID(1), Role.CHATTER), UserID(chatter.user_id), "X")
    made = await executor.run(effect, "txn-retention")
    assert isinstance(made, RoomMade)
    state = await bot.client.room_get_state_event(made.room, "m.room.retention")
    assert state.content == {"max_lifetime": 5 * 3600 * 1000}
