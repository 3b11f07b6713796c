"""What the bot drops from a sync response before nio parses it (bot.matrix.syncfilter):
its own non-state events and the non-state events from before it joined; never a state
event, never someone else's event sent while it was in the room, unless nio could not
parse it at all."""

from __future__ import annotations

import copy
from typing import Any

from nio import SyncResponse

from bot.matrix.syncfilter import (
    SYNC_FILTER,
    before_join,
    prepare_sync,
    room_filter,
    spec_version,
)

BOT = "@bot:hs"


def ev(sender: str, *, state_key: str | None = None, membership: str | None = None) -> dict:
    event: dict[str, Any] = {
        "type": "m.room.member" if state_key is not None else "m.room.encrypted",
        "sender": sender,
        "event_id": f"${len(sender)}{state_key}{membership}",
        "content": {},
    }
    if state_key is not None:
        event["state_key"] = state_key
    if membership is not None:
        event["unsigned"] = {"membership": membership}
    return event


def body(*events: dict, room: str = "!r:hs") -> dict:
    return {"next_batch": "s2", "rooms": {"join": {room: {"timeline": {"events": list(events)}}}}}


def timeline(sync: dict, room: str = "!r:hs") -> list[dict]:
    return sync["rooms"]["join"][room]["timeline"]["events"]


def test_own_echo_is_dropped_but_own_state_stays() -> None:
    echo = ev(BOT, membership="join")
    own_join = ev(BOT, state_key=BOT, membership="join")
    own_name = ev(BOT, state_key="")  # an empty state_key is still a state event
    sync = body(echo, own_join, own_name)
    assert prepare_sync(sync, BOT) == 1
    assert timeline(sync) == [own_join, own_name]


def test_history_from_before_the_join_is_dropped_state_kept() -> None:
    old_message = ev("@c:hs", membership="leave")
    invited_message = ev("@c:hs", membership="invite")
    old_state = ev("@c:hs", state_key="@c:hs", membership="leave")
    new_message = ev("@c:hs", membership="join")
    sync = body(old_message, invited_message, old_state, new_message)
    assert prepare_sync(sync, BOT) == 2
    assert timeline(sync) == [old_state, new_message]
    # the state event from before the join stays for nio, and is told apart later
    assert before_join(old_state)
    assert not before_join(new_message)


def test_a_server_without_membership_on_events_loses_nothing() -> None:
    message = ev("@c:hs")
    sync = body(message)
    assert prepare_sync(sync, BOT) == 0
    assert timeline(sync) == [message]
    assert not before_join(message)


def test_odd_shapes_are_left_alone() -> None:
    for odd in (
        {},
        {"rooms": None},
        {"rooms": {"join": []}},
        {"rooms": {"join": {"!r:hs": None}}},
        {"rooms": {"join": {"!r:hs": {"timeline": {"events": "x"}}}}},
        {"rooms": {"join": {"!r:hs": {"timeline": {"events": [{"unsigned": "x"}]}}}}},
        {"rooms": {"join": {"!r:hs": {"state": None, "timeline": None}}}},
    ):
        before = copy.deepcopy(odd)
        assert prepare_sync(odd, BOT) == 0
        assert odd == before


def test_events_nio_would_raise_on_are_dropped_so_the_sync_gets_past_them() -> None:
    good = {**ev("@c:hs", membership="join"), "origin_server_ts": 5}
    bad_stamp = [{**good, "origin_server_ts": stamp} for stamp in (None, "1", [1], {"a": 1})]
    not_events = [1, None, "x", ["a"]]
    sync = body(*bad_stamp, *not_events, good)
    sync["rooms"]["join"]["!r:hs"]["state"] = {"events": [None, {**good, "state_key": ""}]}
    assert prepare_sync(sync, BOT) == len(bad_stamp) + len(not_events) + 1
    assert timeline(sync) == [good]
    SyncResponse.from_dict(sync)  # what raised before, on every retry


def test_versions() -> None:
    assert spec_version("v1.11") == (1, 11)
    assert spec_version("v1.12") >= (1, 11) > spec_version("v1.10")
    assert spec_version("v2.0") >= (1, 11)
    assert spec_version("r0.6.1") == (0,)
    assert spec_version("v1.x") == (0,)


def test_filter_asks_for_no_receipts_presence_or_account_data() -> None:
    assert SYNC_FILTER["room"]["ephemeral"] == {"types": ["m.typing"]}
    assert SYNC_FILTER["presence"] == {"not_types": ["*"]}
    assert SYNC_FILTER["account_data"] == {"not_types": ["*"]}
    assert "timeline" not in SYNC_FILTER["room"]  # added only for servers that allow it
    assert room_filter(read_receipts=False) == SYNC_FILTER["room"]


def test_filter_asks_for_read_receipts_only_when_some_are_passed_on() -> None:
    assert room_filter(read_receipts=True)["ephemeral"] == {"types": ["m.typing", "m.receipt"]}
    assert SYNC_FILTER["room"]["ephemeral"] == {"types": ["m.typing"]}  # not changed by it
