"""Fixtures for tests against a real Synapse on 127.0.0.1.

- ``synapse`` (session): one :class:`~bot.devtools.synapse.SynapseServer` per test
  session. If it cannot start, every test using it FAILS with the log tail (no skip).
- ``admin`` (session): a server admin (:class:`~bot.devtools.users.RegisteredUser`),
  not rate limited.
- ``user_factory`` (session) and ``make_user`` (session): ``await make_user(prefix="user",
  admin=False, unlimited=True, displayname=None) -> RegisteredUser`` with unique names.
- ``make_client`` (per test): ``await make_client(user=None, *, auto_join=False, ...)
  -> TestClient``, a logged-in, syncing E2EE client; closed at teardown.
- ``federation`` (session, started only when a test asks for it): two more Synapses that
  federate with each other over TLS (:mod:`bot.devtools.federation`), each with an admin
  and a user factory; ``remote_clients`` (per test) logs accounts of either in.
- ``bridged`` (session, started only when a test asks for it): one more Synapse with a
  loopback appservice registered on it (:mod:`bot.devtools.appservice`), an admin and a
  user factory; ``bridged_clients`` (per test) logs its accounts in.

Every test in this directory is marked ``integration`` and gets a 120 s timeout unless
it sets its own ``@pytest.mark.timeout``.
"""

from __future__ import annotations

import asyncio
import secrets
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.appservice import LoopbackAppservice
from bot.devtools.client import TestClient
from bot.devtools.federation import federating_servers, start_all
from bot.devtools.synapse import SynapseServer, SynapseStartError
from bot.devtools.users import RegisteredUser, UserFactory, override_ratelimit, register_user
from bot.matrix.keyfile import CrossSigningKeys
from tests.integration.web import open_web
from tests.integration.world import MakeClient, MakeUser, OpenWorld, World, build_world

__all__ = ["open_web"]  # the web chat's fixture (tests.integration.web)

DEFAULT_TIMEOUT_S = 120
_HERE = Path(__file__).parent.resolve()
_SERVERS: list[SynapseServer] = []
_FEDERATION_STARTS: list[float] = []  # wall time until both federating servers answered
_BRIDGED_STARTS: list[float] = []  # wall time until the appservice's Synapse answered


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: touch only those under this directory.
    for item in items:
        if _HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_S))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for server in _SERVERS:
        times = ", ".join(f"{t:.2f}s" for t in server.startup_times) or "never started"
        terminalreporter.write_line(
            f"synapse {server.base_url}: startup {times}; data in {server.data_dir}"
        )
    for seconds in _FEDERATION_STARTS:
        terminalreporter.write_line(f"federating synapses: both up in {seconds:.2f}s")
    for seconds in _BRIDGED_STARTS:
        terminalreporter.write_line(f"synapse with an appservice: up in {seconds:.2f}s")


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    server = SynapseServer(tmp_path_factory.mktemp("synapse"))
    _SERVERS.append(server)
    try:
        server.start()
    except SynapseStartError as exc:
        pytest.fail(f"Synapse could not start:\n{exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _synapse_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that stopped Synapse (fault tests) and did not start it again, bring
    it back so the next test does not inherit a dead homeserver."""
    server: SynapseServer | None = None
    if "synapse" in request.fixturenames:
        server = request.getfixturevalue("synapse")
    yield
    if server is not None and not server.running:
        warnings.warn(f"{request.node.nodeid} left Synapse stopped; restarting it", stacklevel=1)
        server.start()


@pytest.fixture(scope="session")
async def admin(synapse: SynapseServer) -> RegisteredUser:
    """A server admin, created once per session, exempt from rate limits."""
    return await _make_admin(synapse)


async def _make_admin(synapse: SynapseServer) -> RegisteredUser:
    localpart = f"admin-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    user_id, token, device_id = await register_user(
        synapse.base_url, synapse.shared_secret, localpart, password, admin=True
    )
    await override_ratelimit(synapse.base_url, token, user_id)
    return RegisteredUser(user_id, localpart, password, token, device_id, admin=True)


@pytest.fixture(scope="session")
def user_factory(synapse: SynapseServer, admin: RegisteredUser) -> UserFactory:
    return UserFactory(synapse.base_url, synapse.shared_secret, admin.access_token)


@pytest.fixture(scope="session")
def make_user(user_factory: UserFactory) -> MakeUser:
    """``await make_user("chatter")`` -> a new uniquely named :class:`RegisteredUser`."""
    return user_factory.create


@pytest.fixture(scope="session")
def account_keys() -> dict[str, CrossSigningKeys]:
    """Each test account's cross-signing keys, so that all its devices share one identity
    (a client without them would replace the account's identity when it starts)."""
    return {}


class ClientMaker:
    """Logs accounts of one server in as test clients, and closes them all at the end."""

    def __init__(
        self,
        base_url: str,
        make_user: MakeUser,
        tmp_path: Path,
        account_keys: dict[str, CrossSigningKeys],
        store_prefix: str = "nio",
    ) -> None:
        self.base_url = base_url
        self.store_prefix = store_prefix
        self.make_user = make_user
        self.tmp_path = tmp_path
        self.account_keys = account_keys
        self.clients: list[TestClient] = []

    async def __call__(
        self, user: RegisteredUser | str | None = None, *, auto_join: bool = False, **kwargs: Any
    ) -> TestClient:
        if not isinstance(user, RegisteredUser):
            user = await self.make_user(user or "client")
        store_dir = self.tmp_path / f"{self.store_prefix}-{len(self.clients)}-{user.localpart}"
        kwargs.setdefault("cross_signing_keys", self.account_keys.get(user.user_id))
        client = await TestClient.create(
            self.base_url,
            user.user_id,
            user.password,
            store_dir=store_dir,
            auto_join=auto_join,
            **kwargs,
        )
        if client.cross_signing_keys is not None:
            self.account_keys[user.user_id] = client.cross_signing_keys
        self.clients.append(client)
        return client

    async def close(self) -> None:
        """Close every client; a client whose sync loop died fails the test."""
        failures: list[str] = []
        for client in self.clients:
            try:
                client.check()
            except Exception as exc:
                failures.append(str(exc))
            await client.close()
        if failures:
            pytest.fail("test client sync loop(s) failed:\n" + "\n".join(failures))


@pytest.fixture
async def make_client(
    synapse: SynapseServer,
    make_user: MakeUser,
    tmp_path: Path,
    account_keys: dict[str, CrossSigningKeys],
) -> AsyncIterator[MakeClient]:
    """``await make_client(user_or_prefix=None, *, auto_join=False, **TestClient kwargs)``.

    With a :class:`RegisteredUser` it logs that account in (a new device each call, signed
    with the account's cross-signing keys; ``cross_sign=False`` for a plain, unsigned nio
    device); with a string or None it first registers a new user with that prefix.
    All clients are closed at teardown; a client whose sync loop died fails the test.
    """
    maker = ClientMaker(synapse.base_url, make_user, tmp_path, account_keys)
    yield maker
    await maker.close()


@pytest.fixture
async def open_world(
    synapse: SynapseServer, make_user: MakeUser, make_client: MakeClient, tmp_path: Path
) -> AsyncIterator[OpenWorld]:
    """`await open_world(aliases=(...), **config sections)` -> a running helpline."""
    worlds: list[World] = []

    async def _open(**kwargs: Any) -> World:
        w = await build_world(synapse, make_user, make_client, tmp_path, **kwargs)
        worlds.append(w)
        return w

    yield _open
    for w in worlds:
        await w.close()


# -- two federating servers, for the tests that need them ---------------------------------


@dataclass
class Homeserver:
    """One of the two federating servers: its process, an admin, accounts on demand."""

    synapse: SynapseServer
    admin: RegisteredUser
    users: UserFactory

    @property
    def name(self) -> str:
        return self.synapse.server_name

    @property
    def make_user(self) -> MakeUser:
        return self.users.create


@dataclass
class Federation:
    helpline: Homeserver  # the bot's and the volunteers' server
    remote: Homeserver  # another server, where chatters from elsewhere have accounts
    start_seconds: float


@pytest.fixture(scope="session")
async def federation(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Federation]:
    """Two Synapses federating with each other only, started by the first test that asks
    (the single `synapse` of the other tests has no federation at all)."""
    servers = federating_servers(tmp_path_factory.mktemp("federation"))
    _SERVERS.extend(servers)
    try:
        seconds = await asyncio.to_thread(start_all, servers)
    except SynapseStartError as exc:
        pytest.fail(f"the federating Synapses could not start:\n{exc}", pytrace=False)
    _FEDERATION_STARTS.append(seconds)
    try:
        homes = []
        for server in servers:
            admin = await _make_admin(server)
            users = UserFactory(server.base_url, server.shared_secret, admin.access_token)
            homes.append(Homeserver(server, admin, users))
        yield Federation(homes[0], homes[1], seconds)
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
async def remote_clients(
    federation: Federation, tmp_path: Path, account_keys: dict[str, CrossSigningKeys]
) -> AsyncIterator[tuple[ClientMaker, ClientMaker]]:
    """Client makers for (the helpline's server, the remote server) of `federation`."""
    makers = (
        ClientMaker(
            federation.helpline.synapse.base_url,
            federation.helpline.make_user,
            tmp_path,
            account_keys,
            "nio-helpline",
        ),
        ClientMaker(
            federation.remote.synapse.base_url,
            federation.remote.make_user,
            tmp_path,
            account_keys,
            "nio-remote",
        ),
    )
    yield makers
    for maker in makers:
        await maker.close()


# -- a server with an appservice (a bridge), for the tests that need it --------------------


@dataclass
class Bridged:
    home: Homeserver
    appservice: LoopbackAppservice


@pytest.fixture(scope="session")
async def bridged(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bridged]:
    """A Synapse of its own with a loopback appservice registered, started by the first
    test that asks (an appservice is read from the config at start, and the shared
    `synapse` stays as plain as production's default)."""
    base = tmp_path_factory.mktemp("bridged")
    appservice = LoopbackAppservice()
    await appservice.start()
    registration = appservice.registration.write(base / "appservice.yaml")
    server = SynapseServer(
        base / "hs", extra_config={"app_service_config_files": [str(registration)]}
    )
    _SERVERS.append(server)
    try:
        try:
            _BRIDGED_STARTS.append(await server.async_start())
        except SynapseStartError as exc:
            pytest.fail(f"the appservice's Synapse could not start:\n{exc}", pytrace=False)
        admin = await _make_admin(server)
        users = UserFactory(server.base_url, server.shared_secret, admin.access_token)
        yield Bridged(Homeserver(server, admin, users), appservice)
    finally:
        server.stop()
        await appservice.close()


@pytest.fixture
async def bridged_clients(
    bridged: Bridged, tmp_path: Path, account_keys: dict[str, CrossSigningKeys]
) -> AsyncIterator[ClientMaker]:
    """A client maker for accounts on the appservice's server."""
    home = bridged.home
    maker = ClientMaker(home.synapse.base_url, home.make_user, tmp_path, account_keys, "nio-br")
    yield maker
    await maker.close()
