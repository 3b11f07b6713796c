"""The web chat's server side against the real Synapse, with a Python "page": the
challenge, the proof of work solved here, an account, a login with a cross-signed device
(as the browser's Rust crypto does), the bot's invite straight into the conversation
room, a volunteer, messages both ways, the quick exit, and the account erased. Then the
refusals, the page's headers, the idle erase, and the listener off by default."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from bot.devtools.synapse import SynapseServer, free_port
from bot.devtools.users import RegisteredUser, get_user_admin_info, q
from bot.webchat.guard import leading_zero_bits
from tests.integration.waits import wait_until
from tests.integration.world import (
    TIMEOUT,
    World,
    accept_offer,
    assert_logs_clean,
    build_world,
    go_on_duty,
    next_from_bot,
)

pytestmark = pytest.mark.timeout(120)

DIFFICULTY = 8


def solve(challenge: str, difficulty: int) -> str:
    for n in itertools.count():
        nonce = str(n)
        if leading_zero_bits(hashlib.sha256((challenge + nonce).encode()).digest()) >= difficulty:
            return nonce
    raise AssertionError("unreachable")


class Page:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession()

    async def post(self, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.base + path, json=body) as resp:
            return resp.status, await resp.json()

    async def account(self, *, nonce: str | None = None, language: str = "nb") -> Any:
        status, ch = await self.post("/api/challenge")
        assert status == 200
        assert ch["difficulty"] == DIFFICULTY
        found = nonce if nonce is not None else solve(ch["challenge"], ch["difficulty"])
        body = {"challenge": ch["challenge"], "nonce": found, "language": language}
        return await self.post("/api/account", body)


OpenWeb = Callable[..., Awaitable[tuple[World, Page]]]


@pytest.fixture
async def open_web(
    synapse: SynapseServer, make_user: Any, make_client: Any, tmp_path: Any, admin: RegisteredUser
) -> AsyncIterator[OpenWeb]:
    opened: list[tuple[World, Page]] = []

    async def _open(intake: dict[str, Any] | None = None, **webchat: Any) -> tuple[World, Page]:
        port = free_port()
        section = {
            "enabled": True,
            "listen": f"127.0.0.1:{port}",
            "public_url": f"http://127.0.0.1:{port}",
            "pow_difficulty": DIFFICULTY,
            **webchat,
        }
        w = await build_world(
            synapse,
            make_user,
            make_client,
            tmp_path,
            admin_token=admin.access_token,
            webchat=section,
            **({"intake": intake} if intake else {}),
        )
        page = Page(f"http://127.0.0.1:{port}")
        opened.append((w, page))
        return w, page

    yield _open
    for w, page in opened:
        await page.http.close()
        await w.close()


async def deactivated(synapse: SynapseServer, admin: RegisteredUser, user: str) -> bool:
    info = await get_user_admin_info(synapse.base_url, admin.access_token, user)
    return bool(info.get("deactivated"))


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

    localpart = user[1:].split(":")[0]
    chatter = await make_client(RegisteredUser(user, localpart, account["password"], "", "", False))
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


async def test_an_account_that_never_starts_is_erased_after_idle_erase(
    open_web: OpenWeb, synapse: SynapseServer, admin: RegisteredUser
) -> None:
    # The line serves only another server's users, so the core opens no conversation for
    # the account: like a page that went away before anything started.
    w, page = await open_web(idle_erase="2s", intake={"allowed_servers": ["other.test"]})
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
