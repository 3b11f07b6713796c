"""Many conversations at once through the bot: intake times, relay latency, losses, load.

    python -m bench.scale [--volunteers V] [--max-sessions K] [--chatters N]
                          [--arrival uniform|burst] [--over T] [--messages M]
                          [--think MIN-MAX] [--deadline SECONDS] [--restart-at SECONDS]
                          [--json FILE] [--keep]

One run against a fresh throwaway Synapse (bot/devtools/synapse.py, 127.0.0.1, SQLite,
rate limits relaxed and each test user's message limit overridden, as the devtools do):

1. Setup (not measured): V volunteers and N chatters registered a few at a time, each an
   E2EE test client cross-signed as Element (bot/devtools/client.py), all in this process
   on one asyncio loop. The first volunteer makes the volunteers' room; the bot starts as a
   subprocess with a generated config (every volunteer with ``max_sessions`` K); every
   volunteer writes ``!på`` there and waits for the bot's "på vakt" answer.
2. Load (measured): chatters arrive evenly spread over T seconds (``uniform``) or at
   random within 10 s (``burst``). A chatter makes a DM with the bot, writes
   "I just need someone to talk to", joins the private room it is invited to and reads the
   welcome (queue place). Each volunteer client accepts every offer at once (joins the
   offer room), reads the held first words, and the two then take M turns each way:
   the volunteer writes, the chatter answers, each after a think time drawn from S (a
   turn waits at most ``--turn-timeout`` for the other side, so a lost message costs a
   turn, not the conversation). Then the volunteer writes ``!slutt``, the chatter reads
   the closing text and leaves the room.
3. Every message body carries a tag ``[bench <conversation> <c2v|v2c> <seq>]``; at the
   end every decrypted copy the clients hold is matched against what was sent: latency
   (send call to decrypted receipt), lost, duplicated, misrouted (a tag in another
   conversation's room), and the events still undecryptable.
4. Meanwhile, every ``--sample`` seconds: the bot's /metrics (queue length, active
   conversations, offers pending, ...; and how long /metrics took to answer, the closest
   outside view of the bot's event-loop lag), its outbox row count (its SQLite database
   opened read-only), its RSS, peak RSS (VmHWM) and open FDs, and the CPU of the bot,
   Synapse and this process.

``--restart-at S`` sends the bot SIGTERM S seconds into the load and starts it again on the
same data; the report gives the time from the new start to the first relayed message and
the loss/duplicate counts cover the restart.

The run ends when every conversation has ended or at the deadline; unfinished
conversations are reported with the stage they reached. It prints figures and never
asserts on them (shared/testing.md). Everything it starts is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

from bench.probes import cpu_at_exit, outbox_rows, proc_status, scrape_metrics
from bench.relay_latency import make_admin, own_cpu_times, percentile, step, stop_bot, tear_down
from bot.devtools.client import TestClient
from bot.devtools.runner import SubprocessBot, write_config
from bot.devtools.seen import ReceivedMessage
from bot.devtools.synapse import SynapseServer, free_port
from bot.devtools.users import RegisteredUser, UserFactory

FIRST_WORDS = "I just need someone to talk to"
CHATTER_TEXT = "jeg vet ikke helt hvordan jeg skal si det, men"
VOLUNTEER_TEXT = "Takk for at du forteller meg det. Hvordan har du det nå?"
TAG_RE = re.compile(r"\[bench (\d+) (c2v|v2c) (\d+)\]")
BURST_WINDOW_S = 10.0
STEP_TIMEOUT_S = 60.0  # setup steps: one client action and the bot's answer


def tag(conv: int, direction: str, seq: int) -> str:
    return f"[bench {conv:04d} {direction} {seq:02d}]"


def parse_tag(body: str | None) -> tuple[int, str, int] | None:
    match = TAG_RE.search(body or "")
    return (int(match[1]), match[2], int(match[3])) if match else None


# ------------------------------------------------------------------------- the world


@dataclass
class Conversation:
    """One chatter's way through the helpline; times are ``time.monotonic()``."""

    idx: int
    arrival_offset: float  # planned, seconds after the load started
    chatter_id: str = ""
    volunteer: str | None = None  # alias of the volunteer who accepted
    dm: str | None = None
    room: str | None = None  # the chatter's private room
    vol_room: str | None = None  # the volunteer's room for this conversation
    offers: int = 0  # offer rooms that turned out to be this conversation's
    t_first: float | None = None  # the first words sent (DM)
    t_answer: float | None = None  # the bot's answer in the DM decrypted
    t_invite: float | None = None  # invite to the private room seen by the chatter
    t_joined: float | None = None  # the chatter's join accepted by the server
    t_welcome: float | None = None  # welcome / queue place text decrypted
    t_offer: float | None = None  # invite to the offer room seen by the volunteer
    t_held: float | None = None  # the held first words decrypted by the volunteer
    t_connected: float | None = None  # "<alias> is here" decrypted by the chatter
    t_end_sent: float | None = None  # the volunteer's !slutt sent
    t_closed: float | None = None  # the chatter read the closing text
    t_left: float | None = None  # the chatter left the room
    turn_timeouts: int = 0
    stage: str = "not arrived"
    error: str | None = None


@dataclass
class Volunteer:
    alias: str
    user: RegisteredUser
    client: TestClient
    on_duty: bool = False


@dataclass
class Sample:
    """One look at the bot from outside, ``t`` seconds after the load started."""

    t: float
    queue: float | None = None
    active: float | None = None
    offers: float | None = None
    ending: float | None = None
    on_duty: float | None = None
    outbox: int | None = None
    metrics_ms: float | None = None  # /metrics answer time; None: no answer
    rss_mb: float | None = None
    hwm_mb: float | None = None
    fds: int | None = None
    bot_cpu_pct: float | None = None  # over the interval since the previous sample
    synapse_cpu_pct: float | None = None
    self_cpu_pct: float | None = None
    connected: int = 0  # conversations connected so far (the harness's view)
    ended: int = 0
    load1: float = 0.0


@dataclass
class Run:
    """Everything measured in one run (what --json writes, bar the client objects)."""

    params: dict[str, Any]
    conversations: list[Conversation] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # tag -> send call (monotonic)
    # tag -> the homeserver accepted the sender's message (the send returned): what the
    # relay adds, without the sending client's own key checks and encryption
    accepted: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    loop_lags: list[float] = field(default_factory=list)  # this process's loop, seconds
    t0: float = 0.0  # load start (monotonic)
    t_end: float = 0.0
    bot_pids: list[int] = field(default_factory=list)
    synapse_pid: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # seconds over the load
    peak_hwm_mb: float = 0.0
    restart: dict[str, Any] = field(default_factory=dict)
    bot_exit: str | None = None  # set if the bot died on its own
    setup_s: dict[str, float] = field(default_factory=dict)
    bot_metrics_end: dict[str, float] = field(default_factory=dict)
    accounting: Accounting | None = None


class BotHandle:
    """The bot subprocess, restartable on the same config and data. With ``src`` (a
    directory holding a ``bot/`` package) the bot runs from there instead of this
    checkout: ``python -m bot`` imports from its working directory first."""

    def __init__(
        self, config: Path, log: Path, metrics_port: int, db: Path, src: Path | None = None
    ) -> None:
        self.config, self.log, self.metrics_port, self.db = config, log, metrics_port, db
        self.src = src
        self.bot: SubprocessBot | None = None
        self.restarting = False
        self.cpu_of_ended: float = 0.0  # CPU seconds of bot processes that have exited

    @property
    def pid(self) -> int | None:
        """The running bot's PID; None while it is being restarted (``poll()`` would
        reap the exited process before ``terminate`` has read its CPU times)."""
        if self.restarting:
            return None
        proc = self.bot.proc if self.bot is not None else None
        return proc.pid if proc is not None and proc.poll() is None else None

    async def start(self) -> int:
        self.bot = SubprocessBot(self.config, self.log)
        with contextlib.chdir(self.src or Path.cwd()):
            self.bot.start()
        assert self.bot.proc is not None
        await self.bot.wait_ready(timeout=120)
        return self.bot.proc.pid

    async def terminate(self) -> tuple[int | None, float | None]:
        """SIGTERM; wait for the exit; return (exit code, CPU seconds of the process)."""
        assert self.bot is not None and self.bot.proc is not None
        proc = self.bot.proc
        proc.send_signal(signal.SIGTERM)
        cpu = await asyncio.wait_for(asyncio.to_thread(cpu_at_exit, proc.pid), 60)
        code = await asyncio.to_thread(proc.wait, 30)
        return code, cpu


# ------------------------------------------------------------------------------ setup


async def start_clients(
    server: SynapseServer,
    workdir: Path,
    users: list[RegisteredUser],
    concurrency: int,
    clients: list[TestClient],
) -> list[TestClient]:
    """Log in, upload and cross-sign keys for each user, ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)

    async def one(user: RegisteredUser) -> TestClient:
        async with sem:
            c = TestClient(
                server.base_url,
                user.user_id,
                user.password,
                store_dir=workdir / "clients" / user.localpart,
            )
            clients.append(c)
            await c.start()
            return c

    return list(await asyncio.gather(*(one(u) for u in users)))


async def make_staff_room(vols: list[Volunteer], bot_id: str, concurrency: int) -> str:
    """The first volunteer makes the volunteers' room, inviting the bot and the others,
    who join."""
    first = vols[0].client
    room = await first.create_encrypted_room(
        invite=[bot_id, *(v.user.user_id for v in vols[1:])], name="Vakt", timeout=STEP_TIMEOUT_S
    )
    sem = asyncio.Semaphore(concurrency)

    async def join(v: Volunteer) -> None:
        async with sem:
            await v.client.wait_for_invite(room_id=room, timeout=STEP_TIMEOUT_S)
            await v.client.join(room, timeout=STEP_TIMEOUT_S)

    await asyncio.gather(*(join(v) for v in vols[1:]))
    return room


async def go_on_duty(vols: list[Volunteer], staff_room: str, bot_id: str, concurrency: int) -> None:
    """Each volunteer writes ``!på`` and waits for the bot's answer naming them."""
    sem = asyncio.Semaphore(concurrency)

    async def one(v: Volunteer) -> None:
        async with sem:
            await v.client.send_text(staff_room, "!på", timeout=STEP_TIMEOUT_S)
            with contextlib.suppress(TimeoutError):
                await v.client.wait_for_message(
                    room_id=staff_room,
                    sender=bot_id,
                    timeout=2 * STEP_TIMEOUT_S,
                    predicate=lambda m: v.alias in (m.body or "") and "på vakt" in (m.body or ""),
                )
                v.on_duty = True

    await asyncio.gather(*(one(v) for v in vols))


# ------------------------------------------------------------------------ the load


class Load:
    """Drives the chatters and volunteers of one run and records what they see."""

    def __init__(
        self,
        run: Run,
        args: argparse.Namespace,
        bot_id: str,
        vols: list[Volunteer],
        deadline: float,
    ) -> None:
        self.run, self.args, self.bot_id = run, args, bot_id
        self.vols, self.deadline = vols, deadline
        self.rng = random.Random(args.seed)
        self.aliases = {v.alias for v in vols}
        self.vol_tasks: set[asyncio.Task[None]] = set()
        self.tasks: list[asyncio.Task[None]] = []

    def remaining(self) -> float:
        return max(0.1, self.deadline - time.monotonic())

    def think(self) -> float:
        return self.rng.uniform(self.args.think[0], self.args.think[1])

    async def send(
        self, client: TestClient, room: str, conv: int, direction: str, seq: int, text: str
    ) -> None:
        body = f"{text} {tag(conv, direction, seq)}"
        self.run.sent[tag(conv, direction, seq)] = time.monotonic()
        await client.send_text(room, body, timeout=self.remaining())
        self.run.accepted[tag(conv, direction, seq)] = time.monotonic()

    async def wait_tagged(
        self, client: TestClient, room: str, conv: int, direction: str, seq: int, timeout: float
    ) -> ReceivedMessage | None:
        """The tagged message from the bot in ``room``, or None after ``timeout``."""
        want = (conv, direction, seq)
        try:
            return await client.wait_for_message(
                room_id=room,
                sender=self.bot_id,
                timeout=min(timeout, self.remaining()),
                predicate=lambda m: parse_tag(m.body) == want,
            )
        except TimeoutError:
            return None

    # -- chatters

    async def chatter(self, c: Conversation, client: TestClient) -> None:
        """Arrive, write to the bot, join the private room, talk, read the end, leave."""
        try:
            await self._chatter(c, client)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded; the other conversations go on
            c.error = f"chatter: {type(exc).__name__}: {exc}"[:300]

    async def _chatter(self, c: Conversation, client: TestClient) -> None:
        bot = self.bot_id
        await asyncio.sleep(max(0.0, self.run.t0 + c.arrival_offset - time.monotonic()))
        c.stage = "arrived"
        c.dm = await client.create_encrypted_room(
            invite=[bot], is_direct=True, timeout=self.remaining()
        )
        await client.wait_for_join(c.dm, bot, timeout=self.remaining())
        c.t_first = time.monotonic()
        await self.send(client, c.dm, c.idx, "c2v", 0, FIRST_WORDS)
        c.stage = "first words sent"
        invite = await client.wait_until(
            lambda: next((i for i in client.invites if i.sender == bot), None),
            self.remaining(),
            "invite from the bot",
        )
        c.t_invite, c.room = invite.received_at, invite.room_id
        c.stage = "invited"
        await client.join(c.room, timeout=self.remaining())
        c.t_joined = time.monotonic()
        welcome = await client.wait_for_message(
            room_id=c.room,
            sender=bot,
            timeout=self.remaining(),
            predicate=lambda m: "køen" in (m.body or "") or "queue" in (m.body or ""),
        )
        c.t_welcome = welcome.received_at
        with contextlib.suppress(TimeoutError):  # came long before: read from what arrived
            answer = await client.wait_for_message(room_id=c.dm, sender=bot, timeout=5)
            c.t_answer = answer.received_at
        c.stage = "welcomed (queued)"
        joined = await client.wait_for_message(
            room_id=c.room,
            sender=bot,
            timeout=self.remaining(),
            predicate=lambda m: any(a in (m.body or "") for a in self.aliases),
        )
        c.t_connected = joined.received_at
        c.stage = "connected"
        for seq in range(1, self.args.messages + 1):
            got = await self.wait_tagged(client, c.room, c.idx, "v2c", seq, self.args.turn_timeout)
            c.turn_timeouts += got is None
            await asyncio.sleep(self.think())
            await self.send(client, c.room, c.idx, "c2v", seq, CHATTER_TEXT)
            c.stage = f"talking (chatter sent {seq})"
        await client.wait_for_message(
            room_id=c.room,
            sender=bot,
            timeout=self.remaining(),
            predicate=lambda m: "avsluttet" in (m.body or "") or "ended" in (m.body or ""),
        )
        c.t_closed = time.monotonic()
        c.stage = "closed"
        await client.client.room_leave(c.room)
        c.t_left = time.monotonic()
        c.stage = "left"

    # -- volunteers

    async def volunteer(self, v: Volunteer) -> None:
        """Accept every offer from the bot at once: each in a task of its own."""
        while True:
            try:
                invite = await v.client.wait_for_invite(timeout=3600)
            except TimeoutError:
                continue
            if invite.sender != self.bot_id:
                continue
            task = asyncio.create_task(self.accept(v, invite.room_id, invite.received_at))
            self.vol_tasks.add(task)
            task.add_done_callback(self.vol_tasks.discard)

    async def accept(self, v: Volunteer, room: str, offered_at: float) -> None:
        c: Conversation | None = None
        try:
            await v.client.join(room, timeout=self.remaining())
            held = await v.client.wait_for_message(
                room_id=room,
                sender=self.bot_id,
                timeout=self.remaining(),
                predicate=lambda m: (parse_tag(m.body) or (0, "", 0))[1:] == ("c2v", 0),
            )
            idx = parse_tag(held.body)[0]  # type: ignore[index]
            c = self.run.conversations[idx]
            c.offers += 1
            c.volunteer, c.vol_room, c.t_offer, c.t_held = (
                v.alias,
                room,
                offered_at,
                held.received_at,
            )
            for seq in range(1, self.args.messages + 1):
                await asyncio.sleep(self.think())
                await self.send(v.client, room, idx, "v2c", seq, VOLUNTEER_TEXT)
                got = await self.wait_tagged(
                    v.client, room, idx, "c2v", seq, self.args.turn_timeout
                )
                c.turn_timeouts += got is None
            c.t_end_sent = time.monotonic()
            await v.client.send_text(room, "!slutt", timeout=self.remaining())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if c is not None:
                c.error = f"volunteer {v.alias}: {type(exc).__name__}: {exc}"[:300]

    # -- running it

    def done(self) -> bool:
        return all(t.done() for t in self.tasks) and not self.vol_tasks


async def sample_loop(
    run: Run, load: Load, handle: BotHandle, server: SynapseServer, every: float
) -> None:
    """Look at the bot every ``every`` seconds (see :class:`Sample`)."""
    prev: dict[str, tuple[float, float]] = {}

    def cpu_pct(name: str, cpu: float | None, now: float) -> float | None:
        if cpu is None:
            prev.pop(name, None)
            return None
        last = prev.get(name)
        prev[name] = (cpu, now)
        return None if last is None else 100 * (cpu - last[0]) / max(1e-6, now - last[1])

    async with aiohttp.ClientSession() as http:
        while True:
            now = time.monotonic()
            s = Sample(t=now - run.t0, load1=os.getloadavg()[0])
            bot = proc_status(handle.pid)
            scrape = await scrape_metrics(http, handle.metrics_port) if bot else None
            if scrape is not None:
                v = scrape.values
                s.queue = v.get("helpline_queue_length")
                s.active = v.get("helpline_active_conversations")
                s.offers = v.get("helpline_offers_pending")
                s.ending = v.get("helpline_conversations_ending")
                s.on_duty = v.get("helpline_volunteers_on_duty")
                s.metrics_ms = scrape.seconds * 1000
                run.bot_metrics_end = v
            if not load.args.no_outbox:
                s.outbox = await asyncio.to_thread(outbox_rows, handle.db)
            if bot is not None:
                s.rss_mb, s.hwm_mb, s.fds = bot.rss_mb, bot.hwm_mb, bot.fds
                run.peak_hwm_mb = max(run.peak_hwm_mb, bot.hwm_mb)
            s.bot_cpu_pct = cpu_pct(f"bot{handle.pid}", bot.cpu_s if bot else None, now)
            syn = proc_status(server.pid)
            s.synapse_cpu_pct = cpu_pct("synapse", syn.cpu_s if syn else None, now)
            s.self_cpu_pct = cpu_pct("self", sum(own_cpu_times()), now)
            s.connected = sum(c.t_connected is not None for c in run.conversations)
            s.ended = sum(c.t_closed is not None for c in run.conversations)
            run.samples.append(s)
            await asyncio.sleep(max(0.0, every - (time.monotonic() - now)))


async def loop_lag(run: Run, every: float = 0.25) -> None:
    """How late this process's own loop wakes up: if the clients' process is overloaded,
    the latencies it measures are inflated, and this says by how much."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(every)
        run.loop_lags.append(max(0.0, loop.time() - before - every))


async def restart_bot(run: Run, handle: BotHandle, at: float) -> None:
    """SIGTERM the bot ``at`` seconds into the load, then start it again."""
    await asyncio.sleep(max(0.0, run.t0 + at - time.monotonic()))
    handle.restarting = True
    try:
        step(f"restart: SIGTERM to the bot (pid {handle.pid}) at {at:.0f} s")
        t_term = time.monotonic()
        code, cpu = await handle.terminate()
        handle.cpu_of_ended += (cpu or 0.0) - run.cpu.get("bot_start", 0.0)
        t_start = time.monotonic()
        wall_start = time.time()
        pid = await handle.start()
        run.bot_pids.append(pid)
        run.restart = {
            "at": at,
            "exit_code": code,
            "stop_s": t_start - t_term,
            "ready_s": time.monotonic() - t_start,
            "t_start": t_start,
            "wall_start_ms": wall_start * 1000,
            "cpu_first_process": cpu,
        }
        step(f"restart: the bot is back (pid {pid}) after {time.monotonic() - t_term:.1f} s")
    finally:
        handle.restarting = False


async def watch_bot(run: Run, handle: BotHandle) -> None:
    """Return when the bot exits on its own (not while being restarted)."""
    while True:
        await asyncio.sleep(0.5)
        proc = handle.bot.proc if handle.bot is not None else None
        if not handle.restarting and proc is not None and proc.poll() is not None:
            run.bot_exit = f"the bot exited with code {proc.returncode} during the load"
            return


async def drive(
    run: Run,
    args: argparse.Namespace,
    server: SynapseServer,
    workdir: Path,
    clients: list[TestClient],
    handles: list[BotHandle],
) -> None:
    """Setup, then the load, until every conversation ended or the deadline passed."""
    setup_started = time.monotonic()
    admin = await make_admin(server)
    users = UserFactory(
        server.base_url,
        server.shared_secret,
        admin.access_token,
        concurrency=args.register_concurrency,
    )
    step(f"registering 1 bot, {args.volunteers} volunteers, {args.chatters} chatters")
    bot_user = await users.create("bot")
    vol_users = await users.create_many(args.volunteers, "vol")
    chat_users = await users.create_many(args.chatters, "chatter")
    run.setup_s["register"] = time.monotonic() - setup_started
    bot_id = bot_user.user_id

    t = time.monotonic()
    step(
        f"starting {args.volunteers + args.chatters} E2EE clients, "
        f"{args.client_concurrency} at a time"
    )
    vol_clients = await start_clients(server, workdir, vol_users, args.client_concurrency, clients)
    chat_clients = await start_clients(
        server, workdir, chat_users, args.client_concurrency, clients
    )
    run.setup_s["clients"] = time.monotonic() - t
    vols = [
        Volunteer(f"Frivillig{i + 1:02d}", u, c)
        for i, (u, c) in enumerate(zip(vol_users, vol_clients, strict=True))
    ]

    t = time.monotonic()
    step("making the volunteers' room")
    staff_room = await make_staff_room(vols, bot_id, args.client_concurrency)
    metrics_port = free_port()
    data_dir = workdir / "bot-data"
    config = write_config(
        workdir / "bot.yaml",
        homeserver=server.base_url,
        bot_user=bot_id,
        bot_password=bot_user.password,
        data_dir=data_dir,
        staff_room=staff_room,
        volunteers=[
            {
                "user_id": v.user.user_id,
                "alias": v.alias,
                "languages": ["nb", "en"],
                "max_sessions": args.max_sessions,
            }
            for v in vols
        ],
        logging={"level": args.bot_log_level},
        http={"host": "127.0.0.1", "port": metrics_port},
        limits={"queue_max_length": max(50, args.chatters + 10)},
    )
    src = export_bot(args.bot_ref, workdir / "bot-src") if args.bot_ref else None
    handle = BotHandle(config, workdir / "bot.log", metrics_port, data_dir / "helpline.db", src)
    handles.append(handle)
    step("starting the bot")
    run.bot_pids.append(await handle.start())
    await vols[0].client.wait_for_join(staff_room, bot_id, timeout=STEP_TIMEOUT_S)
    step("volunteers going on duty")
    await go_on_duty(vols, staff_room, bot_id, args.client_concurrency)
    run.setup_s["staff_and_duty"] = time.monotonic() - t
    run.params["volunteers_on_duty"] = sum(v.on_duty for v in vols)

    # ---- the load
    rng = random.Random(args.seed)
    if args.arrival == "burst":
        offsets = sorted(rng.uniform(0, BURST_WINDOW_S) for _ in range(args.chatters))
    else:
        offsets = [i * args.over / args.chatters for i in range(args.chatters)]
    run.conversations = [
        Conversation(i, off, chat_users[i].user_id) for i, off in enumerate(offsets)
    ]
    run.t0 = time.monotonic()
    deadline = run.t0 + args.deadline
    load = Load(run, args, bot_id, vols, deadline)
    run.synapse_pid = server.pid
    cpu0 = {"bot": proc_status(handle.pid), "synapse": proc_status(server.pid)}
    run.cpu["bot_start"] = cpu0["bot"].cpu_s if cpu0["bot"] else 0.0
    run.cpu["synapse_start"] = cpu0["synapse"].cpu_s if cpu0["synapse"] else 0.0
    run.cpu["self_start"] = sum(own_cpu_times())
    step(f"load: {args.chatters} chatters ({args.arrival}), deadline {args.deadline:.0f} s")
    helpers = [
        asyncio.create_task(sample_loop(run, load, handle, server, args.sample)),
        asyncio.create_task(loop_lag(run)),
        *(asyncio.create_task(load.volunteer(v)) for v in vols),
    ]
    if args.restart_at is not None:
        helpers.append(asyncio.create_task(restart_bot(run, handle, args.restart_at)))
    load.tasks = [
        asyncio.create_task(load.chatter(c, chat_clients[c.idx])) for c in run.conversations
    ]
    watcher = asyncio.create_task(watch_bot(run, handle))
    try:
        last_note = time.monotonic()
        while not load.done() and time.monotonic() < deadline and not watcher.done():
            await asyncio.sleep(0.5)
            if time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                s = run.samples[-1] if run.samples else None
                step(
                    f"t={time.monotonic() - run.t0:.0f}s connected "
                    f"{sum(c.t_connected is not None for c in run.conversations)}"
                    f"/{args.chatters}, closed "
                    f"{sum(c.t_closed is not None for c in run.conversations)}, "
                    f"bot queue {s.queue if s else '?'} active {s.active if s else '?'} "
                    f"outbox {s.outbox if s else '?'}"
                )
    finally:
        run.t_end = time.monotonic()
        bot_now = proc_status(handle.pid)
        run.cpu["bot"] = (
            handle.cpu_of_ended
            + (bot_now.cpu_s if bot_now else 0.0)
            - (run.cpu["bot_start"] if not run.restart else 0.0)
        )
        syn_now = proc_status(server.pid)
        run.cpu["synapse"] = (syn_now.cpu_s if syn_now else 0.0) - run.cpu["synapse_start"]
        run.cpu["self"] = sum(own_cpu_times()) - run.cpu["self_start"]
        if bot_now is not None:
            run.peak_hwm_mb = max(run.peak_hwm_mb, bot_now.hwm_mb)
        for task in [*load.tasks, *load.vol_tasks, *helpers, watcher]:
            task.cancel()
        for task in [*load.tasks, *list(load.vol_tasks), *helpers, watcher]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    # The bot, Synapse and the clients are stopped by main(); the clients' messages
    # stay in memory for the accounting.
    run.accounting = account(run, bot_id, vols, chat_clients)


# ------------------------------------------------------------------------ accounting


@dataclass
class Accounting:
    sent: int = 0
    delivered: int = 0  # tags received at least once in their own conversation
    lost: list[str] = field(default_factory=list)  # never arrived; conversation finished
    pending: list[str] = field(default_factory=list)  # never arrived; conversation unfinished
    duplicated: int = 0  # extra copies in the right room
    misrouted: int = 0  # copies in a room of another conversation
    unknown_room: int = 0  # tagged copies in a room no conversation was mapped to
    undecryptable: int = 0  # events in conversation rooms never decrypted
    undecryptable_staff: int = 0
    latency: dict[str, list[float]] = field(default_factory=lambda: {"c2v": [], "v2c": []})
    # from the homeserver accepting the sender's message to the decrypted receipt
    relay: dict[str, list[float]] = field(default_factory=lambda: {"c2v": [], "v2c": []})
    first_after_restart: float | None = None  # seconds from the new start


def account(run: Run, bot_id: str, vols: list[Volunteer], chatters: list[TestClient]) -> Accounting:
    """Match every tagged copy the clients decrypted against what was sent."""
    acc = Accounting(sent=len(run.sent))
    room_conv: dict[str, int] = {}
    for c in run.conversations:
        if c.room:
            room_conv[c.room] = c.idx
        if c.vol_room:
            room_conv[c.vol_room] = c.idx
    first_copy: dict[str, ReceivedMessage] = {}
    copies: Counter[str] = Counter()
    restart_ms = run.restart.get("wall_start_ms")
    restart_t = run.restart.get("t_start")
    for client in [*(v.client for v in vols), *chatters]:
        for m in client.messages:
            if m.sender != bot_id:
                continue
            parsed = parse_tag(m.body)
            if parsed is None:
                continue
            conv, direction, seq = parsed
            key = tag(conv, direction, seq)
            own = room_conv.get(m.room_id)
            if m.room_id == run.conversations[conv].dm:
                continue  # never expected: the bot does not echo in the DM
            if own is None:
                acc.unknown_room += 1
                continue
            if own != conv:
                acc.misrouted += 1
                continue
            copies[key] += 1
            if key not in first_copy:
                first_copy[key] = m
            if restart_ms is not None and restart_t is not None and m.server_ts >= restart_ms:
                after = m.received_at - restart_t
                if acc.first_after_restart is None or after < acc.first_after_restart:
                    acc.first_after_restart = after
        acc.undecryptable += sum(1 for u in client.undecryptable if u.room_id in room_conv)
        acc.undecryptable_staff += sum(
            1 for u in client.undecryptable if u.room_id not in room_conv
        )
    for key, sent_at in run.sent.items():
        got = first_copy.get(key)
        parsed = parse_tag(key)
        assert parsed is not None
        if got is None:
            finished = run.conversations[parsed[0]].t_closed is not None
            (acc.lost if finished else acc.pending).append(key)
            continue
        acc.delivered += 1
        acc.duplicated += copies[key] - 1
        if parsed[2] > 0:  # seq 0 is the held first words: an intake, not a relay
            acc.latency[parsed[1]].append(got.received_at - sent_at)
            accepted = run.accepted.get(key)
            if accepted is not None:
                acc.relay[parsed[1]].append(got.received_at - accepted)
    return acc


# -------------------------------------------------------------------------- reporting


def stats_row(
    name: str,
    values: list[float],
    total: int,
    unit: float = 1.0,
    fmt: str = "8.2f",
    pcts: tuple[int, ...] = (50, 95),
) -> str:
    if not values:
        return f"  {name:<38}{'-':>8}   n=0/{total}"
    cols = "".join(f"{percentile(values, p) * unit:{fmt}}" for p in pcts)
    return f"  {name:<38}{cols}{max(values) * unit:{fmt}}   n={len(values)}/{total}"


def report(run: Run) -> str:
    p = run.params
    acc = run.accounting
    assert acc is not None
    convs = run.conversations
    n = len(convs)
    wall = run.t_end - run.t0
    first_on_duty = next((s.on_duty for s in run.samples if s.on_duty is not None), None)
    lines = [
        "",
        f"scale  {p['date']}  {p['cores']} cores  Synapse {p['synapse']} (SQLite)  "
        f"load avg before {p['load_before'][0]:.2f} {p['load_before'][1]:.2f} "
        f"{p['load_before'][2]:.2f}  bot at {p['commit']}"
        + (f" ({p['bot_ref']})" if p.get("bot_ref") else ""),
        f"V={p['volunteers']} volunteers (max_sessions {p['max_sessions']}, "
        f"on duty: {p.get('volunteers_on_duty', '?')} saw the answer, "
        f"{fmt_count(first_on_duty)} by the bot's /metrics), N={p['chatters']} chatters "
        f"{p['arrival']}"
        + (
            f" over {p['over']:g} s"
            if p["arrival"] == "uniform"
            else f" within {BURST_WINDOW_S:g} s"
        )
        + f", M={p['messages']} each way, think {p['think'][0]:g}-{p['think'][1]:g} s, "
        f"deadline {p['deadline']:g} s"
        + (f", restart at {p['restart_at']:g} s" if p.get("restart_at") is not None else ""),
        f"setup: register {run.setup_s.get('register', 0):.1f} s, clients "
        f"{run.setup_s.get('clients', 0):.1f} s, staff room + on duty "
        f"{run.setup_s.get('staff_and_duty', 0):.1f} s; load ran {wall:.1f} s",
        "",
        f"  {'intake, from the first words (s)':<38}{'p50':>8}{'p95':>8}{'max':>8}",
    ]

    def stage(name: str, attr: str) -> None:
        values = [
            getattr(c, attr) - c.t_first
            for c in convs
            if c.t_first is not None and getattr(c, attr) is not None
        ]
        lines.append(stats_row(name, values, n))

    stage("-> the bot's answer read in the DM", "t_answer")
    stage("-> invited to the private room", "t_invite")
    stage("-> welcome / queue place read", "t_welcome")
    values = [
        c.t_welcome - c.t_joined
        for c in convs
        if c.t_joined is not None and c.t_welcome is not None
    ]
    lines.append(stats_row("   (of it: from the join to the welcome)", values, n))
    stage("-> offer seen by a volunteer", "t_offer")
    stage("-> first words read by the volunteer", "t_held")
    stage('-> connected ("<alias> is here")', "t_connected")
    stage("-> closing text read", "t_closed")
    lines += [
        "",
        f"  {'relay, send -> decrypted receipt (ms)':<38}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}",
    ]
    sent_by_dir = Counter(parse_tag(k)[1] for k in run.sent if parse_tag(k)[2] > 0)  # type: ignore[index]
    for direction, name in (("c2v", "chatter -> volunteer"), ("v2c", "volunteer -> chatter")):
        lines.append(
            stats_row(
                name, acc.latency[direction], sent_by_dir[direction], 1000, "8.0f", (50, 95, 99)
            )
        )
    lines.append(
        f"  {'relay, server accepted -> receipt (ms)':<38}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}"
    )
    for direction, name in (("c2v", "chatter -> volunteer"), ("v2c", "volunteer -> chatter")):
        lines.append(
            stats_row(
                name, acc.relay[direction], sent_by_dir[direction], 1000, "8.0f", (50, 95, 99)
            )
        )
    lines += [
        "",
        f"  messages: sent {acc.sent} (incl. {sum(c.t_first is not None for c in convs)} first "
        f"words), delivered {acc.delivered}, lost {len(acc.lost)}, duplicated "
        f"{acc.duplicated}, misrouted {acc.misrouted}, in unmapped rooms {acc.unknown_room}",
        f"  not delivered by the end in unfinished conversations: {len(acc.pending)}"
        " (held or stuck in the bot, or lost: the run cannot tell)",
        f"  undecryptable at the end: {acc.undecryptable} in conversation rooms, "
        f"{acc.undecryptable_staff} elsewhere (volunteers' room)",
    ]
    if acc.lost:
        lines.append(
            f"  lost: {', '.join(sorted(acc.lost)[:12])}" + (" ..." if len(acc.lost) > 12 else "")
        )
    relayed = acc.delivered
    cpu = run.cpu

    def per(seconds: float) -> str:
        return f"{seconds / relayed * 1000:8.1f}" if relayed else "     n/a"

    lines += [
        "",
        f"  CPU over the load ({wall:.0f} s, {relayed} messages delivered)   total s   ms/msg",
        f"  {'bot ' + str(run.bot_pids):<38}{cpu.get('bot', 0):8.1f}{per(cpu.get('bot', 0))}",
        f"  {'synapse (pid ' + str(run.synapse_pid) + ')':<38}{cpu.get('synapse', 0):8.1f}"
        f"{per(cpu.get('synapse', 0))}",
        f"  {'test clients (this process)':<38}{cpu.get('self', 0):8.1f}{per(cpu.get('self', 0))}",
        f"  bot / synapse CPU                     "
        f"{(cpu.get('bot', 0) / cpu['synapse']) if cpu.get('synapse') else float('nan'):8.2f}",
        "  (ms/msg divides all the bot's work over the load - intake, rooms, notices, purges -",
        "   by the relayed messages delivered)",
        "",
    ]
    metrics_ms = [s.metrics_ms for s in run.samples if s.metrics_ms is not None]
    fds = [s.fds for s in run.samples if s.fds is not None]
    no_answer = sum(1 for s in run.samples if s.metrics_ms is None)
    lags = run.loop_lags
    lines += [
        f"  bot peak RSS (VmHWM) {run.peak_hwm_mb:.0f} MB; open FDs max "
        f"{max(fds) if fds else '?'} (median {statistics.median(fds) if fds else '?'})",
        "  bot /metrics answer time (ms, outside view of its loop lag): "
        + (
            f"p50 {percentile(metrics_ms, 50):.1f}  p95 {percentile(metrics_ms, 95):.1f}  "
            f"max {max(metrics_ms):.1f}"
            if metrics_ms
            else "no answers"
        )
        + f"; no answer {no_answer}/{len(run.samples)}",
        "  this process's loop lag (ms): "
        + (
            f"p50 {percentile(lags, 50) * 1000:.1f}  p95 {percentile(lags, 95) * 1000:.1f}  "
            f"max {max(lags) * 1000:.0f}"
            if lags
            else "-"
        ),
        bot_relay_histogram(run.bot_metrics_end),
    ]
    if run.restart:
        r = run.restart
        first = acc.first_after_restart
        lines += [
            "",
            f"  restart at {r['at']:.0f} s: exit code {r['exit_code']}, stop took "
            f"{r['stop_s']:.1f} s, new start to 'serving' {r['ready_s']:.1f} s, new start to "
            "first relayed message "
            + (f"{first:.1f} s" if first is not None else "NONE before the end"),
        ]
    if run.bot_exit:
        lines += ["", f"  !! {run.bot_exit}"]
    lines += [
        "",
        "  timeline (bot /metrics, its outbox, what the harness saw)",
        f"  {'t s':>5}{'queue':>6}{'active':>7}{'offers':>7}{'ending':>7}{'outbox':>7}"
        f"{'conn':>6}{'closed':>7}{'bot%':>6}{'syn%':>6}{'self%':>6}{'rssMB':>6}"
        f"{'fds':>5}{'/m ms':>7}{'load':>6}",
    ]
    samples = run.samples
    stride = max(1, len(samples) // 40)
    for s in samples[::stride]:

        def f(v: float | None, w: int, d: int = 0) -> str:
            return f"{v:{w}.{d}f}" if v is not None else f"{'-':>{w}}"

        lines.append(
            f"  {s.t:5.0f}{f(s.queue, 6)}{f(s.active, 7)}{f(s.offers, 7)}{f(s.ending, 7)}"
            f"{f(s.outbox, 7)}{s.connected:6d}{s.ended:7d}{f(s.bot_cpu_pct, 6)}"
            f"{f(s.synapse_cpu_pct, 6)}{f(s.self_cpu_pct, 6)}{f(s.rss_mb, 6)}{f(s.fds, 5)}"
            f"{f(s.metrics_ms, 7, 1)}{s.load1:6.2f}"
        )
    unfinished = [c for c in convs if c.t_closed is None]
    lines += ["", f"  conversations finished (closing text read): {n - len(unfinished)}/{n}"]
    if unfinished:
        by_stage = Counter(c.stage for c in unfinished)
        lines.append(
            "  unfinished, by the last stage reached: "
            + ", ".join(f"{k}: {v}" for k, v in by_stage.most_common())
        )
        errors = Counter(
            (c.error or "").split(":")[0] + ": " + (c.error or "").split(": ", 1)[-1][:80]
            for c in unfinished
            if c.error
        )
        for text, count in errors.most_common(5):
            lines.append(f"    {count} x {text}")
    lines.append(
        f"  turns that waited out --turn-timeout: "
        f"{sum(c.turn_timeouts for c in convs)}; conversations offered twice: "
        f"{sum(c.offers > 1 for c in convs)}"
    )
    lines.append("")
    return "\n".join(lines)


def fmt_count(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def bot_relay_histogram(values: dict[str, float]) -> str:
    """The bot's own relay latency (its /metrics: from its sync delivering a message to
    the homeserver accepting the relayed copy), from the last scrape: the part of the
    end-to-end latency spent inside the bot. Counts only the bot process running at the
    end (a restart starts it from zero)."""
    count = values.get("helpline_relay_latency_seconds_count")
    if not count:
        return "  bot's own relay latency (/metrics): nothing recorded"
    total = values.get("helpline_relay_latency_seconds_sum", 0.0)

    def share(le: str) -> str:
        n = values.get(f'helpline_relay_latency_seconds_bucket{{le="{le}"}}', 0.0)
        return f"{100 * n / count:.0f}%"

    return (
        f"  bot's own relay latency (/metrics, its receipt -> homeserver accepted): "
        f"n={count:.0f} mean {total / count * 1000:.0f} ms, <=0.25 s {share('0.25')}, "
        f"<=1 s {share('1.0')}, <=5 s {share('5.0')}"
    )


def to_json(run: Run) -> dict[str, Any]:
    acc = run.accounting
    assert acc is not None
    t0 = run.t0

    def rel(c: Conversation) -> dict[str, Any]:
        d = asdict(c)
        for k, v in d.items():
            if k.startswith("t_") and isinstance(v, float):
                d[k] = v - t0
        d.pop("chatter_id", None)
        return d

    return {
        "params": run.params,
        "setup_s": run.setup_s,
        "load_s": run.t_end - t0,
        "conversations": [rel(c) for c in run.conversations],
        "sent": {k: v - t0 for k, v in run.sent.items()},
        "accepted": {k: v - t0 for k, v in run.accepted.items()},
        "accounting": asdict(acc),
        "cpu_s": run.cpu,
        "bot_pids": run.bot_pids,
        "synapse_pid": run.synapse_pid,
        "peak_hwm_mb": run.peak_hwm_mb,
        "restart": {k: v for k, v in run.restart.items() if k != "t_start"},
        "bot_exit": run.bot_exit,
        "samples": [asdict(s) for s in run.samples],
        "loop_lag_s": run.loop_lags,
        "bot_metrics_last": run.bot_metrics_end,
    }


# ------------------------------------------------------------------------------ main


def export_bot(ref: str, dest: Path) -> Path:
    """The ``bot/`` package as committed at ``ref`` (``git archive``), in ``dest``: to
    measure another branch's bot with this harness, without touching its worktree."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "bot"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def bot_commit(ref: str | None) -> str:
    """Short hash of the bot measured: ``--bot-ref``, or this checkout's HEAD (with "+"
    when bot/ has uncommitted changes)."""
    out = subprocess.run(
        ["git", "rev-parse", "--short", ref or "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if ref is None:
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "bot"]).returncode
        out += "+" if dirty else ""
    return out or "?"


def think_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    a, b = float(low), float(high or low)
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError("MIN-MAX seconds, MIN <= MAX")
    return a, b


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="Many E2EE conversations at once through the bot; prints figures.",
    )
    ap.add_argument("--volunteers", "-V", type=int, default=50)
    ap.add_argument("--max-sessions", type=int, default=3, help="per volunteer (default 3)")
    ap.add_argument("--chatters", "-N", type=int, default=150)
    ap.add_argument(
        "--arrival",
        choices=("uniform", "burst"),
        default="uniform",
        help=f"uniform: evenly over --over; burst: at random within {BURST_WINDOW_S:g} s",
    )
    ap.add_argument(
        "--over",
        "-T",
        type=float,
        default=150.0,
        metavar="T",
        help="seconds the arrivals spread over (uniform; default 150)",
    )
    ap.add_argument("--messages", "-M", type=int, default=3, help="each way (default 3)")
    ap.add_argument(
        "--think",
        type=think_range,
        default=(20.0, 40.0),
        metavar="MIN-MAX",
        help="think time before each message, seconds (default 20-40)",
    )
    ap.add_argument(
        "--turn-timeout",
        type=float,
        default=None,
        help="longest wait for the other side's message before going on "
        "(default: max think time + 60 s)",
    )
    ap.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="seconds after the load starts (default T + 2*M*max think + 180)",
    )
    ap.add_argument(
        "--restart-at",
        type=float,
        default=None,
        metavar="SECONDS",
        help="SIGTERM the bot this long into the load, then start it again",
    )
    ap.add_argument("--sample", type=float, default=5.0, help="sampling interval, s (5)")
    ap.add_argument(
        "--no-outbox",
        action="store_true",
        help="do not read the bot's database (read-only) for the outbox size",
    )
    ap.add_argument(
        "--client-concurrency",
        type=int,
        default=8,
        help="clients started (logged in, cross-signed) at once (8)",
    )
    ap.add_argument(
        "--register-concurrency", type=int, default=4, help="accounts registered at once (4)"
    )
    ap.add_argument(
        "--bot-ref",
        metavar="GIT_REF",
        help="run the bot as committed at this ref (e.g. main), not this checkout's",
    )
    ap.add_argument(
        "--bot-log-level",
        default="INFO",
        help="the bot's log level (DEBUG shows each effect's time; the log is in the temp dir)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, stores)")
    args = ap.parse_args(argv)
    if args.volunteers < 1 or args.chatters < 1 or args.messages < 0 or args.max_sessions < 1:
        ap.error("--volunteers, --chatters, --max-sessions >= 1 and --messages >= 0")
    if args.turn_timeout is None:
        args.turn_timeout = args.think[1] + 60
    if args.deadline is None:
        spread = args.over if args.arrival == "uniform" else BURST_WINDOW_S
        args.deadline = spread + 2 * args.messages * args.think[1] + 180
    return args


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    try:
        synapse = metadata.version("matrix-synapse")
    except metadata.PackageNotFoundError:
        synapse = "?"
    commit = bot_commit(args.bot_ref)
    return {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "cores": os.cpu_count(),
        "load_before": os.getloadavg(),
        "synapse": synapse,
        "commit": commit,
        "volunteers": args.volunteers,
        "max_sessions": args.max_sessions,
        "chatters": args.chatters,
        "arrival": args.arrival,
        "over": args.over,
        "messages": args.messages,
        "think": list(args.think),
        "deadline": args.deadline,
        "turn_timeout": args.turn_timeout,
        "restart_at": args.restart_at,
        "seed": args.seed,
        "bot_ref": args.bot_ref,
    }


def raise_fd_limit() -> None:
    """Synapse and the bot inherit this: ~2 FDs per client in Synapse, more here."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def close_all(clients: list[TestClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("nio").setLevel(logging.CRITICAL)
    logging.getLogger("bot").setLevel(logging.WARNING)
    raise_fd_limit()
    run = Run(params=params_of(args))
    workdir = Path(tempfile.mkdtemp(prefix="helpline-scale-"))
    server = SynapseServer(workdir / "synapse")
    clients: list[TestClient] = []
    handles: list[BotHandle] = []
    keep, code = args.keep, 1

    async def go() -> None:
        main_task = asyncio.current_task()
        assert main_task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
        try:
            await drive(run, args, server, workdir, clients, handles)
        finally:
            for h in handles:
                if h.bot is not None:
                    await asyncio.to_thread(stop_bot, h.bot)
            await close_all(clients)

    try:
        step(f"starting Synapse in {workdir}")
        server.start()
        asyncio.run(go())
        print(report(run), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(to_json(run), indent=1, default=str))
            step(f"raw figures in {args.json}")
        code = 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        step("interrupted")
        code = 130
    except Exception:
        traceback.print_exc()
        for h in handles:
            if h.bot is not None:
                print(f"--- bot log (last lines) ---\n{h.bot.log_tail()}", file=sys.stderr)
        print(server.log_tail(30), file=sys.stderr)
        keep = True
    finally:

        def stop() -> None:
            for h in handles:
                if h.bot is not None:
                    stop_bot(h.bot)

        tear_down(stop, server, workdir, keep)
    return code


if __name__ == "__main__":
    sys.exit(main())
