"""The web chat's account rows: written before the account is made, kept across a
restart, gone once erased."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.core.ids import UserID
from bot.storage.db import open_database
from bot.storage.migrations import upgrade
from bot.storage.webaccounts import WebAccounts

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WEB = UserID("@anon-0a1b2c:example.org")


async def test_rows_survive_a_restart_and_go_when_removed(tmp_path: Path) -> None:
    path = tmp_path / "helpline.db"
    db = await open_database(path)
    await upgrade(db)
    await WebAccounts(db).add(WEB, T0)
    await db.close()

    db = await open_database(path)
    try:
        rows = WebAccounts(db)
        assert await rows.all() == [(WEB, T0)]
        assert await rows.count() == 1
        await rows.remove(WEB)
        assert await rows.all() == []
    finally:
        await db.close()
