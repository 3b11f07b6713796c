"""The invite gate's rate limit remembers inviters for its hour, not for ever, and never
more than a bounded number of them."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from nio import JoinError, JoinResponse, RoomGetStateResponse

from bot.core.ids import RoomID, UserID
from bot.core.model import Policy
from bot.matrix import invites
from bot.matrix.invites import InviteGate


def gate() -> InviteGate:
    policy: Any = object()
    return InviteGate(client=None, policy=policy, configured=lambda room: False)  # type: ignore[arg-type]


def test_an_inviter_is_forgotten_an_hour_after_their_last_invite() -> None:
    g = gate()
    now = 10_000.0
    g._recent = OrderedDict(
        [("@long-ago:localhost", [now - 4000]), ("@a-minute-ago:localhost", [now - 60])]
    )
    assert g._count("@new:localhost", now) == 1
    assert list(g._recent) == ["@a-minute-ago:localhost", "@new:localhost"]


def test_invites_within_the_hour_are_counted() -> None:
    g = gate()
    for i in range(4):
        g._count("@spam:localhost", 100.0 + i)
    assert g._count("@spam:localhost", 200.0) == 5
    assert g._count("@spam:localhost", 100.0 + 3600.5) == 5  # the first one fell out


def test_no_more_than_so_many_inviters_are_remembered(monkeypatch: Any) -> None:
    monkeypatch.setattr(invites, "REMEMBERED", 3)
    g = gate()
    for i in range(10):
        g._count(f"@u{i}:localhost", 100.0 + i)
    assert list(g._recent) == ["@u7:localhost", "@u8:localhost", "@u9:localhost"]


class JoinsAfter:
    """A client whose joins are refused `refusals` times (the room's server does not
    know the invite yet), then accepted."""

    user_id = "@bot:helpline.test"

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.joins = 0
        self.left = False

    async def join(self, room: str) -> Any:
        self.joins += 1
        if self.joins <= self.refusals:
            return JoinError("You are not invited to this room.", "M_FORBIDDEN")
        return JoinResponse(room)

    async def room_get_state(self, room: str) -> Any:
        members = [self.user_id, "@ola:school.test"]
        events = [
            {"type": "m.room.member", "state_key": u, "content": {"membership": "join"}}
            for u in members
        ]
        return RoomGetStateResponse(events, room)

    async def room_leave(self, room: str) -> Any:
        self.left = True

    async def room_forget(self, room: str) -> Any:
        return None


def dm_gate(client: JoinsAfter) -> InviteGate:
    return InviteGate(
        client,  # type: ignore[arg-type]
        Policy(volunteers=(), server_name="helpline.test"),
        configured=lambda room: False,
    )


async def test_a_dm_from_another_server_is_joined_once_its_server_knows_the_invite(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(invites, "REMOTE_JOIN_DELAYS", (0, 0, 0))
    client = JoinsAfter(refusals=2)
    await dm_gate(client)._decide(RoomID("!dm"), UserID("@ola:school.test"), is_direct=True)
    assert (client.joins, client.left) == (3, False)


async def test_a_local_dm_whose_join_is_refused_is_not_asked_again(monkeypatch: Any) -> None:
    monkeypatch.setattr(invites, "REMOTE_JOIN_DELAYS", (0, 0, 0))
    client = JoinsAfter(refusals=1)
    await dm_gate(client)._decide(RoomID("!dm"), UserID("@ola:helpline.test"), is_direct=True)
    assert client.joins == 1


async def test_a_remote_room_that_keeps_refusing_is_given_up(monkeypatch: Any) -> None:
    monkeypatch.setattr(invites, "REMOTE_JOIN_DELAYS", (0, 0, 0))
    client = JoinsAfter(refusals=10)
    await dm_gate(client)._decide(RoomID("!dm"), UserID("@ola:school.test"), is_direct=True)
    assert client.joins == 4
