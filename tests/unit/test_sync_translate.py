"""Which timeline events of a sync batch become core inputs (Connection._translate), for
both kinds of server: one that marks events with the bot's membership (Matrix 1.11) and
one that does not, where the bot's own join in the timeline is the dividing line.

The batches are real sync response bodies, prepared and parsed as the bot does
(`prepare_sync`, then nio's `SyncResponse.from_dict`); no homeserver is involved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nio import SyncResponse

from bot.core.events import Joined, Message
from bot.inbox import BatchEnd, Inbound
from bot.matrix.connection import Connection, prepare_sync

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


async def translated(tmp_path: Path, events: list[dict], state: list[dict] = ()) -> list[Any]:  # type: ignore[assignment]
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
    conn._first_sync = False
    body = {
        "next_batch": "s2",
        "rooms": {
            "join": {
                ROOM: {
                    "timeline": {"events": events, "limited": False},
                    "state": {"events": list(state)},
                }
            }
        },
    }
    prepare_sync(body, BOT)
    conn._translate(SyncResponse.from_dict(body))
    return [item.input for item in got if isinstance(item, Inbound)] + [
        item for item in got if isinstance(item, BatchEnd)
    ]


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
