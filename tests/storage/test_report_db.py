"""`helpline-bot report` on a real database file: read-only (beside the running bot, on an
older schema, never migrated), refusals that say why, and the command end to end."""

from __future__ import annotations

import csv
import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.model import Changes, StatsRecord
from bot.storage import Storage, open_database
from bot.storage.migrations import MIGRATIONS, latest_version
from bot.storage.snapshot import SnapshotError, read_snapshot

ROOT = Path(__file__).resolve().parents[2]
MON, TUE = date(2026, 3, 2), date(2026, 3, 3)

CONFIG = """\
homeserver:
  url: https://matrix.helpline.test/
bot:
  user_id: "@bot:helpline.test"
  password_file: secrets/bot_password
storage:
  data_dir: data
  store_key_file: secrets/store_key
volunteers:
  room: "#vakt:helpline.test"
  members:
    - {user_id: "@anne:helpline.test", alias: Anne}
opening_hours:
  always_open: true
"""


def rec(day: date, outcome: str, wait: int | None = None, hour: int = 20) -> StatsRecord:
    return StatsRecord(
        day=day,
        language="nb",
        source="direct",
        outcome=outcome,
        wait_seconds=wait,
        duration_seconds=None if wait is None else 1200,
        requeues=0,
        tags=("angst",),
        rating=None,
        purge_result="verified",
        hour=hour,
        told_wait_minutes=5,
    )


SEEDED = [
    *[rec(MON, "completed", wait=60 * k) for k in range(1, 7)],
    rec(MON, "left_waiting"),
    *[rec(TUE, "closed_hours", hour=9) for _ in range(5)],
]


async def seed(path: Path, records: list[StatsRecord] = SEEDED) -> None:
    st = await Storage.open(path)
    try:
        await st.state.apply(Changes(stats=records, blocks_set=[MON, MON, TUE]))
    finally:
        await st.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- reading --------------------------------------------------------------------------------


async def test_reads_the_statistics_without_changing_the_file(db_path: Path) -> None:
    await seed(db_path)
    before = digest(db_path)
    snap = read_snapshot(db_path, since=MON, until=MON)
    assert len(snap.records) == 7
    assert {r.told_wait_minutes for r in snap.records} == {5}
    assert snap.hours == {(MON, 20): 7}
    assert snap.blocks == {MON: 2}
    assert snap.schema_version == latest_version()
    assert digest(db_path) == before


async def test_reads_while_the_bot_has_the_database_open_and_writes(db_path: Path) -> None:
    st = await Storage.open(db_path)
    try:
        await st.state.apply(Changes(stats=SEEDED[:3]))
        assert len(read_snapshot(db_path).records) == 3
        await st.state.apply(Changes(stats=SEEDED[3:]))  # the writer is not blocked
        assert len(read_snapshot(db_path).records) == len(SEEDED)
    finally:
        await st.close()


async def test_an_older_schema_is_read_as_it_is_and_never_migrated(db_path: Path) -> None:
    db = await open_database(db_path, MIGRATIONS[:6])
    try:
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO stats (day, outcome, wait_seconds, requeues, tags, purge_result)"
                " VALUES ('2026-03-02', 'completed', 60, 0, '[\"angst\"]', 'verified')"
            )
            # Before migration 8 every block stayed on the list: its rows were the count.
            await tx.execute("INSERT INTO blocklist (hash, added_day) VALUES ('h', '2026-03-02')")
    finally:
        await db.close()
    snap = read_snapshot(db_path)
    assert snap.schema_version == 6
    assert [(r.outcome, r.tags, r.told_wait_minutes) for r in snap.records] == [
        ("completed", ("angst",), None)
    ]
    assert snap.hours == {}
    assert snap.blocks == {date(2026, 3, 2): 1}
    snap = read_snapshot(db_path)  # still version 6: nothing was migrated
    assert snap.schema_version == 6


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    await seed(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    with pytest.raises(SnapshotError, match="newer release"):
        read_snapshot(db_path)


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no such database file"):
        read_snapshot(tmp_path / "helpline.db")
    assert not (tmp_path / "helpline.db").exists()


def test_a_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"")
    with pytest.raises(SnapshotError, match="not a helpline-bot database"):
        read_snapshot(other)


# -- the command ----------------------------------------------------------------------------


def setup_site(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bot_password").write_text("pw\n")
    (tmp_path / "secrets" / "store_key").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "data").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(CONFIG))
    return config


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


async def test_the_command_writes_the_csv_files_charts_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup_site(tmp_path)
    await seed(tmp_path / "data" / "helpline.db")
    out = tmp_path / "out"
    args = ["report", "--config", str(config), "--out", str(out), "--lang", "en"]
    assert main([*args, "--from", "2026-03-02", "--to", "2026-03-03"]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    lines = printed.out.splitlines()
    assert lines[:3] == [
        "Report for 2026-03-02 to 2026-03-03",
        "Contacts: 12.",
        "We answered 6 of 12 (50%).",
    ]
    assert read_csv(out / "per_day.csv") == [
        ["day", "contacts", "answered", "left", "closed", "full", "other"],
        ["2026-03-02", "7", "6", "<5", "0", "0", "0"],
        ["2026-03-03", "5", "0", "0", "5", "0", "0"],
    ]
    assert read_csv(out / "wait_estimate.csv")[1] == ["5", "12", "5", "<5", "6", "3.5", "6.0"]
    heat = read_csv(out / "weekday_hour.csv")
    assert (heat[1][0], heat[1][1 + 20], heat[2][1 + 9]) == ("Mon", "7", "5")
    assert read_csv(out / "ratings.csv") == [["rating", "conversations"]]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "ratings.png" not in pngs  # nothing to draw
    assert len(pngs) == 9
    for name in pngs:
        head = (out / name).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(head[16:20]), int.from_bytes(head[20:24])
        assert (width, height) == ((1200, 450) if name == "weekday_hour.png" else (1000, 500))


async def test_an_empty_period_writes_headers_and_says_there_was_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup_site(tmp_path)
    await seed(tmp_path / "data" / "helpline.db")
    out = tmp_path / "out"
    (out).mkdir()
    (out / "topics.png").write_bytes(b"from an earlier report")
    args = ["report", "--config", str(config), "--out", str(out), "--lang", "nb"]
    assert main([*args, "--from", "2027-01-01", "--to", "2027-01-31"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["Rapport for 2027-01-01 til 2027-01-31", "Ingen henvendelser i perioden."]
    csvs = sorted(out.glob("*.csv"))
    assert len(csvs) == 10
    for path in csvs:
        assert len(read_csv(path)) == 1, path.name  # the header alone
    assert list(out.glob("*.png")) == []  # and the earlier report's chart is gone


def test_a_bad_date_is_a_usage_error_without_a_traceback(tmp_path: Path) -> None:
    config = setup_site(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "report", "--config", str(config), "--from", "2026-13-01"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "argument --from: '2026-13-01' is not a date; write it like 2026-03-01" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_from_after_to_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup_site(tmp_path)
    args = ["report", "--config", str(config), "--from", "2026-03-05", "--to", "2026-03-01"]
    assert main(args) == 2
    assert "--from 2026-03-05 is after --to 2026-03-01" in capsys.readouterr().err


def test_no_database_yet_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup_site(tmp_path)
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("helpline-bot report: ")
    assert "no such database file" in err
    assert not (tmp_path / "data" / "helpline.db").exists()


def test_the_report_needs_no_secret_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup_site(tmp_path)
    for secret in (tmp_path / "secrets").iterdir():
        secret.unlink()
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "out")]) == 1
    assert "no such database file" in capsys.readouterr().err  # past the config
