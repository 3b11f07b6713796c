"""Starting and stopping as an operator meets it: one instance per data dir, a revoked
token, a data dir that belongs to another account; and the chatter told at once when the
line cannot take them (closed, nobody on duty, queue full).

The bot runs as a child process where its exit code is the point.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.devtools.runner import SubprocessBot, write_config
from bot.devtools.users import admin_request, q
from tests.integration.world import (
    TIMEOUT,
    build_world,
    chatter_by_dm,
    next_from_bot,
    staff_helpline,
)

pytestmark = pytest.mark.timeout(120)


async def exit_code(bot: SubprocessBot, timeout: float = 60) -> int:
    assert bot.proc is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while bot.proc.poll() is None:
        assert loop.time() < deadline, f"still running: {bot.log_tail()}"
        await asyncio.sleep(0.1)
    return bot.proc.returncode


async def log_out(base_url: str, data_dir: Path) -> None:
    token = json.loads((data_dir / "credentials.json").read_text())["access_token"]
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{base_url}/_matrix/client/v3/logout", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 200


async def test_a_second_instance_on_the_same_data_dir_refuses_to_start(
    synapse, make_user, make_client, tmp_path: Path
):
    staffed = await staff_helpline(synapse, make_user, make_client, tmp_path)
    first = SubprocessBot(staffed.config, tmp_path / "first.log")
    second = SubprocessBot(staffed.config, tmp_path / "second.log")
    first.start()
    try:
        await first.wait_ready()
        second.start()
        assert await exit_code(second) == 6
        assert "another instance" in second.log_tail()
        assert "Traceback" not in second.log_tail()
        assert first.proc is not None
        assert first.proc.poll() is None
        assert first.terminate() == 0
    finally:
        first.kill()
        second.kill()


async def test_a_revoked_token_stops_the_bot_with_its_own_exit_code(
    synapse, make_user, make_client, tmp_path: Path
):
    staffed = await staff_helpline(synapse, make_user, make_client, tmp_path)
    data_dir = tmp_path / "data"
    bot = SubprocessBot(staffed.config, tmp_path / "bot.log")
    bot.start()
    try:
        await bot.wait_ready()
        # Revoked while running: the sync loop stops the bot (no retry loop on a dead token).
        await log_out(synapse.base_url, data_dir)
        assert await exit_code(bot) == 5
        assert "M_UNKNOWN_TOKEN" in bot.log_tail()
        # And on the next start: a clear message and the same exit code, no new device.
        again = SubprocessBot(staffed.config, tmp_path / "again.log")
        again.start()
        assert await exit_code(again) == 5
        assert "credentials.json" in again.log_tail()
        assert "Traceback" not in again.log_tail()
    finally:
        bot.kill()


async def test_a_data_dir_of_another_account_is_refused(
    synapse, make_user, make_client, tmp_path: Path
):
    staffed = await staff_helpline(synapse, make_user, make_client, tmp_path)
    bot = SubprocessBot(staffed.config, tmp_path / "bot.log")
    bot.start()
    try:
        await bot.wait_ready()
        assert bot.terminate() == 0
    finally:
        bot.kill()
    other = await make_user("otherbot")
    config = write_config(
        tmp_path / "other.yaml",
        homeserver=synapse.base_url,
        bot_user=other.user_id,
        bot_password=other.password,
        data_dir=tmp_path / "data",  # the first bot's
        staff_room=staffed.staff_room,
        volunteers=[{"user_id": staffed.volunteers[0].user.user_id, "alias": "Irene"}],
    )
    wrong = SubprocessBot(config, tmp_path / "wrong.log")
    wrong.start()
    try:
        assert await exit_code(wrong) == 4
        assert "data dir belongs to" in wrong.log_tail()
    finally:
        wrong.kill()


async def test_nobody_on_duty_the_chatter_is_told_at_once_and_may_wait(
    synapse, make_user, make_client, tmp_path: Path
):
    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        chatter = await chatter_by_dm(w, make_user, make_client, "hei")
        # The welcome says nobody is on duty, gives a place and the alternatives at once.
        assert "1" in chatter.welcome.body
        assert "116 111" in chatter.welcome.body
        assert "Kirkens SOS" in chatter.welcome.body
    finally:
        await w.close()


async def test_closed_hours_and_a_full_queue_are_answered_in_the_dm(
    synapse, make_user, make_client, tmp_path: Path
):
    today = datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()
    w = await build_world(
        synapse,
        make_user,
        make_client,
        tmp_path,
        opening_hours={
            "always_open": False,
            "weekly": {"mon-sun": "00:00-23:59"},
            "closed_dates": [today],
        },
    )
    try:
        client = await make_client(await make_user("chatter"))
        dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
        await client.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)
        await client.send_text(dm, "er dere der?")
        answer = await next_from_bot(w, client, dm)
        assert answer.msgtype == "m.notice"
        assert "113" in answer.body
        with pytest.raises(TimeoutError):  # no conversation room for a closed line
            await client.wait_for_invite(timeout=3)
    finally:
        await w.close()

    (tmp_path / "full").mkdir()
    w = await build_world(
        synapse, make_user, make_client, tmp_path / "full", limits={"queue_max_length": 1}
    )
    try:
        await chatter_by_dm(w, make_user, make_client, "først")  # waits: nobody on duty
        client = await make_client(await make_user("chatter"))
        dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
        await client.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)
        await client.send_text(dm, "andre")
        answer = await next_from_bot(w, client, dm)
        assert answer.msgtype == "m.notice"
        assert "116 111" in answer.body
        with pytest.raises(TimeoutError):
            await client.wait_for_invite(timeout=3)
    finally:
        await w.close()


async def test_the_bots_device_carries_the_configured_name(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path, admin: Any
) -> None:
    """`bot.device_name`: what the account's session list shows for the bot's device."""
    w = await build_world(
        synapse, make_user, make_client, tmp_path, bot={"device_name": "vakt-bot"}
    )
    try:
        _, body = await admin_request(
            synapse.base_url,
            admin.access_token,
            "GET",
            f"/_synapse/admin/v2/users/{q(w.bot_id)}/devices",
        )
        names = [d.get("display_name") for d in body["devices"]]
        assert "vakt-bot" in names, names
    finally:
        await w.close()
