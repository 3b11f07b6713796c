"""Everything under the bot's data dir is its own user's only: dirs 0700, files 0600.

The bot runs with a permissive umask around it (022, the usual default) and starts on a
data dir an older release left readable by others; after a run every path is tightened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.world import build_world, go_on_duty

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(data: Path) -> dict[str, str]:
    out = {".": oct(stat.S_IMODE(data.lstat().st_mode))}
    for path in sorted(data.rglob("*")):
        out[str(path.relative_to(data))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return out


def loose(data: Path) -> dict[str, str]:
    return {
        name: mode
        for name, mode in modes(data).items()
        if mode != ("0o700" if (data / name).is_dir() else "0o600")
    }


async def test_every_path_under_the_data_dir_is_private_after_a_run(
    synapse: Any, make_user: Any, make_client: Any, tmp_path: Path, loose_umask: None
) -> None:
    data = tmp_path / "data"
    (data / "crypto").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    (data / "crypto").chmod(0o755)
    stray = data / "notes-from-an-old-release.txt"
    stray.write_text("x")
    stray.chmod(0o644)

    w = await build_world(synapse, make_user, make_client, tmp_path)
    try:
        await go_on_duty(w, w.volunteers[0])  # keys shared, nio's store written
        running = loose(data)
        assert await w.bot.stop() == 0
    finally:
        await w.close()
    names = set(modes(data))
    # Not vacuous: the files that matter were there to check.
    assert {"helpline.db", "credentials.json", "cross_signing.json", "crypto"} <= names
    assert any(n.startswith("crypto/") and n.endswith(".db") for n in names)
    assert running == {}
    assert loose(data) == {}
    assert os.umask(0o022) == 0o022  # the bot gave the process its umask back
