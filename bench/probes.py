"""Looking at a running bot from outside: /proc, its /metrics endpoint, its database.

Used by bench/scale.py; nothing here changes the bot. Every probe tolerates a process
that has just exited (it answers None), so a sampler never kills a run.

- ``proc_status``: VmRSS / VmHWM (peak RSS) from /proc/<pid>/status, open file
  descriptors (entries of /proc/<pid>/fd), CPU seconds (utime+stime of /proc/<pid>/stat,
  via bench.relay_latency.cpu_times).
- ``cpu_at_exit``: the CPU seconds of a child that has exited but is not yet reaped (a
  zombie keeps its utime/stime), so the CPU spent shutting down is counted too.
- ``scrape_metrics``: GET /metrics, the gauges and counters as a dict, and how long the
  answer took (the bot exposes no event-loop lag; the answer time of an endpoint served on
  its loop is the closest outside view of it).
- ``outbox_rows``: ``SELECT count(*) FROM outbox`` through a read-only SQLite URI.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.relay_latency import cpu_times

_METRICS_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class ProcStatus:
    rss_mb: float
    hwm_mb: float  # peak resident set size so far (VmHWM)
    fds: int
    cpu_s: float  # utime + stime
    threads: int


def proc_status(pid: int | None) -> ProcStatus | None:
    """Memory, descriptors and CPU of a live process; None if it is gone (or a zombie)."""
    if pid is None:
        return None
    try:
        fields: dict[str, str] = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "VmHWM" not in fields:  # a zombie has released its memory
            return None
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        user, system = cpu_times(pid)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return ProcStatus(
        rss_mb=_kb(fields["VmRSS"]) / 1024,
        hwm_mb=_kb(fields["VmHWM"]) / 1024,
        fds=fds,
        cpu_s=user + system,
        threads=int(fields.get("Threads", "0")),
    )


def _kb(value: str) -> float:
    return float(value.split()[0])


def cpu_at_exit(pid: int) -> float | None:
    """Wait until the child ``pid`` has exited, without reaping it, and return its CPU
    seconds (utime+stime): a zombie still reports them. None if it was already reaped.
    Blocking: run it in a thread."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        user, system = cpu_times(pid)
    except (ChildProcessError, FileNotFoundError, ProcessLookupError):
        return None
    return user + system


@dataclass
class Scrape:
    values: dict[str, float]  # metric name (with labels, as exposed) -> value
    seconds: float  # request to complete answer


async def scrape_metrics(session: aiohttp.ClientSession, port: int) -> Scrape | None:
    """The bot's /metrics as {name: value}, and the answer time; None if it did not answer."""
    started = time.monotonic()
    try:
        async with session.get(
            f"http://127.0.0.1:{port}/metrics", timeout=_METRICS_TIMEOUT
        ) as resp:
            text = await resp.text()
            if resp.status != 200:
                return None
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    elapsed = time.monotonic() - started
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return Scrape(values, elapsed)


def outbox_rows(db_path: Path) -> int | None:
    """Rows in the bot's ``outbox`` table (effects stored, not yet carried out), read
    through a read-only URI with a short busy timeout; None if the file or table is not
    there yet or the database is busy."""
    if not db_path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=0.5)
        try:
            return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None
