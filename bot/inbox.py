"""What arrives at the worker, in one queue: inputs from the sync loop and the timers, the
end of each sync batch, and the results of effects carried out in the lanes.

The worker takes them one at a time, so the core and the database are only ever changed
by one step at a time, whatever number of effects are in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bot.core.events import Effect, Input, Origin
from bot.outcomes import Outcome


@dataclass(frozen=True, slots=True)
class Inbound:
    """A core input with the event ID that produced it (for de-duplication), if any.

    `sender_key`: for a decrypted event, the Curve25519 key of the device that sent it,
    so that the worker can refuse what a device its owner has not cross-signed wrote (as
    Element does); `origin` goes with it, for the answer."""

    input: Input
    event_id: str | None = None
    sender_key: str | None = None
    origin: Origin = Origin.OTHER


@dataclass(frozen=True, slots=True)
class BatchEnd:
    """Everything before it on the inbox belongs to the sync batch ending at `token`: the
    worker saves the token once it has handled them."""

    token: str


@dataclass(frozen=True, slots=True)
class Parked:
    """An effect failed for an unexpected reason too many times: set it aside. `error` is
    the exception's class name (never its message, which can carry anything)."""

    error: str


@dataclass(frozen=True, slots=True)
class EffectDone:
    """A lane carried out outbox row `row_id`; the worker records `outcome` and then
    resolves `recorded`, and only then does the lane go on with its next effect (which may
    need what this one made: a room)."""

    row: Any  # storage's OutboxRow; typed loosely so the inbox does not import storage
    effect: Effect | None  # None: the row could not be read
    outcome: Outcome | Parked
    recorded: asyncio.Future[None] = field(compare=False)


Item = Inbound | BatchEnd | EffectDone | None
"""None stops the worker."""
