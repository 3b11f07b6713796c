"""Fixtures for the real-browser tests: the distribution's Chromium driven by Playwright
against the real Synapse and the in-process bot with the web chat on.

The Synapse, user and client fixtures are the integration layer's, and ``open_web`` is
the web chat's (`tests.integration.web`; imported, so this directory shares the one
server of the session). The browser is ``/usr/bin/chromium`` (``apt-get install -y
chromium``; ``.ci/run`` installs it when missing), never a browser Playwright downloads.
Without it, or without Playwright, these tests fail with that instruction: they are never
skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    account_keys,
    admin,
    make_client,
    make_user,
    synapse,
    user_factory,
)
from tests.integration.web import open_web

__all__ = [
    "account_keys",
    "admin",
    "make_client",
    "make_user",
    "open_web",
    "synapse",
    "user_factory",
]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "webchat"
DEFAULT_TIMEOUT_S = 180
_HERE = Path(__file__).parent.resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: a real Chromium drives the web chat page")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.browser)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT_S))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]'", pytrace=False)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def shots_dir(request: pytest.FixtureRequest) -> Path:
    """Where this test's screenshots go: `test-artifacts/webchat/<test>/`, emptied first."""
    where = ARTIFACTS / request.node.name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    return where
