"""Events no ordinary client sends, from the people the bot talks to: the bot stays up,
acts on none of them, and the conversation goes on.

A modified client can put anything in an event: a relation that is a string, an edit of
an "event ID" that is an object, a lone surrogate in a body (JSON can carry "\\ud800" as
an escape), or a message in the clear in an encrypted room (with a stolen access token,
say). The hostile events are sent through raw HTTP; encrypted ones are encrypted with the
sender's own Megolm session, as their client would, only the payload is hostile.

Real Synapse, real E2EE clients; assertions are on what people's clients decrypt.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from nio import RoomPreset, RoomVisibility

from bot.devtools.client import TestClient
from tests.integration.world import (
    TIMEOUT,
    World,
    assert_logs_clean,
    next_from_bot,
    open_conversation,
)

pytestmark = pytest.mark.timeout(180)


async def raw_send(client: TestClient, room: str, event_type: str, content: dict[str, Any]) -> str:
    """Send an event as any HTTP client can, past nio's checks and encryption."""
    nio = client.client
    path = f"/_matrix/client/v3/rooms/{quote(room)}/send/{quote(event_type)}/{secrets.token_hex(8)}"
    body = json.dumps(content)  # ensure_ascii: a lone surrogate travels as "\ud800"
    headers = {"Authorization": f"Bearer {nio.access_token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.put(nio.homeserver + path, data=body, headers=headers) as resp,
    ):
        answer = await resp.json()
        assert resp.status == 200, (resp.status, answer)
        return str(answer["event_id"])


async def send_payload(client: TestClient, room: str, content: dict[str, Any]) -> str:
    """An encrypted m.room.message whose decrypted content is exactly `content`, with the
    Megolm session the client already shared in `room` (it has sent there before)."""
    async with client._crypto_lock:
        encrypted = client.client.olm.group_encrypt(
            room, {"type": "m.room.message", "content": content}
        )
    return await raw_send(client, room, "m.room.encrypted", encrypted)


def dm_of(w: World, client: TestClient, conversation_room: str) -> str:
    """The DM the chatter opened with the bot (their only other room)."""
    (dm,) = [r for r in client.client.rooms if r != conversation_room]
    return dm


def edit_of(target: Any, new: Any) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": "* ny",
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        "m.new_content": new,
    }


async def test_malformed_relations_are_skipped_and_the_conversation_goes_on(
    open_world, make_user, make_client
):
    """A string for `m.relates_to` crashed the sync on every start; an edit of an object
    "event ID" blocked the outbox. In the conversation room and in the DM."""
    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)
    v = w.volunteers[0]
    dm = dm_of(w, chatter.client, chatter.room)
    await chatter.client.send_text(chatter.room, "først")  # shares the room's session
    assert (await next_from_bot(w, v.client, vroom)).body == "først"

    for room in (dm, chatter.room):
        await send_payload(
            chatter.client, room, {"msgtype": "m.text", "body": "a", "m.relates_to": "$x"}
        )
        await send_payload(chatter.client, room, edit_of({"$": 1}, {"body": "b"}))
        await send_payload(chatter.client, room, edit_of(["$x"], "c"))

    await chatter.client.send_text(chatter.room, "er du der?")
    got = await next_from_bot(w, v.client, vroom)
    assert got.body == "er du der?"
    assert w.bot.task is not None
    assert not w.bot.task.done()
    assert "reason=malformed" in w.logs.getvalue()
    assert_logs_clean(w, "er du der?", chatter.user.user_id)


async def test_a_lone_surrogate_reaches_the_volunteer_as_a_replacement_character(
    open_world, make_user, make_client
):
    """Only an encrypted payload can carry it past Synapse; the bot decrypts it."""
    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)
    v = w.volunteers[0]
    await chatter.client.send_text(chatter.room, "først")
    assert (await next_from_bot(w, v.client, vroom)).body == "først"

    await send_payload(chatter.client, chatter.room, {"msgtype": "m.text", "body": "hei \ud800 du"})
    got = await next_from_bot(w, v.client, vroom)
    assert got.body == "hei \ufffd du"
    await chatter.client.send_text(chatter.room, "etterpå")
    assert (await next_from_bot(w, v.client, vroom)).body == "etterpå"
    assert w.bot.task is not None
    assert not w.bot.task.done()


async def test_a_message_in_the_clear_in_an_encrypted_room_is_never_acted_on(
    open_world, make_user, make_client
):
    """From either side: a stolen token can send without the device the bot checks."""
    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)
    v = w.volunteers[0]

    await raw_send(
        chatter.client, chatter.room, "m.room.message", {"msgtype": "m.text", "body": "klartekst"}
    )
    await chatter.client.send_text(chatter.room, "kryptert")
    assert (await next_from_bot(w, v.client, vroom)).body == "kryptert"

    # A volunteer's command in the clear would end the conversation: it must not.
    await raw_send(v.client, vroom, "m.room.message", {"msgtype": "m.text", "body": "!slutt"})
    await v.client.send_text(vroom, "fortsatt her")
    assert (await next_from_bot(w, chatter.client, chatter.room)).body == "fortsatt her"
    assert "an unencrypted message in an encrypted room was not acted on" in w.logs.getvalue()


async def plaintext_dm(w: World, make_user, make_client) -> tuple[TestClient, str]:
    """A stranger's direct chat with the bot, without encryption, the bot joined."""
    client = await make_client(await make_user("klartekst"))
    resp = await client.client.room_create(
        visibility=RoomVisibility.private,
        preset=RoomPreset.trusted_private_chat,
        is_direct=True,
        invite=[w.bot_id],
    )
    await client.wait_for_join(resp.room_id, w.bot_id, timeout=TIMEOUT)
    return client, resp.room_id


async def say_in_clear(client: TestClient, room: str, body: str) -> None:
    sent = await client.client.room_send(
        room, "m.room.message", {"msgtype": "m.text", "body": body}
    )
    assert getattr(sent, "event_id", None), sent


async def test_a_plaintext_dm_is_told_so_and_invited_to_an_encrypted_room(
    open_world, make_user, make_client
):
    w = await open_world()
    client, dm = await plaintext_dm(w, make_user, make_client)
    # Malformed events in the clear come first: skipped, nothing answered for them.
    await raw_send(
        client, dm, "m.room.message", {"msgtype": "m.text", "body": "a", "m.relates_to": "$x"}
    )
    await raw_send(client, dm, "m.room.message", edit_of({"$": 1}, {"body": "b"}))
    await say_in_clear(client, dm, "hei")
    answer = await client.wait_for_message(room_id=dm, sender=w.bot_id, timeout=TIMEOUT)
    assert not answer.decrypted  # the room has no encryption: the answer cannot have any
    assert "ikke kryptert" in (answer.body or "")
    assert "Ikke skriv mer her" in answer.body
    invite = await client.wait_for_invite(timeout=TIMEOUT)
    assert invite.sender == w.bot_id
    assert invite.room_id != dm
    room = await client.join(invite.room_id)
    assert room.encrypted


async def test_a_plaintext_dm_can_be_refused_with_how_to_write_encrypted(
    open_world, make_user, make_client
):
    w = await open_world(intake={"plaintext_direct": "refuse"})
    client, dm = await plaintext_dm(w, make_user, make_client)
    await say_in_clear(client, dm, "hei")
    answer = await client.wait_for_message(room_id=dm, sender=w.bot_id, timeout=TIMEOUT)
    assert "kryptering slått på" in (answer.body or "")
    # Nothing was opened: an encrypted DM from the same person now gets the first
    # invitation, not "you already have an invitation".
    encrypted_dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
    await client.wait_for_join(encrypted_dm, w.bot_id, timeout=TIMEOUT)
    await client.send_text(encrypted_dm, "hei igjen")
    again = await next_from_bot(w, client, encrypted_dm)
    assert "Så ingen andre kan lese med" in (again.body or "")
