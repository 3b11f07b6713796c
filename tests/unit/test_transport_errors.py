"""Transport trouble is passing trouble everywhere: the raw requests of the trust check
and of cross-signing, the executor's requests made outside `check`, and one classifier
for every caller. And an unexpected error at start is one line, with no ID in it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from bot import app
from bot.matrix.errors import Kind, kind_of_code, kind_of_status
from bot.matrix.keysapi import NioHttp
from bot.outcomes import Transient


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("cut"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_a_broken_transport_under_a_raw_request_is_transient(exc: BaseException) -> None:
    async def send(*args: Any) -> Any:
        raise exc

    http = NioHttp(SimpleNamespace(access_token="t", send=send))
    with pytest.raises(Transient):
        asyncio.run(http.request("POST", "/_matrix/client/v3/keys/query", {}))


def test_one_reading_of_error_codes_and_statuses() -> None:
    assert kind_of_code("M_FORBIDDEN") is Kind.PERMANENT
    assert kind_of_code("M_LIMIT_EXCEEDED") is Kind.RATE_LIMITED
    assert kind_of_code(None) is Kind.TRANSIENT  # a proxy's HTML 502 has no code
    assert kind_of_code("502") is Kind.TRANSIENT
    assert kind_of_status(503) is Kind.TRANSIENT
    assert kind_of_status(429) is Kind.RATE_LIMITED
    assert kind_of_status(403) is Kind.PERMANENT


def test_an_unexpected_error_at_start_is_one_line_without_its_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def serve(config: Any, **hooks: Any) -> int:
        raise RuntimeError("@chatter:example.org wrote: jeg vil ikke leve")

    monkeypatch.setattr(app, "serve", serve)
    monkeypatch.setattr(app, "setup_logging", lambda level, json: None)
    config = SimpleNamespace(logging=SimpleNamespace(level="INFO", json=False))
    assert app.run(config) == app.EXIT_UNEXPECTED  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err.strip() == "helpline-bot: stopped by an unexpected error (RuntimeError)"
