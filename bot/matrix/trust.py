"""Which devices get the room keys: a named policy, never a blanket ignore.

`encryption.trust` in the config chooses the policy:
- `cross_signed` (the default): Element's rule (MSC4153). A device gets keys only if its
  owner has cross-signed it: signed by its own key and by the user's self-signing key,
  which is signed by the user's master key, as `/keys/query` shows them, and with the
  same ed25519 key as nio holds. Every other device is blacklisted, so nio gives it no
  key and `room_send` does not refuse to send. A staff member's (and the bot's own)
  master key is pinned on first use: a volunteer's or supervisor's new master key is
  reported to the supervisors and trusted by nobody until an admin resets the pin. A
  chatter is never pinned: their new key would be accepted anyway (there is nobody to
  ask), so a pin would protect nothing and only keep a trace of them after the purge.
- `all_devices`: every device of every room member is trusted (verified in nio's store)
  before a send. For old clients and tests; it is what "ignore unverified devices" does,
  but chosen by name in the config, not hidden in a send call.

Cost: a user's `/keys/query` answer is kept until the sync reports a change to their
devices or cross-signing keys (`device_lists.changed`), or for `ttl` seconds at most, so
a send usually makes no request at all; a miss makes one request for all missing users.
Answers past their `ttl` are dropped (checked at most once a `ttl`), so that a chatter's
identity does not stay in memory after their conversation.

Before deciding, both policies make sure nio tracks every member of the room: the purge
makes nio forget a chatter (`bot.matrix.forget`), and one who comes back must have their
devices asked for again before the bot's first send to them.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from nio import AsyncClient

from bot.matrix.keyquery import refresh
from bot.matrix.keysapi import (
    CrossSigningError,
    Http,
    Identity,
    NioHttp,
    identity_from_query,
    query_keys,
)

log = logging.getLogger(__name__)


class TrustPolicy(Protocol):
    name: str

    async def prepare(self, client: AsyncClient, room_id: str) -> None:
        """Decide every member device's trust before a send into `room_id`."""

    def forget(self, users: Iterable[str]) -> None:
        """These users' devices or keys changed: look again before the next send."""

    async def vouches(self, client: AsyncClient, user: str, sender_key: str) -> bool:
        """Whether the bot acts on what `user` wrote from the device with this Curve25519
        key (a message the policy would not share keys with is not acted on either)."""


class AllDevices:
    name = "all_devices"

    async def prepare(self, client: AsyncClient, room_id: str) -> None:
        room = client.rooms.get(room_id)
        if room is None or client.olm is None:
            return
        client.olm.update_tracked_users(room)
        await refresh(client, room.users)
        for user in room.users:
            for device in client.device_store.active_user_devices(user):
                if not device.verified and not device.blacklisted:
                    client.verify_device(device)

    def forget(self, users: Iterable[str]) -> None:
        return None

    async def vouches(self, client: AsyncClient, user: str, sender_key: str) -> bool:
        return True


def _device_with_key(client: AsyncClient, user: str, sender_key: str) -> Any:
    for device in client.device_store.active_user_devices(user):
        if device.curve25519 == sender_key:
            return device
    return None


# --------------------------------------------------------------------------------------
# pins


@dataclass(frozen=True, slots=True)
class PinRecord:
    master_key: str
    changed_to: str | None = None


class PinStore(Protocol):
    """Where pins live: `bot.storage.pins.Pins` in the bot, a dict in test clients."""

    async def get(self, subject: str) -> Any: ...  # has .master_key, .changed_to; or None

    async def pin(self, subject: str, staff: bool, master_key: str, now: datetime) -> None: ...

    async def note_change(self, subject: str, new_key: str, now: datetime) -> bool: ...


class MemoryPins:
    """Pins for a process that keeps none (the test clients)."""

    def __init__(self) -> None:
        self.pins: dict[str, PinRecord] = {}

    async def get(self, subject: str) -> PinRecord | None:
        return self.pins.get(subject)

    async def pin(self, subject: str, staff: bool, master_key: str, now: datetime) -> None:
        self.pins[subject] = PinRecord(master_key)

    async def note_change(self, subject: str, new_key: str, now: datetime) -> bool:
        old = self.pins[subject]
        if old.changed_to == new_key:
            return False
        self.pins[subject] = PinRecord(old.master_key, new_key)
        return True


# --------------------------------------------------------------------------------------
# the Element rule


@dataclass
class TrustStats:
    """For measurements and tests: how often the policy had to ask the server."""

    prepares: int = 0
    queries: int = 0  # /keys/query requests
    users_queried: int = 0
    cache_hits: int = 0
    verified: int = 0  # state changes made in nio's store
    blacklisted: int = 0
    seconds: float = 0.0  # total time spent in prepare
    vouch_checks: int = 0  # messages from staff checked for their sending device
    last: dict[str, Any] = field(default_factory=dict)


class CrossSigned:
    name = "cross_signed"

    def __init__(
        self,
        *,
        pins: PinStore,
        pin_key: bytes,
        is_staff: Callable[[str], bool],
        on_identity_change: Callable[[str], None] = lambda user: None,
        chatter_fallback: bool = True,
        on_unverified_chatter: Callable[[str, str], None] = lambda user, room: None,
        ttl: float = 600.0,
        http: Callable[[AsyncClient], Http] = NioHttp,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pins = pins
        self.pin_key = pin_key
        self.is_staff = is_staff
        self.on_identity_change = on_identity_change
        self.chatter_fallback = chatter_fallback
        self.on_unverified_chatter = on_unverified_chatter
        self._told: OrderedDict[tuple[str, str], None] = OrderedDict()  # (user, room), bounded
        self.ttl = ttl
        self._http = http
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._evicted_at = clock()
        self.stats = TrustStats()

    def forget(self, users: Iterable[str]) -> None:
        for user in users:
            self._cache.pop(user, None)

    async def prepare(self, client: AsyncClient, room_id: str) -> None:
        room = client.rooms.get(room_id)
        if room is None or client.olm is None:
            return
        started = self._clock()
        self.stats.prepares += 1
        client.olm.update_tracked_users(room)  # a member nio forgot (see the module)
        await refresh(client, room.users)  # nio's device store must know the devices too
        users = sorted(room.users)
        identities = await self.identities(client, users)
        for user in users:
            vouched = await self.trusted_devices(user, identities[user])
            if not vouched and self._falls_back(client, user):
                vouched = self._unsigned(client, user, room_id)
            self.apply(client, user, vouched)
        self.stats.seconds += self._clock() - started

    def _falls_back(self, client: AsyncClient, user: str) -> bool:
        return self.chatter_fallback and user != client.user_id and not self.is_staff(user)

    def _unsigned(self, client: AsyncClient, user: str, room_id: str) -> dict[str, str]:
        """A chatter with no cross-signed device (an old client, a bridge): their own
        devices, so that they can read the replies; the conversation's volunteer is told
        once (`encryption.chatter_devices: fallback_to_unsigned`)."""
        devices = {d.id: d.ed25519 for d in client.device_store.active_user_devices(user)}
        key = (user, room_id)
        if devices and key not in self._told:
            self._told[key] = None
            while len(self._told) > 4096:
                self._told.popitem(last=False)
            self.on_unverified_chatter(user, room_id)
        return devices

    async def identities(self, client: AsyncClient, users: list[str]) -> dict[str, Identity]:
        now = self._clock()
        if now - self._evicted_at >= self.ttl:
            self._evicted_at = now
            for user, (at, _) in list(self._cache.items()):
                if now - at >= self.ttl:
                    del self._cache[user]
        out: dict[str, Identity] = {}
        missing: list[str] = []
        for user in users:
            hit = self._cache.get(user)
            if hit is not None and now - hit[0] < self.ttl:
                out[user] = hit[1]
                self.stats.cache_hits += 1
            else:
                missing.append(user)
        if missing:
            self.stats.queries += 1
            self.stats.users_queried += len(missing)
            try:
                query = await query_keys(self._http(client), missing)
            except CrossSigningError:
                # Fail closed: nobody unconfirmed gets a key; the send goes to the rest.
                log.warning("keys query failed: devices not confirmed are left out")
                query = {}
            for user in missing:
                ident = identity_from_query(query, user)
                out[user] = ident
                if query:
                    self._cache[user] = (now, ident)
        return out

    async def vouches(self, client: AsyncClient, user: str, sender_key: str) -> bool:
        """Staff: only from a device their pinned identity signed, as Element reads only
        those (a stolen access token and a new device must not speak to a chatter through
        the bot). Chatters: whatever they write is taken; refusing someone in crisis for
        their app's setup is a decision this rule does not make."""
        if not self.is_staff(user):
            return True
        self.stats.vouch_checks += 1
        device = _device_with_key(client, user, sender_key)
        if device is None:
            await refresh(client, [user])  # a device nio has not heard of yet
            device = _device_with_key(client, user, sender_key)
        if device is None:
            return False
        identity = (await self.identities(client, [user]))[user]
        vouched = await self.trusted_devices(user, identity)
        return bool(vouched.get(device.id) == device.ed25519)

    async def trusted_devices(self, user: str, ident: Identity) -> Mapping[str, str]:
        """The devices `user`'s pinned identity vouches for (none if it is not the pin)."""
        if ident.master is None:
            return {}
        if not self.is_staff(user):
            # No pin: a chatter's new identity (a new account setup, a reset) is taken
            # as it comes, so a pin would protect nothing and would outlive the purge.
            return ident.devices
        subject, shown = user, ident.master  # staff come from the config: kept by ID
        pin = await self.pins.get(subject)
        if pin is None:
            await self.pins.pin(subject, True, shown, self._now())
            return ident.devices
        if hmac.compare_digest(pin.master_key, shown):
            return ident.devices
        if await self.pins.note_change(subject, shown, self._now()):
            log.warning("a staff member's cross-signing identity changed: not trusted")
            self.on_identity_change(user)
        return {}

    def apply(self, client: AsyncClient, user: str, vouched: Mapping[str, str]) -> None:
        """Verify exactly the vouched devices in nio's store and blacklist the rest, so
        that nio shares keys with the first and `room_send` never stops at the others."""
        for device in client.device_store.active_user_devices(user):
            if user == client.user_id and device.id == client.device_id:
                continue
            if vouched.get(device.id) == device.ed25519:
                if not device.verified:
                    client.verify_device(device)  # also lifts an earlier blacklisting
                    self.stats.verified += 1
            elif not device.blacklisted:
                client.blacklist_device(device)
                self.stats.blacklisted += 1


class TrustNotAvailable(Exception):
    pass


def policy(name: str) -> str:
    """Check a policy name from the config (the config layer has already done so)."""
    if name not in ("all_devices", "cross_signed"):
        raise TrustNotAvailable(f"encryption.trust: unknown policy {name!r}")
    return name


def build(
    name: str,
    *,
    pins: PinStore,
    pin_key: bytes,
    is_staff: Callable[[str], bool],
    on_identity_change: Callable[[str], None],
    chatter_fallback: bool = True,
    on_unverified_chatter: Callable[[str, str], None] = lambda user, room: None,
) -> TrustPolicy:
    if policy(name) == "all_devices":
        return AllDevices()
    return CrossSigned(
        pins=pins,
        pin_key=pin_key,
        is_staff=is_staff,
        on_identity_change=on_identity_change,
        chatter_fallback=chatter_fallback,
        on_unverified_chatter=on_unverified_chatter,
    )
