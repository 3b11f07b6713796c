"""Transfer with a handover note, a supervisor at the volunteer's side, and a volunteer who
has gone silent.

The rules are in `bot.core.transfer` and `bot.core.supervision`; the World is the one of
`core_helpers`.
"""

from __future__ import annotations

from datetime import timedelta

from bot.core.events import (
    Invite,
    Joined,
    Left,
    Purge,
    PurgeFinished,
    RedactRoom,
    Relay,
    Retire,
    RoomRef,
    Say,
)
from bot.core.model import OfferState, Role, SeatState, Session, State, Strategy, TimerKind
from tests.unit.core_helpers import (
    ANNA,
    BJORN,
    CARL,
    KARI,
    STAFF_ROOM,
    World,
    chatter,
    keys,
    of,
    policy,
    said,
)

C1 = chatter(1)
MIN = timedelta(minutes=1)


def vref(s: Session) -> RoomRef:
    offer = next(o for o in s.offers if o.state is OfferState.ACCEPTED)
    return RoomRef(s.id, Role.VOLUNTEER, offer.id)


# -- transfer ------------------------------------------------------------------------------


def test_transfer_to_a_named_volunteer_keeps_the_chatter_until_they_accept() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)
    old = vref(s)
    fx = w.volunteer_says(s, "!overfør bjørn")
    assert said(fx, "transfer.asked").text.params == {"alias": "Bjørn", "number": s.number}
    assert w.pending_to(s) == [BJORN]
    assert s.state is State.ACTIVE
    assert s.volunteer == ANNA
    # Meanwhile the chatter's words still reach Anna, and only her.
    fx = w.chatter_says(s, "er du der?")
    assert [r.to for r in of(fx, Relay)] == [old]

    fx = w.accept(s, BJORN)
    assert s.state is State.ACTIVE
    assert s.volunteer == BJORN
    new = vref(s)
    assert new != old
    assert said(fx, "transfer.done").to == old
    assert RedactRoom(old) in fx
    assert Retire(old, ANNA) in fx
    assert said(fx, "transfer.chatter").to == RoomRef(s.id, Role.CHATTER)
    assert said(fx, "accepted.chatter").text.params == {"alias": "Bjørn"}
    assert said(fx, "transfer.incoming").text.params == {"alias": "Anna", "number": s.number}
    # The new volunteer sees none of the history: nothing is relayed into their room.
    assert of(fx, Relay) == []
    assert s.transfer_offer is None


def test_the_handover_note_goes_to_the_next_volunteer_only_and_once() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)
    fx = w.volunteer_says(s, "!notat Snakket om skolen.\nMor vet ikke.")
    assert keys(fx) == ["note.saved"]
    assert of(fx, Relay) == []  # never to the chatter
    assert s.note == "Snakket om skolen.\nMor vet ikke."
    assert w.store.sessions[s.id]["note"] == s.note  # survives a restart
    w.volunteer_says(s, "!transfer")
    fx = w.accept(s, BJORN)
    note = said(fx, "note.handover")
    assert note.to == vref(s)
    assert note.text.params == {"note": "Snakket om skolen.\nMor vet ikke."}
    assert all(
        not (
            isinstance(e, Say)
            and e.to == RoomRef(s.id, Role.CHATTER)
            and "Mor" in str(e.text.params)
        )
        for e in fx
    )
    assert s.note is None  # shown once, then dropped


def test_the_note_also_reaches_the_next_volunteer_after_a_hand_back() -> None:
    w = World()
    w.on_duty(ANNA)
    s = w.active(C1)
    w.volunteer_says(s, "!note ring tilbake")
    w.volunteer_says(s, "!tilbake")
    w.on_duty(BJORN)
    fx = w.accept(s, BJORN)
    assert said(fx, "note.handover").text.params == {"note": "ring tilbake"}


def test_a_note_goes_with_the_purge() -> None:
    w = World()
    s = w.active(C1)
    w.volunteer_says(s, "!note hemmelig")
    w.volunteer_says(s, "!slutt")
    w.fire(TimerKind.PURGE, s)
    w.feed(PurgeFinished(s.id, "verified"))
    assert s.id not in w.store.sessions


def test_transfer_to_the_next_available_volunteer_prefers_the_chatters_language() -> None:
    w = World()
    w.on_duty(ANNA, CARL, BJORN)  # Carl speaks English only, Bjørn Norwegian
    s = w.active(C1)
    w.volunteer_says(s, "!transfer")
    assert w.pending_to(s) == [BJORN]


def test_transfer_with_broadcast_still_offers_to_one() -> None:
    w = World(policy(strategy=Strategy.BROADCAST))
    w.on_duty(ANNA, BJORN, CARL)
    s = w.active(C1)
    assert s.volunteer is not None
    w.volunteer_says(s, "!transfer")
    assert len(w.pending_to(s)) == 1


def test_nobody_to_transfer_to_keeps_the_chatter() -> None:
    w = World()
    s = w.active(C1)
    fx = w.volunteer_says(s, "!overfør")
    assert keys(fx) == ["transfer.nobody"]
    fx = w.volunteer_says(s, "!overfør Bjørn")  # not on duty
    assert said(fx, "transfer.unavailable").text.params == {"alias": "Bjørn"}
    fx = w.volunteer_says(s, "!overfør Anna")  # herself
    assert keys(fx) == ["transfer.unavailable"]
    assert s.pending_offers() == []
    assert s.volunteer == ANNA


def test_a_lapsed_transfer_offer_leaves_the_chatter_with_the_volunteer() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)
    w.volunteer_says(s, "!overfør Bjørn")
    offer = w.offer_to(s, BJORN)
    fx = w.fire(TimerKind.OFFER_TIMEOUT, s, offer=offer.id)
    lost = said(fx, "transfer.lost")
    assert lost.to == vref(s)
    assert lost.text.params == {"alias": "Bjørn", "number": s.number}
    assert s.state is State.ACTIVE
    assert s.volunteer == ANNA
    assert s.transfer_offer is None
    # A declined one too.
    w.on_duty(BJORN)
    w.volunteer_says(s, "!overfør Bjørn")
    offer = w.offer_to(s, BJORN)
    assert offer.room is not None
    fx = w.feed(Left(offer.room, BJORN))
    assert keys(fx) == ["transfer.lost"]
    assert s.volunteer == ANNA


def test_one_transfer_at_a_time_and_none_once_ended() -> None:
    w = World()
    w.on_duty(ANNA, BJORN, CARL)
    s = w.active(C1)
    w.volunteer_says(s, "!overfør Bjørn")
    fx = w.volunteer_says(s, "!overfør")
    assert said(fx, "transfer.pending").text.params == {"alias": "Bjørn"}
    fx = w.volunteer_says(s, "!slutt")
    assert "transfer.lost" not in keys(fx)  # the end says it all
    assert s.pending_offers() == []
    assert keys(w.volunteer_says(s, "!overfør")) == ["not_active"]


def test_a_hand_back_calls_off_a_pending_transfer() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)
    w.volunteer_says(s, "!overfør Bjørn")
    w.volunteer_says(s, "!tilbake")
    assert s.state in (State.WAITING, State.OFFERED)
    assert s.transfer_offer is None
    assert next(o.state for o in s.offers if o.volunteer == BJORN) is OfferState.WITHDRAWN


def test_a_pending_transfer_survives_a_restart() -> None:
    w = World()
    w.on_duty(ANNA, BJORN)
    s = w.active(C1)
    w.volunteer_says(s, "!overfør Bjørn")
    w.restart()
    s = w.h.sessions[s.id]
    w.accept(s, BJORN)
    assert s.volunteer == BJORN


# -- a supervisor at the volunteer's side ------------------------------------------------


def test_a_supervisor_joins_by_number_and_reads_but_never_reaches_the_chatter() -> None:
    w = World()
    s = w.active(C1)
    fx = w.staff(KARI, f"!bli-med {s.number}")
    assert Invite(vref(s), KARI) in fx
    assert said(fx, "join.invited").to == STAFF_ROOM
    assert s.seat(KARI) is not None
    room = s.volunteer_room
    assert room is not None
    fx = w.feed(Joined(room, KARI))
    joined = said(fx, "supervision.joined")
    assert joined.to == vref(s)
    assert joined.text.params == {"name": KARI}
    assert "supervision.chatter" not in keys(fx)  # not told by default

    fx = w.msg(room, KARI, "Spør hva som skjedde i går.")
    assert fx == []  # nothing relayed, nothing said: the volunteer reads it in the room
    # The chatter's words still go to the volunteer's room (where the supervisor reads).
    fx = w.chatter_says(s, "hei")
    assert [r.to for r in of(fx, Relay)] == [vref(s)]


def test_the_chatter_is_told_only_when_configured() -> None:
    w = World(policy(tell_chatter=True))
    s = w.active(C1)
    w.staff(KARI, f"!join {s.number}")
    assert s.volunteer_room is not None
    fx = w.feed(Joined(s.volunteer_room, KARI))
    assert said(fx, "supervision.chatter").to == RoomRef(s.id, Role.CHATTER)


def test_join_is_for_supervisors_and_ongoing_conversations() -> None:
    w = World()
    s = w.active(C1)
    assert keys(w.staff(BJORN, f"!bli-med {s.number}")) == ["supervisors_only"]
    assert keys(w.staff(KARI, "!bli-med 999")) == ["join.unknown"]
    assert keys(w.staff(KARI, "!bli-med")) == ["usage"]


def test_leave_removes_the_supervisor_and_tells_the_volunteer() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!bli-med {s.number}")
    assert s.volunteer_room is not None
    w.feed(Joined(s.volunteer_room, KARI))
    fx = w.msg(s.volunteer_room, KARI, "!forlat")
    assert Retire(vref(s), KARI) in fx
    assert said(fx, "supervision.left").text.params == {"name": KARI}
    seat = s.seat(KARI)
    assert seat is not None
    assert seat.state is SeatState.GONE
    # The volunteer cannot use it.
    assert keys(w.volunteer_says(s, "!leave")) == ["supervisors_only"]


def test_a_supervisors_help_in_the_room_lists_what_they_may_do_there() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!bli-med {s.number}")
    assert s.volunteer_room is not None
    w.feed(Joined(s.volunteer_room, KARI))
    fx = w.msg(s.volunteer_room, KARI, "!hjelp")
    lines = said(fx, "help").text.params["lines"]
    assert [key for _, key in lines] == ["help.leave", "help.block", "help.unblock"]
    # The volunteer's own help is theirs, without the supervisors' commands.
    lines = said(w.volunteer_says(s, "!hjelp"), "help").text.params["lines"]
    assert "help.transfer" in [k for _, k in lines]
    assert "help.leave" not in [k for _, k in lines]


def test_supervisors_are_purged_with_the_conversation() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!bli-med {s.number}")
    assert s.volunteer_room is not None
    w.feed(Joined(s.volunteer_room, KARI))
    w.volunteer_says(s, "!slutt")
    assert s.seat(KARI) is not None  # stays until the purge redacts, then kicks
    fx = w.fire(TimerKind.PURGE, s)
    (purge,) = of(fx, Purge)
    assert KARI in purge.participants


def test_a_hand_back_removes_the_supervisor_after_the_redaction() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!bli-med {s.number}")
    assert s.volunteer_room is not None
    w.feed(Joined(s.volunteer_room, KARI))
    old = vref(s)
    fx = w.volunteer_says(s, "!tilbake")
    assert fx.index(RedactRoom(old)) < fx.index(Retire(old, KARI))


def test_alert_mentions_supervisors_on_duty_and_invites_them() -> None:
    w = World(policy(supervisors=frozenset({KARI, BJORN})))
    s = w.active(C1)
    # Nobody on duty as a supervisor: every supervisor is called (but not the volunteer).
    fx = w.volunteer_says(s, "!hjelp-veileder")
    alert = said(fx, "staff.alert")
    assert alert.to == STAFF_ROOM
    assert set(alert.mentions) == {KARI, BJORN}
    assert {e.user for e in of(fx, Invite)} == {KARI, BJORN}
    assert "alert.sent" in keys(fx)
    # The first to accept takes it; the other invitation is withdrawn.
    assert s.volunteer_room is not None
    fx = w.feed(Joined(s.volunteer_room, BJORN))
    assert Retire(vref(s), KARI) in fx
    assert "supervision.joined" in keys(fx)


def test_alert_mentions_only_the_supervisors_on_duty_when_some_are() -> None:
    w = World(policy(supervisors=frozenset({KARI, BJORN})))
    w.staff(KARI, "!på")
    s = w.active(C1)
    fx = w.volunteer_says(s, "!alert")
    assert said(fx, "staff.alert").mentions == (KARI,)
    assert [e.user for e in of(fx, Invite)] == [KARI]
    w.staff(KARI, "!av")
    assert not w.h.duty[KARI].on_duty


def test_only_alerts_mention_anyone() -> None:
    w = World()
    s = w.active(C1)
    fx = w.chatter_says(s, "@room hei")
    fx += w.volunteer_says(s, "!tid")
    assert all(not e.mentions for e in of(fx, Say))


# -- a volunteer who has gone silent -------------------------------------------------------


def test_a_silent_volunteer_is_nudged_then_the_supervisors_are_alerted() -> None:
    w = World(policy(volunteer_silence=5 * MIN))
    w.staff(KARI, "!på")
    s = w.active(C1)
    w.volunteer_says(s, "hei, jeg er Anna")
    w.chatter_says(s, "hei")
    fx = w.fire(TimerKind.VOLUNTEER_SILENCE, s)
    nudge = said(fx, "silence.nudge")
    assert nudge.to == vref(s)
    assert nudge.text.params == {"minutes": 5}
    fx = w.fire(TimerKind.VOLUNTEER_SILENCE, s)
    alert = said(fx, "staff.silence")
    assert alert.to == STAFF_ROOM
    assert alert.mentions == (KARI,)
    assert alert.text.params == {"number": s.number, "alias": "Anna", "minutes": 10}
    assert TimerKind.VOLUNTEER_SILENCE not in {t.kind for t in w.h.timers.values()}


def test_an_answer_stops_the_silence_and_the_timer_moves_itself() -> None:
    w = World(policy(volunteer_silence=5 * MIN))
    s = w.active(C1)
    w.volunteer_says(s, "hei")
    w.chatter_says(s, "hei")
    due = w.timer(TimerKind.VOLUNTEER_SILENCE, s).due
    w.advance(2 * MIN)
    w.volunteer_says(s, "fortell")
    w.advance(MIN)
    fx = w.chatter_says(s, "ok")
    assert w.timer(TimerKind.VOLUNTEER_SILENCE, s).due == due  # no timer write per message
    assert not w.changes.timers_set
    fx = w.fire(TimerKind.VOLUNTEER_SILENCE, s)
    assert keys(fx) == []  # fired early: moved to 5 min after "ok"
    assert w.timer(TimerKind.VOLUNTEER_SILENCE, s).due == w.now + 3 * MIN
    w.volunteer_says(s, "!svar taushet")  # a canned reply is an answer too
    assert keys(w.fire(TimerKind.VOLUNTEER_SILENCE, s)) == []


def test_silence_survives_a_restart_and_can_be_turned_off() -> None:
    w = World(policy(volunteer_silence=5 * MIN))
    s = w.active(C1)
    w.volunteer_says(s, "hei")
    w.chatter_says(s, "hei")
    w.restart()
    s = w.h.sessions[s.id]
    assert keys(w.fire(TimerKind.VOLUNTEER_SILENCE, s)) == ["silence.nudge"]

    off = World(policy(volunteer_silence=timedelta(0)))
    s = off.active(C1)
    off.volunteer_says(s, "hei")
    off.chatter_says(s, "hei")
    assert TimerKind.VOLUNTEER_SILENCE not in {t.kind for t in off.h.timers.values()}


def test_no_nudge_after_the_end() -> None:
    w = World(policy(volunteer_silence=5 * MIN))
    s = w.active(C1)
    w.chatter_says(s, "hei")
    w.volunteer_says(s, "!slutt")
    assert TimerKind.VOLUNTEER_SILENCE not in {t.kind for t in w.h.timers.values()}
