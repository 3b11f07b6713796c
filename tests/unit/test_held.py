"""The buffer of events waiting for their Megolm key (bot.matrix.held), on a hand-set clock:
no event loop, no nio. A held "event" is any object; `Keys` plays nio's decryption."""

from __future__ import annotations

from typing import Any

from bot.core.events import Message, Origin, Unreadable
from bot.core.ids import EventID, RoomID, UserID
from bot.inbox import BatchEnd, Inbound
from bot.matrix.held import HOLD, HeldEvents

A, B = RoomID("!a:hs"), RoomID("!b:hs")
CHATTER = UserID("@c:hs")
GRACE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Keys:
    """Decrypts a held event (its name) once its key has `come`."""

    def __init__(self) -> None:
        self.come: set[str] = set()

    def __call__(self, room: RoomID, event: Any, origin: Origin) -> tuple[bool, Inbound | None]:
        if event not in self.come:
            return False, None
        return True, said(room, event)


def said(room: RoomID, body: str) -> Inbound:
    event = EventID(f"${body}")
    return Inbound(Message(room, CHATTER, event, body, origin=Origin.DIRECT), event)


def held_in(buffer: HeldEvents, room: RoomID, name: str) -> None:
    buffer.hold(room, name, sender=CHATTER, event_id=EventID(f"${name}"), origin=Origin.DIRECT)


def pass_on(buffer: HeldEvents, room: RoomID, body: str, out: list[Any]) -> None:
    inbound = said(room, body)
    if not buffer.queue(room, inbound, Origin.DIRECT):
        out.append(inbound)


def bodies(items: list[Any]) -> list[str]:
    return [
        i.input.body if isinstance(i.input, Message) else type(i.input).__name__
        for i in items
        if isinstance(i, Inbound)
    ]


def buffer_at(clock: Clock) -> HeldEvents:
    return HeldEvents(grace=GRACE, clock=clock)


def test_with_nothing_held_everything_passes_on_and_the_batch_is_saved() -> None:
    buffer, out = buffer_at(Clock()), []
    buffer.begin_batch()
    pass_on(buffer, A, "hei", out)
    buffer.end_batch("s1")
    released = buffer.release(Keys())
    assert bodies(out) == ["hei"]
    assert released.items == [BatchEnd("s1")]
    assert released.wake_in is None
    assert not buffer


def test_a_late_key_releases_the_event_then_what_waited_behind_it_in_order() -> None:
    clock, keys, out = Clock(), Keys(), []
    buffer = buffer_at(clock)
    buffer.begin_batch()
    held_in(buffer, A, "først")
    pass_on(buffer, A, "så", out)
    pass_on(buffer, B, "annet rom", out)  # another room does not wait
    buffer.end_batch("s1")
    first = buffer.release(keys)
    assert bodies(out) == ["annet rom"]
    assert first.items == []  # nothing from room A, and batch 1 is not saved
    assert first.wake_in == HOLD
    clock.now += 1
    keys.come.add("først")
    second = buffer.release(keys)
    assert bodies(second.items) == ["først", "så"]
    assert second.items[-1] == BatchEnd("s1")
    assert second.wake_in is None
    assert not buffer
    assert buffer.counts.decrypted_late == 1


def test_after_the_hold_the_room_goes_on_and_the_event_follows_when_its_key_comes() -> None:
    clock, keys, out = Clock(), Keys(), []
    buffer = buffer_at(clock)
    buffer.begin_batch()
    held_in(buffer, A, "sen")
    pass_on(buffer, A, "etter", out)
    buffer.end_batch("s1")
    assert buffer.release(keys).items == []
    clock.now += HOLD
    unblocked = buffer.release(None)  # the timer: no sync, no new keys
    assert bodies(unblocked.items) == ["etter"]
    assert unblocked.wake_in == GRACE - HOLD
    assert buffer  # the event itself still waits, and with it the checkpoint
    clock.now += 5
    keys.come.add("sen")
    late = buffer.release(keys)
    assert bodies(late.items) == ["sen"]
    assert late.items[-1] == BatchEnd("s1")


def test_a_key_that_never_comes_becomes_unreadable_after_the_grace_period() -> None:
    clock, keys = Clock(), Keys()
    buffer = buffer_at(clock)
    buffer.begin_batch()
    held_in(buffer, A, "tapt")
    buffer.end_batch("s1")
    buffer.release(keys)
    clock.now += GRACE - 0.001
    assert buffer.release(keys).items == []
    clock.now += 0.001
    released = buffer.release(None)
    assert [i.input for i in released.items if isinstance(i, Inbound)] == [
        Unreadable(A, CHATTER, EventID("$tapt"), Origin.DIRECT)
    ]
    assert released.items[-1] == BatchEnd("s1")
    assert released.wake_in is None
    assert not buffer
    assert buffer.counts.unreadable == 1


def test_the_checkpoint_only_moves_past_batches_with_nothing_held() -> None:
    clock, keys, out = Clock(), Keys(), []
    buffer = buffer_at(clock)
    buffer.begin_batch()
    pass_on(buffer, A, "en", out)
    buffer.end_batch("s1")
    assert buffer.release(keys).items == [BatchEnd("s1")]
    buffer.begin_batch()
    held_in(buffer, A, "to")  # held from batch 2
    buffer.end_batch("s2")
    assert buffer.release(keys).items == []
    clock.now += HOLD
    buffer.begin_batch()
    pass_on(buffer, B, "tre", out)
    buffer.end_batch("s3")
    # batch 3 has nothing held, but batch 2 before it has: neither is saved
    assert buffer.release(keys).items == []
    keys.come.add("to")
    released = buffer.release(keys)
    assert bodies(released.items) == ["to"]
    assert released.items[-1] == BatchEnd("s3")  # the newest batch, once nothing is held
    assert BatchEnd("s2") not in released.items


def test_an_event_decrypted_into_nothing_frees_its_place() -> None:
    clock, out = Clock(), []
    buffer = buffer_at(clock)
    buffer.begin_batch()
    held_in(buffer, A, "ignorert")
    pass_on(buffer, A, "etter", out)
    buffer.end_batch("s1")
    released = buffer.release(lambda room, event, origin: (True, None))
    assert bodies(released.items) == ["etter"]
    assert released.items[-1] == BatchEnd("s1")


def test_order_is_kept_per_room_behind_two_held_events() -> None:
    clock, keys, out = Clock(), Keys(), []
    buffer = buffer_at(clock)
    buffer.begin_batch()
    held_in(buffer, A, "1")
    pass_on(buffer, A, "2", out)
    held_in(buffer, A, "3")
    pass_on(buffer, A, "4", out)
    buffer.end_batch("s1")
    keys.come.add("3")  # the later key first: nothing may overtake "1"
    assert buffer.release(keys).items == []
    keys.come.add("1")
    assert bodies(buffer.release(keys).items) == ["1", "2", "3", "4"]


def test_the_timer_is_asked_for_at_the_end_of_the_hold_then_of_the_grace() -> None:
    clock = Clock()
    buffer = buffer_at(clock)
    buffer.begin_batch()
    held_in(buffer, A, "x")
    buffer.end_batch("s1")
    assert buffer.release(None).wake_in == HOLD
    clock.now += 1
    assert buffer.release(None).wake_in == HOLD - 1
    clock.now += HOLD
    assert buffer.release(None).wake_in == GRACE - HOLD - 1
