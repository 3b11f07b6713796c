"""The bot's Matrix connection, as the app sees it: one nio client and the parts that use
it, wired together.

- `bot.matrix.login`: login and identity checks, cross-signing at start.
- `bot.matrix.sync`: the sync loop, its catch-up, its filter (`bot.matrix.syncfilter`).
- `bot.matrix.batch`: a sync batch into inbox items (`bot.matrix.translate` per event).
- `bot.matrix.held`: events waiting for their Megolm key, and the checkpoint with them.
- `bot.matrix.patches`: what the bot changes in nio.

Rules: nothing outside `bot/matrix/` imports nio. The parts only enqueue; the worker
handles and saves (see `bot.matrix.sync`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from nio import AsyncClientConfig, JoinError, RoomResolveAliasResponse

from bot.core.ids import RoomID, UserID
from bot.core.rooms import RoomIndex, Rooms
from bot.inbox import BatchEnd, Inbound
from bot.matrix.batch import BatchTranslator
from bot.matrix.cryptostore import BotStore
from bot.matrix.held import HeldEvents
from bot.matrix.keyfile import CrossSigningKeys
from bot.matrix.login import log_in
from bot.matrix.patches import PatchedClient, use_compiled_schemas
from bot.matrix.sync import Syncer
from bot.matrix.translate import SkipCounts

log = logging.getLogger(__name__)


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
        read_receipts: bool = False,
    ) -> None:
        self.user_id = user_id
        self._password = password
        self._device_name = device_name
        self._display_name = display_name
        self._data_dir = data_dir
        self._store_key = store_key
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
        self.on_invite: Callable[[RoomID, UserID, bool], None] | None = None
        # Called with the users whose devices or cross-signing keys changed.
        self.on_device_change: Callable[[list[str]], None] | None = None
        held = HeldEvents(
            grace=undecryptable_grace.total_seconds(),
            clock=lambda: asyncio.get_running_loop().time(),
        )
        self.batches = BatchTranslator(
            self.client,
            user_id,
            rooms=rooms if rooms is not None else RoomIndex(),
            held=held,
            enqueue=enqueue,
            on_invite=self._invited,
        )
        self.syncer = Syncer(
            self.client,
            self.batches,
            enqueue=enqueue,
            on_device_change=self._devices_changed,
            read_receipts=read_receipts,
        )

    def _invited(self, room: RoomID, inviter: UserID, is_direct: bool) -> None:
        if self.on_invite is not None:
            self.on_invite(room, inviter, is_direct)

    def _devices_changed(self, users: list[str]) -> None:
        if self.on_device_change is not None:
            self.on_device_change(users)

    # ----------------------------------------------------------------------------------
    # start

    async def login(self) -> None:
        done = await log_in(
            self.client,
            user_id=self.user_id,
            password=self._password,
            device_name=self._device_name,
            display_name=self._display_name,
            data_dir=self._data_dir,
            store_key=self._store_key,
        )
        self._new_device, self.cross_signing = done.new_device, done.cross_signing

    async def resolve(self, room: str) -> RoomID | None:
        if room.startswith("!"):
            return RoomID(room)
        resp = await self.client.room_resolve_alias(room)
        if isinstance(resp, RoomResolveAliasResponse):
            return RoomID(resp.room_id)
        log.warning("could not resolve a configured room alias", extra={"alias": room})
        return None

    async def join_configured(self, staff_room: str, lobbies: list[str]) -> None:
        self.batches.staff_room = await self.resolve(staff_room)
        if self.batches.staff_room:
            resp = await self.client.join(self.batches.staff_room)
            if isinstance(resp, JoinError):
                log.warning("could not join the volunteers' room: %s", resp.status_code)
        for lobby in lobbies:
            room = await self.resolve(lobby)
            if room:
                self.batches.lobbies.add(room)
                await self.client.join(room)

    @property
    def staff_room(self) -> RoomID | None:
        return self.batches.staff_room

    @property
    def lobbies(self) -> set[RoomID]:
        return self.batches.lobbies

    # ----------------------------------------------------------------------------------
    # serving

    async def sync_loop(self, since: str | None) -> None:
        """Sync until stopped (see `bot.matrix.sync`)."""
        await self.syncer.run(since, new_device=self._new_device)

    def stop(self) -> None:
        self.syncer.stop()

    @property
    def caught_up(self) -> asyncio.Event:
        """Set once what was written while the bot was down is all on the inbox."""
        return self.syncer.caught_up

    @property
    def syncs(self) -> int:
        """Sync responses handled since start."""
        return self.batches.held.batch

    @property
    def sync_errors(self) -> int:
        return self.syncer.sync_errors

    @property
    def last_sync_ok(self) -> float:
        return self.syncer.last_sync_ok

    @property
    def skipped(self) -> SkipCounts:
        """Events no input came from, by reason."""
        return self.batches.skipped
