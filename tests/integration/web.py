"""The web chat's fixture, for the integration and the browser tests: ``open_web(sections=
{...}, world={...}, **webchat)`` starts the in-process bot with its web chat on a free port
(and any other config sections, and `build_world`'s options such as supervisors), and
gives the world and a :class:`~bot.devtools.webpage.WebPage` on it. Also: a web chatter's
client, logged in as the page would be, and the admin API's word on an account."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from bot.devtools.client import TestClient
from bot.devtools.synapse import SynapseServer, free_port
from bot.devtools.users import RegisteredUser, get_user_admin_info
from bot.devtools.webpage import WebPage
from tests.integration.world import World, build_world

DIFFICULTY = 8

OpenWeb = Callable[..., Awaitable[tuple[World, WebPage]]]


@pytest.fixture
async def open_web(
    synapse: SynapseServer, make_user: Any, make_client: Any, tmp_path: Any, admin: RegisteredUser
) -> AsyncIterator[OpenWeb]:
    opened: list[tuple[World, WebPage]] = []

    async def _open(
        *,
        sections: Mapping[str, Any] | None = None,
        world: Mapping[str, Any] | None = None,
        **webchat: Any,
    ) -> tuple[World, WebPage]:
        # In-process bots stop on the process's SIGTERM, and a second one's handler
        # replaces the first's: one world per test.
        assert not opened, "open_web: one world per test"
        port = free_port()
        where = tmp_path / f"web{len(opened)}"
        where.mkdir()
        section = {
            "enabled": True,
            "listen": f"127.0.0.1:{port}",
            "public_url": f"http://127.0.0.1:{port}",
            "pow_difficulty": DIFFICULTY,
            **webchat,
        }
        w = await build_world(
            synapse,
            make_user,
            make_client,
            where,
            admin_token=admin.access_token,
            webchat=section,
            **(sections or {}),
            **(world or {}),
        )
        page = WebPage(f"http://127.0.0.1:{port}")
        opened.append((w, page))
        return w, page

    yield _open
    for w, page in opened:
        await page.close()
        await w.close()


async def web_chatter(make_client: Any, account: Mapping[str, Any]) -> TestClient:
    """The account's client with a cross-signed device, as the page's Rust crypto makes."""
    user = account["user_id"]
    localpart = user[1:].split(":")[0]
    return await make_client(RegisteredUser(user, localpart, account["password"], "", "", False))  # type: ignore[no-any-return]


async def deactivated(synapse: SynapseServer, admin: RegisteredUser, user: str) -> bool:
    info = await get_user_admin_info(synapse.base_url, admin.access_token, user)
    return bool(info.get("deactivated"))
