"""Run the real bot against the test Synapse: in-process (a task) or as a subprocess.

The config is a real YAML file loaded by `bot.config.load_config`, so every integration
test also exercises the config path. In-process runs share the test's event loop, which
keeps them fast; subprocess runs can be killed with SIGKILL for the restart tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bot.config import Config, load_config


def write_config(
    path: Path,
    *,
    homeserver: str,
    bot_user: str,
    bot_password: str,
    data_dir: Path,
    staff_room: str,
    volunteers: list[dict[str, Any]],
    supervisors: Sequence[str] = (),
    lobby_rooms: Sequence[str] = (),
    admin_token: str | None = None,
    **sections: Any,
) -> Path:
    """A config file for the test bot. `sections`: more config, merged into the
    section of that name; a list (`admins`, `topics`) is the key's value as it is."""
    config: dict[str, Any] = {
        "homeserver": {"url": homeserver, **({"admin_token": admin_token} if admin_token else {})},
        "bot": {"user_id": bot_user, "password": bot_password, "display_name": "Alltidhjelp"},
        "storage": {"data_dir": str(data_dir), "store_key": secrets.token_urlsafe(24)},
        "encryption": {"trust": "cross_signed"},  # as in production
        "intake": {"lobby_rooms": list(lobby_rooms), "allowed_servers": ["*"]},
        "volunteers": {
            "room": staff_room,
            "members": volunteers,
            "supervisors": list(supervisors),
        },
        "opening_hours": {"always_open": True},
        "logging": {"level": "DEBUG"},
        "http": {"port": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class InProcessBot:
    """`bot.app.serve` as a task on the test's loop. The config file is the bot's: an
    admin's `!reload` reads it again (rewrite it with `write_config` first). SIGHUP would
    reach every in-process bot and the tests themselves: use a `SubprocessBot` for it."""

    def __init__(self, config_path: Path, *, purge_backoff: Any = None) -> None:
        self.config_path = config_path
        self.config: Config = load_config(config_path)
        self.purge_backoff = purge_backoff  # a bot.worker.retry.PurgeBackoff, to shorten it
        self.task: asyncio.Task[int] | None = None

    async def start(self, timeout: float = 30) -> None:
        from bot.app import serve

        ready = asyncio.Event()
        self.task = asyncio.create_task(
            serve(
                self.config,
                ready,
                config_path=self.config_path,
                purge_backoff=self.purge_backoff,
            )
        )
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {waiter, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self.task in done:
            waiter.cancel()
            raise RuntimeError(f"bot exited during start with {self.task.result()}")
        if waiter not in done:
            raise RuntimeError("bot did not become ready")

    async def stop(self) -> int:
        """What SIGTERM does: the serve loop's stop event, via the signal handler."""
        assert self.task is not None
        if not self.task.done():
            os.kill(os.getpid(), signal.SIGTERM)
        return await asyncio.wait_for(self.task, 60)


class SubprocessBot:
    """`python -m bot run` as a child process, for kill -9 tests."""

    def __init__(
        self,
        config_path: Path,
        log_path: Path,
        args: Sequence[str] = (),
        *,
        own_session: bool = False,
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.args = list(args)  # more `run` options, e.g. ["--log-level", "INFO"]
        # own_session: a Ctrl-C in the terminal does not reach the bot; whoever started
        # it stops it (the demo stops the bot first, then Synapse).
        self.own_session = own_session
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def start(self, *, purge_pause_after: str | None = None) -> None:
        """`purge_pause_after`: this run's purges stop after that step and wait (to be
        killed there); the child then runs through `bot.devtools.child`, which passes it."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self._log_start = log.tell()  # readiness is judged on this run's lines only
        command = ["-m", "bot", "run"]
        if purge_pause_after is not None:
            command = ["-m", "bot.devtools.child", "--purge-pause-after", purge_pause_after]
        self.proc = subprocess.Popen(
            [sys.executable, *command, "--config", str(self.config_path), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=self.own_session,
        )
        log.close()

    async def wait_ready(self, timeout: float = 60) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bot exited with {self.proc.returncode}: {self.log_tail()}")
            if b"serving" in self.log_path.read_bytes()[self._log_start :]:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"bot not ready: {self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
