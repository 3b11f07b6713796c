"""Translation of nio events into core inputs, rule by rule (bot.matrix.translate).

Events are built the way nio builds them from a sync (`Event.parse_event`) or from a
decrypted payload (`Event.parse_decrypted_event`, then marked as nio marks it). Translation
is pure: no client, no homeserver, no mocks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from nio import Event
from nio.events.ephemeral import ReceiptEvent

from bot.core.events import Edit, Joined, Kind, Left, Message, Origin, Receipt, Redaction
from bot.core.ids import EventID, RoomID, UserID
from bot.matrix.translate import (
    Skip,
    SkipCounts,
    clean_text,
    event_id,
    media_url,
    read,
    read_receipts,
    room_id,
    translate,
    user_id,
)

ROOM = RoomID("!room:hs")
CHATTER = "@c:hs"


def raw(content: Any, *, type: str = "m.room.message", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": type,
        "sender": CHATTER,
        "event_id": "$ev",
        "origin_server_ts": 1,
        "content": content,
    }
    event.update(fields)
    return event


def parsed(event: dict[str, Any]) -> Any:
    return Event.parse_event(copy.deepcopy(event))


def decrypted(event: dict[str, Any]) -> Any:
    """What nio hands over after decrypting a Megolm event with this payload."""
    clear = Event.parse_decrypted_event(copy.deepcopy(event))
    clear.decrypted = True
    clear.sender_key = "curve25519key"
    return clear


def reason(event: Any, *, encrypted_room: bool = False) -> Skip | None:
    out = read(ROOM, event, Origin.OTHER, room_encrypted=encrypted_room)
    return out if isinstance(out, Skip) else None


def text(body: str = "hei", **content: Any) -> dict[str, Any]:
    return raw({"msgtype": "m.text", "body": body, **content})


# ---- 1. relations and new content of the wrong type -----------------------------------


@pytest.mark.parametrize("relates", ["$ev0", ["$ev0"], 5, True])
def test_a_relation_that_is_not_an_object_is_skipped_as_malformed(relates: Any) -> None:
    event = parsed(text(**{"m.relates_to": relates}))
    assert translate(ROOM, event, Origin.DIRECT, room_encrypted=False) is None
    assert reason(event) is Skip.MALFORMED


@pytest.mark.parametrize("new", ["hei", ["hei"], None, {"body": 5}, {"msgtype": "m.text"}])
def test_an_edit_whose_new_content_is_not_an_object_with_a_body_is_skipped(new: Any) -> None:
    content = {"m.relates_to": {"rel_type": "m.replace", "event_id": "$ev0"}, "m.new_content": new}
    assert reason(parsed(text("* hei", **content))) is Skip.MALFORMED


def test_a_reply_is_a_plain_message() -> None:
    event = parsed(text(**{"m.relates_to": {"m.in_reply_to": {"event_id": "$ev0"}}}))
    out = translate(ROOM, event, Origin.OTHER, room_encrypted=False)
    assert isinstance(out, Message)
    assert out.body == "hei"


# ---- 2. IDs are validated when translated ---------------------------------------------


@pytest.mark.parametrize("target", [{"$": 1}, ["$ev0"], 5, "", "ev0", "$", "$" + "a" * 255])
def test_an_edit_of_an_event_id_that_is_not_one_is_skipped(target: Any) -> None:
    relates = {"rel_type": "m.replace", "event_id": target}
    event = parsed(text("* ny", **{"m.relates_to": relates, "m.new_content": {"body": "ny"}}))
    assert reason(event) is Skip.MALFORMED


def test_a_well_formed_edit_is_an_edit() -> None:
    relates = {"rel_type": "m.replace", "event_id": "$ev0"}
    event = parsed(text("* ny", **{"m.relates_to": relates, "m.new_content": {"body": "ny"}}))
    assert translate(ROOM, event, Origin.OTHER, room_encrypted=False) == Edit(
        ROOM, CHATTER, "$ev", "$ev0", "ny"
    )


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (event_id, ["$abc", "$abc:hs", "$" + "a" * 254], ["abc", "$", "$a b", "$a\n", "!a"]),
        (room_id, ["!abc:hs", "!abc"], ["abc:hs", "!", "#a:hs", "!a\x00"]),
        (user_id, ["@a:hs", "@a:hs:8448", "@a:[::1]:8448"], ["@a", "@:hs", "@a:", "a:hs", "@ä:hs"]),
    ],
)
def test_ids_need_their_sigil_printable_ascii_and_at_most_255_characters(
    check: Any, good: list[str], bad: list[Any]
) -> None:
    assert [check(v) for v in good] == good
    sigil = good[0][0]
    assert [check(v) for v in [*bad, None, 5, {"a": 1}, [good[0]], sigil + "a" * 255]] == [None] * (
        len(bad) + 5
    )


def test_a_message_from_a_sender_that_is_no_user_id_is_skipped() -> None:
    event = parsed(text())
    event.sender = "@" + "a" * 300 + ":hs"  # nio checks only "@" and ":"
    assert reason(event) is Skip.MALFORMED


def test_a_redaction_of_something_that_is_no_event_id_is_skipped() -> None:
    good = parsed(raw({}, type="m.room.redaction", redacts="$ev0"))
    assert translate(ROOM, good, Origin.OTHER, room_encrypted=True) == Redaction(
        ROOM, CHATTER, "$ev", "$ev0"
    )
    bad = parsed(raw({}, type="m.room.redaction", redacts="ev0"))
    assert reason(bad) is Skip.MALFORMED


def test_membership_of_a_state_key_that_is_no_user_id_is_skipped() -> None:
    event = parsed(raw({"membership": "join"}, type="m.room.member", state_key="@new:hs"))
    assert translate(ROOM, event, Origin.OTHER, room_encrypted=True) == Joined(ROOM, "@new:hs")
    event.state_key = "@" + "x" * 300 + ":hs"
    assert reason(event) is Skip.MALFORMED


def test_a_leave_after_a_join_is_left() -> None:
    event = parsed(
        raw(
            {"membership": "leave"},
            type="m.room.member",
            state_key=CHATTER,
            unsigned={"prev_content": {"membership": "join"}},
        )
    )
    assert translate(ROOM, event, Origin.OTHER, room_encrypted=True) == Left(ROOM, CHATTER)


def test_only_an_mxc_url_of_refused_media_is_kept_for_the_purge() -> None:
    image = {"msgtype": "m.image", "body": "bilde.png"}
    kept = translate(
        ROOM, parsed(raw({**image, "url": "mxc://hs/abc"})), Origin.OTHER, room_encrypted=False
    )
    assert isinstance(kept, Message)
    assert (kept.kind, kept.media_url) == (Kind.MEDIA, "mxc://hs/abc")
    dropped = translate(
        ROOM, parsed(raw({**image, "url": "https://x/y"})), Origin.OTHER, room_encrypted=False
    )
    assert isinstance(dropped, Message)
    assert dropped.media_url is None
    assert media_url("mxc://hs/" + "a" * 3000) is None


# ---- 3. text becomes valid Unicode -----------------------------------------------------


def test_a_lone_surrogate_becomes_a_replacement_character() -> None:
    out = translate(ROOM, parsed(text("hei \ud800 du")), Origin.OTHER, room_encrypted=False)
    assert isinstance(out, Message)
    assert out.body == "hei \ufffd du"
    out.body.encode("utf-8")


def test_an_edit_body_is_cleaned_too() -> None:
    relates = {"rel_type": "m.replace", "event_id": "$ev0"}
    event = parsed(text("*", **{"m.relates_to": relates, "m.new_content": {"body": "\udfff!"}}))
    out = translate(ROOM, event, Origin.OTHER, room_encrypted=False)
    assert isinstance(out, Edit)
    assert out.body == "\ufffd!"


def test_clean_text_leaves_everything_else_alone() -> None:
    body = "æøå 😀 \x00 " + "x" * 70_000
    assert clean_text(body) == body


# ---- 4. no plaintext messages in an encrypted room ------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        text(),
        raw({"msgtype": "m.emote", "body": "vinker"}),
        raw({"msgtype": "m.image", "body": "x", "url": "mxc://hs/a"}),
        raw({"msgtype": "m.location", "body": "x", "geo_uri": "geo:0,0"}),
        raw({"msgtype": 5}),  # a BadEvent
        raw({"body": "x", "url": "mxc://hs/a", "info": {}}, type="m.sticker"),
        text(**{"m.relates_to": {"rel_type": "m.replace", "event_id": "$e0"}}),
    ],
)
def test_a_message_not_decrypted_in_an_encrypted_room_is_never_acted_on(event: Any) -> None:
    assert reason(parsed(event), encrypted_room=True) is Skip.PLAINTEXT_IN_ENCRYPTED
    assert translate(ROOM, parsed(event), Origin.STAFF, room_encrypted=True) is None


def test_the_same_message_decrypted_is_acted_on() -> None:
    out = translate(ROOM, decrypted(text("!på")), Origin.STAFF, room_encrypted=True)
    assert isinstance(out, Message)
    assert out.body == "!på"
    assert out.encrypted


def test_membership_and_redactions_are_unencrypted_everywhere() -> None:
    join = parsed(raw({"membership": "join"}, type="m.room.member", state_key=CHATTER))
    assert isinstance(translate(ROOM, join, Origin.OTHER, room_encrypted=True), Joined)
    redaction = parsed(raw({}, type="m.room.redaction", redacts="$ev0"))
    assert isinstance(translate(ROOM, redaction, Origin.OTHER, room_encrypted=True), Redaction)


# ---- 5. the core learns a message came in the clear ------------------------------------


def test_a_plaintext_message_in_an_unencrypted_room_says_so() -> None:
    out = translate(ROOM, parsed(text()), Origin.DIRECT, room_encrypted=False)
    assert isinstance(out, Message)
    assert out.encrypted is False
    assert out.origin is Origin.DIRECT


def test_a_decrypted_bad_event_is_still_refused_like_media_and_counts_as_encrypted() -> None:
    # An image with a plain `url` in an encrypted room: nio's schema refuses it.
    event = decrypted(raw({"msgtype": "m.image", "body": "x", "url": 5}))
    out = translate(ROOM, event, Origin.OTHER, room_encrypted=True)
    assert isinstance(out, Message)
    assert out.kind is Kind.MEDIA
    assert out.encrypted


# ---- counting ---------------------------------------------------------------------------


def test_skip_counts_keep_the_fixed_reasons_only() -> None:
    counts = SkipCounts()
    for r in (Skip.MALFORMED, Skip.IGNORED, Skip.ERROR, Skip.ERROR):
        counts.add(r)
    assert dict(counts) == {"malformed": 1, "plaintext_in_encrypted": 0, "error": 2}
    assert counts[Skip.IGNORED] == 0


def test_only_others_public_read_receipts_with_valid_ids_become_inputs() -> None:
    room = RoomID("!r:hs")
    event = ReceiptEvent.from_dict(
        {
            "type": "m.receipt",
            "content": {
                "$read:hs": {
                    "m.read": {"@vol:hs": {"ts": 1}, "@bot:hs": {"ts": 2}},
                    "m.read.private": {"@other:hs": {"ts": 3}},
                },
                "$threaded:hs": {"m.read": {"@chatter:hs": {"ts": 4, "thread_id": "main"}}},
                "not-an-event-id": {"m.read": {"@vol:hs": {"ts": 5}}},
                "$bad-user:hs": {"m.read": {"vol": {"ts": 6}}},
            },
        }
    )
    got = read_receipts(room, event.receipts, "@bot:hs")
    assert sorted(got, key=lambda r: r.user) == [
        Receipt(room, UserID("@chatter:hs"), EventID("$threaded:hs")),
        Receipt(room, UserID("@vol:hs"), EventID("$read:hs")),
    ]
    assert read_receipts(room, None, "@bot:hs") == []
    assert read_receipts(room, [object(), 3], "@bot:hs") == []
