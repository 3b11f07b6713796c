"""`helpline-bot demo --simulate`: a scripted chatter and volunteer talk through the bot,
then a chatter from the web chat.

The demo site is set up fresh (shortened limits: a 2-minute conversation with its warning
10 s in, purge 2 s after the end), then two E2EE clients play the people: Jonas, a
volunteer, and a chatter. Every line of the timeline is something one side's client
actually received and decrypted, printed as that side sees it (the chatter sees the
volunteer's alias, the volunteer sees "Chatter #n"), with the time since the start.

Each step must happen within its time limit; the exit code is 0 only if every step did.
What "purged" means is checked from both sides and on the server: both clients are
removed from their rooms, the bot reports the purge as verified in its metrics (the demo
gives it an admin token), and the admin API answers 404 for both rooms.

Then a chatter comes through the web chat, as from the page (`bot.devtools.webpage`: the
proof of work solved, a throw-away account, a cross-signed device), talks with the same
volunteer and leaves by the quick exit: both rooms gone and the account erased.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.demo.site import DemoError, DemoSite
from bot.devtools.client import TestClient
from bot.devtools.leaves import LeaveWatcher
from bot.devtools.seen import ReceivedMessage
from bot.devtools.users import admin_request, q
from bot.devtools.webpage import WebPage

EXIT_OK = 0
EXIT_FAILED = 1

# The warning comes 10 s into the conversation ("about 2 minutes left"); the chatter then
# ends it, so the 2 minutes never run out. The purge follows 2 s after the end.
LIMITS: dict[str, dict[str, Any]] = {
    "limits": {"max_duration": "2m", "warn_before": ["1m50s"]},
    "privacy": {"purge_after": "2s"},
}
STEP_TIMEOUT = 30.0

FIRST_WORDS = "Hei. Jeg trenger noen å snakke med."
WEB_WORDS = ("Hei, jeg skriver fra nettsiden.", "Hei! Så fint at du skrev. Jeg er her.")
EXCHANGE = (
    ("volunteer", "Hei, jeg heter Jonas. Hva har du på hjertet i dag?"),
    ("chatter", "Det har vært en tung uke på skolen."),
    ("volunteer", "Takk for at du forteller det. Vil du si litt mer?"),
    ("chatter", "Ja. Det hjelper å skrive det ned."),
)


@dataclass
class Step:
    title: str
    ok: bool | None = None  # None: not reached
    seconds: float = 0.0
    why: str = ""


class StepFailed(Exception):
    pass


class Timeline:
    """Prints what happens as it happens, and keeps each step's outcome."""

    def __init__(self, out: Callable[[str], None] = print) -> None:
        self.t0 = time.monotonic()
        self.out = out
        self.steps: list[Step] = []

    def line(self, side: str, text: str) -> None:
        self.out(f"{time.monotonic() - self.t0:7.2f}s  {side:<9}  {text}")

    def setup(self, text: str) -> None:
        self.line("setup", text)

    @asynccontextmanager
    async def step(self, title: str, timeout: float = STEP_TIMEOUT) -> AsyncIterator[None]:
        step = Step(title)
        self.steps.append(step)
        self.out(f"--- {len(self.steps)}. {title}")
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                yield
        except TimeoutError as exc:
            step.ok, step.why = False, f"did not happen within {timeout:.0f} s ({exc or 'timeout'})"
        except StepFailed as exc:
            step.ok, step.why = False, str(exc)
        except Exception as exc:  # a client error is a step that did not happen
            step.ok, step.why = False, f"{type(exc).__name__}: {exc}"
        else:
            step.ok = True
        step.seconds = time.monotonic() - started
        if step.ok:
            self.out(f"{'':20}ok ({step.seconds:.2f} s)")
        else:
            self.out(f"{'':20}FAILED: {step.why}")
            raise StepFailed(step.why)

    def summary(self, planned: list[str]) -> str:
        done = {s.title: s for s in self.steps}
        rows = []
        for title in planned:
            s = done.get(title)
            if s is None:
                rows.append(f"  --      {'':>8}  {title} (not reached)")
            else:
                mark = "ok" if s.ok else "FAILED"
                rows.append(f"  {mark:<6}  {s.seconds:7.2f}s  {title}")
        return "\n".join(rows)


PLANNED = [
    "the volunteer goes on duty",
    "the chatter asks the bot for someone to talk to",
    "queue: the chatter gets a private room and a place in the queue",
    "offer: the volunteer is invited to a conversation",
    "accept: the volunteer joins and gets the chatter's first words",
    *(f"message {i + 1}: {who} writes" for i, (who, _) in enumerate(EXCHANGE)),
    "time warning to both sides",
    "the chatter ends the conversation",
    "purge: both rooms are emptied and gone",
    "the bot's metrics counted the conversation",
    "web chat: the page gets a throw-away account",
    "web chat: the bot invites the account straight into a conversation",
    "web chat: the volunteer accepts; a message each way",
    "web chat: quick exit: the rooms are gone and the account erased",
]


async def simulate(root: Path) -> int:
    # The clients' libraries warn on stderr about key sharing details: not for this screen.
    logging.getLogger("nio").setLevel(logging.ERROR)
    tl = Timeline()
    print("helpline-bot demo --simulate: a scripted chatter and volunteer talk through the bot")
    site = DemoSite(root, port=None, bot_sections=LIMITS, say=tl.setup)
    clients: list[TestClient] = []
    try:
        try:
            await site.up(fresh=True)
        except DemoError as exc:
            print(f"helpline-bot demo: {exc}")
            return EXIT_FAILED
        tl.setup(f"ready in {site.timings.get('total', 0):.1f} s; the conversation starts")
        with suppress(StepFailed):
            await _play(site, tl, clients)
    finally:
        for client in clients:
            await client.close()
        await site.down()
    ok = len(tl.steps) == len(PLANNED) and all(s.ok for s in tl.steps)
    print("\nSummary (each step's time, as measured by the clients):")
    print(tl.summary(PLANNED))
    if ok:
        print(f"\nAll {len(PLANNED)} steps happened ({time.monotonic() - tl.t0:.1f} s in all).")
    else:
        print(f"\nNot every step happened. Logs: {site.bot_log}, {root / 'synapse'}")
    return EXIT_OK if ok else EXIT_FAILED


async def _play(site: DemoSite, tl: Timeline, clients: list[TestClient]) -> None:
    state = site.state
    assert state is not None
    bot_id = state.bot.user_id
    base = site.base_url

    async def login(localpart: str, label: str) -> TestClient:
        account = state.account(localpart)
        client = await TestClient.create(
            base,
            account.user_id,
            account.password,
            store_dir=site.root / "clients" / localpart,
            device_name=f"demo {label} (scripted)",
        )
        clients.append(client)
        return client

    volunteer = await login("jonas", "volunteer")
    chatter = await login("chatter", "chatter")
    tl.setup("the chatter and the volunteer (Jonas) are logged in, each with an E2EE device")
    v_leaves, c_leaves = LeaveWatcher(volunteer), LeaveWatcher(chatter)
    seen = Seen(bot_id, tl)

    async with tl.step(PLANNED[0]):
        await volunteer.wait_for_room(state.staff_room, encrypted=True)
        await volunteer.send_text(state.staff_room, "!på")
        tl.line("volunteer", '-> Vakt (demo): "!på"')
        await seen.from_bot(volunteer, "volunteer", state.staff_room, contains="Jonas")

    async with tl.step(PLANNED[1]):
        dm = await chatter.create_encrypted_room(invite=[bot_id], is_direct=True)
        await chatter.wait_for_join(dm, bot_id, timeout=STEP_TIMEOUT)
        await chatter.send_text(dm, FIRST_WORDS)
        tl.line("chatter", f'-> a direct message to the bot: "{FIRST_WORDS}"')
        invite = await chatter.wait_for_invite(timeout=STEP_TIMEOUT)
        if invite.sender != bot_id or invite.room_id == dm:
            raise StepFailed("the invite did not come from the bot")
        tl.line("chatter", "<- an invite to a new private, encrypted room")

    async with tl.step(PLANNED[2]):
        session_room = invite.room_id
        await chatter.join(session_room)
        await chatter.wait_for_room(session_room, encrypted=True)
        tl.line("chatter", "-> joins; the room is end-to-end encrypted")
        await seen.from_bot(chatter, "chatter", session_room, contains="113")

    async with tl.step(PLANNED[3]):
        offer = await volunteer.wait_for_invite(timeout=STEP_TIMEOUT)
        if offer.sender != bot_id:
            raise StepFailed("the offer did not come from the bot")
        tl.line("volunteer", "<- an invite: a conversation is offered")

    async with tl.step(PLANNED[4]):
        vroom = offer.room_id
        await volunteer.join(vroom)
        tl.line("volunteer", "-> accepts (joins the room)")
        await seen.from_bot(volunteer, "volunteer", vroom, contains="Chatter #")
        await seen.from_bot(volunteer, "volunteer", vroom, body=FIRST_WORDS)
        await seen.from_bot(chatter, "chatter", session_room, contains="Jonas")

    rooms = {"volunteer": (volunteer, vroom), "chatter": (chatter, session_room)}
    for i, (who, words) in enumerate(EXCHANGE):
        other = "chatter" if who == "volunteer" else "volunteer"
        async with tl.step(PLANNED[5 + i]):
            sender, room_id = rooms[who]
            await sender.send_text(room_id, words)
            tl.line(who, f'-> "{words}"')
            receiver, their_room = rooms[other]
            got = await seen.from_bot(receiver, other, their_room, body=words)
            if not got.decrypted:
                raise StepFailed("the relayed message arrived unencrypted")

    async with tl.step(PLANNED[9], timeout=45):
        await seen.from_bot(chatter, "chatter", session_room, notice=True)
        await seen.from_bot(volunteer, "volunteer", vroom, notice=True)

    async with tl.step(PLANNED[10]):
        await chatter.send_text(session_room, "!slutt")
        tl.line("chatter", '-> "!slutt"')
        await seen.from_bot(chatter, "chatter", session_room, notice=True)
        await seen.from_bot(volunteer, "volunteer", vroom, notice=True)

    async with tl.step(PLANNED[11]):
        await c_leaves.wait_removed(session_room, timeout=STEP_TIMEOUT)
        tl.line("chatter", "<- removed from the conversation's room")
        await v_leaves.wait_removed(vroom, timeout=STEP_TIMEOUT)
        tl.line("volunteer", "<- removed from the conversation's room")
        outcome = await _purge_outcome(site)
        tl.line("bot", f"reports the purge as: {outcome}")
        if outcome != "verified":
            # The demo gives the bot an admin token: the rooms must be deleted and checked.
            raise StepFailed(f"the bot's purge was {outcome!r}, not 'verified'")
        for label, room_id in (("chatter's", session_room), ("volunteer's", vroom)):
            status = await _until_deleted(site, room_id)
            tl.line("server", f"the {label} room: {status}")

    async with tl.step(PLANNED[12]):
        figures = await _metrics(site)
        offers = figures.get("helpline_offers_total", 0)
        relays = figures.get("helpline_relay_latency_seconds_count", 0)
        latency = figures.get("helpline_relay_latency_seconds_sum", 0) / max(relays, 1)
        ended = figures.get("helpline_conversations_ended_total", 0)
        tl.line(
            "bot",
            f"/metrics: {offers:.0f} offer, {ended:.0f} conversation ended, {relays:.0f} "
            f"messages relayed, {latency * 1000:.0f} ms mean relay latency",
        )
        if offers < 1 or ended < 1 or relays < len(EXCHANGE):
            raise StepFailed("the metrics do not show the conversation")

    await _play_web(site, tl, clients, volunteer, seen)


async def _play_web(
    site: DemoSite, tl: Timeline, clients: list[TestClient], volunteer: TestClient, seen: Seen
) -> None:
    """A chatter from the web chat page, with the volunteer still on duty."""
    state = site.state
    assert state is not None
    bot_id = state.bot.user_id
    v_leaves = LeaveWatcher(volunteer)
    page = WebPage(site.web_url)
    try:
        async with tl.step(PLANNED[13]):
            status, account = await page.account()
            if status != 201:
                raise StepFailed(f"the web chat refused: {account.get('error')}")
            tl.line("web page", "-> the proof of work; <- a throw-away account, no e-mail, no name")
            web = await TestClient.create(
                account["homeserver"],
                account["user_id"],
                account["password"],
                store_dir=site.root / "clients" / "web",
                device_name="demo web chat (scripted)",
            )
            clients.append(web)
            tl.line("web page", "logs in with an end-to-end-encrypted, cross-signed device")
    finally:
        await page.close()

    async with tl.step(PLANNED[14]):
        invite = await web.wait_for_invite(timeout=STEP_TIMEOUT)
        if invite.sender != bot_id:
            raise StepFailed("the invite did not come from the bot")
        room = invite.room_id
        await web.join(room)
        await web.wait_for_room(room, encrypted=True)
        tl.line("web page", "<- an invite to the conversation room (no DM, no lobby); joins")
        await seen.from_bot(web, "web page", room, contains="113")

    async with tl.step(PLANNED[15]):
        offer = await volunteer.wait_for_invite(timeout=STEP_TIMEOUT)
        vroom = offer.room_id
        await volunteer.join(vroom)
        tl.line("volunteer", "-> accepts the web chatter's conversation")
        await seen.from_bot(volunteer, "volunteer", vroom, contains="Chatter #")
        await seen.from_bot(web, "web page", room, contains="Jonas")
        await web.send_text(room, WEB_WORDS[0])
        tl.line("web page", f'-> "{WEB_WORDS[0]}"')
        await seen.from_bot(volunteer, "volunteer", vroom, body=WEB_WORDS[0])
        await volunteer.send_text(vroom, WEB_WORDS[1])
        tl.line("volunteer", f'-> "{WEB_WORDS[1]}"')
        await seen.from_bot(web, "web page", room, body=WEB_WORDS[1])

    async with tl.step(PLANNED[16]):
        await web.send_text(room, "!slett")
        tl.line("web page", '-> quick exit: "!slett", then the page is replaced')
        clients.remove(web)
        await web.close()
        await v_leaves.wait_removed(vroom, timeout=STEP_TIMEOUT)
        tl.line("volunteer", "<- removed from the conversation's room")
        for label, room_id in (("web chatter's", room), ("volunteer's", vroom)):
            gone = await _until_deleted(site, room_id)
            tl.line("server", f"the {label} room: {gone}")
        tl.line("server", f"the account: {await _until_erased(site, account['user_id'])}")


class Seen:
    """Waits for the bot's next message on one side and prints it as that side sees it."""

    def __init__(self, bot_id: str, tl: Timeline) -> None:
        self.bot_id = bot_id
        self.tl = tl

    async def from_bot(
        self,
        client: TestClient,
        side: str,
        room_id: str,
        *,
        contains: str | None = None,
        body: str | None = None,
        notice: bool = False,
    ) -> ReceivedMessage:
        def match(m: ReceivedMessage) -> bool:
            text = m.body or ""
            return (
                (contains is None or contains in text)
                and (body is None or text == body)
                and (not notice or m.msgtype == "m.notice")
            )

        msg = await client.wait_for_message(
            room_id=room_id, sender=self.bot_id, predicate=match, timeout=STEP_TIMEOUT
        )
        room = client.client.rooms.get(room_id)
        name = room.user_name(self.bot_id) if room is not None else None
        kind = "notice" if msg.msgtype == "m.notice" else "message"
        lock = "decrypted" if msg.decrypted else "NOT ENCRYPTED"
        self.tl.line(side, f'<- {name or "the bot"} ({kind}, {lock}): "{_short(msg.body)}"')
        return msg


def _short(text: str | None, limit: int = 110) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


async def _metrics(site: DemoSite) -> dict[str, float]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{site.http_port}/metrics") as resp,
    ):
        text = await resp.text()
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            figures[sample.name] = figures.get(sample.name, 0) + sample.value
            if sample.labels.get("outcome") and sample.name == "helpline_purges_total":
                figures[f"purge:{sample.labels['outcome']}"] = sample.value
    return figures


async def _purge_outcome(site: DemoSite) -> str:
    """The outcome the bot recorded for its purge, from its own metrics."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while loop.time() < deadline:
        figures = await _metrics(site)
        outcomes = [k.split(":", 1)[1] for k in figures if k.startswith("purge:")]
        if outcomes:
            return ", ".join(outcomes)
        await asyncio.sleep(0.3)
    raise StepFailed("the bot did not report a purge")


async def _until_deleted(site: DemoSite, room_id: str) -> str:
    """The server's own view of a purged room, through the admin API: 404."""
    assert site.state is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    last = ""
    while loop.time() < deadline:
        status, body = await admin_request(
            site.base_url,
            site.state.admin_token,
            "GET",
            f"/_synapse/admin/v1/rooms/{q(room_id)}",
            expect=None,
        )
        if status == 404:
            return "deleted on the server (admin API: 404)"
        last = f"still on the server with {_joined(body)} joined member(s)"
        await asyncio.sleep(0.3)
    raise StepFailed(f"a room was not deleted: {last}")


async def _until_erased(site: DemoSite, user: str) -> str:
    """The server's own view of the web chatter's account, through the admin API."""
    assert site.state is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while loop.time() < deadline:
        status, body = await admin_request(
            site.base_url,
            site.state.admin_token,
            "GET",
            f"/_synapse/admin/v2/users/{q(user)}",
            expect=None,
        )
        if status == 200 and isinstance(body, dict) and body.get("deactivated"):
            return "deactivated and erased (admin API)"
        await asyncio.sleep(0.3)
    raise StepFailed("the web chatter's account was not erased")


def _joined(body: Any) -> int:
    return int(body.get("joined_members", -1)) if isinstance(body, dict) else -1
