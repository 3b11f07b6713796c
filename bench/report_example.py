"""A made-up month of statistics, and `helpline-bot report` on it: the README's example
chart (`docs/report-answered-per-day.png`) comes from here.

    python -m bench.report_example [--out DIR] [--copy-chart]

The month is invented, with a fixed seed so that it is the same every time: evenings
busier than afternoons, weekends busier than weekdays, a volunteer shortage on two days
(more leave the queue), a closed day and a full-queue evening. Nothing in it comes from
any real helpline. `--copy-chart` copies the answered-per-day chart to `docs/`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from bot.core.model import Changes, StatsRecord
from bot.storage import Storage

ROOT = Path(__file__).resolve().parents[1]
FIRST = date(2026, 3, 2)  # a Monday
DAYS = 28
TOPICS = ("angst", "ensomhet", "familie", "skole", "vennskap", "selvskading", "kropp")
SHORT_STAFFED = {FIRST + timedelta(days=9), FIRST + timedelta(days=10)}
CLOSED = {FIRST + timedelta(days=18)}  # a holiday
FULL = {FIRST + timedelta(days=25)}

CONFIG = """\
homeserver: {{url: "https://matrix.helpline.test/"}}
bot: {{user_id: "@bot:helpline.test", password: "not-used"}}
storage: {{data_dir: "{data}", store_key: "not-used-not-used-not-used"}}
volunteers:
  room: "#vakt:helpline.test"
  members: [{{user_id: "@anne:helpline.test", alias: Anne}}]
opening_hours: {{always_open: true}}
"""


def month(rng: random.Random) -> list[StatsRecord]:
    records = []
    for d in range(DAYS):
        day = FIRST + timedelta(days=d)
        weekend = day.weekday() >= 5
        for _ in range(rng.randint(14, 22) + (8 if weekend else 0)):
            hour = rng.choices(range(14, 24), weights=(1, 1, 2, 2, 3, 4, 5, 6, 5, 3))[0]
            told = rng.choice((2, 5, 5, 10, 10, 15))
            if day in CLOSED:
                outcome, wait = "closed_hours", None
            elif day in FULL and hour >= 19 and rng.random() < 0.7:
                outcome, wait = "queue_full", None
            elif rng.random() < (0.35 if day in SHORT_STAFFED else 0.1):
                outcome, wait = rng.choice(("left_waiting", "queue_timeout", "deleted")), None
            else:
                outcome = rng.choice(("completed",) * 8 + ("chatter_left", "timed_out"))
                wait = int(rng.lognormvariate(5.6, 0.8))  # about 4.5 min median
            answered = wait is not None
            records.append(
                StatsRecord(
                    day=day,
                    language=rng.choice(("nb",) * 9 + ("en",)),
                    source=rng.choice(("direct", "web", "web", "lobby")),
                    outcome=outcome,
                    wait_seconds=wait,
                    duration_seconds=int(rng.uniform(600, 2700)) if answered else None,
                    requeues=0,
                    tags=(rng.choice(TOPICS),) if answered else (),
                    rating=rng.choice((None, 3, 4, 4, 5, 5)) if answered else None,
                    purge_result="verified",
                    hour=hour,
                    told_wait_minutes=told
                    if outcome not in ("closed_hours", "queue_full")
                    else None,
                )
            )
    return records


async def seed(data: Path) -> int:
    records = month(random.Random(2026))
    st = await Storage.open(data / "helpline.db")
    try:
        await st.state.apply(Changes(stats=records))
    finally:
        await st.close()
    return len(records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("report-example"))
    parser.add_argument("--copy-chart", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        count = asyncio.run(seed(data))
        config = Path(tmp) / "config.yaml"
        config.write_text(CONFIG.format(data=data))
        print(f"seeded {count} made-up conversations over {DAYS} days")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "report",
                "--config",
                str(config),
                "--out",
                str(args.out),
                "--lang",
                "en",
            ],
            check=False,
        )
    if done.returncode != 0:
        return done.returncode
    if args.copy_chart:
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(
            args.out / "answered_per_day.png", ROOT / "docs" / "report-answered-per-day.png"
        )
        print("copied to docs/report-answered-per-day.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
