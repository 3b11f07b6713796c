"""The bot's Matrix connection: login, identity checks, the sync loop, and translation.

Rules:
- Nothing outside `bot/matrix/` imports nio. What it changes in nio is in `bot.matrix.patches`.
- The sync loop never handles events itself. It translates each batch into core inputs,
  puts them on the worker's inbox in timeline order, and then a `BatchEnd` marker: the
  worker saves the sync token only when it reaches the marker, i.e. after the whole batch
  is handled. nio's own token store is off (`store_sync_tokens=False`): nio saves its token
  before callbacks run, which would lose a batch on a crash.
- Events from before the bot joined a room are dropped here: on the very first sync, those
  the server marks with the bot's membership at the time as not "join" (Matrix 1.11), and
  on other servers, in a room newly joined in this batch, everything before the bot's own
  join event.
- The first login saves the device ID and access token in the data dir; later starts
  restore them (never a new device per start) and check that store, config and `whoami`
  agree.
- The sync asks only for what the bot acts on (a filter: no presence, no account data, no
  read receipts; on Matrix 1.11 servers none of the bot's own events either, so the echo
  of its sends never wakes it). Non-state events the bot never acts on (its own, those
  from before it joined) are dropped from a response before nio parses and decrypts them.
- An event nio cannot decrypt yet is held per room, in order, and retried after every
  sync (its key comes as a to-device `m.room_key` or forwarded key). Later events of that
  room wait behind it for up to `HOLD` seconds, so a late key still keeps the order; after
  the grace period an `Unreadable` input asks its sender to send it again. While anything
  is held, the checkpoint stays before the batch it came in, so a crash replays it (the
  worker drops what it already handled by event ID).
- What each event means is decided in `bot.matrix.translate` (pure, never raises). Here
  each event is isolated: whatever goes wrong with one skips that one only, counted in
  `skipped` by reason, logged by exception class, never by content or ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    AsyncClientConfig,
    EncryptionError,
    InviteMemberEvent,
    JoinError,
    LoginResponse,
    MegolmEvent,
    MessageDirection,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomResolveAliasResponse,
    SyncResponse,
    UploadFilterResponse,
    WhoamiResponse,
)
from nio.events.ephemeral import TypingNoticeEvent

from bot.core.events import Input, Origin, Removed, Typing, Unreadable
from bot.core.ids import EventID, RoomID, UserID
from bot.core.rooms import RoomIndex, Rooms
from bot.exits import EXIT_CROSS_SIGNING, EXIT_IDENTITY, EXIT_LOGIN, EXIT_TOKEN, StartupError
from bot.inbox import BatchEnd, Inbound
from bot.matrix.crosssigning import (
    CrossSigningError,
    CrossSigningKeys,
    KeyFile,
    NioHttp,
    ensure_cross_signing,
)
from bot.matrix.cryptostore import BotStore
from bot.matrix.errors import TRANSPORT_ERRORS, check
from bot.matrix.fallback import needs_fallback_key, publish_fallback_key
from bot.matrix.patches import PatchedClient, skip_empty_room_saves, use_compiled_schemas
from bot.matrix.syncfilter import SYNC_FILTER, before_join, spec_version
from bot.matrix.translate import Skip, SkipCounts, event_id, read, user_id
from bot.outcomes import Transient

log = logging.getLogger(__name__)

GAP_PAGES = 50
"""Pages of 100 events the bot reads back to fill one room's timeline gap (5,000 events:
far more than a conversation writes while the bot restarts)."""

HOLD = 3.0
"""Seconds that later events of a room wait behind one whose key has not come. A late key
usually arrives within a second (its to-device message took another sync); past this, the
room goes on and the held event is handled when (or if) its key comes."""


@dataclass(slots=True)
class _Held:
    batch: int  # the sync batch it came in, for the checkpoint
    arrived: float  # loop time
    origin: Origin
    event: MegolmEvent | None = None  # still without its key
    inbound: Inbound | None = field(default=None)  # translated, waiting behind `event`s


class Connection:
    def __init__(
        self,
        *,
        homeserver: str,
        user_id: str,
        password: str,
        device_name: str,
        display_name: str,
        data_dir: Path,
        store_key: str,
        enqueue: Callable[[Inbound | BatchEnd], None],
        rooms: Rooms | None = None,
        undecryptable_grace: timedelta = timedelta(seconds=60),
    ) -> None:
        self.user_id = user_id
        self._password = password
        self._device_name = device_name
        self._display_name = display_name
        self._data_dir = data_dir
        self._store_key = store_key
        self._enqueue = enqueue
        self.rooms: Rooms = rooms if rooms is not None else RoomIndex()  # read-only here
        self.cross_signing: CrossSigningKeys | None = None
        self._new_device = False
        store = data_dir / "crypto"
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        use_compiled_schemas()
        self.client = PatchedClient(
            homeserver,
            user_id,
            store_path=str(store),
            config=AsyncClientConfig(
                store_sync_tokens=False,
                store=BotStore,  # no plaintext trust files naming every device
                encryption_enabled=True,
                pickle_key=store_key,
                max_limit_exceeded=None,  # honour every 429 with its retry_after_ms
                max_timeouts=None,
                request_timeout=60,
            ),
        )
        self.staff_room: RoomID | None = None
        self.lobbies: set[RoomID] = set()
        self.last_sync_ok: float = 0.0
        # Set once the server has nothing written before this start left to give and all
        # of it is on the inbox: timers that came due while the bot was down wait for it
        # (see `_quiet`).
        self.caught_up = asyncio.Event()
        self._drained = False
        self._started_ms = 0
        self.sync_errors = 0
        self._stopping = asyncio.Event()
        self._first_sync = True
        self._typing: dict[RoomID, set[UserID]] = {}
        self._grace = undecryptable_grace.total_seconds()
        self._held: dict[RoomID, list[_Held]] = {}
        self._batch = 0
        self._unsaved: deque[tuple[int, str]] = deque()  # batches whose checkpoint waits
        self._release_timer: asyncio.TimerHandle | None = None
        self.undecryptable_stats = {"held": 0, "decrypted_late": 0, "unreadable": 0}
        self.skipped = SkipCounts()  # events no input came from, by reason
        self.on_invite: Callable[[RoomID, UserID, bool], None] | None = None
        # Called with the users whose devices or cross-signing keys changed.
        self.on_device_change: Callable[[list[str]], None] | None = None

    # ----------------------------------------------------------------------------------
    # start

    @property
    def _credentials(self) -> Path:
        return self._data_dir / "credentials.json"

    async def login(self) -> None:
        if self.client.client_session is None:
            # nio's own session carries a trace hook for upload progress on every request;
            # the bot uploads nothing, and the hooks cost CPU on each sync and send.
            self.client.client_session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.client.config.request_timeout)
            )
        creds = self._load_credentials()
        if creds is None:
            resp = await self.client.login(self._password, device_name=self._device_name)
            if not isinstance(resp, LoginResponse):
                raise StartupError(f"login failed: {getattr(resp, 'message', resp)}", EXIT_LOGIN)
            self._save_credentials(resp.user_id, resp.device_id, resp.access_token)
            log.info("logged in with a new device")
            self._new_device = True
        else:
            if creds["user_id"] != self.user_id:
                raise StartupError(
                    f"the data dir belongs to {creds['user_id']}, the config says"
                    f" {self.user_id}: use another data dir or fix bot.user_id",
                    EXIT_IDENTITY,
                )
            self.client.restore_login(creds["user_id"], creds["device_id"], creds["access_token"])
        who = await self.client.whoami()
        if not isinstance(who, WhoamiResponse):
            code = getattr(who, "status_code", "")
            if code == "M_UNKNOWN_TOKEN":
                raise StartupError(
                    "the saved access token was rejected (M_UNKNOWN_TOKEN): the device was"
                    " logged out; delete credentials.json in the data dir to log in again",
                    EXIT_TOKEN,
                )
            raise StartupError(f"whoami failed: {getattr(who, 'message', who)}", EXIT_LOGIN)
        if who.user_id != self.user_id or (
            who.device_id and who.device_id != self.client.device_id
        ):
            raise StartupError(
                f"identity mismatch: whoami says {who.user_id} device {who.device_id}, the store"
                f" holds {self.user_id} device {self.client.device_id}",
                EXIT_IDENTITY,
            )
        if self.client.olm is None:
            self.client.load_store()
        skip_empty_room_saves(self.client)  # login/restore_login load the store too
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await self._cross_sign()
        await self.client.set_displayname(self._display_name)

    async def _cross_sign(self) -> None:
        """Publish the account's cross-signing keys and sign this device, before anything
        is sent encrypted: what a device sends before it is signed stays unreadable for
        Element's only-signed mode, and it does not ask again."""
        assert self.client.olm is not None
        key_file = KeyFile(self._data_dir / "cross_signing.json", self._store_key, self.user_id)
        try:
            self.cross_signing, report = await ensure_cross_signing(
                NioHttp(self.client),
                user_id=self.user_id,
                device_id=self.client.device_id,
                device_ed25519=self.client.olm.account.identity_keys["ed25519"],
                key_file=key_file,
                password=self._password,
            )
        except CrossSigningError as exc:
            raise StartupError(f"cross-signing: {exc}", EXIT_CROSS_SIGNING) from exc
        except (Transient, *TRANSPORT_ERRORS) as exc:
            raise StartupError(
                f"cross-signing: the homeserver did not answer ({type(exc).__name__})",
                EXIT_CROSS_SIGNING,
            ) from exc
        log.info(
            "cross-signing checked",
            extra={
                "new_keys": report.new_keys,
                "uploaded_keys": report.uploaded_keys,
                "password_used": report.password_used,
                "signed_device": report.signed_device,
                "requests": report.requests,
                "ms": round(report.seconds * 1000),
            },
        )

    def _load_credentials(self) -> dict[str, str] | None:
        try:
            data: dict[str, str] = json.loads(self._credentials.read_text())
            return data
        except FileNotFoundError:
            return None

    def _save_credentials(self, user_id: str, device_id: str, token: str) -> None:
        tmp = self._credentials.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"user_id": user_id, "device_id": device_id, "access_token": token}, f)
        os.replace(tmp, self._credentials)

    async def resolve(self, room: str) -> RoomID | None:
        if room.startswith("!"):
            return RoomID(room)
        resp = await self.client.room_resolve_alias(room)
        if isinstance(resp, RoomResolveAliasResponse):
            return RoomID(resp.room_id)
        log.warning("could not resolve a configured room alias", extra={"alias": room})
        return None

    async def join_configured(self, staff_room: str, lobbies: list[str]) -> None:
        self.staff_room = await self.resolve(staff_room)
        if self.staff_room:
            resp = await self.client.join(self.staff_room)
            if isinstance(resp, JoinError):
                log.warning("could not join the volunteers' room: %s", resp.status_code)
        for lobby in lobbies:
            room = await self.resolve(lobby)
            if room:
                self.lobbies.add(room)
                await self.client.join(room)

    # ----------------------------------------------------------------------------------
    # the sync loop

    @property
    def syncs(self) -> int:
        """Sync responses handled since start."""
        return self._batch

    def stop(self) -> None:
        self._stopping.set()
        self.client.stop_sync_forever()
        if self._release_timer is not None:
            self._release_timer.cancel()

    async def sync_loop(self, since: str | None) -> None:
        """Sync until stopped. Errors back off exponentially (no tight loop on 5xx)."""
        self.client.next_batch = since  # type: ignore[assignment]
        self._first_sync = since is None
        self._started_ms = int(time.time() * 1000)
        # A new device (the crypto store was lost) resuming from the database's token
        # knows no room yet: its first sync asks for every room's full state.
        full_state = True if self._new_device and since is not None else None
        sync_filter = await self._upload_filter()
        loop = asyncio.get_running_loop()
        backoff = 1.0
        while not self._stopping.is_set():
            since = self.client.next_batch
            sync = asyncio.ensure_future(
                self.client.sync(
                    # Until caught up, ask again at once rather than wait for news.
                    timeout=30_000 if self._drained else 0,
                    since=since,
                    full_state=full_state,
                    sync_filter=sync_filter,
                )
            )
            stop = asyncio.ensure_future(self._stopping.wait())
            done, _ = await asyncio.wait({sync, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                sync.cancel()
                break
            stop.cancel()
            try:
                resp = sync.result()
            except Exception:
                resp = None
            if not isinstance(resp, SyncResponse):
                self.sync_errors += 1
                code = getattr(resp, "status_code", None)
                if code == "M_UNKNOWN_TOKEN":
                    log.error("access token rejected while syncing (M_UNKNOWN_TOKEN): stopping")
                    raise StartupError("access token rejected (M_UNKNOWN_TOKEN)", EXIT_TOKEN)
                delay = backoff * (0.5 + random.random())
                log.warning("sync failed, retrying", extra={"code": code, "in_s": round(delay, 1)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                backoff = min(backoff * 2, 60.0)
                continue
            if not self._first_sync:
                try:
                    await self._fill_gaps(resp, since)
                except Transient as exc:
                    # Nothing of this batch was passed on: ask for it again.
                    self.client.next_batch = since  # type: ignore[assignment]
                    self.sync_errors += 1
                    delay = backoff * (0.5 + random.random())
                    log.warning(
                        "gap in a timeline not filled, syncing again", extra={"why": str(exc)}
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    backoff = min(backoff * 2, 60.0)
                    continue
            backoff = 1.0
            self.last_sync_ok = asyncio.get_running_loop().time()
            changed = [*resp.device_list.changed, *resp.device_list.left]
            if changed and self.on_device_change is not None:
                self.on_device_change(changed)
            self._batch += 1
            self._drained = self._drained or _quiet(resp, self._started_ms)
            began = loop.time()
            self._translate(resp)
            self._unsaved.append((self._batch, resp.next_batch))
            self._release(retry=True)
            self._first_sync = False
            full_state = None
            translated = loop.time()
            await self._housekeeping()
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "sync handled",
                    extra={
                        "rooms": len(resp.rooms.join),
                        "translate_ms": round((translated - began) * 1000),
                        "keys_ms": round((loop.time() - translated) * 1000),
                    },
                )

    async def _fill_gaps(self, resp: SyncResponse, since: str | None) -> None:
        """A room whose timeline is `limited` had more events since the last sync than
        the sync carries (after downtime, or a burst in one room): page back with
        /messages from the timeline's start to the last sync's token, and put what was
        missing in front of the timeline, so nothing written while the bot was away is
        lost or reordered. Raises `Transient` when the server does not answer."""
        if since is None:
            return
        for room_id, info in resp.rooms.join.items():
            timeline = info.timeline
            if not timeline.limited or not timeline.prev_batch:
                continue
            missing: list[Any] = []
            token = timeline.prev_batch
            for _ in range(GAP_PAGES):
                page = await check(
                    self.client.room_messages(
                        room_id, start=token, end=since, direction=MessageDirection.back, limit=100
                    )
                )
                assert isinstance(page, RoomMessagesResponse)
                missing.extend(page.chunk)  # newest first
                if not page.chunk or not page.end or page.end == token:
                    break
                token = page.end
            else:
                log.warning("a timeline gap was longer than the bot pages back")
            log.info("a timeline gap was read back", extra={"events": len(missing)})
            missing.reverse()
            timeline.events[:0] = missing

    async def _upload_filter(self) -> str | None:
        """The server-side id of the bot's sync filter; without one (the upload failed)
        the bot syncs everything, which costs CPU but loses nothing."""
        room = dict(SYNC_FILTER["room"])
        if await self._server_marks_membership():
            # The bot's own events, state included, stop waking the sync: the echo of each
            # message it sends was half of all syncs. What nio would have learnt from the
            # bot's own state events the executor tells it (`Executor.created`, `kicked`),
            # and the events from before a join are told apart by `unsigned.membership`.
            room["timeline"] = {"not_senders": [self.user_id]}
        resp = await self.client.upload_filter(
            presence=SYNC_FILTER["presence"], account_data=SYNC_FILTER["account_data"], room=room
        )
        if isinstance(resp, UploadFilterResponse):
            return str(resp.filter_id)
        log.warning("sync filter refused, syncing unfiltered", extra={"code": resp.status_code})
        return None

    async def _server_marks_membership(self) -> bool:
        """Whether the server puts the bot's membership on each event (Matrix 1.11):
        only then can the bot's own join be left out of the sync and the events from
        before it still be told apart."""
        try:
            status, body = await NioHttp(self.client).request("GET", "/_matrix/client/versions")
        except (Transient, *TRANSPORT_ERRORS):
            return False
        versions = body.get("versions", []) if status == 200 and isinstance(body, dict) else []
        return any(spec_version(v) >= (1, 11) for v in versions if isinstance(v, str))

    async def _housekeeping(self) -> None:
        c = self.client
        if c.outgoing_to_device_messages:
            await c.send_to_device_messages()
        if c.should_upload_keys:
            await c.keys_upload()
        if needs_fallback_key(self.client.unused_fallback_keys):
            self.client.unused_fallback_keys = None  # until the next sync says again
            try:
                await publish_fallback_key(c)
            except Transient as exc:
                log.warning("fallback key not published, next sync", extra={"why": str(exc)})
        if c.should_query_keys:
            await c.keys_query()
        if c.should_claim_keys:
            await c.keys_claim(c.get_users_for_key_claiming())

    # ----------------------------------------------------------------------------------
    # translation: nio events -> core inputs (pure data, see bot.matrix.translate), in order

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

    def _translate(self, resp: SyncResponse) -> None:
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
                if isinstance(event, TypingNoticeEvent) and not self._first_sync:
                    try:
                        self._on_typing(room, event)
                    except Exception as exc:
                        self._failed(exc)

        for room_id, info in resp.rooms.leave.items():
            # The bot is out of the room: it left (a conversation's end), or was kicked,
            # banned, or lost its membership in a state reset. For a room of a
            # conversation the core decides; what was written before counts first.
            room = RoomID(room_id)
            if self._first_sync or not self.rooms.is_session_room(room):
                continue
            self._timeline(room, info.timeline.events)
            log.warning("the bot is no longer in a room of a conversation")
            self._pass_on(room, Inbound(Removed(room)), self.origin_of(room))

    def _timeline(self, room: RoomID, events: list[Any]) -> None:
        if self._first_sync:
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
        # Invites are decided by the app (which knows the config); the loop only reports.
        inviter = None
        is_direct = False
        for ev in state:
            if isinstance(ev, InviteMemberEvent) and ev.state_key == self.user_id:
                inviter = user_id(ev.sender)
                content = ev.content if isinstance(ev.content, dict) else {}
                is_direct = content.get("is_direct") is True
        if inviter is not None and self.on_invite is not None:
            self.on_invite(room, inviter, is_direct)

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
        loop_time = asyncio.get_running_loop().time()
        if isinstance(event, MegolmEvent):
            if user_id(sender) is None or event_id(event.event_id) is None:
                self.skipped.add(Skip.MALFORMED)  # its sender could never be asked again
                return
            log.info("undecryptable event held for its key")
            self.undecryptable_stats["held"] += 1
            self._held.setdefault(room, []).append(
                _Held(self._batch, loop_time, origin, event=event)
            )
            return
        inp = self._read(room, event, origin)
        if inp is None:
            return
        inbound = Inbound(inp, getattr(event, "event_id", None), _sender_key(event), origin)
        self._pass_on(room, inbound, origin)

    def _pass_on(self, room: RoomID, inbound: Inbound, origin: Origin) -> None:
        if room in self._held:  # keep the room's order behind what waits for a key
            loop_time = asyncio.get_running_loop().time()
            self._held[room].append(_Held(self._batch, loop_time, origin, inbound=inbound))
        else:
            self._enqueue(inbound)

    # ----------------------------------------------------------------------------------
    # events held for their keys

    def _release(self, retry: bool) -> None:
        """Pass on what can go, in each room's order: events whose key has come (`retry`
        after a sync), events that waited out the grace period (as `Unreadable`), and
        events queued behind them; then move the checkpoint and re-arm the timer."""
        now = asyncio.get_running_loop().time()
        for room, items in list(self._held.items()):
            keep: list[_Held] = []
            blocked = False
            for item in items:
                if item.event is not None:
                    done, ready = self._decrypted(room, item) if retry else (False, None)
                    if not done and now - item.arrived >= self._grace:
                        done, ready = True, self._unreadable(room, item)
                    if not done:
                        keep.append(item)
                        blocked = blocked or now - item.arrived < HOLD
                        continue
                    item.event, item.inbound = None, ready
                if item.inbound is None:
                    continue  # decrypted into something the core ignores
                if blocked:
                    keep.append(item)
                else:
                    self._enqueue(item.inbound)
            if keep:
                self._held[room] = keep
            else:
                del self._held[room]
        self._advance_checkpoint()
        if self._drained and not self._held:
            self.caught_up.set()
        self._arm_release(now)

    def _decrypted(self, room: RoomID, item: _Held) -> tuple[bool, Inbound | None]:
        """(True, its input) once the key is there; the input is None for an event the
        core ignores, which still frees its place in the room's order."""
        event = item.event
        assert event is not None
        event.room_id = room
        try:
            clear = self.client.decrypt_event(event)
        except EncryptionError:
            return False, None
        except Exception as exc:  # its payload broke nio: it alone goes
            self._failed(exc)
            return True, None
        self.undecryptable_stats["decrypted_late"] += 1
        log.info("a held event was decrypted after its key arrived")
        try:
            inp = self._read(room, clear, item.origin)
        except Exception as exc:
            self._failed(exc)
            return True, None
        if inp is None:
            return True, None
        return True, Inbound(inp, event.event_id, _sender_key(clear), item.origin)

    def _unreadable(self, room: RoomID, item: _Held) -> Inbound:
        event = item.event
        assert event is not None
        log.warning("an event's key never came: its sender is asked to send it again")
        self.undecryptable_stats["unreadable"] += 1
        sender, event_id = UserID(event.sender), EventID(event.event_id)
        return Inbound(Unreadable(room, sender, event_id, item.origin), event.event_id)

    def _advance_checkpoint(self) -> None:
        """Save the token of the newest batch that nothing is held from (or older)."""
        oldest = min((i.batch for items in self._held.values() for i in items), default=None)
        token = None
        while self._unsaved and (oldest is None or self._unsaved[0][0] < oldest):
            token = self._unsaved.popleft()[1]
        if token is not None:
            self._enqueue(BatchEnd(token))

    def _arm_release(self, now: float) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        due = [
            i.arrived + (HOLD if now - i.arrived < HOLD else self._grace)
            for items in self._held.values()
            for i in items
            if i.event is not None
        ]
        if due and not self._stopping.is_set():
            delay = max(0.0, min(due) - now)
            self._release_timer = asyncio.get_running_loop().call_later(delay, self._release, False)


def _quiet(resp: SyncResponse, since_ms: int) -> bool:
    """A batch with nothing written before `since_ms` (the start) in it: what the bot
    missed while down came in the batches before. Synapse can send what waits for a
    device (room keys) in a batch of its own, ahead of the room events written with
    them: a batch with to-device messages is not taken as the end of the catch-up."""
    if resp.to_device_events:
        return False
    for info in resp.rooms.join.values():
        for event in info.timeline.events:
            if getattr(event, "server_timestamp", 0) < since_ms:
                return False
    return True


def _sender_key(event: Any) -> str | None:
    """The sending device's Curve25519 key, for an event that was decrypted."""
    key = getattr(event, "sender_key", None) if getattr(event, "decrypted", False) else None
    return key if isinstance(key, str) else None
