"""Waiting on a condition or on an answer from the bot, never for a fixed time.

A test that sleeps and then checks "nothing more came" or "N were taken in by now"
passes or fails with the machine's load. The helpers here wait for something that
happens, with a deadline only a failure reaches:

- `wait_until`: a condition nothing notifies the test of (the server's state, the bot's
  logs), checked again and again until it holds.
- `bot_caught_up`: a positive marker. The bot's worker applies inputs one at a time, in
  the order its sync delivered them; an answer to a later question proves that
  everything before it was applied (or, on purpose, held).
- `assert_relayed_once_in_order`: "none twice" shown by a marker relayed after the
  messages, through the same conversation.

For what a person's client receives, `TestClient.wait_until` and the `wait_for_*` methods
are woken by the client's own syncs; use those where they fit.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.devtools.client import TestClient
from tests.integration.world import TIMEOUT, Chatter, Volunteer, World, next_from_bot

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    timeout: float = TIMEOUT,
    what: str = "a condition",
    interval: float = 0.1,
) -> T:
    """Wait until `predicate()` (a function or a coroutine function) is truthy; return
    its value. Raises `TimeoutError` naming `what`; the predicate is checked once more
    at the deadline, so a slow check never loses a condition that holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))


async def membership(client: TestClient, room: str, user: str) -> str | None:
    """`user`'s membership in `room` as the server has it now ("join", "leave", ...)."""
    resp = await client.client.room_get_state_event(room, "m.room.member", user)
    content = getattr(resp, "content", None)
    return content.get("membership") if isinstance(content, dict) else None


def is_status(body: str | None) -> bool:
    return (body or "").startswith("Status:")


async def bot_caught_up(
    client: TestClient, staff_room: str, bot_id: str, timeout: float = TIMEOUT
) -> None:
    """Return once the bot's worker has taken every input the server stored before this
    call: applied it, or held it on purpose (an input for a room being created).

    Two round trips of `!status` through the volunteers' room (`client` is a volunteer in
    it). The first `!status` may come in the same sync batch as what the test waits for,
    and be applied before it; the second is written after the first's answer, so it comes
    in a later batch, and the worker takes inputs in the order of their batches."""
    for _ in range(2):
        await client.send_text(staff_room, "!status")
        await client.wait_for_message(
            room_id=staff_room,
            sender=bot_id,
            predicate=lambda m: is_status(m.body),
            timeout=timeout,
        )


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
