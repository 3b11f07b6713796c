"""Operations: the loopback /healthz and /metrics of a running bot, JSON logs, --log-level
and a clean SIGTERM, against the real Synapse.

The figures are scraped over HTTP as Prometheus would, after a real conversation: what a
person's client decrypted proves the flow happened, the scrape proves it was counted.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.devtools.runner import SubprocessBot
from bot.devtools.synapse import free_port
from tests.integration.world import (
    TIMEOUT,
    build_world,
    next_from_bot,
    open_conversation,
    staff_helpline,
)

pytestmark = pytest.mark.timeout(90)


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.text()


async def healthy(port: int, timeout: float = TIMEOUT) -> dict[str, Any]:
    """/healthz once it says 200 (the first sync may still be under way at start)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await get(port, "/healthz")
        if status == 200:
            return dict(json.loads(body))
        assert status == 503, body
        if loop.time() > deadline:
            pytest.fail(f"/healthz never became healthy: {body}")
        await asyncio.sleep(0.2)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_healthz_and_metrics_after_a_conversation(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    port = free_port()
    w = await build_world(synapse, make_user, make_client, tmp_path, http={"port": port})
    try:
        body = await healthy(port)
        assert body["status"] == "ok"
        assert body["reasons"] == []

        v = w.volunteers[0]
        chatter, vroom = await open_conversation(w, make_user, make_client)
        for n in range(3):
            await chatter.client.send_text(chatter.room, f"melding {n}")
            got = await next_from_bot(w, v.client, vroom)
            assert got.body == f"melding {n}"

        # The latency of a relay is observed when the bot's send returns, which can be
        # after the volunteer's client already has the message: poll, don't race.
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            status, text = await get(port, "/metrics")
            assert status == 200
            m = samples(text)
            if m.get(("helpline_relay_latency_seconds_count", ()), 0) >= 3:
                break
            assert asyncio.get_running_loop().time() < deadline, "relays not counted"
            await asyncio.sleep(0.2)
        assert m[("helpline_offers_total", ())] == 1
        assert m[("helpline_wait_seconds_count", ())] == 1
        assert m[("helpline_relay_latency_seconds_count", ())] >= 3
        assert 0 < m[("helpline_relay_latency_seconds_sum", ())] < 3 * TIMEOUT
        assert m[("helpline_active_conversations", ())] == 1
        assert m[("helpline_volunteers_on_duty", ())] == 1
        assert m[("helpline_queue_length", ())] == 0
        assert m[("helpline_sync_errors_total", ())] == 0
        assert m[("helpline_syncs_total", ())] >= 3  # at least the three messages' batches
        for secret in (chatter.user.user_id, chatter.room, vroom, "melding", "localhost"):
            assert secret not in text

        await chatter.client.send_text(chatter.room, "!slutt")
        # purge_after plus the purge itself; generous, for a loaded machine.
        deadline = asyncio.get_running_loop().time() + 3 * TIMEOUT
        while not any(name == "helpline_purges_total" for name, _ in m):
            assert asyncio.get_running_loop().time() < deadline, "no purge counted"
            await asyncio.sleep(0.3)
            m = samples((await get(port, "/metrics"))[1])
        assert sum(v for (name, _), v in m.items() if name == "helpline_purges_total") == 1
        assert m[("helpline_conversations_ended_total", (("outcome", "completed"),))] == 1
    finally:
        await w.close()


async def test_json_logs_log_level_and_sigterm(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path
) -> None:
    port = free_port()
    staffed = await staff_helpline(
        synapse,
        make_user,
        make_client,
        tmp_path,
        aliases=("Vera",),
        logging={"level": "ERROR", "json": True},  # --log-level below overrides the level
        http={"port": port},
    )
    bot_user, staff_room, config = staffed.bot_user, staffed.staff_room, staffed.config
    volunteer, vol_user = staffed.volunteers[0].client, staffed.volunteers[0].user
    bot = SubprocessBot(config, tmp_path / "bot.log", args=["--log-level", "info"])
    bot.start()
    try:
        await bot.wait_ready()
        await healthy(port)
        await volunteer.wait_for_join(staff_room, bot_user.user_id, timeout=TIMEOUT)
        await volunteer.send_text(staff_room, "!on")
        await volunteer.wait_for_message(room_id=staff_room, sender=bot_user.user_id)
        assert bot.proc is not None
        bot.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(bot.proc.wait, 30) == 0
    finally:
        bot.kill()
    lines = [line for line in bot.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = [r["msg"] for r in records]
    assert "serving" in messages
    assert "stopped" in messages
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    text = "\n".join(lines)
    assert bot_user.user_id not in text
    assert vol_user.user_id not in text
    assert staff_room not in text
