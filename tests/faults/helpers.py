"""What the fault tests share: request patterns for the proxy, and the check that what a
chatter wrote reached the volunteer once each, in order."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

from tests.integration.world import TIMEOUT, Chatter, Volunteer, World, next_from_bot

# Request paths, as the proxy sees them.
SYNC = r"/_matrix/client/[^/]+/sync(?:\?|$)"
SEND = r"/_matrix/client/[^/]+/rooms/[^/]+/send/"  # not /sendToDevice/: keys still flow


def send_into(room: str) -> str:
    """Sends into `room` only, however the client quoted its ID in the path."""
    forms = sorted({room, quote(room, safe=""), quote(room, safe="!:")})
    return r"/_matrix/client/[^/]+/rooms/(?:" + "|".join(map(re.escape, forms)) + r")/send/"


async def relayed(
    w: World, v: Volunteer, room: str, bodies: list[str], timeout: float
) -> list[str | None]:
    """What the bot relayed into `room`, in arrival order, until the last of `bodies`
    arrives (or nothing more does within `timeout`): a lost message shows as a short list
    at once, not as a wait for something that never comes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got: list[str | None] = []
    while not got or got[-1] != bodies[-1]:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            got.append((await next_from_bot(w, v.client, room, timeout=remaining)).body)
        except TimeoutError:
            break
    return got


async def assert_relayed_once_in_order(
    w: World, chatter: Chatter, v: Volunteer, room: str, bodies: list[str], timeout: float
) -> None:
    """Every one of `bodies` reaches the volunteer, in order, and none twice.

    "None twice" without a fixed wait: a marker written afterwards goes through the same
    conversation, in order, so a second copy of anything before it would have arrived
    before the marker does."""
    got = await relayed(w, v, room, bodies, timeout)
    assert got == bodies, f"relayed {got}, expected {bodies}"
    marker = f"og en til etter {len(bodies)}"
    await chatter.client.send_text(chatter.room, marker)
    assert (await next_from_bot(w, v.client, room, timeout=TIMEOUT)).body == marker
    copies = [
        m.body
        for m in v.client.messages
        if m.room_id == room and m.sender == w.bot_id and m.body in bodies
    ]
    assert copies == bodies, f"the volunteer's room holds {copies}"


def bot_alive(w: World) -> bool:
    return w.bot.task is not None and not w.bot.task.done()
