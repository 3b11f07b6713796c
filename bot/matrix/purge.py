"""The purge pipeline: remove a finished conversation everywhere the bot can, then check.

`Purger` is the `purge` hook of the `Executor`: it carries out one `Purge` effect and
returns the result for `PurgeFinished`: "verified" (the admin API answers 404 for every
room), "verified_local_only" (the same, for a conversation with someone on another
server: see below), "verified_without_admin" (no admin token; every event the bot can
still read is redacted) or "failed:<reason>" (a code, never an ID).

The steps, in order, each recorded in `purge_jobs` once done, so that a crash resumes at
the next one (the `Purge` effect stays in the outbox until `PurgeFinished` is stored, and
the worker carries it out again on start):

  redact        every event of each room that is not a state event and not yet redacted,
                so that the participants' clients drop what they cached
  kick          every participant (Synapse's Delete Room API sends them no leave event,
                so without the kick their clients would keep showing the room)
  leave         a second redaction sweep for words written while the first ran, the
                check of what another server was told (below), then the bot leaves
  admin_delete  with an admin token: DELETE /_synapse/admin/v2/rooms/{id} (block, purge),
                polled until complete; retried if the server reports it failed
  media         with an admin token: every mxc:// the conversation carried
  account       a web chatter's throw-away account (`Purge.erase`): deactivated with erase
  local         the rooms' Megolm sessions out of nio's crypto store and out of memory
  verify        the result above (and a web chatter's account deactivated, and no media
                the media step should have deleted still there); recorded as
                "verify=<result>" before ...
  forget        ... the bot forgets the rooms (a forgotten room cannot be read back, so the
                check without admin rights must come first), and its crypto store forgets
                the chatter (the first participant) and the rooms (`bot.matrix.forget`)

Every step is idempotent: a redacted event is skipped, kicking someone who is gone or
leaving a room already left is refused harmlessly, a room already deleted is not deleted
again, media already gone answers 404. The job row, which names the rooms and media, is
deleted in the same transaction as the conversation's row when the core handles
`PurgeFinished` (`StateRepo.apply`), and the worker then scrubs the database files.

The DM in which the chatter first wrote (`Purge.dm`) goes through the same steps but
the kick: it is the chatter's room. The bot redacts its own events there, and the
chatter's where it has the power to (Element makes DMs with the `trusted_private_chat`
preset, which gives the invited bot the creator's power level; other clients' private
chats give it none, and then the chatter's words stay until the admin API deletes the
room); it leaves and forgets, and with an admin token deletes the room with purge, which
removes the chatter too. Without an admin token, the check counts only the bot's own
events in the DM.

Another server (`Purge.federated`: a participant's account is elsewhere) keeps its own
copy of the rooms it took part in, and nothing the helpline does deletes it. What reaches
it: the redactions (it drops the content it stored, on its own schedule), the kicks and
the bot's leave (nobody of the helpline is left in its copy). The admin API deletes the
helpline's copy only. So before the bot leaves, while it can still see the room as its
server has it, the purge checks what can be checked from here: every event redacted and
nobody but the bot still in the room (anyone still in is kicked again); if not, the step
is tried again later (`Transient`, the lane's growing delay and its alert). The result is
then "verified_local_only", counted apart from "verified" in the statistics.

Media: only what whoever posted it in the conversation uploaded is deleted (the admin
media API names the uploader). An `mxc://` is whatever a chatter put in a message, and may
point at anyone's upload. The bot's own copies of relayed files (`bot.matrix.media`) are
noted with the bot as their poster, so they go too; `verify` checks that every file the
media step was to delete is gone.

Errors: the homeserver unreachable, 5xx or 429, a room deletion that keeps failing on the
server, raise `Transient`: the worker's purge lane tries again later, with a delay that
grows to an hour, for as long as it takes; the job row keeps the purge across restarts.
A purge ends with "failed:<reason>" only when retrying cannot help (the token refused,
the admin API hidden behind a proxy, a deletion refused) or after `MAX_ERRORS`
unexpected errors (a bug). Nothing logged carries an ID, content or the admin token.
The admin API's requests (room gone?, delete and wait, media) are in `bot.matrix.admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from nio import (
    AsyncClient,
    ErrorResponse,
    RedactedEvent,
    RedactionEvent,
    RoomGetStateResponse,
    RoomMessagesResponse,
)
from nio.store.models import (
    EncryptedRooms,
    ForwardedChains,
    MegolmInboundSessions,
    OutgoingKeyRequests,
)

from bot.core.events import Purge
from bot.core.ids import RoomID, SessionID, UserID
from bot.matrix.admin import AdminAPI, AdminUnusable
from bot.matrix.errors import TRANSPORT_ERRORS, Kind, kind_of_code
from bot.matrix.forget import forget_chatter
from bot.outcomes import Transient

log = logging.getLogger(__name__)

# "account" came after "media" later; a job stored at any earlier step still resumes right.
STEPS = ("redact", "kick", "leave", "admin_delete", "media", "account", "local")
VERIFY = "verify"

VERIFIED = "verified"
VERIFIED_LOCAL_ONLY = "verified_local_only"
VERIFIED_WITHOUT_ADMIN = "verified_without_admin"

MAX_ERRORS = 6  # unexpected errors (bugs) before a purge ends as "failed:error"
REDACT_CONCURRENCY = 8
PAGE = 200


class PurgeJob(Protocol):
    """A purge in progress, as stored (`bot.storage.purges.PurgeJob`, frozen)."""

    @property
    def session_id(self) -> SessionID: ...

    @property
    def step(self) -> str: ...

    @property
    def rooms(self) -> tuple[RoomID, ...]: ...

    @property
    def media(self) -> tuple[str, ...]: ...


class JobLog(Protocol):
    """Where a purge keeps its progress, so that one cut short resumes on start
    (`bot.storage.purges.PurgeJobs`; the purge never sees the database itself)."""

    INITIAL_STEP: str

    async def start(
        self, session_id: SessionID, rooms: Sequence[RoomID], media: Sequence[str], now: datetime
    ) -> PurgeJob: ...

    async def advance(self, session_id: SessionID, step: str) -> bool: ...

    async def bump_attempts(self, session_id: SessionID) -> int: ...


class MediaLog(Protocol):
    """The media a conversation carried and who posted each (`bot.storage.purges.MediaSeen`)."""

    async def for_session(self, session_id: SessionID) -> list[str]: ...

    async def posters(self, session_id: SessionID) -> dict[str, UserID | None]: ...


class Purger:
    def __init__(
        self,
        client: AsyncClient,
        *,
        jobs: JobLog,
        media: MediaLog,
        homeserver: str,
        admin_token: str | None,
        clock: Callable[[], datetime],
        pause_after: str | None = None,
    ) -> None:
        self.client = client
        self.jobs = jobs
        self.media = media
        self.admin = AdminAPI(homeserver, admin_token) if admin_token else None
        self.clock = clock
        # A test's hook: the name of a step after which the purge stops and waits, so
        # that the test can kill the bot between two steps. None in production.
        self.pause_after = pause_after

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()

    # ----------------------------------------------------------------------------------

    async def __call__(self, effect: Purge) -> str:
        sid = effect.session_id
        started = time.monotonic()
        media = await self.media.for_session(sid)
        rooms = list(effect.rooms)
        if effect.dm is not None and effect.dm not in rooms:
            rooms.append(effect.dm)
        job = await self.jobs.start(sid, rooms, media, self.clock())
        if job.step != self.jobs.INITIAL_STEP:
            log.info("purge resumed", extra={"session": int(sid), "after": _name(job.step)})
        try:
            result = await self._run(
                job, effect.participants, effect.dm, effect.erase, federated=effect.federated
            )
        except Transient:
            raise  # tried again later, for as long as it takes (the worker's purge lane)
        except Exception as exc:
            # A bug must neither stall the outbox nor leave the conversation unaccounted.
            errors = await self.jobs.bump_attempts(sid)
            log.error("purge step failed", extra={"session": int(sid), "why": type(exc).__name__})
            if errors < MAX_ERRORS:
                raise Transient(type(exc).__name__) from None
            result = "failed:error"
        log.info(
            "purge finished",
            extra={
                "session": int(sid),
                "result": result,
                "rooms": len(effect.rooms),
                "seconds": _since(started),
            },
        )
        return result

    async def redact_room(self, room: RoomID) -> None:
        """Redact every message event of one room now (before a volunteer is removed from
        it: a client outside a room never receives its redactions). The purge's own sweep
        later uses the same transaction IDs, so nothing is redacted twice."""
        await self._redact([room])

    async def _run(
        self,
        job: PurgeJob,
        participants: Sequence[UserID],
        dm: RoomID | None,
        erase: UserID | None = None,
        *,
        federated: bool = False,
    ) -> str:
        sid, rooms = job.session_id, list(job.rooms)
        # The chatter's own DM: nobody is kicked from it (see the module's docstring).
        conversation = [room for room in rooms if room != dm]
        name, _, result = job.step.partition("=")
        done = STEPS.index(name) + 1 if name in STEPS else (len(STEPS) if name == VERIFY else 0)
        actions: dict[str, Callable[[], Any]] = {
            "redact": lambda: self._redact(rooms),
            "kick": lambda: self._kick(conversation, participants),
            "leave": lambda: self._leave(rooms, rooms if federated else (), dm),
            "admin_delete": lambda: self._admin_delete(rooms),
            "media": lambda: self._delete_media(sid, job.media, participants),
            "account": lambda: self._erase(erase),
            "local": lambda: self._drop_local(rooms),
        }
        for step in STEPS[done:]:
            began = time.monotonic()
            await actions[step]()
            await self._advance(sid, step)
            log.debug("purge step", extra={"step": step, "seconds": _since(began)})
        if not result:
            result = await self._verify(rooms, dm)
            if result == VERIFIED and await self._media_left(sid, job.media, participants):
                result = "failed:media_still_present"
            if result == VERIFIED and federated:
                result = VERIFIED_LOCAL_ONLY
            if result in (VERIFIED, VERIFIED_LOCAL_ONLY) and not await self._erased(erase):
                result = "failed:account_active"
            await self._advance(sid, f"{VERIFY}={result}")
        await self._forget(rooms)
        forget_chatter(self.client, participants[0] if participants else "", rooms)
        return result

    async def _advance(self, sid: SessionID, step: str) -> None:
        await self.jobs.advance(sid, step)
        if self.pause_after and _name(step) == self.pause_after:
            log.warning("purge paused by the test hook", extra={"after": _name(step)})
            await asyncio.Event().wait()  # until the process is killed

    # -- redact ---------------------------------------------------------------------------

    async def _events_to_redact(self, room: RoomID, sender: str | None = None) -> list[str] | None:
        """Every event of the room the bot can read that still has content to hide (only
        `sender`'s, if given), newest first; None if the bot cannot read the room (no
        longer a member)."""
        found: list[str] = []
        token: str | None = None
        while True:
            try:
                resp = await self.client.room_messages(room, start=token, limit=PAGE)
            except TRANSPORT_ERRORS as exc:
                raise Transient(type(exc).__name__) from None
            if not isinstance(resp, RoomMessagesResponse):
                if _code(resp) in ("M_FORBIDDEN", "M_NOT_FOUND"):
                    return None
                raise Transient(_code(resp))
            found.extend(
                ev.event_id
                for ev in resp.chunk
                if _has_content(ev) and (sender is None or ev.sender == sender)
            )
            if not resp.chunk or not resp.end or resp.end == token:
                return found
            token = resp.end

    async def _redact(self, rooms: Sequence[RoomID]) -> None:
        gate = asyncio.Semaphore(REDACT_CONCURRENCY)
        refused = 0

        async def one(room: RoomID, event_id: str) -> None:
            nonlocal refused
            # The same transaction ID on a retry: the server keeps one redaction.
            txn = "purge" + hashlib.sha256(f"{room}|{event_id}".encode()).hexdigest()[:32]
            async with gate:
                resp = await _call(self.client.room_redact(room, event_id, tx_id=txn))
            if isinstance(resp, ErrorResponse):
                refused += 1

        async def room_events(room: RoomID) -> list[tuple[RoomID, str]]:
            events = await self._events_to_redact(room)
            return [(room, e) for e in events or []]

        todo = [x for batch in await _all(*map(room_events, rooms)) for x in batch]
        await _all(*(one(room, event_id) for room, event_id in todo))
        if todo:
            log.info("purge redacted", extra={"events": len(todo) - refused, "refused": refused})

    # -- kick, leave, forget ----------------------------------------------------------------

    async def _kick(self, rooms: Sequence[RoomID], participants: Sequence[UserID]) -> None:
        # Whoever is not (or no longer) in a room is refused harmlessly.
        await _all(
            *(_call(self.client.room_kick(room, user)) for room in rooms for user in participants)
        )

    async def _leave(
        self, rooms: Sequence[RoomID], shared: Sequence[RoomID] = (), dm: RoomID | None = None
    ) -> None:
        """`shared`: the conversation's rooms another server took part in, checked before
        the bot leaves them (see the module's docstring)."""
        await self._redact(rooms)  # anything written between the first sweep and the kick
        if shared:
            await self._told_everything(shared, dm)
        await _all(*(_call(self.client.room_leave(room)) for room in rooms))

    async def _told_everything(self, rooms: Sequence[RoomID], dm: RoomID | None) -> None:
        """Every event of `rooms` redacted and nobody but the bot in them, as the
        helpline's server has them: all that another server's copy will be told. A room
        the bot already left (a crash after the leave) is read as it was then."""
        for room in rooms:
            # In the chatter's DM only the bot's own events are surely its to redact.
            left = await self._events_to_redact(room, self.client.user_id if room == dm else None)
            if left is None and room != dm:
                raise Transient("unreadable")
            if left:
                raise Transient("unredacted_events")
            if room == dm:
                continue  # the chatter's own room (or one they removed the bot from)
            present = await self._members_present(room)
            if present:
                # A kick that did not take: again, and checked again on the next attempt.
                await _all(*(_call(self.client.room_kick(room, user)) for user in present))
                raise Transient("members_remain")

    async def _members_present(self, room: RoomID) -> list[str]:
        """Who, other than the bot, is joined or invited in `room` (the state as the bot
        last saw it if it has left)."""
        resp = await _call(self.client.room_get_state(room))
        if not isinstance(resp, RoomGetStateResponse):
            raise Transient(_code(resp))
        return [
            ev["state_key"]
            for ev in resp.events
            if ev.get("type") == "m.room.member"
            and ev.get("state_key") != self.client.user_id
            and (ev.get("content") or {}).get("membership") in ("join", "invite")
        ]

    async def _forget(self, rooms: Sequence[RoomID]) -> None:
        await _all(*(_call(self.client.room_forget(room)) for room in rooms))

    # -- admin API --------------------------------------------------------------------------

    async def _admin_delete(self, rooms: Sequence[RoomID]) -> None:
        if self.admin is None:
            return
        try:
            await _all(*(self.admin.delete_room(room) for room in rooms))
        except AdminUnusable as exc:
            log.error("rooms not deleted on the server", extra={"why": exc.code})

    async def _delete_media(
        self, sid: SessionID, media: Sequence[str], participants: Sequence[UserID]
    ) -> None:
        """Delete the conversation's media that its posters uploaded (`AdminAPI.delete_media`)."""
        if self.admin is None or not media:
            return
        posters = await self.media.posters(sid)  # the conversation's row is still there
        try:
            gone, kept, foreign = await self.admin.delete_media(media, posters, participants)
        except AdminUnusable as exc:
            log.error("media not deleted on the server", extra={"why": exc.code})
            return
        log.info(
            "purge media",
            extra={"deleted": gone, "not_deletable": kept, "not_participants": foreign},
        )

    async def _media_left(
        self, sid: SessionID, media: Sequence[str], participants: Sequence[UserID]
    ) -> int:
        """How many items the media step should have deleted are still on the server
        (the senders' originals and the bot's relayed copies alike)."""
        if self.admin is None or not media:
            return 0
        posters = await self.media.posters(sid)
        try:
            left = await self.admin.media_left(media, posters, participants)
        except AdminUnusable:
            return 0  # the rooms' check, just before, used the same API and passed
        if left:
            log.error("media still on the server after the purge", extra={"items": left})
        return left

    # -- the bot's own crypto store -------------------------------------------------------

    async def _drop_local(self, rooms: Sequence[RoomID]) -> None:
        """Forget the rooms' Megolm keys: in memory (outbound and inbound) and in nio's
        SQLite store (inbound sessions, their forwarding chains, key requests, the
        encrypted-room marks). nio's store runs with secure_delete, so the rows are
        overwritten, not just unlinked."""
        client = self.client
        olm = client.olm
        if olm is not None:
            for room in rooms:
                olm.outbound_group_sessions.pop(room, None)
                inbound = getattr(olm.inbound_group_store, "_entries", None)
                if isinstance(inbound, dict):
                    inbound.pop(room, None)
            requests = getattr(olm, "outgoing_key_requests", None)
            if isinstance(requests, dict):
                for key, request in list(requests.items()):
                    if getattr(request, "room_id", None) in rooms:
                        del requests[key]
        for room in rooms:
            client.rooms.pop(room, None)
            client.invited_rooms.pop(room, None)
            client.encrypted_rooms.discard(room)
        database = getattr(getattr(client, "store", None), "database", None)
        if database is None:
            return
        models = [MegolmInboundSessions, ForwardedChains, EncryptedRooms, OutgoingKeyRequests]
        room_list = list(rooms)
        with database.bind_ctx(models), database.atomic():
            sessions = MegolmInboundSessions.select(MegolmInboundSessions.session_id).where(
                MegolmInboundSessions.room_id.in_(room_list)
            )
            ForwardedChains.delete().where(ForwardedChains.session.in_(sessions)).execute()
            dropped = (
                MegolmInboundSessions.delete()
                .where(MegolmInboundSessions.room_id.in_(room_list))
                .execute()
            )
            EncryptedRooms.delete().where(EncryptedRooms.room_id.in_(room_list)).execute()
            OutgoingKeyRequests.delete().where(OutgoingKeyRequests.room_id.in_(room_list)).execute()
        log.info("purge dropped megolm sessions", extra={"sessions": dropped})

    async def _erase(self, user: UserID | None) -> None:
        if user is None or self.admin is None:
            return
        with contextlib.suppress(AdminUnusable):  # the check says so: not deactivated
            await self.admin.deactivate(user)
        log.info("purge erased the web account")

    async def _erased(self, user: UserID | None) -> bool:
        if user is None or self.admin is None:
            return True
        try:
            return await self.admin.deactivated(user)
        except AdminUnusable:
            return False

    # -- verify -----------------------------------------------------------------------------

    async def _verify(self, rooms: Sequence[RoomID], dm: RoomID | None) -> str:
        if self.admin is not None:
            try:
                gone = [await self.admin.room_gone(room) for room in rooms]
            except AdminUnusable as exc:
                return f"failed:{exc.code}"
            return VERIFIED if all(gone) else "failed:room_still_present"
        for room in rooms:
            # In the chatter's DM, without power there, only the bot's own events were
            # its to remove.
            mine = self.client.user_id if room == dm else None
            left = await self._events_to_redact(room, mine)
            if left is None and room == dm:
                continue  # the chatter removed the bot from their DM: not ours to check
            if left is None:
                return "failed:unreadable"
            if left:
                return "failed:unredacted_events"
        return VERIFIED_WITHOUT_ADMIN


# -- helpers ---------------------------------------------------------------------------------


def _since(began: float) -> float:
    return round(time.monotonic() - began, 3)


def _name(step: str) -> str:
    return step.partition("=")[0]


def _has_content(event: Any) -> bool:
    """An event whose content the purge must remove: not a state event (membership, the
    room's settings), not itself a redaction, not redacted already."""
    if isinstance(event, (RedactedEvent, RedactionEvent)):
        return False
    source = getattr(event, "source", None)
    if not isinstance(source, dict):
        return False
    if "state_key" in source or source.get("type") == "m.room.redaction":
        return False
    unsigned = source.get("unsigned")
    if isinstance(unsigned, dict) and "redacted_because" in unsigned:
        return False
    return bool(source.get("content"))


def _code(resp: Any) -> str:
    return str(getattr(resp, "status_code", None) or "transport")


def _refused(resp: Any) -> bool:
    """A definite no from the server (not in the room, forbidden, unknown), as opposed
    to a transport error, a 5xx or a rate limit, which are worth retrying."""
    return kind_of_code(getattr(resp, "status_code", None)) is Kind.PERMANENT


async def _all(*coros: Any) -> list[Any]:
    """Run concurrently and wait for every one, then raise the first error if any: a
    failed request must not leave its siblings running unobserved into the retry."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def _call(coro: Any) -> Any:
    """A nio request whose refusal is fine (already done); transport trouble is Transient."""
    try:
        resp = await coro
    except TRANSPORT_ERRORS as exc:
        raise Transient(type(exc).__name__) from None
    if isinstance(resp, ErrorResponse) and not _refused(resp):
        raise Transient(_code(resp))
    return resp
