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

Parts, in the order a value passes through them: ``source`` (YAML with line numbers and
``${ENV}``), ``fields`` (one typed value), ``reader`` (one mapping: known keys, lists,
secrets), ``sections``, ``hours`` and ``overrides`` (one reader per section), ``load``
(the entry point). ``model`` is the result, ``errors`` the problems, and ``policy`` builds
the core's Policy from the sections. Names with a leading underscore are shared among
these modules only: everything else imports from ``bot.config``.
"""

from __future__ import annotations

from bot.config.errors import ConfigErrors, ConfigProblem
from bot.config.fields import parse_duration
from bot.config.load import load_config
from bot.config.model import (
    DEFAULT_TOPICS,
    BotConfig,
    ChatterDevices,
    Config,
    EncryptionConfig,
    HomeserverConfig,
    HttpConfig,
    IntakeConfig,
    LanguageConfig,
    LimitsConfig,
    LoggingConfig,
    OpeningHoursConfig,
    PrivacyConfig,
    RateLimit,
    RoutingConfig,
    StorageConfig,
    SupervisionConfig,
    TrustRule,
    VolunteerConfig,
    VolunteersConfig,
    WebchatConfig,
)
from bot.config.policy import build_policy
from bot.core.model import Interval
from bot.core.model import Strategy as RoutingStrategy

__all__ = [
    "DEFAULT_TOPICS",
    "BotConfig",
    "ChatterDevices",
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
    "RateLimit",
    "RoutingConfig",
    "RoutingStrategy",
    "StorageConfig",
    "SupervisionConfig",
    "TrustRule",
    "VolunteerConfig",
    "VolunteersConfig",
    "WebchatConfig",
    "build_policy",
    "load_config",
    "parse_duration",
]
