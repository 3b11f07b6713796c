"""After a purge, no file the bot keeps names the chatter; an old crypto store still works.

The audit of `test_purge.py` reads the bot's database; this one reads EVERY file under
the bot's data dir as raw bytes (nio's crypto store, its journal, any trust file, the
credentials, the lock file) for the chatter's Matrix ID, device ID and device display
name, while the bot runs and again at rest.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nio.store import DefaultStore

from bot.devtools.runner import InProcessBot
from tests.integration.test_purge import (
    data_dir,
    start_conversation,
    wait_purged,
)
from tests.integration.waits import wait_until
from tests.integration.world import World, build_world, go_on_duty, next_from_bot

pytestmark = pytest.mark.timeout(120)


def files_naming(data: Path, needles: list[str]) -> list[tuple[str, str]]:
    """(file, needle) for every file under `data` whose bytes hold a needle (UTF-8)."""
    found = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        found += [(str(path.relative_to(data)), n) for n in needles if n.encode() in raw]
    return found


@pytest.fixture
async def open_world(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    worlds: list[World] = []

    async def _open(**sections: Any) -> World:
        sections.setdefault("privacy", {}).setdefault("purge_after", "0s")
        w = await build_world(
            synapse, make_user, make_client, tmp_path, admin_token=admin.access_token, **sections
        )
        worlds.append(w)
        return w

    yield _open
    for w in worlds:
        await w.close()


async def test_no_file_under_the_data_dir_names_the_chatter_after_the_purge(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world()
    device_name = f"Nattbordet {secrets.token_hex(4)}"

    async def chatter_client(user: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("device_name", device_name)
        return await make_client(user, **kwargs)

    c = await start_conversation(w, make_user, chatter_client)
    chatter = c.chatter.client
    needles = [chatter.user_id, chatter.device_id, device_name]
    data = data_dir(w)
    # Not vacuous: while the conversation runs, nio's store does name the chatter.
    assert {n for _, n in files_naming(data, needles)} == set(needles)

    await chatter.send_text(c.chatter.room, "!slutt")
    await wait_purged(w, synapse, admin, c.rooms, c.said)
    await wait_until(lambda: "purge finished" in w.logs.getvalue(), 30, "the end of the purge")
    forgot = re.search(r"crypto store forgot the conversation (.*)", w.logs.getvalue())
    assert forgot is not None, "nothing was forgotten"
    assert "devices=1 " in forgot.group(1), "nothing was forgotten"
    print(forgot.group(0))  # the figures: rows, VACUUM and total milliseconds
    assert files_naming(data, needles) == []  # while running
    assert await w.bot.stop() == 0
    assert files_naming(data, needles) == []  # and at rest
    assert not list(data.rglob("*_devices"))  # no trust file of nio's DefaultStore

    # Identity pins: the volunteer's (staff) is there, none for the chatter.
    with sqlite3.connect(f"file:{data / 'helpline.db'}?mode=ro", uri=True) as db:
        pins = list(db.execute("SELECT subject, staff FROM identity_pins"))
    assert (c.vside.client.user_id, 1) in pins
    assert [row for row in pins if row[1] != 1] == []


async def test_a_data_dir_made_with_nios_default_store_keeps_its_device(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """An existing bot's store (trust in plaintext files) opens with the new store: the
    same device, identity and Olm account, and messages still flow both ways."""
    monkeypatch.setattr("bot.matrix.connection.BotStore", DefaultStore)
    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        [v] = w.volunteers
        await go_on_duty(w, v)  # the bot verifies the volunteer's device: a trust file line
        data = data_dir(w)
        assert await w.bot.stop() == 0
        trust_files = list((data / "crypto").glob("*.trusted_devices"))
        assert trust_files
        assert v.user.user_id.encode() in trust_files[0].read_bytes()
        device = json.loads((data / "credentials.json").read_text())["device_id"]

        monkeypatch.undo()
        w.bot = InProcessBot(w.bot.config_path)
        await w.bot.start()
        assert json.loads((data / "credentials.json").read_text())["device_id"] == device
        assert not list((data / "crypto").glob("*_devices"))
        await v.client.send_text(w.staff_room, "!av")
        reply = await next_from_bot(
            w, v.client, w.staff_room, lambda m: "er av vakt" in (m.body or "")
        )
        assert v.alias in (reply.body or "")
    finally:
        await w.close()


async def test_a_chatter_who_comes_back_after_the_purge_is_read(
    synapse: Any, admin: Any, make_user: Any, make_client: Any, open_world: Any
) -> None:
    """The purge forgets the chatter's devices but keeps the Olm session with them (named
    by a key only): their app goes on using it for the room key of their next chat, and
    a bot that had forgotten its side could not read them (the kill -9 soak saw returning
    chatters' first words stay unreadable)."""
    w = await open_world()
    c = await start_conversation(w, make_user, make_client)
    chatter = c.chatter.client
    await chatter.send_text(c.chatter.room, "!slutt")
    await wait_purged(w, synapse, admin, c.rooms, c.said)
    await wait_until(lambda: "purge finished" in w.logs.getvalue(), 30, "the end of the purge")

    dm = await chatter.create_encrypted_room(invite=[w.bot_id], is_direct=True)
    await chatter.wait_for_join(dm, w.bot_id, timeout=30)
    await chatter.send_text(dm, "hei igjen")
    room = (await chatter.wait_for_invite(timeout=30)).room_id
    await chatter.join(room)
    welcome = await next_from_bot(w, chatter, room, timeout=30)
    assert "113" in (welcome.body or "")
    assert "holdt tilbake" not in w.logs.getvalue()
    assert "key never came" not in w.logs.getvalue()
