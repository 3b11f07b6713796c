"""The homeserver misbehaving for minutes, through the fault proxy: 502s with an HTML body
for the bot's sends or syncs, and connections reset under a waiting long-poll.

What must hold (the worker's contract): a transient failure is retried with capped
backoff until the server is back, never dropped; what waits is sent once, in order; one
conversation's failing sends never hold up another's; the sync loop survives any answer.

Only the bot goes through the proxy; people's clients talk to Synapse directly, so the
assertions are on what their clients decrypt.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import aiohttp
import pytest

import bot.app
from bot.devtools.synapse import free_port
from bot.http import Health
from tests.faults.helpers import (
    SEND,
    SYNC,
    assert_relayed_once_in_order,
    bot_alive,
    send_into,
)
from tests.integration.world import (
    TIMEOUT,
    accept_offer,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
    open_conversation,
)

SEND_OUTAGE_S = 100.0  # longer than the old give-up: 8 tries, about 91 s
ONE_ROOM_OUTAGE_S = 30.0  # several retry rounds for A while B goes on
SYNC_OUTAGE_S = 60.0
HEALTH_AGE_S = 15.0  # /healthz's allowed sync age for these tests (120 s in production)
# After healing: the next try of a capped backoff, then the relays themselves.
AFTER_HEAL_S = 100.0


async def test_sends_failing_longer_than_the_old_give_up_are_all_delivered_once_in_order(
    fault_proxy: Any, open_proxied_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_proxied_world()
    v = w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)

    outage = fault_proxy.fail(SEND)
    bodies = [f"mens serveren svikter {i}" for i in range(3)]
    for body in bodies:
        await chatter.client.send_text(chatter.room, body)
    await fault_proxy.wait_for_hits(outage, 1, timeout=TIMEOUT)
    loop = asyncio.get_running_loop()
    # The outage itself, counted from the first refusal.
    await asyncio.sleep(max(0.0, outage.first_hit_at + SEND_OUTAGE_S - loop.time()))
    assert bot_alive(w)
    tries = outage.hits
    fault_proxy.remove(outage)

    await assert_relayed_once_in_order(w, chatter, v, vroom, bodies, timeout=AFTER_HEAL_S)
    assert 3 <= tries <= 60, f"{tries} sends in {SEND_OUTAGE_S:.0f} s: no backoff, or no retry"


async def test_one_conversations_failing_sends_do_not_hold_up_another(
    fault_proxy: Any, open_proxied_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_proxied_world(aliases=("Irene", "Jonas"))
    irene, jonas = w.volunteers
    # A with Irene; then Jonas comes on duty and takes B (Irene is at her cap of one).
    chatter_a, room_a = await open_conversation(w, make_user, make_client, "hei fra A")
    await go_on_duty(w, jonas)
    chatter_b = await chatter_by_dm(w, make_user, make_client, "hei fra B")
    room_b, _ = await accept_offer(w, jonas)
    assert (await next_from_bot(w, jonas.client, room_b)).body == "hei fra B"
    await next_from_bot(w, chatter_b.client, chatter_b.room)  # "Jonas is here"

    outage = fault_proxy.fail(send_into(room_a))
    bodies_a = [f"A venter {i}" for i in range(3)]
    for body in bodies_a:
        await chatter_a.client.send_text(chatter_a.room, body)
    await fault_proxy.wait_for_hits(outage, 1, timeout=TIMEOUT)

    # B's messages go through while A's sends keep failing, each within a normal step.
    for i in range(3):
        body = f"B går fint {i}"
        await chatter_b.client.send_text(chatter_b.room, body)
        got = await next_from_bot(w, jonas.client, room_b, timeout=TIMEOUT)
        assert got.body == body
        assert outage.active
    reply = "Jonas svarer"
    await jonas.client.send_text(room_b, reply)
    assert (await next_from_bot(w, chatter_b.client, chatter_b.room)).body == reply
    assert not [m for m in irene.client.messages if m.room_id == room_a and m.body in bodies_a]

    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, outage.first_hit_at + ONE_ROOM_OUTAGE_S - loop.time()))
    fault_proxy.remove(outage)
    await assert_relayed_once_in_order(w, chatter_a, irene, room_a, bodies_a, AFTER_HEAL_S)


async def healthz(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as resp,
    ):
        return resp.status, json.loads(await resp.text())


async def wait_health(port: int, status: int, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got, body = await healthz(port)
        if got == status:
            return body
        if loop.time() > deadline:
            pytest.fail(f"/healthz did not answer {status} within {timeout} s: {got} {body}")
        await asyncio.sleep(0.5)


async def test_sync_answering_502_for_a_minute_is_ridden_out_and_nothing_is_lost(
    fault_proxy: Any,
    open_proxied_world: Any,
    make_user: Any,
    make_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /healthz allows 120 s without a sync in production; a shorter age lets a one-minute
    # outage show as 503 without a test that lasts three.
    monkeypatch.setattr(bot.app, "Health", functools.partial(Health, max_sync_age=HEALTH_AGE_S))
    port = free_port()
    w = await open_proxied_world(http={"port": port})
    v = w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)
    await wait_health(port, 200, timeout=TIMEOUT)

    outage = fault_proxy.fail(SYNC)
    # The long-poll open right now would answer normally for up to 30 s: cut it, so the
    # outage starts now (the retry meets the 502).
    fault_proxy.reset_waiting(SYNC)
    await fault_proxy.wait_for_hits(outage, 1, timeout=TIMEOUT)
    loop = asyncio.get_running_loop()
    started = outage.first_hit_at
    bodies = [f"mens synken svikter {i}" for i in range(3)]
    for body in bodies:
        await chatter.client.send_text(chatter.room, body)

    body = await wait_health(port, 503, timeout=HEALTH_AGE_S + 30)
    assert any("no successful sync" in r for r in body["reasons"]), body
    assert bot_alive(w)
    await asyncio.sleep(max(0.0, started + SYNC_OUTAGE_S - loop.time()))
    assert bot_alive(w)
    tries = outage.hits
    fault_proxy.remove(outage)

    await assert_relayed_once_in_order(w, chatter, v, vroom, bodies, timeout=AFTER_HEAL_S)
    await wait_health(port, 200, timeout=TIMEOUT)
    assert 3 <= tries <= 40, f"{tries} syncs in {SYNC_OUTAGE_S:.0f} s: no backoff, or no retry"


async def test_a_connection_reset_under_a_waiting_long_poll_loses_nothing(
    fault_proxy: Any, open_proxied_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_proxied_world()
    v = w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)

    await fault_proxy.wait_for_waiting(SYNC, timeout=TIMEOUT)
    # Reset the next two as well: the HTTP client quietly retries a reset GET once, and
    # the second reset reaches the bot's own reconnecting.
    resets = fault_proxy.reset(SYNC, times=2)
    assert fault_proxy.reset_waiting(SYNC) == 1
    await fault_proxy.wait_for_hits(resets, 2, timeout=60)

    bodies = [f"etter brudd {i}" for i in range(3)]
    for body in bodies:
        await chatter.client.send_text(chatter.room, body)
    await assert_relayed_once_in_order(w, chatter, v, vroom, bodies, timeout=60)
    await fault_proxy.wait_for_waiting(SYNC, timeout=TIMEOUT)  # long-polling again
    assert bot_alive(w)


# Answers to /sync that are not a sync response: a captive portal's page, JSON of the
# wrong shape, JSON cut off in the middle.
NOT_A_SYNC = [
    ("<html><body>Please log in to the Wi-Fi</body></html>", "text/html"),
    ('{"next_batch": 42, "rooms": [], "to_device": "none"}', "application/json"),
    ('{"next_batch": "s72595_4483_1934", "rooms": {"join": {', "application/json"),
]


async def test_sync_answers_that_are_not_a_sync_response_do_not_stop_the_loop(
    fault_proxy: Any, open_proxied_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_proxied_world()
    v = w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)

    rules = [
        fault_proxy.fail(SYNC, status=200, body=body, content_type=ctype, times=1)
        for body, ctype in NOT_A_SYNC
    ]
    fault_proxy.reset_waiting(SYNC)  # the next sync meets them at once
    for rule in rules:
        await fault_proxy.wait_for_hits(rule, 1, timeout=60)
    assert bot_alive(w)

    bodies = [f"etter rare svar {i}" for i in range(3)]
    for body in bodies:
        await chatter.client.send_text(chatter.room, body)
    await assert_relayed_once_in_order(w, chatter, v, vroom, bodies, timeout=60)
    assert bot_alive(w)
