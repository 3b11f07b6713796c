"""A volunteer's own language (`volunteers.members[].language`): every text the bot says
to them is in it, wherever it is said; the chatter keeps theirs, and the volunteers'
room, which everyone reads, keeps the helpline's default."""

from __future__ import annotations

from dataclasses import replace

from bot.core import commands
from bot.core.commands import Audience
from bot.core.events import RoomRef, Say
from bot.core.model import Role
from tests.unit.core_helpers import (
    ANNA,
    BJORN,
    CARL,
    PROFILES,
    STAFF_ROOM,
    World,
    chatter,
    of,
    policy,
    said,
)

C1, C2 = chatter(1), chatter(2)


def world() -> World:
    """Carl reads the bot in English; the line's default is Norwegian."""
    carl = replace(PROFILES[2], language="en")
    return World(policy(volunteers=(PROFILES[0], PROFILES[1], carl)))


def test_a_volunteers_replies_in_the_volunteers_room_and_a_dm_are_in_their_language() -> None:
    w = world()
    assert said(w.staff(CARL, "!on"), "duty.on").language == "en"
    assert said(w.staff(BJORN, "!på"), "duty.on").language == "nb"
    assert said(w.dm(CARL, "!status"), "status").language == "en"
    lines = said(w.dm(CARL, "!help"), "help").text.params["lines"]
    assert lines == commands.help_lines(Audience.STAFF, "en")


def test_everything_in_their_conversation_room_is_in_their_language() -> None:
    w = world()
    w.on_duty(CARL)
    s = w.arrive(C1)  # a Norwegian chatter
    fx = w.accept(s, CARL)
    to_carl = [e for e in of(fx, Say) if isinstance(e.to, RoomRef) and e.to.role is Role.VOLUNTEER]
    assert to_carl
    assert {e.language for e in to_carl} == {"en"}
    assert said(fx, "accepted.chatter").language == "nb"  # the chatter keeps theirs
    fx = w.volunteer_says(s, "!help")
    help_ = said(fx, "help")
    assert help_.language == "en"
    assert help_.text.params["lines"] == commands.help_lines(Audience.VOLUNTEER, "en")
    fx = w.volunteer_says(s, "!extend tomorrow")
    assert said(fx, "usage").text.params == {"usage": "!extend [10m]"}
    assert said(fx, "usage").language == "en"
    fx = w.volunteer_says(s, "!end")
    assert said(fx, "end.volunteer.completed").language == "en"
    assert said(fx, "end.chatter.completed").language == "nb"


def test_the_volunteers_room_keeps_the_default_language() -> None:
    w = world()
    s = w.arrive(C1)  # nobody on duty: the volunteers' room hears of the chatter
    assert s.state.value == "waiting"
    notice = [e for e in w.log if isinstance(e, Say) and e.to == STAFF_ROOM]
    assert notice
    assert {e.language for e in notice} == {"nb"}


def test_a_volunteer_without_a_language_reads_the_default() -> None:
    w = world()
    s = w.active(C1, ANNA)
    fx = w.volunteer_says(s, "!tid")
    assert said(fx, "time").language == "nb"
    assert said(w.dm(ANNA, "!status"), "status").language == "nb"
