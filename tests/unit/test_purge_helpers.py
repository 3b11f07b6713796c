"""The purge's plain parts: which events still carry content, and that the admin token
and data-carrying library logs stay out of the logs. The pipeline itself runs against a
real Synapse in tests/integration/test_purge.py."""

from __future__ import annotations

import io
import logging
from typing import Any

from nio import Event

from bot.logs import Scrub, TextFormatter
from bot.matrix.admin import AdminAPI
from bot.matrix.purge import _has_content, _name


def event(**fields: Any) -> Any:
    source = {
        "event_id": "$e",
        "sender": "@someone:localhost",
        "origin_server_ts": 1,
        "type": "m.room.encrypted",
        "content": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "x",
            "sender_key": "k",
            "session_id": "s",
            "device_id": "D",
        },
    }
    source.update(fields)
    return Event.parse_event(source)


def test_messages_still_carry_content() -> None:
    assert _has_content(event())
    assert _has_content(event(type="m.room.message", content={"msgtype": "m.text", "body": "x"}))
    assert _has_content(event(type="m.reaction", content={"m.relates_to": {}}))


def test_redacted_events_state_and_redactions_are_left_alone() -> None:
    redacted = event(content={}, unsigned={"redacted_because": {"type": "m.room.redaction"}})
    assert not _has_content(redacted)
    member = event(type="m.room.member", state_key="@x:localhost", content={"membership": "join"})
    assert not _has_content(member)
    redaction = event(type="m.room.redaction", redacts="$other", content={"redacts": "$other"})
    assert not _has_content(redaction)
    assert not _has_content(event(content={}))


def test_step_names_carry_the_verify_result_after_an_equals_sign() -> None:
    assert _name("verify=failed:room_still_present") == "verify"
    assert _name("redact") == "redact"


def test_the_admin_token_is_not_in_the_api_objects_repr() -> None:
    api = AdminAPI("http://127.0.0.1:8008", "syt_secret_token_value")
    assert "syt_secret" not in repr(api)
    assert "syt_secret" not in str(api)


def test_nio_response_bodies_never_reach_the_logs() -> None:
    """nio logs whole responses at DEBUG: display names (often real names) with them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(Scrub())
    handler.setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("nio.responses")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.debug("Validating response schema: {'displayname': 'Kari Nordmann'}")
        logger.warning("Error validating response")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert "Kari Nordmann" not in out.getvalue()
    assert "Error validating" in out.getvalue()  # the fact stays, the value goes
