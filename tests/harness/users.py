"""Moved to :mod:`bot.devtools.users`; re-exported here for older imports."""

from bot.devtools.users import *  # noqa: F403
