"""The invite gate's rate limit remembers inviters for its hour, not for ever, and never
more than a bounded number of them."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

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
