"""Property: whatever an event holds, translation yields an input or a skip, never an
exception, and every input it yields carries valid IDs and text that encodes as UTF-8.

Events are generated with every field the bot reads set to the right type, a wrong type,
a huge value, nested junk, empty, or invalid Unicode (lone surrogates). They become nio
events the way nio makes them: from a sync (`Event.parse_event`, BadEvent and
UnknownEvent included), as an `m.room.message` (`RoomMessage.parse_event`), from a
decrypted payload (`Event.parse_decrypted_event`, marked decrypted as nio does); and, for
what nio would never hand over but a future nio might, with attributes overwritten by junk.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st
from nio import Event, RoomMessage, SyncResponse

from bot.core.events import Edit, Joined, Left, Message, Origin, Redaction
from bot.core.ids import RoomID
from bot.matrix.connection import Connection
from bot.matrix.syncfilter import prepare_sync
from bot.matrix.translate import Skip, event_id, read, room_id, translate, user_id

ROOM = RoomID("!room:hs")

# Text that includes lone surrogates (category Cs) and control characters.
any_text = st.text(st.characters(exclude_categories=()), max_size=20)
huge_text = st.sampled_from(["x" * 3000, "\ud800" * 300, "@" + "a" * 300 + ":hs"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    any_text,
)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)


def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value (so parsing gets past nio's schemas), sometimes anything."""
    return st.one_of(good, good, junk, huge_text, st.just(""))


user_ids = field(st.sampled_from(["@c:hs", "@v:hs", "@a:[::1]:8448", "@c", "c:hs", "@\ud800:hs"]))
event_ids = field(st.sampled_from(["$e1", "$e2:hs", "$", "e1", "$e 1", "$\udfff"]))
bodies = field(any_text)
msgtypes = field(
    st.sampled_from(["m.text", "m.emote", "m.notice", "m.image", "m.file", "m.location", "x"])
)
urls = field(st.sampled_from(["mxc://hs/a", "https://hs/a", "mxc://hs/\ud800", "mxc://"]))
relations = field(
    st.fixed_dictionaries(
        {},
        optional={
            "rel_type": field(st.sampled_from(["m.replace", "m.thread", "m.annotation"])),
            "event_id": event_ids,
            "key": bodies,
            "m.in_reply_to": field(st.fixed_dictionaries({"event_id": event_ids})),
        },
    )
)
b64 = field(st.sampled_from(["YWJj", "a2V5LWtleS1rZXk", "x" * 200, "a b", "\ud800", "=="]))
files = st.fixed_dictionaries(
    {"url": urls},
    optional={
        "v": field(st.sampled_from(["v2", "v1"])),
        "key": field(
            st.fixed_dictionaries(
                {},
                optional={
                    "kty": field(st.just("oct")),
                    "alg": field(st.sampled_from(["A256CTR", "A128CBC"])),
                    "k": b64,
                    "ext": junk,
                },
            )
        ),
        "iv": b64,
        "hashes": field(st.fixed_dictionaries({}, optional={"sha256": b64})),
    },
)
infos = field(
    st.fixed_dictionaries(
        {},
        optional={
            "mimetype": field(st.sampled_from(["image/png", "IMAGE/PNG", "\ud800/x", "x" * 300])),
            "size": field(st.integers(min_value=-(2**70), max_value=2**70)),
            "w": junk,
        },
    )
)
new_contents = field(
    st.fixed_dictionaries({}, optional={"msgtype": msgtypes, "body": bodies, "url": urls})
)
contents = field(
    st.fixed_dictionaries(
        {},
        optional={
            "msgtype": msgtypes,
            "body": bodies,
            "format": field(st.just("org.matrix.custom.html")),
            "formatted_body": bodies,
            "url": urls,
            "info": infos,
            "file": field(files),
            "membership": field(st.sampled_from(["join", "leave", "ban", "invite", "knock"])),
            "m.relates_to": relations,
            "m.new_content": new_contents,
            "algorithm": junk,
        },
    )
)
events = st.fixed_dictionaries(
    {
        "type": field(
            st.sampled_from(
                [
                    "m.room.message",
                    "m.sticker",
                    "m.room.member",
                    "m.room.redaction",
                    "m.room.encrypted",
                    "m.reaction",
                    "m.room.name",
                ]
            )
        ),
        "content": contents,
    },
    optional={
        "sender": user_ids,
        "event_id": event_ids,
        # Always a number: `prepare_sync` drops events whose timestamp is not, since nio's
        # parser raises on them (see the sync-level property below).
        "origin_server_ts": st.integers(min_value=-(2**63), max_value=2**63),
        "state_key": user_ids,
        "redacts": event_ids,
        "unsigned": field(
            st.fixed_dictionaries(
                {},
                optional={
                    "prev_content": field(st.fixed_dictionaries({"membership": msgtypes})),
                    "membership": junk,
                },
            )
        ),
    },
)
# Attributes the translation reads, overwritten after parsing.
ATTRIBUTES = [
    "source",
    "sender",
    "event_id",
    "state_key",
    "membership",
    "prev_membership",
    "redacts",
    "url",
    "body",
    "decrypted",
]
overwrites = st.dictionaries(st.sampled_from(ATTRIBUTES), junk | huge_text, max_size=3)
MODES = ("sync", "room_message", "decrypted", "overwritten")


def build(raw: Any, mode: str, attrs: dict[str, Any]) -> Any:
    """The nio event made from `raw` in the given way (nio mutates what it parses)."""
    raw = copy.deepcopy(raw)
    if mode == "decrypted":
        # The payload is the stranger's; ID, sender and time come from the outer encrypted
        # event, which nio's schema has checked (strings, a sender with "@" and ":").
        sender, eid = raw.get("sender"), raw.get("event_id")
        ok_sender = isinstance(sender, str) and sender.startswith("@") and ":" in sender
        raw["sender"] = sender if ok_sender else "@c:hs"
        raw["event_id"] = eid if isinstance(eid, str) else "$e1"
        raw["origin_server_ts"] = 1
        try:
            event = Event.parse_decrypted_event(raw)
        except Exception:
            # nio raises on some payloads (`"unsigned": null`); the connection leaves such
            # an event encrypted and skips it (test_sync_translate): it never gets here.
            reject()
        if hasattr(event, "decrypted"):
            event.decrypted = True
            event.sender_key = "curve25519key"
        return event
    event = Event.parse_event(copy.deepcopy(raw))
    if mode == "room_message" and isinstance(event, RoomMessage):
        # nio calls this itself once the event's common fields passed its schema.
        return RoomMessage.parse_event(raw)
    if mode == "overwritten":
        for name, value in attrs.items():
            with contextlib.suppress(AttributeError):  # a class without that attribute
                object.__setattr__(event, name, value)
    return event


def check_input(out: Any) -> None:
    """Every ID valid, every string encodable: what storage and the homeserver need."""
    assert isinstance(out, (Message, Edit, Redaction, Joined, Left)), out
    assert out.room == ROOM
    for f in dataclasses.fields(out):
        value = getattr(out, f.name)
        if isinstance(value, str):
            value.encode("utf-8")
    if isinstance(out, (Joined, Left)):
        assert user_id(out.user) == out.user
        return
    assert user_id(out.sender) == out.sender
    assert event_id(out.event_id) == out.event_id
    if isinstance(out, Edit):
        assert event_id(out.original) == out.original
    if isinstance(out, Redaction):
        assert event_id(out.redacts) == out.redacts
    if isinstance(out, Message):
        assert isinstance(out.body, str)
        assert isinstance(out.encrypted, bool)
        assert out.media_url is None or out.media_url.startswith("mxc://")
        file = out.attachment
        if file is not None:
            # What the adapter downloads and decrypts with: strings it can use, and a
            # declared size that is a plausible number, all encodable for the outbox.
            assert file.url.startswith("mxc://")
            assert all(isinstance(v, str) and v.isascii() for v in (file.key, file.iv, file.sha256))
            assert file.size is None or (isinstance(file.size, int) and file.size >= 0)
            assert file.mimetype is None or file.mimetype.isascii()


def _edit(target: Any, new: Any = None) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": "@c:hs",
        "event_id": "$e1",
        "origin_server_ts": 1,
        "content": {
            "msgtype": "m.text",
            "body": "* x",
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
            "m.new_content": {"body": "x"} if new is None else new,
        },
    }


def _text(**content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": "@c:hs",
        "event_id": "$e1",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "x", **content},
    }


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    raw=events,
    mode=st.sampled_from(MODES),
    attrs=overwrites,
    encrypted_room=st.booleans(),
    origin=st.sampled_from(Origin),
)
# The attacks this module was written against, kept as regression cases.
@example(_text(**{"m.relates_to": "$e0"}), "sync", {}, False, Origin.DIRECT)
@example(_text(**{"m.relates_to": ["$e0"]}), "decrypted", {}, True, Origin.OTHER)
@example(_edit("$e0", new="x"), "sync", {}, False, Origin.DIRECT)
@example(_edit({"$": 1}), "decrypted", {}, True, Origin.OTHER)
@example(_edit(["$e0"]), "sync", {}, False, Origin.DIRECT)
@example(_text(body="\ud800"), "sync", {}, False, Origin.DIRECT)
@example(_edit("$e0", new={"body": "\udfff"}), "decrypted", {}, True, Origin.OTHER)
@example(_text(), "overwritten", {"source": "x", "sender": 5}, False, Origin.DIRECT)
@example(_text(), "overwritten", {"body": {"a": 1}, "event_id": ["$e1"]}, False, Origin.OTHER)
def test_translation_never_raises_and_yields_only_valid_inputs(
    raw: dict[str, Any], mode: str, attrs: dict[str, Any], encrypted_room: bool, origin: Origin
) -> None:
    event = build(raw, mode, attrs)
    out = read(ROOM, event, origin, room_encrypted=encrypted_room)
    assert translate(ROOM, event, origin, room_encrypted=encrypted_room) == (
        None if isinstance(out, Skip) else out
    )
    if isinstance(out, Skip):
        assert out is not Skip.ERROR  # only the connection's guard gives that reason
        return
    check_input(out)
    if encrypted_room and isinstance(out, (Message, Edit)):
        assert getattr(event, "decrypted", False) is True


@settings(max_examples=200, deadline=None)
@given(value=junk | huge_text | st.sampled_from(["!a:hs", "$a", "@a:hs", "!\ud800", "$a\n"]))
def test_id_checks_accept_only_printable_ascii_with_their_sigil(value: Any) -> None:
    for check, sigil in ((event_id, "$"), (room_id, "!"), (user_id, "@")):
        valid = check(value)
        if valid is not None:
            assert valid == value
            assert valid[0] == sigil
            assert len(valid) <= 255
            assert valid.isascii()
            assert valid.isprintable()
            assert " " not in valid


# ---- the whole batch: prepare_sync, nio's parse, the connection's translation ---------


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Connection:
    c = Connection(
        homeserver="http://127.0.0.1:1",
        user_id="@bot:hs",
        password="x",
        device_name="test",
        display_name="Bot",
        data_dir=tmp_path_factory.mktemp("conn"),
        store_key="k" * 32,
        enqueue=lambda item: None,
    )
    c.batches.first_sync = False
    return c


timeline_items = st.one_of(
    events,
    junk,
    events.map(lambda e: {**e, "origin_server_ts": None}),
    events.map(lambda e: {**e, "origin_server_ts": "1"}),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(items=st.lists(timeline_items, max_size=4), encrypted=st.booleans())
@example([{"type": "m.room.message", "content": {}, "origin_server_ts": None}], False)
@example(["junk", None, 1], True)
def test_a_sync_batch_of_junk_is_parsed_and_translated_without_raising(
    conn: Connection, items: list[Any], encrypted: bool
) -> None:
    body = {
        "next_batch": "s2",
        "rooms": {"join": {str(ROOM): {"timeline": {"events": items, "limited": False}}}},
    }
    prepare_sync(body, conn.user_id)
    response = SyncResponse.from_dict(body)
    assert isinstance(response, SyncResponse)
    if encrypted:
        conn.client.encrypted_rooms.add(ROOM)
    else:
        conn.client.encrypted_rooms.discard(ROOM)
    errors = conn.skipped[Skip.ERROR]

    async def translate_batch() -> None:
        conn.batches.translate(response)

    asyncio.run(translate_batch())
    assert conn.skipped[Skip.ERROR] == errors  # nothing needed the guard
