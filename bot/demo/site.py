"""A demo helpline on this machine: Synapse on 127.0.0.1, accounts, rooms, config, bot.

Everything lives in one folder (``./.demo`` by default):

    state.json       the accounts (with passwords), rooms and secrets; mode 0600
    synapse/         Synapse's config, SQLite database, media and logs
    config.yaml      the bot's generated config
    bot/             the bot's data dir (database, crypto store)
    bot.log          the bot's log

A second run reuses the folder: the same port, accounts and rooms, so that an Element
session logged in before keeps working. If anything in it no longer fits (state missing
or from another version, the admin token rejected), the folder is replaced. Processes a
previous run left behind (a demo killed with SIGKILL) are found by the PID files Synapse
and the bot write, checked to be the demo's own by their command line, and stopped.

Setup follows what an admin does on a real server, through the same APIs: accounts by
shared-secret registration, the bot's rate-limit override through the admin API
(``override_ratelimit``), the rooms created by the supervisor's account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.devtools.runner import SubprocessBot, write_config
from bot.devtools.synapse import HOST, SynapseServer, free_port
from bot.devtools.users import (
    AdminAPIError,
    admin_request,
    override_ratelimit,
    q,
    register_user,
)
from bot.devtools.users import whoami as whoami_request

STATE_VERSION = 1
DEFAULT_PORT = 8008
DEFAULT_WEB_PORT = 8090  # the web chat page, when free (else any free port)
MEGOLM = "m.megolm.v1.aes-sha2"

# Synapse's own default for messages (0.2/s, burst 10): people in the demo are limited as
# on a real server, so the bot's override is what keeps the relay fast, as in production.
DEFAULT_RC_MESSAGE = {"per_second": 0.2, "burst_count": 10}


@dataclass(frozen=True)
class Account:
    role: str  # what it is for in the demo
    localpart: str
    display_name: str
    user_id: str = ""
    password: str = ""


# The demo's people: (role, localpart, display name)
PEOPLE = (
    ("bot", "helpline", "Alltidhjelp"),
    ("volunteer", "irene", "Irene"),
    ("volunteer", "jonas", "Jonas"),
    ("supervisor", "kari", "Kari"),
    ("chatter", "chatter", "Chatter"),
    ("admin", "demo-admin", "Demo admin"),
)


@dataclass
class State:
    version: int
    port: int
    accounts: dict[str, Account]  # by localpart
    staff_room: str
    lobby_room: str
    staff_alias: str
    lobby_alias: str
    store_key: str
    admin_token: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> State:
        raw = json.loads(text)
        raw["accounts"] = {k: Account(**v) for k, v in raw["accounts"].items()}
        state = cls(**raw)
        if state.version != STATE_VERSION:
            raise ValueError(f"state version {state.version}")
        return state

    def account(self, localpart: str) -> Account:
        return self.accounts[localpart]

    @property
    def bot(self) -> Account:
        return self.account("helpline")


class DemoError(RuntimeError):
    """The demo could not be set up; the message says what to do."""


Say = Callable[[str], None]


class DemoSite:
    def __init__(
        self,
        root: Path,
        *,
        port: int | None = DEFAULT_PORT,
        bot_sections: dict[str, dict[str, Any]] | None = None,
        say: Say = print,
    ) -> None:
        self.root = root.resolve()
        self.want_port = port
        self.bot_sections = bot_sections or {}
        self.say = say
        self.state_path = self.root / "state.json"
        self.config_path = self.root / "config.yaml"
        self.bot_dir = self.root / "bot"
        self.bot_log = self.root / "bot.log"
        # Synapse writes its pid_file only when it daemonizes: the demo keeps the PID.
        self.synapse_pid_file = self.root / "synapse.pid"
        self.synapse: SynapseServer | None = None
        self.bot: SubprocessBot | None = None
        self.state: State | None = None
        self.reused = False
        self.http_port = 0
        self.web_port = 0
        self.timings: dict[str, float] = {}

    @property
    def web_url(self) -> str:
        """The web chat page, as a chatter opens it."""
        return f"http://{HOST}:{self.web_port}/"

    @property
    def base_url(self) -> str:
        assert self.synapse is not None
        return self.synapse.base_url

    # ----------------------------------------------------------------------------------
    # up and down

    async def up(self, *, fresh: bool = False) -> None:
        """Synapse, accounts, rooms, config and the bot, reusing what is there if it fits."""
        started = time.monotonic()
        self.stop_leftovers()
        state = None if fresh else self._load_state()
        if state is None and self.root.exists():
            self.say(f"replacing the previous demo in {self.root}")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self._start_synapse(state.port if state else self._choose_port())
        if state is not None and not await self._still_valid(state):
            self.say("the previous demo's accounts no longer fit: replacing it")
            await asyncio.to_thread(self._stop_synapse)
            shutil.rmtree(self.root)
            self.root.mkdir(parents=True, mode=0o700)
            state = None
            await self._start_synapse(self._choose_port())
        self.reused = state is not None
        if state is None:
            t = time.monotonic()
            state = await self._provision()
            self.timings["accounts and rooms"] = time.monotonic() - t
            self._save_state(state)
        self.state = state
        await self._ratelimit_override(state)
        self._write_bot_config(state)
        t = time.monotonic()
        await self._start_bot()
        self.timings["bot"] = time.monotonic() - t
        self.timings["total"] = time.monotonic() - started

    async def down(self) -> None:
        """Stop the bot (SIGTERM, then it has 30 s), then Synapse; both by PID."""
        if self.bot is not None and self.bot.proc is not None:
            try:
                code = await asyncio.to_thread(self.bot.terminate, 30)
                self.say(f"bot stopped (pid {self.bot.proc.pid}, exit code {code})")
            except Exception:
                self.bot.kill()
                self.say(f"bot killed (pid {self.bot.proc.pid}): it did not stop in 30 s")
            self.bot = None
        if self.synapse is not None:
            pid = self.synapse.pid
            await asyncio.to_thread(self._stop_synapse)
            if pid is not None:
                self.say(f"Synapse stopped (pid {pid})")

    def alive(self) -> str | None:
        """None while both processes run; otherwise which one died, with its log tail."""
        if self.synapse is not None and not self.synapse.running:
            return f"Synapse exited.\n{self.synapse.log_tail(20)}"
        if self.bot is not None and self.bot.proc is not None and self.bot.proc.poll() is not None:
            return f"the bot exited with {self.bot.proc.returncode}.\n{self.bot.log_tail(20)}"
        return None

    # ----------------------------------------------------------------------------------
    # leftovers of an earlier run

    def stop_leftovers(self) -> None:
        """Stop a previous run's Synapse and bot if they still run (a demo killed hard)."""
        for pid_file, marker in (
            (self.bot_dir / "helpline-bot.lock", str(self.config_path)),
            (self.synapse_pid_file, str(self.root / "synapse")),
        ):
            pid = _read_pid(pid_file)
            if pid is None or not _is_ours(pid, marker):
                continue
            self.say(f"stopping a previous demo process (pid {pid})")
            _terminate(pid)

    # ----------------------------------------------------------------------------------
    # state

    def _load_state(self) -> State | None:
        try:
            state = State.from_json(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None
        if not (self.root / "synapse" / "homeserver.yaml").exists():
            return None
        return state

    def _save_state(self, state: State) -> None:
        fd = os.open(self.state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(state.to_json())

    async def _still_valid(self, state: State) -> bool:
        try:
            who = await whoami_request(self.base_url, state.admin_token)
        except (AdminAPIError, OSError):
            return False
        return who.get("user_id") == state.account("demo-admin").user_id

    # ----------------------------------------------------------------------------------
    # Synapse

    def _choose_port(self) -> int:
        if self.want_port and _port_free(self.want_port):
            return self.want_port
        return free_port(HOST)

    async def _start_synapse(self, port: int) -> None:
        self.synapse = SynapseServer(
            self.root / "synapse",
            port=port,
            extra_config={"rc_message": DEFAULT_RC_MESSAGE},
        )
        self.synapse.announce = False
        if not _port_free(self.synapse.port):
            raise DemoError(
                f"port {self.synapse.port} on {HOST} is taken by another program; "
                "stop it, or run again with --fresh to set up a new demo on a free port"
            )
        elapsed = await asyncio.to_thread(self.synapse.start)
        self.synapse_pid_file.write_text(f"{self.synapse.pid}\n")
        self.timings["synapse"] = elapsed
        self.say(f"Synapse up at {self.synapse.base_url} (pid {self.synapse.pid}, {elapsed:.1f} s)")

    def _stop_synapse(self) -> None:
        if self.synapse is not None:
            self.synapse.stop()
            self.synapse = None
            self.synapse_pid_file.unlink(missing_ok=True)

    # ----------------------------------------------------------------------------------
    # accounts and rooms

    async def _provision(self) -> State:
        assert self.synapse is not None
        base, secret = self.synapse.base_url, self.synapse.shared_secret
        accounts: dict[str, Account] = {}
        tokens: dict[str, str] = {}
        for role, localpart, name in PEOPLE:
            password = secrets.token_urlsafe(12)
            user_id, token, _ = await register_user(
                base, secret, localpart, password, admin=role == "admin", displayname=name
            )
            accounts[localpart] = Account(role, localpart, name, user_id, password)
            tokens[localpart] = token
        self.say("accounts registered: " + ", ".join(a.user_id for a in accounts.values()))
        bot = accounts["helpline"].user_id
        kari = tokens["kari"]
        staff = await self._create_room(
            kari,
            name="Vakt (demo)",
            topic="The volunteers' room: !på / !on to go on duty, !status, !help",
            alias="vakt",
            preset="private_chat",
            invite=[bot, accounts["irene"].user_id, accounts["jonas"].user_id],
        )
        for localpart in ("irene", "jonas"):
            await admin_request(
                base, tokens[localpart], "POST", f"/_matrix/client/v3/join/{q(staff)}"
            )
        lobby = await self._create_room(
            kari,
            name="Snakk med oss (demo)",
            topic="Write here and the helpline answers you in a private room",
            alias="snakk-med-oss",
            preset="public_chat",
            invite=[],
            power={"users": {bot: 50}},  # the bot may redact what chatters write here
        )
        self.say(
            f"rooms created: #vakt:{self.synapse.server_name} (volunteers), "
            f"#snakk-med-oss:{self.synapse.server_name} (lobby)"
        )
        # The registration devices have no keys; people log in with their own apps.
        for localpart, token in tokens.items():
            if localpart != "demo-admin":
                await admin_request(base, token, "POST", "/_matrix/client/v3/logout", json={})
        return State(
            version=STATE_VERSION,
            port=self.synapse.port,
            accounts=accounts,
            staff_room=staff,
            lobby_room=lobby,
            staff_alias=f"#vakt:{self.synapse.server_name}",
            lobby_alias=f"#snakk-med-oss:{self.synapse.server_name}",
            store_key=secrets.token_urlsafe(32),
            admin_token=tokens["demo-admin"],
        )

    async def _create_room(
        self,
        token: str,
        *,
        name: str,
        topic: str,
        alias: str,
        preset: str,
        invite: list[str],
        power: dict[str, Any] | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "name": name,
            "topic": topic,
            "room_alias_name": alias,
            "preset": preset,
            "visibility": "public" if preset == "public_chat" else "private",
            "invite": invite,
            "initial_state": [
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            ],
        }
        if power:
            body["power_level_content_override"] = power
        _, resp = await admin_request(
            self.base_url, token, "POST", "/_matrix/client/v3/createRoom", json=body
        )
        return str(resp["room_id"])

    async def _ratelimit_override(self, state: State) -> None:
        await override_ratelimit(self.base_url, state.admin_token, state.bot.user_id)
        self.say(
            f"rate-limit override set for {state.bot.user_id} "
            "(POST /_synapse/admin/v1/users/<bot>/override_ratelimit)"
        )

    # ----------------------------------------------------------------------------------
    # the bot

    def _write_bot_config(self, state: State) -> None:
        self.http_port = free_port(HOST)
        wanted = DEFAULT_WEB_PORT if self.want_port else 0
        self.web_port = wanted if wanted and _port_free(wanted) else free_port(HOST)
        sections: dict[str, dict[str, Any]] = {
            "storage": {"store_key": state.store_key},
            "logging": {"level": "INFO"},
            "http": {"port": self.http_port},
            "privacy": {"purge_after": "30s"},
            "limits": {"max_duration": "20m", "warn_before": ["5m", "1m"]},
            "webchat": {
                "enabled": True,
                "listen": f"{HOST}:{self.web_port}",
                "public_url": f"http://{HOST}:{self.web_port}",
            },
        }
        for key, value in self.bot_sections.items():
            sections.setdefault(key, {}).update(value)
        write_config(
            self.config_path,
            homeserver=self.base_url,
            bot_user=state.bot.user_id,
            bot_password=state.bot.password,
            data_dir=self.bot_dir,
            staff_room=state.staff_alias,
            volunteers=[
                {"user_id": a.user_id, "alias": a.display_name, "languages": ["nb", "en"]}
                for a in state.accounts.values()
                if a.role == "volunteer"
            ],
            supervisors=[a.user_id for a in state.accounts.values() if a.role == "supervisor"],
            lobby_rooms=[state.lobby_alias],
            admin_token=state.admin_token,
            **sections,
        )
        os.chmod(self.config_path, 0o600)

    async def _start_bot(self) -> None:
        self.bot = SubprocessBot(self.config_path, self.bot_log, own_session=True)
        self.bot.start()
        try:
            await self.bot.wait_ready(timeout=60)
        except RuntimeError as exc:
            raise DemoError(f"the bot did not start: {exc}") from exc
        assert self.bot.proc is not None
        await self._wait_healthy()
        self.say(f"bot running (pid {self.bot.proc.pid}), log in {self.bot_log}")

    async def _wait_healthy(self, timeout: float = 60) -> None:
        """Ready means synced: /healthz says 200 once the first sync has come back."""
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while loop.time() < deadline:
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            return
                        last = await resp.text()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = repr(exc)
                await asyncio.sleep(0.2)
        raise DemoError(f"the bot did not become healthy ({last}); see {self.bot_log}")


# --------------------------------------------------------------------------------------
# processes


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(text) if text.isdigit() else None


def _is_ours(pid: int, marker: str) -> bool:
    """The process runs and its command line names this demo's files."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return marker in cmdline or marker in _cwd(pid)


def _cwd(pid: int) -> str:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/cwd")
    return ""


def _terminate(pid: int, timeout: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True
