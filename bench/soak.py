"""A kill -9 soak: the bot is SIGKILLed again and again while conversations are in every
phase, and started again at once on the same data dir.

    python -m bench.soak [--trials N] [--seed S] [--keep]

One fresh Synapse (bot/devtools/synapse.py), the bot as a subprocess (SubprocessBot) with
short limits, three cross-signed E2EE volunteers (two conversations each) and more chatters
than seats, so that some wait in the queue. Every chatter keeps starting conversations,
one after another, each following one of three plans:

- ``end``:      messages both ways, then, once everything sent has arrived, ``!slutt``
                from one side (so every message must arrive);
- ``duration``: messages both ways until the maximum duration ends it (a timer);
- ``idle``:     a few messages, then the chatter falls silent until the idle timeout.

Chatters also write while they wait in the queue (held, then handed to the volunteer).
Every body carries a tag ``[soak c<conversation> <cv|vc> <seq>]`` (cv: chatter to
volunteer) and nothing else of interest: the report prints tags, never bodies.

Each trial: run for a random time, SIGKILL the bot (recording the phase every
conversation was in), start it again at once; the clients keep sending. After each
restart the trial's line gives the running counts; at the end the chatters finish their
conversations, and the summary counts:

- lost / duplicated / out of order, per (conversation, direction), from what each side
  decrypted from the bot;
- timers missed: a conversation still open (no closing text at the chatter) well past
  the deadline its timers set (queue wait, maximum duration, chatter idle), counting the
  bot's downtime as grace;
- purges unfinished: a room the bot made for a conversation that ended, still known to
  the admin API (not 404) with the bot still in it;
- restart-to-first-relay: from starting the process to the first relayed message whose
  server timestamp is after the start.

It prints figures and never asserts; it exits 0 even when it finds losses (they are
printed loudly, with the conversation, the tag and the phase at the kill).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import secrets
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.relay_latency import make_admin, step, stop_bot, tear_down
from bot.devtools.client import TestClient
from bot.devtools.runner import SubprocessBot, write_config
from bot.devtools.seen import ReceivedMessage
from bot.devtools.synapse import SynapseServer
from bot.devtools.users import RegisteredUser, UserFactory, admin_request, q

# ----------------------------------------------------------------------------- settings

VOLUNTEERS = 3
SEATS = 2  # conversations per volunteer at once
CHATTERS = 9  # more than VOLUNTEERS * SEATS: some always wait

# Short limits, so that warnings, timeouts and purges happen within seconds. The config
# takes durations down to 1s (0 where it allows zero); these are the smallest that still
# leave a conversation time to relay a few messages and to be killed in each phase.
LIMITS = {
    "max_duration": "30s",
    "warn_before": ["10s"],
    "max_extension": "0s",
    "chatter_idle": "14s",
    "idle_warning_before": "7s",
    "queue_max_wait": "25s",
    "queue_max_length": 50,
    "messages_per_minute": 1_000_000,
    "sessions_per_day": 1_000_000,
}
MAX_DURATION, CHATTER_IDLE, QUEUE_MAX_WAIT = 30.0, 14.0, 25.0
# waiting_reminder: "0" is documented as "off" but re-arms itself at once, a hot loop that
# floods the outbox (see bench/README.md); 1h never comes due within a 25 s queue wait.
ROUTING = {"offer_timeout": "10s", "lapses_before_off_duty": 1000, "waiting_reminder": "1h"}
PRIVACY = {"purge_after": "0s"}

KILL_AFTER = (5.0, 16.0)  # seconds the bot runs in a trial before SIGKILL (uniform)
TIMER_GRACE = 15.0  # after a deadline (plus the downtime since), a missing end is a miss
PURGE_GRACE = 45.0  # after the closing text (plus downtime), a room still there is overdue
LOSS_WAIT = 60.0  # a message not arrived this long after it was sent (plus downtime): lost
END_CUT = 3.0  # a message sent this close before a timer's end may legitimately be cut
SETTLE = 150.0  # at the end: the longest wait for every conversation to end and purge

TAG_RE = re.compile(r"\[soak c(\d+) (cv|vc) (\d+)\]")
FILLER = "jeg vet ikke helt hvordan jeg skal si det"


# ------------------------------------------------------------------------------- model


@dataclass
class Sent:
    conv: int
    direction: str  # "cv" or "vc"
    seq: int
    sent_wall: float  # time.time()
    sent_mono: float
    phase: str  # the conversation's phase when it was sent
    failed: bool = False  # the server never took it (the room was gone): not counted
    got: list[ReceivedMessage] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"c{self.conv} {self.direction} {self.seq}"


@dataclass
class Conv:
    id: int
    chatter: Chatter
    plan: str
    dm_sent_mono: float = 0.0
    room: str | None = None  # the chatter's session room
    vroom: str | None = None  # the volunteer's room, once the first held words arrive
    volunteer: Volunteer | None = None
    joined_mono: float | None = None  # the chatter joined the session room
    welcomed_mono: float | None = None
    accepted_mono: float | None = None  # the chatter read "a volunteer is here"
    warned: bool = False
    idle_warned: bool = False
    closed_mono: float | None = None  # the chatter read a closing text
    closed_ts: int | None = None  # its origin_server_ts (ms)
    outcome: str | None = None
    ended_by_command: bool = False
    last_cv_mono: float | None = None  # the chatter's last message sent
    purged: dict[str, str] = field(default_factory=dict)  # room -> "404" | "left"
    purge_done_mono: float | None = None
    seq: dict[str, int] = field(default_factory=lambda: {"cv": 0, "vc": 0})
    max_got: dict[str, int] = field(default_factory=lambda: {"cv": -1, "vc": -1})
    events: dict[str, asyncio.Event] = field(default_factory=dict)
    timer_missed: str | None = None
    notes: list[str] = field(default_factory=list)  # what the harness saw go wrong
    room_gone: float | None = None  # the session room purged with no closing text
    abandoned: bool = False  # the harness gave up on it (an error); not counted as open

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    @property
    def phase(self) -> str:
        if self.purge_done_mono is not None:
            return "purged"
        if self.abandoned or self.room_gone is not None:
            return "gone"
        if self.closed_mono is not None:
            return "ending"
        if self.accepted_mono is not None or self.vroom is not None:
            if self.idle_warned:
                return "idle-warned"
            return "warned" if self.warned else "active"
        if self.room is not None:
            return "queued"
        return "requesting"

    def rooms(self) -> list[str]:
        return [r for r in (self.room, self.vroom) if r is not None]


@dataclass
class Chatter:
    n: int
    user: RegisteredUser
    client: TestClient
    dm: str = ""


@dataclass
class Volunteer:
    alias: str
    user: RegisteredUser
    client: TestClient


@dataclass
class Kill:
    trial: int
    at_mono: float
    at_wall: float
    ready_mono: float | None = None
    start_wall: float = 0.0
    start_mono: float = 0.0
    first_relay: float | None = None  # seconds from the process start
    phases: dict[int, str] = field(default_factory=dict)  # conv -> phase at the kill


class World:
    def __init__(self, rng: random.Random, server: SynapseServer, admin: RegisteredUser) -> None:
        self.rng = rng
        self.server = server
        self.admin = admin
        self.bot_id = ""
        self.bot: SubprocessBot | None = None
        self.volunteers: list[Volunteer] = []
        self.chatters: list[Chatter] = []
        self.clients: list[TestClient] = []
        self.convs: dict[int, Conv] = {}
        self.by_room: dict[str, Conv] = {}
        self.sent: dict[tuple[int, str, int], Sent] = {}
        self.kills: list[Kill] = []
        self.ooo: list[tuple[Sent, int]] = []  # (message, the higher seq seen before it)
        self.strays: Counter[str] = Counter()  # tagged messages in an unexpected room
        self.unanswered: list[int] = []  # conversations whose request got no room
        self.stopping = False
        self.next_conv = 1
        self.errors: list[str] = []
        self.printed: set[str] = set()  # problems already printed after a trial

    # -- downtime

    def downtime(self, since: float, until: float) -> float:
        """Seconds the bot was not serving between two monotonic times."""
        total = 0.0
        for k in self.kills:
            end = k.ready_mono if k.ready_mono is not None else time.monotonic()
            lo, hi = max(since, k.at_mono), min(until, end)
            if hi > lo:
                total += hi - lo
        return total

    def kill_after(self, mono: float) -> Kill | None:
        return next((k for k in self.kills if k.at_mono >= mono), None)

    # -- what the clients decrypt

    def hook(self, client: TestClient) -> None:
        original = client._add_message

        def add(room_id: str, event: Any) -> None:
            original(room_id, event)
            client._pending_messages.clear()  # nothing here uses wait_for_message
            with contextlib.suppress(Exception):
                self.on_message(client, client.messages[-1])

        client._add_message = add  # type: ignore[method-assign]

    def on_message(self, client: TestClient, m: ReceivedMessage) -> None:
        if m.sender != self.bot_id:
            return
        body = m.body or ""
        match = TAG_RE.search(body) if m.msgtype == "m.text" else None
        if match is not None:
            self.on_relayed(client, m, int(match.group(1)), match.group(2), int(match.group(3)))
            return
        conv = self.by_room.get(m.room_id)
        if conv is None or m.room_id != conv.room:
            return
        if body.startswith("Nå er ") and "en av våre frivillige" in body:
            if conv.accepted_mono is None:
                conv.accepted_mono = m.received_at
            conv.event("accepted").set()
        elif body.startswith("Hei, og velkommen"):
            conv.welcomed_mono = conv.welcomed_mono or m.received_at
            conv.event("welcomed").set()
        elif body.startswith("Vi har omtrent"):
            conv.warned = True
        elif body.startswith("Er du der fortsatt"):
            conv.idle_warned = True
        elif "113" in body and conv.closed_mono is None:
            conv.closed_mono, conv.closed_ts = m.received_at, m.server_ts
            conv.outcome = closing_outcome(body)
            conv.event("closed").set()

    def on_relayed(
        self, client: TestClient, m: ReceivedMessage, cid: int, direction: str, seq: int
    ) -> None:
        conv = self.convs.get(cid)
        sent = self.sent.get((cid, direction, seq))
        if conv is None or sent is None:
            self.strays["unknown tag"] += 1
            return
        if direction == "cv":
            volunteer = next((v for v in self.volunteers if v.client is client), None)
            if volunteer is None:
                self.strays["cv at a chatter"] += 1
                return
            if conv.vroom is None:
                conv.vroom, conv.volunteer = m.room_id, volunteer
                self.by_room[m.room_id] = conv
                conv.event("mapped").set()
            elif m.room_id != conv.vroom:
                self.strays["cv in another room"] += 1
        elif client is not conv.chatter.client or m.room_id != conv.room:
            self.strays["vc in another room"] += 1
        if sent.got and any(g.event_id == m.event_id for g in sent.got):
            return  # the same event decrypted twice (a late key): not a duplicate
        sent.got.append(m)
        if len(sent.got) == 1:
            if seq < conv.max_got[direction]:
                self.ooo.append((sent, conv.max_got[direction]))
            conv.max_got[direction] = max(conv.max_got[direction], seq)
        restart = self.kills[-1] if self.kills else None
        if (
            restart is not None
            and restart.first_relay is None
            and m.server_ts / 1000 >= restart.start_wall
        ):
            restart.first_relay = m.received_at - restart.start_mono

    # -- sending

    async def send(self, conv: Conv, direction: str, extra: str = "") -> Sent | None:
        if direction == "cv":
            client, room = conv.chatter.client, conv.room
        else:
            client = conv.volunteer.client if conv.volunteer else None
            room = conv.vroom
        if client is None or room is None:
            return None
        seq = conv.seq[direction]
        conv.seq[direction] += 1
        s = Sent(conv.id, direction, seq, time.time(), time.monotonic(), conv.phase)
        self.sent[(conv.id, direction, seq)] = s
        if direction == "cv":
            conv.last_cv_mono = s.sent_mono
        try:
            await send_retrying(client, room, f"[soak {s.tag}] {FILLER}{extra}")
        except Exception:
            s.failed = True
            raise
        return s


def closing_outcome(body: str) -> str:
    for prefix, name in (
        ("Takk for at du snakket", "completed"),
        ("Tiden for samtalen er ute", "timed_out"),
        ("Det har vært stille", "chatter_idle"),
        ("Takk for at du tok kontakt. Vi er lei", "queue_timeout"),
        ("Du har gått ut", "left"),
    ):
        if body.startswith(prefix):
            return name
    return "other"


async def send_retrying(client: TestClient, room: str, body: str) -> None:
    """A person's app resends until the server takes it (Synapse is never down here, but a
    send can still fail on a slow moment)."""
    for attempt in range(5):
        try:
            await client.send_text(room, body, timeout=30)
            return
        except Exception:
            if attempt == 4:
                raise
            await asyncio.sleep(1 + attempt)


# ----------------------------------------------------------------- the people's behaviour


async def wait_event(conv: Conv, name: str, timeout: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(conv.event(name).wait(), timeout)
        return True
    return False


async def chatter_loop(w: World, ch: Chatter) -> None:
    """One conversation after another until the run winds down."""
    await asyncio.sleep(w.rng.uniform(0, 6))
    while not w.stopping:
        try:
            await conversation(w, ch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            w.errors.append(f"chatter {ch.n}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(2)
        await asyncio.sleep(w.rng.uniform(0.5, 4))


async def conversation(w: World, ch: Chatter) -> None:
    rng = w.rng
    dm = ch.client.client.rooms.get(ch.dm)
    if dm is None or w.bot_id not in dm.users:
        # The purge of the last conversation took the DM (the bot left it): a returning
        # chatter starts a new chat, as they would in their app.
        ch.dm = await ch.client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
        await ch.client.wait_for_join(ch.dm, w.bot_id, timeout=90)
    plan = rng.choices(["end", "duration", "idle"], weights=[45, 30, 25])[0]
    conv = Conv(w.next_conv, ch, plan)
    w.next_conv += 1
    w.convs[conv.id] = conv
    # The first words, in the DM: held, then handed to the volunteer.
    conv.dm_sent_mono = time.monotonic()
    s = Sent(conv.id, "cv", 0, time.time(), conv.dm_sent_mono, "requesting")
    conv.seq["cv"] = 1
    w.sent[(conv.id, "cv", 0)] = s
    conv.last_cv_mono = s.sent_mono
    before = {i.room_id for i in ch.client.invites}
    try:
        await send_retrying(ch.client, ch.dm, f"[soak {s.tag}] {FILLER}")
    except Exception:
        s.failed = True
        raise

    def new_invite() -> str | None:
        for inv in ch.client.invites:
            if inv.room_id not in before and inv.sender == w.bot_id:
                return inv.room_id
        return None

    try:
        room = await ch.client.wait_until(new_invite, 90, "session room invite")
    except TimeoutError:
        w.unanswered.append(conv.id)
        return
    conv.room = room
    w.by_room[room] = conv
    try:
        await ch.client.join(room, timeout=60)
    except Exception as exc:
        conv.notes.append(f"join failed: {type(exc).__name__}")
        raise
    conv.joined_mono = time.monotonic()
    if not await wait_event(conv, "welcomed", 60):
        conv.notes.append("no welcome within 60s")
    try:
        await converse(w, conv)
    except Exception as exc:
        conv.notes.append(f"{type(exc).__name__} while {conv.phase}: {await diagnose(w, conv)}")
        conv.abandoned = True
        raise
    finally:
        others = [
            i.room_id
            for i in ch.client.invites
            if i.room_id not in before and i.sender == w.bot_id and i.room_id != room
        ]
        if others:
            conv.notes.append(f"{len(others)} more invite(s) from the bot")


async def diagnose(w: World, conv: Conv) -> str:
    """What the server says about the chatter and the session room."""
    assert conv.room is not None
    resp = await conv.chatter.client.client.joined_members(conv.room)
    state = await room_state(w, conv.room)
    return (
        f"joined_members -> {type(resp).__name__} {getattr(resp, 'status_code', '')}; room {state}"
    )


async def converse(w: World, conv: Conv) -> None:
    rng = w.rng

    # While waiting: perhaps a word or two (held for the volunteer).
    accepted = asyncio.create_task(conv.event("mapped").wait())
    closed = asyncio.create_task(conv.event("closed").wait())
    try:
        for _ in range(rng.choice([0, 0, 1, 2])):
            await asyncio.sleep(rng.uniform(0.5, 3))
            if conv.vroom is None and conv.closed_mono is None:
                await w.send(conv, "cv")
        await asyncio.wait(
            {accepted, closed, asyncio.create_task(removed(w, conv))},
            timeout=QUEUE_MAX_WAIT + 120,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        accepted.cancel()
        closed.cancel()
    if conv.vroom is not None and conv.closed_mono is None:
        await talk(w, conv)
    if conv.closed_mono is None and conv.room_gone is None:
        await asyncio.wait(
            {
                asyncio.create_task(conv.event("closed").wait()),
                asyncio.create_task(removed(w, conv)),
            },
            timeout=MAX_DURATION + 120,
            return_when=asyncio.FIRST_COMPLETED,
        )
    await wait_purge(w, conv)


async def removed(w: World, conv: Conv) -> None:
    """Returns once the bot has purged the session room without the chatter reading a
    closing text (then nothing more will come: the chatter moves on)."""
    assert conv.room is not None
    while conv.closed_mono is None:
        await asyncio.sleep(3)
        with contextlib.suppress(Exception):
            state = await room_state(w, conv.room)
            if state != "there":
                await asyncio.sleep(5)  # a closing text may still be on its way
            if state != "there" and conv.closed_mono is None:
                conv.room_gone = time.monotonic()
                conv.notes.append(f"session room purged ({state}) with no closing text")
                return


async def talk(w: World, conv: Conv) -> None:
    rng = w.rng
    start = time.monotonic()
    if conv.plan == "end":
        n = rng.randint(3, 14)
        for _ in range(n):
            if conv.closed_mono is not None:
                return
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            await w.send(conv, rng.choice(["cv", "vc"]))
        # Everything sent has arrived (or a long while passed): then end by command.
        await until(lambda: all_arrived(w, conv), 90)
        if conv.closed_mono is not None:
            return
        conv.ended_by_command = True
        if rng.random() < 0.5:
            await send_retrying(conv.chatter.client, conv.room, "!slutt")
        else:
            await send_retrying(conv.volunteer.client, conv.vroom, "!slutt")
        return
    if conv.plan == "duration":
        # Talk until the maximum duration ends it; stop a little before the deadline.
        deadline = start + MAX_DURATION - END_CUT
        while conv.closed_mono is None and time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            if time.monotonic() < deadline and conv.closed_mono is None:
                await w.send(conv, rng.choice(["cv", "vc"]))
        return
    # idle: a few words each way, then the chatter says nothing more; the volunteer
    # writes a little longer (which does not keep the conversation open).
    for _ in range(rng.randint(1, 4)):
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        await w.send(conv, rng.choice(["cv", "vc"]))
    for _ in range(rng.randint(0, 3)):
        await asyncio.sleep(rng.uniform(1, 3))
        if conv.closed_mono is None:
            await w.send(conv, "vc")


def all_arrived(w: World, conv: Conv) -> bool:
    return all(s.got for (cid, _, _), s in w.sent.items() if cid == conv.id)


async def until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.2)
    return bool(predicate())


async def room_state(w: World, room: str) -> str:
    """'404' (deleted), 'left' (the bot is no longer a member) or 'there'."""
    base, token = w.server.base_url, w.admin.access_token
    status, _ = await admin_request(
        base, token, "GET", f"/_synapse/admin/v1/rooms/{q(room)}", expect=None
    )
    if status == 404:
        return "404"
    status, body = await admin_request(
        base, token, "GET", f"/_synapse/admin/v1/rooms/{q(room)}/members", expect=None
    )
    if status == 200 and w.bot_id not in (body or {}).get("members", []):
        return "left"
    return "there"


async def wait_purge(w: World, conv: Conv, timeout: float = 90.0) -> None:
    """Until every room of the conversation is gone (or the timeout)."""
    if conv.closed_mono is None and conv.room_gone is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await check_purge(w, conv)
        if conv.purge_done_mono is not None:
            return
        await asyncio.sleep(1.0)


async def check_purge(w: World, conv: Conv) -> None:
    """The bot leaves a room before it deletes it: "left" is looked at again until the
    room is gone (404), so the count of rooms left on the server is the final one."""
    for room in conv.rooms():
        if conv.purged.get(room) != "404":
            state = await room_state(w, room)
            if state != "there":
                conv.purged[room] = state
    if conv.rooms() and all(r in conv.purged for r in conv.rooms()):
        conv.purge_done_mono = conv.purge_done_mono or time.monotonic()


# ------------------------------------------------------------------------------ checks


@dataclass
class Tally:
    sent: int = 0
    arrived: int = 0
    pending: int = 0
    lost: list[Sent] = field(default_factory=list)
    cut: list[tuple[Sent, str]] = field(default_factory=list)  # legitimately not relayed
    duplicated: list[Sent] = field(default_factory=list)
    timers_missed: list[Conv] = field(default_factory=list)
    purges_unfinished: list[tuple[Conv, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # bot rooms of no known conversation


def expected(w: World, s: Sent) -> str | None:
    """None when the message must arrive; else why it may not."""
    conv = w.convs[s.conv]
    if s.direction == "cv" and conv.vroom is None and conv.closed_mono is not None:
        return "never accepted (held words of a chatter who left the queue)"
    if conv.closed_ts is not None and not conv.ended_by_command:
        # A timer ended it: what was sent just before (or during a downtime that lasted
        # until the end) may have been handled after the end.
        end_wall = conv.closed_ts / 1000
        down = w.downtime(s.sent_mono, s.sent_mono + max(0.0, end_wall - s.sent_wall) + 1)
        if s.sent_wall >= end_wall - END_CUT - down:
            return f"sent {end_wall - s.sent_wall:.1f}s before a timer's end"
    return None


def tally(w: World, final: bool) -> Tally:
    t = Tally()
    now = time.monotonic()
    for s in w.sent.values():
        if s.failed:
            continue
        t.sent += 1
        if len(s.got) > 1:
            t.duplicated.append(s)
        if s.got:
            t.arrived += 1
            continue
        why = expected(w, s)
        if why is not None:
            t.cut.append((s, why))
            continue
        waited = now - s.sent_mono - w.downtime(s.sent_mono, now)
        if final or waited > LOSS_WAIT:
            t.lost.append(s)
        else:
            t.pending += 1
    for conv in w.convs.values():
        if conv.timer_missed is None and conv.closed_mono is None:
            why = timer_overdue(w, conv, now)
            if why is not None:
                conv.timer_missed = why
        if conv.timer_missed is not None:
            t.timers_missed.append(conv)
        if conv.closed_mono is not None and conv.purge_done_mono is None:
            waited = now - conv.closed_mono - w.downtime(conv.closed_mono, now)
            if final or waited > PURGE_GRACE:
                left = [r for r in conv.rooms() if r not in conv.purged]
                t.purges_unfinished.append((conv, f"{len(left)} room(s) still there"))
    return t


def timer_overdue(w: World, conv: Conv, now: float) -> str | None:
    """Why a conversation still open should have ended by now (its chatter has no closing
    text), or None. Deadlines count from what the clients saw, which is later than what
    the bot saw: lenient."""
    if conv.room is None or conv.ended_by_command:
        return None
    if conv.accepted_mono is None and conv.vroom is None:
        anchor = conv.welcomed_mono or conv.joined_mono
        if anchor is None:
            return None
        deadline, what = anchor + QUEUE_MAX_WAIT, "queue_max_wait"
    else:
        accepted = conv.accepted_mono or now
        idle_from = max(accepted, conv.last_cv_mono or accepted)
        # The chatter's last message counts from when the volunteer read it.
        for s in w.sent.values():
            if s.conv == conv.id and s.direction == "cv" and s.got:
                idle_from = max(idle_from, s.got[0].received_at)
        candidates = [
            (accepted + MAX_DURATION, "max_duration"),
            (idle_from + CHATTER_IDLE, "chatter_idle"),
        ]
        deadline, what = min(candidates)
    grace = TIMER_GRACE + w.downtime(deadline - TIMER_GRACE, now)
    if now > deadline + grace:
        welcomed = "" if conv.welcomed_mono else " (never welcomed)"
        return f"{what} due {now - deadline:.0f}s ago, no closing text{welcomed}"
    return None


# ------------------------------------------------------------------------------ the run


async def background_updates_done(w: World, timeout: float = 120) -> None:
    """A fresh Synapse runs database background updates for a while; until they finish,
    its room deletion can fail on SQLite (a FOREIGN KEY error in purge_room), which would
    count against the bot. Wait for them first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await admin_request(
            w.server.base_url,
            w.admin.access_token,
            "GET",
            "/_synapse/admin/v1/background_updates/status",
            expect=None,
        )
        if status != 200 or not (body or {}).get("current_updates"):
            return
        await asyncio.sleep(1)
    step("Synapse's background updates still running; going on")


async def setup(w: World, workdir: Path) -> Path:
    await background_updates_done(w)
    users = UserFactory(w.server.base_url, w.server.shared_secret, w.admin.access_token)
    bot_user = (await users.create_many(1, "soakbot"))[0]
    w.bot_id = bot_user.user_id
    vol_users = await users.create_many(VOLUNTEERS, "vol")
    chat_users = await users.create_many(CHATTERS, "chatter")

    async def client(user: RegisteredUser, auto_join: bool = False) -> TestClient:
        c = TestClient(
            w.server.base_url,
            user.user_id,
            user.password,
            store_dir=workdir / "clients" / user.localpart,
            auto_join=auto_join,
        )
        w.clients.append(c)
        await c.start()
        w.hook(c)
        return c

    aliases = ["Vera", "Ola", "Mia", "Per", "Kai"][:VOLUNTEERS]
    for alias, user in zip(aliases, vol_users, strict=True):
        # Volunteers join offers as soon as they are invited: that accepts them.
        w.volunteers.append(Volunteer(alias, user, await client(user, auto_join=True)))
    first = w.volunteers[0].client
    staff = await first.create_encrypted_room(
        invite=[w.bot_id, *(v.user.user_id for v in w.volunteers[1:])], name="Vakt"
    )
    for v in w.volunteers[1:]:
        await v.client.wait_until(lambda c=v.client: staff in c.client.rooms, 30, "staff join")
    config = write_config(
        workdir / "bot.yaml",
        homeserver=w.server.base_url,
        bot_user=w.bot_id,
        bot_password=bot_user.password,
        data_dir=workdir / "bot-data",
        staff_room=staff,
        admin_token=w.admin.access_token,
        volunteers=[
            {
                "user_id": v.user.user_id,
                "alias": v.alias,
                "languages": ["nb"],
                "max_sessions": SEATS,
            }
            for v in w.volunteers
        ],
        logging={"level": "INFO"},
        limits=LIMITS,
        routing=ROUTING,
        privacy=PRIVACY,
    )
    w.bot = SubprocessBot(config, workdir / "bot.log")
    w.bot.start()
    await w.bot.wait_ready()
    for v in w.volunteers:
        await v.client.wait_for_join(staff, w.bot_id, timeout=60)
        await send_retrying(v.client, staff, "!på")

        def on_duty(c: TestClient = v.client, alias: str = v.alias) -> bool:
            return any(
                m.room_id == staff
                and m.sender == w.bot_id
                and alias in (m.body or "")
                and "på vakt" in (m.body or "")
                for m in c.messages
            )

        await v.client.wait_until(on_duty, 60, "duty confirmation")
    for user in chat_users:
        c = await client(user)
        ch = Chatter(len(w.chatters) + 1, user, c)
        ch.dm = await c.create_encrypted_room(invite=[w.bot_id], is_direct=True)
        w.chatters.append(ch)
    for ch in w.chatters:
        await ch.client.wait_for_join(ch.dm, w.bot_id, timeout=60)
    return config


def phases(w: World) -> dict[int, str]:
    return {c.id: c.phase for c in w.convs.values() if c.phase not in ("purged", "gone")}


def phase_counts(ph: dict[int, str]) -> str:
    counts = Counter(ph.values())
    order = ["requesting", "queued", "active", "warned", "idle-warned", "ending"]
    return " ".join(f"{name}={counts[name]}" for name in order if counts[name]) or "none"


async def trials(w: World, n: int, out: Any) -> None:
    assert w.bot is not None
    for i in range(1, n + 1):
        await asyncio.sleep(w.rng.uniform(*KILL_AFTER))
        for c in w.clients:
            c.check()
        k = Kill(i, time.monotonic(), time.time(), phases=phases(w))
        w.kills.append(k)
        w.bot.kill()  # SIGKILL
        k.start_wall, k.start_mono = time.time(), time.monotonic()
        w.bot.start()
        try:
            await w.bot.wait_ready(timeout=120)
        except RuntimeError as exc:
            w.errors.append(f"trial {i}: {exc}")
            raise
        k.ready_mono = time.monotonic()
        # Give the first relay after the restart a moment, then the trial's line.
        await until(lambda k=k: k.first_relay is not None, 8)
        for conv in list(w.convs.values()):
            if conv.closed_mono is not None and conv.purge_done_mono is None:
                with contextlib.suppress(Exception):
                    await check_purge(w, conv)
        t = tally(w, final=False)
        first = f"{k.first_relay:5.2f}s" if k.first_relay is not None else "  n/a"
        line = (
            f"trial {i:3d}/{n}  kill at {phase_counts(k.phases)}  "
            f"ready {k.ready_mono - k.at_mono:4.1f}s  first relay {first}  "
            f"sent {t.sent} pending {t.pending} lost {len(t.lost)} "
            f"dup {len(t.duplicated)} ooo {len(w.ooo)}  "
            f"timers missed {len(t.timers_missed)}  purges overdue {len(t.purges_unfinished)}"
        )
        print(line, file=out, flush=True)
        if t.lost or t.duplicated or w.ooo or t.timers_missed:
            print_problems(w, t, out, brief=True)
        out.flush()


async def wind_down(w: World, tasks: list[asyncio.Task[None]]) -> None:
    w.stopping = True
    step("winding down: every conversation ends and is purged")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), SETTLE)
    for task in tasks:
        task.cancel()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        todo = [
            c for c in w.convs.values() if c.closed_mono is not None and c.purge_done_mono is None
        ]
        for conv in todo:
            await check_purge(w, conv)
        if not todo:
            break
        await asyncio.sleep(1)
    # A room the bot had left when last looked at may have been deleted since.
    for conv in w.convs.values():
        if "left" in conv.purged.values():
            with contextlib.suppress(Exception):
                await check_purge(w, conv)
    # Let late relays land before counting.
    await until(lambda: tally(w, final=False).pending == 0, 30)


def where(w: World, s: Sent) -> str:
    conv = w.convs[s.conv]
    k = w.kill_after(s.sent_mono)
    at = (
        f"kill #{k.trial} {k.at_mono - s.sent_mono:.1f}s after it was sent "
        f"(conversation then {k.phases.get(s.conv, 'n/a')})"
        if k is not None
        else "no kill after it"
    )
    notes = f"; {'; '.join(conv.notes)}" if conv.notes else ""
    never = " (never welcomed)" if conv.joined_mono and not conv.welcomed_mono else ""
    return (
        f"[{s.tag}] conversation c{conv.id} (plan {conv.plan}, outcome "
        f"{conv.outcome or 'open'}{never}), sent while {s.phase}; {at}{notes}"
    )


def print_problems(w: World, t: Tally, out: Any, brief: bool = False) -> None:
    """Every problem (brief: only those not printed after an earlier trial)."""
    limit = 5 if brief else 50

    def new(key: str) -> bool:
        if not brief:
            return True
        fresh = key not in w.printed
        w.printed.add(key)
        return fresh

    t = Tally(
        lost=[s for s in t.lost if new(f"lost {s.tag}")],
        duplicated=[s for s in t.duplicated if new(f"dup {s.tag}")],
        timers_missed=[c for c in t.timers_missed if new(f"timer c{c.id}")],
        purges_unfinished=t.purges_unfinished,
    )
    ooo = [(s, h) for s, h in w.ooo if new(f"ooo {s.tag}")]
    for s in t.lost[:limit]:
        print(f"  !!! LOST {where(w, s)}", file=out)
    for s in t.duplicated[:limit]:
        ids = ", ".join(g.event_id for g in s.got)
        gap = s.got[1].received_at - s.got[0].received_at
        print(
            f"  !!! DUPLICATED x{len(s.got)} {where(w, s)}; events {ids}; "
            f"second copy {gap:.1f}s after the first",
            file=out,
        )
    for s, higher in ooo[:limit]:
        print(f"  !!! OUT OF ORDER {where(w, s)}; arrived after seq {higher}", file=out)
    for conv in t.timers_missed[:limit]:
        print(
            f"  !!! TIMER MISSED c{conv.id} (plan {conv.plan}, phase {conv.phase}): "
            f"{conv.timer_missed}",
            file=out,
        )
    if not brief:
        for conv in w.convs.values():
            if conv.notes or conv.closed_mono is None:
                print(
                    f"  ... c{conv.id} (plan {conv.plan}, phase {conv.phase}, welcomed "
                    f"{conv.welcomed_mono is not None}, volunteer room "
                    f"{conv.vroom is not None}): {'; '.join(conv.notes) or 'no closing text'}",
                    file=out,
                )
        for conv, why in t.purges_unfinished[:limit]:
            print(f"  !!! PURGE UNFINISHED c{conv.id} (outcome {conv.outcome}): {why}", file=out)
    out.flush()


async def run(w: World, workdir: Path, args: argparse.Namespace) -> None:
    started = time.monotonic()
    step("setting up: accounts, E2EE clients, the staff room, the bot")
    await setup(w, workdir)
    step(f"set up in {time.monotonic() - started:.0f}s; {args.trials} trials")
    tasks = [asyncio.create_task(chatter_loop(w, ch), name=f"chatter-{ch.n}") for ch in w.chatters]
    soak_start = time.monotonic()
    try:
        await trials(w, args.trials, sys.stdout)
        await wind_down(w, tasks)
    finally:
        for task in tasks:
            task.cancel()
    # Rooms the bot invited someone to that belong to no known conversation.
    known = {r for c in w.convs.values() for r in c.rooms()}
    invited = {i.room_id for c in w.clients for i in c.invites if i.sender == w.bot_id}
    orphans = sorted(invited - known)
    orphan_states = Counter([await room_state(w, r) for r in orphans])
    report(w, args, time.monotonic() - soak_start, time.monotonic() - started, orphan_states)


def report(
    w: World,
    args: argparse.Namespace,
    soak_wall: float,
    total_wall: float,
    orphans: Counter[str],
) -> None:
    t = tally(w, final=True)
    firsts = [k.first_relay for k in w.kills if k.first_relay is not None]
    readies = [k.ready_mono - k.at_mono for k in w.kills if k.ready_mono is not None]
    outcomes = Counter(c.outcome or "open" for c in w.convs.values())
    plans = Counter(c.plan for c in w.convs.values())
    kill_phases = Counter(p for k in w.kills for p in k.phases.values())
    try:
        synapse_version = metadata.version("matrix-synapse")
    except metadata.PackageNotFoundError:
        synapse_version = "?"
    purged = Counter(v for c in w.convs.values() for v in c.purged.values())
    cut = Counter(
        why.split(" (")[0] if "never" in why else "sent just before a timer's end"
        for _, why in t.cut
    )
    bad = t.lost or t.duplicated or w.ooo or t.timers_missed or t.purges_unfinished

    def fmt(xs: list[float]) -> str:
        if not xs:
            return "n/a"
        return f"p50 {statistics.median(xs):.2f}s  max {max(xs):.2f}s  (n={len(xs)})"

    lines = [
        "",
        f"soak  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {os.cpu_count()} cores  "
        f"Synapse {synapse_version} (SQLite)  seed {args.seed}  load avg {os.getloadavg()[0]:.2f}",
        f"  {VOLUNTEERS} volunteers x {SEATS} seats, {CHATTERS} chatters; limits "
        f"max_duration {LIMITS['max_duration']}, warn {LIMITS['warn_before']}, chatter_idle "
        f"{LIMITS['chatter_idle']}, queue_max_wait {LIMITS['queue_max_wait']}, offer_timeout "
        f"{ROUTING['offer_timeout']}, purge_after {PRIVACY['purge_after']}; "
        f"kill every {KILL_AFTER[0]:g}-{KILL_AFTER[1]:g}s",
        "",
        f"  trials                     {len(w.kills)}",
        f"  kills (SIGKILL)            {len(w.kills)}",
        f"  conversations              {len(w.convs)}  plans {dict(plans)}",
        f"  outcomes                   {dict(outcomes)}",
        f"  phases hit by kills        {dict(kill_phases)}",
        f"  messages sent              {t.sent}  (arrived {t.arrived})",
        f"  lost                       {len(t.lost)}",
        f"  duplicated                 {len(t.duplicated)}",
        f"  out of order               {len(w.ooo)}",
        f"  not relayed, legitimately  {len(t.cut)}  {dict(cut)}",
        f"  timers missed              {len(t.timers_missed)}",
        f"  purges unfinished          {len(t.purges_unfinished)}  (rooms deleted, 404: "
        f"{purged['404']}; bot left but the room still on the server: {purged['left']})",
        f"  requests without a room    {len(w.unanswered)}",
        f"  joined but never welcomed  "
        f"{sum(1 for c in w.convs.values() if c.joined_mono and not c.welcomed_mono)}",
        f"  other bot rooms            {dict(orphans)}  (offers never taken up, ...)",
        f"  stray tagged messages      {dict(w.strays) or 0}",
        f"  restart -> ready           {fmt(readies)}",
        f"  restart -> first relay     {fmt(firsts)}",
        f"  wall time                  {soak_wall / 60:.1f} min of trials and wind-down, "
        f"{total_wall / 60:.1f} min in all",
    ]
    if w.errors:
        lines.append(f"  harness errors             {len(w.errors)}: {w.errors[:5]}")
    print("\n".join(lines), flush=True)
    if bad or any(c.notes or c.closed_mono is None for c in w.convs.values()):
        print("\n!!!!!!!! PROBLEMS FOUND !!!!!!!!", flush=True)
        print_problems(w, t, sys.stdout)
    else:
        print(
            "\n  no message lost, duplicated or out of order; every timer fired; "
            "every purge finished",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--trials", type=int, default=100, metavar="N", help="default 100")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="default: random")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(1_000_000)
    logging.getLogger("nio").setLevel(logging.ERROR)
    logging.getLogger("peewee").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="helpline-soak-"))
    server = SynapseServer(workdir / "synapse")
    w: World | None = None
    keep = args.keep
    code = 0
    try:
        step(f"seed {args.seed}; starting Synapse in {workdir}")
        server.start()
        w = World(random.Random(args.seed), server, None)  # type: ignore[arg-type]

        async def go() -> None:
            assert w is not None
            main_task = asyncio.current_task()
            assert main_task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
            w.admin = await make_admin(server)
            try:
                await run(w, workdir, args)
            finally:
                for c in w.clients:
                    with contextlib.suppress(Exception):
                        await c.close()

        asyncio.run(go())
    except (KeyboardInterrupt, asyncio.CancelledError):
        step("interrupted")
        code = 130
    except Exception:
        traceback.print_exc()
        if w is not None and w.bot is not None:
            print(f"--- bot log (last lines) ---\n{w.bot.log_tail()}", file=sys.stderr)
        keep = True
        code = 1
    finally:

        def stop() -> None:
            if w is not None and w.bot is not None:
                stop_bot(w.bot)

        tear_down(stop, server, workdir, keep)
    return code


if __name__ == "__main__":
    sys.exit(main())
