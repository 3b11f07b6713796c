"""What a test client's person has seen, and waiting for it.

`Seen` is the part of :class:`bot.devtools.client.TestClient` that records what arrives
(decrypted room messages, events still without a key, invites), as nio's callbacks hand
it over, and lets a test wait for it with a timeout. Every recording notifies the waiters;
so does the client after each handled sync. A wait re-raises the sync loop's failure if
it died meanwhile (`check`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nio import (
    AsyncClient,
    EncryptionError,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    MatrixRoom,
    MegolmEvent,
    RoomKeyEvent,
    RoomMessage,
)

T = TypeVar("T")


class TestClientError(RuntimeError):
    """A test client request failed, or its background sync loop died."""

    __test__ = False  # not a pytest test class despite the name


@dataclass
class ReceivedMessage:
    """A room message as this client received it (decrypted if it was encrypted)."""

    room_id: str
    sender: str
    event_id: str
    event_type: str  # the (decrypted) event type, e.g. "m.room.message"
    msgtype: str | None  # "m.text", "m.notice", ...
    body: str | None
    content: dict[str, Any]  # the decrypted content
    server_ts: int  # origin_server_ts, ms since the epoch
    received_at: float  # time.monotonic() when the sync delivering it was handled
    decrypted: bool  # True if it arrived as m.room.encrypted and was decrypted here
    verified: bool  # nio's opinion: sent by a device this client has verified
    event: Any = field(repr=False)  # the nio event


@dataclass
class UndecryptableEvent:
    """An ``m.room.encrypted`` event this client has (so far) no key for."""

    room_id: str
    sender: str
    event_id: str
    session_id: str | None
    sender_key: str | None
    server_ts: int
    received_at: float
    event: MegolmEvent = field(repr=False)


@dataclass
class Invite:
    room_id: str
    sender: str
    received_at: float


class Seen:
    """Received data, oldest first, and the waits on it. The client provides `client`
    (its nio client), `user_id`, `auto_join` and `join`, `_spawn` (a task it keeps) and
    `_sync_failure` (its sync loop's error, if the loop died)."""

    client: AsyncClient
    auto_join: bool
    _sync_failure: BaseException | None
    join: Callable[[str], Awaitable[Any]]

    def _spawn(self, coro: Any, name: str) -> None: ...

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.undecryptable: list[UndecryptableEvent] = []
        self.invites: list[Invite] = []
        self._pending_messages: list[ReceivedMessage] = []
        self._pending_invites: list[Invite] = []
        self._seen_invite_rooms: set[str] = set()
        # Notified after every handled sync and whenever something is recorded.
        self._changed = asyncio.Condition()

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    def check(self) -> None:
        """Raise if the background sync loop died."""
        if self._sync_failure is not None:
            raise TestClientError(
                f"sync loop of {self.user_id} failed: {self._sync_failure!r}"
            ) from self._sync_failure

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------ callbacks

    async def _on_room_message(self, room: MatrixRoom, event: RoomMessage) -> None:
        self._add_message(room.room_id, event)
        await self._notify()

    def _add_message(self, room_id: str, event: Any) -> None:
        source = event.source if isinstance(event.source, dict) else {}
        content = source.get("content", {}) if isinstance(source.get("content"), dict) else {}
        msg = ReceivedMessage(
            room_id=room_id,
            sender=event.sender,
            event_id=event.event_id,
            event_type=source.get("type", "m.room.message"),
            msgtype=content.get("msgtype"),
            body=getattr(event, "body", None),
            content=content,
            server_ts=event.server_timestamp,
            received_at=time.monotonic(),
            decrypted=bool(getattr(event, "decrypted", False)),
            verified=bool(getattr(event, "verified", False)),
            event=event,
        )
        self.messages.append(msg)
        self._pending_messages.append(msg)

    async def _on_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        # nio hands us the MegolmEvent only when it could not decrypt it.
        self.undecryptable.append(
            UndecryptableEvent(
                room_id=room.room_id,
                sender=event.sender,
                event_id=event.event_id,
                session_id=event.session_id,
                sender_key=event.sender_key,
                server_ts=event.server_timestamp,
                received_at=time.monotonic(),
                event=event,
            )
        )
        await self._notify()

    async def _on_room_key(self, event: RoomKeyEvent | ForwardedRoomKeyEvent) -> None:
        """A room key arrived: retry the events that were waiting for it."""
        still_missing: list[UndecryptableEvent] = []
        for pending in self.undecryptable:
            if pending.session_id != event.session_id or pending.room_id != event.room_id:
                still_missing.append(pending)
                continue
            pending.event.room_id = pending.room_id
            try:
                decrypted = self.client.decrypt_event(pending.event)
            except EncryptionError:
                still_missing.append(pending)
                continue
            if isinstance(decrypted, RoomMessage):
                self._add_message(pending.room_id, decrypted)
        self.undecryptable = still_missing
        await self._notify()

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.user_id or event.membership != "invite":
            return
        if room.room_id in self._seen_invite_rooms:
            return
        self._seen_invite_rooms.add(room.room_id)
        invite = Invite(room.room_id, event.sender, time.monotonic())
        self.invites.append(invite)
        self._pending_invites.append(invite)
        if self.auto_join:
            self._spawn(self.join(room.room_id), name=f"autojoin-{room.room_id}")
        await self._notify()

    # --------------------------------------------------------------- waiting

    async def wait_until(
        self, predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "a condition"
    ) -> T:
        """Wait until ``predicate()`` is truthy (checked after every sync and callback);
        return its value. Raises ``TimeoutError`` naming ``what``, or the sync loop's
        failure if it died meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                self.check()
                result = predicate()
                if result:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"{self.user_id}: no {what} within {timeout}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_message(
        self,
        room_id: str | None = None,
        sender: str | None = None,
        predicate: Callable[[ReceivedMessage], bool] | None = None,
        timeout: float = 10.0,
        *,
        body: str | None = None,
        include_own: bool = False,
    ) -> ReceivedMessage:
        """Take the oldest not yet taken message matching all the given filters.

        Own echoes are skipped unless ``include_own``. The message stays in
        ``messages``; it is only removed from the queue this method consumes.
        """

        def match(m: ReceivedMessage) -> bool:
            return (
                (include_own or m.sender != self.user_id)
                and (room_id is None or m.room_id == room_id)
                and (sender is None or m.sender == sender)
                and (body is None or m.body == body)
                and (predicate is None or predicate(m))
            )

        def take() -> ReceivedMessage | None:
            for i, m in enumerate(self._pending_messages):
                if match(m):
                    return self._pending_messages.pop(i)
            return None

        what = f"message (room={room_id}, sender={sender}, body={body!r})"
        return await self.wait_until(take, timeout, what)

    async def wait_for_undecryptable(
        self, room_id: str | None = None, timeout: float = 10.0
    ) -> UndecryptableEvent:
        """Wait until an event in ``room_id`` (any room if None) is still undecryptable."""

        def find() -> UndecryptableEvent | None:
            return next(
                (u for u in self.undecryptable if room_id is None or u.room_id == room_id),
                None,
            )

        return await self.wait_until(find, timeout, f"undecryptable event in {room_id}")

    async def wait_for_invite(self, timeout: float = 10.0, room_id: str | None = None) -> Invite:
        """Take the oldest not yet taken invite (to ``room_id`` if given)."""

        def take() -> Invite | None:
            for i, inv in enumerate(self._pending_invites):
                if room_id is None or inv.room_id == room_id:
                    return self._pending_invites.pop(i)
            return None

        return await self.wait_until(take, timeout, f"invite (room={room_id})")

    async def wait_for_room(
        self, room_id: str, *, encrypted: bool = False, timeout: float = 10.0
    ) -> MatrixRoom:
        """Wait until this client has synced the joined room (and, if ``encrypted``, its
        ``m.room.encryption`` state)."""

        def ready() -> MatrixRoom | None:
            room = self.client.rooms.get(room_id)
            if room is None or (encrypted and not room.encrypted):
                return None
            return room

        what = f"{'encrypted ' if encrypted else ''}joined room {room_id}"
        return await self.wait_until(ready, timeout, what)

    async def wait_for_join(self, room_id: str, user_id: str, timeout: float = 10.0) -> None:
        """Wait until this client sees ``user_id`` joined (not just invited) in the room."""

        def joined() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and user_id in room.users and user_id not in room.invited_users

        await self.wait_until(joined, timeout, f"join of {user_id} in {room_id}")
