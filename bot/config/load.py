"""`load_config`: the one entry point, reading the file section by section."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.config.errors import ConfigErrors
from bot.config.fields import _user_id
from bot.config.hours import _read_opening_hours
from bot.config.model import DEFAULT_TOPICS, Config
from bot.config.overrides import _read_messages
from bot.config.reader import _os_reason, _Section
from bot.config.sections import (
    _check_lobbies_against_volunteers,
    _read_bot,
    _read_encryption,
    _read_homeserver,
    _read_http,
    _read_intake,
    _read_language,
    _read_limits,
    _read_logging,
    _read_privacy,
    _read_routing,
    _read_storage,
    _read_volunteers,
    _topic,
)
from bot.config.source import _BAD, _Checker, _show
from bot.config.supervision import _read_supervision
from bot.config.webchat import _read_webchat


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
    file_path = Path(path)
    chk = _Checker(
        str(path),
        file_path.absolute().parent,
        os.environ if env is None else env,
        read_secret_files,
    )
    config = _read_sections(chk, _document(chk, file_path))
    if chk.problems:
        # In file order, so the list reads top to bottom beside the file.
        chk.problems.sort(key=lambda p: p.line or 0)
        raise ConfigErrors(chk.problems)
    return config


def _document(chk: _Checker, file_path: Path) -> dict[str, Any]:
    """The file as plain data; ConfigErrors if it cannot be read as a YAML mapping."""
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
    return document


def _read_sections(chk: _Checker, document: dict[str, Any]) -> Config:
    """Every section, in an order where each check finds what it depends on read.

    The result holds `_BAD` where a value was wrong: it is only a Config if `chk` has no
    problems afterwards.
    """
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
    supervision = _read_supervision(root, topics)
    logging = _read_logging(root)
    http = _read_http(root)
    webchat = _read_webchat(root, homeserver, language)
    _check_lobbies_against_volunteers(chk, intake, volunteers)
    root.done()
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
        webchat=webchat,
        supervision=supervision,
    )
