"""The web chat page in a real browser (headless Chromium, a 320 px wide phone screen)
against the real Synapse and the bot: the proof of work, the account, the Rust crypto in
the page, the queue text, a volunteer who accepts, messages both ways read in the DOM,
typing, a reload that carries on with the same conversation, and the quick exit that
replaces the page and leaves nothing: the rooms gone, the account erased, no cookies,
localStorage or IndexedDB for the origin.

A screenshot of each state goes to ``test-artifacts/webchat/<test name>/`` at the
repository's root (the ``shots_dir`` fixture; not committed), and the first test's
timings to ``timings.json`` beside them: a CI run's artefacts.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web as web_server
from playwright.async_api import Page, Request, Route, expect

from bot.devtools.synapse import SynapseServer, free_port
from bot.devtools.users import RegisteredUser, get_user_admin_info, q
from bot.devtools.webpage import WebPage
from tests.integration.waits import wait_until
from tests.integration.web import OpenWeb, web_chatter
from tests.integration.world import accept_offer, assert_logs_clean, go_on_duty, next_from_bot

NEUTRAL = "https://neutral.example/"
STEP_MS = 30_000


class Shots:
    def __init__(self, page: Page, where: Path) -> None:
        self.page = page
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        self.n = 0

    async def take(self, name: str) -> None:
        self.n += 1
        await self.page.screenshot(
            path=str(self.where / f"{self.n:02d}-{name}.png"), full_page=True
        )


async def room_status(synapse: SynapseServer, admin: RegisteredUser, room: str) -> int:
    async with aiohttp.ClientSession() as http:
        url = f"{synapse.base_url}/_synapse/admin/v1/rooms/{q(room)}"
        headers = {"Authorization": f"Bearer {admin.access_token}"}
        async with http.get(url, headers=headers) as resp:
            return resp.status


async def test_a_chatter_in_a_browser_talks_to_a_volunteer_reloads_and_quick_exits(
    open_web: OpenWeb, browser: Any, synapse: SynapseServer, admin: RegisteredUser, shots_dir: Path
) -> None:
    w, web = await open_web(quick_exit_url=NEUTRAL)
    v = w.volunteers[0]
    await go_on_duty(w, v)
    origin = web.base
    hs = synapse.base_url
    timings: dict[str, float] = {}

    context = await browser.new_context(
        viewport={"width": 320, "height": 640}, locale="nb-NO", is_mobile=True
    )
    requests: list[str] = []
    console_lines: list[str] = []

    def on_request(request: Request) -> None:
        requests.append(request.url)

    async def neutral(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<h1>Weather</h1>")

    context.on("request", on_request)
    await context.route(f"{NEUTRAL}**", neutral)
    page = await context.new_page()
    page.on("console", lambda msg: console_lines.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda err: console_lines.append(f"pageerror: {err}"))
    shots = Shots(page, shots_dir)

    # -- the start: the helpline's words in the browser's language, a Start button
    await page.goto(origin + "/")
    await expect(page.locator("#title")).to_have_text("Snakk med oss")
    await expect(page.locator("#start")).to_be_enabled()
    await expect(page.locator("#quick-exit")).to_have_text("Rask utgang")
    await expect(page.locator("#intro-text")).to_contain_text("anonym")
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("#start")).to_have_text("Start chat")
    await expect(page.locator("#intro-text")).to_contain_text("anonymous")
    await page.get_by_role("button", name="Norsk").click()
    await expect(page.locator("#intro-text")).to_contain_text("anonym")
    await shots.take("start")

    # -- start: proof of work, account, login, crypto, cross-signing, the bot's invite
    started = time.monotonic()
    await page.locator("#start").click()
    await expect(page.locator("#message")).to_be_enabled(timeout=STEP_MS)
    timings["start_to_joined_s"] = time.monotonic() - started
    log = page.locator("#log")
    await expect(log).to_contain_text("i køen", timeout=STEP_MS)
    timings["start_to_welcome_s"] = time.monotonic() - started
    await expect(log).to_contain_text("113")
    await expect(page.locator("#refusal")).to_be_hidden()
    await shots.take("queue")

    # -- the volunteer accepts: the page names them by their alias
    vroom, _ = await accept_offer(w, v)
    await expect(log).to_contain_text(v.alias, timeout=STEP_MS)
    await shots.take("volunteer-came")

    # -- messages both ways, as the other side decrypted them
    sent = time.monotonic()
    await page.locator("#message").fill("jeg har det tungt <b>ikke fet</b> https://x.example")
    await page.locator("#send").click()
    relayed = await next_from_bot(w, v.client, vroom)
    timings["page_to_volunteer_s"] = time.monotonic() - sent
    assert relayed.body == "jeg har det tungt <b>ikke fet</b> https://x.example"
    mine = log.locator("li.mine").last
    await expect(mine).to_contain_text("<b>ikke fet</b>")  # shown as text, not as HTML
    assert await log.locator("a, b").count() == 0  # links are not clickable, HTML not parsed

    await v.client.client.room_typing(vroom, True, timeout=10_000)
    await expect(page.locator("#typing")).to_contain_text(v.alias, timeout=STEP_MS)
    await shots.take("typing")

    sent = time.monotonic()
    await v.client.send_text(vroom, "jeg er her for deg")
    theirs = log.locator("li.theirs", has_text="jeg er her for deg")
    await expect(theirs).to_have_count(1, timeout=STEP_MS)
    timings["volunteer_to_page_s"] = time.monotonic() - sent
    await expect(theirs.locator(".who")).to_have_text(v.alias)
    await shots.take("conversation")

    # -- a reload mid-conversation: the same conversation, the history read again
    store = await page.evaluate("() => Object.keys(sessionStorage)")
    assert store == ["helpline-webchat"]
    reloaded = time.monotonic()
    await page.reload()
    await expect(page.locator("#message")).to_be_enabled(timeout=STEP_MS)
    timings["reload_to_ready_s"] = time.monotonic() - reloaded
    await expect(log.locator("li.theirs", has_text="jeg er her for deg")).to_have_count(
        1, timeout=STEP_MS
    )
    await expect(log.locator("li.mine", has_text="jeg har det tungt")).to_have_count(1)
    await page.locator("#message").fill("er du der fortsatt?")
    await page.locator("#message").press("Enter")
    after = await next_from_bot(w, v.client, vroom)
    assert after.body == "er du der fortsatt?"
    await v.client.send_text(vroom, "ja, jeg er her")
    await expect(log.locator("li.theirs", has_text="ja, jeg er her")).to_have_count(
        1, timeout=STEP_MS
    )
    await shots.take("after-reload")

    # -- the account as the server knows it, for the checks after the quick exit
    room = await page.evaluate("() => JSON.parse(sessionStorage.getItem('helpline-webchat')).room")
    user = await page.evaluate("() => JSON.parse(sessionStorage.getItem('helpline-webchat')).user")

    # -- quick exit: the page replaced, the conversation purged, the account erased
    await page.locator("#quick-exit").click()
    await page.wait_for_url(NEUTRAL, timeout=STEP_MS)
    await shots.take("quick-exit")

    async def erased() -> bool:
        info = await get_user_admin_info(hs, admin.access_token, user)
        return bool(info.get("deactivated"))

    await wait_until(erased, timeout=60, what="the web account deactivated")
    for gone in (room, vroom):
        assert await room_status(synapse, admin, gone) == 404

    # Nothing left in the browser for the origin (the same tab, so sessionStorage too).
    assert await context.cookies() == []
    await page.goto(origin + "/app.css")
    left = await page.evaluate(
        """async () => ({
            local: Object.keys(localStorage),
            session: Object.keys(sessionStorage),
            idb: (await indexedDB.databases()).map((db) => db.name),
        })"""
    )
    assert left == {"local": [], "session": [], "idb": []}

    # Nothing the page loaded came from anywhere but this origin and the homeserver.
    allowed = {urlsplit(origin).netloc, urlsplit(hs).netloc}
    strays = [
        u for u in requests if urlsplit(u).netloc not in allowed and not u.startswith(NEUTRAL)
    ]
    assert strays == []
    # js-sdk's loggers are silenced: the console names no room, event or user.
    leaks = [line for line in console_lines if "!" in line or "$" in line or "@anon" in line]
    assert leaks == [], leaks
    assert_logs_clean(w, user, "jeg har det tungt", "jeg er her for deg")

    (shots_dir / "timings.json").write_text(json.dumps(timings, indent=2))
    print("web chat page timings:", json.dumps(timings))
    await context.close()


async def test_a_refusal_shows_its_text_in_the_page(
    open_web: OpenWeb, browser: Any, shots_dir: Path
) -> None:
    _, web = await open_web(max_open_accounts=1)
    context = await browser.new_context(viewport={"width": 320, "height": 640}, locale="en-GB")
    page = await context.new_page()
    shots = Shots(page, shots_dir)
    await page.goto(web.base + "/")
    await expect(page.locator("#start")).to_have_text("Start chat")
    # The one account the cap allows is taken: the page shows the API's words.
    taken, account = await web.account()
    assert taken == 201, account
    await page.locator("#start").click()
    refusal = page.locator("#refusal")
    await expect(refusal).to_contain_text("Very many people", timeout=STEP_MS)
    await expect(refusal).to_contain_text("113")
    await expect(refusal).to_have_attribute("role", "alert")
    await expect(page.locator("#start")).to_be_enabled()
    await shots.take("refused-full")
    await context.close()


async def test_end_chat_closes_the_conversation_and_offers_a_new_one(
    open_web: OpenWeb, browser: Any, shots_dir: Path
) -> None:
    w, web = await open_web()
    v = w.volunteers[0]
    await go_on_duty(w, v)
    context = await browser.new_context(viewport={"width": 320, "height": 640}, locale="en-GB")
    page = await context.new_page()
    shots = Shots(page, shots_dir)
    await page.goto(web.base + "/")
    await page.locator("#start").click()
    await expect(page.locator("#log")).to_contain_text("in the queue", timeout=STEP_MS)
    await accept_offer(w, v)
    await expect(page.locator("#log")).to_contain_text(v.alias, timeout=STEP_MS)
    await page.locator("#end").click()
    ended = page.locator("#ended")
    await expect(ended).to_be_visible(timeout=60_000)
    await expect(page.locator("#start-over")).to_be_focused()
    await expect(page.locator("#message")).to_be_disabled()
    assert await page.evaluate("() => Object.keys(sessionStorage)") == []
    await shots.take("ended")
    # Start over, in the same page: a new account and a new conversation.
    await page.locator("#start-over").click()
    await expect(page.locator("#start")).to_be_focused()
    await expect(page.locator("#log li")).to_have_count(0)
    await page.locator("#start").click()
    await expect(page.locator("#log")).to_contain_text("in the queue", timeout=STEP_MS)
    await expect(page.locator("#message")).to_be_enabled(timeout=STEP_MS)
    await shots.take("started-over")
    await context.close()


async def _refused_in_page(web: WebPage, browser: Any, where: Path, name: str) -> Any:
    context = await browser.new_context(viewport={"width": 320, "height": 640}, locale="en-GB")
    page = await context.new_page()
    await page.goto(web.base + "/")
    await page.locator("#start").click()
    refusal = page.locator("#refusal")
    await expect(refusal).to_be_visible(timeout=STEP_MS)
    await expect(refusal).to_contain_text("113")
    await expect(page.locator("#start")).to_be_enabled()
    await expect(page.locator("#chat")).to_be_hidden()
    await Shots(page, where).take(name)
    text = await refusal.text_content()
    await context.close()
    return text


async def test_a_failed_proof_of_work_shows_its_text_in_the_page(
    open_web: OpenWeb, browser: Any, shots_dir: Path
) -> None:
    """The page's answer is spoiled on its way (a nonce that solves nothing): the bot
    refuses it, and the page says so with the numbers to call."""
    _, web = await open_web()
    context = await browser.new_context(viewport={"width": 320, "height": 640}, locale="en-GB")

    async def spoil(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        body["nonce"] = "not-a-solution-" * 2
        await route.continue_(post_data=json.dumps(body))

    await context.route(f"{web.base}/api/account", spoil)
    page = await context.new_page()
    await page.goto(web.base + "/")
    await page.locator("#start").click()
    refusal = page.locator("#refusal")
    await expect(refusal).to_contain_text("Something went wrong", timeout=STEP_MS)
    await expect(refusal).to_contain_text("113")
    await expect(page.locator("#start")).to_be_enabled()
    await Shots(page, shots_dir).take("refused-proof")
    await context.close()


async def test_closed_hours_show_their_text_in_the_page(
    open_web: OpenWeb, browser: Any, shots_dir: Path
) -> None:
    today = datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()
    hours = {"always_open": False, "weekly": {"mon-sun": "00:00-23:59"}, "closed_dates": [today]}
    _, web = await open_web(sections={"opening_hours": hours})
    text = await _refused_in_page(web, browser, shots_dir, "refused-closed")
    assert "The chat is closed right now" in text


async def test_a_full_queue_shows_its_text_in_the_page(
    open_web: OpenWeb, browser: Any, make_client: Any, shots_dir: Path
) -> None:
    _, web = await open_web(sections={"limits": {"queue_max_length": 1}})
    status, first = await web.account()
    assert status == 201
    waiting = await web_chatter(make_client, first)
    await waiting.wait_for_invite(timeout=30)  # the one place in the queue is taken
    text = await _refused_in_page(web, browser, shots_dir, "refused-queue-full")
    assert "a lot of people are waiting" in text


async def test_the_embed_snippet_opens_the_chat_and_its_quick_exit_leaves_the_site(
    open_web: OpenWeb, browser: Any, synapse: SynapseServer, admin: RegisteredUser, shots_dir: Path
) -> None:
    """The helpline's own site (another origin) with the two-line snippet: a button opens
    the chat in a frame; the frame's quick exit hides the site and replaces it."""
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    w, web = await open_web(frame_ancestors=[site], quick_exit_url=NEUTRAL)
    html = (
        "<!doctype html><title>Alltidhjelp</title><h1>Velkommen</h1>"
        f'<script src="{web.base}/embed.js" data-label="Chat med oss" defer></script>'
    )

    async def home(_: web_server.Request) -> web_server.Response:
        return web_server.Response(text=html, content_type="text/html")

    app = web_server.Application()
    app.router.add_get("/", home)
    runner = web_server.AppRunner(app)
    await runner.setup()
    await web_server.TCPSite(runner, "127.0.0.1", port).start()
    context = await browser.new_context(viewport={"width": 390, "height": 800}, locale="nb-NO")

    async def neutral(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<h1>Weather</h1>")

    await context.route(f"{NEUTRAL}**", neutral)
    try:
        page = await context.new_page()
        shots = Shots(page, shots_dir)
        await page.goto(site + "/")
        button = page.get_by_role("button", name="Chat med oss")
        await button.click()
        await expect(button).to_have_attribute("aria-expanded", "true")
        chat = page.frame_locator(f'iframe[src="{web.base}/"]')
        await chat.locator("#start").click()
        await expect(chat.locator("#log")).to_contain_text("i køen", timeout=STEP_MS)
        await shots.take("embedded")
        frame = next(f for f in page.frames if f.url.startswith(web.base))
        user = await frame.evaluate(
            "() => JSON.parse(sessionStorage.getItem('helpline-webchat')).user"
        )
        await chat.locator("#quick-exit").click()
        await page.wait_for_url(NEUTRAL, timeout=STEP_MS)

        async def erased() -> bool:
            info = await get_user_admin_info(synapse.base_url, admin.access_token, user)
            return bool(info.get("deactivated"))

        await wait_until(erased, timeout=60, what="the embedded chat's account erased")
        assert_logs_clean(w, user)
    finally:
        await context.close()
        await runner.cleanup()


AXE = Path(__file__).resolve().parents[1] / "interop" / "node_modules" / "axe-core" / "axe.min.js"


async def axe_violations(page: Page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA checks on what the page shows now (contrast, names,
    labels, ARIA, landmarks), as `rule: target` lines."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            });
            return r.violations.flatMap(
                (v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}`));
        }"""
    )
    return list(found)


async def test_the_page_is_accessible_at_320_px_in_every_state(
    open_web: OpenWeb, browser: Any, shots_dir: Path
) -> None:
    """axe-core (WCAG 2.1 AA) finds nothing at the start, in a conversation, after a
    refusal and at the end; the keyboard reaches the quick exit first; nothing scrolls
    sideways on a 320 px screen; new messages are announced."""
    w, web = await open_web()
    v = w.volunteers[0]
    await go_on_duty(w, v)
    assert AXE.exists(), "npm ci --prefix tests/interop"
    # The page's CSP allows no script but its own: the test's axe-core is let in.
    context = await browser.new_context(
        viewport={"width": 320, "height": 640}, locale="en-GB", bypass_csp=True
    )
    page = await context.new_page()
    await page.goto(web.base + "/")
    await expect(page.locator("#start")).to_be_enabled()

    async def check(state: str) -> None:
        assert await axe_violations(page) == [], state
        wide = await page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 320, (state, wide)

    await check("start")
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.id") == "quick-exit"
    order = []
    for _ in range(3):
        await page.keyboard.press("Tab")
        order.append(await page.evaluate("() => document.activeElement.textContent"))
    assert order == ["Norsk", "English", "Start chat"]

    await page.keyboard.press("Enter")  # Start chat, from the keyboard
    await expect(page.locator("#message")).to_be_enabled(timeout=STEP_MS)
    await expect(page.get_by_label("Your message")).to_be_visible()
    log = page.locator("#log")
    region = page.locator("#log-region")  # new messages are read out as they come
    await expect(region).to_have_attribute("role", "log")
    await expect(region).to_have_attribute("aria-live", "polite")
    await expect(region.locator("#log")).to_have_count(1)
    await accept_offer(w, v)
    await expect(log).to_contain_text(v.alias, timeout=STEP_MS)
    await page.get_by_label("Your message").fill("hei")
    await page.keyboard.press("Enter")
    await expect(log.locator("li.mine")).to_have_count(1, timeout=STEP_MS)
    await check("conversation")

    await page.locator("#end").click()
    await expect(page.locator("#ended")).to_be_visible(timeout=60_000)
    await check("ended")
    await context.close()


async def test_a_refusal_is_accessible(open_web: OpenWeb, browser: Any) -> None:
    # A world of its own: two in-process bots in one test would share one SIGTERM.
    _, closed = await open_web(
        sections={
            "opening_hours": {
                "always_open": False,
                "weekly": {"mon-sun": "00:00-23:59"},
                "closed_dates": [datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()],
            }
        }
    )
    context = await browser.new_context(
        viewport={"width": 320, "height": 640}, locale="en-GB", bypass_csp=True
    )
    page = await context.new_page()
    await page.goto(closed.base + "/")
    await page.locator("#start").click()
    await expect(page.locator("#refusal")).to_be_visible(timeout=STEP_MS)
    assert await axe_violations(page) == []
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 320
    await context.close()


async def test_a_blocked_chatter_who_starts_over_in_the_same_page_is_refused(
    open_web: OpenWeb, browser: Any, shots_dir: Path
) -> None:
    w, web = await open_web(world={"supervisor_aliases": ("Kari",)})
    v, kari = w.volunteers[0], w.supervisors[0]
    await go_on_duty(w, v)
    context = await browser.new_context(viewport={"width": 320, "height": 640}, locale="en-GB")
    page = await context.new_page()
    await page.goto(web.base + "/")
    await page.locator("#start").click()
    await expect(page.locator("#log")).to_contain_text("in the queue", timeout=STEP_MS)
    vroom, intro = await accept_offer(w, v)
    found = re.search(r"Chatter #(\d+)", intro.body or "")
    assert found is not None
    await kari.client.send_text(w.staff_room, f"!blokker {found.group(1)}")
    await next_from_bot(w, kari.client, w.staff_room, lambda m: "er blokkert" in (m.body or ""))
    await v.client.send_text(vroom, "!slutt")
    await expect(page.locator("#ended")).to_be_visible(timeout=60_000)
    await page.locator("#start-over").click()
    await page.locator("#start").click()
    refusal = page.locator("#refusal")
    await expect(refusal).to_contain_text("You cannot start a new chat here now", timeout=STEP_MS)
    await expect(refusal).to_contain_text("113")
    await Shots(page, shots_dir).take("refused-blocked")
    await context.close()
