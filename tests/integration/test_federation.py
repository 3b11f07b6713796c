"""Chatters from another homeserver, against two real Synapses federating over TLS.

The helpline (the bot, the volunteers) lives on one server; the chatter has an account on
the other. A chatter from elsewhere writes to the bot, joins the conversation room it
makes for them (which federates; the volunteer's stays on the helpline's server), talks
with a volunteer both ways, end to end encrypted with cross-signed devices, and the
conversation ends and is purged: everything the helpline's server held is gone, and the
chatter's server was told to drop every message (the redactions federate) and holds no
member of the room any more. It still knows the room itself: nothing the helpline does
deletes another server's copy, which is why the purge counts such a conversation apart.

These tests ask for the `federation` fixture, which starts the two servers once per
session, only when one of them runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nio import Event, RoomGetStateResponse, RoomMessagesResponse, RoomPreset, RoomVisibility

from bot.core.events import Purge
from bot.core.ids import RoomID, SessionID, UserID
from bot.core.model import Changes
from bot.devtools.client import MEGOLM_ALGORITHM
from bot.devtools.synapse import SynapseServer
from bot.devtools.users import admin_request, q, room_messages_admin
from bot.matrix.purge import Purger
from bot.outcomes import Transient
from bot.storage import Storage
from tests.integration.conftest import ClientMaker, Federation, Homeserver
from tests.integration.test_purge import (
    FakeClient,
    Side,
    data_dir,
    leaks,
    query,
    room_gone,
    words,
)
from tests.integration.waits import wait_until
from tests.integration.world import (
    TIMEOUT,
    Chatter,
    Volunteer,
    World,
    accept_offer,
    assert_logs_clean,
    build_world,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
    open_conversation,
)
from tests.storage.conftest import T0, make_session

pytestmark = pytest.mark.timeout(120)

PURGE_TIMEOUT = 40.0


# --------------------------------------------------------------------------------------
# the two servers


def _handshake(port: int, context: ssl.SSLContext) -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1"),
    ):
        pass


def federation_port(server: SynapseServer) -> int:
    return int(server.server_name.rpartition(":")[2])


async def test_the_two_servers_federate_over_tls_that_only_the_test_ca_vouches_for(
    federation: Federation,
) -> None:
    for home in (federation.helpline, federation.remote):
        cfg = home.synapse.config()
        assert cfg["federation_verify_certificates"] is True
        assert sorted(cfg["federation_domain_whitelist"]) == sorted(
            [federation.helpline.name, federation.remote.name]
        )
        [ca] = cfg["federation_custom_ca_list"]
        port = federation_port(home.synapse)
        trusting = ssl.create_default_context(cafile=ca)
        await asyncio.to_thread(_handshake, port, trusting)  # the certificate is for 127.0.0.1
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(_handshake, port, ssl.create_default_context())
    assert federation.helpline.name != federation.remote.name


# --------------------------------------------------------------------------------------
# a helpline on one server, a chatter on the other

OpenWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def helpline(
    federation: Federation, remote_clients: tuple[ClientMaker, ClientMaker], tmp_path: Path
) -> AsyncIterator[OpenWorld]:
    """`await helpline(**config sections)`: the bot and its volunteers on the helpline's
    server, purging with that server's admin token."""
    worlds: list[World] = []
    home = federation.helpline

    async def _open(**sections: Any) -> World:
        sections.setdefault("privacy", {}).setdefault("purge_after", "0s")
        w = await build_world(
            home.synapse,
            home.make_user,
            remote_clients[0],
            tmp_path,
            admin_token=home.admin.access_token,
            **sections,
        )
        worlds.append(w)
        return w

    yield _open
    for w in worlds:
        await w.close()


async def room_details(home: Homeserver, room: str) -> dict[str, Any]:
    _, details = await admin_request(
        home.synapse.base_url,
        home.admin.access_token,
        "GET",
        f"/_synapse/admin/v1/rooms/{q(room)}",
    )
    return dict(details)


async def talk(w: World, chatter: Chatter, vroom: str) -> list[str]:
    """Words both ways; each side reads what the other wrote, decrypted."""
    v = w.volunteers[0]
    said = []
    for who, room, text in [
        (v.client, vroom, words("Jeg er her. Fortell meg mer")),
        (chatter.client, chatter.room, words("Jeg bor langt unna, men trengte noen")),
        (v.client, vroom, words("Godt at du skrev")),
    ]:
        await who.send_text(room, text)
        other, other_room = (chatter.client, chatter.room) if who is v.client else (v.client, vroom)
        got = await next_from_bot(w, other, other_room)
        assert got.body == text
        said.append(text)
    return said


async def assert_purged_across(
    w: World,
    federation: Federation,
    chatter: Chatter,
    cside: Side,
    vroom: str,
    said: list[str],
) -> None:
    """What the purge reaches on each server, and what the statistics say of it."""
    helpline, remote = federation.helpline, federation.remote
    rooms = [chatter.room, vroom]

    async def gone_here() -> bool:
        gone = [await room_gone(helpline.synapse, helpline.admin, r) for r in rooms]
        return all(gone) and not leaks(data_dir(w), [*said, *rooms])

    await wait_until(gone_here, PURGE_TIMEOUT, "the purge on the helpline's server")

    # The chatter's app was told to drop every message, then removed from the room.
    await cside.leaves.wait_removed(chatter.room)
    assert cside.redactions.seen_events(chatter.room), "the chatter saw no messages at all"
    assert not cside.redactions.unredacted(chatter.room)

    # The chatter's server still knows the room (nobody can delete another server's
    # copy), but holds no member of it and no message content.
    details = await room_details(remote, chatter.room)
    assert details["joined_local_members"] == 0
    server = await room_messages_admin(
        remote.synapse.base_url, remote.admin.access_token, chatter.room, limit=200
    )
    messages = [e for e in server["chunk"] if "state_key" not in e]
    assert [e for e in messages if e["type"] == "m.room.encrypted"], "no messages to check"
    assert not [e["event_id"] for e in messages if e["type"] != "m.room.redaction" and e["content"]]

    assert_logs_clean(w, *said, chatter.client.user_id, *rooms)
    assert await w.bot.stop() == 0
    assert not leaks(data_dir(w), [*said, chatter.client.user_id, *rooms])
    # Counted apart: the helpline's side is verified, the other server's copy cannot be.
    assert query(data_dir(w), "SELECT outcome, purge_result FROM stats") == [
        ("completed", "verified_local_only")
    ]


async def test_a_chatter_on_another_server_talks_with_a_volunteer_and_is_purged(
    federation: Federation,
    remote_clients: tuple[ClientMaker, ClientMaker],
    helpline: OpenWorld,
) -> None:
    w = await helpline()
    remote_maker = remote_clients[1]
    first = words("Hei, jeg skriver fra skolen sin server")
    chatter, vroom = await open_conversation(w, federation.remote.make_user, remote_maker, first)
    assert chatter.client.user_id.endswith(":" + federation.remote.name)
    cside = Side(chatter.client)

    # The chatter's room federates (their server joined it); the volunteer's stays here.
    assert (await room_details(federation.helpline, chatter.room))["federatable"] is True
    assert (await room_details(federation.helpline, vroom))["federatable"] is False
    assert (await room_details(federation.remote, chatter.room))["joined_local_members"] == 1

    said = [first, *await talk(w, chatter, vroom)]
    await chatter.client.send_text(chatter.room, "!slutt")
    await assert_purged_across(w, federation, chatter, cside, vroom, said)


async def test_a_chatter_from_another_server_comes_in_through_the_helplines_lobby(
    federation: Federation,
    remote_clients: tuple[ClientMaker, ClientMaker],
    helpline: OpenWorld,
) -> None:
    local_maker, remote_maker = remote_clients
    home = federation.helpline
    bot_user = await home.make_user("bot")
    owner = await local_maker("lobbyowner")
    localpart = f"snakk-{secrets.token_hex(3)}"
    resp = await owner.client.room_create(
        visibility=RoomVisibility.private,
        preset=RoomPreset.public_chat,
        name="Snakk med oss",
        alias=localpart,
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
    await owner.wait_for_room(lobby, encrypted=True)
    w = await helpline(bot_user=bot_user, lobby_rooms=(lobby,))
    v = w.volunteers[0]
    await go_on_duty(w, v)
    await owner.wait_for_join(lobby, w.bot_id, timeout=TIMEOUT)

    user = await federation.remote.make_user("chatter")
    client = await remote_maker(user)
    # Someone from elsewhere finds the lobby by its address, which names the server.
    await client.join(f"#{localpart}:{home.name}")
    await client.wait_for_room(lobby, encrypted=True)
    await owner.wait_for_join(lobby, client.user_id, timeout=TIMEOUT)
    first = words("Kan noen snakke med meg?")
    event_id = await client.send_text(lobby, first)

    invite = await client.wait_for_invite(timeout=TIMEOUT)
    assert invite.sender == w.bot_id
    assert invite.room_id != lobby
    await client.join(invite.room_id)
    welcome = await next_from_bot(w, client, invite.room_id)
    assert "113" in (welcome.body or "")
    # The words left the lobby at once, on both servers' copies of it.
    stored = await room_messages_admin(home.synapse.base_url, home.admin.access_token, lobby)
    assert next(e for e in stored["chunk"] if e["event_id"] == event_id)["content"] == {}

    chatter = Chatter(user, client, invite.room_id, welcome)
    cside = Side(client)
    vroom, intro = await accept_offer(w, v)
    assert (await next_from_bot(w, v.client, vroom)).body == first
    assert client.user_id not in (intro.body or "")
    assert re.search(r"#\d+", intro.body or "")
    assert v.alias in (await next_from_bot(w, client, chatter.room)).body

    said = [first, *await talk(w, chatter, vroom)]
    await client.send_text(chatter.room, "!slutt")
    await assert_purged_across(w, federation, chatter, cside, vroom, said)


async def test_a_line_for_its_own_server_answers_a_dm_from_elsewhere_once_and_opens_nothing(
    federation: Federation,
    remote_clients: tuple[ClientMaker, ClientMaker],
    helpline: OpenWorld,
) -> None:
    """`intake.allowed_servers` lists only the helpline's server: a chatter from the other
    server who invites the bot to a DM reads, in the rejection, whom the line serves and
    the emergency numbers. No conversation, nothing kept, never silence."""
    home = federation.helpline
    w = await helpline(intake={"allowed_servers": [home.name]})
    client = await remote_clients[1](await federation.remote.make_user("elsewhere"))
    dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)

    async def rejected_with_a_reason() -> str | None:
        state = await client.client.room_get_state(dm)
        if not isinstance(state, RoomGetStateResponse):
            return None
        for event in state.events:
            if event.get("type") == "m.room.member" and event.get("state_key") == w.bot_id:
                content = event.get("content", {})
                if content.get("membership") == "leave":
                    return str(content.get("reason", ""))
        return None

    reason = await wait_until(rejected_with_a_reason, TIMEOUT, "the bot's rejection")
    assert home.name in reason
    assert "113" in reason
    assert "tar bare imot samtaler fra kontoer på" in reason
    with pytest.raises(TimeoutError):
        await client.wait_for_invite(timeout=3)
    assert_logs_clean(w, client.user_id, dm)


async def test_a_server_that_stops_answering_holds_up_nobody_else(
    federation: Federation,
    remote_clients: tuple[ClientMaker, ClientMaker],
    tmp_path: Path,
) -> None:
    """A volunteer's account is on the other server, which stops answering (SIGSTOP):
    the room the bot makes for her waits on that server in its own lane, while the next
    chatter is offered to a volunteer here, talks and is answered as usual."""
    home, remote = federation.helpline, federation.remote
    local_maker, remote_maker = remote_clients
    ruth_user = await remote.make_user("ruth")
    ruth = Volunteer("Ruth", ruth_user, await remote_maker(ruth_user))
    w = await build_world(
        home.synapse,
        home.make_user,
        local_maker,
        tmp_path,
        admin_token=home.admin.access_token,
        guests=(ruth,),
    )
    irene = w.volunteers[0]
    pid = remote.synapse.pid
    assert pid is not None
    try:
        await go_on_duty(w, ruth)  # over federation, while her server answers
        os.kill(pid, signal.SIGSTOP)
        first = await chatter_by_dm(w, home.make_user, local_maker, words("Er det noen der?"))
        # The offer goes to Ruth: the bot's room for her waits on her server.
        await asyncio.sleep(2)
        await go_on_duty(w, irene)
        second = await chatter_by_dm(w, home.make_user, local_maker, words("Hallo?"))
        started = asyncio.get_running_loop().time()
        vroom, intro = await accept_offer(w, irene)
        served = second if "#" in (intro.body or "") else first
        came = await next_from_bot(
            w, served.client, served.room, lambda m: "Irene" in (m.body or "")
        )
        assert came.msgtype == "m.notice"
        await served.client.send_text(served.room, "takk")
        assert (await next_from_bot(w, irene.client, vroom, lambda m: m.body == "takk")).body
        waited = asyncio.get_running_loop().time() - started
        assert waited < TIMEOUT, waited
    finally:
        os.kill(pid, signal.SIGCONT)
        await w.close()


# --------------------------------------------------------------------------------------
# what the purge checks before the bot leaves a room another server took part in

BOT = "@bot:helpline.test"
REMOTE_CHATTER = UserID("@ola:school.test")


class ServerView(FakeClient):
    """The helpline's server as the purge reads it: the rooms' messages and members."""

    def __init__(self, members: dict[str, str], unredacted: int = 0) -> None:
        super().__init__()
        self.user_id = BOT
        self.members = members
        self.unredacted = unredacted

    async def room_messages(self, room: str, start: str | None = None, limit: int = 10) -> Any:
        self.calls.append("messages")
        chunk = [
            Event.parse_event(
                {
                    "event_id": f"$e{i}",
                    "sender": REMOTE_CHATTER,
                    "origin_server_ts": 1,
                    "type": "m.room.message",
                    "content": {"msgtype": "m.text", "body": "x"},
                }
            )
            for i in range(self.unredacted)
        ]
        return RoomMessagesResponse(room, chunk, "t0", None)

    async def room_get_state(self, room: str) -> Any:
        self.calls.append("get_state")
        events = [
            {"type": "m.room.member", "state_key": user, "content": {"membership": membership}}
            for user, membership in {BOT: "join", **self.members}.items()
        ]
        return RoomGetStateResponse(events, room)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await Storage.open(tmp_path / "bot.db")
    yield store
    await store.close()


def purger_for(client: FakeClient, storage: Storage) -> Purger:
    return Purger(
        client,  # type: ignore[arg-type]
        jobs=storage.purges,
        media=storage.media,
        homeserver="http://127.0.0.1:9",
        admin_token=None,
        clock=lambda: T0,
        pause_after="",
    )


async def purge_of(storage: Storage, *, federated: bool) -> Purge:
    sid = SessionID(7)
    await storage.state.apply(Changes(sessions={sid: make_session(7)}), now=T0)
    return Purge(sid, (RoomID("!r:helpline.test"),), (REMOTE_CHATTER,), federated=federated)


async def test_someone_still_in_a_shared_room_is_kicked_again_before_the_bot_leaves(
    storage: Storage,
) -> None:
    effect = await purge_of(storage, federated=True)
    server = ServerView({REMOTE_CHATTER: "join"})  # the first kick did not take
    with pytest.raises(Transient):
        await purger_for(server, storage)(effect)
    assert "leave" not in server.calls  # the bot stays, to see the room as it is
    assert server.calls[-2:] == ["get_state", "kick"]
    job = await storage.purges.get(effect.session_id)
    assert job is not None
    assert job.step == "kick"  # the leave step is tried again, from its redaction sweep

    server = ServerView({REMOTE_CHATTER: "leave"})
    assert await purger_for(server, storage)(effect) == "verified_without_admin"
    assert server.calls.index("get_state") < server.calls.index("leave")


async def test_an_unredacted_event_in_a_shared_room_keeps_the_bot_in_it(
    storage: Storage,
) -> None:
    effect = await purge_of(storage, federated=True)
    server = ServerView({REMOTE_CHATTER: "leave"}, unredacted=1)  # redactions refused
    with pytest.raises(Transient):
        await purger_for(server, storage)(effect)
    assert "leave" not in server.calls
    assert "get_state" not in server.calls


async def test_a_room_no_other_server_took_part_in_is_left_without_that_check(
    storage: Storage,
) -> None:
    effect = await purge_of(storage, federated=False)
    server = ServerView({REMOTE_CHATTER: "join"})
    assert await purger_for(server, storage)(effect) == "verified_without_admin"
    assert "get_state" not in server.calls
