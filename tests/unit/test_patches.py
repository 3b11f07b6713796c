"""What each patch in bot/matrix/patches.py (and the one reach into aiosqlite's private API,
in bot/storage/db.py) relies on in the pinned libraries. A failure here names the patch
to look at after bumping matrix-nio or aiosqlite; it never means the bot is wrong."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import aiosqlite
import nio.schemas
import pytest
from nio import AsyncClient
from nio.client.base_client import Client
from nio.crypto import OlmAccount

from bot.matrix import patches, schemas
from bot.matrix.cryptostore import BotStore
from bot.matrix.patches import PatchedClient, skip_empty_room_saves


def source(obj: Any) -> str:
    return inspect.getsource(obj)


def params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


# ---- PatchedClient ----------------------------------------------------------------------


def test_nio_reads_every_response_body_through_parse_body() -> None:
    assert inspect.iscoroutinefunction(AsyncClient.parse_body)
    assert params(AsyncClient.parse_body) == ["self", "transport_response"]
    assert "self.parse_body(" in source(AsyncClient), "PatchedClient.parse_body is never called"


def test_nio_handles_each_timeline_event_in_one_private_method() -> None:
    assert params(Client._handle_timeline_event) == [
        "self",
        "event",
        "room_id",
        "room",
        "encrypted_rooms",
    ], "PatchedClient._handle_timeline_event overrides a method whose signature changed"
    assert "self._handle_timeline_event(" in source(AsyncClient), (
        "nio no longer calls _handle_timeline_event: PatchedClient's guard is bypassed"
    )


def test_the_patched_client_overrides_what_nio_has() -> None:
    for name in ("parse_body", "_handle_timeline_event", "keys_query", "keys_claim"):
        assert name in vars(PatchedClient), name
        assert hasattr(AsyncClient, name), name


def test_key_requests_go_through_nios_private_send_and_its_api_builders() -> None:
    """bot.matrix.keyquery: nio's `_send(response_class, method, path, data)` reads the
    answer as its own (device store, pending users); `Api.keys_query` / `keys_claim`
    give the method and path; nio's own callers call `keys_query()` / `keys_claim(...)`."""
    assert params(AsyncClient._send)[:5] == ["self", "response_class", "method", "path", "data"]
    method, path, _ = nio.Api.keys_query("t", {"@a:b"})
    assert (method, path.split("?")[0]) == ("POST", "/_matrix/client/v3/keys/query")
    method, path, _ = nio.Api.keys_claim("t", {"@a:b": ["D"]})
    assert (method, path.split("?")[0]) == ("POST", "/_matrix/client/v3/keys/claim")
    assert "await self.keys_query()" in source(AsyncClient.room_send)
    assert "await self.keys_claim(" in source(AsyncClient.share_group_session)
    assert params(AsyncClient.keys_claim) == ["self", "user_set"]


# ---- skip_empty_room_saves -------------------------------------------------------------


def test_nio_saves_encrypted_rooms_after_every_sync() -> None:
    assert "self.store.save_encrypted_rooms(encrypted_rooms)" in source(AsyncClient)
    assert params(BotStore.save_encrypted_rooms) == ["self", "rooms"]


def test_an_empty_save_is_skipped_and_a_real_one_is_not() -> None:
    class Store:
        def __init__(self) -> None:
            self.saved: list[Any] = []

        def save_encrypted_rooms(self, rooms: Any) -> None:
            self.saved.append(rooms)

    class Client:
        store = Store()

    client: Any = Client()
    skip_empty_room_saves(client)
    skip_empty_room_saves(client)  # a second call does not wrap twice
    client.store.save_encrypted_rooms(set())
    client.store.save_encrypted_rooms({"!a:hs"})
    assert client.store.saved == [{"!a:hs"}]


# ---- use_compiled_schemas --------------------------------------------------------------


def test_nio_looks_its_validator_up_as_a_module_global_on_each_check() -> None:
    nio_validator = schemas.NIO_VALIDATOR
    not_a_validator = "nio.schemas.Validator is no longer a jsonschema validator class"
    assert inspect.isclass(nio_validator), not_a_validator
    assert hasattr(nio_validator, "validate"), not_a_validator
    assert hasattr(nio.schemas, "Checker")
    assert "Validator(schema, format_checker=Checker).validate(instance)" in source(
        nio.schemas.validate_json
    ), "use_compiled_schemas replaces a global that validate_json no longer uses that way"
    assert isinstance(vars(nio.schemas).get("Schemas"), type)


def test_the_compiled_schemas_go_in_and_out_of_nios_place() -> None:
    try:
        assert patches.use_compiled_schemas() > 0
        assert nio.schemas.Validator is schemas.CompiledValidator
    finally:
        patches.use_nio_schemas()
    assert nio.schemas.Validator is schemas.NIO_VALIDATOR
    patches.use_compiled_schemas()  # as the bot runs


# ---- olm_account -----------------------------------------------------------------------


def test_nios_olm_account_holds_a_vodozemac_account_with_fallback_keys() -> None:
    class Olm:
        account = OlmAccount()

    account = patches.olm_account(Olm())
    for name in ("generate_fallback_key", "fallback_key", "mark_keys_as_published"):
        assert hasattr(account, name), f"the vodozemac account has no {name}"


# ---- aiosqlite (bot/storage/db.py) ------------------------------------------------------


def test_aiosqlite_runs_a_function_on_its_thread_through_execute(tmp_path: Path) -> None:
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute)
    assert params(aiosqlite.Connection._execute) == ["self", "fn", "args", "kwargs"]

    async def run() -> int:
        async with aiosqlite.connect(tmp_path / "x.db") as conn:
            raw = conn._conn  # the sqlite3 connection, used only on aiosqlite's thread

            def on_thread(db: Any, n: int) -> int:
                return int(db.execute("SELECT ?", (n,)).fetchone()[0])

            return int(await conn._execute(on_thread, raw, 7))

    assert asyncio.run(run()) == 7


@pytest.mark.parametrize(
    "name", ["parse_body", "_handle_timeline_event", "keys_query", "keys_claim"]
)
def test_overrides_keep_the_async_or_sync_kind_of_nios(name: str) -> None:
    ours, theirs = getattr(PatchedClient, name), getattr(AsyncClient, name)
    assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs)
