"""Moved to :mod:`bot.devtools.synapse`; re-exported here for older imports."""

from bot.devtools.synapse import *  # noqa: F403
