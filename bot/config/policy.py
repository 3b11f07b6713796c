"""The core's `Policy`, built from the config's sections.

A setting the core obeys as written has the same name in its section (`IntakeConfig`,
`RoutingConfig`, `LimitsConfig`, `PrivacyConfig`, `SupervisionConfig`) and in `Policy`,
and is carried over by that name: adding one touches the section's dataclass, its reader
and `Policy`, and nothing here. Only what changes name or shape on the way is written out below.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from bot.config.model import Config
from bot.core.ids import RoomID, UserID
from bot.core.model import Policy, VolunteerProfile
from bot.messages import CATALOGUE

# Policy fields no config key sets: the core's own defaults hold.
CORE_ONLY = frozenset({"default_extension"})


def build_policy(config: Config, staff_room: RoomID | None) -> Policy:
    """Every setting the core obeys; `staff_room` is the volunteers' room as resolved."""
    return Policy(**(carried(config) | converted(config, staff_room)))


def carried(config: Config) -> dict[str, Any]:
    """The section fields that `Policy` has under the same name, as they are."""
    wanted = {f.name for f in fields(Policy)}
    sections = (config.intake, config.routing, config.limits, config.privacy, config.supervision)
    return {
        f.name: getattr(section, f.name)
        for section in sections
        for f in fields(section)
        if f.name in wanted
    }


def converted(config: Config, staff_room: RoomID | None) -> dict[str, Any]:
    """What `Policy` takes under another name or in another shape; wins over `carried`."""
    return {
        "volunteers": tuple(
            VolunteerProfile(
                UserID(v.user_id), v.alias, tuple(v.languages), v.max_sessions, v.language
            )
            for v in config.volunteers.members
        ),
        "supervisors": frozenset(UserID(u) for u in config.volunteers.supervisors),
        "admins": frozenset(UserID(u) for u in config.admins),
        "staff_room": staff_room,
        "bot_name": config.bot.display_name,
        "allowed_servers": frozenset(config.intake.allowed_servers),
        "default_language": config.language.default,
        "languages": tuple(config.language.available),
        "topics": tuple(config.topics),
        "canned": _canned(config.language.default),
        "hours": config.opening_hours.hours(),
        "block_key": config.block_key,
        "server_name": config.server_name,
        "web_chat_url": config.webchat.public_url if config.webchat.enabled else None,
    }


def _canned(language: str) -> tuple[str, ...]:
    """The names of the canned replies volunteers may send with !say."""
    prefix = "canned."
    names = {k.removeprefix(prefix) for k in CATALOGUE[language] if k.startswith(prefix)}
    return tuple(sorted(names - {"unknown"}))
