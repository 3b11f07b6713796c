"""Fixtures for the fault tests: the integration layer's real Synapse and people, and a
fault proxy between the bot and Synapse.

- The Synapse, user, client and world fixtures are the integration layer's (imported, as
  the interop tests do: this directory gets its own server for the session, started only
  when these tests run). ``_synapse_left_running`` comes along, so a test that stopped
  Synapse and failed before starting it again does not leave the next test without one.
- ``fault_proxy`` (per test): a :class:`~bot.devtools.faultproxy.FaultProxy` in front of
  the session's Synapse. Give the bot ``homeserver=fault_proxy.url``
  (``open_world(homeserver=...)``); people's clients talk to Synapse directly, so only
  the bot meets the faults.

Every test here is marked ``integration`` and ``faults`` and gets a 300 s timeout unless it
sets its own: the faults last minutes on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.faultproxy import FaultProxy
from bot.devtools.synapse import SynapseServer
from tests.integration.conftest import (
    _synapse_left_running,
    account_keys,
    admin,
    make_client,
    make_user,
    open_world,
    synapse,
    user_factory,
)
from tests.integration.world import OpenWorld, World

__all__ = [
    "_synapse_left_running",
    "account_keys",
    "admin",
    "make_client",
    "make_user",
    "open_world",
    "synapse",
    "user_factory",
]

DEFAULT_TIMEOUT_S = 300
_HERE = Path(__file__).parent.resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: the homeserver misbehaves (through the fault proxy) or goes away"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.faults)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_S))


@pytest.fixture
async def fault_proxy(synapse: SynapseServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(synapse.base_url) as proxy:
        yield proxy


@pytest.fixture
async def open_proxied_world(
    fault_proxy: FaultProxy, open_world: OpenWorld
) -> AsyncIterator[OpenWorld]:
    """``await open_proxied_world(**open_world options)``: a helpline whose bot talks to
    Synapse through ``fault_proxy``. At teardown the proxy heals first (a test that failed
    mid-outage must not make the bot's shutdown wait out its retries), then the world
    closes, then the proxy."""

    async def _open(**kwargs: Any) -> World:
        return await open_world(homeserver=fault_proxy.url, **kwargs)

    yield _open
    fault_proxy.heal()
