"""Relay latency and the bot's CPU per relayed message, against a fresh test Synapse.

    .venv/bin/python -m bench.relay_latency [--messages N] [--warmup W] [--keep]

One run, one throwaway Synapse (bot/devtools/synapse.py, 127.0.0.1, SQLite):

(a) relay: the bot as a subprocess, a volunteer and a chatter E2EE test client, a
    conversation set up through the bot (volunteer ``!on`` in the staff room, chatter DMs
    the bot and joins the room it is invited to, volunteer joins the offer room). After
    W warm-up messages, N messages chatter -> volunteer, one at a time: send, wait until
    the volunteer has decrypted it, next. Latency is send call to receipt, both
    ``time.monotonic()`` in this process (``ReceivedMessage.received_at``).
(b) direct: two test clients in one encrypted room, the same W + N, the same method.
(c) CPU: utime+stime from /proc/<pid>/stat of the bot and of Synapse (and this process,
    which runs the clients) before and after the N relayed messages, and of Synapse
    around the N direct ones.

It prints figures and ratios and never asserts on them (shared/testing.md: absolute times
on shared machines vary from run to run; ratios from one run are what to compare).
Everything it starts (Synapse, the bot, the clients) is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import aiohttp

from bot.devtools.client import TestClient
from bot.devtools.runner import SubprocessBot, write_config
from bot.devtools.synapse import SynapseServer, free_port
from bot.devtools.users import RegisteredUser, UserFactory, override_ratelimit, register_user

CLK_TCK = os.sysconf("SC_CLK_TCK")
RECEIPT_TIMEOUT_S = 30.0
TARGET_RATIO = 2.3
TARGET_BOT_CPU_MS = 3.0
# About the length of a chat line; the same text (but for its number) in both runs.
TEXT = "jeg vet ikke helt hvordan jeg skal si det, men"


# --------------------------------------------------------------------------- measuring


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) in seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces or parentheses: split after its ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return utime / CLK_TCK, stime / CLK_TCK


def own_cpu_times() -> tuple[float, float]:
    t = os.times()
    return t.user, t.system


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class CpuWindow:
    """CPU seconds of some processes and wall seconds between `start` and `stop`."""

    pids: dict[str, int | None]
    before: dict[str, tuple[float, float]] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)  # user + system
    system: dict[str, float] = field(default_factory=dict)  # the system (kernel) part
    wall: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and stop

    def _read(self) -> dict[str, tuple[float, float]]:
        out = {"self": own_cpu_times()}
        for name, pid in self.pids.items():
            if pid is not None:
                out[name] = cpu_times(pid)
        return out

    def start(self) -> None:
        self.before = self._read()
        self.load = (os.getloadavg()[0], 0.0)
        self.wall = time.monotonic()

    def stop(self) -> None:
        after = self._read()
        self.wall = time.monotonic() - self.wall
        self.load = (self.load[0], os.getloadavg()[0])
        for k in after.keys() & self.before.keys():
            user = after[k][0] - self.before[k][0]
            self.system[k] = after[k][1] - self.before[k][1]
            self.used[k] = user + self.system[k]


@dataclass
class Leg:
    latencies: list[float] = field(default_factory=list)  # seconds
    # Megolm sessions: the sender's outbound ones, and those of the messages received
    # (for the relay: the bot's, towards the volunteer).
    sent_sessions: set[str] = field(default_factory=set)
    got_sessions: set[str] = field(default_factory=set)


async def ping(
    sender: TestClient,
    sender_room: str,
    receiver: TestClient,
    receiver_room: str,
    from_user: str,
    label: str,
    n: int,
) -> Leg:
    """Send n messages one at a time, each after the previous one's receipt."""
    leg = Leg()
    for i in range(n):
        body = f"{label} {i:05d}: {TEXT}"
        sent_at = time.monotonic()
        await sender.send_text(sender_room, body)
        got = await receiver.wait_for_message(
            room_id=receiver_room, sender=from_user, body=body, timeout=RECEIPT_TIMEOUT_S
        )
        if not got.decrypted:
            raise RuntimeError(f"{label} {i}: arrived unencrypted; the room must be encrypted")
        leg.latencies.append(got.received_at - sent_at)
        olm = sender.client.olm
        outbound = olm.outbound_group_sessions.get(sender_room) if olm is not None else None
        if outbound is not None:
            leg.sent_sessions.add(outbound.id)
        if getattr(got.event, "session_id", None):
            leg.got_sessions.add(got.event.session_id)
    return leg


@dataclass
class Results:
    n: int
    warmup: int
    trust: str = ""  # how the test clients decide device trust
    relay: Leg = field(default_factory=Leg)
    direct: Leg = field(default_factory=Leg)
    relay_cpu: CpuWindow | None = None
    direct_cpu: CpuWindow | None = None
    bot_pid: int | None = None
    synapse_pid: int | None = None
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bot_syncs: float = 0.0  # sync responses the bot handled during the N relayed messages
    floor: Leg = field(default_factory=Leg)
    floor_cpu: CpuWindow | None = None
    floor_pid: int | None = None


# ------------------------------------------------------------------------------ the run


@dataclass
class Running:
    """What has been started, so that it can be stopped whatever happens."""

    bot: SubprocessBot | None = None
    floor: subprocess.Popen[bytes] | None = None
    clients: list[TestClient] = field(default_factory=list)


async def make_admin(server: SynapseServer) -> RegisteredUser:
    localpart = f"bench-admin-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    user_id, token, device_id = await register_user(
        server.base_url, server.shared_secret, localpart, password, admin=True
    )
    await override_ratelimit(server.base_url, token, user_id)
    return RegisteredUser(user_id, localpart, password, token, device_id, admin=True)


class BotExited(RuntimeError):
    """The bot process ended during the run."""


async def watch_bot(running: Running) -> int:
    """Return the bot's exit code once its process has ended (so a dead bot fails the run
    at once instead of after a receipt timeout)."""
    while True:
        proc = running.bot.proc if running.bot is not None else None
        if proc is not None and proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.5)


async def run(
    server: SynapseServer, workdir: Path, args: argparse.Namespace, running: Running
) -> Results:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    work = asyncio.create_task(measure(server, workdir, args, running), name="measure")
    watch = asyncio.create_task(watch_bot(running), name="watch-bot")
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        raise BotExited(f"the bot exited with code {watch.result()} during the run")
    finally:
        for task in (work, watch):
            task.cancel()
        for task in (work, watch):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in running.clients:
            with contextlib.suppress(Exception):
                await client.close()


async def measure(
    server: SynapseServer, workdir: Path, args: argparse.Namespace, running: Running
) -> Results:
    n, warmup = args.messages, args.warmup
    client_class, trust = TestClient, "cross-signed test clients, Element's trust rule"
    results = Results(n=n, warmup=warmup, synapse_pid=server.pid, trust=trust)
    results.load_before = os.getloadavg()
    admin = await make_admin(server)
    users = UserFactory(server.base_url, server.shared_secret, admin.access_token)

    async def client(user: RegisteredUser) -> TestClient:
        c = client_class(
            server.base_url, user.user_id, user.password, store_dir=workdir / user.localpart
        )
        running.clients.append(c)
        await c.start()
        return c

    # ---- (a) relay: set up a conversation through the bot
    step("relay: starting the bot and setting up a conversation")
    bot_user, vol_user, chat_user = await users.create_many(3, "bench")
    bot_id = bot_user.user_id
    metrics_port = free_port()
    volunteer = await client(vol_user)
    staff_room = await volunteer.create_encrypted_room(invite=[bot_id])
    config = write_config(
        workdir / "bot.yaml",
        homeserver=server.base_url,
        bot_user=bot_id,
        bot_password=bot_user.password,
        data_dir=workdir / "bot-data",
        staff_room=staff_room,
        volunteers=[{"user_id": vol_user.user_id, "alias": "Vera", "languages": ["nb"]}],
        # INFO (the bot's default): SubprocessBot.wait_ready looks for the "serving"
        # line. The bot's own relay code logs nothing at INFO; nio and APScheduler log a
        # few lines per relayed message, which is part of what is measured.
        logging={"level": "INFO"},
        # One chatter sends far more than the default 20 messages a minute here.
        limits={"messages_per_minute": 1_000_000},
        # /metrics, for the number of syncs per relayed message
        http={"host": "127.0.0.1", "port": metrics_port},
    )
    bot = running.bot = SubprocessBot(config, workdir / "bot.log")
    bot.start()
    assert bot.proc is not None
    results.bot_pid = bot.proc.pid
    await bot.wait_ready()
    await volunteer.wait_for_join(staff_room, bot_id, timeout=30)
    await volunteer.send_text(staff_room, "!on")
    await volunteer.wait_for_message(room_id=staff_room, sender=bot_id, timeout=30)

    chatter = await client(chat_user)
    dm = await chatter.create_encrypted_room(invite=[bot_id], is_direct=True)
    await chatter.wait_for_join(dm, bot_id, timeout=30)
    await chatter.send_text(dm, "hei")
    session_room = (await chatter.wait_for_invite(timeout=30)).room_id
    await chatter.join(session_room)
    await chatter.wait_for_message(room_id=session_room, sender=bot_id, timeout=30)  # welcome
    offer_room = (await volunteer.wait_for_invite(timeout=30)).room_id
    await volunteer.join(offer_room)
    await volunteer.wait_for_message(room_id=offer_room, sender=bot_id, body="hei", timeout=30)
    await chatter.wait_for_message(room_id=session_room, sender=bot_id, timeout=30)  # joined

    step(f"relay: {warmup} warm-up messages")
    await ping(chatter, session_room, volunteer, offer_room, bot_id, "relay-warmup", warmup)
    step(f"relay: {n} messages")
    window = CpuWindow({"bot": results.bot_pid, "synapse": server.pid})
    profiler = start_profiler(args.profile, results.bot_pid)
    syncs_before = await bot_syncs(metrics_port)
    window.start()
    results.relay = await ping(chatter, session_room, volunteer, offer_room, bot_id, "relay", n)
    window.stop()
    results.bot_syncs = await bot_syncs(metrics_port) - syncs_before
    stop_profiler(profiler)
    results.relay_cpu = window

    # ---- (c) floor: the same chatter and volunteer through bench/floor_relay.py
    step("floor: starting the Matrix-only relay")
    floor_user = (await users.create_many(1, "floor"))[0]
    floor_id = floor_user.user_id
    source = await chatter.create_encrypted_room(invite=[floor_id])
    target = await volunteer.create_encrypted_room(invite=[floor_id])
    floor = running.floor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.floor_relay",
            server.base_url,
            floor_id,
            floor_user.password,
            str(workdir / "floor-data"),
            source,
            target,
        ],
        stdout=subprocess.PIPE,
        stderr=(workdir / "floor.log").open("wb"),
    )
    results.floor_pid = floor.pid
    assert floor.stdout is not None
    ready = await asyncio.wait_for(asyncio.to_thread(floor.stdout.readline), 60)
    if ready.strip() != b"serving":
        raise RuntimeError(f"the floor relay did not start; see {workdir / 'floor.log'}")
    await chatter.wait_for_join(source, floor_id, timeout=30)
    await volunteer.wait_for_join(target, floor_id, timeout=30)
    step(f"floor: {warmup} warm-up messages")
    await ping(chatter, source, volunteer, target, floor_id, "floor-warmup", warmup)
    step(f"floor: {n} messages")
    window = CpuWindow({"floor": floor.pid})
    window.start()
    results.floor = await ping(chatter, source, volunteer, target, floor_id, "floor", n)
    window.stop()
    results.floor_cpu = window

    # ---- (b) direct: two clients in one encrypted room, no bot
    step("direct: setting up a room")
    alice_user, bob_user = await users.create_many(2, "bench")
    alice = await client(alice_user)
    bob = await client(bob_user)
    room = await alice.create_encrypted_room(invite=[bob.user_id])
    await bob.wait_for_invite(room_id=room, timeout=30)
    await bob.join(room)
    await alice.wait_for_join(room, bob.user_id, timeout=30)
    step(f"direct: {warmup} warm-up messages")
    await ping(alice, room, bob, room, alice.user_id, "direct-warmup", warmup)
    step(f"direct: {n} messages")
    window = CpuWindow({"bot": results.bot_pid, "synapse": server.pid})
    window.start()
    results.direct = await ping(alice, room, bob, room, alice.user_id, "direct", n)
    window.stop()
    results.direct_cpu = window

    for c in running.clients:
        c.check()
    return results


# ---------------------------------------------------------------------------- reporting


async def bot_syncs(port: int) -> float:
    """The bot's `helpline_syncs_total` from its /metrics."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("helpline_syncs_total "):
            return float(line.split()[1])
    raise RuntimeError("the bot's /metrics has no helpline_syncs_total")


def start_profiler(out: str | None, pid: int | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the bot over the relay window (``--profile``), or nothing."""
    if out is None or pid is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    fmt = "speedscope" if out.endswith(".json") else "raw" if out.endswith(".txt") else "flamegraph"
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", "250", "--format", fmt, "-o", out]
    )


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)


def tear_down(stop: Callable[[], None], server: SynapseServer, workdir: Path, keep: bool) -> None:
    """Stop what a run started (`stop`, then Synapse) with Ctrl-C ignored meanwhile, then
    keep the run's directory or remove it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop()
        server.stop()
    finally:
        signal.signal(signal.SIGINT, previous)
    if keep:
        step(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def step(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def report(r: Results) -> str:
    def row(name: str, s: list[float]) -> str:
        return (
            f"  {name:<32}{ms(statistics.median(s))}{ms(percentile(s, 95))}"
            f"{ms(statistics.fmean(s))}{ms(min(s))}{ms(max(s))}"
        )

    def per_msg(seconds: float) -> float:
        return seconds / r.n * 1000

    assert r.relay_cpu is not None and r.direct_cpu is not None
    relay, direct = r.relay.latencies, r.direct.latencies
    ratio = statistics.median(relay) / statistics.median(direct)
    p95_ratio = percentile(relay, 95) / percentile(direct, 95)
    rc, dc = r.relay_cpu.used, r.direct_cpu.used
    bot_ms = per_msg(rc["bot"])
    floor_ms = per_msg(r.floor_cpu.used["floor"]) if r.floor_cpu is not None else float("nan")
    syn_relay, syn_direct = per_msg(rc["synapse"]), per_msg(dc["synapse"])
    try:
        synapse_version = metadata.version("matrix-synapse")
    except metadata.PackageNotFoundError:
        synapse_version = "?"

    def verdict(ok: bool) -> str:
        return "within target" if ok else "OVER TARGET"

    def ratio_of(a: float, b: float) -> str:
        return f"{a / b:6.2f}" if b else "   n/a"

    lines = [
        "",
        f"relay_latency  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {os.cpu_count()} cores  "
        f"Synapse {synapse_version} (SQLite)  load avg before {r.load_before[0]:.2f}",
        f"N = {r.n} messages each, one at a time, after {r.warmup} warm-up messages",
        f"client trust: {r.trust}",
        "",
        f"  {'send -> decrypted receipt (ms)':<32}{'median':>8}{'p95':>8}{'mean':>8}"
        f"{'min':>8}{'max':>8}",
        row("relay   chatter -> bot -> vol", relay),
        row("floor   chatter -> floor -> vol", r.floor.latencies),
        row("direct  client -> client", direct),
        "",
        f"  relay / direct, median          {ratio:6.2f}x"
        f"   (target <= {TARGET_RATIO}x: {verdict(ratio <= TARGET_RATIO)})",
        f"  relay / direct, p95             {p95_ratio:6.2f}x",
        "",
        f"  CPU per message (ms)            {'relay':>8}{'direct':>8}",
        f"  {f'bot (pid {r.bot_pid})':<32}{bot_ms:8.2f}{per_msg(dc['bot']):8.2f}"
        f"   (relay target <= {TARGET_BOT_CPU_MS:g} ms: {verdict(bot_ms <= TARGET_BOT_CPU_MS)})",
        f"  {'  of which system (kernel)':<32}{per_msg(r.relay_cpu.system['bot']):8.2f}",
        f"  {'bot syncs per relayed message':<32}{r.bot_syncs / r.n:8.2f}",
        f"  {f'floor relay (pid {r.floor_pid})':<32}{floor_ms:8.2f}"
        f"           (Matrix I/O only: bench/floor_relay.py)",
        f"  {'bot minus floor':<32}{bot_ms - floor_ms:8.2f}           (the bot's own logic)",
        f"  {f'synapse (pid {r.synapse_pid})':<32}{syn_relay:8.2f}{syn_direct:8.2f}",
        f"  {'test clients (this process)':<32}{per_msg(rc['self']):8.2f}"
        f"{per_msg(dc['self']):8.2f}",
        f"  bot / synapse CPU, relay        {ratio_of(rc['bot'], rc['synapse'])}",
        f"  synapse CPU, relay / direct     {ratio_of(syn_relay, syn_direct)}x",
        "",
        f"  {'wall time of the N messages':<32}{r.relay_cpu.wall:6.1f} s relay, "
        f"{r.direct_cpu.wall:.1f} s direct (CPU ticks: {CLK_TCK}/s)",
        f"  {'load average (1 min)':<32}relay {r.relay_cpu.load[0]:.2f} -> "
        f"{r.relay_cpu.load[1]:.2f}, direct {r.direct_cpu.load[0]:.2f} -> "
        f"{r.direct_cpu.load[1]:.2f}",
        f"  {'Megolm sessions used':<32}relay: chatter {len(r.relay.sent_sessions)}, "
        f"bot {len(r.relay.got_sessions)}; direct: sender {len(r.direct.sent_sessions)}",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- main


def stop_bot(bot: SubprocessBot) -> None:
    if bot.proc is None or bot.proc.poll() is not None:
        return
    try:
        code = bot.terminate(timeout=30)
        if code != 0:
            step(f"the bot exited with {code}; its log: {bot.log_path}")
    except subprocess.TimeoutExpired:
        bot.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay_latency",
        description="Relay vs direct E2EE latency and the bot's CPU per relayed message.",
    )
    parser.add_argument("--messages", type=int, default=200, metavar="N", help="default 200")
    parser.add_argument("--warmup", type=int, default=10, metavar="W", help="default 10")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample the bot with py-spy over the relay window (.svg, .json or .txt)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (logs, stores) after the run"
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.warmup < 0:
        parser.error("--messages must be >= 1 and --warmup >= 0")

    # nio warns about every Olm session it has yet to set up; that is expected here.
    logging.getLogger("nio").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="helpline-bench-"))
    server = SynapseServer(workdir / "synapse")
    running = Running()
    keep = args.keep
    code = 1
    try:
        step(f"starting Synapse in {workdir}")
        server.start()
        results = asyncio.run(run(server, workdir, args, running))
        print(report(results), flush=True)
        code = 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        step("interrupted")
        code = 130
    except BotExited as exc:
        step(str(exc))
        if running.bot is not None:
            print(f"--- bot log (last lines) ---\n{running.bot.log_tail()}", file=sys.stderr)
        keep = True
    except Exception:
        traceback.print_exc()
        if running.bot is not None:
            print(f"--- bot log (last lines) ---\n{running.bot.log_tail()}", file=sys.stderr)
        print(server.log_tail(30), file=sys.stderr)
        keep = True
    finally:
        # A second Ctrl-C must not leave a process behind (tear_down ignores it).
        def stop() -> None:
            if running.bot is not None:
                stop_bot(running.bot)
            if running.floor is not None and running.floor.poll() is None:
                running.floor.terminate()
                try:
                    running.floor.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    running.floor.kill()

        tear_down(stop, server, workdir, keep)
    return code


if __name__ == "__main__":
    sys.exit(main())
