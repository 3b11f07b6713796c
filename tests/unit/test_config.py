"""Tests for bot.config and the check-config command: plain functions, no event loop.

Each error test writes a small config into tmp_path and checks the one problem it causes:
its key path, line, and that it reads well. The example file is tested too, since it is
what every admin starts from.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
import types
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

import bot.config
from bot.cli import main
from bot.config import (
    Config,
    ConfigErrors,
    ConfigProblem,
    Interval,
    LimitsConfig,
    RoutingStrategy,
    TrustRule,
    VolunteerConfig,
    WebchatConfig,
    load_config,
    parse_duration,
)
from bot.core.hours import is_open
from bot.core.media import MediaLimits
from bot.core.model import ReadReceipts, server_allowed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.yaml"

PASSWORD = "correct horse battery staple"
STORE_KEY = "0123456789abcdef0123456789abcdef"

MINIMAL = """\
homeserver:
  url: https://matrix.helpline.test/
bot:
  user_id: "@bot:helpline.test"
  password_file: secrets/bot_password
storage:
  data_dir: data
  store_key_file: secrets/store_key
volunteers:
  room: "#vakt:helpline.test"
  members:
    - {user_id: "@anne:helpline.test", alias: Anne}
opening_hours:
  weekly:
    mon-fri: "14:00-23:00"
"""


def write_config(tmp_path: Path, text: str = MINIMAL, *, name: str = "config.yaml") -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "bot_password").write_text(PASSWORD + "\n")
    (secrets / "store_key").write_text(STORE_KEY + "\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def edited(old: str, new: str, text: str = MINIMAL) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def problems(path: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigErrors) as caught:
        load_config(path, env=env or {})
    return caught.value.problems


def only_problem(path: Path, env: dict[str, str] | None = None) -> ConfigProblem:
    found = problems(path, env)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# ---- a good file


def test_minimal_config_loads_with_defaults_and_types(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})

    assert isinstance(config, Config)
    assert config.homeserver.url == "https://matrix.helpline.test"  # trailing slash dropped
    assert config.homeserver.admin_token is None
    assert config.server_name == "helpline.test"  # from the bot's user ID
    assert config.bot.password == PASSWORD  # read from the file, final newline stripped
    assert config.bot.device_name == "helpline-bot"
    assert config.bot.display_name == "Alltidhjelp"
    assert config.storage.data_dir == tmp_path / "data"  # relative to the config file
    assert config.storage.store_key == STORE_KEY
    assert config.encryption.trust is TrustRule.CROSS_SIGNED
    assert config.intake.direct_messages is True
    assert config.intake.lobby_rooms == ()
    assert config.intake.allowed_servers == ("*",)
    assert server_allowed(config.intake.allowed_servers, "anywhere.example")
    assert config.intake.consent_required is False
    (anne,) = config.volunteers.members
    assert anne.alias == "Anne"
    assert anne.languages == ("nb",)  # the default language
    assert anne.max_sessions == 1
    assert config.volunteers.supervisors == ()
    assert config.routing.strategy is RoutingStrategy.LONGEST_IDLE
    assert config.routing.offer_timeout == timedelta(seconds=90)
    assert config.routing.lapses_before_off_duty == 2
    assert config.routing.language_fallback is True
    assert config.routing.waiting_reminder == timedelta(minutes=3)
    assert config.limits == LimitsConfig()
    assert config.limits.warn_before == (timedelta(minutes=10), timedelta(minutes=2))
    assert config.privacy.purge_after == timedelta(seconds=60)
    assert config.privacy.relay_media is False
    assert config.privacy.relay_read_receipts is ReadReceipts.OFF
    assert config.privacy.ask_rating is False
    assert config.privacy.media == MediaLimits()
    assert config.privacy.media.max_bytes == 10 * 1024 * 1024
    assert config.privacy.media.types == {"image/jpeg", "image/png", "image/webp"}
    assert config.privacy.retention_max_lifetime == timedelta(days=1)
    assert config.privacy.block_list_key is None
    assert config.webchat == WebchatConfig()
    assert config.webchat.enabled is False
    assert config.opening_hours.timezone == ZoneInfo("Europe/Oslo")
    assert config.opening_hours.always_open is False
    assert config.opening_hours.weekly[0] == (Interval(time(14), time(23)),)
    assert config.opening_hours.weekly[5] == ()
    assert config.language.default == "nb"
    assert config.language.available == ("nb", "en")
    assert dict(config.messages) == {}
    assert config.topics[0] == "angst"
    assert len(config.topics) == 7
    assert config.logging.level == "INFO"
    assert config.logging.json is False
    assert config.http.host == "127.0.0.1"
    assert config.http.port == 9108


def test_config_is_frozen_and_its_repr_hides_secrets(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.bot.user_id = "@other:helpline.test"  # type: ignore[misc]
    assert PASSWORD not in repr(config)
    assert STORE_KEY not in repr(config)


def test_full_config_values_are_read(tmp_path: Path) -> None:
    text = MINIMAL + textwrap.dedent("""\
        encryption: {trust: all_devices}
        intake:
          direct_messages: false
          lobby_rooms: ["#snakk:helpline.test", "!abc123:helpline.test"]
          allowed_servers: [helpline.test]
        routing: {strategy: broadcast, offer_timeout: 2m, waiting_reminder: 0}
        limits: {max_duration: 1h30m, warn_before: [2m, 15m], max_extension: 0}
        privacy: {purge_after: 0}
        language: {default: en, available: [en, nb, "no"]}
        logging: {level: debug, json: true}
        http: {host: "::1", port: 0}
        topics: [a, b]
        """)
    text = edited("alias: Anne}", "alias: Yes, languages: [en, no], max_sessions: 3}", text)
    config = load_config(write_config(tmp_path, text), env={})

    assert config.encryption.trust is TrustRule.ALL_DEVICES
    assert config.intake.lobby_rooms == ("#snakk:helpline.test", "!abc123:helpline.test")
    assert not server_allowed(config.intake.allowed_servers, "elsewhere.test")
    assert config.routing.strategy == "broadcast"
    assert config.routing.waiting_reminder == timedelta(0)
    assert config.limits.max_duration == timedelta(minutes=90)
    # Sorted, earliest warning first, whatever the order in the file.
    assert config.limits.warn_before == (timedelta(minutes=15), timedelta(minutes=2))
    assert config.privacy.purge_after == timedelta(0)
    # YAML 1.1 would turn unquoted yes and no into booleans; text keys take them as written.
    assert config.language.available == ("en", "nb", "no")
    assert config.volunteers.members[0].alias == "Yes"
    assert config.volunteers.members[0].languages == ("en", "no")
    assert config.volunteers.member("@anne:helpline.test") is config.volunteers.members[0]
    assert config.logging.level == "DEBUG"
    assert config.http.enabled is False
    assert config.topics == ("a", "b")


# ---- the example file


def example_with_secrets(tmp_path: Path) -> Path:
    """The example file, unchanged except that its /run/secrets files exist."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("synapse_admin_token", "bot_password", "store_key"):
        (secrets / name).write_text(f"{name}-0123456789abcdef\n")
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE.read_text().replace("/run/secrets/", f"{secrets}/"))
    return path


EXAMPLE_PLACEHOLDERS = [
    "homeserver.url",
    "bot.user_id",
    "volunteers.room",
    "volunteers.members[0].user_id",
    "volunteers.members[1].user_id",
    "volunteers.supervisors[0]",
    "admins[0]",
]


def test_example_file_fails_only_on_its_placeholders(tmp_path: Path) -> None:
    found = problems(example_with_secrets(tmp_path))
    assert [p.path for p in found] == EXAMPLE_PLACEHOLDERS
    assert all("placeholder from config.example.yaml" in p.found for p in found)


def test_example_file_with_placeholders_replaced_loads(tmp_path: Path) -> None:
    path = example_with_secrets(tmp_path)
    path.write_text(path.read_text().replace("example.org", "helpline.test"))
    config = load_config(path, env={})
    assert len(config.volunteers.members) == 2
    assert config.homeserver.admin_token == "synapse_admin_token-0123456789abcdef"


def test_check_config_on_the_example_lists_exactly_the_placeholders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --no-secret-files: this machine does not hold the example's /run/secrets files.
    assert main(["check-config", "--no-secret-files", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    reported = re.findall(r"^\S+:\d+: (\S+): expected", err, flags=re.MULTILINE)
    assert reported == EXAMPLE_PLACEHOLDERS
    assert "Traceback" not in err


def test_example_documents_every_key() -> None:
    # Every field of every section, and the *_file form of every secret, must appear in the
    # example as a key (possibly commented out, for optional keys without a default).
    documented = set(re.findall(r"^[ #]*-? *([a-z_]+):", EXAMPLE.read_text(), flags=re.MULTILINE))
    sections = [Config, VolunteerConfig]
    sections += [f.type for f in dataclasses.fields(Config)]  # names, as strings
    wanted: set[str] = set()
    for section in sections:
        cls = getattr(bot.config, section, None) if isinstance(section, str) else section
        if not dataclasses.is_dataclass(cls):
            continue  # tuples and mappings: messages, topics
        for f in dataclasses.fields(cls):
            wanted.add(f.name)
            if f.name in {"admin_token", "password", "store_key", "block_list_key"}:
                wanted.add(f"{f.name}_file")
    assert len(wanted) > 60
    assert wanted - documented == set()


# ---- one problem each


def test_missing_required_key_points_at_its_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, edited('  user_id: "@bot:helpline.test"\n', ""))
    problem = only_problem(path)
    assert problem.path == "bot.user_id"
    assert problem.line == line_of(path, "bot:")
    assert problem.found == "nothing (the key is missing)"


def test_missing_required_section(tmp_path: Path) -> None:
    text = MINIMAL.split("volunteers:")[0] + "opening_hours: {always_open: true}\n"
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "volunteers"
    assert problem.line is None
    assert str(problem).startswith(f"{tmp_path / 'config.yaml'}: volunteers: expected")


def test_wrong_type(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "limits:\n  queue_max_length: many\n")
    problem = only_problem(path)
    assert (problem.path, problem.line) == ("limits.queue_max_length", line_of(path, "many"))
    assert problem.expected == "a whole number"
    assert problem.found == '"many"'


def test_number_below_minimum(tmp_path: Path) -> None:
    path = write_config(tmp_path, edited("alias: Anne}", "alias: Anne, max_sessions: 0}"))
    problem = only_problem(path)
    assert problem.path == "volunteers.members[0].max_sessions"
    assert problem.expected == "a whole number of at least 1"


def test_bad_duration_reads_like_synapse(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, MINIMAL + "limits:\n  max_duration: 60m\n  warn_before: [10m, ten minutes]\n"
    )
    problem = only_problem(path)
    line = line_of(path, "ten minutes")
    assert str(problem).splitlines()[0] == (
        f"{path}:{line}: limits.warn_before[1]: "
        'expected a duration like 90s, 15m or 1h, found "ten minutes"'
    )
    assert str(problem).splitlines()[1].startswith("  hint: ")


def test_clock_time_as_duration_is_refused_with_a_hint(tmp_path: Path) -> None:
    # YAML 1.1 reads 1:30 as 90 (base 60): refuse it rather than guess.
    problem = only_problem(write_config(tmp_path, MINIMAL + "routing: {offer_timeout: 1:30}\n"))
    assert problem.path == "routing.offer_timeout"
    assert problem.hint is not None
    assert "1h30m" in problem.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("1h 30m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        ("45", timedelta(seconds=45)),
        (90, timedelta(seconds=90)),
        (0, timedelta(0)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "5 minutes", "1m1h", "-5", "1.5h", "h", -1, True])
def test_parse_duration_refuses(text: str | int) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_unknown_key_gets_did_you_mean(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "limits:\n  max_duraton: 30m\n")
    problem = only_problem(path)
    assert (problem.path, problem.line) == ("limits.max_duraton", line_of(path, "max_duraton"))
    assert problem.hint == 'did you mean "max_duration"?'


def test_unknown_top_level_section_gets_did_you_mean(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, MINIMAL + "privasy: {relay_media: true}\n"))
    assert problem.path == "privasy"
    assert problem.hint == 'did you mean "privacy"?'


def test_both_secret_forms_are_refused(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, edited("  password_file:", "  password: hunter2hunter2\n  password_file:")
    )
    problem = only_problem(path)
    assert problem.path == "bot.password_file"
    assert "not both" in problem.expected
    assert "hunter2" not in str(problem)


def test_missing_secret(tmp_path: Path) -> None:
    problem = only_problem(
        write_config(tmp_path, edited("  password_file: secrets/bot_password\n", ""))
    )
    assert problem.path == "bot.password"
    assert problem.found == "neither"


def test_unreadable_secret_file_gives_the_reason(tmp_path: Path) -> None:
    path = write_config(tmp_path, edited("secrets/bot_password", "secrets/nope"))
    problem = only_problem(path)
    assert problem.path == "bot.password_file"
    assert problem.line == line_of(path, "secrets/nope")
    assert "no such file or directory" in problem.found
    assert str(tmp_path / "secrets" / "nope") in problem.found


def test_secret_file_that_is_a_directory(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, edited("secrets/bot_password", "secrets")))
    assert "a directory" in problem.found


def test_empty_secret_file(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "secrets" / "bot_password").write_text("\n")
    problem = only_problem(path)
    assert problem.path == "bot.password_file"
    assert "empty" in problem.found


def test_short_store_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / "secrets" / "store_key").write_text("tooshort\n")
    problem = only_problem(path)
    assert problem.path == "storage.store_key_file"
    assert problem.found == "8 characters"
    assert "tooshort" not in str(problem)


def test_example_values_are_refused(tmp_path: Path) -> None:
    text = edited('"@anne:helpline.test"', '"@irene:example.org"')
    text = edited("https://matrix.helpline.test/", "https://matrix.example.org/", text)
    found = problems(write_config(tmp_path, text))
    assert [p.path for p in found] == ["homeserver.url", "volunteers.members[0].user_id"]
    assert found[1].found == '"@irene:example.org", the placeholder from config.example.yaml'


def test_environment_substitution(tmp_path: Path) -> None:
    text = edited("  password_file: secrets/bot_password\n", "  password: ${BOT_PW}\n")
    text = edited("https://matrix.helpline.test/", "https://${HS_HOST}/", text)
    text += "http: {port: '${PORT}'}\n"
    text += "webchat: {quick_exit_url: 'https://x.test/$$-$${literal}'}\n"
    env = {"BOT_PW": "from-the-env", "HS_HOST": "matrix.helpline.test", "PORT": "9200"}
    config = load_config(write_config(tmp_path, text), env=env)
    assert config.bot.password == "from-the-env"
    assert config.homeserver.url == "https://matrix.helpline.test"
    assert config.http.port == 9200  # a number, though it came from the environment as text
    assert config.webchat.quick_exit_url == "https://x.test/$$-${literal}"


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, edited("  password_file: secrets/bot_password\n", "  password: ${BOT_PW}\n")
    )
    problem = only_problem(path, env={"OTHER": "x"})
    assert problem.path == "bot.password"
    assert problem.line == line_of(path, "${BOT_PW}")
    assert "BOT_PW" in problem.expected


def test_several_problems_are_reported_at_once_with_their_lines(tmp_path: Path) -> None:
    text = """\
    homeserver:
      url: matrix.helpline.test
    bot:
      user_id: "bot:helpline.test"
      password_file: secrets/bot_password
    storage:
      data_dir: data
      store_key_file: secrets/store_key
    volunteers:
      room: "#vakt:helpline.test"
      members:
        - {user_id: "@anne:helpline.test", alias: Anne, languages: [de]}
        - {user_id: "@anne:helpline.test", alias: Anne2}
    routing:
      strategy: fastest
    opening_hours:
      always_open: yes
    """
    path = write_config(tmp_path, text)
    found = problems(path)
    assert [(p.path, p.line) for p in found] == [
        ("homeserver.url", 2),
        ("bot.user_id", 4),
        ("volunteers.members[0].languages[0]", 12),
        ("volunteers.members[1].user_id", 13),
        ("routing.strategy", 15),
    ]
    assert found[0].hint == 'add the scheme: "https://matrix.helpline.test"'
    assert found[1].hint == 'did you mean "@bot:helpline.test"?'
    assert found[4].expected == "one of longest_idle, least_busy, round_robin, broadcast"
    assert str(ConfigErrors(found)).count("\n") >= 4


def test_warn_before_must_be_shorter_than_max_duration(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "limits: {max_duration: 10m, warn_before: [10m, 2m]}\n")
    problem = only_problem(path)
    assert problem.path == "limits.warn_before[0]"
    assert "shorter than limits.max_duration (10m)" in problem.expected


def test_idle_warning_must_come_before_idle_timeout(tmp_path: Path) -> None:
    text = MINIMAL + "limits: {chatter_idle: 5m, idle_warning_before: 5m}\n"
    assert only_problem(write_config(tmp_path, text)).path == "limits.idle_warning_before"


def test_retention_must_outlive_a_conversation(tmp_path: Path) -> None:
    problem = only_problem(
        write_config(tmp_path, MINIMAL + "privacy: {retention_max_lifetime: 1h}\n")
    )
    assert problem.path == "privacy.retention_max_lifetime"
    assert "2h1m" in problem.expected  # 30m queue + 60m + 30m extension + 60s purge


def test_media_types_must_be_ones_the_bot_recognises_from_bytes(tmp_path: Path) -> None:
    text = MINIMAL + "privacy:\n  media: {types: [image/png, image/svg+xml]}\n"
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "privacy.media.types[1]"
    assert "image/jpeg" in problem.expected
    assert "application/pdf" in problem.expected


def test_media_size_limit_is_bounded(tmp_path: Path) -> None:
    for value in ("0", "60000000", "10MB"):
        text = MINIMAL + f"privacy:\n  media: {{max_bytes: {value}}}\n"
        assert only_problem(write_config(tmp_path, text)).path == "privacy.media.max_bytes"


def test_an_unknown_media_key_is_reported(tmp_path: Path) -> None:
    text = MINIMAL + "privacy:\n  media: {max_size: 1000}\n"
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "privacy.media.max_size"
    assert problem.hint == "known keys here: max_bytes, types"


def test_the_examples_media_settings_are_the_defaults() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())["privacy"]
    assert example["relay_media"] is False
    defaults = MediaLimits()
    assert example["media"]["max_bytes"] == defaults.max_bytes
    assert set(example["media"]["types"]) == defaults.types


def test_bad_timezone(tmp_path: Path) -> None:
    text = edited("opening_hours:\n", "opening_hours:\n  timezone: Europe/Olso\n")
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "opening_hours.timezone"
    assert problem.found == '"Europe/Olso"'


@pytest.mark.parametrize(
    ("weekly", "path"),
    [
        ('{mon-fry: "14:00-23:00"}', "opening_hours.weekly.mon-fry"),
        ('{mon-fri: "14-23"}', "opening_hours.weekly.mon-fri"),
        ('{mon-fri: "14:00-25:00"}', "opening_hours.weekly.mon-fri"),
        ('{mon-fri: "14:00-14:00"}', "opening_hours.weekly.mon-fri"),
        ('{mon: ["10:00-12:00", "noon-18:00"]}', "opening_hours.weekly.mon[1]"),
        ('{mon-fri: "14:00-23:00", fri: closed}', "opening_hours.weekly.fri"),
        ("{mon: closed}", "opening_hours.weekly"),
        ("{}", "opening_hours.weekly"),
    ],
)
def test_bad_opening_hours(tmp_path: Path, weekly: str, path: str) -> None:
    text = MINIMAL.split("opening_hours:")[0] + f"opening_hours:\n  weekly: {weekly}\n"
    assert only_problem(write_config(tmp_path, text)).path == path


def test_opening_hours_are_not_needed_when_always_open(tmp_path: Path) -> None:
    text = MINIMAL.split("opening_hours:")[0] + "opening_hours: {always_open: true}\n"
    config = load_config(write_config(tmp_path, text), env={})
    assert is_open(config.opening_hours.hours(), datetime(2025, 12, 24, 3, tzinfo=ZoneInfo("UTC")))


def test_opening_hours_pass_midnight_and_respect_closed_dates(tmp_path: Path) -> None:
    text = MINIMAL.split("opening_hours:")[0] + textwrap.dedent("""\
        opening_hours:
          weekly:
            mon-thu: "14:00-23:00"
            fri: ["10:00-12:00", "20:00-02:00"]
            sat,sun: "18:00-24:00"
          closed_dates: [2025-12-25, "2025-12-31"]
        """)
    hours = load_config(write_config(tmp_path, text), env={}).opening_hours
    core = hours.hours()
    oslo = ZoneInfo("Europe/Oslo")

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2025, 12, day, hour, minute, tzinfo=oslo)

    assert hours.weekly[4] == (
        Interval(time(10), time(12)),
        Interval(time(20), time(2)),
    )
    assert is_open(core, at(1, 14))  # Monday
    assert not is_open(core, at(1, 23))  # the end is exclusive
    assert not is_open(core, at(5, 13))  # Friday between its two intervals
    assert is_open(core, at(5, 23, 30))
    assert is_open(core, at(6, 1, 59))  # Saturday night: still Friday's interval
    assert not is_open(core, at(6, 2))
    assert is_open(core, at(6, 23, 59))  # 24:00 means until midnight
    assert not is_open(core, at(7, 0, 30))
    assert not is_open(core, at(25, 15))  # Christmas Day, a Thursday, is closed
    assert not is_open(core, at(31, 15))
    # The same instant in UTC is the same answer.
    assert is_open(core, at(1, 14).astimezone(ZoneInfo("UTC")))
    assert hours.closed_dates == {date(2025, 12, 25), date(2025, 12, 31)}


def test_bad_closed_date(tmp_path: Path) -> None:
    text = edited("opening_hours:\n", "opening_hours:\n  closed_dates: [2025-13-45]\n")
    assert only_problem(write_config(tmp_path, text)).path == "opening_hours.closed_dates[0]"


def test_default_language_must_be_available(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, MINIMAL + "language: {available: [en]}\n"))
    assert problem.path == "language.available"
    assert "default language nb" in problem.expected


def test_volunteer_language_must_be_available(tmp_path: Path) -> None:
    text = edited("alias: Anne}", "alias: Anne, languages: [nb, se]}")
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "volunteers.members[0].languages[1]"
    assert problem.found == '"se"'


def test_messages_for_an_unavailable_language(tmp_path: Path) -> None:
    text = MINIMAL + "messages:\n  de: {welcome: Hallo}\n"
    assert only_problem(write_config(tmp_path, text)).path == "messages.de"


@pytest.fixture
def catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("bot.messages")
    module.CATALOGUE = {  # type: ignore[attr-defined]
        "nb": {"welcome": "Hei! Du er nummer {position} i køen.", "goodbye": "Ha det."},
        "en": {"welcome": "Hi! You are number {position} in the queue.", "goodbye": "Bye."},
    }
    module.PARAMS = {"welcome": ("position",), "goodbye": ()}  # type: ignore[attr-defined]
    module.COMMON = ("emergency",)  # type: ignore[attr-defined]
    module.placeholders = lambda text: set(re.findall(r"\{(\w+)\}", text))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.messages", module)


@pytest.mark.usefixtures("catalogue")
def test_message_overrides_are_checked_against_the_catalogue(tmp_path: Path) -> None:
    good = MINIMAL + "messages:\n  en: {welcome: 'Hello, you are number {position}.'}\n"
    config = load_config(write_config(tmp_path, good), env={})
    assert config.message_override("en", "welcome") == "Hello, you are number {position}."
    assert config.message_override("nb", "welcome") is None

    text = MINIMAL + textwrap.dedent("""\
        messages:
          nb:
            welcom: Hei
            goodbye: "Ha det. {emergency}"
            welcome: "Du er nummer {positon}."
        """)
    found = problems(write_config(tmp_path, text))
    assert [(p.path, p.hint) for p in found] == [
        ("messages.nb.welcom", 'did you mean "welcome"?'),
        ("messages.nb.welcome", "did you mean {position}?"),
    ]


def test_message_overrides_work_with_the_real_catalogue(tmp_path: Path) -> None:
    messages = pytest.importorskip("bot.messages")
    key = next(iter(messages.CATALOGUE["en"]))
    text = MINIMAL + f"messages:\n  en:\n    {key}: Hello\n    {key}x: Hello\n"
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == f"messages.en.{key}x"


def test_message_keys_are_not_checked_without_a_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bot.messages", None)  # as if it did not exist yet
    text = MINIMAL + "messages:\n  nb: {anything: Hei}\n"
    config = load_config(write_config(tmp_path, text), env={})
    assert config.messages["nb"]["anything"] == "Hei"


def test_yaml_syntax_error_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, edited('"@anne:helpline.test"', "@anne:helpline.test"))
    problem = only_problem(path)
    assert problem.line == line_of(path, "@anne")
    assert problem.expected == "valid YAML"
    assert problem.hint is not None
    assert "quoted" in problem.hint


def test_unquoted_room_alias_is_a_comment_and_gets_a_hint(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, edited('"#vakt:helpline.test"', "#vakt")))
    assert (problem.path, problem.found) == ("volunteers.room", "an empty value")
    assert problem.hint is not None
    assert "comment" in problem.hint


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "routing: {}\nrouting: {strategy: broadcast}\n")
    problem = only_problem(path)
    assert (problem.path, problem.line) == ("routing", line_of(path, "strategy: broadcast"))


def test_duplicate_volunteer(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "alias: Anne}\n", 'alias: Anne}\n    - {user_id: "@anne:helpline.test", alias: A}\n'
    )
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "volunteers.members[1].user_id"
    assert problem.hint == "already listed as volunteers.members[0]"


def test_bad_room(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, edited('"#vakt:helpline.test"', "vakt")))
    assert problem.path == "volunteers.room"


def test_volunteers_room_must_not_be_a_lobby(tmp_path: Path) -> None:
    text = MINIMAL + 'intake: {lobby_rooms: ["#vakt:helpline.test"]}\n'
    assert only_problem(write_config(tmp_path, text)).path == "intake.lobby_rooms[0]"


def test_intake_needs_a_way_in(tmp_path: Path) -> None:
    text = MINIMAL + "intake: {direct_messages: false}\n"
    assert only_problem(write_config(tmp_path, text)).path == "intake.direct_messages"


def test_http_must_stay_on_loopback(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, MINIMAL + "http: {host: 0.0.0.0}\n"))
    assert problem.path == "http.host"


def test_the_server_name_is_the_bots_own(tmp_path: Path) -> None:
    text = edited('"@bot:helpline.test"', '"@bot:helpline.test:8448"')
    assert load_config(write_config(tmp_path, text), env={}).server_name == "helpline.test:8448"


def test_server_name_is_refused_with_where_it_comes_from_now(tmp_path: Path) -> None:
    # It could only ever repeat the server part of bot.user_id: a second place to get wrong.
    text = edited("/\n", "/\n  server_name: helpline.test\n")
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "homeserver.server_name"
    assert "bot.user_id" in str(problem)


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("false", ReadReceipts.OFF),
        ("true", ReadReceipts.VOLUNTEER_TO_CHATTER),
        ("volunteer_to_chatter", ReadReceipts.VOLUNTEER_TO_CHATTER),
        ("both", ReadReceipts.BOTH),
    ],
)
def test_relay_read_receipts_reads_a_direction(
    tmp_path: Path, written: str, meant: ReadReceipts
) -> None:
    text = MINIMAL + f"privacy: {{relay_read_receipts: {written}}}\n"
    assert load_config(write_config(tmp_path, text), env={}).privacy.relay_read_receipts is meant


def test_relay_read_receipts_names_its_choices(tmp_path: Path) -> None:
    text = MINIMAL + "privacy: {relay_read_receipts: chatter_to_volunteer}\n"
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "privacy.relay_read_receipts"
    assert "both" in str(problem)


def test_missing_and_empty_config_files(tmp_path: Path) -> None:
    (missing,) = problems(tmp_path / "nope.yaml")
    assert str(missing) == (
        f"{tmp_path / 'nope.yaml'}: expected a readable config file, "
        "found no such file or directory"
    )
    (empty,) = problems(write_config(tmp_path, ""))
    assert empty.found == "an empty file"
    (not_a_mapping,) = problems(write_config(tmp_path, "- a\n- b\n"))
    assert not_a_mapping.found == "a list"


# ---- the command line


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (1 volunteer, 0 lobby rooms, strategy longest_idle)\n"
    assert err == ""


def test_check_config_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, MINIMAL + "limits: {max_duration: forever}\n")
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:" in err
    assert "limits.max_duration" in err
    assert err.endswith("1 problem found\n")
    assert "Traceback" not in err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_run_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_run_hands_the_config_to_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    app = types.ModuleType("bot.app")
    app.run = lambda config, args: seen.append((config, args.log_level)) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.app", app)
    assert main(["run", "--config", str(write_config(tmp_path)), "--log-level", "debug"]) == 0
    ((config, level),) = seen
    assert isinstance(config, Config)
    assert level == "DEBUG"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["check-config"]) == 2
    assert main(["--help"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_python_dash_m_bot_check_config_exits_2_without_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, "homeserver: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "expected valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_allowed_server_that_is_not_a_server_name_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    text = MINIMAL.replace(
        "volunteers:", 'intake:\n  allowed_servers: ["https://matrix.org"]\nvolunteers:', 1
    )
    path = write_config(tmp_path, text)
    problem = only_problem(path)
    assert problem.path == "intake.allowed_servers[0]"
    assert problem.line == line_of(path, "allowed_servers")
    assert "server name" in problem.expected
