"""Device keys asked for per server: the own server's answer never waits on another's, a
server that fails is paused (30 s, doubling to 10 min) and not asked meanwhile, and the
catch-all query leaves other servers to the background. The client is a stand-in for
nio's: it records each request and answers as the homeserver would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nio import KeysClaimResponse, KeysQueryResponse

from bot.matrix.keyquery import PAUSES, KeyServers, claim, query, refresh

OWN = "helpline.test"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Homeserver:
    """Answers /keys/query and /keys/claim; a server in `down` is listed in `failures`
    after `delay` seconds."""

    access_token = "token"

    def __init__(self, down: set[str] = frozenset(), delay: float = 0.0) -> None:
        self.down = set(down)
        self.delay = delay
        self.asked: list[tuple[str, list[str], int | None]] = []
        self.users_for_key_query: set[str] = set()

    async def _send(self, kind: type, method: str, path: str, data: str) -> Any:
        body = json.loads(data)
        users = sorted(body.get("device_keys") or body.get("one_time_keys"))
        servers = {u.partition(":")[2] for u in users}
        self.asked.append((path.split("?")[0].rsplit("/", 1)[-1], users, body.get("timeout")))
        failures = {s: {"status": 503} for s in servers & self.down}
        if failures:
            await asyncio.sleep(self.delay)
        if kind is KeysQueryResponse:
            return KeysQueryResponse(
                {u: {} for u in users if u.partition(":")[2] not in failures}, failures
            )
        return KeysClaimResponse({}, failures)


async def test_each_server_is_asked_apart_and_the_own_server_without_a_timeout() -> None:
    hs = Homeserver()
    servers = KeyServers(OWN)
    users = ["@a:helpline.test", "@b:helpline.test", "@c:school.example", "@d:other.example"]
    await query(hs, users, servers, wait_for_others=True)
    asked = sorted(hs.asked)
    assert asked == [
        ("query", ["@a:helpline.test", "@b:helpline.test"], None),
        ("query", ["@c:school.example"], 5000),
        ("query", ["@d:other.example"], 5000),
    ]


async def test_the_catch_all_query_does_not_wait_for_a_slow_server() -> None:
    hs = Homeserver(down={"school.example"}, delay=5.0)
    servers = KeyServers(OWN)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await query(hs, ["@a:helpline.test", "@c:school.example"], servers, wait_for_others=False)
    assert loop.time() - began < 1.0
    assert "school.example" in servers.busy  # still being asked, in the background
    # A second catch-all meanwhile does not ask that server again.
    await query(hs, ["@c:school.example"], servers, wait_for_others=False)
    await asyncio.sleep(0.05)  # the background request is under way
    assert [users for _, users, _ in hs.asked].count(["@c:school.example"]) == 1
    for task in list(servers.busy.values()):
        task.cancel()


async def test_a_failing_server_is_paused_longer_each_time_and_asked_again_after() -> None:
    clock = Clock()
    hs = Homeserver(down={"school.example"})
    servers = KeyServers(OWN, clock=clock)
    far = ["@c:school.example"]
    await query(hs, far, servers, wait_for_others=True)
    assert not servers.ready("school.example")
    await query(hs, far, servers, wait_for_others=True)
    assert len(hs.asked) == 1  # paused: not asked
    clock.t += PAUSES[0]
    assert servers.ready("school.example")
    await query(hs, far, servers, wait_for_others=True)
    assert len(hs.asked) == 2
    clock.t += PAUSES[0]
    assert not servers.ready("school.example")  # the second pause is longer
    clock.t += PAUSES[1] - PAUSES[0]
    hs.down.clear()
    await query(hs, far, servers, wait_for_others=True)
    assert servers.ready("school.example")  # it answered: no pause any more


async def test_claims_leave_paused_servers_out_and_ask_the_rest_side_by_side() -> None:
    clock = Clock()
    hs = Homeserver(down={"school.example"})
    servers = KeyServers(OWN, clock=clock)
    wanted = {"@a:helpline.test": ["DEV1"], "@c:school.example": ["DEV2"]}
    await claim(hs, wanted, servers)
    assert sorted(users for _, users, _ in hs.asked) == [
        ["@a:helpline.test"],
        ["@c:school.example"],
    ]
    await claim(hs, wanted, servers)
    assert [users for _, users, _ in hs.asked][2:] == [["@a:helpline.test"]]


async def test_refresh_waits_only_for_the_people_it_names() -> None:
    hs = Homeserver(down={"school.example"}, delay=5.0)
    hs.key_servers = KeyServers(OWN)  # type: ignore[attr-defined]
    hs.users_for_key_query = {"@a:helpline.test", "@b:helpline.test", "@c:school.example"}
    loop = asyncio.get_running_loop()
    began = loop.time()
    await refresh(hs, ["@a:helpline.test", "@z:helpline.test"])  # @z is not marked
    assert loop.time() - began < 1.0
    # The own server's pending users in one request (@b's rooms need no second one); the
    # other server's user is nobody this send needs, so nobody waits for it.
    assert hs.asked == [("query", ["@a:helpline.test", "@b:helpline.test"], None)]
