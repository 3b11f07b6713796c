"""What the core decides about media (`privacy.relay_media`): off, everything is refused
with a text; on, an encrypted attachment of an allowed type and size is handed to the
adapter to copy (`RelayMedia`), and what the adapter finds wrong with its bytes comes back
as `MediaRefused`, said to whoever sent it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.events import (
    Kind,
    MediaRefused,
    RecordMedia,
    Redaction,
    Relay,
    RelayMedia,
    RelayRedaction,
    RoomRef,
    Say,
)
from bot.core.ids import UserID
from bot.core.media import Attachment, MediaLimits, MediaProblem
from bot.core.model import Role, Session, State
from tests.unit.core_helpers import ANNA, World, chatter, of, policy

C1 = chatter(1)
PNG = Attachment("mxc://example.org/png", "a2V5", "aXY", "aGFzaA", "m.image", "image/png", 68)
ON = policy(relay_media=True)


def chatter_ref(s: Session) -> RoomRef:
    return RoomRef(s.id, Role.CHATTER)


def volunteer_ref(s: Session) -> RoomRef:
    offer = next(o for o in reversed(s.offers) if o.volunteer == s.volunteer)
    return RoomRef(s.id, Role.VOLUNTEER, offer.id)


def texts_to(fx: list[object], to: RoomRef) -> list[Say]:
    return [e for e in of(fx, Say) if e.to == to]  # type: ignore[arg-type]


def image(w: World, s: Session, who: UserID, file: Attachment | None = PNG) -> list[object]:
    url = file.url if file else "mxc://example.org/plain"
    room = s.chatter_room if who == s.chatter else s.volunteer_room
    assert room is not None
    return w.msg(room, who, "", kind=Kind.MEDIA, media_url=url, attachment=file)  # type: ignore[return-value]


# ---- off: as before -------------------------------------------------------------------


@pytest.mark.parametrize("side", ["chatter", "volunteer"])
def test_with_relaying_off_an_image_is_refused_with_the_old_text_and_kept_for_the_purge(
    side: str,
) -> None:
    w = World()  # relay_media defaults to off
    s = w.active(C1)
    who, back = (C1, chatter_ref(s)) if side == "chatter" else (ANNA, volunteer_ref(s))
    fx = image(w, s, who)
    assert of(fx, RelayMedia) == []
    assert [t.text.key for t in texts_to(fx, back)] == ["media_refused"]
    assert of(fx, RecordMedia) == [RecordMedia(s.id, PNG.url, who)]


# ---- on: relayed both ways -------------------------------------------------------------


def test_an_image_from_the_chatter_is_relayed_to_the_volunteer_and_recorded() -> None:
    w = World(ON)
    s = w.active(C1)
    fx = image(w, s, C1)
    relayed = of(fx, RelayMedia)
    assert len(relayed) == 1
    assert relayed[0].to == volunteer_ref(s)
    assert relayed[0].back == chatter_ref(s)
    assert relayed[0].attachment == PNG
    assert of(fx, Say) == []
    assert of(fx, RecordMedia) == [RecordMedia(s.id, PNG.url, C1)]


def test_an_image_from_the_volunteer_is_relayed_to_the_chatter() -> None:
    w = World(ON)
    s = w.active(C1)
    fx = image(w, s, ANNA)
    relayed = of(fx, RelayMedia)
    assert [(r.to, r.back) for r in relayed] == [(chatter_ref(s), volunteer_ref(s))]
    assert of(fx, RecordMedia) == [RecordMedia(s.id, PNG.url, ANNA)]


def test_a_relayed_image_counts_against_the_chatters_rate_limit() -> None:
    w = World(policy(relay_media=True, messages_per_minute=2))
    s = w.active(C1)
    assert len(of(image(w, s, C1), RelayMedia)) == 1
    assert len(of(w.chatter_says(s, "hei"), Relay)) == 1
    fx = image(w, s, C1)
    assert of(fx, RelayMedia) == []
    assert [t.text.key for t in texts_to(fx, chatter_ref(s))] == ["rate_limited"]


def test_a_chatters_redacted_image_is_redacted_on_the_other_side_too() -> None:
    w = World(ON)
    s = w.active(C1)
    source = of(image(w, s, C1), RelayMedia)[0].source
    assert s.chatter_room is not None
    fx = w.feed(Redaction(s.chatter_room, C1, w.event_id(), source))
    assert fx == [RelayRedaction(volunteer_ref(s), source)]


def test_an_image_before_a_volunteer_came_is_not_kept_for_later() -> None:
    w = World(ON)
    s = w.arrive(C1)
    fx = image(w, s, C1)
    assert of(fx, RelayMedia) == []
    assert [t.text.key for t in texts_to(fx, chatter_ref(s))] == ["media.not_yet"]
    assert [h.body for h in s.held] == ["hei"]  # the first words only


# ---- on: refused from what the message declares ------------------------------------------


@pytest.mark.parametrize(
    ("file", "key", "params"),
    [
        (replace(PNG, size=10 * 1024 * 1024 + 1), "media.too_big", {"limit": 10.0}),
        (replace(PNG, mimetype="image/gif"), "media.type", {"types": "JPEG, PNG, WebP"}),
        (
            replace(PNG, msgtype="m.audio", mimetype=None),
            "media.type",
            {"types": "JPEG, PNG, WebP"},
        ),
        (replace(PNG, msgtype="m.file", mimetype=None), "media.type", {"types": "JPEG, PNG, WebP"}),
        (None, "media.type", {"types": "JPEG, PNG, WebP"}),  # no encrypted file: a plain url
    ],
)
@pytest.mark.parametrize("side", ["chatter", "volunteer"])
def test_what_declares_itself_too_big_or_of_another_type_is_refused_at_once(
    file: Attachment | None, key: str, params: dict[str, str], side: str
) -> None:
    w = World(ON)
    s = w.active(C1)
    who, back = (C1, chatter_ref(s)) if side == "chatter" else (ANNA, volunteer_ref(s))
    fx = image(w, s, who, file)
    assert of(fx, RelayMedia) == []
    assert [(t.text.key, t.text.params) for t in texts_to(fx, back)] == [(key, params)]
    assert len(of(fx, RecordMedia)) == 1  # on the server all the same: the purge takes it


def test_a_location_is_refused_with_the_types_that_do_pass() -> None:
    w = World(ON)
    s = w.active(C1)
    fx = w.chatter_says(s, "geo:59.9,10.7", kind=Kind.OTHER)
    assert [t.text.key for t in texts_to(fx, chatter_ref(s))] == ["media.type"]


def test_the_allow_list_and_limit_come_from_the_policy() -> None:
    limits = MediaLimits(max_bytes=512 * 1024, types=frozenset({"image/gif", "application/pdf"}))
    w = World(policy(relay_media=True, media=limits))
    s = w.active(C1)
    fx = image(w, s, C1, replace(PNG, mimetype="image/gif", size=1000))
    assert len(of(fx, RelayMedia)) == 1
    pdf = replace(PNG, msgtype="m.file", mimetype="application/pdf", size=1000)
    assert len(of(image(w, s, C1, pdf), RelayMedia)) == 1
    fx = image(w, s, C1, replace(PNG, size=600 * 1024))
    assert [(t.text.key, t.text.params) for t in texts_to(fx, chatter_ref(s))] == [
        ("media.too_big", {"limit": 0.5})
    ]
    fx = image(w, s, C1)
    assert [(t.text.key, t.text.params) for t in texts_to(fx, chatter_ref(s))] == [
        ("media.type", {"types": "GIF, PDF"})
    ]


# ---- on: refused from the bytes, after the download ----------------------------------------


@pytest.mark.parametrize(
    ("problem", "key"),
    [
        (MediaProblem.TOO_BIG, "media.too_big"),
        (MediaProblem.TYPE, "media.type"),
        (MediaProblem.BROKEN, "media.broken"),
    ],
)
def test_bytes_refused_after_the_download_are_explained_to_their_sender_in_their_language(
    problem: MediaProblem, key: str
) -> None:
    w = World(ON)
    s = w.active(C1)
    w.chatter_says(s, "!språk en")
    assert s.language == "en"
    back = of(image(w, s, C1), RelayMedia)[0].back
    fx = w.feed(MediaRefused(back, problem))
    assert [(t.to, t.text.key, t.language) for t in of(fx, Say)] == [(back, key, "en")]
    back = of(image(w, s, ANNA), RelayMedia)[0].back
    fx = w.feed(MediaRefused(back, problem))
    assert [(t.to, t.text.key, t.language) for t in of(fx, Say)] == [(back, key, "nb")]


def test_a_refusal_that_comes_back_after_the_conversation_ended_says_nothing() -> None:
    w = World(ON)
    s = w.active(C1)
    back = of(image(w, s, C1), RelayMedia)[0].back
    w.chatter_says(s, "!slutt")
    assert s.state not in (State.ACTIVE, State.WAITING)
    assert w.feed(MediaRefused(back, MediaProblem.TYPE)) == []


def test_a_relay_survives_a_restart_of_the_core() -> None:
    w = World(ON)
    s = w.active(C1)
    w.restart()
    s = w.session_of(C1)
    assert len(of(image(w, s, ANNA), RelayMedia)) == 1
