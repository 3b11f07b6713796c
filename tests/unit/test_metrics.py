"""Metrics observed from the core's steps, as the worker reports them.

A real `Helpline` is driven by the core's test world; every step (including the adapter's
answers, `RoomCreated`) is reported to `Metrics` the way the worker does after storing it.
The scrape is parsed back with prometheus_client's own parser.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from bot.core.events import CreateRoom, Effect, Input, Message, PurgeFinished, Relay, RoomCreated
from bot.core.ids import RoomID
from bot.core.model import TimerKind
from bot.matrix.translate import Skip, SkipCounts
from bot.metrics import Metrics, purge_outcome
from tests.unit.core_helpers import ANNA, BJORN, World, chatter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class MeteredWorld(World):
    """The core's test world, reporting every step to `metrics` like the worker."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.sync_errors = 0
        self.syncs = 0
        self.metrics = Metrics(
            status=lambda: self.h.status(self.now),
            sync_errors=lambda: self.sync_errors,
            syncs=lambda: self.syncs,
            clock=self.clock,
        )
        self._rooms = 0

    def _step(self, inp: Input) -> list[Effect]:
        event_id = getattr(inp, "event_id", None) if isinstance(inp, Message) else None
        fx = self.h.handle(inp, self.now)
        self.changes = self.h.take_changes()
        self.store.apply(self.changes)
        self.metrics.stepped(inp, event_id, fx, self.changes, self.now)
        self.log.extend(fx)
        return fx

    def feed(self, event: Input) -> list[Effect]:
        if isinstance(event, Message):
            self.metrics.received(event.event_id)
        fx = self._step(event)
        for e in fx:
            self.metrics.carried_out(e)
            if isinstance(e, CreateRoom):
                self._rooms += 1
                room = RoomID(f"!m{self._rooms}")
                self._step(RoomCreated(e.ref.session_id, e.ref.offer_id, room))
        return fx

    def value(self, name: str, **labels: str) -> float:
        got = self.metrics.registry.get_sample_value(name, labels or None)
        return 0.0 if got is None else got


def test_offer_accept_wait_and_relay_latency() -> None:
    w = MeteredWorld()
    w.on_duty(ANNA)
    s = w.arrive(chatter(1), "hei")  # held until a volunteer accepts
    assert w.value("helpline_offers_total") == 1
    w.advance(timedelta(minutes=2))
    w.accept(s, ANNA)
    assert w.value("helpline_wait_seconds_count") == 1
    assert w.value("helpline_wait_seconds_sum") == 120
    # the held first words went out at accept time: that is queueing, not relay latency
    assert w.value("helpline_relay_latency_seconds_count") == 0

    assert s.chatter_room is not None
    event = Message(s.chatter_room, s.chatter, w.event_id(), "hvordan går det")
    w.metrics.received(event.event_id)
    w.clock.t += 0.125  # in the inbox
    fx = w._step(event)
    w.clock.t += 0.125  # the send
    for e in fx:
        w.metrics.carried_out(e)
    assert [type(e) for e in fx if isinstance(e, Relay)] == [Relay]
    assert w.value("helpline_relay_latency_seconds_count") == 1
    assert w.value("helpline_relay_latency_seconds_sum") == 0.25
    assert w.value("helpline_relay_latency_seconds_bucket", le="0.25") == 1
    assert w.value("helpline_relay_latency_seconds_bucket", le="0.15") == 0


def test_lapse_counts_and_reoffer_counts_as_an_offer() -> None:
    w = MeteredWorld()
    w.on_duty(ANNA, BJORN)
    s = w.arrive(chatter(1))
    offer = w.offer_to(s, ANNA)
    w.fire(TimerKind.OFFER_TIMEOUT, s, offer=offer.id)
    assert w.value("helpline_offer_lapses_total") == 1
    assert w.value("helpline_offers_total") == 2  # then offered to Bjørn
    w.accept(s, BJORN)
    assert w.value("helpline_offer_lapses_total") == 1


def test_gauges_follow_the_core_status_and_purges_count_by_outcome() -> None:
    w = MeteredWorld()
    w.on_duty(ANNA)
    a = w.arrive(chatter(1))
    w.accept(a, ANNA)
    w.arrive(chatter(2))  # waits: Anna has one conversation at most
    w.advance(timedelta(minutes=3))
    w.sync_errors = 4
    w.syncs = 17
    families = {
        f.name: f for f in text_string_to_metric_families(w.metrics.render().decode("utf-8"))
    }
    gauge = {name: f.samples[0].value for name, f in families.items() if f.samples}
    assert gauge["helpline_queue_length"] == 1
    assert gauge["helpline_active_conversations"] == 1
    assert gauge["helpline_volunteers_on_duty"] == 1
    assert gauge["helpline_longest_wait_seconds"] == 180
    assert gauge["helpline_sync_errors"] == 4  # the parser strips _total from counters
    assert gauge["helpline_syncs"] == 17

    w.chatter_says(a, "!slutt")
    w.fire(TimerKind.PURGE, a)
    w.feed(PurgeFinished(a.id, "failed: M_FORBIDDEN"))
    assert w.value("helpline_purges_total", outcome="failed") == 1
    assert w.value("helpline_conversations_ended_total", outcome="completed") == 1
    assert w.value("helpline_contacts_total", fate="answered") == 1


def test_contacts_count_answered_and_left_as_the_report_does() -> None:
    w = MeteredWorld()
    s = w.arrive(chatter(1))  # nobody on duty: waits
    w.chatter_says(s, "!slutt")
    w.fire(TimerKind.PURGE, s)
    w.feed(PurgeFinished(s.id, "verified"))
    assert w.value("helpline_contacts_total", fate="left") == 1
    assert w.value("helpline_contacts_total", fate="answered") == 0


def test_purge_outcome_is_a_small_vocabulary() -> None:
    assert purge_outcome("verified") == "verified"
    assert purge_outcome("failed: M_FORBIDDEN") == "failed"
    assert purge_outcome("") == "unknown"


def test_scrape_holds_no_ids() -> None:
    w = MeteredWorld()
    w.on_duty(ANNA)
    s = w.arrive(chatter(1), "hemmelig")
    w.accept(s, ANNA)
    text = w.metrics.render().decode()
    for secret in ("@", "!m", "$e", "hemmelig", "example.org"):
        assert secret not in text


def test_skipped_events_are_counted_by_reason_read_at_each_scrape() -> None:
    skipped = SkipCounts()
    metrics = Metrics(status=dict, sync_errors=lambda: 0, skipped=skipped)

    def value(reason: str) -> float | None:
        return metrics.registry.get_sample_value(
            "helpline_events_skipped_total", {"reason": reason}
        )

    assert [value(r) for r in ("malformed", "plaintext_in_encrypted", "error")] == [0, 0, 0]
    skipped.add(Skip.MALFORMED)
    skipped.add(Skip.MALFORMED)
    skipped.add(Skip.PLAINTEXT_IN_ENCRYPTED)
    skipped.add(Skip.IGNORED)  # the ordinary case is not a figure worth watching
    assert [value(r) for r in ("malformed", "plaintext_in_encrypted", "error")] == [2, 1, 0]
    assert value("ignored") is None
    assert b'helpline_events_skipped_total{reason="malformed"} 2.0' in metrics.render()
