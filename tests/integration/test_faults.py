"""Faults the bot must ride out: rate limits, the homeserver going away, history from
before it joined, invite spam, and participants pretending to be someone else.

Real Synapse, real E2EE clients, the bot in-process; assertions are on what people's
clients decrypt and on the server's own record.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nio import RoomPreset, RoomVisibility

from bot.devtools.client import MEGOLM_ALGORITHM as MEGOLM
from bot.devtools.users import admin_request, override_ratelimit, q
from tests.integration.waits import membership, wait_until
from tests.integration.world import (
    TIMEOUT,
    LeaveWatcher,
    accept_offer,
    assert_logs_clean,
    build_world,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
)

pytestmark = pytest.mark.timeout(180)


async def _conversation(w, make_user, make_client):
    v = w.volunteers[0]
    await go_on_duty(w, v)
    chatter = await chatter_by_dm(w, make_user, make_client, "hei")
    room, _ = await accept_offer(w, v)
    assert (await next_from_bot(w, v.client, room)).body == "hei"
    await next_from_bot(w, chatter.client, chatter.room)  # "<alias> is here"
    return v, chatter, room


async def test_rate_limited_bot_delivers_every_message_once_in_order(
    open_world, synapse, admin, make_user, make_client
):
    """429 with retry_after_ms: resent with the same transaction ID, delivered once."""
    w = await open_world()
    v, chatter, room = await _conversation(w, make_user, make_client)
    # From now on the bot may send one message a second, two in a burst.
    await override_ratelimit(
        synapse.base_url, admin.access_token, w.bot_id, messages_per_second=1, burst_count=2
    )
    bodies = [f"melding {i}" for i in range(6)]
    for body in bodies:
        await v.client.send_text(room, body)
    got = [(await next_from_bot(w, chatter.client, chatter.room, timeout=30)).body for _ in bodies]
    assert got == bodies
    assert "429" in w.logs.getvalue()  # the limit was really hit
    # Nothing twice. A marker relayed after them goes through the same conversation, in
    # order: a second copy of any of them would reach the chatter before it does.
    marker = "og en til"
    await v.client.send_text(room, marker)
    assert (await next_from_bot(w, chatter.client, chatter.room, timeout=30)).body == marker
    # The server's record of the chatter's room, up to and with the marker.
    _, listing = await admin_request(
        synapse.base_url,
        admin.access_token,
        "GET",
        f"/_synapse/admin/v1/rooms/{q(chatter.room)}/messages",
        params={"dir": "b", "limit": "50"},
    )
    texts_from_bot = [
        e for e in listing["chunk"] if e["sender"] == w.bot_id and e["type"] == "m.room.encrypted"
    ]
    # welcome, "<alias> is here", the six relayed messages and the marker
    assert len(texts_from_bot) == 2 + len(bodies) + 1
    await override_ratelimit(synapse.base_url, admin.access_token, w.bot_id)


async def test_homeserver_down_backs_off_and_carries_on(
    open_world, synapse, make_user, make_client
):
    w = await open_world()
    v, chatter, room = await _conversation(w, make_user, make_client)
    before = w.logs.getvalue().count("sync failed")
    await synapse.async_stop()
    # The outage itself: six seconds of it (not a wait for the bot to do something).
    await asyncio.sleep(6)
    # No tight loop: a handful of retries over six seconds, not hundreds. Counted while
    # Synapse is still down, so that its start (slower on a busy machine) is not counted.
    retries = w.logs.getvalue().count("sync failed") - before
    await synapse.async_start()
    assert retries <= 8, retries
    await chatter.client.send_text(chatter.room, "er du der fortsatt?", timeout=30)
    got = await next_from_bot(w, v.client, room, timeout=40)
    assert got.body == "er du der fortsatt?"


async def test_history_from_before_the_bot_joined_is_ignored(
    synapse, make_user, make_client, tmp_path: Path
):
    owner = await make_client(await make_user("lobbyowner"))
    early = await make_client(await make_user("early"))
    bot_user = await make_user("bot")
    resp = await owner.client.room_create(
        visibility=RoomVisibility.private,
        preset=RoomPreset.public_chat,
        name="Snakk med oss",
        invite=[bot_user.user_id],
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
        ],
        power_level_override={"users": {bot_user.user_id: 50}},
    )
    lobby = resp.room_id
    await early.join(lobby)
    await early.wait_for_room(lobby, encrypted=True)
    old_event = await early.send_text(lobby, "skrevet før boten kom")
    w = await build_world(
        synapse, make_user, make_client, tmp_path, bot_user=bot_user, lobby_rooms=(lobby,)
    )
    try:
        await owner.wait_for_join(lobby, bot_user.user_id, timeout=TIMEOUT)

        async def redacted(event_id: str) -> bool:
            resp = await owner.client.room_get_event(lobby, event_id)
            return not resp.event.source.get("content")

        # A new message after the bot joined is taken in: an invite, and the message
        # redacted at once.
        new_event = await early.send_text(lobby, "nå trenger jeg hjelp")
        invite = await early.wait_for_invite(timeout=TIMEOUT)
        assert invite.sender == bot_user.user_id
        await wait_until(lambda: redacted(new_event), TIMEOUT, "redaction of the new message")
        # Nothing happened for the old message: the bot takes a room's messages in order
        # and redacts in that order, so had it taken the old one in, that one would be
        # redacted by now too.
        assert not await redacted(old_event)
    finally:
        await w.close()


async def test_dm_history_from_before_the_bot_was_invited_is_ignored(
    open_world, make_user, make_client
):
    """A chatter writes in a room with shared history and only then invites the bot. The
    bot, already running, joins: what was written before must not start a request (the
    server marks it with the bot's membership at the time, `unsigned.membership`), what
    is written after must."""
    w = await open_world()
    v = w.volunteers[0]
    await go_on_duty(w, v)
    chatter = await make_client(await make_user("early"))
    resp = await chatter.client.room_create(
        visibility=RoomVisibility.private,
        preset=RoomPreset.private_chat,
        is_direct=True,
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "shared"},
            }
        ],
    )
    room = resp.room_id
    await chatter.wait_for_room(room)

    async def say(text: str) -> None:  # plain text: the room is not encrypted
        sent = await chatter.client.room_send(
            room, "m.room.message", {"msgtype": "m.text", "body": text}
        )
        assert getattr(sent, "event_id", None), sent

    await say("skrevet før boten kom")
    # A direct-message invite (is_direct), sent after the room already has history.
    await chatter.client.room_put_state(
        room, "m.room.member", {"membership": "invite", "is_direct": True}, state_key=w.bot_id
    )
    await chatter.wait_for_join(room, w.bot_id, timeout=TIMEOUT)
    await say("hei")
    invite = await chatter.wait_for_invite(timeout=TIMEOUT)
    assert invite.sender == w.bot_id
    # Only "hei" started the request: the one invite came for it, and the words the
    # volunteer is given first are "hei", not what was written before the bot came.
    assert len(chatter.invites) == 1
    await chatter.join(invite.room_id)
    vroom, _ = await accept_offer(w, v)
    assert (await next_from_bot(w, v.client, vroom)).body == "hei"


async def test_invites_to_strangers_rooms_are_rejected_and_spam_is_limited(
    open_world, make_user, make_client
):
    w = await open_world()
    stranger = await make_client(await make_user("stranger"))
    watcher = LeaveWatcher(stranger)
    # A group room that is neither a DM nor a configured lobby: rejected.
    group = await stranger.create_encrypted_room(invite=[w.bot_id], name="Fest")

    async def decided(room: str) -> str | None:
        """The bot's answer to the invite: "join" or "leave"; None while it is undecided."""
        state = await membership(stranger, room, w.bot_id)
        return state if state in ("join", "leave") else None

    assert await wait_until(lambda: decided(group), TIMEOUT, "answer to the group invite") == (
        "leave"
    )
    # DM invites from one person: a few are fine, a flood is not.
    rooms = [
        await stranger.create_encrypted_room(invite=[w.bot_id], is_direct=True) for _ in range(7)
    ]
    states = [await wait_until(lambda r=r: decided(r), TIMEOUT, f"answer in {r}") for r in rooms]
    assert states[:4] == ["join"] * 4  # the first ones were accepted
    assert states[-1] == "leave"  # the flood was cut off
    del watcher


async def test_a_direct_chat_with_a_third_person_in_it_is_left_and_forgotten(
    open_world, make_user, make_client
):
    """`is_direct` is the inviter's word: a "DM" that also invites someone else is a
    group room, and the bot must not stay where a third person could read or write."""
    w = await open_world()
    stranger = await make_client(await make_user("stranger"))
    third = await make_user("third")
    room = await stranger.create_encrypted_room(invite=[w.bot_id, third.user_id], is_direct=True)

    async def left() -> bool:
        return await membership(stranger, room, w.bot_id) == "leave"

    await wait_until(left, TIMEOUT, "the bot leaving the room with a third person")
    # An honest DM from the same person is still accepted.
    dm = await stranger.create_encrypted_room(invite=[w.bot_id], is_direct=True)
    await stranger.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)


async def test_impersonating_names_never_reach_the_other_side(
    open_world, synapse, admin, make_user, make_client
):
    w = await open_world()
    v, chatter, room = await _conversation(w, make_user, make_client)
    await chatter.client.client.set_displayname(v.alias)
    await chatter.client.send_text(chatter.room, f"hei, jeg er {chatter.user.user_id}")
    got = await next_from_bot(w, v.client, room)
    # The chatter's own Matrix ID in their words is replaced by the pseudonym.
    assert chatter.user.user_id not in got.body
    assert "Chatter #" in got.body
    # The volunteer's room holds only the bot and the volunteer: no name of the chatter.
    _, members = await admin_request(
        synapse.base_url,
        admin.access_token,
        "GET",
        f"/_synapse/admin/v1/rooms/{q(room)}/members",
    )
    assert sorted(members["members"]) == sorted([w.bot_id, v.user.user_id])
    _, state = await admin_request(
        synapse.base_url, admin.access_token, "GET", f"/_synapse/admin/v1/rooms/{q(room)}/state"
    )
    assert chatter.user.user_id not in str(state)
    assert_logs_clean(w, "hei, jeg er", chatter.user.user_id)


async def test_an_outsider_cannot_join_a_conversation_and_a_participant_cannot_take_it_over(
    open_world, make_user, make_client
):
    """The conversation rooms are invite-only and only the bot holds power: an outsider's
    join is refused, and the chatter can neither replace the room (tombstone), nor raise
    their power, nor let others in; the conversation goes on."""
    from nio import JoinError, RoomPutStateError

    from tests.integration.world import open_conversation

    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)
    v = w.volunteers[0]
    outsider = await make_client(await make_user("outsider"))
    for room in (chatter.room, vroom):
        assert isinstance(await outsider.client.join(room), JoinError)

    attempts = {
        "m.room.tombstone": {"body": "flytt", "replacement_room": "!elsewhere:localhost"},
        "m.room.power_levels": {"users": {chatter.user.user_id: 100}},
        "m.room.join_rules": {"join_rule": "public"},
        "m.room.history_visibility": {"history_visibility": "world_readable"},
    }
    for event_type, content in attempts.items():
        resp = await chatter.client.client.room_put_state(chatter.room, event_type, content)
        assert isinstance(resp, RoomPutStateError), event_type
        assert resp.status_code == "M_FORBIDDEN"

    await chatter.client.send_text(chatter.room, "fortsatt her")
    got = await next_from_bot(w, v.client, vroom, lambda m: m.body == "fortsatt her")
    assert got.body == "fortsatt her"
