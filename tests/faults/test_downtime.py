"""The homeserver gone, or the bot gone, for a while.

- Synapse stopped (not the proxy) while relays are on their way, then started again:
  what was on its way arrives once, in order. The proxy only holds the bot's sends for a
  moment, so that they are in flight when Synapse goes; the existing
  `tests/integration/test_faults.py::test_homeserver_down_backs_off_and_carries_on` covers
  the sync backing off while Synapse is down and a message written after it is back.
- The bot stopped while a chatter writes more than one sync's timeline holds: the sync
  after the start says `limited: true` and leaves the older events out; the bot must
  still relay every one, once, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.faults.helpers import SEND, assert_relayed_once_in_order, bot_alive
from tests.integration.world import TIMEOUT, open_conversation

SYNAPSE_DOWN_S = 20.0
HOLD_SENDS_S = 2.0
# A timeline without a limit in the bot's sync filter gets Synapse's default of 10 events.
TIMELINE_LIMIT = 10
WHILE_STOPPED = TIMELINE_LIMIT + 5


async def test_synapse_stopped_with_relays_in_flight_delivers_them_once_in_order(
    synapse: Any, fault_proxy: Any, open_proxied_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_proxied_world()
    v = w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)

    hold = fault_proxy.delay(SEND, HOLD_SENDS_S)
    bodies = [f"før stansen {i}" for i in range(3)]
    for body in bodies:
        await chatter.client.send_text(chatter.room, body)
    await fault_proxy.wait_for_hits(hold, 1, timeout=TIMEOUT)  # a relay is on its way
    await synapse.async_stop()
    await asyncio.sleep(SYNAPSE_DOWN_S)
    assert bot_alive(w)
    await synapse.async_start()
    fault_proxy.remove(hold)
    assert fault_proxy.count(outcome="unreachable") >= 1  # the bot did meet the outage

    await assert_relayed_once_in_order(w, chatter, v, vroom, bodies, timeout=100)


async def test_more_messages_than_a_sync_timeline_holds_while_the_bot_was_down_all_arrive(
    open_world: Any, make_user: Any, make_client: Any
) -> None:
    w = await open_world()
    v = w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)

    assert await w.bot.stop() == 0
    bodies = [f"mens boten var borte {i}" for i in range(WHILE_STOPPED)]
    for body in bodies:
        await chatter.client.send_text(chatter.room, body)
    await w.bot.start()

    await assert_relayed_once_in_order(w, chatter, v, vroom, bodies, timeout=60)
