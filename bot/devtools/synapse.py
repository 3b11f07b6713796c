"""A throwaway Synapse homeserver for the integration and fault tests.

The server listens only on 127.0.0.1 on a free port, keeps everything (SQLite database,
media, signing key, logs) in one data directory, and can be stopped and started again
with the same data, which the fault tests use to take the homeserver down mid-flow.

Only the process this module started is ever signalled, by its PID.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

SERVER_NAME = "localhost"
HOST = "127.0.0.1"

# Generous enough that no test user is ever throttled by Synapse's defaults
# (rc_message defaults to 0.2/s with a burst of 10, logins to 5 in a burst, ...).
# Tests that exercise 429 handling set tighter limits themselves, e.g. through
# ``extra_config`` or by removing a user's override.
_RELAXED = {"per_second": 1000, "burst_count": 10000}

# Synapse versions differ in which rc_* keys they know; unknown keys are ignored, so
# listing one that a given version lacks (e.g. rc_room_creation before 1.13x) is harmless.
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _RELAXED,
    "rc_registration": _RELAXED,
    "rc_login": {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED},
    "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
    "rc_joins_per_room": _RELAXED,
    "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
    "rc_third_party_invite": _RELAXED,
    "rc_3pid_validation": _RELAXED,
    "rc_admin_redaction": _RELAXED,
    "rc_key_requests": _RELAXED,
    "rc_room_creation": _RELAXED,
    "rc_presence": {"per_user": _RELAXED},
    "rc_media_create": _RELAXED,
    "rc_delayed_event_mgmt": _RELAXED,
    "rc_reports": _RELAXED,
    "rc_user_directory": _RELAXED,
    "rc_profile": _RELAXED,
}

# Processes started by any SynapseServer in this interpreter, killed at exit in case the
# test session dies without running fixture teardown (e.g. a crash in a plugin).
_LIVE_PROCESSES: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE_PROCESSES.values()):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


class SynapseStartError(RuntimeError):
    """Synapse did not come up; the message carries the tail of its logs."""


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that is free right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path.name} does not exist)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path.name} is empty)"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class SynapseServer:
    """One Synapse process with its own data directory.

    ``start()`` writes the config on first use and launches the server; ``stop()`` ends it
    by PID; ``start()`` again brings it back on the same port with the same data, so
    access tokens, rooms and devices survive a restart.

    Attributes exposed to tests: ``base_url``, ``server_name``, ``shared_secret``,
    ``data_dir``, ``config_path``, ``log_path`` (Synapse's own log, WARNING and up),
    ``stdio_path`` (the process's stdout/stderr), ``port``, ``pid`` (None when stopped)
    and ``startup_times`` (seconds, one entry per successful start).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        extra_config: dict[str, Any] | None = None,
        startup_timeout: float = 60.0,
        log_level: str = "WARNING",
        server_name: str = SERVER_NAME,
        extra_listeners: list[dict[str, Any]] | None = None,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="helpline-synapse-")).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.server_name = server_name
        self.host = HOST
        self.config_path = self.data_dir / "homeserver.yaml"
        # A data dir that already has a config (the demo, run again) keeps its port and
        # secret: the accounts and tokens made before must keep working.
        existing = self._existing_config()
        self.port = port or existing.get("port") or free_port(HOST)
        self.base_url = f"http://{self.host}:{self.port}"
        self.shared_secret = existing.get("secret") or secrets.token_hex(32)
        self.log_config_path = self.data_dir / "log.config.yaml"
        self.log_path = self.data_dir / "homeserver.log"
        self.stdio_path = self.data_dir / "stdio.log"
        self.media_dir = self.data_dir / "media_store"
        self.db_path = self.data_dir / "homeserver.db"
        self.signing_key_path = self.data_dir / "signing.key"
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.extra_config = extra_config or {}
        # Listeners beside the client one (a TLS federation listener, bot.devtools.federation).
        self.extra_listeners = extra_listeners or []
        self.startup_times: list[float] = []
        self.announce = True  # print one line on stderr when up
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdio_file: Any = None

    # ----------------------------------------------------------------- config

    def _existing_config(self) -> dict[str, Any]:
        try:
            cfg = yaml.safe_load(self.config_path.read_text())
        except (FileNotFoundError, yaml.YAMLError):
            return {}
        listeners = cfg.get("listeners") or [{}]
        return {
            "port": listeners[0].get("port"),
            "secret": cfg.get("registration_shared_secret"),
        }

    def config(self) -> dict[str, Any]:
        """The homeserver config as a dict (what ``write_config`` writes)."""
        cfg: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(self.data_dir / "homeserver.pid"),
            # One plain-HTTP client listener on loopback only. The "client" resource
            # also serves /_synapse/admin. No federation listener unless one is added
            # (`extra_listeners`): no federation.
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": [self.host],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                },
                *self.extra_listeners,
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.db_path)},
            },
            "log_config": str(self.log_config_path),
            "media_store_path": str(self.media_dir),
            "enable_media_repo": True,
            "url_preview_enabled": False,
            "signing_key_path": str(self.signing_key_path),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "enable_metrics": False,
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "allow_guest_access": False,
            "macaroon_secret_key": secrets.token_hex(32),
            "form_secret": secrets.token_hex(32),
            # Password hashing is what makes registration and login cost ~0.5 s of CPU
            # at the default 12 rounds; 4 (bcrypt's minimum, what Synapse's own test
            # suite uses) makes it a few ms. Passwords here are throwaway.
            "bcrypt_rounds": 4,
            "presence": {"enabled": False},
            "retention": {"enabled": True},
            # How long redacted events are kept unredacted in the database. The
            # censoring job runs every 5 minutes regardless of this value.
            "redaction_retention_period": "1m",
            # Locally forgotten rooms are purged from the database after this long.
            "forgotten_room_retention_period": "1m",
            "user_ips_max_age": "1m",
            "experimental_features": {},
            **_RATE_LIMITS,
        }
        return _deep_merge(cfg, self.extra_config)

    def _log_config(self) -> dict[str, Any]:
        # Synapse's own log goes to a file at WARNING; nothing goes to stdout.
        return {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
            "root": {"level": self.log_level, "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def write_config(self) -> None:
        """Write the config, log config and (once) the server's signing key."""
        self.media_dir.mkdir(parents=True, exist_ok=True)
        if not self.signing_key_path.exists():
            # Same as `homeserver --generate-keys`, without starting a Python process.
            from signedjson.key import generate_signing_key, write_signing_keys

            with self.signing_key_path.open("w") as fh:
                write_signing_keys(fh, [generate_signing_key("a_test")])
        self.log_config_path.write_text(yaml.safe_dump(self._log_config(), sort_keys=False))
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    # ---------------------------------------------------------------- process

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> float:
        """Start Synapse and wait until it answers; return the startup time in seconds.

        Raises :class:`SynapseStartError` with the tail of the logs if it does not come up
        within ``startup_timeout`` or exits early.
        """
        if self.running:
            raise RuntimeError(f"Synapse already running (pid {self.pid})")
        if not self.config_path.exists():
            self.write_config()
        started = time.monotonic()
        self._stdio_file = self.stdio_path.open("ab")
        self._proc = proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdio_file,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C in the terminal reaches pytest, whose teardown then
            # stops Synapse cleanly, instead of killing Synapse under running tests.
            start_new_session=True,
        )
        _LIVE_PROCESSES[self._proc.pid] = self._proc
        try:
            self._wait_until_up(started)
        except BaseException:
            self.stop(timeout=5)
            raise
        elapsed = time.monotonic() - started
        self.startup_times.append(elapsed)
        if self.announce:
            print(
                f"[synapse] up at {self.base_url} (pid {proc.pid}) in {elapsed:.2f}s",
                file=sys.stderr,
            )
        return elapsed

    def _wait_until_up(self, started: float) -> None:
        assert self._proc is not None
        deadline = started + self.startup_timeout
        last_error = "no attempt yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise SynapseStartError(
                    f"Synapse exited with code {code} during startup.\n{self.log_tail()}"
                )
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                try:
                    conn.request("GET", "/_matrix/client/versions")
                    status = conn.getresponse().status
                finally:
                    conn.close()
                if status == 200:
                    return
                last_error = f"HTTP {status}"
            except OSError as exc:
                last_error = repr(exc)
            if time.monotonic() > deadline:
                raise SynapseStartError(
                    f"Synapse did not answer /_matrix/client/versions within "
                    f"{self.startup_timeout:.0f}s (last: {last_error}).\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process this object started: SIGTERM, then SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=10)
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL the server at once (a crash, for fault tests); ``start()`` revives it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
        self._forget_process()

    def restart(self) -> float:
        self.stop()
        return self.start()

    def _forget_process(self) -> None:
        if self._proc is not None:
            _LIVE_PROCESSES.pop(self._proc.pid, None)
        self._proc = None
        if self._stdio_file is not None:
            self._stdio_file.close()
            self._stdio_file = None

    # Async variants, so a test can take the server down while its clients keep running
    # on the event loop (the sync calls above would block the loop for seconds).
    async def async_start(self) -> float:
        return await asyncio.to_thread(self.start)

    async def async_stop(self, timeout: float = 15.0) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def async_kill(self) -> None:
        await asyncio.to_thread(self.kill)

    # --------------------------------------------------------------- cleanup

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of Synapse's log and of its stdout/stderr, for failure messages."""
        return (
            f"--- {self.log_path} (last {lines} lines) ---\n{_tail(self.log_path, lines)}\n"
            f"--- {self.stdio_path} (last {lines} lines) ---\n{_tail(self.stdio_path, lines)}"
        )

    def cleanup(self) -> None:
        """Stop the server and delete the data directory if this object created it."""
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SynapseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<SynapseServer {self.base_url} {state} data={self.data_dir}>"
