"""Several chatters at once: the interleavings one conversation never produces.

Before conversations had lanes of their own, a handful of chatters arriving together
stalled every one of them behind the first welcome that waited for its room. Here six
chatters write within the same second to three volunteers with room for two each: every
one is welcomed, every one is connected, and each conversation's words reach its own
volunteer and nobody else's, both ways.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.world import (
    TIMEOUT,
    Chatter,
    Volunteer,
    World,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
)

pytestmark = pytest.mark.timeout(240)

CHATTERS = 6


async def take_offers(w: World, v: Volunteer, count: int) -> dict[str, str]:
    """Accept `count` offers; returns each volunteer room's held first words."""
    rooms: dict[str, str] = {}
    for _ in range(count):
        offer = await v.client.wait_for_invite(timeout=90)
        await v.client.join(offer.room_id)
        intro = await next_from_bot(w, v.client, offer.room_id, timeout=60)
        assert "Chatter #" in (intro.body or "")
        held = await next_from_bot(w, v.client, offer.room_id, timeout=60)
        rooms[offer.room_id] = held.body or ""
    return rooms


async def test_six_chatters_at_once_are_all_welcomed_connected_and_kept_apart(
    open_world, make_user, make_client
):
    w = await open_world(aliases=("Irene", "Jonas", "Kari"), max_sessions=2)
    for v in w.volunteers:
        await go_on_duty(w, v)

    loop = asyncio.get_running_loop()
    started = loop.time()
    arrivals = [chatter_by_dm(w, make_user, make_client, f"hei fra {i}") for i in range(CHATTERS)]
    offers = [take_offers(w, v, 2) for v in w.volunteers]
    (*chatters,) = await asyncio.wait_for(asyncio.gather(*arrivals), 120)
    welcomed_in = loop.time() - started
    taken = await asyncio.wait_for(asyncio.gather(*offers), 120)
    connected_in = loop.time() - started
    print(
        f"{CHATTERS} chatters: all welcomed in {welcomed_in:.1f} s,"
        f" connected in {connected_in:.1f} s"
    )

    # Whose room is whose, from the first words each volunteer was handed.
    owner: dict[int, tuple[Volunteer, str]] = {}
    for v, rooms in zip(w.volunteers, taken, strict=True):
        for room, first in rooms.items():
            owner[int(first.rsplit(" ", 1)[1])] = (v, room)
    assert sorted(owner) == list(range(CHATTERS))

    async def both_ways(i: int, c: Chatter) -> None:
        v, room = owner[i]
        await next_from_bot(w, c.client, c.room, lambda m: v.alias in (m.body or ""))
        await c.client.send_text(c.room, f"melding {i}")
        got = await next_from_bot(w, v.client, room, lambda m: (m.body or "").startswith("meld"))
        assert got.body == f"melding {i}"
        await v.client.send_text(room, f"svar {i}")
        back = await next_from_bot(w, c.client, c.room, lambda m: (m.body or "").startswith("svar"))
        assert back.body == f"svar {i}"

    await asyncio.wait_for(
        asyncio.gather(*(both_ways(i, c) for i, c in enumerate(chatters))), TIMEOUT * 3
    )
