"""Care for volunteers: their own shift on request (`!min-vakt` / `!my-shift`), and a
debrief offered after a conversation on a topic of `supervision.debrief_topics`.

The rules are in `bot.core.care`; the World is the one of `core_helpers`.
"""

from __future__ import annotations

from datetime import timedelta

from bot.core.model import State, TimerKind
from tests.unit.core_helpers import (
    ANNA,
    BJORN,
    KARI,
    STAFF_ROOM,
    World,
    chatter,
    dm_room,
    keys,
    policy,
    said,
)

C1, C2, C3 = chatter(1), chatter(2), chatter(3)


def care_world() -> World:
    return World(
        policy(topics=("angst", "selvmordstanker", "skole"), debrief_topics=("selvmordstanker",))
    )


# -- !my-shift ---------------------------------------------------------------------------


def test_my_shift_counts_the_conversations_and_the_time_since_going_on_duty() -> None:
    w = care_world()
    w.on_duty(ANNA)  # 13:00 Oslo, plus a second
    s1 = w.active(C1, ANNA)
    w.volunteer_says(s1, "!slutt")
    w.advance(timedelta(minutes=40))
    w.active(C2, ANNA)
    w.advance(timedelta(minutes=5))
    fx = w.dm(ANNA, "!min-vakt")
    assert said(fx, "shift.on").text.params == {
        "since": "13:00",
        "minutes": 45,
        "conversations": 2,
        "open": 1,
    }
    assert said(fx, "shift.on").to == dm_room(ANNA)


def test_my_shift_works_in_a_conversation_room_and_says_nothing_to_the_chatter() -> None:
    w = care_world()
    s = w.active(C1, ANNA)
    fx = w.volunteer_says(s, "!my-shift")
    assert keys(fx) == ["shift.on"]
    assert said(fx, "shift.on").to == w.h._volunteer_ref(s)


def test_a_new_shift_counts_from_zero_and_off_duty_shows_the_last_one() -> None:
    w = care_world()
    s = w.active(C1, ANNA)
    w.volunteer_says(s, "!slutt")
    w.staff(ANNA, "!av")
    fx = w.staff(ANNA, "!min-vakt")
    assert said(fx, "shift.off").text.params == {"conversations": 1}
    w.on_duty(ANNA)
    fx = w.staff(ANNA, "!min-vakt")
    assert said(fx, "shift.on").text.params["conversations"] == 0


def test_the_shift_count_survives_a_restart() -> None:
    w = care_world()
    w.active(C1, ANNA)
    w.restart()
    assert said(w.staff(ANNA, "!min-vakt"), "shift.on").text.params["conversations"] == 1


def test_my_shift_is_for_volunteers() -> None:
    w = care_world()
    assert keys(w.staff(KARI, "!my-shift")) == ["duty.not_volunteer"]


# -- debrief -----------------------------------------------------------------------------------


def test_a_conversation_tagged_with_a_debrief_topic_offers_one_at_its_end() -> None:
    w = care_world()
    s = w.active(C1, ANNA)
    fx = w.volunteer_says(s, "!tema selvmordstanker angst")
    assert "debrief.volunteer" not in keys(fx)  # not while it goes on
    fx = w.volunteer_says(s, "!slutt")
    offered = said(fx, "debrief.volunteer")
    assert offered.to == w.h._volunteer_ref(s)
    staff = said(fx, "staff.debrief")
    assert staff.to == STAFF_ROOM
    assert staff.text.params == {"alias": "Anna"}  # no number, no topic


def test_tagged_after_the_end_offers_it_then_and_only_once() -> None:
    w = care_world()
    s = w.active(C1, ANNA)
    fx = w.volunteer_says(s, "!slutt")
    assert "debrief.volunteer" not in keys(fx)
    fx = w.volunteer_says(s, "!tema skole")
    assert keys(fx) == ["tag.saved"]
    fx = w.volunteer_says(s, "!tema selvmordstanker")
    assert keys(fx) == ["tag.saved", "debrief.volunteer", "staff.debrief"]
    fx = w.volunteer_says(s, "!tema selvmordstanker angst")
    assert keys(fx) == ["tag.saved"]


def test_a_conversation_the_chatter_left_is_offered_a_debrief_too() -> None:
    w = care_world()
    s = w.active(C1, BJORN)
    w.volunteer_says(s, "!tema selvmordstanker")
    fx = w.fire(TimerKind.MAX_DURATION, s)
    assert s.state is State.ENDING
    assert said(fx, "staff.debrief").text.params == {"alias": "Bjørn"}


def test_no_debrief_topics_no_debrief() -> None:
    w = World(policy(topics=("selvmordstanker",)))
    s = w.active(C1, ANNA)
    w.volunteer_says(s, "!tema selvmordstanker")
    fx = w.volunteer_says(s, "!slutt")
    assert "debrief.volunteer" not in keys(fx)
    assert "staff.debrief" not in keys(fx)
