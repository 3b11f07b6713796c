"""Cross-signing against a real Synapse: what the bot publishes, what survives a restart,
a lost crypto store or a lost data dir, and the Element rule towards others: an unsigned
device gets no room key, a volunteer's new identity is reported and not trusted until an
admin resets the pin.

The measured figures (bootstrap time, requests) are printed; run with -s to see them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.devtools.client import TestClient
from bot.devtools.runner import InProcessBot
from bot.matrix.keyfile import CrossSigningKeys, KeyFile
from bot.matrix.keysapi import NioHttp, identity_from_query, query_keys
from tests.integration.world import (
    TIMEOUT,
    World,
    accept_offer,
    build_world,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
    open_conversation,
)

pytestmark = pytest.mark.timeout(240)

CHECKED = re.compile(r"cross-signing checked (.*)")


def checks(w: World) -> list[dict[str, str]]:
    """Every "cross-signing checked" log line so far, as its extras."""
    out = []
    for line in w.logs.getvalue().splitlines():
        m = CHECKED.search(line)
        if m:
            out.append(dict(kv.split("=", 1) for kv in m.group(1).split()))
    return out


def data_dir(w: World) -> Path:
    return Path(w.bot.config.storage.data_dir)


def bot_device(w: World) -> str:
    return str(json.loads((data_dir(w) / "credentials.json").read_text())["device_id"])


async def identity_of(observer: TestClient, user: str) -> Any:
    """The user's cross-signing as a third party reads it from /keys/query."""
    return identity_from_query(await query_keys(NioHttp(observer.client), [user]), user)


async def restart(w: World) -> None:
    assert await w.bot.stop() == 0
    w.bot = InProcessBot(w.bot.config_path)
    await w.bot.start()


async def on_duty_reply_decrypts(w: World) -> None:
    """The volunteer's own app (Element's rule) can read the bot: the device is signed."""
    v = w.volunteers[0]
    await v.client.send_text(w.staff_room, "!av")
    await next_from_bot(w, v.client, w.staff_room, lambda m: "av vakt" in (m.body or ""))


async def test_bot_publishes_keys_signs_its_device_and_keeps_its_identity(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        observer = w.volunteers[0].client
        first = checks(w)[-1]
        assert first["new_keys"] == "True"
        assert first["uploaded_keys"] == "True"
        assert first["signed_device"] == "True"
        assert first["password_used"] == "False"
        print(f"\nfirst start: bootstrap {first['ms']} ms, {first['requests']} requests")

        key_path = data_dir(w) / "cross_signing.json"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        config = w.bot.config
        keys = KeyFile(key_path, config.storage.store_key, w.bot_id).load()
        assert keys is not None
        ident = await identity_of(observer, w.bot_id)
        assert ident.master == keys.master.public
        assert ident.problem is None
        device = bot_device(w)
        assert device in ident.devices
        await on_duty_reply_decrypts(w)

        # A plain restart: one /keys/query, nothing uploaded.
        await restart(w)
        again = checks(w)[-1]
        assert again["requests"] == "1"
        assert "True" not in (again["new_keys"], again["uploaded_keys"], again["signed_device"])
        print(f"later start: check {again['ms']} ms, {again['requests']} request")
        assert bot_device(w) == device

        # The crypto store is lost: a new device, signed with the kept keys.
        assert await w.bot.stop() == 0
        shutil.rmtree(data_dir(w) / "crypto")
        (data_dir(w) / "credentials.json").unlink()
        w.bot = InProcessBot(w.bot.config_path)
        await w.bot.start()
        lost_store = checks(w)[-1]
        assert lost_store["signed_device"] == "True"
        assert lost_store["uploaded_keys"] == "False"
        new_device = bot_device(w)
        assert new_device != device
        ident = await identity_of(observer, w.bot_id)
        assert ident.master == keys.master.public
        assert new_device in ident.devices
        print(f"new device, kept keys: {lost_store['ms']} ms, {lost_store['requests']} requests")
        await on_duty_reply_decrypts(w)

        # The whole data dir is lost: a new identity, uploaded with the password.
        assert await w.bot.stop() == 0
        shutil.move(data_dir(w), tmp_path / "data.lost")
        w.bot = InProcessBot(w.bot.config_path)
        await w.bot.start()
        lost_all = checks(w)[-1]
        assert lost_all["new_keys"] == "True"
        assert lost_all["password_used"] == "True"
        ident = await identity_of(observer, w.bot_id)
        assert ident.master != keys.master.public
        assert bot_device(w) in ident.devices
        print(f"lost data dir, new identity: {lost_all['ms']} ms")
        await on_duty_reply_decrypts(w)  # test clients, like a chatter's, accept it
    finally:
        await w.close()


async def test_an_unsigned_device_gets_no_room_key_from_the_bot(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        v = w.volunteers[0]
        await go_on_duty(w, v)
        chatter = await chatter_by_dm(w, make_user, make_client, "hei")
        vroom, _ = await accept_offer(w, v)
        await next_from_bot(w, chatter.client, chatter.room)  # "Irene is here"

        # The same chatter on a second device, a plain nio client that never cross-signs.
        plain = await make_client(chatter.user, cross_sign=False)
        await plain.wait_for_room(chatter.room, encrypted=True, timeout=TIMEOUT)
        ident = await identity_of(plain, chatter.user.user_id)
        assert chatter.client.device_id in ident.devices
        assert plain.device_id not in ident.devices

        await v.client.send_text(vroom, "Hei, jeg heter Irene")
        relayed = await next_from_bot(w, chatter.client, chatter.room)
        assert relayed.body == "Hei, jeg heter Irene"

        def stuck() -> Any:
            return next((u for u in plain.undecryptable if u.event_id == relayed.event_id), None)

        await plain.wait_until(stuck, TIMEOUT, "the relayed message, undecryptable")
        # And it stays so: no key comes later either (no key request is answered for it).
        await v.client.send_text(vroom, "Er du der?")
        later = await next_from_bot(w, chatter.client, chatter.room)
        await plain.wait_until(
            lambda: any(u.event_id == later.event_id for u in plain.undecryptable),
            TIMEOUT,
            "the second message, undecryptable",
        )
        assert stuck() is not None
        assert not [m for m in plain.messages if m.sender == w.bot_id and m.decrypted]
    finally:
        await w.close()


async def test_a_device_signed_later_reads_what_the_bot_sends_after(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    """A device that becomes trusted later (its owner signs it after the conversation
    began) must get the room key of what comes next: nio shares a Megolm session once,
    so the trusted set's change has to start a new one."""
    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        v = w.volunteers[0]
        await go_on_duty(w, v)
        chatter = await chatter_by_dm(w, make_user, make_client, "hei")
        vroom, _ = await accept_offer(w, v)
        await next_from_bot(w, chatter.client, chatter.room)  # "Irene is here"
        plain = await make_client(chatter.user, cross_sign=False)
        await plain.wait_for_room(chatter.room, encrypted=True, timeout=TIMEOUT)
        await v.client.send_text(vroom, "før")
        before = await next_from_bot(w, chatter.client, chatter.room)
        await plain.wait_until(
            lambda: any(u.event_id == before.event_id for u in plain.undecryptable),
            TIMEOUT,
            "the message from before the signature, undecryptable",
        )

        # The chatter signs the second device with the account's keys, as Element does
        # after a verification.
        plain.cross_signing_keys = chatter.client.cross_signing_keys
        await plain._cross_sign()
        ident = await identity_of(chatter.client, chatter.user.user_id)
        assert plain.device_id in ident.devices

        await v.client.send_text(vroom, "etter")
        got = await plain.wait_for_message(
            room_id=chatter.room, sender=w.bot_id, body="etter", timeout=TIMEOUT
        )
        assert got.decrypted
    finally:
        await w.close()


@pytest.mark.parametrize("rule", ["fallback_to_unsigned", "cross_signed_only"])
async def test_a_chatter_whose_app_does_not_cross_sign(
    rule: str, synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    """An old client or a bridge: no cross-signed device at all. By default the bot
    shares keys with the chatter's unsigned device, so a person in crisis is not left
    reading silence, and the volunteer is told once; `cross_signed_only` keeps Element's
    rule for chatters too."""
    w = await build_world(
        synapse, make_user, make_client, tmp_path, encryption={"chatter_devices": rule}
    )
    try:
        v = w.volunteers[0]
        await go_on_duty(w, v)
        client = await make_client(await make_user("chatter"), cross_sign=False)
        dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
        await client.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)
        await client.send_text(dm, "hei")
        room = (await client.wait_for_invite(timeout=TIMEOUT)).room_id
        await client.join(room)
        vroom, _ = await accept_offer(w, v)
        await v.client.send_text(vroom, "hei du")
        if rule == "fallback_to_unsigned":
            welcome = await next_from_bot(w, client, room)
            assert "113" in (welcome.body or "")
            got = await next_from_bot(w, client, room, lambda m: m.body == "hei du")
            assert got.decrypted
            note = await next_from_bot(w, v.client, vroom, lambda m: "verifisert" in (m.body or ""))
            assert "Chatter #" in (note.body or "")
            await v.client.send_text(vroom, "er du der?")
            await next_from_bot(w, client, room, lambda m: m.body == "er du der?")
            told = [m for m in v.client.messages if "verifisert" in (m.body or "")]
            assert len(told) == 1
        else:
            await client.wait_until(
                lambda: len([u for u in client.undecryptable if u.room_id == room]) >= 2,
                TIMEOUT,
                "the bot's messages, undecryptable",
            )
            assert not [m for m in client.messages if m.room_id == room and m.decrypted]
            assert not [m for m in v.client.messages if "verifisert" in (m.body or "")]
    finally:
        await w.close()


async def _cli(*args: str) -> tuple[int, str, str]:
    """`helpline-bot ARGS` as an admin runs it beside the bot. Not `subprocess.run`: that
    would stop this event loop, and with it the in-process bot in mid-transaction."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def is_status(m: Any) -> bool:
    return (m.body or "").startswith("Status")


async def test_a_volunteers_new_identity_is_reported_and_trusted_only_after_a_reset(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    w = await build_world(synapse, make_user, make_client, tmp_path, aliases=("Irene", "Bjorn"))
    try:
        irene, bjorn = w.volunteers
        await go_on_duty(w, irene)  # the bot pins both identities when it answers

        # Irene resets her encryption: new keys (the password confirms it), a new device.
        new_irene = await make_client(irene.user, cross_signing_keys=CrossSigningKeys.generate())
        assert new_irene.cross_signing_report.password_used
        await new_irene.wait_for_room(w.staff_room, encrypted=True, timeout=TIMEOUT)

        await bjorn.client.send_text(w.staff_room, "!status")
        await next_from_bot(w, bjorn.client, w.staff_room, is_status)
        notice = await next_from_bot(
            w, bjorn.client, w.staff_room, lambda m: "reset-identity" in (m.body or "")
        )
        assert notice.body
        assert "Irene" in notice.body
        assert irene.user.user_id not in notice.body
        # Her new device gets nothing from the bot meanwhile.
        await new_irene.wait_until(
            lambda: any(u.event_id == notice.event_id for u in new_irene.undecryptable),
            TIMEOUT,
            "the notice, undecryptable for the new identity",
        )

        code, out, err = await _cli("identities", "--config", str(w.bot.config_path))
        assert code == 0, err
        assert irene.user.user_id in out
        assert "CHANGED" in out

        # It is told once, not on every message.
        await bjorn.client.send_text(w.staff_room, "!status")
        await next_from_bot(w, bjorn.client, w.staff_room, is_status)

        # An admin has checked with Irene and accepts the new identity.
        code, out, err = await _cli(
            "reset-identity", "--config", str(w.bot.config_path), irene.user.user_id
        )
        assert code == 0, err
        assert "will be trusted" in out, err
        await bjorn.client.send_text(w.staff_room, "!status")
        after = await next_from_bot(w, bjorn.client, w.staff_room, is_status)
        got = await new_irene.wait_for_message(
            room_id=w.staff_room,
            sender=w.bot_id,
            timeout=TIMEOUT,
            predicate=lambda m: m.event_id == after.event_id,
        )
        assert got.decrypted
        config = yaml.safe_load(Path(w.bot.config_path).read_text())
        assert config["encryption"]["trust"] == "cross_signed"
        notices = [m for m in bjorn.client.messages if "reset-identity" in (m.body or "")]
        assert len(notices) == 1
    finally:
        await w.close()


async def test_a_new_device_carries_on_an_open_conversation(open_world, make_user, make_client):
    """The crypto store is lost while a conversation is open: the new device knows none of
    the conversation's rooms, and the bot made them, so their encryption state is among
    its own events, which its filtered sync leaves out of timelines. Its first sync asks
    for every room's full state (Connection.sync_loop), which carries the encryption
    state, and the conversation goes on, encrypted both ways."""
    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)
    v = w.volunteers[0]
    assert await w.bot.stop() == 0
    shutil.rmtree(data_dir(w) / "crypto")
    (data_dir(w) / "credentials.json").unlink()
    w.bot = InProcessBot(w.bot.config_path)
    await w.bot.start()
    await chatter.client.send_text(chatter.room, "er du der?")
    got = await next_from_bot(w, v.client, vroom)
    assert got.body == "er du der?"
    await v.client.send_text(vroom, "ja, jeg er her")
    back = await next_from_bot(w, chatter.client, chatter.room)
    assert back.body == "ja, jeg er her"


async def test_a_volunteers_unsigned_device_is_not_acted_on(open_world, make_user, make_client):
    """Element shows nothing from a device its owner has not cross-signed; the bot acts on
    nothing from such a device of a staff member either. With a stolen access token and
    a new device, nobody can write to a chatter, or go off duty, as a volunteer."""
    w = await open_world()
    chatter, vroom = await open_conversation(w, make_user, make_client)
    v = w.volunteers[0]
    intruder = await make_client(v.user, cross_sign=False)
    await intruder.wait_for_room(vroom, encrypted=True, timeout=TIMEOUT)
    await intruder.wait_for_room(w.staff_room, encrypted=True, timeout=TIMEOUT)

    def refused(m: Any) -> bool:
        return m.msgtype == "m.notice" and "bekreftet" in (m.body or "")

    await intruder.send_text(vroom, "gi meg adressen din")
    await next_from_bot(w, v.client, vroom, refused)  # read on the volunteer's signed device
    await intruder.send_text(w.staff_room, "!av")
    await next_from_bot(w, v.client, w.staff_room, refused)

    # The chatter got nothing but what the real device writes, and nobody went off duty.
    await v.client.send_text(vroom, "Jeg er her fortsatt")
    got = await next_from_bot(w, chatter.client, chatter.room)
    assert got.body == "Jeg er her fortsatt"
    assert not [m for m in chatter.client.messages if "adressen" in (m.body or "")]
    assert not [m for m in v.client.messages if "av vakt" in (m.body or "")]


async def test_a_burst_that_claims_every_one_time_key_still_finds_the_fallback_key(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    """150 chatters within seconds each claim one of the bot's one-time keys to start an
    Olm session with it; nio keeps 50 on the server and tops them up after a sync. A
    client that finds none cannot share the key of its first words (the scale benchmark
    saw 37 of 150 first messages stay unreadable). The bot publishes a fallback key, which
    the server hands out when the one-time keys are gone: no claim comes back empty."""
    import aiohttp

    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        claimer = await make_user("claimer")
        device = bot_device(w)
        url = f"{synapse.base_url}/_matrix/client/v3/keys/claim"
        body = {"one_time_keys": {w.bot_id: {device: "signed_curve25519"}}}
        headers = {"Authorization": f"Bearer {claimer.access_token}"}
        empty = fallback = 0
        async with aiohttp.ClientSession() as http:
            for _ in range(120):
                async with http.post(url, json=body, headers=headers) as resp:
                    got = (await resp.json())["one_time_keys"].get(w.bot_id, {}).get(device, {})
                if not got:
                    empty += 1
                elif any(key.get("fallback") for key in got.values()):
                    fallback += 1
        assert empty == 0, f"{empty} of 120 claims found no key"
        assert fallback > 0  # the pool did run dry, and the fallback key answered
    finally:
        await w.close()
