"""Who is elsewhere: a room the bot makes federates exactly when the person it is made for
has their account on another homeserver than the helpline's. A chatter from another
server could otherwise be invited to a room their server may never join; a conversation
among the helpline's own accounts never leaves its server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import build_policy, load_config
from bot.core import codec
from bot.core.events import CreateRoom, Purge
from bot.core.ids import UserID, server_of
from bot.core.model import TimerKind, VolunteerProfile
from tests.unit.core_helpers import ANNA, World, chatter, of, policy
from tests.unit.test_config import write_config

REMOTE = UserID("@ola:school.example")
REMOTE_VOLUNTEER = UserID("@vera:partner.example")


@pytest.mark.parametrize(
    ("user", "server"),
    [
        ("@anna:example.org", "example.org"),
        ("@ola:127.0.0.1:8448", "127.0.0.1:8448"),
        ("@ola:[::1]:8448", "[::1]:8448"),
        ("@ola:matrix.example.org:443", "matrix.example.org:443"),
    ],
)
def test_the_server_of_a_user_is_everything_after_the_first_colon(user: str, server: str) -> None:
    assert server_of(UserID(user)) == server


def test_a_chatter_from_another_server_gets_a_room_that_federates() -> None:
    w = World()
    w.on_duty(ANNA)
    fx = w.dm(REMOTE, "hei fra skolen")
    assert [(c.invite, c.federate) for c in of(fx, CreateRoom)] == [(REMOTE, True)]


def test_the_volunteers_room_for_a_remote_chatter_stays_on_the_helplines_server() -> None:
    w = World()
    w.on_duty(ANNA)
    w.dm(REMOTE)
    fx = w.join_chatter(w.session_of(REMOTE))
    assert [(c.invite, c.federate) for c in of(fx, CreateRoom)] == [(ANNA, False)]


def test_a_chatter_through_the_lobby_from_another_server_gets_a_room_that_federates() -> None:
    w = World()
    fx = w.lobby(REMOTE, "hei")
    assert [(c.invite, c.federate) for c in of(fx, CreateRoom)] == [(REMOTE, True)]


def test_a_local_chatter_and_a_local_volunteer_keep_every_room_local() -> None:
    w = World()
    w.on_duty(ANNA)
    first = w.dm(chatter(1))
    then = w.join_chatter(w.session_of(chatter(1)))
    assert [c.federate for c in of(first + then, CreateRoom)] == [False, False]


def test_a_volunteer_on_another_server_gets_an_offer_room_that_federates() -> None:
    remote = VolunteerProfile(REMOTE_VOLUNTEER, "Vera", ("nb", "en"))
    w = World(policy(volunteers=(remote,)))
    w.on_duty(REMOTE_VOLUNTEER)
    w.dm(chatter(1))
    fx = w.join_chatter(w.session_of(chatter(1)))
    assert [(c.invite, c.federate) for c in of(fx, CreateRoom)] == [(REMOTE_VOLUNTEER, True)]


def test_the_purge_of_a_remote_chatters_conversation_says_another_server_took_part() -> None:
    w = World()
    s = w.active(REMOTE)
    w.chatter_says(s, "!slutt")
    [purge] = of(w.fire(TimerKind.PURGE, s), Purge)
    assert purge.participants == (REMOTE, ANNA)
    assert purge.federated is True


def test_the_purge_of_a_conversation_among_the_helplines_own_accounts_is_not_federated() -> None:
    w = World()
    s = w.active(chatter(1))
    w.chatter_says(s, "!slutt")
    [purge] = of(w.fire(TimerKind.PURGE, s), Purge)
    assert purge.federated is False


def test_with_no_server_name_known_no_room_federates() -> None:
    w = World(policy(server_name=None))
    fx = w.dm(REMOTE)
    assert [c.federate for c in of(fx, CreateRoom)] == [False]


def test_a_room_creation_stored_before_federation_existed_reads_back_local() -> None:
    stored = {
        "type": "CreateRoom",
        "ref": {"type": "RoomRef", "session_id": 3, "role": "chatter", "offer_id": None},
        "invite": "@ola:school.example",
        "persona": "Alltidhjelp",
    }
    assert codec.decode_effect(stored).federate is False


def test_the_helplines_server_is_the_bots(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    bot_server = server_of(UserID(config.bot.user_id))
    assert build_policy(config, None).server_name == bot_server
