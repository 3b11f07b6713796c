"""Moved to :mod:`bot.devtools.client`; re-exported here for older imports."""

from bot.devtools.client import *  # noqa: F403
