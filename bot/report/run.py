"""`helpline-bot report`: read the statistics, write the CSV files and charts, print the
summary. The thin I/O part around `figures`, `charts` and `summary`.

Rules:
- The database is opened read-only (`bot.storage.snapshot`): the report runs beside the
  bot or on a backup copy, and never migrates or changes it.
- A CSV file is written for every table, with its header even when it has no rows; a
  chart only for a table with rows. Files of an earlier report in the same directory
  are replaced, and its charts that this report has none for are removed, so that the
  directory never mixes two periods.
- A problem (no database, a newer schema, a directory that cannot be written) is one line
  on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import csv
import sys
from datetime import date
from pathlib import Path

from bot.config import Config
from bot.report.charts import CHART_NAMES, DPI, build_charts
from bot.report.figures import Report, build_report
from bot.report.summary import summary
from bot.report.texts import WORDS
from bot.storage.snapshot import DATABASE_FILE, SnapshotError, read_snapshot

EXIT_OK = 0
EXIT_FAILURE = 1


def run(config: Config, *, since: date | None, until: date | None, out: Path, lang: str) -> int:
    database = Path(config.storage.data_dir) / DATABASE_FILE
    try:
        snapshot = read_snapshot(database, since, until)
    except SnapshotError as e:
        print(f"helpline-bot report: {e}", file=sys.stderr)
        return EXIT_FAILURE
    report = build_report(snapshot.records, snapshot.hours, snapshot.blocks, since, until)
    try:
        files = write_report(report, out, lang)
    except OSError as e:
        print(f"helpline-bot report: cannot write to {out}: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILURE
    words = WORDS[lang]
    print(summary(report, words, since=since, until=until, out=str(out), files=files))
    return EXIT_OK


def write_report(report: Report, out: Path, lang: str) -> list[str]:
    """Every CSV file and chart into `out` (made if missing); returns the file names."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    for table in report.tables():
        name = f"{table.name}.csv"
        with (out / name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(table.header)
            writer.writerows(table.rows)
        files.append(name)
    charts = build_charts(report, WORDS[lang])
    for stem, figure in charts.items():
        name = f"{stem}.png"
        figure.savefig(out / name, dpi=DPI)
        files.append(name)
    for stem in CHART_NAMES:
        if stem not in charts:
            (out / f"{stem}.png").unlink(missing_ok=True)
    return files
