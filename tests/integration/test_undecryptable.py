"""Messages whose Megolm key reaches the bot late, or never: held, relayed once and in
order when the key comes, and after the grace period the sender is asked again.

To make a key late, the chatter's client holds back the to-device request that shares
its new Megolm session (nio sends it inside `room_send`), and sends it when the test says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nio import ShareGroupSessionResponse

from bot.devtools.client import TestClient
from bot.devtools.synapse import SynapseServer
from bot.devtools.users import RegisteredUser, room_messages_admin
from tests.integration.waits import assert_relayed_once_in_order
from tests.integration.world import (
    TIMEOUT,
    Chatter,
    MakeClient,
    MakeUser,
    World,
    accept_offer,
    build_world,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
)

pytestmark = pytest.mark.timeout(180)


class WithheldKeys:
    """While `holding`, the room keys this client shares are kept back, not sent."""

    def __init__(self, client: TestClient) -> None:
        self.sender = client
        self.client = client.client
        self.holding = False
        self.kept: list[tuple[str, str, Any]] = []
        inner = self.client._send

        async def _send(
            response_class: Any, method: str, path: str, data: Any = None, *a: Any, **kw: Any
        ) -> Any:
            if self.holding and response_class is ShareGroupSessionResponse:
                self.kept.append((method, path, data))
                room_id = kw["response_data"][0]
                return ShareGroupSessionResponse(room_id, set())
            return await inner(response_class, method, path, data, *a, **kw)

        self.client._send = _send  # type: ignore[method-assign]

    async def send_with_late_key(self, room: str, body: str) -> None:
        """Send `body` under a new Megolm session whose key is kept back."""
        self.client.invalidate_outbound_session(room)
        self.holding = True
        try:
            await self.sender.send_text(room, body)
        finally:
            self.holding = False
        self.client.invalidate_outbound_session(room)  # what follows has a key again

    async def release(self) -> None:
        for method, path, data in self.kept:
            resp = await self.client.send(method, path, data)
            assert resp.status == 200, await resp.text()
        self.kept.clear()


async def conversation(w: World, make_user: Any, make_client: Any) -> tuple[Chatter, str]:
    v = w.volunteers[0]
    await go_on_duty(w, v)
    chatter = await chatter_by_dm(w, make_user, make_client, "hei")
    vroom, _ = await accept_offer(w, v)
    await next_from_bot(w, v.client, vroom)  # the held first words
    await next_from_bot(w, chatter.client, chatter.room)  # "Irene is here"
    return chatter, vroom


async def test_a_message_whose_key_comes_late_is_relayed_once_and_in_order(
    synapse: SynapseServer,
    admin: RegisteredUser,
    make_user: MakeUser,
    make_client: MakeClient,
    tmp_path: Path,
) -> None:
    w = await build_world(
        synapse, make_user, make_client, tmp_path, encryption={"undecryptable_grace": "20s"}
    )

    async def from_bot_on_server(room: str) -> int:
        """The bot's events in `room` as the server has them now."""
        listing = await room_messages_admin(synapse.base_url, admin.access_token, room, limit=100)
        return sum(1 for e in listing["chunk"] if e["sender"] == w.bot_id)

    try:
        chatter, vroom = await conversation(w, make_user, make_client)
        v = w.volunteers[0]
        volunteer = v.client
        before = await from_bot_on_server(vroom)
        late = WithheldKeys(chatter.client)
        await late.send_with_late_key(chatter.room, "first, late key")
        assert late.kept, "the key share was not held back"
        await chatter.client.send_text(chatter.room, "second, key on time")
        # The second waits behind the first. Shown without a pause: the volunteer writes
        # twice, the second time after the first reached the chatter, so the second
        # reaches the bot in a later sync than "second, key on time" did. The bot relays a
        # conversation's messages in order: had it not held "second, key on time", that
        # would be on the server before the chatter reads the second marker.
        for marker in ("er du der?", "jeg venter"):
            await volunteer.send_text(vroom, marker)
            assert (await next_from_bot(w, chatter.client, chatter.room)).body == marker
        assert await from_bot_on_server(vroom) == before, "relayed before the key came"
        await late.release()

        # Both, in order, and each once (a marker written after them comes next).
        bodies = ["first, late key", "second, key on time"]
        await assert_relayed_once_in_order(w, chatter, v, vroom, bodies, TIMEOUT)
        relayed = [
            m.body for m in volunteer.messages if m.room_id == vroom and m.sender == w.bot_id
        ]
        assert "ble ikke" not in " ".join(b or "" for b in relayed)
        assert "a held event was decrypted after its key arrived" in w.logs.getvalue()
    finally:
        await w.close()


async def test_a_message_whose_key_never_comes_makes_the_bot_ask_again(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Any
) -> None:
    w = await build_world(
        synapse, make_user, make_client, tmp_path, encryption={"undecryptable_grace": "2s"}
    )
    try:
        chatter, vroom = await conversation(w, make_user, make_client)
        volunteer = w.volunteers[0].client
        lost = WithheldKeys(chatter.client)
        await lost.send_with_late_key(chatter.room, "this never arrives")
        await chatter.client.send_text(chatter.room, "and this does")

        to_volunteer = await next_from_bot(w, volunteer, vroom)
        assert to_volunteer.msgtype == "m.notice"
        assert "Chatter #" in (to_volunteer.body or "")
        assert "ikke kom fram" in to_volunteer.body
        to_chatter = await next_from_bot(w, chatter.client, chatter.room)
        assert to_chatter.msgtype == "m.notice"
        assert "sende den en gang til" in (to_chatter.body or "")
        after = await next_from_bot(w, volunteer, vroom)
        assert after.body == "and this does"  # the room goes on, in order
        assert "this never arrives" not in w.logs.getvalue()
        assert not [m for m in volunteer.messages if "never arrives" in (m.body or "")]
    finally:
        await w.close()
