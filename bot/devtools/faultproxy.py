"""A loopback HTTP/1.1 reverse proxy in front of the test Synapse that a test (or a
benchmark) breaks on purpose while the bot runs through it.

Rules, added and removed at run time, apply to requests whose path (with its query)
matches a regular expression:

- ``fail``: answer at once with a status (502 by default) and an HTML body, as a real
  reverse proxy does when its upstream is away;
- ``reset``: close the TCP connection without answering (with SO_LINGER 0, so the client
  sees a reset, not a tidy end of stream);
- ``delay``: hold the request that long before it goes on.

A rule applies until removed, or for ``for_s`` seconds, or ``times`` times. Requests that
match no failing rule are forwarded to the upstream; bodies are buffered (Matrix bodies are
small) and a long-poll (``/sync?timeout=30000``) simply waits for its answer.
:meth:`FaultProxy.reset_waiting` cuts requests that are already waiting upstream, such as
a long-poll in the middle of its wait. When the upstream does not answer at all (Synapse
stopped), the proxy answers 502, as nginx would.

Every request is recorded (method, path, what happened), and every rule counts what it
matched, so that a test waits until the bot has actually hit a fault instead of sleeping.

It binds 127.0.0.1 on a free port and never touches anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import aiohttp
from aiohttp import web
from yarl import URL

log = logging.getLogger(__name__)

T = TypeVar("T")

Action = Literal["fail", "reset", "delay"]

BAD_GATEWAY_HTML = "<html><body>Bad Gateway</body></html>"

# Hop-by-hop headers (RFC 9110 7.6.1), and the length, which is set again for the body.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}


@dataclass
class Rule:
    """One fault. `hits`: the requests it has acted on so far."""

    pattern: re.Pattern[str]
    action: Action
    status: int = 502
    body: str = BAD_GATEWAY_HTML
    content_type: str = "text/html"
    seconds: float = 0.0  # for "delay"
    method: str | None = None
    until: float | None = None  # loop time after which it no longer applies
    times: int | None = None  # how many more requests it applies to
    hits: int = 0
    first_hit_at: float | None = None  # loop time: when the fault first met a request
    removed: bool = False

    def applies(self, method: str, path: str, now: float) -> bool:
        if self.removed or (self.until is not None and now >= self.until):
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.pattern.search(path) is not None

    @property
    def active(self) -> bool:
        loop_now = asyncio.get_running_loop().time()
        expired = self.until is not None and loop_now >= self.until
        used_up = self.times is not None and self.hits >= self.times
        return not (self.removed or expired or used_up)


@dataclass
class Seen:
    """A request as the proxy saw it. `outcome`: "forwarded" (with the upstream's status),
    "failed", "reset", "cut" (reset while waiting upstream), "unreachable" (the upstream
    did not answer; 502 given) or "pending"."""

    method: str
    path: str
    outcome: str = "pending"
    status: int | None = None


@dataclass
class _Waiting:
    seen: Seen
    transport: asyncio.Transport | None
    task: asyncio.Task[tuple[int, list[tuple[str, str]], bytes]]
    cut: bool = field(default=False)


class FaultProxy:
    """``async with FaultProxy(upstream) as proxy:`` -> ``proxy.url`` forwards to
    ``upstream`` until a rule says otherwise."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._waiting: list[_Waiting] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=0),
            # No total: a long-poll waits as long as the client asked it to.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        for w in list(self._waiting):
            w.task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------------------
    # what a test drives

    def fail(
        self,
        pattern: str,
        *,
        status: int = 502,
        body: str = BAD_GATEWAY_HTML,
        content_type: str = "text/html",
        for_s: float | None = None,
        times: int | None = None,
        method: str | None = None,
    ) -> Rule:
        """Answer `status` with `body` (HTML unless `content_type` says otherwise) to
        matching requests; a 200 with a body that is not what the API promises is a
        fault too."""
        return self._add(
            Rule(re.compile(pattern), "fail", status, body, content_type), for_s, times, method
        )

    def reset(
        self,
        pattern: str,
        *,
        for_s: float | None = None,
        times: int | None = None,
        method: str | None = None,
    ) -> Rule:
        """Close the connection of matching requests without answering."""
        return self._add(Rule(re.compile(pattern), "reset"), for_s, times, method)

    def delay(
        self,
        pattern: str,
        seconds: float,
        *,
        for_s: float | None = None,
        times: int | None = None,
        method: str | None = None,
    ) -> Rule:
        """Hold matching requests `seconds` before they go on (to the next rule, or up)."""
        return self._add(Rule(re.compile(pattern), "delay", seconds=seconds), for_s, times, method)

    def remove(self, rule: Rule) -> None:
        rule.removed = True
        if rule in self.rules:
            self.rules.remove(rule)

    def heal(self) -> None:
        """Remove every rule: from now on everything is forwarded."""
        for rule in list(self.rules):
            self.remove(rule)

    def reset_waiting(self, pattern: str) -> int:
        """Reset the connections of matching requests that wait for the upstream's answer
        right now (a long-poll in the middle of its wait). Returns how many."""
        regex = re.compile(pattern)
        cut = 0
        for w in list(self._waiting):
            if w.cut or not regex.search(w.seen.path):
                continue
            w.cut = True
            _reset(w.transport)
            w.task.cancel()
            cut += 1
        return cut

    def waiting(self, pattern: str) -> int:
        """How many matching requests wait for the upstream right now."""
        regex = re.compile(pattern)
        return sum(1 for w in self._waiting if not w.cut and regex.search(w.seen.path))

    def count(self, pattern: str = "", *, outcome: str | None = None) -> int:
        """How many requests so far matched `pattern` (and had `outcome`, if given)."""
        regex = re.compile(pattern)
        return sum(
            1
            for s in self.seen
            if regex.search(s.path) and (outcome is None or s.outcome == outcome)
        )

    async def wait_until(
        self, predicate: Callable[[], T], timeout: float, what: str = "a condition"
    ) -> T:
        """Wait until `predicate()` is truthy (checked after every request and every
        change of state); return its value, or raise TimeoutError naming `what`."""
        async with self._changed:
            try:
                return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise TimeoutError(f"fault proxy: no {what} within {timeout}s") from None

    async def wait_for_hits(self, rule: Rule, n: int = 1, timeout: float = 60.0) -> int:
        """Until `rule` has acted on at least `n` requests."""
        return await self.wait_until(
            lambda: rule.hits >= n and rule.hits, timeout, f"{n} hit(s) of {rule.pattern.pattern}"
        )

    async def wait_for_waiting(self, pattern: str, timeout: float = 60.0) -> int:
        """Until a matching request waits for the upstream (a long-poll is open)."""
        return await self.wait_until(
            lambda: self.waiting(pattern), timeout, f"waiting request for {pattern}"
        )

    # ----------------------------------------------------------------------------------

    def _add(self, rule: Rule, for_s: float | None, times: int | None, method: str | None) -> Rule:
        if for_s is not None:
            rule.until = asyncio.get_running_loop().time() + for_s
        rule.times = times
        rule.method = method
        self.rules.append(rule)
        return rule

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.raw_path)
        self.seen.append(seen)
        try:
            return await self._answer(request, seen)
        finally:
            await self._notify()

    async def _answer(self, request: web.Request, seen: Seen) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        for rule in list(self.rules):
            if not rule.applies(seen.method, seen.path, loop.time()):
                continue
            rule.hits += 1
            if rule.first_hit_at is None:
                rule.first_hit_at = loop.time()
            if rule.action == "delay":
                await self._notify()
                await asyncio.sleep(rule.seconds)
            elif rule.action == "fail":
                seen.outcome, seen.status = "failed", rule.status
                return web.Response(
                    status=rule.status, text=rule.body, content_type=rule.content_type
                )
            else:
                seen.outcome = "reset"
                _reset(request.transport)
                return web.Response(status=500)  # never written: the connection is gone
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        task = asyncio.ensure_future(self._forward(request.method, seen.path, headers, body))
        waiting = _Waiting(seen, request.transport, task)
        self._waiting.append(waiting)
        await self._notify()
        try:
            status, resp_headers, resp_body = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not waiting.cut:
                task.cancel()
                raise
            seen.outcome = "cut"
            return web.Response(status=500)  # never written: the connection is gone
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("fault proxy: upstream did not answer: %r", exc)
            seen.outcome, seen.status = "unreachable", 502
            return web.Response(status=502, text=BAD_GATEWAY_HTML, content_type="text/html")
        finally:
            self._waiting.remove(waiting)
        seen.outcome, seen.status = "forwarded", status
        resp = web.Response(status=status, body=resp_body)
        for k, v in resp_headers:
            resp.headers.add(k, v)
        return resp

    async def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self._session is not None
        async with self._session.request(
            method,
            URL(self.upstream + path, encoded=True),
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as resp:
            data = await resp.read()
            out = [(k, v) for k, v in resp.headers.items() if k.lower() not in _HOP]
            return resp.status, out, data


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close without answering, with a TCP RST rather than a FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()
