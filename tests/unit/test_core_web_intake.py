"""The web chat's door into the core: `WebChatter(user)` opens a conversation for a
throw-away account the bot made, with no DM and no lobby. The rules are those of every
intake (queue, consent, hours, queue length, block list); what differs is that nothing is
said until the account joins its room, and that the purge erases the account."""

from __future__ import annotations

from datetime import timedelta

from bot.core.events import CreateRoom, Purge, PurgeFinished, RoomRef, Say, WebChatter
from bot.core.ids import UserID
from bot.core.model import Outcome, Role, Session, Source, State, TimerKind
from tests.unit.core_helpers import ANNA, World, keys, of, policy, said
from tests.unit.test_core_machine import CLOSED_NOW

WEB1 = UserID("@anon-k3j9x2:example.org")
WEB2 = UserID("@anon-p8q1z7:example.org")


def ref(s: Session) -> RoomRef:
    return RoomRef(s.id, Role.CHATTER)


def web(w: World, user: UserID = WEB1, language: str | None = None) -> Session:
    w.feed(WebChatter(user, language))
    return w.session_of(user)


def test_a_web_account_gets_a_room_and_an_invite_and_nothing_else() -> None:
    w = World()
    w.on_duty(ANNA)
    fx = w.feed(WebChatter(WEB1))
    s = w.session_of(WEB1)
    assert (s.state, s.source, s.source_room, s.chatter_joined) == (
        State.WAITING,
        Source.WEB,
        None,
        False,
    )
    assert of(fx, CreateRoom) == [CreateRoom(ref(s), WEB1, "Alltidhjelp")]
    assert of(fx, Say) == []  # no DM to answer in; the welcome waits for the join
    assert s.offers == []


def test_the_welcome_comes_when_the_account_joins_then_a_volunteer_is_offered() -> None:
    w = World()
    w.on_duty(ANNA)
    s = web(w)
    fx = w.join_chatter(s)
    assert said(fx, "welcome").to == ref(s)
    assert s.state is State.OFFERED
    assert w.pending_to(s) == [ANNA]


def test_the_page_language_is_kept_when_the_line_speaks_it() -> None:
    w = World()
    assert web(w, WEB1, "en").language == "en"
    assert web(w, WEB2, "de").language == "nb"  # not spoken here: the default


def test_quick_exit_purges_at_once_and_the_purge_erases_the_account() -> None:
    w = World()
    w.on_duty(ANNA)
    s = web(w)
    w.join_chatter(s)
    w.accept(s, ANNA)
    [purge] = of(w.chatter_says(s, "!slett"), Purge)
    assert purge.erase == WEB1
    assert purge.participants[0] == WEB1
    assert purge.dm is None
    w.feed(PurgeFinished(s.id, "verified"))
    assert [r.source for r in w.changes.stats] == ["web"]
    assert w.h.sessions == {}


def test_a_conversation_from_a_dm_never_erases_its_chatter() -> None:
    w = World()
    s = w.arrive(UserID("@chatter1:example.org"))
    [purge] = of(w.chatter_says(s, "!slett"), Purge)
    assert purge.erase is None


def test_closed_hours_are_said_in_the_room_once_joined_and_the_account_goes_with_it() -> None:
    w = World(policy(hours=CLOSED_NOW))
    s = web(w)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.CLOSED_HOURS)
    assert keys(w.join_chatter(s)) == ["reject.closed_hours"]
    [purge] = of(w.fire(TimerKind.PURGE, s), Purge)
    assert purge.erase == WEB1


def test_queue_full_is_said_in_the_room() -> None:
    w = World(policy(queue_max_length=1))
    web(w, WEB1)
    s = web(w, WEB2)
    assert (s.state, s.outcome) == (State.ENDING, Outcome.QUEUE_FULL)
    assert keys(w.join_chatter(s)) == ["reject.queue_full"]


def test_consent_comes_first_when_required() -> None:
    w = World(policy(consent_required=True))
    s = web(w)
    assert s.state is State.CONSENT
    assert "consent" in keys(w.join_chatter(s))


def test_a_blocked_account_gets_nothing() -> None:
    w = World()
    w.blocked_before(WEB1)
    assert w.feed(WebChatter(WEB1)) == []
    assert w.h.sessions == {}


def test_the_same_account_twice_opens_one_conversation() -> None:
    w = World()
    web(w)
    assert w.feed(WebChatter(WEB1)) == []
    assert len(w.h.sessions) == 1


def test_no_daily_cap_is_counted_for_throw_away_accounts() -> None:
    w = World(policy(sessions_per_day=1))
    web(w, WEB1)
    assert web(w, WEB2).state is State.WAITING
    assert w.h.counters.day_counts == {}


def test_a_web_conversation_survives_a_restart_as_a_web_one() -> None:
    w = World()
    s = web(w)
    w.restart()
    again = w.session_of(WEB1)
    assert again.source is Source.WEB
    w.join_chatter(again)
    w.advance(timedelta(hours=2))
    [purge] = of(w.fire(TimerKind.QUEUE_MAX_WAIT, again) + w.fire(TimerKind.PURGE, again), Purge)
    assert purge.erase == WEB1
    assert s.id == again.id
