"""Fixtures for the Element-stack interop tests (matrix-js-sdk + Rust crypto in Node).

The Synapse, admin and user fixtures are the integration layer's (imported, so this
directory gets its own server for the session, started only when these tests run).
``make_js_client`` gives Element-like clients, one Node process each, always killed at
teardown. The Node side is installed by ``npm ci --prefix tests/interop`` (``.ci/run``
does it); without it these tests fail with that instruction, they are never skipped.

Every test here is marked ``integration`` and ``interop`` and gets a 90 s timeout unless it
sets its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import admin, make_user, synapse, user_factory
from tests.interop.jsclient import JsClient, node_setup_problem

__all__ = ["admin", "make_user", "synapse", "user_factory"]

DEFAULT_TIMEOUT_S = 90
_HERE = Path(__file__).parent.resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "interop: Element-stack clients (matrix-js-sdk, Rust crypto) in Node"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.interop)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_S))


@pytest.fixture
async def make_js_client(
    synapse: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[JsClient]]]:
    """``await make_js_client(user, isolation="only_signed", cross_sign=True)`` -> a
    logged-in js client (a new device), its isolation mode set before anything is sent and
    its identity cross-signed. Its Node log is ``tmp_path/js-<n>-<localpart>.log``."""
    problem = node_setup_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    clients: list[JsClient] = []

    async def _make(
        user: Any, *, isolation: str = "only_signed", cross_sign: bool = True
    ) -> JsClient:
        name = f"js-{len(clients)}-{user.localpart}"
        client = JsClient(name, tmp_path / f"{name}.log")
        clients.append(client)
        await client.start()
        await client.login(synapse.base_url, user.user_id, user.password)
        await client.set_isolation(isolation)
        if cross_sign:
            status = await client.bootstrap_cross_signing()
            assert status["ready"], status
            assert status["device_cross_signing_verified"], status
        return client

    yield _make

    failures = []
    for client in clients:
        try:
            client.check()
        except Exception as exc:
            failures.append(str(exc))
        with contextlib.suppress(Exception):
            await client.close()
    if failures:
        pytest.fail("js client(s) reported errors:\n" + "\n".join(failures), pytrace=False)
