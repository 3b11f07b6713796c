"""A chatter who writes in a direct chat that is not encrypted (`Message.encrypted` is
False): by default the conversation still opens, in a new encrypted room, and the answer
in the DM says plainly that this chat is not private; with `plaintext_direct: refuse`
nothing opens and the answer says how to write with encryption on."""

from __future__ import annotations

from bot.core.events import CreateRoom, Relay, RoomRef
from bot.core.model import PlaintextDirect, Role, Session, State
from tests.unit.core_helpers import (
    ANNA,
    World,
    chatter,
    dm_room,
    keys,
    of,
    policy,
    said,
)

C1 = chatter(1)


def chatter_ref(s: Session) -> RoomRef:
    return RoomRef(s.id, Role.CHATTER)


def test_an_encrypted_dm_gets_the_usual_invitation() -> None:
    w = World()
    fx = w.dm(C1, "hei")
    assert "intake.invited" in keys(fx)
    assert "intake.invited_plaintext" not in keys(fx)


def test_a_plaintext_dm_opens_the_conversation_and_warns_in_the_dm() -> None:
    w = World()
    w.on_duty(ANNA)
    fx = w.dm(C1, "hei, er det noen der?", encrypted=False)
    s = w.session_of(C1)
    assert s.state is State.WAITING
    # The conversation room is a new encrypted room, as always.
    assert of(fx, CreateRoom) == [CreateRoom(chatter_ref(s), C1, "Alltidhjelp")]
    warning = said(fx, "intake.invited_plaintext")
    assert warning.to == dm_room(C1)
    assert "intake.invited" not in keys(fx)


def test_the_first_words_of_a_plaintext_dm_still_reach_the_volunteer() -> None:
    # Decided: relayed. They are on the server in the clear already; asking again is unkind.
    w = World()
    w.on_duty(ANNA)
    w.dm(C1, "jeg har det vondt", encrypted=False)
    s = w.session_of(C1)
    w.join_chatter(s)
    fx = w.accept(s, ANNA)
    assert [r.body for r in of(fx, Relay)] == ["jeg har det vondt"]


def test_refuse_opens_nothing_and_says_how_to_write_encrypted() -> None:
    w = World(policy(plaintext_direct=PlaintextDirect.REFUSE))
    w.on_duty(ANNA)
    fx = w.dm(C1, "hei", encrypted=False)
    assert not of(fx, CreateRoom)
    assert keys(fx) == ["intake.plaintext_refused"]
    assert said(fx, "intake.plaintext_refused").to == dm_room(C1)
    assert not w.h.sessions
    # Refused is not a conversation: nothing counts against the day's cap.
    assert not w.h.counters.day_counts


def test_refuse_still_lets_an_encrypted_dm_in() -> None:
    w = World(policy(plaintext_direct=PlaintextDirect.REFUSE))
    fx = w.dm(C1, "hei")
    assert of(fx, CreateRoom)
    assert "intake.invited" in keys(fx)


def test_someone_from_another_server_hears_whom_the_line_serves_not_about_encryption() -> None:
    w = World(policy(plaintext_direct=PlaintextDirect.REFUSE, allowed_servers=frozenset({"x.org"})))
    assert keys(w.dm(C1, "hei", encrypted=False)) == ["intake.other_server"]


def test_a_chatter_with_an_open_conversation_is_pointed_to_it_not_refused() -> None:
    w = World(policy(plaintext_direct=PlaintextDirect.REFUSE))
    s = w.arrive(C1)
    fx = w.dm(C1, "hallo?", encrypted=False)
    assert keys(fx) == ["intake.already_open"]
    assert said(fx, "intake.already_open").to == chatter_ref(s)


def test_a_staff_command_in_a_plaintext_dm_is_not_acted_on() -> None:
    # It proves no verified device: a stolen token could send it.
    w = World()
    fx = w.dm(ANNA, "!på", encrypted=False)
    assert keys(fx) == ["untrusted.own"]
    assert said(fx, "untrusted.own").to == dm_room(ANNA)
    assert not w.h.duty.get(ANNA) or not w.h.duty[ANNA].on_duty
    fx = w.dm(ANNA, "!på")
    assert w.h.duty[ANNA].on_duty
