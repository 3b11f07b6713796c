"""The `webchat:` section: off by default, every key read, each mistake one problem with its
line, and the old `privacy.deactivate_prefix` pointed at its new place."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

from bot.config import RateLimit, load_config
from tests.unit.test_config import MINIMAL, line_of, only_problem, write_config

ADMIN = "homeserver:\n  url: https://matrix.helpline.test/\n  admin_token: s3cr3t-admin-token\n"
WITH_ADMIN = MINIMAL.replace("homeserver:\n  url: https://matrix.helpline.test/\n", ADMIN)


def test_every_key_is_read(tmp_path: Path) -> None:
    text = WITH_ADMIN + textwrap.dedent("""\
        webchat:
          enabled: true
          listen: "[::]:8443"
          public_url: https://chat.helpline.test/
          homeserver_url: https://matrix.helpline.test
          account_prefix: web-
          idle_erase: 10m
          max_open_accounts: 7
          rate_limit: {accounts: 2, per: 10m}
          pow_difficulty: 12
          quick_exit_url: https://www.yr.no
          frame_ancestors: ["https://www.helpline.test"]
          trusted_proxies: [127.0.0.1, "10.0.0.0/8", "::1"]
          texts:
            en: {title: "Chat with us", refused.full: "Full. {emergency}"}
        """)
    w = load_config(write_config(tmp_path, text), env={}).webchat
    assert w.enabled is True
    assert w.listen == ("::", 8443)
    assert w.public_url == "https://chat.helpline.test"
    assert w.homeserver_url == "https://matrix.helpline.test"
    assert w.account_prefix == "web-"
    assert w.idle_erase == timedelta(minutes=10)
    assert w.max_open_accounts == 7
    assert w.rate_limit == RateLimit(2, timedelta(minutes=10))
    assert w.pow_difficulty == 12
    assert w.quick_exit_url == "https://www.yr.no"
    assert w.frame_ancestors == ("https://www.helpline.test",)
    assert [str(n) for n in w.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert w.texts == {"en": {"title": "Chat with us", "refused.full": "Full. {emergency}"}}


def test_the_removed_deactivate_prefix_points_at_the_web_chat(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + 'privacy:\n  deactivate_prefix: "@anon-"\n')
    problem = only_problem(path)
    assert problem.path == "privacy.deactivate_prefix"
    assert problem.line == line_of(path, "deactivate_prefix")
    assert problem.hint is not None
    assert "webchat.account_prefix" in problem.hint


def test_enabled_needs_the_admin_token(tmp_path: Path) -> None:
    text = MINIMAL + "webchat: {enabled: true, public_url: https://chat.helpline.test}\n"
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "webchat.enabled"
    assert "admin" in problem.found


def test_enabled_needs_a_public_url(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, WITH_ADMIN + "webchat: {enabled: true}\n"))
    assert problem.path == "webchat.public_url"


def test_a_bad_listen_address(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "webchat:\n  listen: chat.example.org\n")
    problem = only_problem(path)
    assert (problem.path, problem.line) == ("webchat.listen", line_of(path, "listen:"))


def test_a_prefix_with_the_at_sign(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, MINIMAL + "webchat: {account_prefix: '@a-'}\n"))
    assert problem.path == "webchat.account_prefix"


def test_a_misspelt_text_name(tmp_path: Path) -> None:
    text = MINIMAL + "webchat:\n  texts:\n    nb: {titel: Hei}\n"
    problem = only_problem(write_config(tmp_path, text))
    assert problem.path == "webchat.texts.nb.titel"
    assert problem.hint == 'did you mean "title"?'


def test_texts_in_a_language_the_line_does_not_speak(tmp_path: Path) -> None:
    text = MINIMAL + "webchat:\n  texts:\n    de: {title: Hallo}\n"
    assert only_problem(write_config(tmp_path, text)).path == "webchat.texts.de"


def test_pow_difficulty_is_bounded(tmp_path: Path) -> None:
    problem = only_problem(write_config(tmp_path, MINIMAL + "webchat: {pow_difficulty: 40}\n"))
    assert problem.path == "webchat.pow_difficulty"


def test_a_trusted_proxy_that_is_not_an_address(tmp_path: Path) -> None:
    text = MINIMAL + "webchat:\n  trusted_proxies: [127.0.0.1, caddy]\n"
    path = write_config(tmp_path, text)
    problem = only_problem(path)
    assert problem.path == "webchat.trusted_proxies[1]"
    assert problem.line == line_of(path, "trusted_proxies")
    assert "caddy" in problem.found


def test_no_trusted_proxies_by_default(tmp_path: Path) -> None:
    w = load_config(write_config(tmp_path, MINIMAL), env={}).webchat
    assert w.trusted_proxies == ()
