"""The config read again without a restart, against the real Synapse: an admin's `!reload`
and SIGHUP.

A bad file keeps the old config and the bot running, and the admin who asked gets the
number of problems; a good file that removes a volunteer lets their conversation go on to
its end, and one that adds a volunteer lets them go on duty and take the next chatter.
Every assertion is on what a person's client decrypted, or on the bot's own log.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.devtools.runner import SubprocessBot
from tests.integration.world import (
    TIMEOUT,
    LeaveWatcher,
    Volunteer,
    World,
    accept_offer,
    chatter_by_dm,
    go_on_duty,
    next_from_bot,
    open_conversation,
    staff_helpline,
)

pytestmark = pytest.mark.timeout(120)


def has(text: str) -> Any:
    return lambda m: text in (m.body or "")


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """The bot's config file, edited as an admin would edit it."""
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


async def a_new_volunteer(w: World, make_user: Any, make_client: Any, alias: str) -> Volunteer:
    """Someone who joins the volunteers' room (invited by the first volunteer) and is not
    in the config yet."""
    user = await make_user(alias.lower())
    v = Volunteer(alias, user, await make_client(user))
    await w.volunteers[0].client.client.room_invite(w.staff_room, user.user_id)
    await v.client.wait_for_invite(room_id=w.staff_room, timeout=TIMEOUT)
    await v.client.join(w.staff_room)
    await v.client.wait_for_join(w.staff_room, w.bot_id, timeout=TIMEOUT)
    return v


async def test_a_bad_file_keeps_the_old_config_and_the_admin_gets_the_count(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(admin_aliases=("Ada",))
    ada, irene = w.admins[0], w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)
    good = w.bot.config_path.read_text()

    def spoil(config: dict[str, Any]) -> None:
        config["volunteers"]["members"][0]["max_sessions"] = 0
        config["limits"] = {"max_duration": "soon"}
        config["topics"] = ["bare-dette"]  # good in itself: it must not apply either

    rewrite(w.bot.config_path, spoil)
    # Only an admin may ask.
    await irene.client.send_text(w.staff_room, "!reload")
    await next_from_bot(w, irene.client, w.staff_room, has("bare for administratorer"))
    await ada.client.send_text(w.staff_room, "!reload")
    refused = await next_from_bot(w, ada.client, w.staff_room, has("ble ikke lest inn"))
    assert "2 feil" in refused.body
    assert "check-config" in refused.body
    # The log has each problem with its line; the room has none of them.
    logged = w.logs.getvalue()
    assert re.search(r"\.yaml:\d+: volunteers\.members\[0\]\.max_sessions", logged)
    assert re.search(r"\.yaml:\d+: limits\.max_duration", logged)
    assert "max_sessions" not in refused.body

    # The bot runs on, with the old config: the conversation goes on both ways.
    await chatter.client.send_text(chatter.room, "er du der fortsatt?")
    got = await next_from_bot(w, irene.client, vroom)
    assert got.body == "er du der fortsatt?"
    await irene.client.send_text(vroom, "ja")
    got = await next_from_bot(w, chatter.client, chatter.room)
    assert got.body == "ja"
    await irene.client.send_text(vroom, "!tema bare-dette")
    await next_from_bot(w, irene.client, vroom, has("Ukjent tema"))

    # Fixed, it is taken.
    w.bot.config_path.write_text(good)
    await ada.client.send_text(w.staff_room, "!reload")
    await next_from_bot(w, ada.client, w.staff_room, has("lest inn på nytt"))


async def test_a_removed_volunteer_finishes_their_conversation_and_an_added_one_takes_over(
    make_user: Any, make_client: Any, open_world: Any
) -> None:
    w = await open_world(admin_aliases=("Ada",))
    ada, irene = w.admins[0], w.volunteers[0]
    chatter, vroom = await open_conversation(w, make_user, make_client)
    dag = await a_new_volunteer(w, make_user, make_client, "Dag")

    # Before the reload, Dag is nobody to the bot: a DM from him would be a chatter's, and
    # the volunteers' room ignores him. Irene is replaced by Dag in the file.
    def swap(config: dict[str, Any]) -> None:
        config["volunteers"]["members"] = [
            {"user_id": dag.user.user_id, "alias": "Dag", "languages": ["nb", "en"]}
        ]

    rewrite(w.bot.config_path, swap)
    await ada.client.send_text(w.staff_room, "!reload")
    done = await next_from_bot(w, ada.client, w.staff_room, has("lest inn på nytt"))
    assert "1 nye, 1 fjernet" in done.body

    # Irene's conversation goes on, both ways, under her alias, until she ends it.
    await chatter.client.send_text(chatter.room, "takk for at du er her")
    got = await next_from_bot(w, irene.client, vroom)
    assert got.body == "takk for at du er her"
    await irene.client.send_text(vroom, "det er godt du skrev")
    got = await next_from_bot(w, chatter.client, chatter.room)
    assert got.body == "det er godt du skrev"

    # Dag goes on duty and gets the next chatter; Irene gets no offer.
    await go_on_duty(w, dag)
    second = await chatter_by_dm(w, make_user, make_client, "hallo")
    room, intro = await accept_offer(w, dag)
    assert "Chatter #" in intro.body
    held = await next_from_bot(w, dag.client, room)
    assert held.body == "hallo"
    await next_from_bot(w, second.client, second.room, has("Dag"))

    # The admin's full status: aliases and counts, Irene still in hers though removed.
    await ada.client.send_text(w.staff_room, "!status full")
    status = await next_from_bot(w, ada.client, w.staff_room, has("Full status"))
    assert "På vakt (samtaler): Dag (1)" in status.body
    assert "Ikke på vakt, men i samtale: Irene (1)" in status.body
    assert "@" not in status.body

    leaves = LeaveWatcher(chatter.client)
    await irene.client.send_text(vroom, "!slutt")
    await next_from_bot(w, irene.client, vroom, has("avsluttet"))
    await leaves.wait_removed(chatter.room)


async def test_sighup_reads_the_config_again(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    """In a child process: SIGHUP in the test's own process would reach every in-process
    bot, and the test runner."""
    staffed = await staff_helpline(synapse, make_user, make_client, tmp_path)
    irene = staffed.volunteers[0]
    bot_id = staffed.bot_user.user_id
    log = tmp_path / "bot.log"
    bot = SubprocessBot(staffed.config, log)
    bot.start()
    try:
        await bot.wait_ready()
        await irene.client.wait_for_join(staffed.staff_room, bot_id, timeout=TIMEOUT)
        user = await make_user("dag")
        dag = await make_client(user)
        await irene.client.client.room_invite(staffed.staff_room, user.user_id)
        await dag.wait_for_invite(room_id=staffed.staff_room, timeout=TIMEOUT)
        await dag.join(staffed.staff_room)

        # A bad file first: logged, nothing else; the bot goes on.
        good = staffed.config.read_text()
        staffed.config.write_text(good + "limits:\n  max_duration: soon\n")
        assert bot.proc is not None
        bot.proc.send_signal(signal.SIGHUP)
        await wait_for_log(bot, log, "was not reloaded")
        assert bot.proc.poll() is None

        def add_dag(config: dict[str, Any]) -> None:
            config["volunteers"]["members"].append(
                {"user_id": user.user_id, "alias": "Dag", "languages": ["nb"]}
            )
            config["http"] = {"port": 0, "host": "localhost"}  # needs a restart

        staffed.config.write_text(good)
        rewrite(staffed.config, add_dag)
        bot.proc.send_signal(signal.SIGHUP)
        await wait_for_log(bot, log, "config reloaded")
        assert "http" in log.read_text().split("config reloaded", 1)[1].splitlines()[0]
        await dag.send_text(staffed.staff_room, "!på")
        reply = await dag.wait_for_message(
            room_id=staffed.staff_room,
            sender=bot_id,
            predicate=has("på vakt"),
            timeout=TIMEOUT,
        )
        assert "Dag" in reply.body
        assert bot.terminate() == 0
    finally:
        bot.kill()


async def wait_for_log(bot: SubprocessBot, log: Path, text: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while text not in log.read_text(errors="replace"):
        if loop.time() > deadline:
            raise AssertionError(f"not in the bot's log: {text!r}\n{bot.log_tail()}")
        await asyncio.sleep(0.1)
