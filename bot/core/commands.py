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
from datetime import timedelta


class Audience(enum.Enum):
    CHATTER = "chatter"  # in the chatter's conversation room
    VOLUNTEER = "volunteer"  # in a volunteer's conversation room
    STAFF = "staff"  # in the volunteers' room or a DM with the bot


class Arg(enum.Enum):
    NONE = "none"  # no argument allowed
    WORD = "word"  # exactly one word
    OPTIONAL_DURATION = "optional_duration"  # e.g. 10m, 15, 1h; may be absent
    WORDS = "words"  # one or more words
    SESSION = "session"  # a session number, N of "Chatter #N"
    SESSION_SPAN = "session_span"  # a session number, then optionally 24h, 7d or permanent
    OPTIONAL_WORDS = "optional_words"  # any number of words, none included
    TEXT = "text"  # free text, kept as written (line breaks too) in `args[0]`; not empty


class Forever(enum.Enum):
    """How long a block lasts when it has no end (`!block N permanent`)."""

    FOREVER = "permanent"


FOREVER = Forever.FOREVER


@dataclass(frozen=True, slots=True)
class Spec:
    name: str  # canonical (English) name, used in code
    names: tuple[str, ...]  # every accepted spelling, Norwegian first
    audience: frozenset[Audience]
    arg: Arg = Arg.NONE
    usage: str = ""  # argument part of the usage line, e.g. "NAME"
    supervisors_only: bool = False  # refused to others, and left out of their !help
    admins_only: bool = False  # the same, for the admins (`admins:` in the config)


def _spec(
    name: str,
    names: tuple[str, ...],
    *aud: Audience,
    arg: Arg = Arg.NONE,
    usage: str = "",
    supervisors_only: bool = False,
    admins_only: bool = False,
) -> Spec:
    return Spec(name, names, frozenset(aud), arg, usage, supervisors_only, admins_only)


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
    _spec("my_shift", ("min-vakt", "my-shift"), V, S),  # bot.core.care
    _spec(
        "transfer", ("overfør", "overfor", "transfer"), V, arg=Arg.OPTIONAL_WORDS, usage="[ALIAS]"
    ),
    _spec("note", ("notat", "note"), V, arg=Arg.TEXT, usage="TEXT"),
    _spec("join", ("bli-med", "join"), S, arg=Arg.SESSION, usage="N", supervisors_only=True),
    _spec("leave", ("forlat", "leave"), V, supervisors_only=True),
    _spec(
        "block",
        ("blokker", "block"),
        V,
        S,
        arg=Arg.SESSION_SPAN,
        usage="N [24h|7d|permanent]",
        supervisors_only=True,
    ),
    _spec(
        "unblock", ("opphev", "unblock"), V, S, arg=Arg.SESSION, usage="N", supervisors_only=True
    ),
    # The admins' (`bot.core.admin`). A name of two words is looked up before its first
    # word alone: `!status full` is its own command, `!status` stays everyone's.
    _spec("status_full", ("status full",), S, admins_only=True),
    _spec("reload", ("last-inn", "reload"), S, admins_only=True),
)

_BY_NAME: dict[str, Spec] = {n: spec for spec in TABLE for n in spec.names}
_DURATION = re.compile(r"^(\d{1,4})\s*(m|min|h|t)?$", re.IGNORECASE)
# A block's length: hours (h, or t for "timer"), days (d) or weeks (w, or u for "uker");
# a bare number is refused, since "!block 4821 7" could mean hours or days.
_SPAN = re.compile(r"^(\d{1,4})\s*(h|t|d|w|u)$", re.IGNORECASE)
_SPAN_UNITS = {"h": 1, "t": 1, "d": 24, "w": 24 * 7, "u": 24 * 7}
_FOREVER_WORDS = frozenset({"permanent", "permanently", "perm", "forever", "alltid"})
_NUMBER = re.compile(r"^#?(\d{1,6})$")


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...] = ()
    minutes: int | None = None  # for OPTIONAL_DURATION
    number: int | None = None  # for SESSION and SESSION_SPAN: the N of "Chatter #N"
    span: timedelta | Forever | None = None  # for SESSION_SPAN; None when not given


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
    second, _, after = rest.strip().partition(" ")
    spec = _BY_NAME.get(f"{head} {second}".casefold()) if second else None
    if spec is not None:
        rest = after
    else:
        spec = _BY_NAME.get(head.casefold())
    if spec is None:
        return None
    if audience not in spec.audience:
        return Usage(spec, wrong_place=True)
    if spec.arg is Arg.TEXT:
        return Command(spec.name, (rest.strip(),)) if rest.strip() else Usage(spec)
    args = tuple(rest.split())
    if spec.arg is Arg.OPTIONAL_WORDS:
        return Command(spec.name, args)
    if spec.arg is Arg.NONE:
        return Command(spec.name) if not args else Usage(spec)
    if spec.arg is Arg.WORD:
        return Command(spec.name, args) if len(args) == 1 else Usage(spec)
    if spec.arg is Arg.WORDS:
        return Command(spec.name, args) if args else Usage(spec)
    if spec.arg in (Arg.SESSION, Arg.SESSION_SPAN):
        return _session_command(spec, args)
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


def _session_command(spec: Spec, args: tuple[str, ...]) -> Command | Usage:
    """`N` (SESSION) or `N [span]` (SESSION_SPAN); anything else gets the usage line."""
    most = 2 if spec.arg is Arg.SESSION_SPAN else 1
    number = _NUMBER.match(args[0]) if args else None
    if number is None or len(args) > most or int(number.group(1)) <= 0:
        return Usage(spec)
    n = int(number.group(1))
    if len(args) == 1:
        return Command(spec.name, args, number=n)
    word = args[1].casefold()
    if word in _FOREVER_WORDS:
        return Command(spec.name, args, number=n, span=FOREVER)
    span = _SPAN.match(word)
    if span is None or int(span.group(1)) <= 0:
        return Usage(spec)
    hours = int(span.group(1)) * _SPAN_UNITS[span.group(2).lower()]
    return Command(spec.name, args, number=n, span=timedelta(hours=hours))


def usage_line(spec: Spec, language: str) -> str:
    name = spec.names[0] if language == "nb" else _english_name(spec)
    return f"!{name} {spec.usage}".rstrip()


def _english_name(spec: Spec) -> str:
    return spec.name if spec.name in spec.names else spec.names[-1]


def help_lines(
    audience: Audience, language: str, *, supervisor: bool = False, admin: bool = False
) -> list[tuple[str, str]]:
    """(usage line, help key) for every command open to `audience`, in table order; the
    supervisors' commands only for a `supervisor`, the admins' only for an `admin`."""
    return [
        (usage_line(spec, language), f"help.{spec.name}")
        for spec in TABLE
        if audience in spec.audience
        and (supervisor or not spec.supervisors_only)
        and (admin or not spec.admins_only)
    ]


def is_command_like(body: str) -> bool:
    """True for a body that looks like an attempt at a command (`!word`)."""
    text = body.strip()
    return len(text) > 1 and text[0] == "!" and text[1].isalpha()
