"""The sync loop: ask the server for what is new, fill gaps, hand each batch on in order,
and say when what was written while the bot was down has all come in.

Rules:
- The sync loop never handles events itself. It translates each batch into core inputs
  (`bot.matrix.batch`), puts them on the worker's inbox in timeline order, and then a
  `BatchEnd` marker: the worker saves the sync token only when it reaches the marker,
  i.e. after the whole batch is handled. nio's own token store is off
  (`store_sync_tokens=False`): nio saves its token before callbacks run, which would lose
  a batch on a crash. While an event waits for its key, the marker waits with it
  (`bot.matrix.held`).
- The sync is filtered (`bot.matrix.syncfilter`); on a Matrix 1.11 server the bot's own
  events are left out too.
- A timeline the server cut short (`limited`) is read back with /messages up to the last
  sync, so nothing written while the bot was away is lost or reordered.
- Errors back off exponentially (no tight loop on 5xx); a rejected token stops the bot.
- `caught_up` is set once the server has nothing written before this start left to give
  and all of it is on the inbox: timers that came due while the bot was down wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from nio import MessageDirection, RoomMessagesResponse, SyncResponse, UploadFilterResponse

from bot.exits import EXIT_TOKEN, StartupError
from bot.inbox import BatchEnd, Inbound
from bot.matrix.batch import BatchTranslator
from bot.matrix.errors import NO_ANSWER, check
from bot.matrix.fallback import needs_fallback_key, publish_fallback_key
from bot.matrix.keysapi import NioHttp
from bot.matrix.patches import PatchedClient
from bot.matrix.syncfilter import SYNC_FILTER, room_filter, spec_version
from bot.outcomes import Transient

log = logging.getLogger(__name__)

FIRST_RETRY = 0.25
"""Seconds before the first retry of a failed sync (randomised by half either way),
doubled each time up to a minute. Short, because the usual failure is brief: Synapse
answers 500 to an incremental sync that spans a room its admin API is deleting (a
`KeyError` in its state lookup, element-hq/synapse#18539), which the purge does for every
conversation, and every conversation waits for the retry."""

GAP_PAGES = 50
"""Pages of 100 events the bot reads back to fill one room's timeline gap (5,000 events:
far more than a conversation writes while the bot restarts)."""


class Syncer:
    def __init__(
        self,
        client: PatchedClient,
        translator: BatchTranslator,
        *,
        enqueue: Callable[[Inbound | BatchEnd], None],
        on_device_change: Callable[[list[str]], None],
        read_receipts: bool = False,
    ) -> None:
        self.client = client
        self.read_receipts = read_receipts  # `privacy.relay_read_receipts` passes some on
        self.translator = translator
        self.held = translator.held
        self._enqueue = enqueue
        self._on_device_change = on_device_change
        self.last_sync_ok: float = 0.0
        self.sync_errors = 0
        self.caught_up = asyncio.Event()
        self._drained = False
        self._started_ms = 0
        self._stopping = asyncio.Event()
        self._release_timer: asyncio.TimerHandle | None = None

    def stop(self) -> None:
        self._stopping.set()
        self.client.stop_sync_forever()
        if self._release_timer is not None:
            self._release_timer.cancel()

    async def run(self, since: str | None, *, new_device: bool) -> None:
        """Sync until stopped. `new_device`: this start made the device (see below)."""
        self.client.next_batch = since
        self.translator.first_sync = since is None
        self._started_ms = int(time.time() * 1000)
        # A new device (the crypto store was lost) resuming from the database's token
        # knows no room yet: its first sync asks for every room's full state.
        full_state = True if new_device and since is not None else None
        sync_filter = await self._upload_filter()
        loop = asyncio.get_running_loop()
        backoff = FIRST_RETRY
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
            if not self.translator.first_sync:
                try:
                    await self._fill_gaps(resp, since)
                except Transient as exc:
                    # Nothing of this batch was passed on: ask for it again.
                    self.client.next_batch = since
                    self.sync_errors += 1
                    delay = backoff * (0.5 + random.random())
                    log.warning(
                        "gap in a timeline not filled, syncing again", extra={"why": str(exc)}
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    backoff = min(backoff * 2, 60.0)
                    continue
            backoff = FIRST_RETRY
            self.last_sync_ok = asyncio.get_running_loop().time()
            changed = [*resp.device_list.changed, *resp.device_list.left]
            if changed:
                self._on_device_change(changed)
            self.held.begin_batch()
            self._drained = self._drained or quiet(resp, self._started_ms)
            began = loop.time()
            self.translator.translate(resp)
            self.held.end_batch(resp.next_batch)
            self.release(retry=True)
            self.translator.first_sync = False
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

    def release(self, retry: bool) -> None:
        """Pass on what the held events let go (`retry`: their keys may have come with
        a sync), then arm the timer for the next release the buffer asks for."""
        released = self.held.release(self.translator.decrypt if retry else None)
        for item in released.items:
            self._enqueue(item)
        if self._drained and not self.held:
            self.caught_up.set()
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        if released.wake_in is not None and not self._stopping.is_set():
            self._release_timer = asyncio.get_running_loop().call_later(
                released.wake_in, self.release, False
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
        room = room_filter(read_receipts=self.read_receipts)
        if await self._server_marks_membership():
            # The bot's own events, state included, stop waking the sync: the echo of each
            # message it sends was half of all syncs. What nio would have learnt from the
            # bot's own state events the executor tells it (`Executor.created`, `kicked`),
            # and the events from before a join are told apart by `unsigned.membership`.
            room["timeline"] = {"not_senders": [self.client.user_id]}
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
        except NO_ANSWER:
            return False
        versions = body.get("versions", []) if status == 200 and isinstance(body, dict) else []
        return any(spec_version(v) >= (1, 11) for v in versions if isinstance(v, str))

    async def _housekeeping(self) -> None:
        c = self.client
        if c.outgoing_to_device_messages:
            await c.send_to_device_messages()
        if c.should_upload_keys:
            await c.keys_upload()
        if needs_fallback_key(c.unused_fallback_keys):
            c.unused_fallback_keys = None  # until the next sync says again
            try:
                await publish_fallback_key(c)
            except Transient as exc:
                log.warning("fallback key not published, next sync", extra={"why": str(exc)})
        if c.should_query_keys:
            await c.keys_query()  # waits for the own server only (bot.matrix.keyquery)
        if c.should_claim_keys:
            # Per server, a paused one left out, another one's answer waited for 5 s at
            # most (bot.matrix.keyquery): awaited, so that two claims never race for the
            # same devices.
            await self._claim(c.get_users_for_key_claiming())

    async def _claim(self, user_set: Any) -> None:
        try:
            await self.client.keys_claim(user_set)
        except Exception as exc:  # the next sync asks again
            log.warning("keys claim failed", extra={"error": type(exc).__name__})


def quiet(resp: SyncResponse, since_ms: int) -> bool:
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
