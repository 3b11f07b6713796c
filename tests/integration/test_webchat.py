"""The web chat's server side against the real Synapse, with a Python "page": the
challenge, the proof of work solved here, an account, a login with a cross-signed device
(as the browser's Rust crypto does), the bot's invite straight into the conversation
room, a volunteer, messages both ways, the quick exit, and the account erased. Then the
refusals, the page's headers, the idle erase, and the listener off by default."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from bot.config import load_config
from bot.devtools.runner import write_config
from bot.devtools.synapse import SynapseServer, free_port
from bot.devtools.users import RegisteredUser, admin_request, q
from bot.devtools.webpage import WebPage, solve
from bot.exits import EXIT_CONFIG, StartupError
from bot.matrix.admin import AdminAPI
from bot.webchat.run import start_webchat
from tests.integration.waits import wait_until
from tests.integration.web import OpenWeb, deactivated, web_chatter
from tests.integration.world import (
    TIMEOUT,
    accept_offer,
    assert_logs_clean,
    build_world,
    go_on_duty,
    next_from_bot,
)

pytestmark = pytest.mark.timeout(120)


async def accounts_made(synapse: SynapseServer, admin: RegisteredUser, prefix: str) -> list[str]:
    """The accounts on the server whose localpart starts with `prefix`, not deactivated."""
    path = f"/_synapse/admin/v2/users?name={prefix}&limit=1000&deactivated=false"
    _, body = await admin_request(synapse.base_url, admin.access_token, "GET", path)
    return sorted(u["name"] for u in body["users"] if u["name"].startswith(f"@{prefix}"))


async def test_a_web_chatter_talks_to_a_volunteer_and_quick_exit_erases_everything(
    open_web: OpenWeb, synapse: SynapseServer, admin: RegisteredUser, make_client: Any
) -> None:
    w, page = await open_web()
    v = w.volunteers[0]
    await go_on_duty(w, v)
    status, account = await page.account()
    assert status == 201, account
    assert account["homeserver"] == synapse.base_url
    user = account["user_id"]
    assert user.startswith("@anon-")

    chatter = await web_chatter(make_client, account)
    invite = await chatter.wait_for_invite(timeout=TIMEOUT)
    assert invite.sender == w.bot_id
    await chatter.join(invite.room_id)
    room = invite.room_id
    welcome = await next_from_bot(w, chatter, room)
    assert "113" in (welcome.body or "")

    vroom, _ = await accept_offer(w, v)
    came = await next_from_bot(w, chatter, room)
    assert v.alias in (came.body or "")
    await chatter.send_text(room, "jeg har det tungt")
    relayed = await next_from_bot(w, v.client, vroom)
    assert relayed.body == "jeg har det tungt"
    await v.client.send_text(vroom, "jeg er her")
    back = await next_from_bot(w, chatter, room, lambda m: m.body == "jeg er her")
    assert back.decrypted

    await chatter.send_text(room, "!slett")
    await chatter.close()  # the quick exit replaces the page: nothing syncs any more

    async def erased() -> bool:
        return await deactivated(synapse, admin, user)

    await wait_until(erased, timeout=30, what="the web account deactivated")
    for gone in (room, vroom):
        async with aiohttp.ClientSession() as http:
            url = f"{synapse.base_url}/_synapse/admin/v1/rooms/{q(gone)}"
            headers = {"Authorization": f"Bearer {admin.access_token}"}
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 404
    async with aiohttp.ClientSession() as http:
        login = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": account["password"],
        }
        async with http.post(f"{synapse.base_url}/_matrix/client/v3/login", json=login) as resp:
            assert resp.status == 403
    assert_logs_clean(w, user, "jeg har det tungt", "jeg er her")


async def test_the_page_headers(open_web: OpenWeb, synapse: SynapseServer) -> None:
    _, page = await open_web()
    async with page.http.get(page.base + "/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Security-Policy"] == (
            f"default-src 'self'; connect-src 'self' {synapse.base_url}; "
            "script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'"
        )
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.content_type == "text/html"
    async with page.http.get(page.base + "/../../etc/passwd") as resp:
        assert resp.status == 404


async def test_refusals_bad_proof_rate_limit_and_cap(open_web: OpenWeb) -> None:
    _, page = await open_web(rate_limit={"accounts": 2, "per": "1h"}, max_open_accounts=2)
    status, body = await page.account(nonce="not-a-solution-" * 2)
    # A wrong nonce can solve 8 bits by chance (1 in 256); the test's nonce is fixed.
    assert (status, body["error"]) == (403, "proof_failed")
    assert "113" in body["text"]
    assert (await page.post("/api/account", {"nonce": 1}))[0] == 400
    assert (await page.account())[0] == 201
    assert (await page.account(language="en"))[0] == 201
    status, body = await page.account(language="en")
    assert (status, body["error"]) == (429, "rate_limited")
    assert "Wait a little" in body["text"]


async def test_the_cap_of_open_accounts(open_web: OpenWeb) -> None:
    _, page = await open_web(max_open_accounts=1)
    assert (await page.account())[0] == 201
    status, body = await page.account()
    assert (status, body["error"]) == (503, "full")
    assert "113" in body["text"]


async def test_requests_arriving_together_do_not_pass_the_cap(open_web: OpenWeb) -> None:
    """The cap is checked before the account's row is written: five requests at once
    must still make exactly as many accounts as the cap allows."""
    _, page = await open_web(max_open_accounts=2, rate_limit={"accounts": 10, "per": "1h"})
    answers = await asyncio.gather(*(page.account() for _ in range(5)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 201, 503, 503, 503]


async def test_closed_hours_are_refused_before_an_account_is_made(
    open_web: OpenWeb, synapse: SynapseServer, admin: RegisteredUser
) -> None:
    today = datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()
    hours = {"always_open": False, "weekly": {"mon-sun": "00:00-23:59"}, "closed_dates": [today]}
    _, page = await open_web(sections={"opening_hours": hours}, account_prefix="closed-")
    status, body = await page.account(language="en")
    assert (status, body["error"]) == (503, "closed")
    assert "closed right now" in body["text"]
    assert "We open again tomorrow at 00:00" in body["text"]  # the bot's own sentence
    assert "113" in body["text"]
    assert await accounts_made(synapse, admin, "closed-") == []


async def test_a_full_queue_is_refused_before_an_account_is_made(
    open_web: OpenWeb, synapse: SynapseServer, admin: RegisteredUser, make_client: Any
) -> None:
    w, page = await open_web(sections={"limits": {"queue_max_length": 1}}, account_prefix="full-")
    status, first = await page.account()
    assert status == 201
    chatter = await web_chatter(make_client, first)
    await chatter.wait_for_invite(timeout=TIMEOUT)  # the core has it: one in the queue
    status, body = await page.account(language="en")
    assert (status, body["error"]) == (503, "queue_full")
    assert "a lot of people are waiting" in body["text"]
    assert "116 111" in body["text"]
    assert await accounts_made(synapse, admin, "full-") == [first["user_id"]]
    assert_logs_clean(w, first["user_id"])


async def test_a_blocked_web_chatter_is_refused_when_they_start_over_in_the_same_page(
    open_web: OpenWeb, make_client: Any
) -> None:
    """A supervisor blocks a web chatter's conversation by its number: the same page (its
    token) gets no new account, with the emergency numbers; another page is someone new
    (README: a block holds for the life of the page only)."""
    w, page = await open_web(world={"supervisor_aliases": ("Kari",)})
    v, kari = w.volunteers[0], w.supervisors[0]
    await go_on_duty(w, v)
    status, account = await page.account()
    assert status == 201
    chatter = await web_chatter(make_client, account)
    invite = await chatter.wait_for_invite(timeout=TIMEOUT)
    await chatter.join(invite.room_id)
    _, intro = await accept_offer(w, v)
    found = re.search(r"Chatter #(\d+)", intro.body or "")
    assert found is not None

    await kari.client.send_text(w.staff_room, f"!blokker {found.group(1)}")
    await next_from_bot(w, kari.client, w.staff_room, lambda m: "er blokkert" in (m.body or ""))
    status, body = await page.account(language="en")
    assert (status, body["error"]) == (403, "blocked")
    assert "You cannot start a new chat here now" in body["text"]
    assert "113" in body["text"]
    other = WebPage(page.base)
    try:
        assert (await other.account())[0] == 201
    finally:
        await other.close()
    assert_logs_clean(w, account["user_id"])


async def test_behind_a_trusted_proxy_the_rate_limit_is_per_forwarded_address(
    open_web: OpenWeb,
) -> None:
    _, page = await open_web(rate_limit={"accounts": 1, "per": "1h"}, trusted_proxies=["127.0.0.1"])

    async def account_from(address: str) -> int:
        status, ch = await page.post("/api/challenge")
        assert status == 200
        body = {"challenge": ch["challenge"], "nonce": solve(ch["challenge"], ch["difficulty"])}
        headers = {"X-Forwarded-For": f"203.0.113.9, {address}"}
        async with page.http.post(page.base + "/api/account", json=body, headers=headers) as r:
            return r.status

    assert await account_from("198.51.100.1") == 201
    assert await account_from("198.51.100.1") == 429
    assert await account_from("198.51.100.2") == 201  # the next chatter behind the proxy


async def test_without_trusted_proxies_x_forwarded_for_is_ignored(open_web: OpenWeb) -> None:
    _, page = await open_web(rate_limit={"accounts": 1, "per": "1h"})
    assert (await page.account())[0] == 201
    _, ch = await page.post("/api/challenge")
    body = {"challenge": ch["challenge"], "nonce": solve(ch["challenge"], ch["difficulty"])}
    headers = {"X-Forwarded-For": "198.51.100.3"}
    async with page.http.post(page.base + "/api/account", json=body, headers=headers) as r:
        assert r.status == 429  # a header anyone can write buys no second account


async def test_the_page_files_are_sent_gzipped_and_the_embed_script_is_served(
    open_web: OpenWeb,
) -> None:
    _, page = await open_web()
    wasm = "/pkg/matrix_sdk_crypto_wasm_bg.wasm"
    async with page.http.get(page.base + wasm, headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Content-Type"] == "application/wasm"
        wire = int(resp.headers["Content-Length"])
        data = await resp.read()  # aiohttp decompresses it
    assert data[:4] == b"\0asm"
    assert wire < len(data) / 3, (wire, len(data))
    async with page.http.get(page.base + wasm, headers={"Accept-Encoding": "identity"}) as resp:
        assert "Content-Encoding" not in resp.headers
        assert await resp.read() == data
    async with page.http.get(page.base + "/embed.js") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/javascript"
        assert "helpline-webchat:quick-exit" in await resp.text()


async def test_an_account_that_never_starts_is_erased_after_idle_erase(
    open_web: OpenWeb, synapse: SynapseServer, admin: RegisteredUser
) -> None:
    # The line serves only another server's users, so the core opens no conversation for
    # the account: like a page that went away before anything started.
    w, page = await open_web(
        idle_erase="2s", sections={"intake": {"allowed_servers": ["other.test"]}}
    )
    status, account = await page.account()
    assert status == 201
    user = account["user_id"]
    assert not await deactivated(synapse, admin, user)

    async def erased() -> bool:
        return await deactivated(synapse, admin, user)

    await wait_until(erased, timeout=15, what="the idle web account deactivated")
    assert_logs_clean(w, user)


async def test_the_listener_is_off_by_default(
    synapse: SynapseServer, make_user: Any, make_client: Any, tmp_path: Any
) -> None:
    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        assert w.bot.config.webchat.enabled is False
        assert "web chat listening" not in w.logs.getvalue()
    finally:
        await w.close()


async def test_a_homeserver_whose_accounts_are_delegated_is_refused_at_start(
    synapse: SynapseServer, admin: RegisteredUser, tmp_path: Path
) -> None:
    """With Matrix Authentication Service, Synapse's admin API cannot make accounts: the
    bot says so at start (exit 2) instead of refusing every chatter later. The real
    Synapse here delegates nothing; a loopback server answers as one that does."""
    plain = AdminAPI(synapse.base_url, admin.access_token)
    assert not await plain.delegates_accounts()
    await plain.close()

    async def metadata(_: web.Request) -> web.Response:
        return web.json_response({"issuer": "https://auth.helpline.test/"})

    app = web.Application()
    app.router.add_get("/_matrix/client/v1/auth_metadata", metadata)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        mas = f"http://127.0.0.1:{port}"
        api = AdminAPI(mas, "token")
        assert await api.delegates_accounts()
        await api.close()
        path = write_config(
            tmp_path / "config.yaml",
            homeserver=mas,
            bot_user="@bot:helpline.test",
            bot_password="pw",
            data_dir=tmp_path / "data",
            staff_room="#vakt:helpline.test",
            volunteers=[{"user_id": "@irene:helpline.test", "alias": "Irene"}],
            admin_token="token",
            webchat={"enabled": True, "public_url": "https://chat.helpline.test"},
        )
        config = load_config(path)
        with pytest.raises(StartupError) as raised:
            await start_webchat(config, db=None, worker=None)
        assert raised.value.exit_code == EXIT_CONFIG
        assert "Matrix Authentication Service" in str(raised.value)
    finally:
        await runner.cleanup()


async def test_the_page_is_told_the_homeserver_address_and_the_helplines_own_words(
    open_web: OpenWeb,
) -> None:
    """`webchat.homeserver_url`: the page connects there, and the CSP allows exactly that;
    `webchat.texts`: the page's words and a refusal's are the organisation's."""
    today = datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()
    hours = {"always_open": False, "weekly": {"mon-sun": "00:00-23:59"}, "closed_dates": [today]}
    outside = "https://matrix.helpline.example"
    _, page = await open_web(
        sections={"opening_hours": hours},
        homeserver_url=outside,
        texts={"en": {"title": "Prat med oss", "refused.closed": "Stengt i dag. {emergency}"}},
    )
    async with page.http.get(page.base + "/api/config", headers={"Accept-Language": "en"}) as r:
        config = await r.json()
        assert f"connect-src 'self' {outside};" in r.headers["Content-Security-Policy"]
    assert config["homeserver"] == outside
    assert config["texts"]["en"]["title"] == "Prat med oss"
    assert config["texts"]["nb"]["title"] == "Snakk med oss"  # not overridden there
    status, body = await page.account(language="en")
    assert (status, body["error"]) == (503, "closed")
    assert body["text"].startswith("Stengt i dag. ")
    assert "113" in body["text"]
