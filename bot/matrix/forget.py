"""Forget a chatter in the bot's crypto state once their conversation is purged.

nio keeps, for every user it ever shared keys with, their devices (user ID, device ID,
display name, keys), Olm sessions with those devices (by Curve25519 key), who it tracks,
and for every room its Megolm sessions. None of it ever expires. `forget_chatter` removes,
for one chatter and the rooms of their conversation:

  in memory   the chatter's devices (`device_store`), tracked and to-be-queried marks,
              key requests to or from them, to-device
              messages and "wedged" marks for them; the rooms' inbound and outbound
              Megolm sessions, nio's room objects and encrypted-room marks; and every
              other outbound Megolm session shared with the chatter (it is rotated on
              the next send, as when a member leaves);
  on disk     the same rows of nio's SQLite store (`devicekeys`, `keys`,
              `devicetruststate` if present, `megolminboundsessions` with
              their `forwardedchains`, `encryptedrooms`, `outgoingkeyrequests`,
              `trackedusers` if present), then VACUUM, so that no freed page or unused
              cell keeps the bytes (the store also runs with `secure_delete`, in
              rollback-journal mode: nothing lingers in a WAL).

Kept: the Olm sessions with the chatter's devices, which name a device only by its
Curve25519 key. A chatter's app goes on using its Olm session with the bot for every
room key it shares later; had the bot forgotten its side, a returning chatter's first
words (and every message after, until their app starts a new session) could never be
read (the kill -9 soak found it: 5 of 9 returning chatters unreadable). Someone with both
this store and the homeserver could match such a key to an account; nothing in the store
names it.

The direct-message room in which the chatter first wrote is one of `rooms` when the purge
takes it. If the chatter shows up again (a new conversation), nio learns their devices
anew: the trust policy queries a room's untracked members before each send.

Idempotent; logs only counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nio import AsyncClient
from nio.store.models import (
    DeviceKeys,
    DeviceTrustState,
    EncryptedRooms,
    ForwardedChains,
    Keys,
    MegolmInboundSessions,
    OlmSessions,
    OutgoingKeyRequests,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `forget_chatter` removed (counts only) and what the VACUUM cost."""

    devices: int = 0
    megolm_sessions: int = 0
    rows: int = 0
    vacuum_ms: float = 0.0
    total_ms: float = 0.0


def forget_chatter(client: AsyncClient, chatter: str, rooms: Iterable[str]) -> Forgotten:
    """Remove every trace of `chatter` and of `rooms` from nio's memory and store (see
    the module). Never forgets the bot itself."""
    began = time.perf_counter()
    room_set = set(rooms)
    if chatter == client.user_id:
        chatter = ""
    olm = client.olm
    devices: dict[str, Any] = {}
    megolm = 0
    if olm is not None:
        devices = _forget_devices(olm, chatter)
        # The Olm sessions with the chatter's devices stay (see the module): forgetting
        # them strands a chatter who comes back.
        curve_keys: set[str] = set()
        megolm = _forget_megolm(olm, room_set, chatter)
        _forget_requests(olm, chatter, room_set)
    else:
        curve_keys = set()
    for room in room_set:
        client.rooms.pop(room, None)
        client.invited_rooms.pop(room, None)
        client.encrypted_rooms.discard(room)
    rows, vacuum_ms = _forget_rows(client, chatter, room_set, curve_keys)
    result = Forgotten(
        devices=len(devices),
        megolm_sessions=megolm,
        rows=rows,
        vacuum_ms=round(vacuum_ms, 2),
        total_ms=round((time.perf_counter() - began) * 1000, 2),
    )
    log.info(
        "crypto store forgot the conversation",
        extra={
            "devices": result.devices,
            "megolm_sessions": result.megolm_sessions,
            "rows": result.rows,
            "vacuum_ms": result.vacuum_ms,
            "ms": result.total_ms,
        },
    )
    return result


# -- memory ------------------------------------------------------------------------------


def _forget_devices(olm: Any, chatter: str) -> dict[str, Any]:
    entries = getattr(olm.device_store, "_entries", {})
    devices: dict[str, Any] = dict(entries.pop(chatter, None) or {}) if chatter else {}
    olm.tracked_users.discard(chatter)
    olm.users_for_key_query.discard(chatter)
    return devices


def _forget_megolm(olm: Any, rooms: set[str], chatter: str) -> int:
    inbound = getattr(olm.inbound_group_store, "_entries", {})
    dropped = 0
    for room in rooms:
        by_sender = inbound.pop(room, None) or {}
        dropped += sum(len(sessions) for sessions in by_sender.values())
    for room, session in list(olm.outbound_group_sessions.items()):
        shared: set[tuple[str, str]] = getattr(session, "users_shared_with", set())
        if room in rooms or any(user == chatter for user, _ in shared):
            del olm.outbound_group_sessions[room]
    return dropped


def _forget_requests(olm: Any, chatter: str, rooms: set[str]) -> None:
    """Key requests, to-device messages and repair marks that name the chatter or the
    rooms: short-lived in nio, but never cleared if nothing completes them."""

    def of_chatter(item: Any) -> bool:
        return bool(chatter) and (
            getattr(item, "user_id", None) == chatter
            or getattr(item, "sender", None) == chatter
            or getattr(item, "recipient", None) == chatter
        )

    requests = getattr(olm, "outgoing_key_requests", {})
    for key, request in list(requests.items()):
        if getattr(request, "room_id", None) in rooms:
            del requests[key]
    for name in ("received_key_requests", "key_request_from_untrusted"):
        table = getattr(olm, name, {})
        for key, request in list(table.items()):
            if of_chatter(request) or getattr(request, "room_id", None) in rooms:
                del table[key]
    waiting = getattr(olm, "key_requests_waiting_for_session", {})
    for key in [k for k in waiting if isinstance(k, tuple) and k and k[0] == chatter]:
        del waiting[key]
    for name in ("key_request_devices_no_session", "wedged_devices", "outgoing_to_device_messages"):
        items = getattr(olm, name, None)
        if isinstance(items, list):
            items[:] = [i for i in items if not of_chatter(i)]


# -- the SQLite store ----------------------------------------------------------------------


def _forget_rows(
    client: AsyncClient, chatter: str, rooms: set[str], curve_keys: set[str]
) -> tuple[int, float]:
    store = getattr(client, "store", None)
    database = getattr(store, "database", None)
    if database is None:
        return 0, 0.0
    tables = set(database.get_tables())
    models = [
        DeviceKeys,
        Keys,
        OlmSessions,
        MegolmInboundSessions,
        ForwardedChains,
        EncryptedRooms,
        OutgoingKeyRequests,
    ]
    trust_table = DeviceTrustState._meta.table_name in tables
    if trust_table:
        models.append(DeviceTrustState)
    room_list, keys = sorted(rooms), sorted(curve_keys)
    rows = 0
    with database.bind_ctx(models), database.atomic():
        if chatter:
            devices = DeviceKeys.select(DeviceKeys.id).where(DeviceKeys.user_id == chatter)
            rows += Keys.delete().where(Keys.device.in_(devices)).execute()
            if trust_table:
                rows += (
                    DeviceTrustState.delete().where(DeviceTrustState.device.in_(devices)).execute()
                )
            rows += DeviceKeys.delete().where(DeviceKeys.user_id == chatter).execute()
            if "trackedusers" in tables:
                rows += database.execute_sql(
                    "DELETE FROM trackedusers WHERE user_id = ?", (chatter,)
                ).rowcount
        if keys:
            rows += OlmSessions.delete().where(OlmSessions.sender_key.in_(keys)).execute()
        if room_list:
            sessions = MegolmInboundSessions.select(MegolmInboundSessions.session_id).where(
                MegolmInboundSessions.room_id.in_(room_list)
            )
            rows += ForwardedChains.delete().where(ForwardedChains.session.in_(sessions)).execute()
            rows += (
                MegolmInboundSessions.delete()
                .where(MegolmInboundSessions.room_id.in_(room_list))
                .execute()
            )
            rows += EncryptedRooms.delete().where(EncryptedRooms.room_id.in_(room_list)).execute()
            rows += (
                OutgoingKeyRequests.delete()
                .where(OutgoingKeyRequests.room_id.in_(room_list))
                .execute()
            )
    began = time.perf_counter()
    if rows:
        # secure_delete has zeroed the cells, but a b-tree page split or merge may have
        # copied them before: VACUUM rewrites the file from the live rows only.
        database.execute_sql("VACUUM")
        # nio's store runs in rollback-journal mode; were it ever WAL, empty the log too.
        (mode,) = database.execute_sql("PRAGMA journal_mode").fetchone()
        if str(mode).lower() == "wal":
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return rows, (time.perf_counter() - began) * 1000
