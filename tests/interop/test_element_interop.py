"""The bot with the clients people really use: matrix-js-sdk + Rust crypto (Element Web's
crypto stack) as chatter and volunteer, cross-signed, in only-signed-devices mode (MSC4153,
Element's "exclude insecure devices").

First the driver proves itself with two js clients and no bot; then one whole conversation
goes through the bot. Every assertion is on what a js client decrypted.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from bot.devtools.runner import InProcessBot, write_config
from tests.interop.jsclient import JsClient

STEP = 20.0  # seconds for one step; a healthy one takes well under a second
MEGOLM = "m.megolm.v1.aes-sha2"
# EventEncryptionInfo as js-sdk reports it for an authentic message: EventShieldColour.NONE.
NO_WARNING = {"colour": 0, "reason": None}


def words(text: str) -> str:
    """A sentence made unique, so finding it can only mean this test."""
    return f"{text} {secrets.token_hex(4)}"


async def assert_reads(
    reader: JsClient, room: str, sender: JsClient | str, body: str
) -> dict[str, Any]:
    """`reader` decrypts the next message from `sender` in `room`, and it is `body`."""
    sender_id = sender if isinstance(sender, str) else sender.user_id
    msg = await reader.wait_for_message(room_id=room, sender=sender_id, timeout=STEP)
    assert msg["encrypted"], f"{msg['event_id']} arrived unencrypted"
    assert msg["shield"] == NO_WARNING, msg
    assert msg["body"] == body, msg
    return msg


async def test_js_clients_in_only_signed_mode_talk_and_refuse_an_unsigned_device(
    make_user: Any, make_js_client: Any
) -> None:
    """The driver, proven without the bot: two cross-signed js clients in only-signed mode
    read each other, and an unsigned device is refused both ways, exactly as Element does
    (so a pass through the bot below means the bot's device is really cross-signed)."""
    alice_user, bob_user, mallory_user = [
        await make_user(name) for name in ("alice", "bob", "mallory")
    ]
    alice, bob, mallory = await asyncio.gather(
        make_js_client(alice_user),
        make_js_client(bob_user),
        # A device nobody signed (no cross-signing at all), in the permissive mode.
        make_js_client(mallory_user, isolation="all_devices", cross_sign=False),
    )

    room = await alice.create_room([bob.user_id, mallory.user_id], name="selfcheck")
    for c in (bob, mallory):
        invite = await c.wait_for_invite(room_id=room, timeout=STEP)
        assert invite["sender"] == alice.user_id
        await c.join(room)
    for c in (alice, bob, mallory):
        assert await c.wait_for_encryption(room, timeout=STEP) == MEGOLM
        await c.wait_for_join(room, bob.user_id, timeout=STEP)
        await c.wait_for_join(room, mallory.user_id, timeout=STEP)

    # Each side sees the other's device as signed by its owner, and mallory's as not.
    seen = await alice.device_trust(bob.user_id)
    assert seen["devices"][bob.device_id]["signed_by_owner"], seen
    seen = await bob.device_trust(mallory.user_id)
    assert not seen["devices"][mallory.device_id]["signed_by_owner"], seen

    hello = words("hei bob")
    sent = [await alice.send_text(room, hello)]
    await assert_reads(bob, room, alice, hello)
    back = words("hei alice")
    sent.append(await bob.send_text(room, back))
    await assert_reads(alice, room, bob, back)

    # Mallory's words are refused by both only-signed clients...
    await mallory.send_text(room, words("fra en usignert enhet"))
    for c in (alice, bob):
        await c.wait_event(
            "refusal of mallory's message",
            lambda e: (
                e.get("sender") == mallory.user_id and e.get("reason") == "UNSIGNED_SENDER_DEVICE"
            ),
            timeout=STEP,
        )
    # ...and their keys were withheld from mallory's device.
    for event_id in sent:
        await mallory.wait_event(
            f"withheld key for {event_id}",
            lambda e, i=event_id: (
                e.get("event_id") == i
                and e.get("reason") == "MEGOLM_KEY_WITHHELD_FOR_UNVERIFIED_DEVICE"
            ),
            timeout=STEP,
        )
    assert not [e for e in mallory.events if e.get("event") == "message"]
    assert not [
        e
        for e in alice.events + bob.events
        if e.get("sender") == mallory.user_id and e.get("event") == "message"
    ]
    assert not [
        e
        for e in alice.events + bob.events
        if e.get("event") == "undecryptable" and e["sender"] != mallory.user_id
    ]


async def test_whole_conversation_through_the_bot_with_element_clients(
    synapse: Any, make_user: Any, make_js_client: Any, tmp_path: Path
) -> None:
    """Help request, offer accepted, words both ways, end: a js chatter and a js volunteer,
    both only-signed, through the bot with its Element-compatible trust (`cross_signed`)."""
    bot_user = await make_user("bot")
    bot_id = bot_user.user_id
    irene_user = await make_user("irene")
    irene = await make_js_client(irene_user)
    staff_room = await irene.create_room([bot_id], name="Vakt")
    config = write_config(
        tmp_path / "config.yaml",
        homeserver=synapse.base_url,
        bot_user=bot_id,
        bot_password=bot_user.password,
        data_dir=tmp_path / "data",
        staff_room=staff_room,
        volunteers=[{"user_id": irene_user.user_id, "alias": "Irene", "languages": ["nb", "en"]}],
        encryption={"trust": "cross_signed"},
        privacy={"purge_after": "2s"},
    )
    bot = InProcessBot(config)
    await bot.start()
    try:
        await irene.wait_for_join(staff_room, bot_id, timeout=STEP)
        assert await irene.wait_for_encryption(staff_room, timeout=STEP) == MEGOLM
        # Element's view of the bot: every device of it is signed by its owner.
        seen = await irene.device_trust(bot_id)
        assert seen["devices"], seen
        assert all(d["signed_by_owner"] for d in seen["devices"].values()), seen

        # The volunteer comes on duty.
        await irene.send_text(staff_room, "!on")
        await assert_from_bot(irene, staff_room, bot_id, contains="Irene")

        # A chatter writes to the bot directly...
        chatter = await make_js_client(await make_user("chatter"))
        dm = await chatter.create_room([bot_id], is_direct=True)
        await chatter.wait_for_join(dm, bot_id, timeout=STEP)
        assert await chatter.wait_for_encryption(dm, timeout=STEP) == MEGOLM
        first = words("Jeg trenger noen å snakke med")
        await chatter.send_text(dm, first)
        # ...is invited to a fresh private room and welcomed there.
        invite = await chatter.wait_for_invite(sender=bot_id, timeout=STEP)
        room = invite["room_id"]
        assert room != dm
        await chatter.join(room)
        assert await chatter.wait_for_encryption(room, timeout=STEP) == MEGOLM
        welcome = await assert_from_bot(chatter, room, bot_id, contains="113")
        assert welcome["msgtype"] == "m.notice"

        # The offer reaches the volunteer; joining accepts it.
        offer = await irene.wait_for_invite(sender=bot_id, timeout=STEP)
        vroom = offer["room_id"]
        await irene.join(vroom)
        assert await irene.wait_for_encryption(vroom, timeout=STEP) == MEGOLM
        intro = await assert_from_bot(irene, vroom, bot_id, contains="Chatter #")
        assert chatter.user_id not in intro["body"]
        held = await assert_from_bot(irene, vroom, bot_id)
        assert held["body"] == first
        assert held["msgtype"] == "m.text"
        came = await assert_from_bot(chatter, room, bot_id, contains="Irene")
        assert irene.user_id not in came["body"]

        # Words both ways, each decrypted on the other side.
        hello = words("Hei, jeg heter Irene")
        await irene.send_text(vroom, hello)
        got = await assert_from_bot(chatter, room, bot_id)
        assert got["body"] == hello
        assert got["msgtype"] == "m.text"
        thanks = words("Takk, det hjelper")
        await chatter.send_text(room, thanks)
        got = await assert_from_bot(irene, vroom, bot_id)
        assert got["body"] == thanks
        assert got["msgtype"] == "m.text"

        # The chatter ends it; both sides read their closing words.
        await chatter.send_text(room, "!slutt")
        await assert_from_bot(chatter, room, bot_id, contains="113")
        ended = await assert_from_bot(irene, vroom, bot_id)
        assert ended["msgtype"] == "m.notice"
        await chatter.leave(dm)

        # Nothing either js client received was unreadable.
        for c in (irene, chatter):
            assert not c.undecryptable(), c.undecryptable()
    finally:
        if bot.task is not None and not bot.task.done():
            assert await bot.stop() == 0


async def assert_from_bot(
    reader: JsClient, room: str, bot_id: str, *, contains: str | None = None
) -> dict[str, Any]:
    """The next message from the bot in `room` (containing `contains`), decrypted."""
    msg = await reader.wait_for_message(
        room_id=room, sender=bot_id, contains=contains, timeout=STEP
    )
    assert msg["encrypted"], f"{msg['event_id']} arrived unencrypted"
    # Element would show no shield on it: not grey ("unverified device"), not red.
    assert msg["shield"] == NO_WARNING, msg
    return msg
