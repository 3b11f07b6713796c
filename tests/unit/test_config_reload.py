"""Reading the config file again while the bot runs (`bot.reload`, `bot.config.reload`):
a good file replaces the policy and the texts, a bad one changes nothing, and what only a
restart can change keeps its running value and is named.

Real files in tmp_path, read by the real `load_config`; no mocks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import load_config
from bot.config.reload import RESTART_ONLY, compare
from bot.core.events import Reload
from bot.core.ids import RoomID, UserID
from bot.outcomes import Done, Known, Outcome, Reloaded, ReloadFailed
from bot.reload import Reloader, WithReload
from tests.unit.test_config import MINIMAL, edited, write_config

STAFF = RoomID("!vakt:helpline.test")
WITH_ADMIN = MINIMAL + 'admins: ["@ada:helpline.test"]\n'


def reloader(path: Path) -> Reloader:
    return Reloader(lambda: load_config(path), load_config(path), STAFF)


def test_nothing_changed_is_nothing_to_restart(tmp_path: Path) -> None:
    path = write_config(tmp_path, WITH_ADMIN)
    found = compare(load_config(path), load_config(path))
    assert found.restart == ()
    assert found.config == load_config(path)


def test_restart_only_keys_keep_their_running_value_and_are_named(tmp_path: Path) -> None:
    running = load_config(write_config(tmp_path, WITH_ADMIN))
    text = edited("https://matrix.helpline.test/", "https://other.helpline.test/", WITH_ADMIN)
    text = edited('room: "#vakt:helpline.test"', 'room: "#annet:helpline.test"', text)
    text += "http:\n  port: 9200\nlimits:\n  max_duration: 45m\n"
    loaded = load_config(write_config(tmp_path, text, name="new.yaml"))
    found = compare(running, loaded)
    assert found.restart == ("homeserver", "volunteers.room", "http")
    assert found.config.homeserver == running.homeserver
    assert found.config.volunteers.room == running.volunteers.room
    assert found.config.http == running.http
    # What may change does.
    assert found.config.limits.max_duration.total_seconds() == 45 * 60


def test_every_restart_only_path_names_a_setting(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    for path in RESTART_ONLY:
        obj: object = config
        for name in path.split("."):
            obj = getattr(obj, name)  # raises for a path that names nothing


async def test_a_good_file_replaces_the_policy_and_tells_the_watchers(tmp_path: Path) -> None:
    path = write_config(tmp_path, WITH_ADMIN)
    r = reloader(path)
    seen: list[object] = []
    r.watch(lambda config, policy: seen.append((config.topics, policy.topics)))
    text = edited(
        '    - {user_id: "@anne:helpline.test", alias: Anne}\n',
        '    - {user_id: "@anne:helpline.test", alias: Anne}\n'
        '    - {user_id: "@dag:helpline.test", alias: Dag}\n',
        WITH_ADMIN,
    )
    path.write_text(text + "topics: [angst, annet]\n")
    outcome = await r.reload()
    assert isinstance(outcome, Reloaded)
    assert outcome.restart == ()
    assert outcome.policy is r.policy
    assert [p.alias for p in r.policy.volunteers] == ["Anne", "Dag"]
    assert r.policy.admins == frozenset({UserID("@ada:helpline.test")})
    assert r.policy.staff_room == STAFF
    assert seen == [(("angst", "annet"), ("angst", "annet"))]


async def test_a_bad_file_changes_nothing_and_logs_each_problem_with_its_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, WITH_ADMIN)
    r = reloader(path)
    before, config = r.policy, r.config
    seen: list[object] = []
    r.watch(lambda *args: seen.append(args))
    bad = edited("alias: Anne", "alias: Anne, max_sessions: 0", WITH_ADMIN)
    path.write_text(bad + "limits:\n  max_duration: soon\n")
    with caplog.at_level(logging.ERROR, logger="bot.reload"):
        outcome = await r.reload()
    assert outcome == ReloadFailed(2)
    assert r.policy is before
    assert r.config is config
    assert seen == []
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert f"{path}:12: volunteers.members[0].max_sessions" in logged
    assert f"{path}:18: limits.max_duration" in logged
    assert "correct horse" not in logged  # the password file's content
    # The file fixed: the next reload takes it.
    path.write_text(WITH_ADMIN)
    assert isinstance(await r.reload(), Reloaded)


async def test_a_restart_only_change_stays_reported_until_the_restart(tmp_path: Path) -> None:
    path = write_config(tmp_path, WITH_ADMIN)
    r = reloader(path)
    path.write_text(WITH_ADMIN + "http:\n  port: 9200\n")
    first = await r.reload()
    again = await r.reload()
    assert isinstance(first, Reloaded)
    assert isinstance(again, Reloaded)
    assert first.restart == again.restart == ("http",)
    assert r.config.http.port != 9200


class Recorder:
    """An effect runner that records what it is given: the runner `WithReload` wraps."""

    def __init__(self) -> None:
        self.ran: list[object] = []

    async def run(self, effect: object, txn_id: str, known: Known) -> Outcome:
        self.ran.append(effect)
        return Done()


async def test_the_runner_carries_out_reload_itself_and_passes_on_the_rest(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, WITH_ADMIN)
    inner = Recorder()
    runner = WithReload(inner, reloader(path))
    outcome = await runner.run(Reload(STAFF, UserID("@ada:helpline.test")), "t1", Known())
    assert isinstance(outcome, Reloaded)
    assert inner.ran == []
    assert await runner.run("something else", "t2", Known()) == Done()
    assert inner.ran == ["something else"]
