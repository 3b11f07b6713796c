"""One sync batch, as nio parsed it, into inbox items, in each room's timeline order.

Rules:
- What each event means is decided in `bot.matrix.translate` (pure, never raises). Here
  each event is isolated: whatever goes wrong with one skips that one only, counted in
  `skipped` by reason, logged by exception class, never by content or ID.
- Events from before the bot joined a room are dropped: on the very first sync all of them
  (history from before the bot ran); on a server that marks each event with the bot's
  membership at the time (Matrix 1.11), those not marked "join" (see `bot.matrix.syncfilter`);
  on other servers, in a room newly joined in this batch, everything before the bot's own
  join event.
- An event without its Megolm key is held (`bot.matrix.held`) and what comes after it in
  its room waits behind it; everything else goes on the inbox as it is translated.
- Invites are decided by the app (which knows the config): here they are only reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nio import EncryptionError, InviteMemberEvent, MegolmEvent, RoomMemberEvent, SyncResponse
from nio.events.ephemeral import ReceiptEvent, TypingNoticeEvent

from bot.core.events import Input, Origin, Removed, Typing
from bot.core.ids import RoomID, UserID
from bot.core.rooms import Rooms
from bot.inbox import BatchEnd, Inbound
from bot.matrix.held import HeldEvents
from bot.matrix.syncfilter import before_join
from bot.matrix.translate import Skip, SkipCounts, event_id, read, read_receipts, user_id

log = logging.getLogger(__name__)


class BatchTranslator:
    def __init__(
        self,
        client: Any,  # nio's AsyncClient: its rooms, encrypted rooms and decryption
        user_id: str,
        *,
        rooms: Rooms,
        held: HeldEvents,
        enqueue: Callable[[Inbound | BatchEnd], None],
        on_invite: Callable[[RoomID, UserID, bool], None],
    ) -> None:
        self.client = client
        self.user_id = user_id
        self.rooms = rooms  # read-only here
        self.held = held
        self._enqueue = enqueue
        self._on_invite_cb = on_invite
        self.staff_room: RoomID | None = None
        self.lobbies: set[RoomID] = set()
        self.first_sync = True  # until a batch from after the bot's start is handled
        self._typing: dict[RoomID, set[UserID]] = {}
        self.skipped = SkipCounts()  # events no input came from, by reason

    def origin_of(self, room: RoomID) -> Origin:
        if room == self.staff_room:
            return Origin.STAFF
        if room in self.lobbies:
            return Origin.LOBBY
        nio_room = self.client.rooms.get(room)
        if self.rooms.is_session_room(room):
            return Origin.OTHER
        if nio_room is not None and nio_room.member_count <= 2:
            return Origin.DIRECT
        return Origin.OTHER

    def translate(self, resp: SyncResponse) -> None:
        for room_id, info in resp.rooms.invite.items():
            self._on_invite(RoomID(room_id), info.invite_state)
        for room_id, info in resp.rooms.join.items():
            room = RoomID(room_id)
            # If the bot's own join is in this batch's timeline, the room is new to it:
            # what came before the join is history it must not act on. If not, the bot
            # was already in the room and every event in the timeline is new.
            own_join = next(
                (
                    i
                    for i, ev in enumerate(info.timeline.events)
                    if isinstance(ev, RoomMemberEvent)
                    and ev.state_key == self.user_id
                    and ev.membership == "join"
                    and ev.prev_membership != "join"
                ),
                -1,
            )
            self._timeline(room, info.timeline.events[own_join + 1 :])
            for event in info.ephemeral:
                if self.first_sync:
                    continue
                try:
                    if isinstance(event, TypingNoticeEvent):
                        self._on_typing(room, event)
                    elif isinstance(event, ReceiptEvent):
                        for receipt in read_receipts(room, event.receipts, self.user_id):
                            self._enqueue(Inbound(receipt))
                except Exception as exc:
                    self._failed(exc)

        for room_id, info in resp.rooms.leave.items():
            # The bot is out of the room: it left (a conversation's end), or was kicked,
            # banned, or lost its membership in a state reset. For a room of a
            # conversation the core decides; what was written before counts first.
            room = RoomID(room_id)
            if self.first_sync or not self.rooms.is_session_room(room):
                continue
            self._timeline(room, info.timeline.events)
            log.warning("the bot is no longer in a room of a conversation")
            self._pass_on(room, Inbound(Removed(room)), self.origin_of(room))

    def _timeline(self, room: RoomID, events: list[Any]) -> None:
        if self.first_sync:
            return  # history from before the bot ran: never act on it
        for event in events:
            # One event that breaks translation costs that event, never the sync: a
            # crash here would replay the same batch on every start.
            try:
                if before_join(getattr(event, "source", None) or {}):
                    continue  # a state event from before the bot's join (see prepare_sync)
                if isinstance(event, RoomMemberEvent) and event.state_key == self.user_id:
                    continue
                self._translate_event(room, event)
            except Exception as exc:
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        # The class name only: the message of an exception may quote the event.
        self.skipped.add(Skip.ERROR)
        log.warning(
            "an event could not be translated and was skipped", extra={"error": type(exc).__name__}
        )

    def _on_typing(self, room: RoomID, event: TypingNoticeEvent) -> None:
        listed = event.users if isinstance(event.users, list) else []
        users = {u for u in map(user_id, listed) if u is not None} - {self.user_id}
        for user, typing in self._typing_changes(room, users):
            self._enqueue(Inbound(Typing(room, user, typing)))

    def _typing_changes(self, room: RoomID, now_typing: set[UserID]) -> list[tuple[UserID, bool]]:
        before = self._typing.get(room, set())
        self._typing[room] = now_typing
        return [(u, True) for u in now_typing - before] + [(u, False) for u in before - now_typing]

    def _on_invite(self, room: RoomID, state: list[Any]) -> None:
        inviter = None
        is_direct = False
        for ev in state:
            if isinstance(ev, InviteMemberEvent) and ev.state_key == self.user_id:
                inviter = user_id(ev.sender)
                content = ev.content if isinstance(ev.content, dict) else {}
                is_direct = content.get("is_direct") is True
        if inviter is not None:
            self._on_invite_cb(room, inviter, is_direct)

    def room_encrypted(self, room: RoomID) -> bool:
        """The bot knows the room is encrypted: nio has seen its encryption state, or the
        executor made it (and told nio, before its state came back in a sync)."""
        nio_room = self.client.rooms.get(room)
        return (nio_room is not None and nio_room.encrypted) or room in self.client.encrypted_rooms

    def _read(self, room: RoomID, event: Any, origin: Origin) -> Input | None:
        out = read(room, event, origin, room_encrypted=self.room_encrypted(room))
        if not isinstance(out, Skip):
            return out
        self.skipped.add(out)
        if out is Skip.PLAINTEXT_IN_ENCRYPTED:
            log.warning("an unencrypted message in an encrypted room was not acted on")
        elif out is not Skip.IGNORED:
            log.info("an event was skipped", extra={"reason": out.value})
        return None

    def _translate_event(self, room: RoomID, event: Any) -> None:
        sender = getattr(event, "sender", None)
        if sender == self.user_id:
            return
        origin = self.origin_of(room)
        if isinstance(event, MegolmEvent):
            held_sender, held_id = user_id(sender), event_id(event.event_id)
            if held_sender is None or held_id is None:
                self.skipped.add(Skip.MALFORMED)  # its sender could never be asked again
                return
            self.held.hold(room, event, sender=held_sender, event_id=held_id, origin=origin)
            return
        inp = self._read(room, event, origin)
        if inp is None:
            return
        inbound = Inbound(inp, getattr(event, "event_id", None), _sender_key(event), origin)
        self._pass_on(room, inbound, origin)

    def _pass_on(self, room: RoomID, inbound: Inbound, origin: Origin) -> None:
        if not self.held.queue(room, inbound, origin):  # else: behind what waits for a key
            self._enqueue(inbound)

    def decrypt(
        self, room: RoomID, event: MegolmEvent, origin: Origin
    ) -> tuple[bool, Inbound | None]:
        """A held event, if its key has come (see `bot.matrix.held.Decrypt`)."""
        event.room_id = room
        try:
            clear = self.client.decrypt_event(event)
        except EncryptionError:
            return False, None
        except Exception as exc:  # its payload broke nio: it alone goes
            self._failed(exc)
            return True, None
        log.info("a held event was decrypted after its key arrived")
        try:
            inp = self._read(room, clear, origin)
        except Exception as exc:
            self._failed(exc)
            return True, None
        if inp is None:
            return True, None
        return True, Inbound(inp, event.event_id, _sender_key(clear), origin)


def _sender_key(event: Any) -> str | None:
    """The sending device's Curve25519 key, for an event that was decrypted."""
    key = getattr(event, "sender_key", None) if getattr(event, "decrypted", False) else None
    return key if isinstance(key, str) else None
