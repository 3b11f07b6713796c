"""The field readers: each turns one plain value into a typed one, or reports why not.

Every reader takes the checker, the key path and the value, and returns the typed value or
`_BAD` after reporting the problem. Values left unchanged from config.example.yaml are
refused here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bot.config.source import _BAD, _Checker, _show

_DURATION_RE = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?"
)


def parse_duration(value: str | int) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"`` or a number of seconds; ValueError if not."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative duration")
        return timedelta(seconds=value)
    text = value.strip().lower()
    if text.isdigit():
        return timedelta(seconds=int(text))
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {value!r}")
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


# Matrix grammar, kept lenient where the spec allows historical forms.
_SERVER = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?"
_SERVER_RE = re.compile(_SERVER)
_USER_ID_RE = re.compile(rf"@[\x21-\x39\x3b-\x7e]+:{_SERVER}")
# Room version 12 room IDs have no server part any more, so it is optional.
_ROOM_ID_RE = re.compile(rf"![^\s:]+(?::{_SERVER})?")
_ALIAS_RE = re.compile(rf"#[^\s:]+:{_SERVER}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")
_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_DURATION_EXPECTED = "a duration like 90s, 15m or 1h"

# Values shipped in config.example.yaml that must be replaced ("[*]" matches any list index).
# Each maps to what the admin should write instead.
_EXAMPLE_VALUES: dict[tuple[str, str], str] = {
    ("homeserver.url", "https://matrix.example.org"): "your homeserver's URL",
    ("bot.user_id", "@alltidhjelp:example.org"): "the bot account's own Matrix ID",
    ("intake.lobby_rooms[*]", "#snakk-med-oss:example.org"): "your own lobby room",
    ("volunteers.room", "#vakt:example.org"): "your volunteers' room",
    ("volunteers.members[*].user_id", "@irene:example.org"): "a real volunteer's Matrix ID",
    ("volunteers.members[*].user_id", "@ola:example.org"): "a real volunteer's Matrix ID",
    ("volunteers.supervisors[*]", "@kari:example.org"): "a real supervisor's Matrix ID",
    ("admins[*]", "@drift:example.org"): "a real admin's Matrix ID",
}

_INDEX_RE = re.compile(r"\[\d+\]")


Parser = Callable[..., Any]


def _text(chk: _Checker, path: str, value: Any, *, allow_empty: bool = False) -> Any:
    if isinstance(value, bool | int | float | date) and path in chk.raw_text:
        value = chk.raw_text[path]  # a string key written without quotes, like no or 1234
    if not isinstance(value, str):
        return chk.problem(path, "text", _show(value))
    if not allow_empty and not value.strip():
        return chk.problem(path, "non-empty text", _show(value))
    pattern = _INDEX_RE.sub("[*]", path)
    instead = _EXAMPLE_VALUES.get((pattern, value.rstrip("/")))
    if instead is not None:
        return chk.problem(
            path, instead, f"{_show(value)}, the placeholder from config.example.yaml"
        )
    return value


def _secret_text(chk: _Checker, path: str, value: Any) -> Any:
    if isinstance(value, bool | int | float) and path in chk.raw_text:
        value = chk.raw_text[path]
    if not isinstance(value, str):
        return chk.problem(path, "text", _show(value) if value is None else "a non-text value")
    if not value:
        return chk.problem(path, "a secret", "an empty value")
    return value


def _bool(chk: _Checker, path: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and path in chk.from_env:
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
    return chk.problem(path, "true or false", _show(value))


def _int(
    chk: _Checker, path: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> Any:
    if isinstance(value, str) and path in chk.from_env and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return chk.problem(path, "a whole number", _show(value))
    if minimum is not None and value < minimum:
        return chk.problem(path, f"a whole number of at least {minimum}", _show(value))
    if maximum is not None and value > maximum:
        return chk.problem(path, f"a whole number of at most {maximum}", _show(value))
    return value


def _duration(chk: _Checker, path: str, value: Any, *, allow_zero: bool = False) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and ":" in chk.raw_text.get(path, ""):
        # YAML 1.1 reads 1:30 as the number 90 (base 60); refuse rather than guess.
        return chk.problem(
            path, _DURATION_EXPECTED, chk.raw_text[path], "write 1:30 as 1h30m or 1m30s"
        )
    try:
        result = parse_duration(value) if isinstance(value, str | int) else None
    except ValueError:
        result = None
    if result is None:
        return chk.problem(
            path,
            _DURATION_EXPECTED,
            _show(value),
            "combine units from largest to smallest: 1d, 2h, 15m, 90s, or 1h30m",
        )
    if not allow_zero and result <= timedelta(0):
        return chk.problem(path, "a duration longer than zero", _show(value))
    return result


def _choice(chk: _Checker, path: str, value: Any, *, choices: Iterable[str]) -> Any:
    options = list(choices)
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    if text in options:
        return text
    close = difflib.get_close_matches(text, options, n=1)
    return chk.problem(
        path,
        "one of " + ", ".join(options),
        _show(text),
        f'did you mean "{close[0]}"?' if close else None,
    )


def _user_id(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    if _USER_ID_RE.fullmatch(text):
        return text
    hint = "a Matrix user ID looks like @name:server, in quotes in YAML"
    if not text.startswith("@") and ":" in text:
        hint = f'did you mean "@{text}"?'
    elif text.startswith("@") and ":" not in text:
        hint = "add the server name after a colon, like @name:example.org"
    return chk.problem(path, "a Matrix user ID like @name:example.org", _show(text), hint)


def _room(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    if _ROOM_ID_RE.fullmatch(text) or _ALIAS_RE.fullmatch(text):
        return text
    hint = 'quote it in YAML: "#room:server"; a room ID starts with ! and an alias with #'
    if text.startswith("@"):
        hint = "that is a user ID; rooms start with ! (room ID) or # (alias)"
    return chk.problem(
        path,
        "a room alias like #room:example.org or a room ID like !abc:example.org",
        _show(text),
        hint,
    )


def _matching(pattern: re.Pattern[str], expected: str) -> Callable[[_Checker, str, Any], Any]:
    """A checker for text that must match `pattern` whole."""

    def check(chk: _Checker, path: str, value: Any) -> Any:
        text = _text(chk, path, value)
        if text is _BAD or pattern.fullmatch(text):
            return text
        return chk.problem(path, expected, _show(text))

    return check


_server_name = _matching(_SERVER_RE, "a server name like example.org")
_language_code = _matching(_LANGUAGE_RE, "a language code like nb or en")


def _path(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    return chk.base_dir / Path(text).expanduser()


def _url(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    match = re.fullmatch(r"(https?)://([^/?#\s]+)(/[^?#\s]*)?", text)
    if match is None:
        hint = None
        if "://" not in text:
            hint = f'add the scheme: "https://{text}"'
        return chk.problem(path, "an http:// or https:// URL", _show(text), hint)
    return text.rstrip("/")
