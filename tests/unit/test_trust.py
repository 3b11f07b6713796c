"""bot.matrix.trust.CrossSigned against a fake nio client and a fake /keys/query: which
devices get keys, how master keys are pinned (staff by ID, chatters only as HMACs), what
a changed identity does, and how often the server is asked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.matrix.keyfile import CrossSigningKeys
from bot.matrix.signing import sign_json
from bot.matrix.trust import AllDevices, CrossSigned, MemoryPins, TrustNotAvailable, build
from bot.storage.db import open_database
from bot.storage.pins import Pins
from tests.unit.test_crosssigning import Person

ROOM = "!room:example.org"
BOT = "@bot:example.org"
VOLUNTEER = "@irene:example.org"
CHATTER = "@chatter:example.org"


@dataclass
class Device:
    user_id: str
    id: str
    ed25519: str
    verified: bool = False
    blacklisted: bool = False


@dataclass
class FakeClient:
    """The parts of nio's AsyncClient the policy uses."""

    user_id: str = BOT
    device_id: str = "BOTDEV"
    devices: dict[str, list[Device]] = field(default_factory=dict)
    rooms: dict[str, Any] = field(default_factory=dict)
    olm: Any = field(default_factory=lambda: SimpleNamespace(update_tracked_users=lambda r: None))
    should_query_keys: bool = False

    def __post_init__(self) -> None:
        self.device_store = SimpleNamespace(
            active_user_devices=lambda user: list(self.devices.get(user, []))
        )

    def verify_device(self, d: Device) -> bool:
        changed = not d.verified
        d.verified, d.blacklisted = True, False
        return changed

    def blacklist_device(self, d: Device) -> bool:
        changed = not d.blacklisted
        d.verified, d.blacklisted = False, True
        return changed


class FakeServer:
    def __init__(self, *people: Person) -> None:
        self.people = {p.user_id: p for p in people}
        self.queries: list[list[str]] = []
        self.down = False

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert path.endswith("/keys/query")
        users = list(body["device_keys"])
        self.queries.append(users)
        if self.down:
            return 502, "Bad Gateway"
        out: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        for user in users:
            p = self.people.get(user)
            if p is None:
                continue
            q = p.query()
            for k in out:
                out[k].update(q.get(k, {}))
        return 200, out


def world(*people: Person) -> tuple[FakeClient, FakeServer]:
    client = FakeClient()
    server = FakeServer(*people)
    client.rooms[ROOM] = SimpleNamespace(users={p.user_id: None for p in people})
    for p in people:
        client.devices[p.user_id] = [
            Device(p.user_id, d, key.public) for d, key in p.device_keys.items()
        ]
    return client, server


def policy(server: FakeServer, **kw: Any) -> CrossSigned:
    kw.setdefault("pins", MemoryPins())
    kw.setdefault("pin_key", b"k")
    kw.setdefault("is_staff", lambda user: user == VOLUNTEER)
    return CrossSigned(http=lambda client: server, **kw)


def states(client: FakeClient, user: str) -> dict[str, str]:
    return {
        d.id: "verified" if d.verified else "blacklisted" if d.blacklisted else "unset"
        for d in client.devices[user]
    }


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_only_cross_signed_devices_are_verified_the_rest_blacklisted() -> None:
    irene, chatter = Person(VOLUNTEER), Person(CHATTER)
    irene.add_device("PHONE")
    irene.add_device("OLDLAPTOP", cross_sign=False)
    chatter.add_device("WEB")
    client, server = world(irene, chatter)
    run(policy(server).prepare(client, ROOM))
    assert states(client, VOLUNTEER) == {"PHONE": "verified", "OLDLAPTOP": "blacklisted"}
    assert states(client, CHATTER) == {"WEB": "verified"}


def _without_cross_signing(user: str) -> tuple[Any, FakeServer]:
    old = Person(user)
    old.add_device("PHONE")
    client, server = world(old)

    async def no_master(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, out = await FakeServer.request(server, method, path, body)
        out["master_keys"] = {}
        return status, out

    server.request = no_master  # type: ignore[method-assign]
    return client, server


def test_a_user_without_cross_signing_gets_nothing_under_the_strict_rule() -> None:
    client, server = _without_cross_signing("@old:example.org")
    run(policy(server, chatter_fallback=False).prepare(client, ROOM))
    assert states(client, "@old:example.org") == {"PHONE": "blacklisted"}


def test_a_chatter_without_cross_signing_gets_keys_on_their_own_devices_and_it_is_told() -> None:
    client, server = _without_cross_signing("@old:example.org")
    told: list[tuple[str, str]] = []
    trust = policy(server, on_unverified_chatter=lambda user, room: told.append((user, room)))
    run(trust.prepare(client, ROOM))
    assert states(client, "@old:example.org") == {"PHONE": "verified"}
    run(trust.prepare(client, ROOM))
    assert told == [("@old:example.org", ROOM)]  # once per room


def test_staff_without_cross_signing_never_fall_back() -> None:
    client, server = _without_cross_signing(VOLUNTEER)
    run(policy(server).prepare(client, ROOM))
    assert states(client, VOLUNTEER) == {"PHONE": "blacklisted"}


def test_a_device_whose_key_differs_from_nios_is_blacklisted() -> None:
    irene = Person(VOLUNTEER)
    irene.add_device("PHONE")
    client, server = world(irene)
    client.devices[VOLUNTEER][0].ed25519 = "someone-elses-key"
    run(policy(server).prepare(client, ROOM))
    assert states(client, VOLUNTEER) == {"PHONE": "blacklisted"}


def test_a_device_signed_later_is_trusted_after_the_change_is_reported() -> None:
    chatter = Person(CHATTER)
    chatter.add_device("WEB", cross_sign=False)
    client, server = world(chatter)
    p = policy(server, chatter_fallback=False)
    run(p.prepare(client, ROOM))
    assert states(client, CHATTER) == {"WEB": "blacklisted"}
    # The chatter verifies the session in their app: the device gets the signature.
    ssk = chatter.keys.self_signing
    chatter.devices["WEB"] = sign_json(chatter.devices["WEB"], CHATTER, ssk.key_id, ssk)
    run(p.prepare(client, ROOM))
    assert states(client, CHATTER) == {"WEB": "blacklisted"}  # cached: not asked again
    p.forget([CHATTER])  # the sync's device_lists.changed
    run(p.prepare(client, ROOM))
    assert states(client, CHATTER) == {"WEB": "verified"}


def test_answers_are_cached_until_forgotten_or_stale() -> None:
    irene, chatter = Person(VOLUNTEER), Person(CHATTER)
    irene.add_device("PHONE")
    chatter.add_device("WEB")
    client, server = world(irene, chatter)
    now = [0.0]
    p = policy(server, ttl=600.0, clock=lambda: now[0])
    for _ in range(5):
        run(p.prepare(client, ROOM))
    assert server.queries == [[CHATTER, VOLUNTEER]]  # one request for both, then none
    assert p.stats.queries == 1
    assert p.stats.cache_hits == 8
    p.forget([CHATTER])
    run(p.prepare(client, ROOM))
    assert server.queries[-1] == [CHATTER]
    now[0] = 601.0
    run(p.prepare(client, ROOM))
    assert sorted(server.queries[-1]) == [CHATTER, VOLUNTEER]


def test_a_failed_query_fails_closed_and_is_not_cached() -> None:
    irene = Person(VOLUNTEER)
    irene.add_device("PHONE")
    client, server = world(irene)
    server.down = True
    p = policy(server)
    run(p.prepare(client, ROOM))
    assert states(client, VOLUNTEER) == {"PHONE": "blacklisted"}
    server.down = False
    run(p.prepare(client, ROOM))
    assert states(client, VOLUNTEER) == {"PHONE": "verified"}


def test_a_staff_members_new_identity_is_reported_once_and_not_trusted() -> None:
    irene = Person(VOLUNTEER)
    irene.add_device("PHONE")
    client, server = world(irene)
    reported: list[str] = []
    pins = MemoryPins()
    p = policy(server, pins=pins, on_identity_change=reported.append)
    run(p.prepare(client, ROOM))
    assert states(client, VOLUNTEER) == {"PHONE": "verified"}
    assert pins.pins[VOLUNTEER].master_key == irene.keys.master.public  # staff: by ID

    # A reset identity: new keys, a new device signed by them.
    irene.keys = CrossSigningKeys.generate()
    irene.devices.clear()
    irene.add_device("NEWPHONE")
    client.devices[VOLUNTEER].append(
        Device(VOLUNTEER, "NEWPHONE", irene.device_keys["NEWPHONE"].public)
    )
    for _ in range(3):
        p.forget([VOLUNTEER])
        run(p.prepare(client, ROOM))
    assert reported == [VOLUNTEER]
    assert states(client, VOLUNTEER) == {"PHONE": "blacklisted", "NEWPHONE": "blacklisted"}

    # An admin resets the pin (helpline-bot reset-identity): the new identity is pinned.
    del pins.pins[VOLUNTEER]
    p.forget([VOLUNTEER])
    run(p.prepare(client, ROOM))
    assert states(client, VOLUNTEER) == {"PHONE": "blacklisted", "NEWPHONE": "verified"}
    assert reported == [VOLUNTEER]


def test_a_chatter_is_never_pinned_and_a_new_identity_is_taken_as_it_comes() -> None:
    # A chatter's changed key is accepted anyway (there is nobody to ask), so a pin would
    # protect nothing and only keep a trace of them after their conversation's purge.
    chatter = Person(CHATTER)
    chatter.add_device("WEB")
    client, server = world(chatter)
    reported: list[str] = []
    pins = MemoryPins()
    p = policy(server, pins=pins, on_identity_change=reported.append)
    run(p.prepare(client, ROOM))
    assert states(client, CHATTER) == {"WEB": "verified"}
    assert pins.pins == {}

    chatter.keys = CrossSigningKeys.generate()
    chatter.devices.clear()
    chatter.add_device("WEB2")
    client.devices[CHATTER] = [Device(CHATTER, "WEB2", chatter.device_keys["WEB2"].public)]
    p.forget([CHATTER])
    run(p.prepare(client, ROOM))
    assert reported == []
    assert states(client, CHATTER) == {"WEB2": "verified"}
    assert pins.pins == {}


def test_an_identity_past_its_ttl_leaves_memory() -> None:
    chatter = Person(CHATTER)
    chatter.add_device("WEB")
    client, server = world(chatter)
    clock = [0.0]
    p = policy(server, ttl=10.0, clock=lambda: clock[0])
    run(p.prepare(client, ROOM))
    assert CHATTER in p._cache
    clock[0] = 11.0
    run(p.identities(client, []))
    assert CHATTER not in p._cache


def test_the_bots_own_device_is_left_alone() -> None:
    bot = Person(BOT)
    bot.add_device("BOTDEV", cross_sign=False)
    bot.add_device("OLDBOT")
    client, server = world(bot)
    run(policy(server).prepare(client, ROOM))
    assert states(client, BOT) == {"BOTDEV": "unset", "OLDBOT": "verified"}


def test_verified_devices_are_not_verified_again() -> None:
    # nio's file trust store reports "changed" for a key it already holds, which drops
    # the room's Megolm session: the policy must not touch a device whose state is right.
    irene = Person(VOLUNTEER)
    irene.add_device("PHONE")
    client, server = world(irene)
    p = policy(server)
    run(p.prepare(client, ROOM))
    run(p.prepare(client, ROOM))
    assert p.stats.verified == 1
    assert p.stats.blacklisted == 0


def test_build_names_the_policies() -> None:
    common: dict[str, Any] = {
        "pins": MemoryPins(),
        "pin_key": b"k",
        "is_staff": lambda u: False,
        "on_identity_change": lambda u: None,
    }
    assert isinstance(build("all_devices", **common), AllDevices)
    assert isinstance(build("cross_signed", **common), CrossSigned)
    with pytest.raises(TrustNotAvailable):
        build("trust_everyone", **common)


def test_pins_in_the_database(tmp_path: Path) -> None:
    async def go() -> None:
        db = await open_database(tmp_path / "helpline.db")
        try:
            pins = Pins(db)
            now = datetime(2026, 3, 2, tzinfo=UTC)
            assert await pins.get(VOLUNTEER) is None
            await pins.pin(VOLUNTEER, True, "KEY1", now)
            assert await pins.note_change(VOLUNTEER, "KEY2", now)
            assert not await pins.note_change(VOLUNTEER, "KEY2", now)  # told once
            pin = await pins.get(VOLUNTEER)
            assert pin is not None
            assert (pin.master_key, pin.changed_to) == ("KEY1", "KEY2")
            assert [p.subject for p in await pins.staff_pins()] == [VOLUNTEER]
            await pins.pin(VOLUNTEER, True, "KEY2", now)
            pin = await pins.get(VOLUNTEER)
            assert pin is not None
            assert (pin.master_key, pin.changed_to) == ("KEY2", None)
            assert await pins.reset(VOLUNTEER)
            assert not await pins.reset(VOLUNTEER)
            assert await pins.get(VOLUNTEER) is None
        finally:
            await db.close()

    run(go())


def test_prepare_has_nio_track_every_member_again() -> None:
    # The purge makes nio forget a chatter; one who comes back must be asked for again.
    chatter = Person(CHATTER)
    chatter.add_device("WEB")
    client, server = world(chatter)
    tracked: list[Any] = []
    client.olm = SimpleNamespace(update_tracked_users=tracked.append)
    run(policy(server).prepare(client, ROOM))
    run(AllDevices().prepare(client, ROOM))  # type: ignore[arg-type]
    assert tracked == [client.rooms[ROOM], client.rooms[ROOM]]
