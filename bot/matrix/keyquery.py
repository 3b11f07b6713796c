"""Device keys of people on other servers, asked for without anyone waiting on a server
that does not answer.

nio asks `/keys/query` for every user whose devices it must look at again, in one
request, from the sync loop and before sends; `/keys/claim` likewise. The homeserver
answers such a request only when every server in it has answered, or its timeout (10 s
by default) has passed. One volunteer or chatter on a server that is down then held up
every sync and every send for everyone, again at each sync, since nio asks for a user
its answer lacked once more.

So (`PatchedClient.keys_query` / `keys_claim` in `bot.matrix.patches` call these):

- users are asked for per server, each server in a request of its own, side by side; the
  helpline's own server in one request that never waits on another;
- a request for another server's users asks the homeserver to wait `REMOTE_TIMEOUT_MS` at
  most;
- a server that fails (in the answer's `failures`, or no answer) is paused: not asked
  again for `PAUSES` (30 s, doubling to 10 minutes) while it stays silent;
- the catch-all query (nio's own, the sync's) waits for the own server only; other
  servers are asked in the background. Who needs a room's devices before sending there
  waits for that room's people (`refresh`), and for nobody else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from nio import Api, KeysClaimResponse, KeysQueryResponse

log = logging.getLogger(__name__)

REMOTE_TIMEOUT_MS = 5000
PAUSES = (30.0, 60.0, 120.0, 300.0, 600.0)


def server_of(user: str) -> str:
    return user.partition(":")[2]


def by_server(users: Iterable[str]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for user in users:
        groups.setdefault(server_of(user), set()).add(user)
    return groups


class KeyServers:
    """What the bot knows of each server's key answers: paused after a failure, and the
    background request in flight (one per server)."""

    def __init__(self, own: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.own = own
        self._clock = clock
        self._paused: dict[str, tuple[float, int]] = {}  # server -> (until, failures)
        self.busy: dict[str, asyncio.Task[None]] = {}

    def ready(self, server: str) -> bool:
        paused = self._paused.get(server)
        return paused is None or self._clock() >= paused[0]

    def failed(self, server: str) -> None:
        _, failures = self._paused.get(server, (0.0, 0))
        pause = PAUSES[min(failures, len(PAUSES) - 1)]
        self._paused[server] = (self._clock() + pause, failures + 1)
        log.warning(
            "a server did not answer for its users' keys: paused",
            extra={"seconds": pause, "failures": failures + 1},
        )

    def answered(self, server: str) -> None:
        self._paused.pop(server, None)


async def ask_query(client: Any, users: Collection[str], servers: KeyServers) -> Any:
    """One `/keys/query` for `users` (all of one server); nio reads the answer as its own."""
    server = server_of(next(iter(users)))
    method, path, _ = Api.keys_query(client.access_token, users)
    content: dict[str, Any] = {"device_keys": {user: [] for user in users}}
    if server != servers.own:
        content["timeout"] = REMOTE_TIMEOUT_MS
    return await _ask(client, KeysQueryResponse, method, path, content, server, servers)


async def ask_claim(client: Any, user_set: dict[str, Iterable[str]], servers: KeyServers) -> Any:
    """One `/keys/claim` for devices of one server's users."""
    server = server_of(next(iter(user_set)))
    method, path, _ = Api.keys_claim(client.access_token, user_set)
    content: dict[str, Any] = {
        "one_time_keys": {
            user: dict.fromkeys(devices, "signed_curve25519") for user, devices in user_set.items()
        }
    }
    if server != servers.own:
        content["timeout"] = REMOTE_TIMEOUT_MS
    return await _ask(client, KeysClaimResponse, method, path, content, server, servers)


async def _ask(
    client: Any,
    kind: type,
    method: str,
    path: str,
    content: dict[str, Any],
    server: str,
    servers: KeyServers,
) -> Any:
    try:
        resp = await client._send(kind, method, path, Api.to_json(content))
    except (TimeoutError, OSError):
        resp = None
    if server == servers.own:
        return resp
    if not isinstance(resp, kind) or server in (getattr(resp, "failures", None) or {}):
        servers.failed(server)
    else:
        servers.answered(server)
    return resp


async def query(
    client: Any, users: Iterable[str], servers: KeyServers, *, wait_for_others: bool
) -> Any:
    """Ask for these users' devices: the own server's awaited; each other server in a
    request of its own, awaited only with `wait_for_others`, skipped while paused or
    while a background request for it is still out. Returns the own server's answer."""
    groups = by_server(users)
    local = groups.pop(servers.own, set())
    waits: list[asyncio.Task[None]] = []
    for server, batch in groups.items():
        running = servers.busy.get(server)
        if running is not None:
            if wait_for_others:
                waits.append(running)
            continue
        if not servers.ready(server):
            continue
        task = asyncio.create_task(_background(client, batch, server, servers))
        servers.busy[server] = task
        waits.append(task)
    own = await ask_query(client, local, servers) if local else KeysQueryResponse({}, {})
    if wait_for_others and waits:
        await asyncio.wait(waits)
    return own


async def _background(client: Any, batch: set[str], server: str, servers: KeyServers) -> None:
    try:
        await ask_query(client, batch, servers)
    except Exception as exc:  # nothing here may take the caller down
        log.warning("keys query failed", extra={"error": type(exc).__name__})
        servers.failed(server)
    finally:
        servers.busy.pop(server, None)


async def claim(client: Any, user_set: dict[str, Any], servers: KeyServers) -> Any:
    """Claim one-time keys per server, side by side; paused servers are left out (their
    devices get no room key now: their server could not deliver it anyway)."""
    groups: dict[str, dict[str, Any]] = {}
    for user, devices in user_set.items():
        groups.setdefault(server_of(user), {})[user] = devices
    asks = [
        ask_claim(client, batch, servers)
        for server, batch in groups.items()
        if server == servers.own or servers.ready(server)
    ]
    answers = await asyncio.gather(*asks) if asks else []
    own = next((a for a in answers if isinstance(a, KeysClaimResponse)), None)
    return own if own is not None else KeysClaimResponse({}, {})


async def refresh(client: Any, users: Iterable[str]) -> None:
    """Before a send: look again at these users' devices, if nio has marked any of them
    to be looked at, waiting for their servers (and for no other). Every pending user of
    the own server goes in the same request: on a busy evening one request then serves
    the sends of many rooms, as nio's own single query did."""
    pending: Collection[str] = getattr(client, "users_for_key_query", set())
    wanted = {u for u in users if u in pending}
    if not wanted:
        return
    servers = getattr(client, "key_servers", None)
    if servers is None:  # a plain nio client (tests): nio's own way
        await client.keys_query()
        return
    own = {u for u in pending if server_of(u) == servers.own}
    await query(client, wanted | own, servers, wait_for_others=True)
