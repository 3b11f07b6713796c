"""Load and check the helpline bot's one YAML configuration file.

Job: turn ``config.yaml`` into frozen, typed dataclasses (:class:`Config`), or report every
problem in it at once (:class:`ConfigErrors`). Each problem names the key path, its line,
what was expected and what was found, plus a hint where one helps. The people who read these
messages are volunteer coordinators, so they say what to write, not what broke.

Rules:

- Nothing here connects to anything: ``helpline-bot check-config`` runs exactly this code.
- Bad input never raises anything but :class:`ConfigErrors`. YAML syntax errors, unreadable
  files and wrong types all become problems with a line number where one exists.
- Every problem is collected before raising. A value found wrong is replaced by a sentinel,
  so checks that depend on it stay silent instead of piling on follow-up complaints.
- Durations: ``90s``, ``15m``, ``1h``, ``1h30m``, ``1d``, or a plain number of seconds.
- ``${NAME}`` in any string value is replaced from the environment (``$${`` is a literal
  ``${``). A variable that is not set is a problem naming the variable.
- Secrets come inline or from a ``*_file`` key, never both. Files are read here, so a missing
  or empty secret is found by check-config, not when the bot starts at 3 a.m.
- Values left unchanged from config.example.yaml are refused (the idea of mautrix's
  ``ForbiddenDefault``): a bot pointed at example.org must not start.
- Relative paths are relative to the config file's directory, so the result does not depend
  on the working directory of whoever runs the bot.
- Secret values never appear in a problem message or in a ``repr``.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.core.model import Hours, Interval, PlaintextDirect, server_allowed
from bot.core.model import Strategy as RoutingStrategy

__all__ = [
    "BotConfig",
    "Config",
    "ConfigErrors",
    "ConfigProblem",
    "EncryptionConfig",
    "HomeserverConfig",
    "HttpConfig",
    "IntakeConfig",
    "Interval",
    "LanguageConfig",
    "LimitsConfig",
    "LoggingConfig",
    "OpeningHoursConfig",
    "PrivacyConfig",
    "RoutingConfig",
    "RoutingStrategy",
    "StorageConfig",
    "TrustPolicy",
    "VolunteerConfig",
    "VolunteersConfig",
    "load_config",
    "parse_duration",
]


# --------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the config file, worded for the person who edits it."""

    path: str  # key path like "limits.warn_before[1]"; "" for the file as a whole
    line: int | None  # 1-based line in the file, when the problem has one
    expected: str
    found: str
    hint: str | None = None
    file: str = ""  # the config file's name as the user gave it

    def __str__(self) -> str:
        where = self.file or "config"
        if self.line is not None:
            where += f":{self.line}"
        subject = f" {self.path}:" if self.path else ""
        text = f"{where}:{subject} expected {self.expected}, found {self.found}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigErrors(Exception):
    """Every problem found in a config file; raised only when there is at least one."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


# --------------------------------------------------------------------------------------
# The configuration, as the rest of the bot sees it


class TrustPolicy(enum.StrEnum):
    """Which devices of other users the bot shares room keys with."""

    # Element's rule since MSC4153: only devices their owner has cross-signed.
    CROSS_SIGNED = "cross_signed"
    # Every device, signed or not: only for testing with old clients.
    ALL_DEVICES = "all_devices"


class ChatterDevices(enum.StrEnum):
    """Which devices of a chatter get room keys under the cross-signed rule."""

    # Their cross-signed devices; a chatter with none (an old client, a bridge) gets keys
    # on their unsigned devices, and the volunteer is told once. Nobody in crisis is
    # left reading silence because of their app.
    FALLBACK_TO_UNSIGNED = "fallback_to_unsigned"
    # Their cross-signed devices only, as for staff.
    CROSS_SIGNED_ONLY = "cross_signed_only"


@dataclass(frozen=True, slots=True)
class HomeserverConfig:
    url: str  # no trailing slash
    admin_token: str | None = field(default=None, repr=False)  # enables server-side purge
    server_name: str | None = None  # None: the server part of the bot's user ID


@dataclass(frozen=True, slots=True)
class BotConfig:
    user_id: str
    password: str = field(repr=False)
    device_name: str = "helpline-bot"
    display_name: str = "Alltidhjelp"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    data_dir: Path
    store_key: str = field(repr=False)  # encrypts the crypto store


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    trust: TrustPolicy = TrustPolicy.CROSS_SIGNED
    chatter_devices: ChatterDevices = ChatterDevices.FALLBACK_TO_UNSIGNED
    # How long a message whose key has not arrived is waited for before its sender is
    # asked to send it again.
    undecryptable_grace: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    direct_messages: bool = True
    lobby_rooms: tuple[str, ...] = ()
    allowed_servers: tuple[str, ...] = ("*",)
    consent_required: bool = False
    plaintext_direct: PlaintextDirect = PlaintextDirect.OPEN

    def allows_server(self, server_name: str) -> bool:
        return server_allowed(self.allowed_servers, server_name)


@dataclass(frozen=True, slots=True)
class VolunteerConfig:
    user_id: str
    alias: str  # the only name a chatter ever sees
    languages: tuple[str, ...]
    max_sessions: int = 1


@dataclass(frozen=True, slots=True)
class VolunteersConfig:
    room: str  # room ID or alias of the volunteers' and supervisors' room
    members: tuple[VolunteerConfig, ...]
    supervisors: tuple[str, ...] = ()

    def member(self, user_id: str) -> VolunteerConfig | None:
        return next((m for m in self.members if m.user_id == user_id), None)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    strategy: RoutingStrategy = RoutingStrategy.LONGEST_IDLE
    offer_timeout: timedelta = timedelta(seconds=90)
    lapses_before_off_duty: int = 2
    language_fallback: bool = True
    waiting_reminder: timedelta = timedelta(minutes=3)  # zero: no reminders


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_duration: timedelta = timedelta(minutes=60)
    warn_before: tuple[timedelta, ...] = (timedelta(minutes=10), timedelta(minutes=2))
    max_extension: timedelta = timedelta(minutes=30)
    chatter_idle: timedelta = timedelta(minutes=15)
    idle_warning_before: timedelta = timedelta(minutes=3)
    queue_max_wait: timedelta = timedelta(minutes=30)
    queue_max_length: int = 50
    message_max_chars: int = 4000
    messages_per_minute: int = 20  # per chatter
    sessions_per_day: int = 5  # per chatter


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    purge_after: timedelta = timedelta(seconds=60)
    relay_media: bool = False
    relay_read_receipts: bool = False
    retention_max_lifetime: timedelta = timedelta(days=1)
    block_list_key: str | None = field(default=None, repr=False)  # None: use the store key
    deactivate_prefix: str | None = None  # like "@anon-": throw-away accounts to deactivate


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class OpeningHoursConfig:
    # A factory, so that importing this module works even without a tz database.
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Oslo"))
    always_open: bool = False
    # Seven entries, Monday first (date.weekday() indexes it). An interval belongs to the day
    # it starts on, even when it ends after midnight.
    weekly: tuple[tuple[Interval, ...], ...] = ((),) * 7
    closed_dates: frozenset[date] = frozenset()

    def hours(self) -> Hours:
        """As the core evaluates them (`bot.core.hours.is_open`): the one place that decides
        whether the line is open."""
        return Hours(
            always_open=self.always_open,
            timezone=self.timezone.key,
            weekly=self.weekly,
            closed_dates=self.closed_dates,
        )


@dataclass(frozen=True, slots=True)
class LanguageConfig:
    default: str = "nb"
    available: tuple[str, ...] = ("nb", "en")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 9108  # 0: no HTTP endpoint

    @property
    def enabled(self) -> bool:
        return self.port != 0


DEFAULT_TOPICS = (
    "angst",
    "ensomhet",
    "familie",
    "skole",
    "selvskading",
    "selvmordstanker",
    "annet",
)


@dataclass(frozen=True, slots=True)
class Config:
    homeserver: HomeserverConfig
    bot: BotConfig
    storage: StorageConfig
    encryption: EncryptionConfig
    intake: IntakeConfig
    volunteers: VolunteersConfig
    admins: tuple[str, ...]
    routing: RoutingConfig
    limits: LimitsConfig
    privacy: PrivacyConfig
    opening_hours: OpeningHoursConfig
    language: LanguageConfig
    # language -> message key -> text; only the texts the organisation overrides
    messages: Mapping[str, Mapping[str, str]]
    topics: tuple[str, ...]
    logging: LoggingConfig
    http: HttpConfig

    @property
    def server_name(self) -> str:
        """The homeserver's Matrix server name (the part after ':' in user IDs)."""
        return self.homeserver.server_name or self.bot.user_id.split(":", 1)[1]

    def message_override(self, language: str, key: str) -> str | None:
        return self.messages.get(language, {}).get(key)


# --------------------------------------------------------------------------------------
# Plain value parsers, usable on their own


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
_ENV_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_DURATION_EXPECTED = "a duration like 90s, 15m or 1h"

# Values shipped in config.example.yaml that must be replaced ("[*]" matches any list index).
# Each maps to what the admin should write instead.
_EXAMPLE_VALUES: dict[tuple[str, str], str] = {
    ("homeserver.url", "https://matrix.example.org"): "your homeserver's URL",
    ("homeserver.server_name", "example.org"): "your homeserver's server name",
    ("bot.user_id", "@alltidhjelp:example.org"): "the bot account's own Matrix ID",
    ("intake.lobby_rooms[*]", "#snakk-med-oss:example.org"): "your own lobby room",
    ("volunteers.room", "#vakt:example.org"): "your volunteers' room",
    ("volunteers.members[*].user_id", "@irene:example.org"): "a real volunteer's Matrix ID",
    ("volunteers.members[*].user_id", "@ola:example.org"): "a real volunteer's Matrix ID",
    ("volunteers.supervisors[*]", "@kari:example.org"): "a real supervisor's Matrix ID",
    ("admins[*]", "@drift:example.org"): "a real admin's Matrix ID",
}

_INDEX_RE = re.compile(r"\[\d+\]")


class _Bad:
    """Stands in for a value already reported as wrong, so later checks skip it."""

    def __repr__(self) -> str:
        return "<bad value>"


_BAD: Any = _Bad()
# What a *_file secret holds when load_config was told not to read secret files.
_UNREAD_SECRET = "<not read>"
_MISSING: Any = object()


def _show(value: Any) -> str:
    """How a found value is quoted in a problem message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------------------
# Reading YAML while keeping line numbers


class _Checker:
    """Holds what is known about the file and collects problems while reading it."""

    def __init__(
        self, file: str, base_dir: Path, env: Mapping[str, str], read_secret_files: bool
    ) -> None:
        self.file = file
        self.base_dir = base_dir
        self.env = env
        self.read_secret_files = read_secret_files
        self.problems: list[ConfigProblem] = []
        self.lines: dict[str, int] = {}  # key path -> line of its key (or list item)
        # Plain scalars that YAML 1.1 turned into non-strings (no -> false, 14:00 -> 840):
        # string-typed keys take the text as written instead.
        self.raw_text: dict[str, str] = {}
        self.from_env: set[str] = set()  # paths whose value came from ${...}
        self.source_lines: list[str] = []

    # ---- problems

    def line_of(self, path: str) -> int | None:
        # A missing key has no line of its own: point at the nearest parent that has one.
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = _parent(path)

    def problem(self, path: str, expected: str, found: str, hint: str | None = None) -> Any:
        self.problems.append(
            ConfigProblem(path, self.line_of(path), expected, found, hint, file=self.file)
        )
        return _BAD

    def file_problem(self, expected: str, found: str, line: int | None = None) -> None:
        self.problems.append(ConfigProblem("", line, expected, found, None, file=self.file))

    # ---- YAML to plain data

    def parse(self, text: str) -> Any:
        self.source_lines = text.splitlines()
        loader: yaml.SafeLoader | None = None
        try:
            # The reader checks for unprintable characters already when it is created.
            loader = yaml.SafeLoader(text)
            node = loader.get_single_node()
            if node is None:
                self.file_problem(
                    "a mapping of sections like homeserver: and bot:", "an empty file"
                )
                return _BAD
            return self._convert(loader, node, "", set())
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            what = e.problem or e.context or "a YAML error"
            line = mark.line + 1 if mark else None
            hint = _yaml_hint(what)
            self.problems.append(
                ConfigProblem("", line, "valid YAML", f"a syntax error ({what})", hint, self.file)
            )
            return _BAD
        except yaml.YAMLError as e:  # reader errors: control characters and the like
            position = getattr(e, "position", None)
            line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
            self.file_problem("valid YAML", f"an unreadable file ({e})", line)
            return _BAD
        finally:
            if loader is not None:
                loader.dispose()

    def _convert(self, loader: yaml.SafeLoader, node: yaml.Node, path: str, stack: set[int]) -> Any:
        if id(node) in stack:
            return self.problem(path, "a value", "an alias that contains itself")
        if isinstance(node, yaml.MappingNode):
            return self._convert_mapping(loader, node, path, stack | {id(node)})
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                item_path = f"{path}[{index}]"
                self.lines[item_path] = item.start_mark.line + 1
                items.append(self._convert(loader, item, item_path, stack | {id(node)}))
            return items
        assert isinstance(node, yaml.ScalarNode)
        try:
            value = loader.construct_object(node)
        except ValueError:  # a date-shaped value that is no date, like 2025-13-45
            value = node.value
        except yaml.YAMLError:
            return self.problem(
                path,
                "a plain value",
                f"the YAML tag {node.tag}",
                'text starting with ! must be quoted, like "!abc123:example.org"',
            )
        if isinstance(value, str):
            return self._substitute(path, value)
        if node.style is None and value is not None:
            self.raw_text[path] = node.value
        return value

    def _convert_mapping(
        self, loader: yaml.SafeLoader, node: yaml.MappingNode, path: str, stack: set[int]
    ) -> Any:
        # Duplicates are looked for before merge keys (<<) are expanded, because a key that
        # overrides a merged one is fine, while the same key written twice is a mistake.
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in seen:
                    self.problems.append(
                        ConfigProblem(
                            _join(path, key),
                            line,
                            "each key once",
                            f'"{key}" a second time',
                            f"it was already given on line {seen[key]}; keep one",
                            self.file,
                        )
                    )
                seen.setdefault(key, line)
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                self.problems.append(
                    ConfigProblem(path, line, "a plain key", "a list or mapping", None, self.file)
                )
                continue
            # Keys are taken as written: "no:" or "on:" stay text, unlike YAML 1.1 values.
            key = str(key_node.value)
            child = _join(path, key)
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self._convert(loader, value_node, child, stack)
        return result

    def _substitute(self, path: str, value: str) -> Any:
        if "${" not in value:
            return value
        missing: list[str] = []
        invalid: list[str] = []

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"  # the escape, so that a password may contain "${"
            name = match.group(1)
            if not _ENV_NAME_RE.fullmatch(name):
                invalid.append(name)
                return ""
            if name not in self.env:
                missing.append(name)
                return ""
            return self.env[name]

        result = _ENV_RE.sub(replace, value)
        for name in invalid:
            self.problem(
                path,
                "an environment variable name like ${HELPLINE_BOT_PASSWORD}",
                _show("${" + name + "}"),
                "names use letters, digits and _; write $${ for a literal ${",
            )
        for name in missing:
            self.problem(
                path,
                f"the environment variable {name} to be set",
                "it unset",
                f"set {name} in the bot's environment, or write the value here",
            )
        if missing or invalid:
            return _BAD
        if result != value:
            self.from_env.add(path)
        return result

    def empty_hint(self, path: str) -> str | None:
        # An unquoted "#room:server" is a YAML comment, so the value arrives empty.
        line = self.lines.get(path)
        if (
            line is not None
            and line <= len(self.source_lines)
            and "#" in self.source_lines[line - 1]
        ):
            return (
                "YAML reads an unquoted # as the start of a comment; "
                'put the value in quotes, like "#room:example.org"'
            )
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def _yaml_hint(problem: str) -> str | None:
    for char in "@`!%&*":
        if f"'{char}'" in problem:
            return f'values starting with {char} must be quoted, like "{char}name:example.org"'
    if "tab" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return 'a value containing ": " must be quoted, or a key is indented wrongly'
    return "check the indentation and the quotes on this line and the one before"


# --------------------------------------------------------------------------------------
# Typed readers: each returns a value or _BAD after reporting why


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


# --------------------------------------------------------------------------------------
# Sections


class _Section:
    """A mapping being read. Remembers the keys asked for, so the rest can be reported."""

    def __init__(self, chk: _Checker, path: str, data: Any, *, absent: bool = False) -> None:
        self.chk = chk
        self.path = path
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        # A section already reported as missing or broken: its required keys stay quiet.
        self.absent = absent
        self.asked: list[str] = []

    def path_of(self, key: str) -> str:
        return _join(self.path, key)

    def raw(self, key: str) -> Any:
        if key not in self.asked:
            self.asked.append(key)
        return self.data.get(key, _MISSING)

    def has(self, key: str) -> bool:
        value = self.raw(key)
        return value is not _MISSING and value is not None

    def get(
        self,
        key: str,
        parse: Parser,
        *,
        default: Any = _MISSING,
        expected: str | None = None,
        **kwargs: Any,
    ) -> Any:
        value = self.raw(key)
        path = self.path_of(key)
        if value is _BAD:
            return _BAD
        if value is _MISSING or value is None:
            if default is not _MISSING:
                return default
            return self.missing(key, expected or "a value", value)
        return parse(self.chk, path, value, **kwargs)

    def missing(self, key: str, expected: str, value: Any = _MISSING) -> Any:
        if self.absent:
            return _BAD
        path = self.path_of(key)
        if value is None:
            return self.chk.problem(path, expected, "an empty value", self.chk.empty_hint(path))
        return self.chk.problem(path, expected, "nothing (the key is missing)")

    def section(self, key: str, *, required: bool = False, expected: str = "") -> _Section:
        value = self.raw(key)
        path = self.path_of(key)
        if value is _MISSING or value is None:
            if required and not self.absent:
                self.chk.problem(
                    path,
                    f"a {key}: section with {expected}",
                    "nothing" if value is _MISSING else "an empty section",
                    "config.example.yaml shows every key with its default",
                )
            return _Section(self.chk, path, {}, absent=required)
        return self.mapping_at(path, value)

    def mapping_at(self, path: str, value: Any) -> _Section:
        if value is _BAD:
            return _Section(self.chk, path, {}, absent=True)
        if not isinstance(value, dict):
            self.chk.problem(path, "a mapping of keys (key: value lines, indented)", _show(value))
            return _Section(self.chk, path, {}, absent=True)
        return _Section(self.chk, path, value)

    def items(
        self,
        key: str,
        parse: Parser,
        *,
        default: tuple[Any, ...] | Any = _MISSING,
        expected: str = "a list",
        unique: bool = True,
        non_empty: bool = False,
        **kwargs: Any,
    ) -> Any:
        """A list whose items are each checked with ``parse``; duplicates are problems."""
        value = self.raw(key)
        path = self.path_of(key)
        if value is _BAD:
            return _BAD
        if value is _MISSING or value is None:
            if default is not _MISSING:
                return default
            return self.missing(key, expected, value)
        if not isinstance(value, list):
            example = f"[{_show(value)}]" if isinstance(value, str) else "[a, b]"
            return self.chk.problem(
                path, expected, _show(value), f"write a list, even of one item: {example}"
            )
        if non_empty and not value:
            return self.chk.problem(path, f"{expected} with at least one item", "an empty list")
        results: list[Any] = []
        first_seen: dict[Any, int] = {}
        broken = False
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            parsed = _BAD if item is _BAD else parse(self.chk, item_path, item, **kwargs)
            if parsed is _BAD:
                broken = True
                continue
            if unique and parsed in first_seen:
                self.chk.problem(
                    item_path,
                    "each entry once",
                    f"{_show(item)} a second time",
                    f"it is already entry [{first_seen[parsed]}]",
                )
                broken = True
                continue
            first_seen[parsed] = index
            results.append(parsed)
        return _BAD if broken else tuple(results)

    def secret(self, key: str, *, required: bool, what: str, min_length: int | None = None) -> Any:
        """A secret given inline as ``key`` or read from the file named by ``key_file``."""
        file_key = f"{key}_file"
        inline, named = self.has(key), self.has(file_key)
        if inline and named:
            return self.chk.problem(
                self.path_of(file_key),
                f"either {key} or {file_key}, not both",
                "both",
                f"keep {file_key} (a file the bot reads at start) or {key}, and remove the other",
            )
        if not inline and not named:
            if required and not self.absent:
                return self.chk.problem(
                    self.path_of(key),
                    f"{what}, given as {file_key} or {key}",
                    "neither",
                    f"{file_key}: /run/secrets/... is safest; {key}: ${{SOME_VARIABLE}} works too",
                )
            return None if not required else _BAD
        if inline:
            value = self.get(key, _secret_text)
            path = self.path_of(key)
        else:
            path = self.path_of(file_key)
            file_path = self.get(file_key, _path)
            if file_path is _BAD:
                return _BAD
            if not self.chk.read_secret_files:
                return _UNREAD_SECRET
            value = _read_secret_file(self.chk, path, file_path, what)
        if value is _BAD:
            return _BAD
        if min_length is not None and len(value) < min_length:
            return self.chk.problem(
                path,
                f"{what}, at least {min_length} characters long",
                _plural(len(value), "character"),
                "generate one with: openssl rand -base64 32",
            )
        return value

    def done(self) -> None:
        """Report every key that nobody asked for, with the closest known key as a hint."""
        for key in self.data:
            if key in self.asked:
                continue
            close = difflib.get_close_matches(key, self.asked, n=1, cutoff=0.6)
            if close:
                hint = f'did you mean "{close[0]}"?'
            elif len(self.asked) <= 12:
                hint = "known keys here: " + ", ".join(self.asked)
            else:
                hint = None
            where = f"in {self.path}" if self.path else "at the top level"
            self.chk.problem(self.path_of(key), f"a key known {where}", f'"{key}"', hint)


def _os_reason(error: OSError) -> str:
    if isinstance(error, IsADirectoryError):
        return "a directory"
    return (error.strerror or type(error).__name__).lower()


def _read_secret_file(chk: _Checker, path: str, file_path: Path, what: str) -> Any:
    try:
        content = file_path.read_text(encoding="utf-8")
    except OSError as e:
        reason = _os_reason(e)
        return chk.problem(
            path,
            f"a readable file with {what}",
            f"{_show(str(file_path))} ({reason})",
            "the file must exist and be readable by the user the bot runs as",
        )
    except UnicodeDecodeError:
        return chk.problem(path, f"a UTF-8 text file with {what}", f"{_show(str(file_path))}")
    # Editors and `echo` add a final newline; it is never part of the secret.
    content = content.rstrip("\r\n")
    if not content:
        return chk.problem(path, f"a file with {what}", f"{_show(str(file_path))}, which is empty")
    return content


# --------------------------------------------------------------------------------------
# The sections, one reader each


def _read_homeserver(root: _Section) -> HomeserverConfig:
    s = root.section("homeserver", required=True, expected="url:")
    url = s.get("url", _url, expected="your homeserver's URL, like https://matrix.example.org")
    token = s.secret("admin_token", required=False, what="a Synapse admin access token")
    server_name = s.get("server_name", _server_name, default=None)
    s.done()
    return HomeserverConfig(url=url, admin_token=token, server_name=server_name)


def _read_bot(root: _Section) -> BotConfig:
    s = root.section("bot", required=True, expected="user_id: and password_file:")
    user_id = s.get("user_id", _user_id, expected="the bot account's Matrix ID, like @bot:server")
    password = s.secret("password", required=True, what="the bot account's password")
    device_name = s.get("device_name", _text, default="helpline-bot")
    display_name = s.get("display_name", _text, default="Alltidhjelp")
    s.done()
    return BotConfig(user_id, password, device_name, display_name)


def _read_storage(root: _Section) -> StorageConfig:
    s = root.section("storage", required=True, expected="data_dir: and store_key_file:")
    data_dir = s.get("data_dir", _path, expected="a directory for the bot's database")
    store_key = s.secret(
        "store_key", required=True, what="the key that encrypts the crypto store", min_length=16
    )
    s.done()
    return StorageConfig(data_dir=data_dir, store_key=store_key)


def _read_encryption(root: _Section) -> EncryptionConfig:
    s = root.section("encryption")
    trust = s.get(
        "trust", _choice, default=TrustPolicy.CROSS_SIGNED, choices=[t.value for t in TrustPolicy]
    )
    chatters = s.get(
        "chatter_devices",
        _choice,
        default=ChatterDevices.FALLBACK_TO_UNSIGNED,
        choices=[c.value for c in ChatterDevices],
    )
    grace = s.get("undecryptable_grace", _duration, default=timedelta(seconds=60))
    if grace is not _BAD and grace > _MAX_GRACE:
        grace = s.chk.problem(
            s.path_of("undecryptable_grace"),
            f"a duration of at most {_format_duration(_MAX_GRACE)}",
            _format_duration(grace),
            "by then the sender has long given up waiting; the default is 60s",
        )
    s.done()
    return EncryptionConfig(
        trust=TrustPolicy(trust) if trust is not _BAD else _BAD,
        chatter_devices=ChatterDevices(chatters) if chatters is not _BAD else _BAD,
        undecryptable_grace=grace,
    )


_MAX_GRACE = timedelta(hours=1)


def _read_intake(root: _Section) -> IntakeConfig:
    s = root.section("intake")
    direct = s.get("direct_messages", _bool, default=True)
    lobbies = s.items("lobby_rooms", _room, default=(), expected="a list of rooms")
    servers = s.items(
        "allowed_servers", _allowed_server, default=("*",), expected='a list of server names or "*"'
    )
    consent = s.get("consent_required", _bool, default=False)
    plaintext = s.get(
        "plaintext_direct",
        _choice,
        default=PlaintextDirect.OPEN,
        choices=[p.value for p in PlaintextDirect],
    )
    if direct is False and lobbies == ():
        s.chk.problem(
            s.path_of("direct_messages"),
            "direct messages switched on, or at least one lobby room",
            "direct_messages: false and no lobby_rooms",
            "otherwise no chatter can reach the bot",
        )
    s.done()
    return IntakeConfig(
        direct,
        lobbies,
        servers,
        consent,
        PlaintextDirect(plaintext) if plaintext is not _BAD else _BAD,
    )


def _allowed_server(chk: _Checker, path: str, value: Any) -> Any:
    if value == "*":
        return value
    return _server_name(chk, path, value)


def _read_language(root: _Section) -> LanguageConfig:
    s = root.section("language")
    default = s.get("default", _language_code, default="nb")
    available = s.items(
        "available",
        _language_code,
        default=("nb", "en"),
        expected="a list of language codes",
        non_empty=True,
    )
    if default is not _BAD and available is not _BAD and default not in available:
        s.chk.problem(
            s.path_of("available"),
            f"a list that includes the default language {default}",
            "[" + ", ".join(available) + "]",
            f"add {default} to language.available, or change language.default",
        )
    s.done()
    return LanguageConfig(default, available)


def _read_volunteers(root: _Section, language: LanguageConfig, bot_user: Any) -> VolunteersConfig:
    s = root.section("volunteers", required=True, expected="room: and members:")
    room = s.get("room", _room, expected='the volunteers\' room, like "#vakt:example.org"')
    members_value = s.raw("members")
    members: list[VolunteerConfig] = []
    seen: dict[str, str] = {}
    if members_value is _BAD:
        pass
    elif members_value is _MISSING or members_value is None:
        s.missing("members", "a list of at least one volunteer", members_value)
    elif members_value == []:
        s.chk.problem(s.path_of("members"), "a list of at least one volunteer", "an empty list")
    elif not isinstance(members_value, list):
        s.chk.problem(s.path_of("members"), "a list of volunteers", _show(members_value))
    else:
        for index, item in enumerate(members_value):
            path = f"{s.path_of('members')}[{index}]"
            member = _read_member(s.mapping_at(path, item), language)
            if member.user_id is _BAD:
                continue
            if member.user_id in seen:
                s.chk.problem(
                    f"{path}.user_id",
                    "each volunteer once",
                    f"{_show(member.user_id)} a second time",
                    f"already listed as {seen[member.user_id]}",
                )
            elif member.user_id == bot_user:
                s.chk.problem(
                    f"{path}.user_id",
                    "a person's Matrix ID",
                    f"{_show(member.user_id)}, the bot's own ID",
                )
            seen.setdefault(member.user_id, path)
            members.append(member)
    supervisors = s.items("supervisors", _user_id, default=(), expected="a list of Matrix user IDs")
    s.done()
    return VolunteersConfig(room, tuple(members), supervisors)


def _read_member(s: _Section, language: LanguageConfig) -> VolunteerConfig:
    user_id = s.get("user_id", _user_id, expected="the volunteer's Matrix ID")
    alias = s.get("alias", _text, expected="the name chatters see, like Irene")
    default_languages = (language.default,) if language.default is not _BAD else _BAD
    languages = s.items(
        "languages",
        _language_code,
        default=default_languages,
        expected="a list of language codes",
        non_empty=True,
    )
    # Defaulted languages are checked once, as language.default against language.available.
    if s.has("languages") and languages is not _BAD and language.available is not _BAD:
        for index, code in enumerate(languages):
            if code not in language.available:
                s.chk.problem(
                    f"{s.path_of('languages')}[{index}]",
                    "one of the languages in language.available ("
                    + ", ".join(language.available)
                    + ")",
                    _show(code),
                    f"add {code} to language.available first",
                )
    max_sessions = s.get("max_sessions", _int, default=1, minimum=1, maximum=50)
    s.done()
    return VolunteerConfig(user_id, alias, languages, max_sessions)


def _read_routing(root: _Section) -> RoutingConfig:
    s = root.section("routing")
    strategy = s.get(
        "strategy", _choice, default="longest_idle", choices=[x.value for x in RoutingStrategy]
    )
    offer_timeout = s.get("offer_timeout", _duration, default=timedelta(seconds=90))
    lapses = s.get("lapses_before_off_duty", _int, default=2, minimum=1)
    fallback = s.get("language_fallback", _bool, default=True)
    reminder = s.get("waiting_reminder", _duration, default=timedelta(minutes=3), allow_zero=True)
    s.done()
    return RoutingConfig(
        RoutingStrategy(strategy) if strategy is not _BAD else _BAD,
        offer_timeout,
        lapses,
        fallback,
        reminder,
    )


def _read_limits(root: _Section) -> LimitsConfig:
    d = LimitsConfig()
    s = root.section("limits")
    max_duration = s.get("max_duration", _duration, default=d.max_duration)
    warn_before = s.items(
        "warn_before", _duration, default=d.warn_before, expected="a list of durations"
    )
    if warn_before is not _BAD and max_duration is not _BAD:
        for index, warning in enumerate(warn_before):
            if warning >= max_duration:
                s.chk.problem(
                    f"{s.path_of('warn_before')}[{index}]",
                    f"a warning time shorter than limits.max_duration "
                    f"({_format_duration(max_duration)})",
                    _format_duration(warning),
                    "a warning is given this long before the end of a conversation",
                )
        warn_before = tuple(sorted(warn_before, reverse=True))
    max_extension = s.get("max_extension", _duration, default=d.max_extension, allow_zero=True)
    chatter_idle = s.get("chatter_idle", _duration, default=d.chatter_idle)
    idle_warning = s.get("idle_warning_before", _duration, default=d.idle_warning_before)
    if chatter_idle is not _BAD and idle_warning is not _BAD and idle_warning >= chatter_idle:
        s.chk.problem(
            s.path_of("idle_warning_before"),
            f"a duration shorter than limits.chatter_idle ({_format_duration(chatter_idle)})",
            _format_duration(idle_warning),
        )
    queue_max_wait = s.get("queue_max_wait", _duration, default=d.queue_max_wait)
    queue_max_length = s.get("queue_max_length", _int, default=d.queue_max_length, minimum=1)
    # Synapse refuses events over 64 KiB, and a relayed text carries some overhead.
    max_chars = s.get(
        "message_max_chars", _int, default=d.message_max_chars, minimum=1, maximum=30000
    )
    per_minute = s.get("messages_per_minute", _int, default=d.messages_per_minute, minimum=1)
    per_day = s.get("sessions_per_day", _int, default=d.sessions_per_day, minimum=1)
    s.done()
    return LimitsConfig(
        max_duration,
        warn_before,
        max_extension,
        chatter_idle,
        idle_warning,
        queue_max_wait,
        queue_max_length,
        max_chars,
        per_minute,
        per_day,
    )


def _read_privacy(root: _Section, limits: LimitsConfig) -> PrivacyConfig:
    d = PrivacyConfig()
    s = root.section("privacy")
    purge_after = s.get("purge_after", _duration, default=d.purge_after, allow_zero=True)
    relay_media = s.get("relay_media", _bool, default=False)
    receipts = s.get("relay_read_receipts", _bool, default=False)
    lifetime = s.get("retention_max_lifetime", _duration, default=d.retention_max_lifetime)
    # A session room lives through the queue, the conversation, its extension and the purge
    # delay; a shorter retention would let the server drop it mid-conversation.
    parts = (
        limits.queue_max_wait,
        limits.max_duration,
        limits.max_extension,
        purge_after,
        lifetime,
    )
    if _BAD not in parts:
        longest = sum(parts[:4], timedelta())
        if lifetime <= longest:
            s.chk.problem(
                s.path_of("retention_max_lifetime"),
                f"a lifetime longer than a session room can live ({_format_duration(longest)}: "
                "queue_max_wait + max_duration + max_extension + purge_after)",
                _format_duration(lifetime),
                "otherwise the server could delete a room while the conversation goes on",
            )
    block_key = s.secret(
        "block_list_key", required=False, what="the block list's HMAC key", min_length=16
    )
    prefix = s.get("deactivate_prefix", _text, default=None)
    if isinstance(prefix, str) and not re.fullmatch(r"@[\x21-\x39\x3b-\x7e]+", prefix):
        s.chk.problem(
            s.path_of("deactivate_prefix"),
            'the start of a user ID without the server, like "@anon-"',
            _show(prefix),
        )
    s.done()
    return PrivacyConfig(purge_after, relay_media, receipts, lifetime, block_key, prefix)


def _read_opening_hours(root: _Section) -> OpeningHoursConfig:
    s = root.section("opening_hours")
    tz_name = s.get("timezone", _text, default="Europe/Oslo")
    timezone: Any = _BAD
    if tz_name is not _BAD:
        try:
            timezone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            s.chk.problem(
                s.path_of("timezone"),
                "a time zone name like Europe/Oslo",
                _show(tz_name),
                "names come from the tz database (install tzdata if Europe/Oslo fails too)",
            )
    always_open = s.get("always_open", _bool, default=False)
    weekly: Any = ((),) * 7
    if s.has("weekly") or always_open is False:
        weekly = _read_weekly(s, required=always_open is False)
    closed = s.items("closed_dates", _iso_date, default=(), expected="a list of dates")
    s.done()
    return OpeningHoursConfig(
        timezone, always_open, weekly, frozenset(closed) if closed is not _BAD else _BAD
    )


def _read_weekly(s: _Section, *, required: bool) -> Any:
    value = s.raw("weekly")
    path = s.path_of("weekly")
    expected = 'weekly hours like mon-fri: "14:00-23:00", or always_open: true'
    if value is _BAD:
        return _BAD
    if value is _MISSING or value is None or value == {}:
        if required:
            return s.chk.problem(path, expected, "no hours", "without hours the line never opens")
        return ((),) * 7
    if not isinstance(value, dict):
        return s.chk.problem(path, expected, _show(value))
    days: list[list[Interval]] = [[] for _ in _DAYS]
    given_by: dict[int, str] = {}
    broken = False
    for key, hours in value.items():
        key_path = _join(path, key)
        day_indexes = _parse_days(key)
        if day_indexes is None:
            s.chk.problem(
                key_path,
                "days like mon, mon-fri, sat-sun or tue,thu",
                _show(key),
                "day names: " + ", ".join(_DAYS),
            )
            broken = True
            continue
        intervals = _parse_hours(s.chk, key_path, hours)
        if intervals is _BAD:
            broken = True
            continue
        for day in day_indexes:
            if day in given_by:
                s.chk.problem(
                    key_path,
                    "each day in one entry",
                    f"{_DAYS[day]} again",
                    f"{_DAYS[day]} is already given by {given_by[day]}",
                )
                broken = True
                continue
            given_by[day] = key
            days[day].extend(intervals)
    if broken:
        return _BAD
    if required and not any(days):
        return s.chk.problem(path, expected, "every day closed", "set always_open, or open hours")
    return tuple(tuple(sorted(d, key=lambda iv: iv.start)) for d in days)


def _parse_days(key: str) -> list[int] | None:
    result: list[int] = []
    for part in key.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            return None
        start = _DAYS.index(first)
        end = _DAYS.index(last) if last else start
        # A range may wrap round the week: fri-mon is fri, sat, sun, mon.
        count = (end - start) % 7 + 1
        result.extend((start + i) % 7 for i in range(count))
    return result


def _parse_hours(chk: _Checker, path: str, value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "closed":
        return []
    entries = value if isinstance(value, list) else [value]
    intervals: list[Interval] = []
    for index, entry in enumerate(entries):
        entry_path = f"{path}[{index}]" if isinstance(value, list) else path
        text = entry
        if not isinstance(text, str) and entry_path in chk.raw_text:
            text = chk.raw_text[entry_path]
        interval = _parse_interval(text) if isinstance(text, str) else None
        if interval is None:
            chk.problem(
                entry_path,
                'opening hours like "14:00-23:00", a list of them, or closed',
                _show(text),
                'use 24-hour clock times; "20:00-02:00" passes midnight, "24:00" ends at midnight',
            )
            return _BAD
        intervals.append(interval)
    return intervals


def _parse_interval(text: str) -> Interval | None:
    start_text, sep, end_text = text.replace(" ", "").partition("-")
    if not sep:
        return None
    start, end = _minutes(start_text), _minutes(end_text)
    if start is None or end is None or start == end or start == 24 * 60:
        return None
    return Interval(time(start // 60, start % 60), time(end // 60 % 24, end % 60))


def _minutes(text: str) -> int | None:
    match = _CLOCK_RE.fullmatch(text)
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _iso_date(chk: _Checker, path: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return chk.problem(path, "a date like 2025-12-24", _show(value.isoformat()))
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    return chk.problem(path, "a date like 2025-12-24", _show(value))


def _read_messages(root: _Section, language: LanguageConfig) -> Any:
    value = root.raw("messages")
    if value is _MISSING or value is None:
        return MappingProxyType({})
    s = root.mapping_at("messages", value)
    catalogue = _MessageCatalogue.load()
    result: dict[str, Mapping[str, str]] = {}
    for lang, texts in s.data.items():
        lang_path = s.path_of(lang)
        s.asked.append(lang)  # every language is read below; none is "unknown"
        if language.available is not _BAD and lang not in language.available:
            s.chk.problem(
                lang_path,
                "a language from language.available (" + ", ".join(language.available) + ")",
                _show(lang),
            )
            continue
        section = s.mapping_at(lang_path, texts)
        known = catalogue.texts.get(lang) if catalogue is not None else None
        overrides: dict[str, str] = {}
        for key in section.data:
            if known is not None and key not in known:
                continue  # reported by done() below, with a "did you mean"
            text = section.get(key, _text)
            if catalogue is not None and text is not _BAD:
                catalogue.check_placeholders(s.chk, section.path_of(key), key, text)
            overrides[key] = text
        if known is not None:
            section.asked = list(known)  # the catalogue's keys are the known ones here
        section.done()
        result[lang] = MappingProxyType(overrides)
    return MappingProxyType(result)


@dataclass(frozen=True, slots=True)
class _MessageCatalogue:
    """What bot.messages tells about its texts, as far as it tells it."""

    texts: Mapping[str, Mapping[str, str]]  # language -> key -> template
    params: Mapping[str, Iterable[str]] | None  # key -> placeholders the bot fills in
    common: tuple[str, ...]  # placeholders every template may use
    placeholders: Callable[[str], set[str]] | None  # the names a template uses

    @classmethod
    def load(cls) -> _MessageCatalogue | None:
        # Imported lazily: bot.messages belongs to another part of the bot and may not exist
        # yet. Without it keys go unchecked, which beats refusing every override.
        try:
            module = importlib.import_module("bot.messages")
        except ImportError:
            return None
        texts = getattr(module, "CATALOGUE", None)
        if not isinstance(texts, Mapping):
            return None
        params = getattr(module, "PARAMS", None)
        placeholders = getattr(module, "placeholders", None)
        return cls(
            texts={k: v for k, v in texts.items() if isinstance(v, Mapping)},
            params=params if isinstance(params, Mapping) else None,
            common=tuple(getattr(module, "COMMON", ())),
            placeholders=placeholders if callable(placeholders) else None,
        )

    def check_placeholders(self, chk: _Checker, path: str, key: str, text: str) -> None:
        # The bot leaves a {name} it cannot fill in visible, so a misspelt one would reach a
        # chatter as "{positon}". Checked with bot.messages' own reading of a template.
        if self.params is None or self.placeholders is None or key not in self.params:
            return
        allowed = set(self.params[key]) | set(self.common)
        unknown = sorted(self.placeholders(text) - allowed)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
            chk.problem(
                path,
                "only the placeholders " + ", ".join("{" + n + "}" for n in sorted(allowed)),
                ", ".join("{" + n + "}" for n in unknown),
                f"did you mean {{{close[0]}}}?" if close else "write {{ for a literal {",
            )


def _topic(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    return text.strip() if isinstance(text, str) else _BAD


def _read_logging(root: _Section) -> LoggingConfig:
    s = root.section("logging")
    level = s.get("level", _log_level, default="INFO")
    as_json = s.get("json", _bool, default=False)
    s.done()
    return LoggingConfig(level, as_json)


def _log_level(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD or text.upper() in _LOG_LEVELS:
        return text if text is _BAD else text.upper()
    return chk.problem(path, "one of " + ", ".join(_LOG_LEVELS), _show(text))


def _read_http(root: _Section) -> HttpConfig:
    s = root.section("http")
    host = s.get("host", _loopback_host, default="127.0.0.1")
    port = s.get("port", _int, default=9108, minimum=0, maximum=65535)
    s.done()
    return HttpConfig(host, port)


def _loopback_host(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    try:
        loopback = text == "localhost" or ipaddress.ip_address(text).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return text
    return chk.problem(
        path,
        "a loopback address (127.0.0.1, ::1 or localhost)",
        _show(text),
        "health and metrics stay on this machine; put a reverse proxy in front to expose them",
    )


def _check_lobbies_against_volunteers(
    chk: _Checker, intake: IntakeConfig, volunteers: VolunteersConfig
) -> None:
    # Chatters sit in lobby rooms: the volunteers' room must never be one of them.
    if intake.lobby_rooms is _BAD or volunteers.room is _BAD:
        return
    for index, room in enumerate(intake.lobby_rooms):
        if room == volunteers.room:
            chk.problem(
                f"intake.lobby_rooms[{index}]",
                "a room other than the volunteers' room",
                _show(room),
                "chatters would see the volunteers' room",
            )


# --------------------------------------------------------------------------------------
# Entry point


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    read_secret_files: bool = True,
) -> Config:
    """Read and check the config file; raise ConfigErrors listing every problem found.

    ``env`` replaces ``os.environ`` for ``${NAME}`` substitution. ``read_secret_files=False``
    checks everything except the contents of ``*_file`` secrets, for checking a config on a
    machine that does not hold the secrets (CI, an admin's laptop); such a Config carries
    placeholders instead of secrets and must not be used to run the bot.
    """
    file = str(path)
    file_path = Path(path)
    chk = _Checker(
        file,
        file_path.absolute().parent,
        os.environ if env is None else env,
        read_secret_files,
    )
    try:
        data = file_path.read_bytes()
    except OSError as e:
        chk.file_problem("a readable config file", _os_reason(e))
        raise ConfigErrors(chk.problems) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        chk.file_problem("UTF-8 text", "bytes that are not UTF-8", line)
        raise ConfigErrors(chk.problems) from None

    document = chk.parse(text)
    if document is _BAD:
        raise ConfigErrors(chk.problems)
    if not isinstance(document, dict):
        chk.file_problem("a mapping of sections like homeserver: and bot:", _show(document), 1)
        raise ConfigErrors(chk.problems)

    root = _Section(chk, "", document)
    homeserver = _read_homeserver(root)
    bot = _read_bot(root)
    storage = _read_storage(root)
    encryption = _read_encryption(root)
    intake = _read_intake(root)
    language = _read_language(root)
    volunteers = _read_volunteers(root, language, bot.user_id)
    admins = root.items("admins", _user_id, default=(), expected="a list of Matrix user IDs")
    routing = _read_routing(root)
    limits = _read_limits(root)
    privacy = _read_privacy(root, limits)
    opening_hours = _read_opening_hours(root)
    messages = _read_messages(root, language)
    topics = root.items("topics", _topic, default=DEFAULT_TOPICS, expected="a list of topic names")
    logging = _read_logging(root)
    http = _read_http(root)
    _check_lobbies_against_volunteers(chk, intake, volunteers)
    root.done()

    if chk.problems:
        # In file order, so the list reads top to bottom beside the file.
        chk.problems.sort(key=lambda p: p.line or 0)
        raise ConfigErrors(chk.problems)
    return Config(
        homeserver=homeserver,
        bot=bot,
        storage=storage,
        encryption=encryption,
        intake=intake,
        volunteers=volunteers,
        admins=admins,
        routing=routing,
        limits=limits,
        privacy=privacy,
        opening_hours=opening_hours,
        language=language,
        messages=messages,
        topics=topics,
        logging=logging,
        http=http,
    )
