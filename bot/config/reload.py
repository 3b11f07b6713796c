"""What a config read again while the bot runs may change, and what needs a restart.

`compare(running, loaded)` takes the config the bot runs with and the one just read from
the file (already checked: `load_config` raised nothing), and returns the config to run
with from now on: the loaded one, except for the keys in `RESTART_ONLY`, which keep their
running values. The key paths among those that differ are returned too, for the admin to
be told "needs a restart" (paths only: a value can be a secret).

Why these need a restart: the bot logs in, opens its database and crypto store, joins its
rooms and opens its listeners once, at start; changing them under a running connection
would strand what was made with the old values. Everything else (volunteers, supervisors,
admins, texts, limits, routing, opening hours, topics, intake rules) is read by the core's
`Policy` or the texts for each new step, and applies to what happens next.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bot.config.model import Config

RESTART_ONLY: tuple[str, ...] = (
    "homeserver",  # the connection
    "bot",  # the account, its device and display name
    "storage",  # the database and the crypto store (and its key)
    "encryption",  # the trust policy, built at start
    "intake.lobby_rooms",  # joined at start
    "volunteers.room",  # joined and resolved at start
    "privacy.retention_max_lifetime",  # set on each room as it is made
    "privacy.block_list_key",  # the block list's hashes depend on it
    "logging",  # set up before anything else
    "http",  # a listener
    "webchat",  # a listener, and the page it serves
)


@dataclass(frozen=True, slots=True)
class Comparison:
    config: Config  # to run with from now on
    restart: tuple[str, ...]  # the RESTART_ONLY paths that changed, not applied


def compare(running: Config, loaded: Config) -> Comparison:
    config = loaded
    restart: list[str] = []
    for path in RESTART_ONLY:
        if _get(running, path) != _get(loaded, path):
            restart.append(path)
            config = _put(config, path, _get(running, path))
    return Comparison(config, tuple(restart))


def _get(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def _put(obj: Any, path: str, value: Any) -> Any:
    name, _, rest = path.partition(".")
    if rest:
        value = _put(getattr(obj, name), rest, value)
    return replace(obj, **{name: value})
