"""Logging that cannot leak who or what.

Log calls in the bot never pass message content or Matrix IDs. As a second line of
defence, every record passes through `Scrub`, which replaces anything shaped like a Matrix
user, room or event ID (in the message, its arguments and its extras) before any handler
sees it: a mistake in a log call then leaks nothing. Third-party loggers (nio logs room
and user IDs at DEBUG) go through the same filter, because it sits on the handler.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from typing import Any, TextIO

# Matrix IDs with a server part; room (v12) and event IDs without one; long base64 keys
# (device and session keys link a person's devices across rooms).
_ID = re.compile(
    r"[@!$#][A-Za-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(?::\d+)?"
    r"|[!$][A-Za-z0-9_\-+/]{20,}"
    r"|\b[A-Za-z0-9+/_\-]{40,}={0,2}"
)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def scrub_text(text: str) -> str:
    return _ID.sub("<id>", text)


# Libraries whose DEBUG records carry data: aiosqlite logs every statement's parameters
# (message bodies among them); nio.responses logs every response body whole (display
# names, which are often real names, room names, membership). Below INFO they are
# dropped, whatever the root level.
_DATA_LOGGERS = ("aiosqlite", "nio.responses")

# nio's schema checks log, at WARNING, the failing value whole: whatever a stranger put
# in an event (a body, a name) reached the log. Only that a check failed is kept.
_NIO_VALIDATION = "Error validating"


def traceback_without_messages(exc: BaseException) -> str:
    """The traceback of `exc` and of what caused it, each ending in its type alone."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\n\nwhich led to:\n\n".join(
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(e.__traceback__))
        + f"{type(e).__module__}.{type(e).__qualname__} (message withheld)"
        for e in reversed(chain)
    )


class Scrub(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and record.name.startswith(_DATA_LOGGERS):
            return False
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.name.startswith("nio") and message.startswith(_NIO_VALIDATION):
            message = f"{_NIO_VALIDATION}: an event or response failed nio's schema (withheld)"
        record.msg = scrub_text(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # An exception's message can carry anything it was given (a body, a room ID):
            # keep where it happened and its type, never its message.
            record.exc_text = scrub_text(traceback_without_messages(record.exc_info[1]))
            record.exc_info = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, scrub_text(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return base


def setup(level: str = "INFO", as_json: bool = False, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(Scrub())
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter at DEBUG is noise and may carry IDs; the filter scrubs it anyway.
    for noisy in ("aiosqlite", "peewee"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    # nio and APScheduler log several INFO lines per relayed message (each one costs a
    # pass of the scrubber): below DEBUG only their warnings are worth an operator's time.
    for chatty in ("nio", "apscheduler"):
        logging.getLogger(chatty).setLevel(
            logging.DEBUG if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
        )
