"""The loopback HTTP endpoint with a stand-in health: every answer /healthz can give."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.devtools.synapse import free_port
from bot.http import Health, HttpEndpoint, HttpStartError
from bot.metrics import Metrics


class Fake:
    def __init__(self) -> None:
        self.running = True
        self.age: float | None = 5.0  # seconds since the last good sync; None: never
        self.db_error: Exception | None = None
        self.db_delay = 0.0
        self.worker_reasons: list[str] = []

    async def worker(self) -> list[str]:
        return list(self.worker_reasons)

    def last_sync_ok(self) -> float:
        if self.age is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.age

    async def db_writable(self) -> None:
        await asyncio.sleep(self.db_delay)
        if self.db_error is not None:
            raise self.db_error


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Fake, Callable[[str], Any]]]:
    fake = Fake()
    health = Health(
        sync_running=lambda: fake.running,
        last_sync_ok=fake.last_sync_ok,
        db_writable=fake.db_writable,
        worker=fake.worker,
        max_sync_age=60,
        started_at=asyncio.get_running_loop().time() - 100,
    )
    metrics = Metrics(status=lambda: {"waiting": 3, "on_duty": 2}, sync_errors=lambda: 1)
    port = free_port()
    http = HttpEndpoint("127.0.0.1", port, health, metrics)
    await http.start()

    async def get(path: str) -> tuple[int, str, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}{path}") as resp,
        ):
            return resp.status, resp.headers["Content-Type"], await resp.text()

    try:
        yield fake, get
    finally:
        await http.stop()


async def test_healthy(endpoint: Any) -> None:
    _, get = endpoint
    status, ctype, body = await get("/healthz")
    assert status == 200
    assert ctype.startswith("application/json")
    assert '"status": "ok"' in body
    assert '"reasons": []' in body


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: setattr(f, "running", False), "sync loop not running"),
        (lambda f: setattr(f, "age", None), "no successful sync since the start 100 s ago"),
        (lambda f: setattr(f, "age", 200.0), "no successful sync for 200 s"),
        (
            lambda f: setattr(f, "db_error", sqlite3.OperationalError("disk I/O error")),
            "database not writable (OperationalError)",
        ),
        (
            lambda f: setattr(f, "worker_reasons", ["1 effect(s) parked (ValueError)"]),
            "1 effect(s) parked (ValueError)",
        ),
    ],
)
async def test_unhealthy_says_why_in_a_few_words(
    endpoint: Any, change: Callable[[Fake], None], reason: str
) -> None:
    fake, get = endpoint
    change(fake)
    status, _, body = await get("/healthz")
    assert status == 503
    assert reason in body


async def test_metrics_in_prometheus_text_format(endpoint: Any) -> None:
    _, get = endpoint
    status, ctype, body = await get("/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    assert "helpline_queue_length 3.0" in body
    assert "helpline_volunteers_on_duty 2.0" in body
    assert "helpline_sync_errors_total 1.0" in body
    assert "# TYPE helpline_wait_seconds histogram" in body


async def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        health = Health(lambda: True, lambda: 1.0, _noop)
        http = HttpEndpoint("127.0.0.1", port, health, Metrics(status=dict, sync_errors=int))
        with pytest.raises(HttpStartError, match=f"127.0.0.1:{port}.*http.port"):
            await http.start()


async def test_a_first_long_poll_still_open_is_healthy() -> None:
    """Just started, the first sync not back yet (it waits for events): healthy."""
    health = Health(lambda: True, lambda: 0.0, _noop, max_sync_age=60)
    assert await health.check() == []


async def test_port_zero_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 0 is "off", not "any free port": nothing may listen, on no port at all."""
    listening: list[object] = []

    async def start_site(site: web.TCPSite) -> None:
        listening.append(site)  # a listener would have been opened here

    monkeypatch.setattr(web.TCPSite, "start", start_site)
    health = Health(lambda: True, lambda: 1.0, _noop)
    http = HttpEndpoint("127.0.0.1", 0, health, Metrics(status=dict, sync_errors=int))
    await http.start()
    try:
        assert listening == [], "port 0 opened a listener"
    finally:
        await http.stop()


async def _noop() -> None:
    return None
