"""Moved to :mod:`bot.devtools.runner`; re-exported here for older imports."""

from bot.devtools.runner import *  # noqa: F403
