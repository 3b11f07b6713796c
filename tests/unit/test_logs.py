"""The log filter: nothing a participant wrote, and no Matrix ID, passes it."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import setup

BODY = "jeg vil ikke leve mer"  # a chatter's words, as an exception might carry them
CHATTER = "@anon-4821:example.org"
ROOM = "!Sk6RyPWRTVFRB5DGH3f_E1BDMTgi_Hlq9L_ex-EckeM"  # room version 12: no server part


@pytest.fixture
def captured():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buf = io.StringIO()
    yield buf
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("as_json", [False, True])
def test_exception_messages_are_withheld_along_the_whole_chain(captured, as_json):
    setup("DEBUG", as_json=as_json, stream=captured)
    cause = KeyError(f"{CHATTER} wrote {BODY}")
    try:
        try:
            raise cause
        except KeyError as exc:
            raise ValueError(f"in {ROOM}") from exc
    except ValueError:
        logging.getLogger("bot.worker").exception("input failed")
    out = captured.getvalue()
    assert "input failed" in out
    assert "KeyError" in out
    assert "ValueError" in out
    if as_json:
        assert "message withheld" in json.loads(out)["exc"]
    for secret in (BODY, CHATTER, ROOM):
        assert secret not in out


def test_ids_in_messages_and_extras_are_replaced(captured):
    setup("INFO", stream=captured)
    logging.getLogger("nio").warning("room %s for %s", ROOM, CHATTER, extra={"who": CHATTER})
    out = captured.getvalue()
    assert "<id>" in out
    assert CHATTER not in out
    assert ROOM not in out


def test_data_carrying_debug_records_are_dropped(captured):
    setup("DEBUG", stream=captured)
    logging.getLogger("aiosqlite").debug("executing %s", BODY)
    logging.getLogger("nio.responses").debug("response %s", BODY)
    assert BODY not in captured.getvalue()


def test_nio_schema_failures_do_not_quote_what_was_sent(captured):
    setup("INFO", stream=captured)
    logging.getLogger("nio.events.misc").warning(
        f"Error validating event: 5 is not of type 'string'\n\nOn instance: {{'body': '{BODY}'}}"
    )
    out = captured.getvalue()
    assert "Error validating" in out
    assert BODY not in out
