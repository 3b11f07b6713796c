"""The loopback HTTP endpoint: `/healthz` for orchestrators, `/metrics` for Prometheus.

Rules: it listens on the configured loopback address only (the config refuses anything
else), answers in a few milliseconds, and says nothing about anyone: the health answer
is a status and short reasons, the metrics are counts and timings. `http.port: 0` turns
it off.

`/healthz` is 200 when the sync loop is running and has synced successfully within
`max_sync_age` seconds (a long poll lasts 30 s, so a healthy loop syncs at least that
often) and the database accepts a write transaction; otherwise 503 with the reasons.
Right after a start the first long poll may still be open: that counts from the start, so
a bot that is waiting for events is healthy, and one that never gets an answer is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

MAX_SYNC_AGE_S = 120.0
DB_CHECK_TIMEOUT_S = 5.0


class HttpStartError(Exception):
    """The endpoint could not listen (the port is taken, or the address is not local)."""


@dataclass
class Health:
    """What `/healthz` checks. Times are the event loop's clock (`loop.time()`), like
    `Connection.last_sync_ok`."""

    sync_running: Callable[[], bool]
    last_sync_ok: Callable[[], float]  # 0.0 until the first successful sync
    db_writable: Callable[[], Awaitable[None]]  # raises when the database is not writable
    worker: Callable[[], Awaitable[list[str]]] | None = None  # why the worker is stuck
    max_sync_age: float = MAX_SYNC_AGE_S
    started_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    async def check(self) -> list[str]:
        """The reasons the bot is unhealthy; empty when it is healthy."""
        reasons: list[str] = []
        now = asyncio.get_running_loop().time()
        last = self.last_sync_ok()
        if not self.sync_running():
            reasons.append("sync loop not running")
        elif last <= 0 and now - self.started_at > self.max_sync_age:
            since = round(now - self.started_at)
            reasons.append(f"no successful sync since the start {since} s ago")
        elif last > 0 and now - last > self.max_sync_age:
            reasons.append(f"no successful sync for {round(now - last)} s")
        try:
            await asyncio.wait_for(self.db_writable(), DB_CHECK_TIMEOUT_S)
        except TimeoutError:
            reasons.append("database busy")
        except Exception as exc:
            reasons.append(f"database not writable ({type(exc).__name__})")
            return reasons
        if self.worker is not None:
            try:
                reasons.extend(await asyncio.wait_for(self.worker(), DB_CHECK_TIMEOUT_S))
            except TimeoutError:
                reasons.append("database busy")
        return reasons


class HttpEndpoint:
    def __init__(self, host: str, port: int, health: Health, metrics: Metrics) -> None:
        self.host = host
        self.port = port
        self.health = health
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.port == 0:
            return
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise HttpStartError(
                f"http: cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); "
                "change http.port, or set it to 0 to turn the endpoint off"
            ) from exc
        log.info("http endpoint listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        reasons = await self.health.check()
        body: dict[str, object] = {
            "status": "ok" if not reasons else "unhealthy",
            "reasons": reasons,
        }
        body["check_ms"] = round((time.monotonic() - started) * 1000, 1)
        return web.json_response(body, status=200 if not reasons else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp
