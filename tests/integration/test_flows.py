"""The conversation flows of product.md steps 1-7, as chatters and volunteers meet them.

Real Synapse, real E2EE clients, the bot in-process; every assertion is on what a person's
client decrypted (or, for what must be gone, on the server's own record via the admin
API). Durations are seconds, not minutes, so that each flow finishes quickly.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from nio import RedactionEvent, RoomPreset, RoomVisibility

from bot.devtools.client import MEGOLM_ALGORITHM
from bot.devtools.seen import TestClientError
from bot.devtools.users import admin_request, q, room_messages_admin
from tests.integration.world import (
    TIMEOUT,
    LeaveWatcher,
    accept_offer,
    assert_logs_clean,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
)
from tests.integration.world import open_conversation as conversation

pytestmark = pytest.mark.timeout(60)


def words(text: str) -> str:
    """A sentence made unique, so that finding it anywhere can only mean this test."""
    return f"{text} {secrets.token_hex(4)}"


# --------------------------------------------------------------------------------------
# 1. intake from a lobby room


async def test_lobby_intake_redacts_at_once_and_moves_chatter_to_private_room(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, open_world: Any
) -> None:
    bot_user = await make_user("bot")
    bystander = await make_client("bystander")
    # A public lobby, encrypted like every room in the flows; the bot may redact there.
    resp = await bystander.client.room_create(
        visibility=RoomVisibility.private,
        preset=RoomPreset.public_chat,
        name="Snakk med oss",
        invite=[bot_user.user_id],
        initial_state=[
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": MEGOLM_ALGORITHM},
            }
        ],
        power_level_override={"users": {bot_user.user_id: 50}},
    )
    lobby = resp.room_id
    await bystander.wait_for_room(lobby, encrypted=True)
    redactions: dict[str, RedactionEvent] = {}

    async def on_redaction(room: Any, event: RedactionEvent) -> None:
        if room.room_id == lobby:
            redactions[event.redacts] = event

    bystander.client.add_event_callback(on_redaction, RedactionEvent)

    w = await open_world(bot_user=bot_user, lobby_rooms=(lobby,))
    v = w.volunteers[0]
    await go_on_duty(w, v)
    await bystander.wait_for_join(lobby, w.bot_id, timeout=TIMEOUT)

    chatter_user = await make_user("chatter")
    chatter = await make_client(chatter_user)
    await chatter.join(lobby)
    await chatter.wait_for_room(lobby, encrypted=True)
    await bystander.wait_for_join(lobby, chatter.user_id, timeout=TIMEOUT)
    text = words("Jeg orker ikke mer, kan noen snakke med meg?")
    event_id = await chatter.send_text(lobby, text)

    # The bot redacts it at once: the bystander's client is told to drop it...
    redaction = await bystander.wait_until(lambda: redactions.get(event_id), TIMEOUT, "redaction")
    assert redaction.sender == w.bot_id
    # ...and the server keeps nothing of it: no ciphertext left to decrypt, ever.
    server = await room_messages_admin(synapse.base_url, admin.access_token, lobby, limit=100)
    stored = next(e for e in server["chunk"] if e["event_id"] == event_id)
    assert stored["content"] == {}
    assert "redacted_because" in stored.get("unsigned", {})
    # A member reading the lobby now (a new device, say) gets the redacted event only.
    _, seen = await admin_request(
        synapse.base_url,
        bystander.access_token,
        "GET",
        f"/_matrix/client/v3/rooms/{q(lobby)}/event/{q(event_id)}",
    )
    assert seen["content"] == {}
    assert text not in str(seen)

    # The chatter is invited to a fresh private, encrypted room and welcomed there.
    invite = await chatter.wait_for_invite(timeout=TIMEOUT)
    assert invite.room_id != lobby
    assert invite.sender == w.bot_id
    await chatter.join(invite.room_id)
    welcome = await next_from_bot(w, chatter, invite.room_id)
    assert welcome.msgtype == "m.notice"
    assert "113" in welcome.body
    assert "116 111" in welcome.body
    _, details = await admin_request(
        synapse.base_url, admin.access_token, "GET", f"/_synapse/admin/v1/rooms/{q(invite.room_id)}"
    )
    assert details["encryption"] == MEGOLM_ALGORITHM
    assert details["join_rules"] == "invite"
    assert details["public"] is False
    assert details["history_visibility"] == "joined"
    assert details["federatable"] is False  # a chatter of this server: the room stays here
    assert set(chatter.client.rooms[invite.room_id].users) == {chatter.user_id, w.bot_id}

    # The words reach the volunteer, and only the volunteer, under the pseudonym.
    vroom, intro = await accept_offer(w, v)
    held = await next_from_bot(w, v.client, vroom)
    assert held.body == text
    assert chatter.user_id not in intro.body

    # The bot said nothing in the lobby: the server holds no message of its there.
    server = await room_messages_admin(synapse.base_url, admin.access_token, lobby, limit=100)
    from_bot = [e["type"] for e in server["chunk"] if e["sender"] == w.bot_id]
    assert set(from_bot) <= {"m.room.member", "m.room.redaction"}
    assert not [m for m in bystander.messages if m.room_id == lobby and m.sender == w.bot_id]
    assert_logs_clean(w, text, chatter.user_id)


# --------------------------------------------------------------------------------------
# 2. an offer lapses and goes to the next volunteer


async def test_offer_timeout_withdraws_and_offers_next_volunteer(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(
        aliases=("Irene", "Jonas"),
        routing={"strategy": "longest_idle", "offer_timeout": "3s", "lapses_before_off_duty": 1},
    )
    irene, jonas = w.volunteers
    irene_leaves = LeaveWatcher(irene.client)
    await go_on_duty(w, irene)  # on duty longest: the first offer is hers
    await go_on_duty(w, jonas)
    text = words("Hei, er det noen der?")
    chatter = await chatter_by_dm(w, make_user, make_client, text)

    # Irene gets the offer and ignores it.
    offer = await irene.client.wait_for_invite(timeout=TIMEOUT)
    assert offer.sender == w.bot_id
    offered_at = time.monotonic()

    # After the timeout the invite is withdrawn: her client sees herself removed.
    removed = await irene_leaves.wait_removed(offer.room_id)
    assert removed.sender == w.bot_id
    assert removed.membership == "leave"
    assert time.monotonic() - offered_at > 2  # not before the timeout (3 s)

    # Jonas gets the next offer; accepting it starts the conversation.
    vroom, intro = await accept_offer(w, jonas)
    assert vroom != offer.room_id
    assert chatter.user.user_id not in intro.body
    held = await next_from_bot(w, jonas.client, vroom)
    assert held.body == text
    joined = await next_from_bot(w, chatter.client, chatter.room)
    assert "Jonas" in joined.body
    assert "Irene" not in joined.body

    # Irene is set off duty, and the volunteers' room is told, with no chatter ID.
    lapsed = await next_from_bot(
        w, jonas.client, w.staff_room, lambda m: "Irene" in m.body and "av vakt" in m.body
    )
    assert lapsed.msgtype == "m.notice"
    assert "1" in lapsed.body
    assert chatter.user.user_id not in lapsed.body
    staff_view = [m for m in jonas.client.messages if m.room_id == w.staff_room]
    assert all(chatter.user.user_id not in (m.body or "") for m in staff_view)
    await jonas.client.send_text(w.staff_room, "!status")
    status = await next_from_bot(w, jonas.client, w.staff_room, lambda m: "Status" in m.body)
    assert "1 på vakt" in status.body
    assert "1 samtaler pågår" in status.body
    assert len(irene.client.invites) == 1  # no second offer to someone off duty
    assert_logs_clean(w, text, chatter.user.user_id)


# --------------------------------------------------------------------------------------
# 3. the volunteer leaves in the middle of a conversation


async def test_volunteer_leaving_requeues_chatter_first_and_next_volunteer_takes_over(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(aliases=("Irene", "Jonas"))
    irene, jonas = w.volunteers
    # Jonas is the only one on duty when the chatter comes; Irene comes on duty later.
    await go_on_duty(w, jonas)
    first = words("Jeg trenger noen å snakke med")
    chatter = await chatter_by_dm(w, make_user, make_client, first)
    vroom, _ = await accept_offer(w, jonas)
    assert (await next_from_bot(w, jonas.client, vroom)).body == first
    await next_from_bot(w, chatter.client, chatter.room, lambda m: "Jonas" in m.body)
    await go_on_duty(w, irene)
    hello = words("Hei, jeg heter Jonas")
    await jonas.client.send_text(vroom, hello)
    assert (await next_from_bot(w, chatter.client, chatter.room)).body == hello

    # Jonas leaves the room mid-conversation.
    await jonas.client.client.room_leave(vroom)

    # The chatter is told kindly, and is first in the queue again.
    told = await next_from_bot(w, chatter.client, chatter.room)
    assert told.msgtype == "m.notice"
    assert "først i køen" in told.body
    assert "Jonas" not in told.body
    assert jonas.user.user_id not in told.body
    staff = await next_from_bot(w, irene.client, w.staff_room, lambda m: "Tilbake i kø" in m.body)
    assert chatter.user.user_id not in staff.body
    meanwhile = words("Hallo? Hvor ble du av?")
    await chatter.client.send_text(chatter.room, meanwhile)
    kept = await next_from_bot(w, chatter.client, chatter.room)
    assert kept.msgtype == "m.notice"
    assert "tar vare på" in kept.body

    # Irene gets the offer, told that the chatter was requeued; what the chatter wrote
    # while waiting reaches her, and the conversation goes on with her.
    room2, intro = await accept_offer(w, irene)
    assert room2 != vroom
    assert "annen frivillig" in intro.body
    assert chatter.user.user_id not in intro.body
    assert (await next_from_bot(w, irene.client, room2)).body == meanwhile
    came = await next_from_bot(w, chatter.client, chatter.room)
    assert came.msgtype == "m.notice"
    assert "Irene" in came.body
    later = words("Takk for at du er her")
    await chatter.client.send_text(chatter.room, later)
    got = await next_from_bot(w, irene.client, room2)
    assert got.body == later
    assert got.msgtype == "m.text"
    reply = words("Jeg er her nå. Fortell.")
    await irene.client.send_text(room2, reply)
    assert (await next_from_bot(w, chatter.client, chatter.room)).body == reply
    # Nothing more went to the room Jonas left. His client cannot tell (he is no longer
    # in it): the server can. The reply came through the same conversation after
    # "later", in order, so a copy of "later" sent there would be on the server by now.
    status, listing = await admin_request(
        synapse.base_url,
        admin.access_token,
        "GET",
        f"/_synapse/admin/v1/rooms/{q(vroom)}/messages",
        params={"dir": "b", "limit": "100"},
        expect=(200, 404),
    )
    if status == 200:  # not purged yet
        newest_first = listing["chunk"]
        left = next(
            i
            for i, e in enumerate(newest_first)
            if e["type"] == "m.room.member"
            and e.get("state_key") == jonas.user.user_id
            and e["content"].get("membership") == "leave"
        )
        sent_after = [
            e
            for e in newest_first[:left]
            if e["sender"] == w.bot_id and e["type"] == "m.room.encrypted"
        ]
        assert not sent_after, f"{len(sent_after)} message(s) sent after the volunteer left"
    assert_logs_clean(w, first, hello, meanwhile, later, reply, chatter.user.user_id)


# --------------------------------------------------------------------------------------
# 4. time limits


async def test_time_limit_warns_both_sides_then_ends_with_closing_messages(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(limits={"max_duration": "12s", "warn_before": ["6s"]})
    v = w.volunteers[0]
    chatter, vroom = await conversation(w, make_user, make_client, words("Hei"))
    started = time.monotonic()

    warn_c = await next_from_bot(w, chatter.client, chatter.room)
    assert warn_c.msgtype == "m.notice"
    assert "igjen av samtalen" in warn_c.body
    warn_v = await next_from_bot(w, v.client, vroom)
    assert warn_v.msgtype == "m.notice"
    assert "!forleng" in warn_v.body
    assert warn_c.received_at - started > 4  # at about 6 s, not at once

    end_c = await next_from_bot(w, chatter.client, chatter.room)
    assert "Tiden for samtalen er ute" in end_c.body
    assert "113" in end_c.body
    end_v = await next_from_bot(w, v.client, vroom)
    assert "Tiden er ute" in end_v.body
    assert "!tema" in end_v.body
    assert end_c.received_at - started > 9  # at about 12 s


async def test_extension_is_acknowledged_and_postpones_the_end(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(
        limits={"max_duration": "8s", "warn_before": ["4s"], "max_extension": "1m"}
    )
    v = w.volunteers[0]
    chatter, vroom = await conversation(w, make_user, make_client, words("Hei"))
    started = time.monotonic()

    await v.client.send_text(vroom, "!forleng 1")
    done = await next_from_bot(w, v.client, vroom)
    assert done.msgtype == "m.notice"
    assert "Forlenget med 1 min" in done.body
    told = await next_from_bot(w, chatter.client, chatter.room)
    assert "forlenget med 1 minutter" in told.body
    await v.client.send_text(vroom, "!extend")  # the cap (1 min) is used up
    none_left = await next_from_bot(w, v.client, vroom)
    assert "kan ikke forlenges mer" in none_left.body

    # Past the first deadline (8 s): words still go through, and each side's next message
    # from the bot is the answer it asked for, not a warning or a closing text. The pause
    # is the time the test is about (the old deadline passing), not a wait for the bot;
    # a stale timer that fired at any point would still show, as a message from the bot
    # before the one each side asked for.
    await asyncio.sleep(max(0.0, 10 - (time.monotonic() - started)))
    still = words("Er du fortsatt der?")
    await chatter.client.send_text(chatter.room, still)
    assert (await next_from_bot(w, v.client, vroom)).body == still
    await v.client.send_text(vroom, "!tid")
    clock = await next_from_bot(w, v.client, vroom)
    assert "Det er 1 min igjen" in clock.body

    await v.client.send_text(vroom, "!slutt")
    end_c = await next_from_bot(w, chatter.client, chatter.room)
    assert "Samtalen er avsluttet" in end_c.body
    assert "113" in end_c.body
    end_v = await next_from_bot(w, v.client, vroom)
    assert "avsluttet" in end_v.body


# --------------------------------------------------------------------------------------
# 5. media is refused, kindly


async def test_media_is_refused_kindly_and_never_relayed(
    make_user: Any, make_client: Any, open_world: Any, tmp_path: Path
) -> None:
    w = await open_world()
    v = w.volunteers[0]
    chatter, vroom = await conversation(w, make_user, make_client, words("Hei"))

    # An image with a plain url (bridges and some clients send these even in E2EE rooms),
    # then one as Element sends it in an encrypted room: an encrypted attachment.
    images = [
        {"url": "mxc://localhost/fake", "info": {"mimetype": "image/jpeg"}},
        {
            "file": {
                "url": "mxc://localhost/fake-encrypted",
                "key": {"kty": "oct", "alg": "A256CTR", "k": "a" * 43, "ext": True},
                "iv": "AAAAAAAAAAAAAAAAAAAAAA",
                "hashes": {"sha256": "b" * 43},
                "v": "v2",
            },
            "info": {"mimetype": "image/png"},
        },
    ]
    for extra in images:
        await chatter.client.send_text(
            chatter.room, "bilde.jpg", msgtype="m.image", extra_content=extra
        )
        refused = await next_from_bot(w, chatter.client, chatter.room)
        assert refused.msgtype == "m.notice"
        assert "bare tekst" in refused.body
    after = words("Ok, jeg skriver det heller")
    await chatter.client.send_text(chatter.room, after)
    # The volunteer's next message from the bot is the text: nothing came for the images.
    got = await next_from_bot(w, v.client, vroom)
    assert got.body == after
    assert got.msgtype == "m.text"
    relayed = [m for m in v.client.messages if m.room_id == vroom and m.sender == w.bot_id]
    assert not [m for m in relayed if m.msgtype == "m.image" or "mxc://" in str(m.content)]

    # The same the other way.
    await v.client.send_text(
        vroom, "svar.png", msgtype="m.image", extra_content={"url": "mxc://localhost/fake2"}
    )
    refused = await next_from_bot(w, v.client, vroom)
    assert refused.msgtype == "m.notice"
    assert "bare tekst" in refused.body
    answer = words("Det går fint")
    await v.client.send_text(vroom, answer)
    got = await next_from_bot(w, chatter.client, chatter.room)
    assert got.body == answer
    relayed = [m for m in chatter.client.messages if m.sender == w.bot_id]
    assert not [m for m in relayed if m.msgtype == "m.image" or "mxc://" in str(m.content)]

    # Every mxc the conversation carried is noted, so that the purge can delete it.
    with sqlite3.connect(tmp_path / "data" / "helpline.db") as db:
        seen = {mxc for (mxc,) in db.execute("SELECT mxc FROM media_seen")}
    assert seen == {
        "mxc://localhost/fake",
        "mxc://localhost/fake-encrypted",
        "mxc://localhost/fake2",
    }


# --------------------------------------------------------------------------------------
# 6. an oversized body


async def test_oversized_body_is_refused_and_the_loop_survives(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world()
    v = w.volunteers[0]
    chatter, vroom = await conversation(w, make_user, make_client, words("Hei"))

    # 60 KB of text cannot even be sent encrypted: the ciphertext is a third larger, over
    # the 64 KiB a homeserver accepts for an event. Nothing of it reaches the bot.
    with pytest.raises(TestClientError, match="M_TOO_LARGE"):
        await chatter.client.send_text(chatter.room, "x" * 60_000)
    # The largest body that does go through encrypted is still far over the limit (4000).
    big = "y" * 45_000
    await chatter.client.send_text(chatter.room, big)
    refused = await next_from_bot(w, chatter.client, chatter.room)
    assert refused.msgtype == "m.notice"
    assert "45000 tegn" in refused.body
    assert "grensen er 4000" in refused.body
    after = words("Kortere nå")
    await chatter.client.send_text(chatter.room, after)
    got = await next_from_bot(w, v.client, vroom)
    assert got.body == after  # the loop survived, and the big one was never passed on

    # The same for the volunteer.
    await v.client.send_text(vroom, "z" * 45_000)
    refused = await next_from_bot(w, v.client, vroom)
    assert refused.msgtype == "m.notice"
    assert "45000 tegn" in refused.body
    answer = words("Jeg leste det")
    await v.client.send_text(vroom, answer)
    assert (await next_from_bot(w, chatter.client, chatter.room)).body == answer
    too_big = [m for m in (*v.client.messages, *chatter.client.messages) if m.sender == w.bot_id]
    assert all(len(m.body or "") <= 4000 for m in too_big)
