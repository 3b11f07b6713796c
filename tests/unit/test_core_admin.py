"""The admins' part of the core: `!reload` and what a new policy changes (and what it does
not), `!status full`.

The rules are in `bot.core.admin`; the World is the one of `core_helpers`. The app's side
(reading the file, what needs a restart) is `tests/unit/test_config_reload.py`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.core.events import (
    PolicyChanged,
    Relay,
    Reload,
    ReloadRefused,
    RoomRef,
    Say,
    Withdraw,
)
from bot.core.ids import UserID
from bot.core.model import OfferState, Role, State, TimerKind, VolunteerProfile
from tests.unit.core_helpers import (
    ANNA,
    BJORN,
    CARL,
    KARI,
    PROFILES,
    STAFF_ROOM,
    World,
    chatter,
    dm_room,
    keys,
    of,
    policy,
    said,
)

ADA = UserID("@ada:example.org")  # an admin, neither volunteer nor supervisor
DAG = UserID("@dag:example.org")  # a volunteer a reload adds
C1, C2 = chatter(1), chatter(2)


def admin_world() -> World:
    return World(policy(admins=frozenset({ADA})))


def reloaded(w: World, **changes: object) -> list[object]:
    """A good file read again, with `changes` to the policy, for ADA in the staff room."""
    new = replace(w.h.policy, **changes)
    return list(w.feed(PolicyChanged(new, STAFF_ROOM, ADA)))


# -- who may ----------------------------------------------------------------------------


def test_an_admin_asks_for_a_reload_and_the_core_reads_no_file() -> None:
    w = admin_world()
    fx = w.staff(ADA, "!reload")
    assert fx == [Reload(STAFF_ROOM, ADA)]
    fx = w.dm(ADA, "!last-inn")  # in a DM, by its Norwegian name
    assert fx == [Reload(dm_room(ADA), ADA)]


def test_anyone_else_is_told_reload_is_for_admins() -> None:
    w = admin_world()
    for who in (ANNA, KARI):
        fx = w.staff(who, "!reload")
        assert keys(fx) == ["admins_only"]
        assert not of(fx, Reload)
        fx = w.staff(who, "!status full")
        assert keys(fx) == ["admins_only"]
    assert w.staff(C1, "!reload") == []  # not staff: the bot does not answer


def test_an_admin_is_staff_so_their_dm_is_a_command_and_never_a_conversation() -> None:
    w = admin_world()
    fx = w.dm(ADA, "hei")
    assert keys(fx) == ["staff.dm_hint"]
    assert not w.h.sessions
    fx = w.staff(ADA, "!på")  # an admin who is not a volunteer cannot go on duty
    assert keys(fx) == ["duty.not_volunteer"]


def test_help_shows_the_admins_commands_to_admins_only() -> None:
    w = admin_world()
    admin_help = said(w.staff(ADA, "!hjelp"), "help").text.params["lines"]
    assert ("!status full", "help.status_full") in admin_help
    assert ("!last-inn", "help.reload") in admin_help
    for who in (ANNA, KARI):
        lines = said(w.staff(who, "!hjelp"), "help").text.params["lines"]
        assert not {k for _, k in lines} & {"help.status_full", "help.reload"}
        assert ("!status", "help.status") in lines


# -- a good file ---------------------------------------------------------------------------


def test_a_reload_tells_the_admin_what_changed_and_what_waits_for_a_restart() -> None:
    w = admin_world()
    added = VolunteerProfile(DAG, "Dag", ("nb",))
    new = replace(w.h.policy, volunteers=(*PROFILES[:2], added))  # Carl out, Dag in
    fx = w.feed(PolicyChanged(new, STAFF_ROOM, ADA, ("homeserver", "http")))
    assert said(fx, "reload.done").text.params == {"added": 1, "removed": 1}
    assert said(fx, "reload.restart").text.params == {"keys": ["homeserver", "http"]}
    assert w.h.policy is new


def test_a_reload_by_sighup_tells_nobody() -> None:
    w = admin_world()
    fx = w.feed(PolicyChanged(replace(w.h.policy, topics=("angst",))))
    assert not of(fx, Say)
    assert w.h.policy.topics == ("angst",)


def test_an_added_volunteer_can_go_on_duty_and_gets_the_next_chatter() -> None:
    w = admin_world()
    assert keys(w.staff(DAG, "!på")) == []  # not yet anyone to the bot
    reloaded(w, volunteers=(*PROFILES, VolunteerProfile(DAG, "Dag", ("nb",))))
    fx = w.staff(DAG, "!på")
    assert said(fx, "duty.on").text.params["alias"] == "Dag"
    s = w.arrive(C1)
    assert w.pending_to(s) == [DAG]
    w.accept(s, DAG)
    assert s.state is State.ACTIVE
    assert s.volunteer == DAG


def test_a_removed_volunteer_keeps_their_conversation_until_it_ends() -> None:
    w = admin_world()
    s = w.active(C1, BJORN)
    assert s.volunteer_room is not None
    vroom = s.volunteer_room
    fx = reloaded(w, volunteers=(PROFILES[0], PROFILES[2]))  # Bjørn out
    assert said(fx, "reload.done").text.params == {"added": 0, "removed": 1}
    assert not w.h.duty[BJORN].on_duty
    # The conversation goes on: both ways, under the alias the chatter knows.
    w.advance(timedelta(minutes=1))
    fx = w.chatter_says(s, "er du der?")
    assert [(r.to, r.body) for r in of(fx, Relay)] == [
        (RoomRef(s.id, Role.VOLUNTEER, s.offers[-1].id), "er du der?")
    ]
    fx = w.volunteer_says(s, "ja, jeg er her")
    assert [(r.to, r.body) for r in of(fx, Relay)] == [
        (RoomRef(s.id, Role.CHATTER), "ja, jeg er her")
    ]
    fx = w.volunteer_says(s, "!tid")
    assert keys(fx) == ["time"]
    # Until the volunteer ends it.
    fx = w.volunteer_says(s, "!slutt")
    assert s.state is State.ENDING
    assert s.volunteer == BJORN
    assert s.volunteer_room == vroom
    # No new chatter reaches the removed volunteer.
    s2 = w.arrive(C2)
    assert BJORN not in w.pending_to(s2)


def test_a_removed_volunteers_offer_goes_to_someone_else() -> None:
    w = admin_world()
    w.on_duty(BJORN)
    s = w.arrive(C1)
    assert w.pending_to(s) == [BJORN]
    w.on_duty(ANNA)  # on duty while Bjørn's offer is out
    fx = reloaded(w, volunteers=(PROFILES[0], PROFILES[2]))  # Bjørn out
    withdrawn = of(fx, Withdraw)
    assert [x.volunteer for x in withdrawn] == [BJORN]
    assert [o.state for o in s.offers if o.volunteer == BJORN] == [OfferState.WITHDRAWN]
    assert w.pending_to(s) == [ANNA]


def test_new_limits_apply_to_the_next_conversation_not_to_one_under_way() -> None:
    w = admin_world()
    s = w.active(C1, ANNA)
    reloaded(w, max_duration=timedelta(minutes=20))
    assert w.timer(TimerKind.MAX_DURATION, s).due == s.deadline(timedelta(minutes=60))
    s2 = w.active(C2, CARL)
    assert w.timer(TimerKind.MAX_DURATION, s2).due == s2.deadline(timedelta(minutes=20))


def test_a_reload_survives_a_restart_as_the_new_config_is_read_at_start() -> None:
    w = admin_world()
    w.on_duty(ANNA)
    reloaded(w, volunteers=(*PROFILES, VolunteerProfile(DAG, "Dag", ("nb",))))
    w.staff(DAG, "!på")
    w.policy = w.h.policy  # at start, the bot reads the file that was reloaded
    w.restart()
    assert w.h.duty[DAG].on_duty


# -- a bad file ----------------------------------------------------------------------------


def test_a_bad_file_is_refused_with_its_count_and_nothing_changes() -> None:
    w = admin_world()
    before = w.h.policy
    fx = w.feed(ReloadRefused(STAFF_ROOM, ADA, 3))
    assert said(fx, "reload.refused").text.params == {"problems": 3}
    assert w.h.policy is before


# -- !status full ------------------------------------------------------------------------------


def test_status_full_names_aliases_and_counts_never_an_id() -> None:
    w = admin_world()
    w.active(C1, CARL)
    w.on_duty(ANNA)
    w.advance(timedelta(minutes=4))
    w.arrive(C2)  # offered to Anna: a queue of one, an offer out
    w.staff(CARL, "!av")  # off duty, still in a conversation
    w.advance(timedelta(minutes=2))
    fx = w.staff(ADA, "!status full")
    params = said(fx, "status.full").text.params
    assert params == {
        "waiting": 1,
        "longest_wait_minutes": 2,
        "offers": 1,
        "on_duty_aliases": ["Anna (0)"],
        "off_duty_aliases": ["Carl (1)"],
    }
    assert "@" not in repr(params)


def test_status_full_shows_a_removed_volunteer_still_in_a_conversation() -> None:
    w = admin_world()
    w.active(C1, BJORN)
    reloaded(w, volunteers=(PROFILES[0], PROFILES[2]))
    params = said(w.staff(ADA, "!status full"), "status.full").text.params
    assert params["off_duty_aliases"] == ["Bjørn (1)"]
