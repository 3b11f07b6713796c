"""A whole conversation through the real bot, as the chatter and the volunteer see it.

Real Synapse, real E2EE clients on both sides; assertions are on what each side decrypts.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.devtools.runner import InProcessBot, write_config
from tests.integration.world import capture_logs

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def helpline(synapse, make_user, make_client, tmp_path: Path):
    """The bot, a volunteer on duty-capable, the volunteers' room; yields a small world."""
    bot_user = await make_user("bot")
    volunteer_user = await make_user("irene")
    volunteer = await make_client(volunteer_user)
    staff_room = await volunteer.create_encrypted_room(invite=[bot_user.user_id], name="Vakt")
    config = write_config(
        tmp_path / "config.yaml",
        homeserver=synapse.base_url,
        bot_user=bot_user.user_id,
        bot_password=bot_user.password,
        data_dir=tmp_path / "data",
        staff_room=staff_room,
        volunteers=[
            {"user_id": volunteer_user.user_id, "alias": "Irene", "languages": ["nb", "en"]}
        ],
        privacy={"purge_after": "2s"},
    )
    logs, handler, old_level = capture_logs()
    root = logging.getLogger()
    bot = InProcessBot(config)
    await bot.start()
    await volunteer.wait_for_join(staff_room, bot_user.user_id)

    class World:
        pass

    w = World()
    w.bot, w.bot_user, w.volunteer, w.volunteer_user = bot, bot_user, volunteer, volunteer_user
    w.staff_room = staff_room
    w.logs = logs
    try:
        yield w
        if bot.task is not None and not bot.task.done():
            assert await bot.stop() == 0
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def next_from_bot(client, room_id, bot_user, timeout=20):
    return await client.wait_for_message(room_id=room_id, sender=bot_user.user_id, timeout=timeout)


async def test_full_conversation(helpline, make_client, make_user):
    w = helpline
    await _conversation(w, make_client, make_user)
    captured = w.logs.getvalue()
    assert "serving" in captured
    assert "DEBUG" in captured
    for secret in ("I just need someone to talk to", "Hei, jeg heter Irene", "Takk, det hjelper"):
        assert secret not in captured
    assert w.chatter_id not in captured


async def _conversation(w, make_client, make_user):
    # The volunteer comes on duty in the volunteers' room.
    await w.volunteer.send_text(w.staff_room, "!på")
    reply = await next_from_bot(w.volunteer, w.staff_room, w.bot_user)
    assert reply.msgtype == "m.notice"
    assert "Irene" in reply.body

    # A chatter writes to the bot directly.
    chatter_user = await make_user("chatter")
    w.chatter_id = chatter_user.user_id
    chatter = await make_client(chatter_user)
    dm = await chatter.create_encrypted_room(invite=[w.bot_user.user_id], is_direct=True)
    await chatter.wait_for_join(dm, w.bot_user.user_id, timeout=20)
    await chatter.send_text(dm, "I just need someone to talk to")

    # The bot invites the chatter to a fresh private room and welcomes them there.
    invite = await chatter.wait_for_invite(timeout=20)
    session_room = invite.room_id
    assert session_room != dm
    await chatter.join(session_room)
    welcome = await next_from_bot(chatter, session_room, w.bot_user)
    assert welcome.decrypted
    assert welcome.msgtype == "m.notice"
    assert "113" in welcome.body
    assert "116 111" in welcome.body

    # The volunteer gets an offer: an invite to a room of its own; joining accepts.
    offer = await w.volunteer.wait_for_invite(timeout=20)
    await w.volunteer.join(offer.room_id)
    intro = await next_from_bot(w.volunteer, offer.room_id, w.bot_user)
    assert intro.msgtype == "m.notice"
    # What the chatter wrote while waiting arrives, under the pseudonym, never the ID.
    held = await next_from_bot(w.volunteer, offer.room_id, w.bot_user)
    assert held.body == "I just need someone to talk to"
    assert held.msgtype == "m.text"
    assert held.decrypted
    assert chatter_user.user_id not in intro.body

    # The chatter is told a volunteer came, by alias.
    joined_note = await next_from_bot(chatter, session_room, w.bot_user)
    assert "Irene" in joined_note.body
    assert w.volunteer_user.user_id not in joined_note.body

    # Words both ways, decrypted on each side, sent by the bot.
    await w.volunteer.send_text(offer.room_id, "Hei, jeg heter Irene")
    got = await next_from_bot(chatter, session_room, w.bot_user)
    assert got.body == "Hei, jeg heter Irene"
    assert got.msgtype == "m.text"
    assert got.decrypted

    # Hostile HTML is never passed on: only the plain body arrives, with no formatted_body.
    await chatter.send_text(
        session_room,
        "Takk, det hjelper",
        extra_content={
            "format": "org.matrix.custom.html",
            "formatted_body": "<a href='https://evil.example'>Takk</a>",
        },
    )
    got = await next_from_bot(w.volunteer, offer.room_id, w.bot_user)
    assert got.body == "Takk, det hjelper"
    assert "formatted_body" not in got.content

    # The chatter ends; both get closing messages.
    await chatter.send_text(session_room, "!slutt")
    closing = await next_from_bot(chatter, session_room, w.bot_user)
    assert "113" in closing.body
    ended = await next_from_bot(w.volunteer, offer.room_id, w.bot_user)
    assert ended.msgtype == "m.notice"


async def _open_conversation(w, make_client, make_user):
    """Volunteer on duty, a chatter asks, the volunteer accepts; returns both rooms."""
    await w.volunteer.send_text(w.staff_room, "!on")
    await next_from_bot(w.volunteer, w.staff_room, w.bot_user)
    chatter = await make_client(await make_user("chatter"))
    dm = await chatter.create_encrypted_room(invite=[w.bot_user.user_id], is_direct=True)
    await chatter.wait_for_join(dm, w.bot_user.user_id, timeout=20)
    await chatter.send_text(dm, "hei")
    session_room = (await chatter.wait_for_invite(timeout=20)).room_id
    await chatter.join(session_room)
    await next_from_bot(chatter, session_room, w.bot_user)  # welcome
    offer_room = (await w.volunteer.wait_for_invite(timeout=20)).room_id
    await w.volunteer.join(offer_room)
    await next_from_bot(w.volunteer, offer_room, w.bot_user)  # intro
    assert (await next_from_bot(w.volunteer, offer_room, w.bot_user)).body == "hei"
    await next_from_bot(chatter, session_room, w.bot_user)  # the volunteer's alias
    return chatter, session_room, offer_room


async def test_edits_redactions_and_typing_are_mirrored(helpline, make_client, make_user):
    w = helpline
    chatter, session_room, offer_room = await _open_conversation(w, make_client, make_user)
    bot_id = w.bot_user.user_id

    original = await chatter.send_text(session_room, "jeg er lei meg")
    relayed = await next_from_bot(w.volunteer, offer_room, w.bot_user)
    assert relayed.body == "jeg er lei meg"

    # An edit arrives as an edit of the relayed copy, plain text only.
    await chatter.send_text(
        session_room,
        "* jeg er så lei meg",
        extra_content={
            "m.new_content": {"msgtype": "m.text", "body": "jeg er så lei meg"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    edit = await next_from_bot(w.volunteer, offer_room, w.bot_user)
    assert edit.content["m.relates_to"] == {"rel_type": "m.replace", "event_id": relayed.event_id}
    assert edit.content["m.new_content"]["body"] == "jeg er så lei meg"

    # A redaction removes the relayed copy on the other side.
    await chatter.client.room_redact(session_room, original)

    async def redacted() -> bool:
        resp = await w.volunteer.client.room_get_event(offer_room, relayed.event_id)
        event = getattr(resp, "event", None)
        return event is not None and not event.source.get("content")

    for _ in range(100):
        if await redacted():
            break
        await asyncio.sleep(0.1)
    assert await redacted()

    # Typing is relayed, as the bot typing in the other room.
    await w.volunteer.client.room_typing(offer_room, True, timeout=10_000)
    await chatter.wait_until(
        lambda: bot_id in chatter.client.rooms[session_room].typing_users,
        timeout=10,
        what="the bot typing for the volunteer",
    )
