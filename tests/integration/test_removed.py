"""The bot loses its place in a room of a conversation.

Nothing the bot does takes it out of a conversation's room before the end, but a server
can: a state reset (state resolution picks a state without the bot's membership), or a
server admin. The helpline must notice and say so instead of relaying into a room it can
no longer read or write. The tests take the bot's membership with a token the server
admin gets for the bot's account, so that nothing of the bot's own code runs: to the bot
it looks the way a state reset does (its membership gone, no kick by anyone, nothing in
its sync: the bot's own events are filtered out of it). The bot learns it when it next
writes there and the server refuses: it asks the server which rooms it is in.
"""

from __future__ import annotations

import pytest

from bot.devtools.users import admin_request, q
from tests.integration.world import (
    assert_logs_clean,
    next_from_bot,
    open_conversation,
)

pytestmark = pytest.mark.timeout(120)


async def take_membership(synapse, admin, user_id: str, room: str) -> None:
    _, body = await admin_request(
        synapse.base_url,
        admin.access_token,
        "POST",
        f"/_synapse/admin/v1/users/{q(user_id)}/login",
        json={},
    )
    await admin_request(
        synapse.base_url,
        body["access_token"],
        "POST",
        f"/_matrix/client/v3/rooms/{q(room)}/leave",
        json={},
    )


async def test_out_of_the_chatters_room_the_conversation_ends_and_the_chatter_hears_in_the_dm(
    synapse, admin, open_world, make_user, make_client
):
    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)
    v = w.volunteers[0]

    await take_membership(synapse, admin, w.bot_id, chatter.room)
    await v.client.send_text(vroom, "er du der?")  # cannot be relayed any more

    told = await next_from_bot(w, v.client, vroom)
    assert "Forbindelsen til Chatter #" in (told.body or "")
    in_dm = await next_from_bot(
        w, chatter.client, chatter.dm, lambda m: "forbindelsen" in (m.body or "")
    )
    assert "mistet forbindelsen" in (in_dm.body or "")
    assert "113" in (in_dm.body or "")

    # The helpline goes on: the same chatter starts again from the DM.
    await chatter.client.send_text(chatter.dm, "hei igjen")
    invite = await chatter.client.wait_for_invite(timeout=20)
    assert invite.room_id != chatter.room
    await chatter.client.join(invite.room_id)
    welcome = await next_from_bot(w, chatter.client, invite.room_id)
    assert "113" in (welcome.body or "")
    assert w.bot.task is not None
    assert not w.bot.task.done()
    assert_logs_clean(w, "er du der?", "hei igjen", chatter.user.user_id)


async def test_out_of_the_volunteers_room_the_chatter_goes_back_to_the_queue(
    synapse, admin, open_world, make_user, make_client
):
    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)

    await take_membership(synapse, admin, w.bot_id, vroom)
    await chatter.client.send_text(chatter.room, "hallo?")  # cannot be relayed any more

    requeued = await next_from_bot(w, chatter.client, chatter.room)
    assert requeued.msgtype == "m.notice"
    assert "kø" in (requeued.body or "")
    assert w.bot.task is not None
    assert not w.bot.task.done()
    assert_logs_clean(w, "hallo?", chatter.user.user_id)
