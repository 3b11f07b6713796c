"""One reading of what a failed Matrix request means, for every caller (effects, purge,
trust checks, cross-signing).

- transient: the transport failed (refused, reset, timed out, an answer that is not
  JSON, such as a proxy's HTML 502), the server answered 5xx, or it rate limited us:
  try again later, never drop;
- permanent: the server understood and refused (an `M_` error code other than
  `M_LIMIT_EXCEEDED`): trying again would get the same answer.

Only error codes travel in exceptions, never the server's error text, which can name
users and rooms.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
from nio import ErrorResponse

from bot.outcomes import Transient

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a broken transport raises through nio and aiohttp. aiohttp's ClientError covers
# ServerDisconnectedError and ClientPayloadError, which are not OSErrors.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
    aiohttp.ClientError,
)
# A request that got no usable answer: a broken transport, or a temporary error from the
# homeserver (`Transient`). One tuple, not `(Transient, *TRANSPORT_ERRORS)` at each use:
# mypy cannot check an `except` over a star-unpacked tuple.
NO_ANSWER: tuple[type[BaseException], ...] = (Transient, *TRANSPORT_ERRORS)


class Kind(enum.Enum):
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    PERMANENT = "permanent"


class Refusal(Exception):
    """The server refused a request for good; `code` is its `M_` error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def kind_of_code(code: str | None) -> Kind:
    """An error response's code (or HTTP status, or nothing) -> what it means."""
    code = code or ""
    if code == "M_LIMIT_EXCEEDED" or code == "429":
        return Kind.RATE_LIMITED
    if code.startswith("M_"):
        return Kind.PERMANENT
    return Kind.TRANSIENT


def kind_of_status(status: int) -> Kind:
    """An HTTP status (for requests made without nio's response classes)."""
    if status == 429:
        return Kind.RATE_LIMITED
    if status >= 500 or status in (408, 0):
        return Kind.TRANSIENT
    return Kind.PERMANENT


def is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, TRANSPORT_ERRORS)


async def check(request: Awaitable[T], *, quiet: bool = False) -> T:
    """Await a nio request. Transport errors and transient answers raise `Transient`; a
    refusal raises `Refusal`, or with `quiet` is logged (code only) and returned."""
    try:
        resp = await request
    except TRANSPORT_ERRORS as exc:
        raise Transient(type(exc).__name__) from exc
    if isinstance(resp, ErrorResponse):
        code = str(resp.status_code or "")
        if kind_of_code(code) is not Kind.PERMANENT:
            raise Transient(code or "no error code")
        if quiet:
            log.info("matrix request refused", extra={"code": code})
            return resp
        raise Refusal(code)
    return resp


def code_of(resp: Any) -> str:
    return str(getattr(resp, "status_code", "") or "")
