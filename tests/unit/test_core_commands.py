"""The command table: every spelling, arguments, audiences, and what is not a command."""

from __future__ import annotations

import pytest

from bot.core import commands
from bot.core.commands import TABLE, Arg, Audience, Command, Spec, Usage

GOOD_ARG = {
    Arg.NONE: "",
    Arg.WORD: " en",
    Arg.WORDS: " angst skole",
    Arg.OPTIONAL_DURATION: "",
    Arg.SESSION: " 4821",
    Arg.SESSION_SPAN: " 4821",
    Arg.OPTIONAL_WORDS: " Bjørn",
    Arg.TEXT: " ring-mor",
}
SPELLINGS = [(spec, name, aud) for spec in TABLE for name in spec.names for aud in spec.audience]


def spec(name: str) -> Spec:
    return next(s for s in TABLE if s.name == name)


@pytest.mark.parametrize(
    ("spec", "name", "audience"),
    SPELLINGS,
    ids=[f"{name}-{aud.value}" for _, name, aud in SPELLINGS],
)
def test_every_spelling_parses(spec: Spec, name: str, audience: Audience) -> None:
    args = GOOD_ARG[spec.arg]
    number = 4821 if spec.arg in (Arg.SESSION, Arg.SESSION_SPAN) else None
    expected = Command(spec.name, tuple(args.split()), number=number)
    assert commands.parse(f"!{name}{args}", audience) == expected
    assert commands.parse(f"  !{name.upper()}{args}  \n", audience) == expected


def test_table_is_consistent() -> None:
    names = [n for s in TABLE for n in s.names]
    assert len(names) == len(set(names)), "a spelling belongs to one command"
    assert len({s.name for s in TABLE}) == len(TABLE)
    for s in TABLE:
        assert s.audience, s.name
        assert (s.arg is Arg.NONE) == (s.usage == ""), s.name
        assert all(n == n.casefold() for n in s.names)
        for n in s.names:
            # One word, or two for a command of its own under another (`!status full`):
            # the first word alone is a command too, so a typo in the second is not lost.
            first, _, second = n.partition(" ")
            assert " " not in second, n
            assert not second or first in names, n


@pytest.mark.parametrize(
    ("body", "audience", "name"),
    [
        ("!slutt nå", Audience.CHATTER, "end"),
        ("!ja takk", Audience.CHATTER, "yes"),
        ("!språk", Audience.CHATTER, "language"),
        ("!språk nb en", Audience.CHATTER, "language"),
        ("!svar", Audience.VOLUNTEER, "say"),
        ("!say a b", Audience.VOLUNTEER, "say"),
        ("!tema", Audience.VOLUNTEER, "tag"),
        ("!på nå", Audience.STAFF, "on"),
        ("!status alle", Audience.STAFF, "status"),
    ],
)
def test_bad_arguments_get_the_usage(body: str, audience: Audience, name: str) -> None:
    assert commands.parse(body, audience) == Usage(spec(name))


SPECS_AND_STRANGERS = [(s, aud) for s in TABLE for aud in Audience if aud not in s.audience]


@pytest.mark.parametrize(
    ("spec", "audience"),
    SPECS_AND_STRANGERS,
    ids=[f"{s.name}-{aud.value}" for s, aud in SPECS_AND_STRANGERS],
)
def test_wrong_audience(spec: Spec, audience: Audience) -> None:
    body = f"!{spec.names[0]}{GOOD_ARG[spec.arg]}"
    assert commands.parse(body, audience) == Usage(spec, wrong_place=True)


@pytest.mark.parametrize(
    ("arg", "result"),
    [
        ("", Command("extend")),
        ("15", Command("extend", ("15",), 15)),
        ("15m", Command("extend", ("15m",), 15)),
        ("15min", Command("extend", ("15min",), 15)),
        ("15 m", Command("extend", ("15", "m"), 15)),
        ("1h", Command("extend", ("1h",), 60)),
        ("1t", Command("extend", ("1t",), 60)),
        ("2H", Command("extend", ("2H",), 120)),
        ("abc", None),
        ("0", None),
        ("-5", None),
        ("1.5h", None),
        ("90s", None),
        ("10 20", None),
        ("12345", None),
    ],
)
def test_extend_durations(arg: str, result: Command | None) -> None:
    parsed = commands.parse(f"!forleng {arg}", Audience.VOLUNTEER)
    assert parsed == (result or Usage(spec("extend")))


@pytest.mark.parametrize(
    "body",
    ["hei", "", "   ", "!", "!!!", "!!slutt", "! slutt", "!hei", "!xyz", "slutt", "hei !slutt"],
)
@pytest.mark.parametrize("audience", list(Audience))
def test_not_commands(body: str, audience: Audience) -> None:
    assert commands.parse(body, audience) is None


@pytest.mark.parametrize(
    ("body", "looks_like"),
    [
        ("!xyz", True),
        ("  !ølfest", True),
        ("!!!", False),
        ("!", False),
        ("!1", False),
        ("hei", False),
    ],
)
def test_is_command_like(body: str, looks_like: bool) -> None:
    assert commands.is_command_like(body) is looks_like


@pytest.mark.parametrize(
    ("name", "nb", "en"),
    [
        ("end", "!slutt", "!end"),
        ("extend", "!forleng [10m]", "!extend [10m]"),
        ("say", "!svar NAME", "!say NAME"),
        ("tag", "!tema TOPIC [TOPIC ...]", "!tag TOPIC [TOPIC ...]"),
        ("alert", "!hjelp-veileder", "!alert"),
        ("on", "!på", "!on"),
        ("language", "!språk nb|en", "!language nb|en"),
    ],
)
def test_usage_line(name: str, nb: str, en: str) -> None:
    assert commands.usage_line(spec(name), "nb") == nb
    assert commands.usage_line(spec(name), "en") == en


@pytest.mark.parametrize("audience", list(Audience))
@pytest.mark.parametrize("language", ["nb", "en"])
def test_help_lists_every_command_for_its_audience_in_table_order(
    audience: Audience, language: str
) -> None:
    lines = commands.help_lines(audience, language, supervisor=True, admin=True)
    mine = [s for s in TABLE if audience in s.audience]
    assert lines == [(commands.usage_line(s, language), f"help.{s.name}") for s in mine]
    assert {key for _, key in lines} == {f"help.{s.name}" for s in mine}
    # Anyone else sees the same, without the supervisors' and the admins' commands.
    theirs = [s for s in mine if not s.supervisors_only and not s.admins_only]
    assert commands.help_lines(audience, language) == [
        (commands.usage_line(s, language), f"help.{s.name}") for s in theirs
    ]


def test_help_by_audience() -> None:
    def names(aud: Audience) -> set[str]:
        return {key.removeprefix("help.") for _, key in commands.help_lines(aud, "en")}

    assert names(Audience.CHATTER) == {"end", "delete", "language", "yes", "help"}
    assert names(Audience.STAFF) == {"help", "on", "off", "status", "my_shift"}
    supervisor = {
        k.removeprefix("help.")
        for _, k in commands.help_lines(Audience.STAFF, "en", supervisor=True)
    }
    assert supervisor == {"help", "on", "off", "status", "my_shift", "join", "block", "unblock"}
    admin = {
        k.removeprefix("help.") for _, k in commands.help_lines(Audience.STAFF, "en", admin=True)
    }
    assert admin == {"help", "on", "off", "status", "my_shift", "status_full", "reload"}
    assert {"extend", "time", "say", "tag", "handback", "alert", "end", "my_shift"} <= names(
        Audience.VOLUNTEER
    )
    assert "delete" not in names(Audience.VOLUNTEER)
