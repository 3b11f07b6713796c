"""Commands, declared as a table.

Each command has a Norwegian and an English name, an audience (who may use it, and
where), an argument pattern and a help key. `parse` turns a message body into a `Command`
or a `Usage` (the right command with a bad argument: the user gets its usage line back), or
None when the body is not a command at all. `!help` output is generated from this table,
so a command cannot exist without being documented.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Audience(enum.Enum):
    CHATTER = "chatter"  # in the chatter's conversation room
    VOLUNTEER = "volunteer"  # in a volunteer's conversation room
    STAFF = "staff"  # in the volunteers' room or a DM with the bot


class Arg(enum.Enum):
    NONE = "none"  # no argument allowed
    WORD = "word"  # exactly one word
    OPTIONAL_DURATION = "optional_duration"  # e.g. 10m, 15, 1h; may be absent
    WORDS = "words"  # one or more words


@dataclass(frozen=True, slots=True)
class Spec:
    name: str  # canonical (English) name, used in code
    names: tuple[str, ...]  # every accepted spelling, Norwegian first
    audience: frozenset[Audience]
    arg: Arg = Arg.NONE
    usage: str = ""  # argument part of the usage line, e.g. "NAME"


def _spec(
    name: str, names: tuple[str, ...], *aud: Audience, arg: Arg = Arg.NONE, usage: str = ""
) -> Spec:
    return Spec(name, names, frozenset(aud), arg, usage)


C, V, S = Audience.CHATTER, Audience.VOLUNTEER, Audience.STAFF

TABLE: tuple[Spec, ...] = (
    _spec("end", ("slutt", "end", "avslutt"), C, V),
    _spec("delete", ("slett", "delete"), C),
    _spec("language", ("språk", "sprak", "language", "lang"), C, arg=Arg.WORD, usage="nb|en"),
    _spec("yes", ("ja", "yes"), C),
    _spec("help", ("hjelp", "help"), C, V, S),
    _spec("on", ("på", "pa", "on"), S),
    _spec("off", ("av", "off"), S),
    _spec("status", ("status",), V, S),
    _spec("extend", ("forleng", "extend"), V, arg=Arg.OPTIONAL_DURATION, usage="[10m]"),
    _spec("time", ("tid", "time"), V),
    _spec("say", ("svar", "say"), V, arg=Arg.WORD, usage="NAME"),
    _spec("tag", ("tema", "tag"), V, arg=Arg.WORDS, usage="TOPIC [TOPIC ...]"),
    _spec("handback", ("tilbake", "handback"), V),
    _spec("alert", ("hjelp-veileder", "alert"), V),
)

_BY_NAME: dict[str, Spec] = {n: spec for spec in TABLE for n in spec.names}
_DURATION = re.compile(r"^(\d{1,4})\s*(m|min|h|t)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...] = ()
    minutes: int | None = None  # for OPTIONAL_DURATION


@dataclass(frozen=True, slots=True)
class Usage:
    """The body named a command but its argument was wrong (or it is not for this user)."""

    spec: Spec
    wrong_place: bool = False


def parse(body: str, audience: Audience) -> Command | Usage | None:
    """Parse `body` as a command for `audience`.

    Only a body starting with `!` can be a command. A chatter's `!!!` or `!hei` is not a
    command and returns None (it is relayed as text); a volunteer's unknown `!xyz` is
    also None here, and the caller decides what to tell them.
    """
    text = body.strip()
    if not text.startswith("!") or len(text) < 2:
        return None
    head, _, rest = text[1:].partition(" ")
    spec = _BY_NAME.get(head.casefold())
    if spec is None:
        return None
    if audience not in spec.audience:
        return Usage(spec, wrong_place=True)
    args = tuple(rest.split())
    if spec.arg is Arg.NONE:
        return Command(spec.name) if not args else Usage(spec)
    if spec.arg is Arg.WORD:
        return Command(spec.name, args) if len(args) == 1 else Usage(spec)
    if spec.arg is Arg.WORDS:
        return Command(spec.name, args) if args else Usage(spec)
    # OPTIONAL_DURATION
    if not args:
        return Command(spec.name)
    match = _DURATION.match(" ".join(args))
    if match is None:
        return Usage(spec)
    value = int(match.group(1))
    unit = (match.group(2) or "m").lower()
    minutes = value * 60 if unit in ("h", "t") else value
    return Command(spec.name, args, minutes) if minutes > 0 else Usage(spec)


def usage_line(spec: Spec, language: str) -> str:
    name = spec.names[0] if language == "nb" else _english_name(spec)
    return f"!{name} {spec.usage}".rstrip()


def _english_name(spec: Spec) -> str:
    return spec.name if spec.name in spec.names else spec.names[-1]


def help_lines(audience: Audience, language: str) -> list[tuple[str, str]]:
    """(usage line, help key) for every command open to `audience`, in table order."""
    return [
        (usage_line(spec, language), f"help.{spec.name}")
        for spec in TABLE
        if audience in spec.audience
    ]


def is_command_like(body: str) -> bool:
    """True for a body that looks like an attempt at a command (`!word`)."""
    text = body.strip()
    return len(text) > 1 and text[0] == "!" and text[1].isalpha()
