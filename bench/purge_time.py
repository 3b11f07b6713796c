"""Time from the end of a conversation to the verified deletion of both its rooms.

    .venv/bin/python -m bench.purge_time [--conversations N] [--messages M] [--keep]

One run, one throwaway Synapse (bot.devtools.synapse, 127.0.0.1, SQLite), the bot as a
subprocess with an admin token and `privacy.purge_after: 0s`, one volunteer on duty.
N conversations, one after the other: a chatter writes to the bot by DM, the volunteer
accepts, M messages go each way, then the chatter writes `!slutt`. The clock starts just
before that `!slutt` is sent and stops when the admin API answers 404 for both rooms
(`GET /_synapse/admin/v1/rooms/{id}`, polled every 50 ms): the end of a conversation to
its verified purge, as an auditor would see it. Also reported: the purge pipeline's own
time, as the bot logs it ("purge finished ... seconds=").

It prints figures and never asserts on them (shared/testing.md). Target from issue 4:
p95 under 10 s with purge_after 0. Everything it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bot.devtools.client import TestClient
from bot.devtools.runner import SubprocessBot, write_config
from bot.devtools.synapse import SynapseServer
from bot.devtools.users import UserFactory, admin_request, override_ratelimit, q, register_user

TARGET_P95_S = 10.0
POLL_S = 0.05
STEP_TIMEOUT_S = 30.0


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def step(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


async def room_gone(base_url: str, token: str, room: str) -> bool:
    path = f"/_synapse/admin/v1/rooms/{q(room)}"
    status, _ = await admin_request(base_url, token, "GET", path, expect=None)
    return status == 404


async def from_bot(client: TestClient, room: str, bot_id: str) -> str:
    msg = await client.wait_for_message(room_id=room, sender=bot_id, timeout=STEP_TIMEOUT_S)
    return msg.body or ""


async def measure(server: SynapseServer, work: Path, n: int, m: int) -> list[float]:
    localpart = "bench-admin"
    _, admin_token, _ = await register_user(
        server.base_url, server.shared_secret, localpart, "bench-admin-pw", admin=True
    )
    await override_ratelimit(server.base_url, admin_token, f"@{localpart}:{server.server_name}")
    users = UserFactory(server.base_url, server.shared_secret, admin_token)
    bot_user, vol_user = await users.create_many(2, "bench")
    clients: list[TestClient] = []

    async def client(user: object) -> TestClient:
        c = TestClient(
            server.base_url,
            user.user_id,  # type: ignore[attr-defined]
            user.password,  # type: ignore[attr-defined]
            store_dir=work / user.localpart,  # type: ignore[attr-defined]
        )
        clients.append(c)
        await c.start()
        return c

    bot_id = bot_user.user_id
    volunteer = await client(vol_user)
    staff_room = await volunteer.create_encrypted_room(invite=[bot_id])
    config = write_config(
        work / "bot.yaml",
        homeserver=server.base_url,
        bot_user=bot_id,
        bot_password=bot_user.password,
        data_dir=work / "bot-data",
        staff_room=staff_room,
        volunteers=[
            {"user_id": vol_user.user_id, "alias": "Vera", "languages": ["nb"], "max_sessions": 1}
        ],
        logging={"level": "INFO"},
        privacy={"purge_after": "0s"},
        limits={"messages_per_minute": 1_000_000},
        admin_token=admin_token,
    )
    bot = SubprocessBot(config, work / "bot.log")
    bot.start()
    times: list[float] = []
    try:
        await bot.wait_ready()
        await volunteer.wait_for_join(staff_room, bot_id, timeout=STEP_TIMEOUT_S)
        await volunteer.send_text(staff_room, "!on")
        await from_bot(volunteer, staff_room, bot_id)
        for i in range(n):
            chatter = await client(await users.create("bench-chatter"))
            dm = await chatter.create_encrypted_room(invite=[bot_id], is_direct=True)
            await chatter.wait_for_join(dm, bot_id, timeout=STEP_TIMEOUT_S)
            await chatter.send_text(dm, "hei")
            room = (await chatter.wait_for_invite(timeout=STEP_TIMEOUT_S)).room_id
            await chatter.join(room)
            await from_bot(chatter, room, bot_id)  # welcome
            vroom = (await volunteer.wait_for_invite(timeout=STEP_TIMEOUT_S)).room_id
            await volunteer.join(vroom)
            await from_bot(volunteer, vroom, bot_id)  # intro
            await from_bot(volunteer, vroom, bot_id)  # "hei"
            await from_bot(chatter, room, bot_id)  # the volunteer's alias
            for k in range(m):
                await chatter.send_text(room, f"melding {k} fra chatter")
                await from_bot(volunteer, vroom, bot_id)
                await volunteer.send_text(vroom, f"svar {k} fra Vera")
                await from_bot(chatter, room, bot_id)
            started = time.monotonic()
            await chatter.send_text(room, "!slutt")
            deadline = started + 120
            while not (
                await room_gone(server.base_url, admin_token, room)
                and await room_gone(server.base_url, admin_token, vroom)
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"conversation {i + 1}: rooms still there after 120 s")
                await asyncio.sleep(POLL_S)
            times.append(time.monotonic() - started)
            step(f"conversation {i + 1}/{n}: {times[-1]:.2f} s")
            # The volunteer's closing notice; then this chatter is done.
            with contextlib.suppress(TimeoutError):
                await from_bot(volunteer, vroom, bot_id)
            await chatter.close()
            clients.remove(chatter)
        bot.terminate()
    finally:
        bot.kill()
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
    return times


def pipeline_times(log: Path) -> list[float]:
    text = log.read_text(errors="replace")
    return [float(s) for s in re.findall(r"purge finished .*?seconds=([0-9.]+)", text)]


def report(times: list[float], pipeline: list[float], m: int) -> str:
    def row(name: str, s: list[float]) -> str:
        if not s:
            return f"  {name:<34} (none)"
        return (
            f"  {name:<34}{statistics.median(s):8.2f}{percentile(s, 95):8.2f}"
            f"{statistics.fmean(s):8.2f}{min(s):8.2f}{max(s):8.2f}"
        )

    try:
        synapse_version = metadata.version("matrix-synapse")
    except metadata.PackageNotFoundError:
        synapse_version = "?"
    p95 = percentile(times, 95)
    verdict = "within target" if p95 < TARGET_P95_S else "OVER TARGET"
    return "\n".join(
        [
            "",
            f"purge_time  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {os.cpu_count()} cores  "
            f"Synapse {synapse_version} (SQLite)  load avg {os.getloadavg()[0]:.2f}",
            f"{len(times)} conversations one after the other, {m} messages each way, "
            "purge_after 0s, admin token",
            "",
            f"  {'seconds':<34}{'median':>8}{'p95':>8}{'mean':>8}{'min':>8}{'max':>8}",
            row("end (!slutt sent) -> both 404", times),
            row("purge pipeline (bot's own log)", pipeline),
            "",
            f"  p95 end -> verified 404: {p95:.2f} s (target < {TARGET_P95_S:.0f} s: {verdict})",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--messages", type=int, default=5, help="messages each way")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-purge-"))
    server = SynapseServer(work / "synapse")
    try:
        step(f"starting Synapse in {work}")
        server.start()
        times = asyncio.run(measure(server, work, args.conversations, args.messages))
        print(report(times, pipeline_times(work / "bot.log"), args.messages))
        return 0
    finally:
        server.stop()
        if args.keep:
            step(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
