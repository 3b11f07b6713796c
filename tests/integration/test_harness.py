"""Proof that the harness works: real Synapse, real E2EE both ways, admin ground truth."""

from __future__ import annotations

import json
import secrets
import time

from bot.devtools.client import MEGOLM_ALGORITHM, TestClient
from bot.devtools.synapse import SynapseServer
from bot.devtools.users import (
    RegisteredUser,
    admin_request,
    get_user_admin_info,
    q,
    room_messages_admin,
    whoami,
)


async def _pair_in_encrypted_room(make_client) -> tuple[TestClient, TestClient, str]:
    alice = await make_client("alice")
    bob = await make_client("bob")
    room_id = await alice.create_encrypted_room(invite=[bob.user_id], name="harness proof")
    invite = await bob.wait_for_invite(room_id=room_id)
    assert invite.sender == alice.user_id
    room = await bob.join(room_id)
    assert room.encrypted
    await alice.wait_for_join(room_id, bob.user_id)
    return alice, bob, room_id


async def test_encrypted_messages_both_ways_and_server_holds_only_ciphertext(
    make_client, synapse: SynapseServer, admin: RegisteredUser
) -> None:
    alice, bob, room_id = await _pair_in_encrypted_room(make_client)

    # Unique strings, so finding one anywhere on the server can only mean a leak.
    plaintexts: dict[str, str] = {}  # event_id -> body
    exchange = [(alice, bob), (bob, alice), (alice, bob), (bob, alice)]
    for i, (sender, receiver) in enumerate(exchange):
        body = f"secret {i} from {sender.user_id} {secrets.token_hex(8)}"
        started = time.monotonic()
        event_id = await sender.send_text(room_id, body)
        got = await receiver.wait_for_message(room_id=room_id, sender=sender.user_id)
        print(f"message {i}: delivered in {(got.received_at - started) * 1000:.0f} ms")
        # What the other side decrypted, not what we meant to send.
        assert got.body == body
        assert got.event_id == event_id
        assert got.msgtype == "m.text"
        assert got.decrypted, "arrived unencrypted"
        plaintexts[event_id] = body
    assert not alice.undecryptable
    assert not bob.undecryptable

    # Ground truth from the server: only ciphertext for those events.
    server_view = await room_messages_admin(synapse.base_url, admin.access_token, room_id)
    by_id = {ev["event_id"]: ev for ev in server_view["chunk"]}
    for event_id in plaintexts:
        event = by_id[event_id]
        assert event["type"] == "m.room.encrypted"
        assert event["content"]["algorithm"] == MEGOLM_ALGORITHM
        assert event["content"]["ciphertext"]
    assert not [ev for ev in server_view["chunk"] if ev["type"] == "m.room.message"]
    raw = json.dumps(server_view, ensure_ascii=False)
    for body in plaintexts.values():
        assert body not in raw


async def test_register_helper_sets_admin_flag(
    synapse: SynapseServer, admin: RegisteredUser, make_user
) -> None:
    base = synapse.base_url
    assert (await whoami(base, admin.access_token))["user_id"] == admin.user_id
    assert (await get_user_admin_info(base, admin.access_token, admin.user_id))["admin"]

    plain = await make_user("plain")
    boss = await make_user("boss", admin=True)
    assert plain.user_id.startswith("@plain-")
    assert plain.user_id.endswith(":localhost")
    assert (await whoami(base, plain.access_token))["user_id"] == plain.user_id
    assert (await whoami(base, boss.access_token))["user_id"] == boss.user_id
    assert not (await get_user_admin_info(base, admin.access_token, plain.user_id))["admin"]
    assert (await get_user_admin_info(base, admin.access_token, boss.user_id))["admin"]

    # A non-admin token is refused by the admin API; the new admin's is accepted.
    path = f"/_synapse/admin/v2/users/{q(admin.user_id)}"
    status, body = await admin_request(base, plain.access_token, "GET", path, expect=None)
    assert status == 403, body
    await admin_request(base, boss.access_token, "GET", path)


async def test_clients_survive_synapse_restart(make_client, synapse: SynapseServer) -> None:
    alice, bob, room_id = await _pair_in_encrypted_room(make_client)
    await alice.send_text(room_id, "before restart")
    assert (await bob.wait_for_message(room_id=room_id)).body == "before restart"

    await synapse.async_stop()
    await synapse.async_start()

    # Same port, same data: tokens, room and crypto state survive; syncing resumes.
    await bob.send_text(room_id, "after restart", timeout=30)
    got = await alice.wait_for_message(room_id=room_id, sender=bob.user_id, timeout=30)
    assert got.body == "after restart"
    assert got.decrypted
