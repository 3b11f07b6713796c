"""Care for volunteers against the real Synapse: a debrief offered after a conversation on
a heavy topic (to the volunteer, and to the supervisors by alias only), and a volunteer's
own shift on request. Assertions on what each person's client decrypted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.world import next_from_bot, open_conversation

pytestmark = pytest.mark.timeout(90)


def has(text: str) -> Any:
    return lambda m: text in (m.body or "")


async def test_a_heavy_conversation_ends_with_a_debrief_offer_and_the_shift_counts_it(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(
        supervisor_aliases=("Kari",), supervision={"debrief_topics": ["selvmordstanker"]}
    )
    irene, kari = w.volunteers[0], w.supervisors[0]
    chatter, vroom = await open_conversation(w, make_user, make_client, "jeg orker ikke mer")
    await irene.client.send_text(vroom, "!tema selvmordstanker")
    await next_from_bot(w, irene.client, vroom, has("Tema lagret"))
    await irene.client.send_text(vroom, "!slutt")
    offer = await next_from_bot(w, irene.client, vroom, has("veileder"))
    assert "tungt" in offer.body
    told = await next_from_bot(w, kari.client, w.staff_room, has("debrief"))
    assert told.body.startswith("Irene ")
    assert "#" not in told.body  # no session number
    assert "selvmord" not in told.body  # no topic
    assert chatter.user.user_id not in told.body

    await irene.client.send_text(w.staff_room, "!min-vakt")
    shift = await next_from_bot(w, irene.client, w.staff_room, has("Din vakt"))
    assert "1 samtaler denne vakta, 0 pågår nå" in shift.body


async def test_a_volunteer_reads_the_bot_in_her_own_language_and_the_chatter_in_theirs(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    """`volunteers.members[].language`: everything said in Irene's conversation room is in
    English, while the chatter (who wrote in the default language) reads Norwegian."""
    w = await open_world(volunteer_languages={"Irene": "en"})
    irene = w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client, "hei, er du der?")
    await irene.client.send_text(vroom, "!slutt")
    ended_v = await next_from_bot(w, irene.client, vroom, has("was ended by"))
    assert "The conversation with Chatter #" in ended_v.body
    ended_c = await next_from_bot(w, chatter.client, chatter.room, has("113"))
    assert "Takk for at du snakket med oss" in ended_c.body
