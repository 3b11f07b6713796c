"""What carrying out one effect came to, as plain data.

The Matrix side (`bot.matrix.executor`) only talks to Matrix and returns one of these;
the worker records what follows from it (the relay map, the follow-up input, the row
done or parked) in the transaction that marks the effect's outbox row done. So effects
flow one way: core -> outbox -> executor -> outcome -> worker -> database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.ids import EventID, RoomID, UserID
from bot.core.media import MediaProblem
from bot.core.model import Policy


@dataclass(frozen=True, slots=True)
class Done:
    """Carried out; nothing to record."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A message went out as `event_id` in `room` (relayed copies are remembered, to
    mirror edits and redactions)."""

    room: RoomID
    event_id: EventID


@dataclass(frozen=True, slots=True)
class RoomMade:
    room: RoomID


@dataclass(frozen=True, slots=True)
class Refused:
    """The homeserver refused the effect for good (an M_ error code, never its text,
    which can name users or rooms)."""

    code: str


@dataclass(frozen=True, slots=True)
class Purged:
    result: str


@dataclass(frozen=True, slots=True)
class Lost:
    """Refused because the bot is no longer in `room` (asked of the server, not read from
    the refusal's text): kicked, banned, or a state reset, which no sync tells of."""

    room: RoomID


@dataclass(frozen=True, slots=True)
class MediaRelayed:
    """An attachment went to the homeserver as a new file, `mxc`, uploaded by `uploader`
    (the bot): it is the conversation's to purge, whatever came of the message that
    carries it (`then`: sent, refused, or the room lost)."""

    mxc: str
    uploader: UserID
    then: Sent | Refused | Lost


@dataclass(frozen=True, slots=True)
class MediaRejected:
    """The attachment's bytes may not be passed on (or could not be read): nothing was
    uploaded or sent; its sender is told why."""

    problem: MediaProblem


@dataclass(frozen=True, slots=True)
class Reloaded:
    """The config file was read again and found good (`bot.reload`): the core's new
    policy, and the key paths that changed but need a restart."""

    policy: Policy
    restart: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReloadFailed:
    """The config file read again has `problems` (logged with their lines); nothing
    changed."""

    problems: int


Outcome = (
    Done
    | Sent
    | RoomMade
    | Refused
    | Purged
    | Lost
    | MediaRelayed
    | MediaRejected
    | Reloaded
    | ReloadFailed
)


@dataclass(frozen=True, slots=True)
class Known:
    """What the worker looked up for an effect before it runs: the relayed copy an edit or
    a redaction mirrors, the original a read receipt goes on, and whether an earlier
    attempt of a room creation may have made the room already (a crash between the
    server's answer and the stored result)."""

    relayed: EventID | None = None
    retry: bool = False
    original: EventID | None = None


class Transient(Exception):
    """Try this effect again later (transport error, 5xx, 429): never dropped."""


class EffectRunner(Protocol):
    """Carries out one effect with its stored transaction ID. Raises `Transient` to be
    tried again; any other exception is unexpected (a bug, a poisoned row): tried a few
    times, then parked."""

    async def run(self, effect: Any, txn_id: str, known: Known) -> Outcome: ...
