"""A chatter from a bridged network: a user an appservice puppets, on a Synapse of its own.

A bridge is an appservice that owns a namespace of users (`@_bridge_.*` here) and acts for
them. One with end-to-bridge encryption gives the user it puppets a device (an appservice
login) and decrypts there; whether that device is cross-signed depends on the bridge. The
homeserver pushes the appservice only what everyone else sees: ciphertext, in an
encrypted room. These tests puppet one user with the loopback appservice of
`bot.devtools.appservice`, drive its device with the E2EE test client, and check that it
reaches a volunteer, and that an unsigned bridge device is treated as
`encryption.chatter_devices` says.

They ask for the `bridged` fixture, which starts that Synapse once per session, only when
one of them runs.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.appservice import ping
from bot.devtools.client import TestClient
from bot.devtools.users import RegisteredUser, q
from tests.integration.conftest import Bridged, ClientMaker
from tests.integration.waits import wait_until
from tests.integration.world import (
    TIMEOUT,
    World,
    accept_offer,
    build_world,
    go_on_duty,
    next_from_bot,
)

pytestmark = pytest.mark.timeout(120)

UNSIGNED_NOTE = "verifisert"  # the volunteer's note: nobody can confirm who reads there


async def helpline(
    bridged: Bridged, clients: ClientMaker, tmp_path: Path, **sections: Any
) -> World:
    home = bridged.home
    return await build_world(home.synapse, home.make_user, clients, tmp_path, **sections)


async def puppet(bridged: Bridged, clients: ClientMaker, *, cross_sign: bool) -> TestClient:
    """A user of the bridge, registered and given a device by the appservice, run as an
    E2EE client on that device (cross-signed or not, as the bridge does it)."""
    localpart = f"sms-{secrets.token_hex(4)}"
    p = await bridged.appservice.puppet(bridged.home.synapse.base_url, localpart, "bridge")
    user = RegisteredUser(p.user_id, localpart, "", p.access_token, p.device_id, admin=False)
    client = await clients(user, cross_sign=cross_sign, device=(p.device_id, p.access_token))
    assert client.device_id == p.device_id  # the appservice's device, not a login of its own
    return client


async def write_to_the_bot(w: World, client: TestClient, words: str) -> str:
    """The bridged user opens a DM with the bot, writes, and joins the room it is invited
    to; returns that room."""
    dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
    await client.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)
    await client.send_text(dm, words)
    invite = await client.wait_for_invite(timeout=TIMEOUT)
    assert invite.sender == w.bot_id
    assert invite.room_id != dm
    await client.join(invite.room_id)
    return invite.room_id


async def test_the_homeserver_reaches_the_appservice_with_its_token(bridged: Bridged) -> None:
    home = bridged.home
    assert await ping(home.synapse.base_url, bridged.appservice.registration) == 200
    assert bridged.appservice.refused == 0


async def test_a_bridged_user_reaches_a_volunteer_and_both_read_each_other(
    bridged: Bridged, bridged_clients: ClientMaker, tmp_path: Path
) -> None:
    """A bridge that cross-signs its device (self-signing): the bridged user is a chatter
    like any other, and the volunteer is told nothing about their device."""
    w = await helpline(bridged, bridged_clients, tmp_path)
    try:
        v = w.volunteers[0]
        await go_on_duty(w, v)
        client = await puppet(bridged, bridged_clients, cross_sign=True)
        assert client.user_id.startswith("@_bridge_sms-")
        first = "Hei, jeg skriver via SMS"
        room = await write_to_the_bot(w, client, first)
        welcome = await next_from_bot(w, client, room)
        assert "113" in (welcome.body or "")

        vroom, _ = await accept_offer(w, v)
        assert (await next_from_bot(w, v.client, vroom)).body == first
        assert v.alias in (await next_from_bot(w, client, room)).body
        for sender, where, text in [
            (v.client, vroom, "Jeg er her. Fortell meg mer"),
            (client, room, "Det har vært en tung uke"),
            (v.client, vroom, "Takk for at du sier det"),
        ]:
            await sender.send_text(where, text)
            reader, there = (client, room) if sender is v.client else (v.client, vroom)
            got = await next_from_bot(w, reader, there)
            assert got.body == text

        assert not [m for m in v.client.messages if UNSIGNED_NOTE in (m.body or "")]
        # What the homeserver pushed the appservice of the conversation: ciphertext only.
        pushed = bridged.appservice.pushed(room)
        messages = [e for e in pushed if "state_key" not in e]
        assert messages
        assert {e["type"] for e in messages} == {"m.room.encrypted"}
    finally:
        await w.close()


@pytest.mark.parametrize("rule", ["fallback_to_unsigned", "cross_signed_only"])
async def test_a_bridge_device_that_is_not_cross_signed(
    rule: str, bridged: Bridged, bridged_clients: ClientMaker, tmp_path: Path
) -> None:
    """A bridge that does not sign its device: by default the bot gives it the room keys
    (a person writing from an SMS bridge is not left reading silence) and tells the
    volunteer once; `cross_signed_only` holds it to Element's rule, so it reads nothing
    the bot sends, while what it writes still reaches the volunteer."""
    w = await helpline(bridged, bridged_clients, tmp_path, encryption={"chatter_devices": rule})
    try:
        v = w.volunteers[0]
        await go_on_duty(w, v)
        client = await puppet(bridged, bridged_clients, cross_sign=False)
        room = await write_to_the_bot(w, client, "hei")
        vroom, _ = await accept_offer(w, v)
        # The held first words; the note on the device (below) may come before them.
        await next_from_bot(w, v.client, vroom, lambda m: m.body == "hei")
        await v.client.send_text(vroom, "hei du")
        if rule == "fallback_to_unsigned":
            welcome = await next_from_bot(w, client, room)
            assert "113" in (welcome.body or "")
            got = await next_from_bot(w, client, room, lambda m: m.body == "hei du")
            assert got.decrypted
            note = await next_from_bot(
                w, v.client, vroom, lambda m: UNSIGNED_NOTE in (m.body or "")
            )
            assert "Chatter #" in (note.body or "")
            await client.send_text(room, "er det noen der?")
            await next_from_bot(w, v.client, vroom, lambda m: m.body == "er det noen der?")
            await v.client.send_text(vroom, "ja, jeg er her")
            await next_from_bot(w, client, room, lambda m: m.body == "ja, jeg er her")
            told = [m for m in v.client.messages if UNSIGNED_NOTE in (m.body or "")]
            assert len(told) == 1
        else:
            await client.wait_until(
                lambda: len([u for u in client.undecryptable if u.room_id == room]) >= 2,
                TIMEOUT,
                "the bot's messages, undecryptable",
            )
            assert not [m for m in client.messages if m.room_id == room and m.decrypted]
            await client.send_text(room, "er det noen der?")
            await next_from_bot(w, v.client, vroom, lambda m: m.body == "er det noen der?")
            assert not [m for m in v.client.messages if UNSIGNED_NOTE in (m.body or "")]
    finally:
        await w.close()


async def test_a_bridge_without_encryption_reads_only_what_the_bot_says_in_the_clear(
    bridged: Bridged, bridged_clients: ClientMaker, tmp_path: Path
) -> None:
    """An appservice user with no device (a bridge without encryption support) writes in
    a chat that is not encrypted. The bot answers there in the clear, and opens the
    conversation in an encrypted room; the user can join it, but everything said there
    reaches the bridge as ciphertext, and there is no device to give a key to."""
    w = await helpline(bridged, bridged_clients, tmp_path)
    try:
        await go_on_duty(w, w.volunteers[0])
        base, appservice = bridged.home.synapse.base_url, bridged.appservice
        user = await appservice.register(base, f"irc-{secrets.token_hex(4)}")
        created = await appservice.act_as(
            base,
            user,
            "POST",
            "/_matrix/client/v3/createRoom",
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [w.bot_id]},
        )
        dm = created["room_id"]

        def bot_joined(room: str) -> bool:
            return any(
                e["type"] == "m.room.member"
                and e.get("state_key") == w.bot_id
                and e["content"].get("membership") == "join"
                for e in appservice.pushed(room)
            )

        await wait_until(lambda: bot_joined(dm), TIMEOUT, "the bot joining the plain DM")
        await appservice.act_as(
            base,
            user,
            "PUT",
            f"/_matrix/client/v3/rooms/{q(dm)}/send/m.room.message/t1",
            {"msgtype": "m.text", "body": "hei, er det noen der?"},
        )

        def invited() -> str | None:
            for e in appservice.events:
                if (
                    e["type"] == "m.room.member"
                    and e.get("state_key") == user
                    and e["content"].get("membership") == "invite"
                    and e["room_id"] != dm
                ):
                    return str(e["room_id"])
            return None

        room = await wait_until(invited, TIMEOUT, "the invite to the conversation room")
        answer = await wait_until(
            lambda: [e for e in appservice.pushed(dm, sender=w.bot_id) if "body" in e["content"]],
            TIMEOUT,
            "the bot's answer in the plain DM",
        )
        assert "kryptert" in answer[0]["content"]["body"]  # told, in words the bridge carries
        await appservice.act_as(base, user, "POST", f"/_matrix/client/v3/join/{q(room)}", {})
        await wait_until(
            lambda: [e for e in appservice.pushed(room, sender=w.bot_id) if "state_key" not in e],
            TIMEOUT,
            "the bot's welcome in the conversation room",
        )
        said = [e for e in appservice.pushed(room, sender=w.bot_id) if "state_key" not in e]
        assert {e["type"] for e in said} == {"m.room.encrypted"}
        keys = await appservice.act_as(
            base, user, "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user: []}}
        )
        assert keys["device_keys"].get(user, {}) == {}  # no device: nothing can hold a key
    finally:
        await w.close()
