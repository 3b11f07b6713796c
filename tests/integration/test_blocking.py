"""Blocking against the real Synapse: a supervisor blocks the chatter of a conversation by
its number; the chatter, writing again after the conversation is gone, gets the emergency
numbers once and no conversation, then nothing more that day; `!unblock` lets them in.

Every assertion is on what a person's client decrypted, or on the bot's database once it
has stopped.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.integration.world import (
    TIMEOUT,
    LeaveWatcher,
    accept_offer,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
)

pytestmark = pytest.mark.timeout(90)


def has(text: str) -> Any:
    return lambda m: text in (m.body or "")


async def test_a_supervisor_blocks_and_the_chatter_gets_the_emergency_numbers_once(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(supervisor_aliases=("Kari",))
    v, kari = w.volunteers[0], w.supervisors[0]
    await go_on_duty(w, v)
    chatter = await chatter_by_dm(w, make_user, make_client, "hei")
    leaves = LeaveWatcher(chatter.client)
    vroom, intro = await accept_offer(w, v)
    found = re.search(r"Chatter #(\d+)", intro.body or "")
    assert found is not None
    number = found.group(1)
    await next_from_bot(w, chatter.client, chatter.room, has(v.alias))

    # A volunteer may not block; a supervisor may, from the volunteers' room.
    await v.client.send_text(w.staff_room, f"!blokker {number}")
    await next_from_bot(w, v.client, w.staff_room, has("bare for veiledere"))
    await kari.client.send_text(w.staff_room, f"!blokker {number} 7d")
    done = await next_from_bot(w, kari.client, w.staff_room, has("er blokkert til"))
    assert f"Chatter #{number}" in done.body
    assert chatter.client.user_id not in done.body
    # The volunteer hears it in the conversation, which goes on until they end it.
    await next_from_bot(w, v.client, vroom, has("En veileder har blokkert"))
    await v.client.send_text(vroom, "!slutt")
    await leaves.wait_removed(chatter.room)
    await chatter.client.wait_until(
        lambda: w.bot_id not in chatter.client.client.rooms[chatter.dm].users,
        TIMEOUT,
        "the bot gone from the first DM (the purge takes it)",
    )

    # The same person writes again, in a new DM: the emergency numbers, no conversation.
    dm = await chatter.client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
    await chatter.client.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)
    await chatter.client.send_text(dm, "hei, er det noen der?")
    told = await next_from_bot(w, chatter.client, dm)
    assert told.msgtype == "m.notice"
    for emergency in ("113", "112", "116 111"):
        assert emergency in (told.body or "")
    # Again the same day: nothing. Shown below: the next answer in this DM is the one
    # to the message after the unblock (a DM's answers are sent in order).
    await chatter.client.send_text(dm, "hallo?")

    await kari.client.send_text(w.staff_room, f"!opphev {number}")
    await next_from_bot(w, kari.client, w.staff_room, has("er opphevet"))
    await chatter.client.send_text(dm, "hei igjen")
    invited = await next_from_bot(w, chatter.client, dm)
    assert "privat rom" in (invited.body or ""), invited.body
    room = await chatter.client.wait_for_invite(timeout=TIMEOUT)
    assert room.sender == w.bot_id
    # Two conversations in all: the first, and the one after the unblock.
    assert [i.sender for i in chatter.client.invites] == [w.bot_id, w.bot_id]

    assert await w.bot.stop() == 0
    db = Path(w.bot.config.storage.data_dir) / "helpline.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM blocklist").fetchone() == (0,)
        assert [n for (n,) in conn.execute("SELECT blocks FROM stats_blocks")] == [1]
