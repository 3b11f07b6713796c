"""How long the worker waits before trying an effect again, and when it gives up on one
that fails for an unexpected reason (it parks it). Plain values: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

MAX_UNEXPECTED = 3  # tries of an effect failing unexpectedly before it is parked
ATTEMPT_TIMEOUT = 120.0  # one try of one effect; nio retries a dead connection forever


def backoff(tries: int) -> float:
    """Seconds before try number `tries + 1`: 1, 2, 4, ... up to a minute."""
    return float(min(60.0, 0.5 * 2**tries))


@dataclass(frozen=True)
class PurgeBackoff:
    """When a purge that failed for a reason that may pass (the admin API down, 5xx) is
    tried again: after `first` seconds, then twice as long each time, up to `cap`; the
    supervisors are told after `alert_after` failures in a row (some 3.5 minutes of
    failing, by default), once. A purge is never given up for such a reason."""

    first: float = 30.0
    cap: float = 3600.0
    alert_after: int = 3

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, failures - 1))
