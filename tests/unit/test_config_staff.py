"""The staff's settings: `admins`, `volunteers.members[].language` and the policy built
from them. Written files, the real loader; one problem each, with its key path and line."""

from __future__ import annotations

from pathlib import Path

from bot.config import build_policy, load_config
from bot.core.ids import UserID
from tests.unit.test_config import MINIMAL, edited, line_of, only_problem, write_config

ANNE = '    - {user_id: "@anne:helpline.test", alias: Anne}\n'


def test_admins_are_in_the_policy_and_are_staff(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + 'admins: ["@ada:helpline.test"]\n')
    policy = build_policy(load_config(path), None)
    ada = UserID("@ada:helpline.test")
    assert policy.admins == frozenset({ada})
    assert policy.is_admin(ada)
    assert policy.is_staff(ada)
    assert not policy.is_admin(UserID("@anne:helpline.test"))


def test_no_admins_by_default(tmp_path: Path) -> None:
    policy = build_policy(load_config(write_config(tmp_path)), None)
    assert policy.admins == frozenset()


def test_a_volunteers_language_defaults_to_the_default_language(tmp_path: Path) -> None:
    text = MINIMAL + "language:\n  default: en\n  available: [nb, en]\n"
    config = load_config(write_config(tmp_path, text))
    assert config.volunteers.members[0].language == "en"
    assert build_policy(config, None).volunteers[0].language == "en"


def test_a_volunteer_may_read_the_bot_in_their_own_language(tmp_path: Path) -> None:
    text = edited(ANNE, '    - {user_id: "@anne:helpline.test", alias: Anne, language: en}\n')
    config = load_config(write_config(tmp_path, text))
    assert config.volunteers.members[0].language == "en"
    assert build_policy(config, None).volunteers[0].language == "en"


def test_a_volunteers_language_must_be_one_the_line_has(tmp_path: Path) -> None:
    text = edited(ANNE, '    - {user_id: "@anne:helpline.test", alias: Anne, language: sv}\n')
    path = write_config(tmp_path, text)
    p = only_problem(path)
    assert p.path == "volunteers.members[0].language"
    assert p.line == line_of(path, "language: sv")
    assert "nb, en" in p.expected
    assert p.found == '"sv"'


def test_debrief_topics_are_read_into_the_policy(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "topics: [angst, selvmordstanker]\nsupervision:\n  debrief_topics: [selvmordstanker]\n"
    )
    policy = build_policy(load_config(write_config(tmp_path, text)), None)
    assert policy.debrief_topics == ("selvmordstanker",)


def test_no_debrief_topics_by_default(tmp_path: Path) -> None:
    assert build_policy(load_config(write_config(tmp_path)), None).debrief_topics == ()


def test_a_debrief_topic_must_be_a_topic(tmp_path: Path) -> None:
    text = MINIMAL + "topics: [angst]\nsupervision:\n  debrief_topics: [angst, selvmord]\n"
    path = write_config(tmp_path, text)
    p = only_problem(path)
    assert p.path == "supervision.debrief_topics[1]"
    assert p.line == line_of(path, "debrief_topics")
    assert "angst" in p.expected
    assert p.found == '"selvmord"'
