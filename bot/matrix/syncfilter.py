"""What the bot's sync asks the server for, and what it drops from a response before nio
sees it.

Rules:
- The sync asks only for what the bot acts on (`SYNC_FILTER`: no presence, no account
  data, no read receipts unless it passes them on (`room_filter`); on Matrix 1.11 servers
  none of the bot's own events either, so the echo of its sends never wakes it; see
  `bot.matrix.sync`).
- Non-state events the bot never acts on (its own, those from before it joined) are
  dropped from a response before nio parses and decrypts them (`prepare_sync`, called
  from the client in `bot.matrix.patches`). State events stay: nio builds each room's
  state from them.
- Pure: plain JSON in, plain JSON out.
"""

from __future__ import annotations

from typing import Any

# What the bot's sync asks for. Everything else would only wake the long-poll: a read
# receipt for every message read, presence, account data nobody here uses.
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "ephemeral": {"types": ["m.typing"]},
        "account_data": {"not_types": ["*"]},
    },
}


def room_filter(*, read_receipts: bool) -> dict[str, Any]:
    """The room part of the filter; read receipts only when some are passed on
    (`privacy.relay_read_receipts`): otherwise each one would wake the sync for nothing."""
    room = dict(SYNC_FILTER["room"])
    if read_receipts:
        room["ephemeral"] = {"types": ["m.typing", "m.receipt"]}
    return room


def prepare_sync(body: dict[str, Any], own: str) -> int:
    """Drop, from the joined rooms' timelines of a parsed sync response, the non-state
    events the bot must never act on, before nio parses, checks and decrypts them:

    - its own (the echo of every message it sends; with the server-side filter they do
      not come at all),
    - those from before it joined the room, which the server marks with the bot's
      membership at the time of the event (`unsigned.membership`, Matrix 1.11).

    State events stay (they have a `state_key`, even an empty one): nio builds each room's
    state from them. Events nio's parser would raise on (`_unparseable`) go too, state or
    not, from the timeline and the state: one of them would fail the whole sync on every
    retry, and the bot would never get past it. Returns how many events were dropped."""
    dropped = 0
    rooms = body.get("rooms")
    joined = rooms.get("join") if isinstance(rooms, dict) else None
    if not isinstance(joined, dict):
        return 0
    for info in joined.values():
        if not isinstance(info, dict):
            continue
        for section in ("timeline", "state"):
            part = info.get(section)
            if not isinstance(part, dict):
                continue
            events = part.get("events")
            if not isinstance(events, list):
                continue
            kept = [
                e
                for e in events
                if not (_unparseable(e) or (section == "timeline" and _droppable(e, own)))
            ]
            dropped += len(events) - len(kept)
            part["events"] = kept
    return dropped


def _unparseable(event: Any) -> bool:
    """nio raises (instead of making a BadEvent) on an event that is not an object or
    whose timestamp is not a number."""
    if not isinstance(event, dict):
        return True
    stamp = event.get("origin_server_ts", 0)
    return not isinstance(stamp, (int, float))


def _droppable(event: dict[str, Any], own: str) -> bool:
    if "state_key" in event:
        return False
    return event.get("sender") == own or before_join(event)


def spec_version(text: str) -> tuple[int, ...]:
    """'v1.11' -> (1, 11); 'r0.6.1' and anything else -> (0,)."""
    if not text.startswith("v"):
        return (0,)
    try:
        return tuple(int(part) for part in text[1:].split("."))
    except ValueError:
        return (0,)


def before_join(event: dict[str, Any]) -> bool:
    """The server says the bot was not in the room when this event was sent."""
    unsigned = event.get("unsigned")
    membership = unsigned.get("membership") if isinstance(unsigned, dict) else None
    return membership is not None and membership != "join"
