"""Carries out the core's effects over Matrix, and only that.

Each effect arrives with the transaction ID stored beside it in the outbox; every send uses
that ID, so a retry after a crash (or a 429, which nio resends on the same path) is
de-duplicated by the homeserver: delivered once. Effects address conversation rooms by
`RoomRef`, looked up in the read-only room index the worker keeps.

`run` returns what came of the effect (`bot.outcomes`): the worker records it. Nothing here
touches the database. A transient failure raises `Transient` (the worker tries again,
forever, in that conversation's lane only); a refusal comes back as `Refused`.

The executor never waits for a room to show up in a sync: a room it made is known from the
creation's answer, and a room nio has not seen since the start (a DM, after a restart) is
asked about once.

What is sent is built here from plain text only: relayed words go out as `body` with no
`formatted_body`, so no participant's HTML is ever rendered by anyone, and with empty
`m.mentions`, so that nothing a participant writes (`@room`) notifies anyone through the
bot's power.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from nio import (
    AsyncClient,
    JoinedRoomsResponse,
    MatrixRoom,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
)
from nio.exceptions import OlmUnverifiedDeviceError

from bot.core.events import (
    CreateRoom,
    Invite,
    Purge,
    Redact,
    RedactRoom,
    Relay,
    RelayEdit,
    RelayMedia,
    RelayReceipt,
    RelayRedaction,
    Retire,
    RoomRef,
    Say,
    SetPersona,
    SetTyping,
    Target,
    Withdraw,
)
from bot.core.ids import EventID, RoomID, UserID
from bot.core.media import MediaProblem
from bot.core.model import Role
from bot.core.rooms import Rooms
from bot.matrix.errors import TRANSPORT_ERRORS, Kind, Refusal, check, code_of, kind_of_code
from bot.matrix.media import MediaCopier
from bot.matrix.trust import TrustPolicy
from bot.messages import Texts
from bot.outcomes import (
    Done,
    Known,
    Lost,
    MediaRejected,
    MediaRelayed,
    Outcome,
    Purged,
    Refused,
    RoomMade,
    Sent,
    Transient,
)

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"
REQUEST_MARK = "org.alltidhjelp.request"


class Executor:
    def __init__(
        self,
        client: AsyncClient,
        *,
        texts: Texts,
        rooms: Rooms,
        trust: TrustPolicy,
        retention: timedelta,
        bot_user: str,
        purge: Callable[[Purge], Awaitable[str]],
        redact_room: Callable[[RoomID], Awaitable[None]] | None = None,
        media: MediaCopier | None = None,
    ) -> None:
        self.client = client
        self.texts = texts
        self.rooms = rooms
        self.trust = trust
        self.retention = retention
        self.bot_user = bot_user
        self.purge = purge
        self.redact_room = redact_room
        self.media = media  # None: relay_media is off, and RelayMedia is never asked for

    async def run(self, effect: Any, txn_id: str, known: Known | None = None) -> Outcome:
        """Carry out one effect; what came of it, for the worker to record."""
        try:
            return await self._run(effect, txn_id, known or Known())
        except Refusal as exc:
            return await self._refused(effect, exc)
        except TRANSPORT_ERRORS as exc:
            # A request made outside `check` (nio's key queries in the trust policy, say)
            # hit a broken transport: that is passing trouble like any other.
            raise Transient(type(exc).__name__) from exc

    async def _refused(self, effect: Any, exc: Refusal) -> Refused | Lost:
        room = self._room_of(effect)
        if exc.code == "M_FORBIDDEN" and room is not None and not await self._member(room):
            return Lost(room)
        return Refused(exc.code)

    async def _run(self, effect: Any, txn_id: str, known: Known) -> Outcome:
        match effect:
            case CreateRoom():
                return await self._create_room(effect, txn_id, known.retry)
            case Say():
                body = self.texts.render(effect.text, effect.language)
                msgtype = "m.text" if effect.voice else "m.notice"
                room = self._target(effect.to)
                content = {"msgtype": msgtype, "body": body}
                return await self._send(room, content, txn_id, mentions=effect.mentions)
            case SetPersona():
                room = self._target(effect.to)
                await check(
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
                return await self._send(room, content, txn_id)
            case RelayMedia():
                return await self._relay_media(effect, txn_id)
            case RelayEdit():
                if known.relayed is None:
                    return Done()  # the original was never relayed (e.g. refused): no edit
                room = self._target(effect.to)
                edit: dict[str, Any] = {
                    "msgtype": "m.text",
                    "body": f"* {effect.body}",
                    "m.new_content": {"msgtype": "m.text", "body": effect.body},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": known.relayed},
                }
                return await self._send(room, edit, txn_id)
            case RelayRedaction():
                if known.relayed is not None:
                    room = self._target(effect.to)
                    await check(self.client.room_redact(room, known.relayed, tx_id=txn_id))
            case RelayReceipt():
                if known.original is not None:  # else: read was a notice, not a relayed copy
                    room = self._target(effect.to)
                    receipt = self.client.update_receipt_marker(room, known.original)
                    await check(receipt, quiet=True)
            case SetTyping():
                room = self._target(effect.to)
                typing = self.client.room_typing(room, effect.typing, timeout=30_000)
                await check(typing, quiet=True)
            case Redact():
                await check(self.client.room_redact(effect.room, effect.event_id, tx_id=txn_id))
            case RedactRoom():
                retired = self.rooms.room(effect.ref)
                if retired is not None and self.redact_room is not None:
                    await self.redact_room(retired)
            case Withdraw():
                offered = self.rooms.room(effect.ref)
                if offered is not None:
                    await check(self.client.room_kick(offered, effect.volunteer), quiet=True)
                    self.kicked(offered, effect.volunteer)
                    await check(self.client.room_leave(offered), quiet=True)
                    await check(self.client.room_forget(offered), quiet=True)
            case Retire():
                retired = self.rooms.room(effect.ref)
                if retired is not None:
                    await check(self.client.room_kick(retired, effect.volunteer), quiet=True)
                    self.kicked(retired, effect.volunteer)
            case Invite():
                # Already invited or in the room (a retry): refused harmlessly.
                await check(
                    self.client.room_invite(self._target(effect.ref), effect.user), quiet=True
                )
            case Purge():
                return Purged(await self.purge(effect))
            case _:
                raise TypeError(f"not an effect the executor knows: {type(effect).__name__}")
        return Done()

    async def _relay_media(self, effect: RelayMedia, txn_id: str) -> Outcome:
        """The bot's own copy of the attachment (`bot.matrix.media`), sent to the other
        side; once uploaded, the copy is reported whatever becomes of the send, so that
        the purge deletes it."""
        if self.media is None:
            return MediaRejected(MediaProblem.TYPE)
        room = self._target(effect.to)  # before the download: no room, nothing to copy
        made = await self.media.copy(effect.attachment, txn_id)
        if isinstance(made, MediaProblem):
            return MediaRejected(made)
        then: Sent | Refused | Lost
        try:
            then = await self._send(room, made.content, txn_id)
        except Refusal as exc:
            then = await self._refused(effect, exc)
        self.media.sent(txn_id)
        return MediaRelayed(made.mxc, UserID(self.bot_user), then)

    # ----------------------------------------------------------------------------------

    def _room_of(self, effect: Any) -> RoomID | None:
        """The room of a conversation an effect was for, if it has one."""
        to = getattr(effect, "to", None)
        return self.rooms.room(to) if isinstance(to, RoomRef) else None

    async def _member(self, room: RoomID) -> bool:
        """Whether the server still has the bot in `room`; when it cannot say, yes (a
        conversation is never ended on a guess)."""
        try:
            resp = await self.client.joined_rooms()
        except TRANSPORT_ERRORS:
            return True
        return not isinstance(resp, JoinedRoomsResponse) or room in resp.rooms

    def _target(self, to: Target) -> RoomID:
        if isinstance(to, RoomRef):
            room = self.rooms.room(to)
            if room is None:
                raise Refusal("no_room")  # the conversation ended before its room was made
            return room
        return to

    async def _send(
        self,
        room: RoomID,
        content: dict[str, Any],
        txn_id: str,
        mentions: tuple[UserID, ...] = (),
    ) -> Sent:
        # Nothing the bot sends mentions anyone but the staff the core names (an alert's
        # supervisors): a chatter's "@room" stays text.
        content = {**content, "m.mentions": {"user_ids": list(mentions)} if mentions else {}}
        encrypted = await self._ready(room)
        if encrypted:
            await self.trust.prepare(self.client, room)
        try:
            resp = await check(
                self.client.room_send(
                    room, "m.room.message", content, tx_id=txn_id, ignore_unverified_devices=False
                )
            )
        except OlmUnverifiedDeviceError as exc:
            # A device nio learnt of after the trust check (a key query finished while
            # the send waited): nothing was sent; decide again on the retry.
            raise Transient("a device appeared during the send") from exc
        assert isinstance(resp, RoomSendResponse)
        return Sent(room, EventID(str(resp.event_id)))

    async def _ready(self, room: RoomID) -> bool:
        """Make sure nio has a room object that says the truth about encryption, without
        waiting for a sync; returns whether the room is encrypted.

        nio encrypts only for rooms it has an object for, with members and the encryption
        flag. The bot's own events are filtered out of its sync, and under load a sync can
        make the object of a room the bot just created before the creation's answer is
        handled: such an object says "unencrypted" and would stay so. For a room known to
        be encrypted (one the bot made, or one nio's store remembers) the flag is set
        here; a room nio has never seen (a DM, after a restart) is asked about once."""
        client = self.client
        nio_room = client.rooms.get(room)
        if room in client.encrypted_rooms:
            if nio_room is None:
                nio_room = client.rooms[room] = MatrixRoom(room, client.user_id, encrypted=True)
            nio_room.encrypted = True
        elif nio_room is None:
            encrypted = await self._asks_encryption(room)
            nio_room = client.rooms[room] = MatrixRoom(room, client.user_id, encrypted=encrypted)
            if encrypted:
                self.created(room)
        if nio_room.encrypted and not nio_room.members_synced:
            await check(client.joined_members(room))
        return bool(nio_room.encrypted)

    async def _asks_encryption(self, room: RoomID) -> bool:
        try:
            resp = await self.client.room_get_state_event(room, "m.room.encryption")
        except TRANSPORT_ERRORS as exc:
            raise Transient(type(exc).__name__) from exc
        if isinstance(resp, RoomGetStateEventResponse):
            return bool(resp.content.get("algorithm"))
        code = code_of(resp)
        if code == "M_NOT_FOUND":
            return False
        if kind_of_code(code) is Kind.PERMANENT:
            raise Refusal(code)
        raise Transient(code or "no error code")

    async def _find_created(self, txn_id: str) -> RoomID | None:
        """After a crash: the room an earlier attempt of this effect may have made (a
        joined room marked with this effect's transaction ID)."""
        resp = await check(self.client.joined_rooms(), quiet=True)
        for room in getattr(resp, "rooms", []):
            if self.rooms.is_session_room(RoomID(room)):
                continue
            state = await self.client.room_get_state_event(room, REQUEST_MARK, "")
            content = getattr(state, "content", None)
            if isinstance(content, dict) and content.get("txn") == txn_id:
                return RoomID(room)
        return None

    async def _create_room(self, effect: CreateRoom, txn_id: str, retry: bool) -> Outcome:
        ref = effect.ref
        if retry:
            found = await self._find_created(txn_id)
            if found is not None:
                log.info("room from an interrupted attempt found and reused")
                self.created(found)
                return RoomMade(found)
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
        resp = await check(
            self.client.room_create(
                visibility=RoomVisibility.private,
                preset=RoomPreset.private_chat,
                name=effect.persona,
                invite=[effect.invite],
                is_direct=is_chatter,
                initial_state=initial_state,
                power_level_override=power,
                # Only a room for someone on another server federates: a conversation
                # among the helpline's own accounts never leaves its server.
                federate=effect.federate,
            )
        )
        assert isinstance(resp, RoomCreateResponse)
        room = RoomID(resp.room_id)
        self.created(room)
        if effect.persona:
            await check(
                self.client.room_put_state(
                    room,
                    "m.room.member",
                    {"membership": "join", "displayname": effect.persona},
                    state_key=self.bot_user,
                ),
                quiet=True,
            )
        return RoomMade(room)

    # What nio would learn from the bot's own state events, which the sync filter keeps
    # from it (bot.matrix.sync, `_upload_filter`). Harmless when nio sees them anyway.

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
