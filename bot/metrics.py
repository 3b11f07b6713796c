"""Prometheus figures for the helpline: counts and timings, never who or what.

Two kinds of figures:
- Gauges read at scrape time: the queue, active conversations, volunteers on duty and
  pending offers from `Helpline.status(now)`, and the sync loop's error count and the
  events it skipped (by reason: malformed, plaintext_in_encrypted, error) from the
  connection. Nothing is copied, so they cannot drift from the core's own state.
- Counters and histograms observed as steps pass through the worker: the wait from
  queueing to a volunteer accepting, offers made and offers that lapsed, purges by
  outcome, conversations ended by outcome, and relay latency (from the moment the bot's
  sync delivered a message to the moment the homeserver accepted its relayed copy).

The core stays pure: everything here is computed from the inputs, effects and `Changes`
the worker already has. Labels are fixed, small vocabularies (outcomes), never IDs. A
registry per instance, not prometheus_client's global one, so that two bots in one
process (the tests) do not share figures.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.core.events import CreateRoom, Input, PurgeFinished, Relay, TimerFired, Withdraw
from bot.core.model import Changes, Role, State, TimerKind
from bot.report.figures import fate

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Waits are minutes long; relays are tens of milliseconds on a healthy server.
WAIT_BUCKETS = (15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600)
RELAY_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)

# Messages that arrived but were never stepped (replays dropped as duplicates) must not
# pile up: only the newest ones are remembered.
_MAX_PENDING = 10_000


class Metrics:
    """What `/metrics` shows. The worker reports steps and carried-out effects to it."""

    def __init__(
        self,
        *,
        status: Callable[[], dict[str, int]],
        sync_errors: Callable[[], int],
        syncs: Callable[[], int] = lambda: 0,
        skipped: Iterable[tuple[str, int]] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self.waits = Histogram(
            "helpline_wait_seconds",
            "Time from queueing to a volunteer accepting the conversation",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.relay_latency = Histogram(
            "helpline_relay_latency_seconds",
            "Time from the bot receiving a message to the homeserver accepting its relay",
            buckets=RELAY_BUCKETS,
            registry=self.registry,
        )
        self.offers = Counter(
            "helpline_offers", "Offers made to volunteers", registry=self.registry
        )
        self.lapses = Counter(
            "helpline_offer_lapses",
            "Offers withdrawn because the volunteer did not accept in time",
            registry=self.registry,
        )
        self.purges = Counter(
            "helpline_purges", "Finished purges by outcome", ["outcome"], registry=self.registry
        )
        self.ended = Counter(
            "helpline_conversations_ended",
            "Conversations ended, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.contacts = Counter(
            "helpline_contacts",
            "Contacts by what came of them, as the report counts them: answered, left "
            "before an answer, turned away (closed, full), other",
            ["fate"],
            registry=self.registry,
        )
        self.registry.register(_Live(status, sync_errors, syncs, skipped))
        # event ID -> when it arrived; dropped once its step is done
        self._arrived: OrderedDict[str, float] = OrderedDict()
        # source event ID -> when it arrived, for relays queued but not yet sent
        self._relaying: dict[str, float] = {}

    # -- what the app and the worker report ---------------------------------------------

    def received(self, event_id: str | None) -> None:
        """An input from the sync loop entered the worker's inbox."""
        if event_id is None:
            return
        self._arrived[event_id] = self._clock()
        while len(self._arrived) > _MAX_PENDING:
            self._arrived.popitem(last=False)

    def stepped(
        self,
        inp: Input,
        event_id: str | None,
        effects: Sequence[Any],
        changes: Changes,
        now: datetime,
    ) -> None:
        """One input was applied and stored, with these effects and changes."""
        arrived = self._arrived.pop(event_id, None) if event_id is not None else None
        lapse = isinstance(inp, TimerFired) and inp.key.startswith(
            TimerKind.OFFER_TIMEOUT.value + ":"
        )
        for effect in effects:
            if isinstance(effect, CreateRoom) and effect.ref.role is Role.VOLUNTEER:
                self.offers.inc()
            elif isinstance(effect, Withdraw) and lapse:
                self.lapses.inc()
            elif isinstance(effect, Relay) and arrived is not None and effect.source == event_id:
                # Only a message relayed in its own step: held messages relayed at accept
                # time measure the queue, not the relay.
                self._relaying[effect.source] = arrived
        for s in changes.sessions.values():
            if s.state is State.ACTIVE and s.accepted_at == now:
                self.waits.observe(max(0.0, (now - (s.queued_at or s.created_at)).total_seconds()))
        for record in changes.stats:
            self.ended.labels(outcome=record.outcome).inc()
            self.contacts.labels(fate=fate(record).value).inc()
        if isinstance(inp, PurgeFinished):
            self.purges.labels(outcome=purge_outcome(inp.result)).inc()

    def carried_out(self, effect: Any) -> None:
        """An effect from the outbox was carried out."""
        if isinstance(effect, Relay):
            arrived = self._relaying.pop(effect.source, None)
            if arrived is not None:
                self.relay_latency.observe(max(0.0, self._clock() - arrived))

    # -- exposition -----------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)


def purge_outcome(result: str) -> str:
    """ "failed: M_FORBIDDEN" -> "failed": the label stays a small, fixed vocabulary."""
    return result.split(":", 1)[0].strip() or "unknown"


class _Live:
    """Gauges read from the running core and connection at scrape time."""

    _GAUGES: tuple[tuple[str, str, str], ...] = (
        ("waiting", "helpline_queue_length", "Chatters waiting for a volunteer"),
        ("active", "helpline_active_conversations", "Conversations with a volunteer"),
        ("on_duty", "helpline_volunteers_on_duty", "Volunteers on duty"),
        ("offers", "helpline_offers_pending", "Offers out, not yet answered"),
        ("ending", "helpline_conversations_ending", "Conversations ended, not yet purged"),
    )

    def __init__(
        self,
        status: Callable[[], dict[str, int]],
        sync_errors: Callable[[], int],
        syncs: Callable[[], int],
        skipped: Iterable[tuple[str, int]],
    ):
        self._status = status
        self._sync_errors = sync_errors
        self._syncs = syncs
        self._skipped = skipped  # read again at each scrape

    def describe(self) -> Iterable[Metric]:
        return list(self._families({}, 0, 0, ()))

    def collect(self) -> Iterable[Metric]:
        return list(
            self._families(self._status(), self._sync_errors(), self._syncs(), self._skipped)
        )

    def _families(
        self,
        status: dict[str, int],
        sync_errors: int,
        syncs: int,
        skipped: Iterable[tuple[str, int]],
    ) -> Iterator[Metric]:
        for key, name, doc in self._GAUGES:
            yield GaugeMetricFamily(name, doc, value=status.get(key, 0))
        yield GaugeMetricFamily(
            "helpline_longest_wait_seconds",
            "How long the longest-waiting chatter has waited (whole minutes)",
            value=status.get("longest_wait_minutes", 0) * 60,
        )
        yield CounterMetricFamily(
            "helpline_sync_errors", "Failed sync requests since start", value=sync_errors
        )
        yield CounterMetricFamily(
            "helpline_syncs", "Sync responses handled since start", value=syncs
        )
        events = CounterMetricFamily(
            "helpline_events_skipped",
            "Events from the sync acted on by nobody, by reason (never which or whose)",
            labels=["reason"],
        )
        for reason, count in skipped:
            events.add_metric([reason], count)
        yield events
