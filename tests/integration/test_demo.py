"""`helpline-bot demo` as a newcomer runs it: a subprocess, its own Synapse, real output.

- `--simulate` plays the whole conversation, then a web chatter's, and must exit 0 with
  every step done.
- The plain demo comes up, answers on the printed URLs (Synapse, a chatter's login with
  the printed password, the bot's /healthz, the web chat page), stops on Ctrl-C by PID,
  comes back reused on a second run, and is replaced with --fresh.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.demo.simulate import PLANNED

ROOT = Path(__file__).resolve().parents[2]


def demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def pids_in(output: str) -> list[int]:
    return [int(p) for p in re.findall(r"\(pid (\d+)", output)]


def running(pid: int) -> bool:
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.timeout(240)
def test_simulate_plays_every_step_and_exits_0(tmp_path: Path) -> None:
    proc = demo("--simulate", "--dir", str(tmp_path))
    try:
        out, _ = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert f"All {len(PLANNED)} steps happened" in out
    for title in PLANNED:
        assert re.search(rf"ok +[\d.]+s  {re.escape(title)}$", out, re.M), title
    # as each side sees it: the chatter sees the volunteer's alias, the volunteer a pseudonym
    assert re.search(r"chatter +<- Jonas \(message, decrypted\)", out)
    assert re.search(r"volunteer +<- Chatter #\d+ \(message, decrypted\)", out)
    assert re.search(r"web page +<- Jonas \(message, decrypted\)", out)
    assert "the account: deactivated and erased" in out
    # The report reads what the simulated evening left, read-only, beside nothing running.
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "report",
            "--config",
            str(tmp_path / "simulate" / "config.yaml"),
            "--out",
            str(tmp_path / "report"),
            "--lang",
            "en",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    assert "We answered <5 of <5" in report.stdout, report.stdout
    written = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"per_day.csv", "answered_per_day.png", "wait_estimate.csv"} <= written
    assert "NOT ENCRYPTED" not in out
    started = pids_in(out)
    assert len(started) >= 2
    assert not any(running(p) for p in started)


def wait_ready(proc: subprocess.Popen[str], timeout: float = 90) -> str:
    """The demo's output up to its ready banner (and the banner itself)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C stops"):
            return "".join(lines)
    proc.kill()
    pytest.fail("the demo never became ready:\n" + "".join(lines))


def get(url: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def stop(proc: subprocess.Popen[str], sig: int) -> str:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


@pytest.mark.timeout(240)
def test_demo_comes_up_stops_on_ctrl_c_and_is_reused(tmp_path: Path) -> None:
    first = demo("--dir", str(tmp_path), "--port", "0")
    try:
        banner = wait_ready(first)
        assert "is ready (new" in banner
        homeserver = re.search(r"Homeserver URL for Element: +(\S+)", banner)[1]  # type: ignore[index]
        health = re.search(r"health (\S+)", banner)[1]  # type: ignore[index]
        chatter, password = re.search(  # type: ignore[misc]
            r"chatter +(@chatter:localhost) +password: (\S+)", banner
        ).groups()
        assert get(homeserver + "/_matrix/client/versions")[0] == 200
        assert get(health)[0] == 200
        page = re.search(r"Web chat \(no account, no app.*?\): +(\S+)", banner)[1]  # type: ignore[index]
        status, html = get(page)
        assert (status, '<script type="module" src="app.js">' in html) == (200, True)
        assert get(page + "api/config")[0] == 200
        login = (
            '{"type": "m.login.password", "identifier": {"type": "m.id.user", '
            f'"user": "{chatter}"}}, "password": "{password}"}}'
        )
        status, body = get(homeserver + "/_matrix/client/v3/login", login.encode())
        assert status == 200, body
        assert oct((tmp_path / "state.json").stat().st_mode & 0o777) == "0o600"
        out = banner + stop(first, signal.SIGINT)
    finally:
        if first.poll() is None:
            first.kill()
    assert "bot stopped" in out
    assert "Synapse stopped" in out
    assert not any(running(p) for p in pids_in(out))

    second = demo("--dir", str(tmp_path))
    try:
        banner = wait_ready(second)
        assert "is ready (reused" in banner
        assert f"Homeserver URL for Element:  {homeserver}" in banner
        assert "accounts registered" not in banner
        out = banner + stop(second, signal.SIGTERM)
    finally:
        if second.poll() is None:
            second.kill()
    assert not any(running(p) for p in pids_in(out))

    third = demo("--dir", str(tmp_path), "--fresh", "--port", "0")
    try:
        banner = wait_ready(third)
        assert "is ready (new" in banner
        assert "replacing the previous demo" in banner
        stop(third, signal.SIGINT)
    finally:
        if third.poll() is None:
            third.kill()
