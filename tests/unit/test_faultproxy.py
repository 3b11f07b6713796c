"""The fault proxy against a stand-in upstream: it forwards, and it breaks on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from bot.devtools.faultproxy import BAD_GATEWAY_HTML, FaultProxy


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """`/echo` answers JSON with what it got; `/poll` waits until `/release` (a long-poll)."""
    release = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {"method": request.method, "path": request.raw_path, "body": await request.text()}
        )

    async def poll(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"next_batch": "s1"})

    async def do_release(request: web.Request) -> web.Response:
        release.set()
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_post("/poll", poll)
    app.router.add_post("/release", do_release)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    release.set()
    await runner.cleanup()


@pytest.fixture
async def proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(upstream) as p:
        yield p


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def test_it_forwards_method_query_and_body(proxy, http):
    url = URL(f"{proxy.url}/echo?a=1&b=%2F", encoded=True)  # as sent, not requoted
    async with http.put(url, data="hei") as resp:
        assert resp.status == 200
        assert await resp.json() == {"method": "PUT", "path": "/echo?a=1&b=%2F", "body": "hei"}
    assert proxy.count("/echo", outcome="forwarded") == 1


async def test_a_fail_rule_answers_html_until_removed(proxy, http):
    rule = proxy.fail("^/echo")
    for _ in range(2):
        async with http.get(f"{proxy.url}/echo") as resp:
            assert resp.status == 502
            assert resp.content_type == "text/html"
            assert await resp.text() == BAD_GATEWAY_HTML
    assert rule.hits == 2
    assert rule.active
    proxy.remove(rule)
    async with http.get(f"{proxy.url}/echo") as resp:
        assert resp.status == 200
    assert not rule.active
    assert rule.hits == 2


async def test_a_rule_can_last_some_seconds_or_some_times(proxy, http):
    timed = proxy.fail("^/echo", status=503, for_s=0.3)
    async with http.get(f"{proxy.url}/echo") as resp:
        assert resp.status == 503
    await asyncio.sleep(0.4)
    assert not timed.active
    proxy.fail("^/echo", times=1)
    statuses = []
    for _ in range(2):
        async with http.get(f"{proxy.url}/echo") as resp:
            statuses.append(resp.status)
    assert statuses == [502, 200]


async def test_a_reset_rule_closes_the_connection_without_an_answer(proxy, http):
    # POST: aiohttp's client quietly retries an idempotent request once on a cut connection.
    rule = proxy.reset("^/echo", times=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.post(f"{proxy.url}/echo") as resp:
            await resp.read()
    assert rule.hits == 1
    async with http.get(f"{proxy.url}/echo") as resp:  # the next one goes through
        assert resp.status == 200


async def test_a_waiting_long_poll_can_be_cut(proxy, http, upstream):
    async def long_poll() -> None:
        async with http.post(f"{proxy.url}/poll") as resp:  # POST: see above
            await resp.read()

    polling = asyncio.create_task(long_poll())
    assert await proxy.wait_for_waiting("^/poll", timeout=5) == 1
    assert proxy.reset_waiting("^/poll") == 1
    with pytest.raises(aiohttp.ClientConnectionError):
        await polling
    assert proxy.waiting("^/poll") == 0
    assert proxy.count("^/poll", outcome="cut") == 1
    # A new long-poll waits and gets its answer.
    polling = asyncio.create_task(long_poll())
    await proxy.wait_for_waiting("^/poll", timeout=5)
    async with http.post(f"{upstream}/release") as resp:
        assert resp.status == 200
    await asyncio.wait_for(polling, 5)


async def test_a_delay_holds_the_request_then_forwards_it(proxy, http):
    proxy.delay("^/echo", 0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(f"{proxy.url}/echo") as resp:
        assert resp.status == 200
    assert loop.time() - started >= 0.3


async def test_an_upstream_that_is_away_gives_502(http):
    async with FaultProxy("http://127.0.0.1:9") as proxy:  # discard port: nothing listens
        async with http.get(f"{proxy.url}/echo") as resp:
            assert resp.status == 502
        assert proxy.count(outcome="unreachable") == 1


async def test_waiting_on_hits_instead_of_sleeping(proxy, http):
    rule = proxy.fail("^/echo")

    async def later() -> None:
        await asyncio.sleep(0.1)
        async with http.get(f"{proxy.url}/echo") as resp:
            await resp.read()

    task = asyncio.create_task(later())
    assert await proxy.wait_for_hits(rule, 1, timeout=5) == 1
    await task
    with pytest.raises(TimeoutError):
        await proxy.wait_for_hits(rule, 2, timeout=0.2)
