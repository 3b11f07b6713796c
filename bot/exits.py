"""The exit codes of `helpline-bot run`, in one list, and the error that carries one.

An operator's supervisor (systemd, compose) tells the reasons apart by these numbers, so
they never change meaning. A problem that stops the bot (at start, or a token rejected
while syncing) raises `StartupError` with its code; `bot.app` prints its message (one
line, no traceback) and exits with the code.
"""

from __future__ import annotations

EXIT_UNEXPECTED = 1  # anything else; the log has the details
EXIT_CONFIG = 2  # the config, the trust policy's needs, a database newer than the code
EXIT_LOGIN = 3  # the homeserver refused the login, or whoami failed
EXIT_IDENTITY = 4  # the data dir, the config and whoami disagree on who the bot is
EXIT_TOKEN = 5  # the saved access token was rejected (the device was logged out)
EXIT_LOCKED = 6  # another instance runs on the same data dir
EXIT_CROSS_SIGNING = 7  # the account's cross-signing keys cannot be checked or made


class StartupError(Exception):
    """A problem that stops the bot; carries its own exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
