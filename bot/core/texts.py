"""Every text the core can say: its key, and the params the core passes with it.

The core never builds a sentence: it emits `Say(to, Text(key, params), language)`, and
`bot.messages` holds the words for each key, per language. This table is the core's side
of that contract: `Bookkeeping._say` refuses a key that is not here, or params other
than the ones declared for it, so the core cannot emit a text this table does not list.
`tests/unit/test_messages.py` checks the other side: every key here has a text in every
language, and every placeholder of that text is a param passed here.

The keys that depend on a value are built by the functions below (one per family), never
by hand, so that each family's keys are listed from the same function.

Adding a text: a key here (with its params), its words in `bot/messages.py` (both
languages, and `PARAMS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bot.core.model import Outcome


def _p(*names: str) -> frozenset[str]:
    return frozenset(names)


STATUS = _p("waiting", "longest_wait_minutes", "on_duty", "active", "offers", "ending")
"""What `!status` reports (the fields of `Bookkeeping.status`)."""

REJECTIONS = (Outcome.CLOSED_HOURS, Outcome.QUEUE_FULL)
"""The outcomes of a conversation refused at intake, each with its `reject.*` text (said
by `Bookkeeping._say_rejection`)."""

END_VOLUNTEER = _p("number", "topics", "by")


def end_chatter_key(outcome: Outcome) -> str:
    """What the chatter reads when their conversation ends this way."""
    return f"end.chatter.{outcome.value}"


def end_volunteer_key(outcome: Outcome) -> str:
    """What the volunteer reads when their conversation ends this way."""
    return f"end.volunteer.{outcome.value}"


def reject_key(outcome: Outcome) -> str:
    """Why a conversation cannot start (closed, queue full)."""
    if outcome not in REJECTIONS:
        raise ValueError(f"not a rejection: {outcome.value}")
    return f"reject.{outcome.value}"


def canned_key(name: str) -> str:
    """A canned reply a volunteer sends with !say: the names are the organisation's
    (`Policy.canned`), their words in the config or the catalogue; no params."""
    return f"canned.{name}"


SAYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "accepted.chatter": _p("alias"),
        "accepted.volunteer": _p("language", "minutes", "number", "requeued", "waited"),
        "alert.sent": _p(),
        "block.done": _p("number", "until"),
        "block.done_permanent": _p("number"),
        "block.unknown": _p("number"),
        "block.volunteer": _p("number"),
        "blocked.direct": _p(),
        "blocked.lobby": _p(),
        "canned.unknown": _p("names"),
        "consent": _p(),
        "duty.not_volunteer": _p(),
        "duty.off": _p("active", "alias"),
        "duty.off_ask": _p("number"),
        "duty.on": _p("alias", "waiting"),
        "extend.chatter": _p("minutes"),
        "extend.done": _p("left", "minutes"),
        "extend.none_left": _p(),
        "handback.done": _p("number"),
        "held": _p(),
        "held_full": _p(),
        "help": _p("lines"),
        "idle.volunteer": _p("minutes"),
        "idle.warning": _p("minutes"),
        "intake.already_invited": _p(),
        "intake.already_open": _p(),
        "intake.daily_cap": _p(),
        "intake.invited": _p(),
        "intake.invited_plaintext": _p(),
        "intake.plaintext_refused": _p(),
        "intake.other_server": _p("server"),
        "intake.other_server_web": _p("server", "url"),
        "intake.room_failed": _p(),
        "language.set": _p(),
        "language.unknown": _p("available"),
        "media_refused": _p(),
        "media.broken": _p(),
        "media.not_yet": _p(),
        "media.too_big": _p("limit"),
        "media.type": _p("types"),
        "not_active": _p(),
        "not_delivered_ended": _p(),
        "queue.update": _p("minutes", "position"),
        "rate_limited": _p(),
        "rating.ask": _p(),
        "rating.thanks": _p(),
        "requeued": _p(),
        "staff.alert": _p("alias", "minutes", "number"),
        "staff.dm_hint": _p(),
        "staff.identity_changed": _p("name"),
        "staff.lapsed_off_duty": _p("alias", "lapses"),
        "staff.purge_failed": _p("number"),
        "staff.purge_retrying": _p("number"),
        "staff.requeued": _p("language", "number"),
        "staff.still_waiting": _p("language", "minutes", "number"),
        "staff.waiting": _p("language", "number"),
        "status": STATUS,
        "supervisors_only": _p(),
        "tag.saved": _p("tags"),
        "tag.unknown": _p("topics", "unknown"),
        "time": _p("elapsed", "extension_left", "left"),
        "too_long": _p("length", "limit"),
        "unblock.done": _p("number"),
        "unblock.unknown": _p("number"),
        "unknown_command": _p(),
        "unreadable.chatter": _p(),
        "unreadable.own": _p(),
        "unreadable.volunteer": _p("number"),
        "untrusted.own": _p(),
        "unverified.device": _p("number"),
        "usage": _p("usage"),
        "warn.chatter": _p("minutes"),
        "warn.volunteer": _p("extension_left", "minutes"),
        "welcome": _p("minutes", "position"),
        "welcome.nobody_on_duty": _p("minutes", "position"),
        # transfer and the handover note (bot.core.transfer)
        "transfer.asked": _p("alias", "number"),
        "transfer.chatter": _p(),
        "transfer.done": _p("alias", "number"),
        "transfer.incoming": _p("alias", "number"),
        "transfer.lost": _p("alias", "number"),
        "transfer.nobody": _p("number"),
        "transfer.pending": _p("alias"),
        "transfer.unavailable": _p("alias"),
        "note.handover": _p("note"),
        "note.saved": _p(),
        # supervisors at the volunteer's side, and a silent volunteer (bot.core.supervision)
        "duty.supervisor_off": _p(),
        "duty.supervisor_on": _p(),
        "join.already": _p("number"),
        "join.invited": _p("number"),
        "join.own": _p("number"),
        "join.unknown": _p("number"),
        "supervision.chatter": _p(),
        "supervision.joined": _p("name"),
        "supervision.left": _p("name"),
        "silence.nudge": _p("minutes"),
        "staff.silence": _p("alias", "minutes", "number"),
        # the admins' (bot.core.admin)
        "admins_only": _p(),
        "reload.done": _p("added", "removed"),
        "reload.refused": _p("problems"),
        "reload.restart": _p("keys"),
        # the care for volunteers (bot.core.care)
        "debrief.volunteer": _p(),
        "shift.off": _p("conversations"),
        "shift.on": _p("conversations", "minutes", "open", "since"),
        "staff.debrief": _p("alias"),
        "status.full": _p(
            "longest_wait_minutes", "off_duty_aliases", "offers", "on_duty_aliases", "waiting"
        ),
        **{end_chatter_key(o): _p() for o in Outcome},
        **{end_volunteer_key(o): END_VOLUNTEER for o in Outcome},
        # closed: when it opens next (`hours.opening`), or None
        reject_key(Outcome.CLOSED_HOURS): _p("opens"),
        reject_key(Outcome.QUEUE_FULL): _p(),
    }
)


class UndeclaredText(ValueError):
    """The core tried to say something this table does not declare: a bug, found by the
    tests of the rule that said it."""


def check(key: str, params: Mapping[str, object]) -> None:
    declared = SAYS.get(key)
    if declared is None:
        raise UndeclaredText(f"no such text: {key}")
    if set(params) != declared:
        raise UndeclaredText(f"{key} takes {sorted(declared)}, was given {sorted(params)}")
