"""Settings that change what people see, end to end: the rating and read receipts.

Real Synapse, real E2EE clients; every assertion is on what a person's client received,
or, for what is kept, on the bot's database after the conversation was purged.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.devtools.client import TestClient
from tests.integration.world import (
    TIMEOUT,
    LeaveWatcher,
    World,
    next_from_bot,
    open_conversation,
)

pytestmark = pytest.mark.timeout(90)


def words(text: str) -> str:
    return f"{text} {secrets.token_hex(4)}"


def stats(w: World, column: str) -> list[Any]:
    data = Path(w.bot.config.storage.data_dir) / "helpline.db"
    with sqlite3.connect(f"file:{data}?mode=ro", uri=True) as db:
        return [value for (value,) in db.execute(f"SELECT {column} FROM stats")]


async def purged(w: World, watcher: LeaveWatcher, room: str) -> None:
    """The conversation is purged: the chatter was removed from its room, and its
    statistics row is written (in the same step, so a short wait is for the file)."""
    await watcher.wait_removed(room, timeout=30)
    for _ in range(100):
        if stats(w, "outcome"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no statistics row after the purge")


# --------------------------------------------------------------------------------------
# privacy.ask_rating


async def test_rating_is_asked_for_when_switched_on_and_only_the_number_is_kept(
    open_world: Any, make_user: Any, make_client: Any
) -> None:
    # Time enough to read the question and answer it before the purge.
    w = await open_world(privacy={"ask_rating": True, "purge_after": "6s"})
    chatter, _ = await open_conversation(w, make_user, make_client)
    watcher = LeaveWatcher(chatter.client)
    await chatter.client.send_text(chatter.room, "!slutt")
    closing = await next_from_bot(w, chatter.client, chatter.room)
    assert "Samtalen er avsluttet" in (closing.body or "")
    question = await next_from_bot(w, chatter.client, chatter.room)
    assert "fra 1" in (question.body or "")
    assert question.msgtype == "m.notice"
    await chatter.client.send_text(chatter.room, "4")
    thanks = await next_from_bot(w, chatter.client, chatter.room)
    assert "Takk for at du svarte" in (thanks.body or "")
    await purged(w, watcher, chatter.room)
    assert stats(w, "rating") == [4]


async def test_rating_is_not_asked_for_by_default(
    open_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_world()
    chatter, _ = await open_conversation(w, make_user, make_client)
    watcher = LeaveWatcher(chatter.client)
    await chatter.client.send_text(chatter.room, "!slutt")
    closing = await next_from_bot(w, chatter.client, chatter.room)
    assert "Samtalen er avsluttet" in (closing.body or "")
    await chatter.client.send_text(chatter.room, "5")  # unasked: not an answer
    await purged(w, watcher, chatter.room)
    # The removal came after everything the bot said in the room: no question among it.
    assert not [m for m in chatter.client.messages if "fra 1" in (m.body or "")]
    assert stats(w, "rating") == [None]


# --------------------------------------------------------------------------------------
# opening_hours: a closed line says when it opens


async def test_a_closed_line_tells_a_chatter_by_dm_when_it_opens_again(
    open_world: Any, make_user: Any, make_client: Any
) -> None:
    today = datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()
    hours = {"always_open": False, "weekly": {"mon-sun": "00:00-23:59"}, "closed_dates": [today]}
    w = await open_world(opening_hours=hours)
    client = await make_client(await make_user("chatter"))
    dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
    await client.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)
    await client.send_text(dm, "hei")
    refusal = await next_from_bot(w, client, dm)
    assert "Chatten er stengt akkurat nå" in (refusal.body or "")
    assert "Vi åpner igjen i morgen kl. 00.00" in (refusal.body or "")


# --------------------------------------------------------------------------------------
# privacy.relay_read_receipts


def receipt_of(client: TestClient, room: str, user: str) -> str | None:
    """The event `user` has last read in `room`, as `client` was told (a receipt in the
    main timeline, threaded as "main" or not)."""
    nio_room = client.client.rooms.get(room)
    if nio_room is None:
        return None
    receipt = nio_room.threaded_read_receipts.get(user, {}).get("main")
    receipt = receipt or nio_room.read_receipts.get(user)
    return receipt.event_id if receipt is not None else None


async def test_the_volunteers_read_receipt_reaches_the_chatter_and_not_the_other_way(
    open_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_world(privacy={"relay_read_receipts": True})
    chatter, vroom = await open_conversation(w, make_user, make_client)
    volunteer = w.volunteers[0].client

    # The chatter writes; the volunteer's app marks the relayed copy read.
    said = words("Er du der?")
    original = await chatter.client.send_text(chatter.room, said)
    copy = await next_from_bot(w, volunteer, vroom)
    assert copy.body == said
    await volunteer.client.update_receipt_marker(vroom, copy.event_id)
    # The chatter sees the bot (the volunteer's alias, in their room) read their original.
    await chatter.client.wait_until(
        lambda: receipt_of(chatter.client, chatter.room, w.bot_id) == original,
        TIMEOUT,
        "the bot's read receipt on the chatter's message",
    )

    # The other way: the chatter reads the volunteer's words; nothing goes back.
    answer = words("Ja, jeg er her")
    answered = await volunteer.send_text(vroom, answer)
    reply = await next_from_bot(w, chatter.client, chatter.room)
    assert reply.body == answer
    await chatter.client.client.update_receipt_marker(chatter.room, reply.event_id)
    # A signal ordered after that receipt: the next round of the same kind arrives. The
    # bot handles its inputs one by one, the chatter's receipt before the volunteer's
    # next, and sends its effects in order per conversation.
    again = words("Takk")
    second = await chatter.client.send_text(chatter.room, again)
    copy2 = await next_from_bot(w, volunteer, vroom)
    assert copy2.body == again
    await volunteer.client.update_receipt_marker(vroom, copy2.event_id)
    await chatter.client.wait_until(
        lambda: receipt_of(chatter.client, chatter.room, w.bot_id) == second,
        TIMEOUT,
        "the bot's second read receipt",
    )
    # Anything the bot sent to the volunteer's room before the chatter's next words
    # reaches the volunteer's app with them (or before).
    last = words("Ha det")
    await chatter.client.send_text(chatter.room, last)
    assert (await next_from_bot(w, volunteer, vroom)).body == last
    assert receipt_of(volunteer, vroom, w.bot_id) is None
    assert answered  # the volunteer's own message: read by nobody but the chatter
