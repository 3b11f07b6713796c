"""Supervision against the real Synapse: a transfer with a handover note, a supervisor at
the volunteer's side, and the nudge for a volunteer who has gone silent.

Every assertion is on what a person's client decrypted (or on the captured logs).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.test_purge import RedactionWatcher
from tests.integration.world import (
    TIMEOUT,
    LeaveWatcher,
    accept_offer,
    assert_logs_clean,
    go_on_duty,
    next_from_bot,
    open_conversation,
)

pytestmark = pytest.mark.timeout(120)


def has(text: str) -> Any:
    return lambda m: text in (m.body or "")


def number_in(body: str | None) -> str:
    found = re.search(r"Chatter #(\d+)", body or "")
    assert found is not None, body
    return found.group(1)


async def test_a_transferred_chatters_new_volunteer_sees_only_the_note(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(aliases=("Irene", "Ola"))
    irene, ola = w.volunteers
    chatter, old_room = await open_conversation(w, make_user, make_client, "hei")
    irene_leaves = LeaveWatcher(irene.client)
    await chatter.client.send_text(chatter.room, "før-overføringen")
    await next_from_bot(w, irene.client, old_room, has("før-overføringen"))
    await irene.client.send_text(old_room, "!notat Snakket om skolen. Ring-mor-notat.")
    await next_from_bot(w, irene.client, old_room, has("Notatet er lagret"))

    # Nobody else on duty: Irene keeps the chatter.
    await irene.client.send_text(old_room, "!overfør")
    await next_from_bot(w, irene.client, old_room, has("Du beholder samtalen"))
    await go_on_duty(w, ola)
    await irene.client.send_text(old_room, "!overfør Ola")
    await next_from_bot(w, irene.client, old_room, has("er tilbudt Ola"))

    new_room, intro = await accept_offer(w, ola)
    assert new_room != old_room
    assert "fra Irene" in (intro.body or "")
    note = await next_from_bot(w, ola.client, new_room, has("Ring-mor-notat"))
    assert note.msgtype == "m.notice"
    await next_from_bot(w, chatter.client, chatter.room, has("gitt samtalen videre"))
    await next_from_bot(w, chatter.client, chatter.room, has("Ola"))
    await irene_leaves.wait_removed(old_room)

    # From now on the chatter talks to Ola, both ways.
    await chatter.client.send_text(chatter.room, "etter-overføringen")
    await next_from_bot(w, ola.client, new_room, has("etter-overføringen"))
    await ola.client.send_text(new_room, "Hei, jeg er Ola.")
    await next_from_bot(w, chatter.client, chatter.room, has("Hei, jeg er Ola."))

    seen_by_ola = [m.body or "" for m in ola.client.messages if m.room_id == new_room]
    assert not any("før-overføringen" in b or b == "hei" for b in seen_by_ola), seen_by_ola
    seen_by_chatter = [m.body or "" for m in chatter.client.messages]
    assert not any("Ring-mor-notat" in b for b in seen_by_chatter)
    assert_logs_clean(w, "Ring-mor-notat", "før-overføringen", chatter.user.user_id)


async def test_a_supervisor_joins_and_the_chatter_sees_nothing_of_their_words(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(supervisor_aliases=("Kari",))
    v, kari = w.volunteers[0], w.supervisors[0]
    chatter, vroom = await open_conversation(w, make_user, make_client, "hei")
    kari_id = kari.client.user_id

    # The volunteer's alert mentions the supervisor (none is on duty: all are) and
    # invites them: accepting the invite is the one tap that joins.
    await v.client.send_text(vroom, "!hjelp-veileder")
    await next_from_bot(w, v.client, vroom, has("Veilederne har fått beskjed"))
    alert = await next_from_bot(w, kari.client, w.staff_room, has("Veileder trengs"))
    number = number_in(alert.body)
    assert alert.content.get("m.mentions") == {"user_ids": [kari_id]}
    invite = await kari.client.wait_for_invite(timeout=TIMEOUT)
    assert invite.room_id == vroom
    assert invite.sender == w.bot_id
    # !bli-med says the same, and brings no second room.
    await kari.client.send_text(w.staff_room, f"!bli-med {number}")
    await next_from_bot(w, kari.client, w.staff_room, has("invitert"))
    await kari.client.join(vroom)
    await next_from_bot(w, v.client, vroom, has("er med i rommet"))

    # The supervisor reads what is relayed there from now on ...
    await chatter.client.send_text(chatter.room, "chatterens-ord")
    relayed = await next_from_bot(w, kari.client, vroom, has("chatterens-ord"))
    assert relayed.decrypted
    # ... and what they write reaches the volunteer, never the chatter.
    await kari.client.send_text(vroom, "veileders-hemmelige-råd")
    advice = await v.client.wait_for_message(
        room_id=vroom, sender=kari_id, predicate=has("veileders-hemmelige-råd"), timeout=TIMEOUT
    )
    assert advice.decrypted
    await v.client.send_text(vroom, "merke-etter-rådet")
    await next_from_bot(w, chatter.client, chatter.room, has("merke-etter-rådet"))
    seen_by_chatter = [m.body or "" for m in chatter.client.messages]
    assert not any("veileders-hemmelige-råd" in b for b in seen_by_chatter)

    kari_leaves = LeaveWatcher(kari.client)
    await kari.client.send_text(vroom, "!forlat")
    await next_from_bot(w, v.client, vroom, has("har gått ut av rommet"))
    await kari_leaves.wait_removed(vroom)
    assert_logs_clean(w, "veileders-hemmelige-råd", "chatterens-ord", chatter.user.user_id)


async def test_a_silent_volunteer_is_nudged_and_then_the_supervisors_are_called(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(supervisor_aliases=("Kari",), limits={"volunteer_silence": "3s"})
    v, kari = w.volunteers[0], w.supervisors[0]
    # The held "hei" reaches the volunteer on accept: from then it waits for an answer.
    _chatter, vroom = await open_conversation(w, make_user, make_client, "hei")
    nudge = await next_from_bot(w, v.client, vroom, has("ventet på svar fra deg"))
    assert nudge.msgtype == "m.notice"
    alert = await next_from_bot(w, kari.client, w.staff_room, has("har ventet"))
    assert alert.content.get("m.mentions") == {"user_ids": [kari.client.user_id]}
    assert f"!bli-med {number_in(alert.body)}" in (alert.body or "")


async def test_the_purge_removes_a_supervisor_who_stayed_to_the_end(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    """At the end a supervisor stays in the room until the purge, which redacts every
    message they saw and then removes them, as it does the volunteer."""
    w = await open_world(supervisor_aliases=("Kari",))
    v, kari = w.volunteers[0], w.supervisors[0]
    chatter, vroom = await open_conversation(w, make_user, make_client, "hei")
    redactions, leaves = RedactionWatcher(kari.client), LeaveWatcher(kari.client)
    intro = [m for m in v.client.messages if m.room_id == vroom and "Chatter #" in (m.body or "")]
    number = number_in(intro[0].body)
    await kari.client.send_text(w.staff_room, f"!join {number}")
    invite = await kari.client.wait_for_invite(timeout=TIMEOUT)
    await kari.client.join(invite.room_id)
    await next_from_bot(w, v.client, vroom, has("er med i rommet"))
    await chatter.client.send_text(chatter.room, "ord-før-slutt")
    await next_from_bot(w, kari.client, vroom, has("ord-før-slutt"))
    await kari.client.send_text(vroom, "råd-før-slutt")
    await v.client.send_text(vroom, "!slutt")
    await leaves.wait_removed(vroom, timeout=30)
    assert redactions.seen_events(vroom)
    assert not redactions.unredacted(vroom)
