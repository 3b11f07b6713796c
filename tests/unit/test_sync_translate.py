"""Which timeline events of a sync batch become core inputs (bot.matrix.batch), for
both kinds of server: one that marks events with the bot's membership (Matrix 1.11) and
one that does not, where the bot's own join in the timeline is the dividing line.

The batches are real sync response bodies, prepared and parsed as the bot does
(`prepare_sync`, then nio's `SyncResponse.from_dict`); no homeserver is involved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nio import SyncResponse

from bot.core.events import Joined, Message, Origin, Removed, Typing
from bot.core.ids import EventID, RoomID, UserID
from bot.inbox import BatchEnd, Inbound
from bot.matrix import batch
from bot.matrix.connection import Connection
from bot.matrix.syncfilter import prepare_sync
from bot.matrix.translate import Skip

BOT = "@bot:hs"
CHATTER = "@c:hs"
ROOM = "!dm:hs"


def member(user: str, membership: str, prev: str | None, seen_as: str | None) -> dict:
    event: dict[str, Any] = {
        "type": "m.room.member",
        "sender": user,
        "state_key": user,
        "event_id": f"$m-{user}-{membership}",
        "origin_server_ts": 1,
        "content": {"membership": membership},
        "unsigned": {},
    }
    if prev is not None:
        event["unsigned"]["prev_content"] = {"membership": prev}
    if seen_as is not None:
        event["unsigned"]["membership"] = seen_as
    return event


def text(body: str, seen_as: str | None) -> dict:
    event: dict[str, Any] = {
        "type": "m.room.message",
        "sender": CHATTER,
        "event_id": f"$t-{body}",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
        "unsigned": {},
    }
    if seen_as is not None:
        event["unsigned"]["membership"] = seen_as
    return event


async def translated(
    tmp_path: Path,
    events: list[dict],
    state: list[dict] = (),  # type: ignore[assignment]
    **kwargs: Any,
) -> list[Any]:
    got, _ = await translated_by(tmp_path, events, state, **kwargs)
    return got


async def translated_by(
    tmp_path: Path,
    events: list[dict],
    state: list[dict] = (),  # type: ignore[assignment]
    *,
    ephemeral: list[dict] = (),  # type: ignore[assignment]
    encrypted_rooms: set[str] = frozenset(),  # type: ignore[assignment]
    left: dict[str, list[dict]] | None = None,
    session_rooms: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[list[Any], Connection]:
    """The inputs (then checkpoints) one sync batch becomes, and the connection. `left`:
    rooms the bot is out of since the last batch, with their timelines."""
    got: list[Any] = []
    conn = Connection(
        homeserver="http://127.0.0.1:1",
        user_id=BOT,
        password="x",
        device_name="test",
        display_name="Bot",
        data_dir=tmp_path,
        store_key="k" * 32,
        enqueue=got.append,
        rooms=SessionRooms(session_rooms),
    )
    conn.batches.first_sync = False
    conn.client.encrypted_rooms.update(encrypted_rooms)
    body = {
        "next_batch": "s2",
        "rooms": {
            "join": {
                ROOM: {
                    "timeline": {"events": events, "limited": False},
                    "state": {"events": list(state)},
                    "ephemeral": {"events": list(ephemeral)},
                }
            },
            "leave": {
                room: {"timeline": {"events": events, "limited": False}, "state": {"events": []}}
                for room, events in (left or {}).items()
            },
        },
    }
    prepare_sync(body, BOT)
    resp = SyncResponse.from_dict(body)
    await conn.client.receive_response(resp)  # nio learns the rooms' state, as after a sync
    conn.batches.translate(resp)
    inputs = [item.input for item in got if isinstance(item, Inbound)]
    return inputs + [item for item in got if isinstance(item, BatchEnd)], conn


class SessionRooms:
    """The rooms of conversations, as the worker's room index tells the connection."""

    def __init__(self, rooms: set[str]) -> None:
        self.rooms = rooms

    def room(self, ref: Any) -> None:
        return None

    def is_session_room(self, room: str) -> bool:
        return room in self.rooms


async def test_with_membership_on_events_only_what_came_after_the_join_counts(
    tmp_path: Path,
) -> None:
    events = [
        member(CHATTER, "join", None, seen_as="leave"),  # the chatter made the room
        text("før", seen_as="leave"),
        text("invitert", seen_as="invite"),
        text("etter", seen_as="join"),
    ]
    # The bot's own join is not in the timeline (the filter leaves it out): it is state.
    inputs = await translated(tmp_path, events, state=[member(BOT, "join", "invite", "join")])
    assert [i.body for i in inputs if isinstance(i, Message)] == ["etter"]
    assert not [i for i in inputs if isinstance(i, Joined)]


async def test_without_membership_on_events_the_bots_join_divides(tmp_path: Path) -> None:
    events = [
        member(CHATTER, "join", None, seen_as=None),
        text("før", seen_as=None),
        member(BOT, "join", "invite", seen_as=None),
        text("etter", seen_as=None),
    ]
    inputs = await translated(tmp_path, events)
    assert [i.body for i in inputs if isinstance(i, Message)] == ["etter"]
    assert not [i for i in inputs if isinstance(i, Joined)]


async def test_a_room_the_bot_was_already_in_passes_everything_on(tmp_path: Path) -> None:
    events = [text("en", seen_as=None), text("to", seen_as="join")]
    inputs = await translated(tmp_path, events)
    assert [i.body for i in inputs if isinstance(i, Message)] == ["en", "to"]


# ---- one event cannot take the batch down ----------------------------------------------


def encryption_state() -> dict:
    return {
        "type": "m.room.encryption",
        "sender": CHATTER,
        "state_key": "",
        "event_id": "$enc",
        "origin_server_ts": 1,
        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }


def edit_of(target: object) -> dict:
    event = text("* ny", seen_as="join")
    event["event_id"] = "$edit"
    event["content"]["m.relates_to"] = {"rel_type": "m.replace", "event_id": target}
    event["content"]["m.new_content"] = {"msgtype": "m.text", "body": "ny"}
    return event


async def test_malformed_events_are_skipped_counted_and_the_batch_goes_on(tmp_path: Path) -> None:
    junk_relation = text("a", seen_as="join")
    junk_relation["content"]["m.relates_to"] = "$x"
    got, conn = await translated_by(
        tmp_path, [junk_relation, edit_of({"$": 1}), edit_of(["$x"]), text("b", seen_as="join")]
    )
    assert [i.body for i in got if isinstance(i, Message)] == ["b"]
    assert conn.skipped[Skip.MALFORMED] == 3


async def test_an_event_whose_translation_raises_is_the_only_one_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = batch.read

    def breaks_on_secret(room, event, origin, **kw):  # type: ignore[no-untyped-def]
        if getattr(event, "body", "") == "hemmelig":
            raise ValueError("hemmelig fra @c:hs")
        return real(room, event, origin, **kw)

    monkeypatch.setattr(batch, "read", breaks_on_secret)
    got, conn = await translated_by(
        tmp_path, [text("hemmelig", seen_as="join"), text("etter", seen_as="join")]
    )
    assert [i.body for i in got if isinstance(i, Message)] == ["etter"]
    assert conn.skipped[Skip.ERROR] == 1
    skipped = [r for r in caplog.records if r.getMessage().startswith("an event could not be")]
    assert [getattr(r, "error", None) for r in skipped] == ["ValueError"]
    ours = " ".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("bot.")
    )
    assert "hemmelig" not in ours
    assert CHATTER not in ours
    assert ROOM not in ours


async def test_in_an_encrypted_room_a_message_in_the_clear_is_skipped(tmp_path: Path) -> None:
    got, conn = await translated_by(
        tmp_path, [text("!av", seen_as="join")], state=[encryption_state()]
    )
    assert not [i for i in got if isinstance(i, Message)]
    assert conn.skipped[Skip.PLAINTEXT_IN_ENCRYPTED] == 1


async def test_a_room_the_bot_made_encrypted_counts_before_its_state_is_seen(
    tmp_path: Path,
) -> None:
    got, conn = await translated_by(tmp_path, [text("hei", seen_as="join")], encrypted_rooms={ROOM})
    assert not [i for i in got if isinstance(i, Message)]
    assert conn.skipped[Skip.PLAINTEXT_IN_ENCRYPTED] == 1


async def test_in_an_unencrypted_room_a_message_says_it_came_in_the_clear(tmp_path: Path) -> None:
    got, _ = await translated_by(tmp_path, [text("hei", seen_as="join")])
    (message,) = [i for i in got if isinstance(i, Message)]
    assert message.encrypted is False


async def test_typing_from_ids_that_are_not_user_ids_is_dropped(tmp_path: Path) -> None:
    ephemeral = [{"type": "m.typing", "content": {"user_ids": [CHATTER, "nobody", "@" * 300]}}]
    got, _ = await translated_by(tmp_path, [], ephemeral=ephemeral)
    assert [(i.user, i.typing) for i in got if isinstance(i, Typing)] == [(CHATTER, True)]


async def test_an_encrypted_payload_nio_raises_on_costs_that_event_only(tmp_path: Path) -> None:
    """The sender controls the decrypted payload, and nio parses it unchecked: with
    `"unsigned": null` nio raised inside the sync, which failed on every retry."""
    got: list[Any] = []
    conn = Connection(
        homeserver="http://127.0.0.1:1",
        user_id=BOT,
        password="x",
        device_name="test",
        display_name="Bot",
        data_dir=tmp_path,
        store_key="k" * 32,
        enqueue=got.append,
    )
    conn.batches.first_sync = False
    conn.client.restore_login(BOT, "BOTDEVICE", "token")  # an olm account, no server
    olm = conn.client.olm
    olm.create_outbound_group_session(ROOM)
    olm.outbound_group_sessions[ROOM].shared = True  # the bot holds its inbound half

    def encrypted(n: int, payload: dict) -> dict:
        return {
            "type": "m.room.encrypted",
            "sender": CHATTER,
            "event_id": f"$e{n}",
            "origin_server_ts": 1,
            "content": olm.group_encrypt(ROOM, payload),
        }

    hostile = {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "a"}}
    body = {
        "next_batch": "s2",
        "rooms": {
            "join": {
                ROOM: {
                    "timeline": {
                        "events": [
                            encrypted(1, {**hostile, "unsigned": None}),
                            encrypted(
                                2, {**hostile, "content": {"msgtype": "m.text", "body": "\ud800"}}
                            ),
                        ],
                        "limited": False,
                    },
                    "state": {"events": [encryption_state()]},
                }
            }
        },
    }
    resp = SyncResponse.from_dict(body)
    await conn.client.receive_response(resp)  # raised TypeError
    conn.batches.held.begin_batch()
    conn.batches.translate(resp)
    conn.batches.held.end_batch("s2")
    conn.syncer.release(retry=True)
    (message,) = [i.input for i in got if isinstance(i, Inbound)]
    assert isinstance(message, Message)
    assert (message.body, message.encrypted) == ("\ufffd", True)
    assert conn.skipped[Skip.ERROR] == 1
    assert BatchEnd("s2") in got  # nothing is held back: the batch is done


async def test_out_of_a_conversations_room_what_came_before_counts_then_the_removal(
    tmp_path: Path,
) -> None:
    """Kicked or banned by someone given the power, or a state reset the server tells of:
    the room moves to the sync's `leave`; what was written before still counts."""
    kick = member(BOT, "leave", "join", seen_as="leave") | {"sender": "@admin:hs"}
    gone, other = "!session:hs", "!old-dm:hs"
    inputs = await translated(
        tmp_path,
        [],
        left={gone: [text("siste", seen_as="join"), kick], other: [text("x", seen_as="join")]},
        session_rooms={gone},
    )
    assert inputs[:2] == [
        Message(
            RoomID(gone),
            UserID(CHATTER),
            EventID("$t-siste"),
            "siste",
            origin=Origin.OTHER,
            encrypted=False,
        ),
        Removed(RoomID(gone)),
    ]
    assert not [i for i in inputs if getattr(i, "room", None) == other]  # not a conversation's
