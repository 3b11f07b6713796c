"""Blocking: a supervisor's `!block N [span]` and `!unblock N`, and what a blocked person
who writes again gets (the emergency numbers, at most once a day; never a conversation).

The rules are in `bot.core.blocking`; the World is the one of `core_helpers`.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.core import commands
from bot.core.commands import Audience
from bot.core.events import (
    CreateRoom,
    Joined,
    Origin,
    PurgeFinished,
    Redact,
    Relay,
    RoomRef,
    Say,
    Unreadable,
    WebChatter,
)
from bot.core.ids import EventID, UserID
from bot.core.model import Role, Session, State, TimerKind
from bot.core.pseudonyms import chatter_hash
from tests.unit.core_helpers import (
    ANNA,
    BJORN,
    KARI,
    LOBBY,
    STAFF_ROOM,
    T0,
    World,
    chatter,
    dm_room,
    keys,
    of,
    policy,
    said,
)

C1, C2 = chatter(1), chatter(2)


def vref(s: Session) -> RoomRef:
    offer = next(o for o in reversed(s.offers) if o.volunteer == s.volunteer)
    return RoomRef(s.id, Role.VOLUNTEER, offer.id)


def purged(w: World, s: Session) -> None:
    """The conversation ends and its purge is done: the bot no longer knows who it was."""
    if s.state is State.ACTIVE:
        w.volunteer_says(s, "!slutt")
    w.fire(TimerKind.PURGE, s)
    w.feed(PurgeFinished(s.id, "verified"))
    assert s.id not in w.h.sessions


def hash_of(w: World, user: UserID) -> str:
    return chatter_hash(w.policy.block_key, user)


# -- setting a block -----------------------------------------------------------------------


def test_a_supervisor_blocks_a_conversation_for_24_hours_and_it_goes_on() -> None:
    w = World()
    s = w.active(C1)
    fx = w.staff(KARI, f"!blokker {s.number}")
    done = said(fx, "block.done")
    assert done.to == STAFF_ROOM
    # T0 is 13:00 in Oslo; staff read the end in the helpline's time.
    assert done.text.params == {"number": s.number, "until": "2026-03-03 13:00"}
    assert said(fx, "block.volunteer").to == vref(s)
    assert said(fx, "block.volunteer").text.params == {"number": s.number}
    assert not [e for e in fx if isinstance(e, Say) and e.to == RoomRef(s.id, Role.CHATTER)]
    # The conversation is the volunteer's to end: it goes on.
    assert s.state is State.ACTIVE
    assert of(w.chatter_says(s, "er du der?"), Relay)
    assert hash_of(w, C1) in w.h.blocked
    block = w.h.blocks[hash_of(w, C1)]
    assert (block.until, block.number, block.since) == (
        w.now + timedelta(hours=24),
        s.number,
        T0.date(),
    )
    assert w.store.blocks_set == [T0.date()]


def test_what_is_stored_of_a_block_is_the_hash_the_end_and_the_number() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!block {s.number} 7d")
    row = w.store.blocks[hash_of(w, C1)]
    assert C1 not in json.dumps(row)
    assert set(row) == {"hash", "since", "until", "number", "told_day"}
    assert row["until"] == (w.now + timedelta(days=7)).timestamp()


@pytest.mark.parametrize(
    ("span", "length"),
    [
        ("12t", timedelta(hours=12)),
        ("36h", timedelta(hours=36)),
        ("7d", timedelta(days=7)),
        ("2u", timedelta(weeks=2)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_a_block_lasts_as_long_as_asked(span: str, length: timedelta) -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!blokker {s.number} {span}")
    assert w.h.blocks[hash_of(w, C1)].until == w.now + length


def test_a_permanent_block_has_no_end() -> None:
    w = World()
    s = w.active(C1)
    fx = w.staff(KARI, f"!block {s.number} permanent")
    assert said(fx, "block.done_permanent").text.params == {"number": s.number}
    assert w.h.blocks[hash_of(w, C1)].until is None
    w.advance(timedelta(days=400))
    assert keys(w.dm(C2)) != []  # any input: nothing expires
    assert hash_of(w, C1) in w.h.blocked


@pytest.mark.parametrize(
    "body",
    [
        "!blokker",
        "!blokker abc",
        "!blokker 4821 7",
        "!blokker 4821 7d mer",
        "!block 4821 0d",
        "!block 4821 soon",
        "!opphev",
        "!unblock 4821 7d",
        "!unblock -3",
    ],
)
def test_a_bad_number_or_span_gets_the_usage_line(body: str) -> None:
    w = World()
    fx = w.staff(KARI, body)
    assert keys(fx) == ["usage"]
    assert not w.h.blocks


def test_someone_not_a_supervisor_is_refused_clearly() -> None:
    w = World()
    s = w.active(C1)
    for who in (ANNA, BJORN):
        fx = w.staff(who, f"!blokker {s.number}")
        assert keys(fx) == ["supervisors_only"]
        assert said(fx, "supervisors_only").to == STAFF_ROOM
        assert keys(w.staff(who, f"!opphev {s.number}")) == ["supervisors_only"]
    # The volunteer in their own conversation room too.
    assert keys(w.volunteer_says(s, f"!block {s.number}")) == ["supervisors_only"]
    assert not w.h.blocks
    assert w.store.blocks_set == []


def test_a_number_nobody_has_is_said_so() -> None:
    w = World()
    fx = w.staff(KARI, "!blokker 1234")
    assert said(fx, "block.unknown").text.params == {"number": 1234}
    assert not w.h.blocks


def test_a_block_is_set_until_the_purge_and_not_after() -> None:
    w = World()
    s = w.active(C1)
    w.volunteer_says(s, "!slutt")
    assert s.state is State.ENDING
    fx = w.staff(KARI, f"!blokker {s.number}")
    assert "block.done" in keys(fx)
    assert "block.volunteer" not in keys(fx)  # ended already: nothing to go on with
    purged(w, s)
    assert keys(w.staff(KARI, f"!blokker {s.number}")) == ["block.unknown"]
    s2 = w.active(C2)
    purged(w, s2)
    assert keys(w.staff(KARI, f"!blokker {s2.number}")) == ["block.unknown"]


def test_a_supervisor_who_is_also_a_volunteer_blocks_from_their_own_conversation_room() -> None:
    w = World(policy(supervisors=frozenset({KARI, ANNA})))
    s = w.active(C1)
    fx = w.volunteer_says(s, f"!blokker {s.number}")
    assert keys(fx) == ["block.done"]  # said where they are; told once
    assert said(fx, "block.done").to == vref(s)
    assert not of(fx, Relay)  # never reaches the chatter


def test_a_supervisor_in_a_volunteers_room_blocks_there_and_nothing_they_write_is_relayed() -> None:
    w = World()
    s = w.active(C1)
    assert s.volunteer_room is not None
    fx = w.msg(s.volunteer_room, KARI, f"!block {s.number} 48h")
    assert keys(fx) == ["block.done"]
    assert said(fx, "block.done").to == vref(s)
    assert w.msg(s.volunteer_room, KARI, "hei") == []


def test_help_shows_the_blocking_commands_to_supervisors_only() -> None:
    w = World()
    staff_help = said(w.staff(KARI, "!hjelp"), "help").text.params["lines"]
    assert staff_help == commands.help_lines(Audience.STAFF, "nb", supervisor=True)
    assert "help.block" in [k for _, k in staff_help]
    volunteer_help = said(w.staff(ANNA, "!hjelp"), "help").text.params["lines"]
    assert "help.block" not in [k for _, k in volunteer_help]
    s = w.active(C1)
    in_room = said(w.volunteer_says(s, "!hjelp"), "help").text.params["lines"]
    assert "help.unblock" not in [k for _, k in in_room]


# -- the blocked person writes -----------------------------------------------------------------


def test_a_blocked_chatter_gets_the_emergency_numbers_once_a_day_and_no_conversation() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!blokker {s.number} 7d")
    purged(w, s)
    fx = w.dm(C1, "hei igjen")
    assert keys(fx) == ["blocked.direct"]
    assert said(fx, "blocked.direct").to == dm_room(C1)
    assert w.dm(C1, "hallo?") == []  # the same day: told already
    lobby = w.lobby(C1)
    assert of(lobby, Redact)
    assert keys(lobby) == []  # nor in the lobby
    assert not w.h.sessions
    # The next local day (Oslo midnight is 23:00 UTC in March): told again, once.
    w.now = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    assert keys(w.dm(C1)) == ["blocked.direct"]
    assert w.dm(C1) == []
    assert not w.h.sessions


def test_in_a_lobby_the_text_does_not_say_why() -> None:
    w = World()
    w.blocked_before(C1)
    fx = w.lobby(C1)
    assert isinstance(fx[0], Redact)
    assert said(fx, "blocked.lobby").to == LOBBY
    assert not of(fx, CreateRoom)
    assert w.dm(C1) == []  # told today already, wherever it was


def test_told_once_a_day_survives_a_restart() -> None:
    w = World()
    w.blocked_before(C1)
    assert keys(w.dm(C1)) == ["blocked.direct"]
    w.restart()
    assert w.dm(C1) == []
    assert hash_of(w, C1) in w.h.blocked


def test_an_unreadable_dm_from_a_blocked_chatter_gets_the_emergency_numbers() -> None:
    w = World()
    w.blocked_before(C1)
    gone = EventID("$gone")
    fx = w.feed(Unreadable(dm_room(C1), C1, gone, Origin.DIRECT))
    assert keys(fx) == ["blocked.direct"]
    assert w.feed(Unreadable(dm_room(C1), C1, gone, Origin.DIRECT)) == []


def test_a_blocked_chatter_in_a_conversation_set_before_the_block_keeps_it() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!blokker {s.number}")
    assert keys(w.dm(C1)) == ["blocked.direct"]  # no second conversation, no pointer to one
    assert s.state is State.ACTIVE


# -- ending a block ----------------------------------------------------------------------------


def test_unblock_lets_them_in_again_and_forgets_the_number() -> None:
    w = World()
    s = w.active(C1)
    number = s.number
    w.staff(KARI, f"!blokker {number}")
    purged(w, s)
    assert keys(w.dm(C1)) == ["blocked.direct"]
    fx = w.staff(KARI, f"!opphev {number}")
    assert said(fx, "unblock.done").text.params == {"number": number}
    assert hash_of(w, C1) not in w.h.blocked
    assert hash_of(w, C1) not in w.store.blocks
    assert of(w.dm(C1), CreateRoom)
    assert keys(w.staff(KARI, f"!unblock {number}")) == ["unblock.unknown"]


def test_a_block_runs_out_by_itself_with_the_first_input_after_its_end() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!blokker {s.number} 12t")
    purged(w, s)
    w.advance(timedelta(hours=12))
    # Any input at all: here a volunteer's status.
    w.staff(ANNA, "!status")
    assert hash_of(w, C1) not in w.h.blocked
    assert w.changes.unblocked == {hash_of(w, C1)}
    assert not w.store.blocks
    assert keys(w.staff(KARI, f"!opphev {s.number}")) == ["unblock.unknown"]
    assert of(w.dm(C1), CreateRoom)


def test_a_block_that_ran_out_while_the_bot_was_down_goes_at_the_first_input() -> None:
    w = World()
    w.blocked_before(C1, until=T0 - timedelta(minutes=1), number=4821)
    assert hash_of(w, C1) in w.h.blocked  # nothing handled yet
    fx = w.dm(C1)
    assert of(fx, CreateRoom)
    assert not w.store.blocks


def test_blocking_again_sets_a_new_end_and_keeps_the_day_told() -> None:
    w = World()
    s = w.active(C1)
    w.staff(KARI, f"!blokker {s.number}")
    w.dm(C1)
    w.staff(KARI, f"!blokker {s.number} permanent")
    block = w.h.blocks[hash_of(w, C1)]
    assert block.until is None
    assert block.told_day == date(2026, 3, 2)
    assert w.dm(C1) == []
    assert w.store.blocks_set == [T0.date(), T0.date()]


def test_no_new_conversation_takes_a_blocked_number() -> None:
    w = World()
    # The number the restarted World's first conversation would get.
    taken = random.Random(w.seed + 1).randint(1000, 9999)
    w.blocked_before(C1, number=taken)
    s = w.arrive(C2)
    assert s.number != taken


def test_the_web_chat_sees_a_block_set_on_a_web_conversation() -> None:
    w = World()
    w.on_duty(ANNA)
    web = UserID("@web-1:example.org")
    w.feed(WebChatter(web))
    s = w.session_of(web)
    assert s.chatter_room is not None
    w.feed(Joined(s.chatter_room, web))
    w.staff(KARI, f"!blokker {s.number}")
    assert hash_of(w, web) in w.h.blocked
