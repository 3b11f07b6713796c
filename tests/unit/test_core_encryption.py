"""The core's side of encryption trouble: a message whose key never came (`Unreadable`)
and a staff member's changed cross-signing identity (`IdentityChanged`). Both produce
notices only; neither can carry content, since there is none."""

from __future__ import annotations

from bot.core.events import (
    ChatterUnverified,
    IdentityChanged,
    Origin,
    Redact,
    Relay,
    RoomRef,
    Say,
    Unreadable,
)
from bot.core.ids import EventID, UserID
from bot.core.model import Role
from tests.unit.core_helpers import (
    ANNA,
    KARI,
    LOBBY,
    STAFF_ROOM,
    World,
    chatter,
    dm_room,
    keys,
    of,
    policy,
    said,
)

GONE = EventID("$unreadable")


def test_a_chatters_lost_message_asks_them_again_and_tells_the_volunteer() -> None:
    w = World()
    s = w.active(chatter(1))
    assert s.chatter_room is not None
    fx = w.feed(Unreadable(s.chatter_room, s.chatter, GONE))
    to_chatter = said(fx, "unreadable.chatter")
    assert to_chatter.to == RoomRef(s.id, Role.CHATTER)
    assert to_chatter.language == s.language
    to_volunteer = said(fx, "unreadable.volunteer")
    assert to_volunteer.to == w.h._volunteer_ref(s)
    assert to_volunteer.text.params == {"number": s.number}
    assert not of(fx, Relay)


def test_while_waiting_only_the_chatter_hears_of_it() -> None:
    w = World()
    s = w.arrive(chatter(1))
    assert s.chatter_room is not None
    fx = w.feed(Unreadable(s.chatter_room, s.chatter, GONE))
    assert keys(fx) == ["unreadable.chatter"]


def test_a_volunteers_lost_message_asks_the_volunteer_again() -> None:
    w = World()
    s = w.active(chatter(1))
    assert s.volunteer_room is not None
    fx = w.feed(Unreadable(s.volunteer_room, ANNA, GONE))
    assert keys(fx) == ["unreadable.own"]
    assert said(fx, "unreadable.own").to == w.h._volunteer_ref(s)


def test_after_the_end_or_from_strangers_nothing_is_said() -> None:
    w = World()
    s = w.active(chatter(1))
    assert s.chatter_room is not None
    assert w.feed(Unreadable(s.chatter_room, chatter(2), GONE)) == []
    w.chatter_says(s, "!slutt")
    assert w.feed(Unreadable(s.chatter_room, s.chatter, GONE)) == []


def test_a_lost_direct_message_is_answered_in_the_dm() -> None:
    w = World()
    room = dm_room(chatter(1))
    fx = w.feed(Unreadable(room, chatter(1), GONE, Origin.DIRECT))
    assert keys(fx) == ["unreadable.chatter"]
    assert said(fx, "unreadable.chatter").to == room
    assert not w.h.sessions  # no conversation from a message nobody could read


def test_a_lost_direct_message_from_a_blocked_or_foreign_chatter_gets_nothing() -> None:
    w = World(policy(allowed_servers=frozenset({"other.org"})))
    assert w.feed(Unreadable(dm_room(chatter(1)), chatter(1), GONE, Origin.DIRECT)) == []


def test_staff_are_asked_again_in_the_volunteers_room() -> None:
    w = World()
    fx = w.feed(Unreadable(STAFF_ROOM, ANNA, GONE, Origin.STAFF))
    assert keys(fx) == ["unreadable.own"]
    assert said(fx, "unreadable.own").to == STAFF_ROOM
    # someone else's unreadable message in the staff room: not the bot's business
    assert w.feed(Unreadable(STAFF_ROOM, chatter(1), GONE, Origin.STAFF)) == []


def test_a_lost_lobby_message_is_still_removed_from_the_lobby() -> None:
    w = World()
    fx = w.feed(Unreadable(LOBBY, chatter(1), GONE, Origin.LOBBY))
    assert of(fx, Redact) == [Redact(LOBBY, GONE)]
    assert not of(fx, Say)


def test_a_volunteers_new_identity_is_reported_by_alias() -> None:
    w = World()
    fx = w.feed(IdentityChanged(ANNA))
    notice = said(fx, "staff.identity_changed")
    assert notice.to == STAFF_ROOM
    assert notice.text.params == {"name": "Anna"}


def test_a_supervisors_new_identity_is_reported_and_a_chatters_is_not() -> None:
    w = World()
    assert said(w.feed(IdentityChanged(KARI)), "staff.identity_changed").text.params == {
        "name": KARI
    }
    assert w.feed(IdentityChanged(chatter(1))) == []
    assert w.feed(IdentityChanged(UserID("@stranger:example.org"))) == []


def test_encryption_inputs_change_no_state() -> None:
    w = World()
    s = w.active(chatter(1))
    before = w.snapshot()
    assert s.chatter_room is not None
    w.feed(Unreadable(s.chatter_room, s.chatter, GONE))
    w.feed(IdentityChanged(ANNA))
    assert w.snapshot() == before


def test_a_staff_message_from_an_unverified_device_is_refused_in_place() -> None:
    """`untrusted`: read, but from a device its owner has not cross-signed. Nothing of it
    goes anywhere; the writer is told where they wrote, and nobody else hears of it."""
    w = World()
    s = w.active(chatter(1))
    assert s.volunteer_room is not None
    fx = w.feed(Unreadable(s.volunteer_room, ANNA, GONE, untrusted=True))
    assert keys(fx) == ["untrusted.own"]
    assert said(fx, "untrusted.own").to == s.volunteer_room
    fx = w.feed(Unreadable(STAFF_ROOM, ANNA, GONE, Origin.STAFF, untrusted=True))
    assert keys(fx) == ["untrusted.own"]
    assert said(fx, "untrusted.own").to == STAFF_ROOM
    # The adapter never refuses a chatter's device; if it did, the core would stay quiet.
    assert s.chatter_room is not None
    assert w.feed(Unreadable(s.chatter_room, s.chatter, GONE, untrusted=True)) == []
    assert s.state.value == "active"


def test_a_chatter_on_an_unverified_device_is_told_to_the_volunteer_once() -> None:
    w = World()
    s = w.active(chatter(1))
    assert s.chatter_room is not None
    fx = w.feed(ChatterUnverified(s.chatter_room, s.chatter))
    note = said(fx, "unverified.device")
    assert note.to == w.h._volunteer_ref(s)
    assert note.text.params == {"number": s.number}
    assert keys(w.feed(ChatterUnverified(s.chatter_room, s.chatter))) == []
    w.restart()
    assert keys(w.feed(ChatterUnverified(s.chatter_room, s.chatter))) == []


def test_before_a_volunteer_comes_it_is_kept_and_told_at_the_accept() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.arrive(chatter(1))
    assert s.chatter_room is not None
    assert keys(w.feed(ChatterUnverified(s.chatter_room, s.chatter))) == []
    fx = w.accept(s, ANNA)
    assert keys(fx).count("unverified.device") == 1


def test_only_the_conversations_own_chatter_in_its_own_room_counts() -> None:
    w = World()
    s = w.active(chatter(1))
    assert s.volunteer_room is not None
    assert s.chatter_room is not None
    assert keys(w.feed(ChatterUnverified(s.volunteer_room, s.chatter))) == []
    assert keys(w.feed(ChatterUnverified(s.chatter_room, chatter(2)))) == []
    assert keys(w.feed(ChatterUnverified(dm_room(chatter(1)), chatter(1)))) == []
