"""The one place that wires the parts together and runs the service.

Order of start: logging, the data-dir lock (a second instance refuses), the database
(migrations), the core from stored state, the Matrix login with identity checks, the
configured rooms, the timers re-armed from storage, the outbox left by a crash carried
out, then the sync loop and the worker. SIGTERM or SIGINT: the sync loop stops, the worker
finishes what it has, the database is checkpointed, exit 0. SIGHUP: the config file is
read again (`bot.reload`), as an admin's `!reload` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import random
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config import (
    ChatterDevices,
    Config,
    ConfigErrors,
    ConfigProblem,
    load_config,
)
from bot.core.events import ChatterUnverified, IdentityChanged, PolicyChanged, Text
from bot.core.ids import RoomID, UserID
from bot.core.machine import Helpline
from bot.core.model import Policy
from bot.core.rooms import RoomIndex
from bot.exits import EXIT_CONFIG, EXIT_LOCKED, EXIT_UNEXPECTED, StartupError
from bot.http import Health, HttpEndpoint, HttpStartError
from bot.inbox import Inbound
from bot.logs import setup as setup_logging
from bot.matrix.connection import Connection
from bot.matrix.executor import Executor
from bot.matrix.invites import InviteGate
from bot.matrix.media import MediaCopier
from bot.matrix.purge import Purger
from bot.matrix.trust import TrustNotAvailable
from bot.matrix.trust import build as build_trust
from bot.matrix.trust import policy as trust_policy
from bot.messages import Texts
from bot.metrics import Metrics
from bot.outcomes import Reloaded
from bot.reload import Reloader, WithReload
from bot.scheduler import Timers
from bot.storage.db import open_database
from bot.storage.events import Checkpoint, EventLog
from bot.storage.migrations import SchemaTooNew, upgrade
from bot.storage.outbox import OutboxRepo
from bot.storage.pins import Pins
from bot.storage.purges import MediaSeen, PurgeJobs
from bot.storage.state import StateRepo
from bot.webchat.run import start_webchat
from bot.worker.loop import Worker
from bot.worker.retry import PurgeBackoff

log = logging.getLogger("bot")


class DataDirLock:
    """One bot per data dir: two would answer every chatter twice."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "helpline-bot.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def run(
    config: Config,
    args: argparse.Namespace | None = None,
    *,
    purge_pause_after: str | None = None,
) -> int:
    """`helpline-bot run`. `purge_pause_after`: a test's hook (see `Purger`), passed by
    `bot.devtools.child` only; the command line has no way to set it."""
    level = getattr(args, "log_level", None) or config.logging.level
    setup_logging(level, config.logging.json)
    path = getattr(args, "config", None)
    try:
        return asyncio.run(
            serve(
                config,
                config_path=Path(path) if path else None,
                purge_pause_after=purge_pause_after,
            )
        )
    except StartupError as exc:
        print(f"helpline-bot: {exc}", file=sys.stderr)
        return exc.exit_code
    except TrustNotAvailable as exc:
        print(f"helpline-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SchemaTooNew as exc:
        print(f"helpline-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except HttpStartError as exc:
        print(f"helpline-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        # Anything else: one line with the error's class, never its message or a
        # traceback, which could carry an ID or a message's words. The log has more.
        log.error("stopped by an unexpected error", exc_info=exc)
        print(
            f"helpline-bot: stopped by an unexpected error ({type(exc).__name__})", file=sys.stderr
        )
        return EXIT_UNEXPECTED


def _now() -> datetime:
    return datetime.now(UTC)


async def serve(
    config: Config,
    ready: asyncio.Event | None = None,
    *,
    config_path: Path | None = None,
    purge_backoff: PurgeBackoff | None = None,
    purge_pause_after: str | None = None,
) -> int:
    """The service. `config_path`: the file `config` was read from, read again on
    `!reload` and SIGHUP; `purge_backoff`: how a failing purge is retried (tests shorten
    it); `purge_pause_after`: a step after which a purge stops and waits (tests kill the
    bot there)."""
    trust = trust_policy(str(config.encryption.trust))
    data_dir = Path(config.storage.data_dir)
    # Everything the bot writes is its own only: the database and its -wal/-shm, nio's
    # store and journal, credentials, cross-signing keys, the lock. Restored on return
    # (the tests run the bot inside their own process).
    umask = os.umask(0o077)
    try:
        # Once, at start, on a local disk: a thread for it would cost more than the call.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # noqa: ASYNC240
        restrict_modes(data_dir)
        lock = DataDirLock(data_dir)
        if not lock.acquire():
            print(
                f"helpline-bot: another instance is running on {data_dir} (lock {lock.path})",
                file=sys.stderr,
            )
            return EXIT_LOCKED
        db = await open_database(data_dir / "helpline.db")
        try:
            await upgrade(db)
            read = _reader(config_path)
            return await _serve(config, read, db, trust, ready, purge_backoff, purge_pause_after)
        finally:
            await db.close()
            lock.release()
    finally:
        os.umask(umask)


def _reader(path: Path | None) -> Callable[[], Config]:
    """What reads the config file again; without a file, a reload is refused with why."""

    def read() -> Config:
        if path is None:
            raise ConfigErrors(
                [ConfigProblem("", None, "a config file to read again", "none: started without")]
            )
        return load_config(path)

    return read


def restrict_modes(data_dir: Path) -> int:
    """Make the data dir and everything in it the bot user's only (dirs 0700, files
    0600), as an older release or a copied backup may have left them readable by
    others. Symbolic links are left alone (never followed). Returns how many changed."""
    changed = 0
    for root, dirs, files in os.walk(data_dir):
        for name, mode in (
            [(root, 0o700)]
            + [(os.path.join(root, d), 0o700) for d in dirs]
            + [(os.path.join(root, f), 0o600) for f in files]
        ):
            st = os.lstat(name)
            if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
                continue
            os.chmod(name, mode)
            changed += 1
    if changed:
        log.info("data dir modes tightened", extra={"paths": changed})
    return changed


async def _serve(
    config: Config,
    read: Callable[[], Config],
    db: Any,
    trust: Any,
    ready: asyncio.Event | None,
    purge_backoff: PurgeBackoff | None = None,
    purge_pause_after: str | None = None,
) -> int:
    stored = await StateRepo(db).load()
    rooms = RoomIndex(stored.sessions)
    inbox = _Forward()
    conn = Connection(
        homeserver=config.homeserver.url,
        user_id=config.bot.user_id,
        password=config.bot.password,
        device_name=config.bot.device_name,
        display_name=config.bot.display_name,
        data_dir=Path(config.storage.data_dir),
        store_key=config.storage.store_key,
        enqueue=inbox.put,
        rooms=rooms,
        undecryptable_grace=config.encryption.undecryptable_grace,
        read_receipts=config.privacy.relay_read_receipts.to_chatter,
    )
    purger = Purger(
        conn.client,
        jobs=PurgeJobs(db),
        media=MediaSeen(db),
        homeserver=config.homeserver.url,
        admin_token=config.homeserver.admin_token,
        clock=_now,
        pause_after=purge_pause_after,
    )
    try:
        await conn.login()
        await conn.join_configured(config.volunteers.room, list(config.intake.lobby_rooms))
        reloader = Reloader(read, config, conn.staff_room)
        parts = _worker(config, db, trust, reloader, conn, purger, stored, rooms, purge_backoff)
        inbox.worker = parts.worker
        return await _run(config, db, reloader, conn, parts, stored, ready)
    finally:
        await purger.close()
        await conn.client.close()


class _Forward:
    """The worker's inbox for the parts made before the worker (the connection)."""

    worker: Worker | None = None

    def put(self, item: Any) -> None:
        assert self.worker is not None, "an input before the worker exists"
        self.worker.put(item)


def _worker(
    config: Config,
    db: Any,
    trust: Any,
    reloader: Reloader,
    conn: Connection,
    purger: Purger,
    stored: Any,
    rooms: RoomIndex,
    purge_backoff: PurgeBackoff | None,
) -> _Parts:
    """The core rebuilt from storage, the trust policy and the executor, in a worker.
    What reads the policy reads `reloader.policy`, the one a reload replaces."""
    worker: Worker

    def enqueue(item: Any) -> None:
        worker.put(item)

    def build_core(state: Any) -> Helpline:
        return Helpline(
            reloader.policy,
            random.SystemRandom(),
            sessions=state.sessions,
            volunteers=state.volunteers,
            timers=state.timers,
            counters=state.counters,
            blocks=state.blocks,
        )

    async def restore_core() -> Helpline:
        return build_core(await StateRepo(db).load())

    trust_policy = build_trust(
        trust,
        pins=Pins(db),
        pin_key=reloader.policy.block_key,  # a restart-only setting
        is_staff=lambda user: reloader.policy.is_staff(UserID(user)) or user == config.bot.user_id,
        # A staff member's changed identity is told to the supervisors by the core.
        on_identity_change=lambda user: enqueue(Inbound(IdentityChanged(UserID(user)))),
        chatter_fallback=(config.encryption.chatter_devices is ChatterDevices.FALLBACK_TO_UNSIGNED),
        on_unverified_chatter=lambda user, room: enqueue(
            Inbound(ChatterUnverified(RoomID(room), UserID(user)))
        ),
    )
    conn.on_device_change = trust_policy.forget
    executor = Executor(
        conn.client,
        texts=_texts(config),
        rooms=rooms,
        trust=trust_policy,
        retention=config.privacy.retention_max_lifetime,
        bot_user=config.bot.user_id,
        purge=purger,
        redact_room=purger.redact_room,
        media=MediaCopier(conn.client, config.privacy.media)
        if config.privacy.relay_media
        else None,
    )
    reloader.watch(lambda new, _: setattr(executor, "texts", _texts(new)))
    timers = Timers(fire=lambda t: enqueue(Inbound(t)))
    metrics = Metrics(
        status=lambda: worker.core.status(_now()),
        sync_errors=lambda: conn.sync_errors,
        syncs=lambda: conn.syncs,
        skipped=conn.skipped,
    )
    worker = Worker(
        core=build_core(stored),
        db=db,
        runner=WithReload(executor, reloader),
        timers=timers,
        clock=_now,
        rooms=rooms,
        observer=metrics,
        vouch=lambda user, key: trust_policy.vouches(conn.client, user, key),
        restore=restore_core,
        purge_backoff=purge_backoff,
    )
    return _Parts(worker, timers, metrics)


def _texts(config: Config) -> Texts:
    return Texts(
        config.messages,
        default_language=config.language.default,
        bot_name=config.bot.display_name,
    )


@dataclass(frozen=True, slots=True)
class _Parts:
    worker: Worker
    timers: Timers
    metrics: Metrics


async def _run(
    config: Config,
    db: Any,
    reloader: Reloader,
    conn: Connection,
    parts: _Parts,
    stored: Any,
    ready: asyncio.Event | None,
) -> int:
    """Serve until SIGTERM/SIGINT or until the sync loop or the worker stops; the exit
    code."""
    worker, timers, metrics = parts.worker, parts.timers, parts.metrics
    syncing: list[asyncio.Task[None]] = []
    health = Health(
        sync_running=lambda: bool(syncing) and not syncing[0].done(),
        last_sync_ok=lambda: conn.last_sync_ok,
        db_writable=db.check_writable,
        worker=worker.health,
    )
    http = HttpEndpoint(config.http.host, config.http.port, health, metrics)
    await http.start()
    web = await start_webchat(config, db, worker) if config.webchat.enabled else None
    invites = InviteGate(
        conn.client,
        reloader.policy,
        configured=lambda room: room == conn.staff_room or room in conn.lobbies,
        refusal=_other_server_reason(config, reloader.policy),
    )
    conn.on_invite = invites.on_invite

    def reloaded_invites(new: Config, policy: Policy) -> None:
        invites.policy = policy
        invites.refusal = _other_server_reason(new, policy)

    reloader.watch(reloaded_invites)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hangups: set[asyncio.Task[None]] = set()

    def hangup() -> None:
        task = asyncio.create_task(_reload_on_hangup(reloader, worker), name="reload on SIGHUP")
        hangups.add(task)
        task.add_done_callback(hangups.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)

    timers.start(stored.timers, after=conn.caught_up)
    unparked = await OutboxRepo(db).unpark_all()
    if unparked:
        log.warning("parked effects are tried again", extra={"count": unparked})
    since = await Checkpoint(db).get()
    worker_task = asyncio.create_task(worker.run(), name="worker")
    prune_task = asyncio.create_task(
        prune_events(db, DEDUPE_MARGIN + config.encryption.undecryptable_grace),
        name="prune processed events",
    )
    sync_task = asyncio.create_task(conn.sync_loop(since), name="sync")
    syncing.append(sync_task)
    log.info(
        "serving",
        extra={
            "sessions": len(stored.sessions),
            "timers": len(stored.timers),
            "resumed": since is not None,
        },
    )
    if ready is not None:
        ready.set()
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait(
        {stop_task, sync_task, worker_task}, return_when=asyncio.FIRST_COMPLETED
    )
    code = 0
    if sync_task in done and sync_task.exception() is not None:
        exc = sync_task.exception()
        log.error("sync loop stopped", extra={"why": type(exc).__name__})
        code = exc.exit_code if isinstance(exc, StartupError) else 1
    # Stopping, in the order that loses nothing: no new input, the step in hand finished
    # (what was not carried out stays in the outbox), then the rest.
    loop.remove_signal_handler(signal.SIGHUP)
    conn.stop()
    if not sync_task.done():
        sync_task.cancel()
    worker.inbox.put_nowait(None)
    try:
        await asyncio.wait_for(worker_task, 30)
    except TimeoutError:
        worker_task.cancel()
    prune_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await prune_task
    timers.shutdown()
    await http.stop()
    if web is not None:
        await web.stop()
    await invites.close()
    stop_task.cancel()
    log.info("stopped", extra={"handled": worker.handled})
    return code


async def _reload_on_hangup(reloader: Reloader, worker: Worker) -> None:
    """SIGHUP: the config file read again; a good one reaches the core as for `!reload`,
    with nobody to tell. A bad one is only logged (by the reloader)."""
    try:
        outcome = await reloader.reload()
    except Exception as exc:
        log.error("reloading the config failed", extra={"why": type(exc).__name__})
        return
    if isinstance(outcome, Reloaded):
        worker.put(Inbound(PolicyChanged(outcome.policy, restart=outcome.restart)))


PRUNE_EVERY = 60.0  # seconds between two prunes of processed_events
# How long before the saved checkpoint an event ID is still kept, beyond the longest wait
# of an undecryptable event for its key (added to it): a later batch's events can be
# handled that long before the checkpoint that covers them is saved.
DEDUPE_MARGIN = timedelta(minutes=5)


async def prune_events(db: Any, margin: timedelta, every: float = PRUNE_EVERY) -> None:
    """Every `every` seconds, off the relay path: forget the processed event IDs no replay
    can bring back (`EventLog.prune_settled`) and scrub them out of the files."""
    events = EventLog(db)
    while True:
        try:
            if await events.prune_settled(margin):
                await db.scrub()
        except Exception as exc:
            log.warning("pruning processed events failed", extra={"why": type(exc).__name__})
        await asyncio.sleep(every)


def _other_server_reason(config: Config, policy: Policy) -> str | None:
    """What a DM invite from a server the line does not serve is rejected with (the
    core's own words for it, in the default language), or None when every server is."""
    if "*" in policy.allowed_servers:
        return None
    texts = Texts(
        config.messages, default_language=config.language.default, bot_name=policy.bot_name
    )
    servers = ", ".join(sorted(policy.allowed_servers))
    if policy.web_chat_url:
        text = Text("intake.other_server_web", {"server": servers, "url": policy.web_chat_url})
    else:
        text = Text("intake.other_server", {"server": servers})
    return texts.render(text, config.language.default)
