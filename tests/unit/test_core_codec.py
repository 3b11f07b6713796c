"""The outbox codec: every stored effect and follow-up input comes back equal after a JSON
round trip (what a restart reads back from the database)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core import codec, events
from bot.core.ids import EventID, OfferID, RoomID, SessionID, UserID
from bot.core.media import Attachment, MediaProblem
from bot.core.model import Role

CHATTER = events.RoomRef(SessionID(7), Role.CHATTER)
OFFER = events.RoomRef(SessionID(7), Role.VOLUNTEER, OfferID(3))

SAMPLES: list[Any] = [
    events.CreateRoom(OFFER, UserID("@v:hs"), "Chatter #0007"),
    events.Say(CHATTER, events.Text("welcome", {"position": 2, "wait": "5 min"}), "nb"),
    events.Say(RoomID("!staff:hs"), events.Text("duty.on"), "en", voice=True),
    events.SetPersona(CHATTER, "Kari"),
    events.Relay(OFFER, "hei på deg", EventID("$src"), emote=True),
    events.RelayMedia(
        OFFER,
        Attachment("mxc://hs/f", "a2V5", "aXY", "aGFzaA", "m.image", "image/png", 1234),
        EventID("$src"),
        CHATTER,
    ),
    events.RelayMedia(
        CHATTER, Attachment("mxc://hs/f", "a2V5", "aXY", "aGFzaA", "m.file"), EventID("$s"), OFFER
    ),
    events.MediaRefused(CHATTER, MediaProblem.TOO_BIG),
    events.RelayEdit(CHATTER, "rettet", EventID("$orig")),
    events.RelayRedaction(CHATTER, EventID("$orig")),
    events.SetTyping(OFFER, True),
    events.RelayReceipt(CHATTER, EventID("$copy")),
    events.Redact(RoomID("!lobby:hs"), EventID("$e")),
    events.RedactRoom(OFFER),
    events.Withdraw(OFFER, UserID("@v:hs")),
    events.Retire(OFFER, UserID("@v:hs")),
    events.Invite(OFFER, UserID("@kari:hs")),
    events.Say(RoomID("!staff:hs"), events.Text("staff.alert"), "nb", mentions=(UserID("@k:hs"),)),
    events.RecordMedia(SessionID(7), "mxc://hs/abc"),
    events.Purge(SessionID(7), (RoomID("!a:hs"), RoomID("!b:hs")), (UserID("@c:hs"),)),
    events.Purge(SessionID(7), (RoomID("!a:hs"),), (UserID("@c:hs"),), dm=RoomID("!dm:hs")),
    events.RoomCreated(SessionID(7), OfferID(3), RoomID("!r:hs")),
    events.RoomCreated(SessionID(7), None, RoomID("!r:hs")),
    events.RoomFailed(SessionID(7), None),
    events.PurgeFinished(SessionID(7), "verified"),
    events.TimerFired("session:7:warn"),
    events.Reload(RoomID("!staff:hs"), UserID("@admin:hs")),
]


def test_every_stored_type_has_a_sample() -> None:
    assert {type(s).__name__ for s in SAMPLES} == set(codec._TYPES)


@pytest.mark.parametrize("item", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip_through_json(item: Any) -> None:
    stored = json.loads(json.dumps(codec.encode(item)))
    back = codec.decode_effect(stored)
    assert back == item
    assert type(back) is type(item)
    for name in ("to", "ref"):
        if hasattr(item, name):
            assert type(getattr(back, name)) is type(getattr(item, name))


def test_unknown_type_is_refused() -> None:
    with pytest.raises(KeyError):
        codec.decode_effect({"type": "LaunchMissiles"})


def test_a_purge_stored_before_it_named_the_dm_reads_back_without_one() -> None:
    data = codec.encode(events.Purge(SessionID(7), (RoomID("!a:hs"),), (UserID("@c:hs"),)))
    del data["dm"]
    assert codec.decode_effect(data).dm is None
