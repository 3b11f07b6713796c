"""What the worker makes of a carried-out effect: the input that follows from its outcome
(a created room, a finished purge, a lost room), and what is written with its row when the
row is marked done (the relay map, the end of a room creation's attempts)."""

from __future__ import annotations

import logging

from bot.core.events import (
    CreateRoom,
    Effect,
    Input,
    MediaRefused,
    PolicyChanged,
    Purge,
    PurgeFinished,
    Relay,
    RelayMedia,
    Reload,
    ReloadRefused,
    Removed,
    RoomCreated,
    RoomFailed,
)
from bot.inbox import EffectDone
from bot.outcomes import (
    Lost,
    MediaRejected,
    MediaRelayed,
    Outcome,
    Purged,
    Refused,
    Reloaded,
    ReloadFailed,
    RoomMade,
    Sent,
)
from bot.storage.db import Tx
from bot.storage.events import RelayMap
from bot.storage.outbox import Attempts, OutboxRepo
from bot.storage.purges import MediaSeen

log = logging.getLogger("bot.worker")  # one logger for the whole worker, as before its split


def follow_up(effect: Effect, outcome: Outcome) -> Input | None:
    """The input for the core that an outcome makes, if any; logs a refusal or a loss."""
    if isinstance(effect, CreateRoom):
        ref = effect.ref
        if isinstance(outcome, RoomMade):
            return RoomCreated(ref.session_id, ref.offer_id, outcome.room)
        if isinstance(outcome, Refused):
            log.error("room creation refused", extra={"code": outcome.code})
            return RoomFailed(ref.session_id, ref.offer_id)
        return None
    if isinstance(outcome, MediaRejected) and isinstance(effect, RelayMedia):
        return MediaRefused(effect.back, outcome.problem)
    if isinstance(outcome, MediaRelayed):
        return follow_up(effect, outcome.then)
    if isinstance(outcome, Purged) and isinstance(effect, Purge):
        return PurgeFinished(effect.session_id, outcome.result)
    if isinstance(effect, Reload):
        if isinstance(outcome, Reloaded):
            return PolicyChanged(outcome.policy, effect.to, effect.by, outcome.restart)
        if isinstance(outcome, ReloadFailed):
            return ReloadRefused(effect.to, effect.by, outcome.problems)
    if isinstance(outcome, Lost):
        log.warning(
            "the bot is no longer in a room of a conversation", extra={"effect": _name(effect)}
        )
        return Removed(outcome.room)
    if isinstance(outcome, Refused):
        log.warning("effect refused", extra={"effect": _name(effect), "code": outcome.code})
    return None


async def write_done(
    done: EffectDone,
    tx: Tx,
    *,
    outbox: OutboxRepo,
    attempts: Attempts,
    relay_map: RelayMap,
    media: MediaSeen,
) -> None:
    """Mark the row done, with what must be remembered of it."""
    effect, outcome = done.effect, done.outcome
    await outbox.done(done.row.id, tx=tx)
    if isinstance(effect, CreateRoom):
        await attempts.clear(done.row.txn_id, tx=tx)
    if isinstance(effect, RelayMedia) and isinstance(outcome, MediaRelayed):
        # The bot's own upload: the purge deletes it, as the bot is its uploader.
        sid = effect.to.session_id
        await media.record(sid, outcome.mxc, outcome.uploader, tx=tx)
        if isinstance(outcome.then, Sent):
            sent = outcome.then
            await relay_map.record(sid, effect.source, sent.room, sent.event_id, tx=tx)
    if isinstance(effect, Relay) and isinstance(outcome, Sent):
        await relay_map.record(
            effect.to.session_id, effect.source, outcome.room, outcome.event_id, tx=tx
        )


def _name(effect: Effect | None) -> str:
    return type(effect).__name__
