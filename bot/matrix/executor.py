"""Carries out the core's effects over Matrix.

Each effect arrives with the transaction ID stored beside it in the outbox; every send uses
that ID, so a retry after a crash (or a 429, which nio resends on the same path) is
de-duplicated by the homeserver: delivered once. Effects address conversation rooms by
`RoomRef`; the room is looked up in the core when the effect runs.

What is sent is built here from plain text only: relayed words go out as `body` with no
`formatted_body`, so no participant's HTML is ever rendered by anyone.

Errors: `Transient` (transport, 5xx) means "try again later, keep the row"; anything else
is permanent for that effect, logged without content, and the row is dropped so that one
bad effect cannot block the outbox.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from nio import (
    AsyncClient,
    ErrorResponse,
    MatrixRoom,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
)
from nio.exceptions import OlmUnverifiedDeviceError

from bot.core.events import (
    CreateRoom,
    Input,
    Purge,
    PurgeFinished,
    RecordMedia,
    Redact,
    RedactRoom,
    Relay,
    RelayEdit,
    RelayRedaction,
    Retire,
    RoomCreated,
    RoomFailed,
    RoomRef,
    Say,
    SetPersona,
    SetTyping,
    Target,
    Withdraw,
)
from bot.core.ids import EventID, RoomID, SessionID, UserID
from bot.core.model import Role
from bot.matrix.trust import TrustPolicy
from bot.messages import Texts
from bot.storage.db import Tx
from bot.storage.repos import Attempts, MediaSeen, RelayMap

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"
REQUEST_MARK = "org.alltidhjelp.request"


# Writes an effect leaves for the transaction that marks it done (see `Executor.run`).
Later = list[Callable[[Tx], Awaitable[None]]]


class Transient(Exception):
    """Try this effect again later."""


class Permanent(Exception):
    """This effect cannot be carried out; drop it."""


class Executor:
    def __init__(
        self,
        client: AsyncClient,
        *,
        texts: Texts,
        resolve: Callable[[RoomRef], RoomID | None],
        relay_map: RelayMap,
        media: MediaSeen,
        trust: TrustPolicy,
        retention: timedelta,
        bot_user: str,
        purge: Callable[[Purge], Any] | None = None,
        attempts: Attempts | None = None,
        known_room: Callable[[RoomID], bool] = lambda room: False,
        redact_room: Callable[[RoomID], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.texts = texts
        self.resolve = resolve
        self.relay_map = relay_map
        self.media = media
        self.trust = trust
        self.retention = retention
        self.bot_user = bot_user
        self.purge = purge
        self.attempts = attempts
        self.known_room = known_room
        self.redact_room = redact_room

    async def run(self, effect: Any, txn_id: str, later: Later | None = None) -> list[Input]:
        """Carry out one effect; returns the inputs its result makes (a created room).

        `later`: where to put the bookkeeping writes the effect needs (a relayed copy's
        event ID), for the caller to run in the transaction that marks the effect done;
        without it they are written at once."""
        match effect:
            case CreateRoom():
                return await self._create_room(effect, txn_id)
            case Say():
                body = self.texts.render(effect.text, effect.language)
                msgtype = "m.text" if effect.voice else "m.notice"
                await self._send(
                    self._target(effect.to), {"msgtype": msgtype, "body": body}, txn_id
                )
            case SetPersona():
                room = self._target(effect.to)
                await self._check(
                    self.client.room_put_state(
                        room,
                        "m.room.member",
                        {"membership": "join", "displayname": effect.name},
                        state_key=self.bot_user,
                    )
                )
            case Relay():
                room = self._target(effect.to)
                content = {"msgtype": "m.emote" if effect.emote else "m.text", "body": effect.body}
                event_id = await self._send(room, content, txn_id)
                record = functools.partial(
                    self.relay_map.record,
                    effect.to.session_id,
                    effect.source,
                    room,
                    EventID(event_id),
                )
                if later is None:
                    await record()
                else:
                    later.append(lambda tx: record(tx=tx))
            case RelayEdit():
                room = self._target(effect.to)
                target = await self.relay_map.lookup(effect.to.session_id, effect.original, room)
                if target is None:
                    return []  # the original was never relayed (e.g. refused): nothing to edit
                content = {
                    "msgtype": "m.text",
                    "body": f"* {effect.body}",
                    "m.new_content": {"msgtype": "m.text", "body": effect.body},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": target},
                }
                await self._send(room, content, txn_id)
            case RelayRedaction():
                room = self._target(effect.to)
                target = await self.relay_map.lookup(effect.to.session_id, effect.original, room)
                if target is not None:
                    await self._check(self.client.room_redact(room, target, tx_id=txn_id))
            case SetTyping():
                room = self._target(effect.to)
                await self._check(
                    self.client.room_typing(room, effect.typing, timeout=30_000), quiet=True
                )
            case Redact():
                await self._check(
                    self.client.room_redact(effect.room, effect.event_id, tx_id=txn_id)
                )
            case RedactRoom():
                retired = self.resolve(effect.ref)
                if retired is not None and self.redact_room is not None:
                    await self.redact_room(retired)
            case Withdraw():
                room = self.resolve(effect.ref)
                if room is not None:
                    await self._check(self.client.room_kick(room, effect.volunteer), quiet=True)
                    self.kicked(room, effect.volunteer)
                    await self._check(self.client.room_leave(room), quiet=True)
                    await self._check(self.client.room_forget(room), quiet=True)
            case Retire():
                room = self.resolve(effect.ref)
                if room is not None:
                    await self._check(self.client.room_kick(room, effect.volunteer), quiet=True)
                    self.kicked(room, effect.volunteer)
            case RecordMedia():
                await self.media.record(effect.session_id, effect.mxc, effect.sender)
            case Purge():
                if self.purge is not None:
                    result = await self.purge(effect)
                else:
                    result = await self._leave_all(effect)
                return [PurgeFinished(effect.session_id, result)]
            case _:
                raise Permanent(f"unknown effect {type(effect).__name__}")
        return []

    # ----------------------------------------------------------------------------------

    def _target(self, to: Target) -> RoomID:
        if isinstance(to, RoomRef):
            room = self.resolve(to)
            if room is None:
                raise Permanent(f"no room for session {to.session_id} ({to.role.value})")
            return room
        return to

    async def _check(self, coro: Any, quiet: bool = False) -> Any:
        try:
            resp = await coro
        except (TimeoutError, OSError) as exc:
            raise Transient(type(exc).__name__) from exc
        if isinstance(resp, ErrorResponse):
            code = resp.status_code or ""
            if not code.startswith("M_") or code == "M_LIMIT_EXCEEDED":
                raise Transient(code or "transport")
            if quiet:
                log.info("matrix request refused", extra={"code": code})
                return resp
            raise Permanent(code)
        return resp

    async def _send(self, room: RoomID, content: dict[str, Any], txn_id: str) -> str:
        await self._wait_for_room(room)
        await self.trust.prepare(self.client, room)
        try:
            resp = await self._check(
                self.client.room_send(
                    room, "m.room.message", content, tx_id=txn_id, ignore_unverified_devices=False
                )
            )
        except OlmUnverifiedDeviceError as exc:
            # A device nio learnt of after the trust check (a key query finished while
            # the send waited): nothing was sent; decide again on the retry.
            raise Transient("a device appeared during the send") from exc
        assert isinstance(resp, RoomSendResponse)
        return str(resp.event_id)

    async def _wait_for_room(self, room: RoomID, timeout: float = 30.0) -> None:
        """nio encrypts only for rooms it has a room object for, with members and the
        encryption flag. It has none for a room whose events its sync has not shown yet
        (it keeps no rooms across restarts, and the bot's own events are filtered out of
        the sync); for a room known to be encrypted (one the bot made, or one nio saw
        before a restart) the bot makes the object and asks for the members. Any other
        room waits for the sync to show it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            nio_room = self.client.rooms.get(room)
            if nio_room is None and room in self.client.encrypted_rooms:
                nio_room = MatrixRoom(room, self.client.user_id, encrypted=True)
                self.client.rooms[room] = nio_room
            if nio_room is not None and nio_room.encrypted:
                if not nio_room.members_synced:
                    await self._check(self.client.joined_members(room))
                return
            if loop.time() > deadline:
                raise Transient("room not yet synced")
            await asyncio.sleep(0.05)

    async def _find_created(self, txn_id: str) -> RoomID | None:
        """After a crash: the room an earlier attempt of this effect may have made."""
        resp = await self._check(self.client.joined_rooms(), quiet=True)
        for room in getattr(resp, "rooms", []):
            if self.known_room(RoomID(room)):
                continue
            state = await self.client.room_get_state_event(room, REQUEST_MARK, "")
            if getattr(state, "content", {}).get("txn") == txn_id:
                return RoomID(room)
        return None

    async def _create_room(self, effect: CreateRoom, txn_id: str) -> list[Input]:
        ref = effect.ref
        if self.attempts is not None and await self.attempts.begin(txn_id):
            found = await self._find_created(txn_id)
            if found is not None:
                log.info("room from an interrupted attempt found and reused")
                self.created(found)
                return [RoomCreated(ref.session_id, ref.offer_id, found)]
        is_chatter = ref.role is Role.CHATTER
        initial_state: list[dict[str, Any]] = [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}},
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "joined"},
            },
            {
                "type": "m.room.guest_access",
                "state_key": "",
                "content": {"guest_access": "can_join" if is_chatter else "forbidden"},
            },
            # Lets a retry after a crash find this room instead of making a second one.
            {"type": REQUEST_MARK, "state_key": "", "content": {"txn": txn_id}},
            # A safety net: if the bot dies before purging, a server with retention enabled
            # still drops the conversation.
            {
                "type": "m.room.retention",
                "state_key": "",
                "content": {"max_lifetime": int(self.retention.total_seconds() * 1000)},
            },
        ]
        power = {
            # Room version 12 gives the creator (the bot) unlimited power; it must not be listed.
            "users": {effect.invite: 0},
            "users_default": 0,
            "events_default": 0,
            "state_default": 100,
            "invite": 100,
            "kick": 100,
            "ban": 100,
            "redact": 100,
            "events": {
                "m.room.name": 100,
                "m.room.topic": 100,
                "m.room.avatar": 100,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.encryption": 100,
                "m.room.tombstone": 100,
                "m.room.server_acl": 100,
                "m.reaction": 0,
            },
        }
        try:
            resp = await self.client.room_create(
                visibility=RoomVisibility.private,
                preset=RoomPreset.private_chat,
                name=effect.persona,
                invite=[effect.invite],
                is_direct=is_chatter,
                initial_state=initial_state,
                power_level_override=power,
                federate=False,
            )
        except (TimeoutError, OSError) as exc:
            raise Transient(type(exc).__name__) from exc
        if not isinstance(resp, RoomCreateResponse):
            code = getattr(resp, "status_code", "") or ""
            if not code.startswith("M_") or code == "M_LIMIT_EXCEEDED":
                raise Transient(code or "transport")
            # The code only: the server's message can name users or rooms.
            log.error("room creation refused", extra={"code": code, "session": ref.session_id})
            return [RoomFailed(ref.session_id, ref.offer_id)]
        room = RoomID(resp.room_id)
        self.created(room)
        if effect.persona:
            await self._check(
                self.client.room_put_state(
                    room,
                    "m.room.member",
                    {"membership": "join", "displayname": effect.persona},
                    state_key=self.bot_user,
                ),
                quiet=True,
            )
        return [RoomCreated(ref.session_id, ref.offer_id, room)]

    # What nio would learn from the bot's own state events, which the sync filter keeps
    # from it (Connection._upload_filter). Harmless when nio sees them anyway.

    def created(self, room: RoomID) -> None:
        """The bot made `room` with encryption on: nio must encrypt everything sent there
        (it makes its room objects encrypted for the IDs in `encrypted_rooms`)."""
        self.client.encrypted_rooms.add(room)
        if self.client.store is not None:
            self.client.store.save_encrypted_rooms([room])

    def kicked(self, room: RoomID, user: UserID) -> None:
        """`user` is out of `room`: no more room keys for their devices, and a new Megolm
        session for the next message, as nio does when it sees someone leave."""
        nio_room = self.client.rooms.get(room)
        if nio_room is not None and nio_room.remove_member(user):
            self.client.invalidate_outbound_session(room)

    async def _leave_all(self, effect: Purge) -> str:
        """The minimum until the purge pipeline runs: nobody stays in the rooms."""
        for room in effect.rooms:
            for user in effect.participants:
                await self._check(self.client.room_kick(room, user), quiet=True)
            await self._check(self.client.room_leave(room), quiet=True)
            await self._check(self.client.room_forget(room), quiet=True)
        return "left"


def session_of(effect: Any) -> SessionID | None:
    """The conversation an effect belongs to, so deleting the conversation drops its rows."""
    for attr in ("to", "ref"):
        ref = getattr(effect, attr, None)
        if isinstance(ref, RoomRef):
            return ref.session_id
    sid = getattr(effect, "session_id", None)
    return SessionID(sid) if isinstance(sid, int) else None
