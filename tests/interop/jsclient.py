"""Drive an Element-stack client (``client.mjs``: matrix-js-sdk + Rust crypto) from a test.

One :class:`JsClient` is one Node process and one Matrix device. Commands go to its stdin
as JSON lines and each is answered by a line with the same ``id``; everything else it
prints is an event (``message``, ``undecryptable``, ``invite``, ``error``, ...), kept in
:attr:`JsClient.events`. Every call has a timeout. An ``error`` event (a sync failure, an
unhandled rejection in the SDK) is recorded and fails the test at teardown
(:meth:`JsClient.check`); the SDK's log is written to a file whose tail is attached to
every failure.

The process is killed by its PID in :meth:`JsClient.close`, which the fixtures always
call; it also exits on its own when its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HERE = Path(__file__).parent.resolve()
DRIVER = HERE / "client.mjs"
NODE_MODULES = HERE / "node_modules"

# Extra time the Python side allows beyond a command's own timeout, before it gives up on
# an answer: the Node side should always answer first, with its own error.
_MARGIN = 10.0
_DEFAULT_TIMEOUT = 30.0


class JsClientError(RuntimeError):
    """A command failed, timed out, or the Node process died."""


def node_setup_problem() -> str | None:
    """Why the Node side cannot run here, or None if it can."""
    if shutil.which("node") is None:
        return "node is not on PATH (the interop tests need Node 20+)"
    if not (NODE_MODULES / "matrix-js-sdk").is_dir():
        return f"{NODE_MODULES} is missing: run `npm ci --prefix tests/interop` first"
    return None


class JsClient:
    """A matrix-js-sdk client in a Node subprocess."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.info: dict[str, Any] = {}  # the "ready" event: Node and SDK versions
        self.user_id: str | None = None
        self.device_id: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._log_file: Any = None

    # ------------------------------------------------------------------ process

    async def start(self, timeout: float = 20.0) -> None:
        problem = node_setup_problem()
        if problem:
            raise JsClientError(problem)
        self._log_file = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log_file,
            cwd=HERE,
            limit=4 * 1024 * 1024,
        )
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(), name=f"js-{self.name}-reader")
        started = time.monotonic()
        try:
            self.info = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            raise JsClientError(
                f"{self.name}: node did not start within {timeout}s\n{self.log_tail()}"
            ) from None
        log.debug("%s start: %.3fs %s", self.name, time.monotonic() - started, self.info)

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    self.errors.append({"where": "protocol", "error": f"not JSON: {line[:200]!r}"})
                    continue
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                self.events.append(msg)
                log.debug("%s event %s", self.name, msg)
                kind = msg.get("event")
                if kind == "ready" and self._ready is not None and not self._ready.done():
                    self._ready.set_result(msg)
                elif kind == "error":
                    self.errors.append(msg)
        finally:
            code = await self.proc.wait()
            failure = JsClientError(f"{self.name}: node exited with {code}\n{self.log_tail()}")
            for fut in [*self._pending.values(), self._ready]:
                if fut is not None and not fut.done():
                    fut.set_exception(failure)
            self._pending.clear()

    async def close(self) -> None:
        """Ask the process to stop, then kill it by PID if it has not. Idempotent."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call("stop"), 3)
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.wait_for(proc.wait(), 10)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def check(self) -> None:
        """Raise if the process reported any error outside a command."""
        if self.errors:
            lines = "\n".join(f"  {e.get('where')}: {e.get('error')}" for e in self.errors)
            raise JsClientError(f"{self.name} reported errors:\n{lines}\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(line[:400] for line in text.splitlines()[-n:])
        return f"--- {self.log_path} (last {n} lines) ---\n{tail}"

    # ----------------------------------------------------------------- commands

    async def call(self, cmd: str, *, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Run one command; its result, or :class:`JsClientError` with the reason.

        ``timeout`` (seconds) is passed to the Node side for the waits, which fail there
        first; this side waits that long plus a margin.
        """
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise JsClientError(f"{self.name}: node is not running\n{self.log_tail()}")
        if timeout is not None:
            args["timeout"] = timeout
        request_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        proc.stdin.write(json.dumps({"id": request_id, "cmd": cmd, "args": args}).encode() + b"\n")
        await proc.stdin.drain()
        limit = (timeout or _DEFAULT_TIMEOUT) + _MARGIN
        started = time.monotonic()
        try:
            reply = await asyncio.wait_for(fut, limit)
            log.debug("%s %s: %.3fs", self.name, cmd, time.monotonic() - started)
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise JsClientError(
                f"{self.name}: no answer to {cmd} within {limit}s\n{self.log_tail()}"
            ) from None
        if not reply.get("ok"):
            raise JsClientError(f"{self.name}: {cmd} failed: {reply.get('error')}")
        return dict(reply.get("result") or {})

    async def login(self, homeserver: str, user: str, password: str) -> dict[str, Any]:
        result = await self.call(
            "login", homeserver=homeserver, user=user, password=password, timeout=20
        )
        self.user_id, self.device_id = result["user_id"], result["device_id"]
        return result

    async def set_isolation(self, mode: str) -> None:
        await self.call("set_isolation", mode=mode)

    async def bootstrap_cross_signing(self) -> dict[str, Any]:
        return await self.call("bootstrap_cross_signing", timeout=20)

    async def create_room(
        self, invite: list[str] | tuple[str, ...] = (), *, is_direct: bool = False, name: str = ""
    ) -> str:
        args: dict[str, Any] = {"invite": list(invite), "is_direct": is_direct}
        if name:
            args["name"] = name
        return str((await self.call("create_room", **args))["room_id"])

    async def wait_for_invite(
        self, *, timeout: float, room_id: str | None = None, sender: str | None = None
    ) -> dict[str, Any]:
        return await self.call("wait_for_invite", timeout=timeout, room_id=room_id, sender=sender)

    async def join(self, room_id: str) -> None:
        await self.call("join", room_id=room_id)

    async def wait_for_join(self, room_id: str, user_id: str, *, timeout: float) -> None:
        await self.call("wait_for_join", room_id=room_id, user_id=user_id, timeout=timeout)

    async def wait_for_encryption(self, room_id: str, *, timeout: float) -> str:
        result = await self.call("wait_for_encryption", room_id=room_id, timeout=timeout)
        return str(result["algorithm"])

    async def send_text(self, room_id: str, body: str) -> str:
        return str((await self.call("send_text", room_id=room_id, body=body))["event_id"])

    async def wait_for_message(
        self,
        *,
        timeout: float,
        room_id: str | None = None,
        sender: str | None = None,
        contains: str | None = None,
    ) -> dict[str, Any]:
        """The oldest message not yet taken that matches (never this client's own)."""
        return await self.call(
            "wait_for_message", timeout=timeout, room_id=room_id, sender=sender, contains=contains
        )

    async def device_trust(self, user_id: str) -> dict[str, Any]:
        return await self.call("device_trust", user_id=user_id)

    async def leave(self, room_id: str) -> None:
        await self.call("leave", room_id=room_id)

    async def wait_event(
        self, what: str, predicate: Callable[[dict[str, Any]], bool], *, timeout: float
    ) -> dict[str, Any]:
        """The first event (already reported or still to come) matching ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = next((e for e in self.events if predicate(e)), None)
            if found is not None:
                log.debug("%s %s: %.3fs", self.name, what, timeout - (deadline - loop.time()))
                return found
            if self.proc is None or self.proc.returncode is not None:
                raise JsClientError(f"{self.name}: node exited\n{self.log_tail()}")
            if loop.time() > deadline:
                raise JsClientError(f"{self.name}: no {what} within {timeout}s")
            await asyncio.sleep(0.05)

    def undecryptable(self, room_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == "undecryptable" and room_id in (None, e.get("room_id"))
        ]

    def __repr__(self) -> str:
        return f"<JsClient {self.name} {self.user_id} {self.device_id}>"
