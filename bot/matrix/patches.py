"""Every place the bot changes or reaches into what nio keeps private, in one module.

Each one leans on a detail of the pinned matrix-nio (pyproject.toml) that a new release
may change without notice; tests/unit/test_patches.py checks each detail and fails,
naming the patch, when it is gone. When you bump nio, that test says what to look at.

- `PatchedClient.parse_body`: every response body passes here after nio reads its JSON;
  a sync's goes through `prepare_sync` before nio parses, checks and decrypts it.
- `PatchedClient._handle_timeline_event` (private): an event nio raises on is left as it
  came, instead of failing the whole sync on every retry.
- `skip_empty_room_saves`: the store's `save_encrypted_rooms`, which nio calls after every
  sync, does nothing for an empty set.
- `use_compiled_schemas`: nio's module global `nio.schemas.Validator`, which
  `validate_json` looks up on each call, becomes the compiled checks of
  `bot.matrix.schemas`.
- `olm_account`: the vodozemac account inside nio's `OlmAccount` (`_account`), for the
  fallback keys nio has no call for.
- `PatchedClient.keys_query` / `keys_claim`: per server, never waiting on another server
  when it need not (`bot.matrix.keyquery`, which sends through nio's private `_send` so
  that nio reads the answers as its own).

(aiosqlite's `_execute`, the one reach into a private API on the database side, stays in
`bot.storage.db`: the Matrix side may not import the database driver; the same test file
checks it.)
"""

from __future__ import annotations

import logging
from typing import Any

import nio.schemas
from nio import AsyncClient

from bot.matrix import keyquery, schemas
from bot.matrix.syncfilter import prepare_sync

log = logging.getLogger(__name__)


class PatchedClient(AsyncClient):
    """nio's client; sync responses go through `prepare_sync` before nio sees them."""

    # From the last sync: which fallback keys the server still holds unused (see
    # bot/matrix/fallback.py); None when there is nothing to do until the next sync.
    unused_fallback_keys: Any = None
    _key_servers: keyquery.KeyServers | None = None

    @property
    def key_servers(self) -> keyquery.KeyServers | None:
        """Which servers answer for their users' keys (made once the bot's ID is known)."""
        if self._key_servers is None and self.user_id:
            self._key_servers = keyquery.KeyServers(keyquery.server_of(self.user_id))
        return self._key_servers

    async def keys_query(self) -> Any:
        """nio's, asked per server: the own server's answer is waited for, other
        servers are asked in the background (`bot.matrix.keyquery`)."""
        servers = self.key_servers
        users = set(self.users_for_key_query)
        if servers is None or not users:
            return await super().keys_query()
        return await keyquery.query(self, users, servers, wait_for_others=False)

    async def keys_claim(self, user_set: Any) -> Any:
        """nio's, per server side by side, leaving out servers paused after a failure."""
        servers = self.key_servers
        if servers is None or not user_set:
            return await super().keys_claim(user_set)
        return await keyquery.claim(self, dict(user_set), servers)

    async def parse_body(self, transport_response: Any) -> dict[Any, Any]:
        body: dict[Any, Any] = await super().parse_body(transport_response)
        if transport_response.url.path.endswith("/sync") and isinstance(body, dict):
            prepare_sync(body, self.user_id)
            self.unused_fallback_keys = body.get("device_unused_fallback_key_types")
        return body

    def _handle_timeline_event(
        self, event: Any, room_id: str, room: Any, encrypted_rooms: set[str]
    ) -> Any:
        """nio's, except that an event nio raises on is left as it came: nio parses a
        decrypted payload without checking it (`"unsigned": null` raises), and the
        exception would fail the whole sync on every retry. The event stays encrypted;
        the held-event buffer retries it, and skips it when decrypting raises again."""
        try:
            return super()._handle_timeline_event(event, room_id, room, encrypted_rooms)
        except Exception as exc:
            log.warning("nio could not handle an event", extra={"error": type(exc).__name__})
            return None


def skip_empty_room_saves(client: AsyncClient) -> None:
    """nio saves the set of newly encrypted rooms after every sync, even an empty set: a
    store transaction plus an account lookup on the event loop, twice per relayed message
    (measured: 2.5-5 ms of the bot's CPU per message). Saving nothing is skipped.
    Call it once the store is loaded; a second call changes nothing."""
    store = client.store
    if store is None or getattr(store, "_skips_empty_saves", False):
        return
    save = store.save_encrypted_rooms
    store._skips_empty_saves = True

    def save_if_any(rooms: Any) -> None:
        if rooms:
            save(rooms)

    store.save_encrypted_rooms = save_if_any


def use_compiled_schemas() -> int:
    """Route nio's schema checks through the compiled validators; returns how many of
    nio's schemas are compiled. Idempotent."""
    if not schemas.CompiledValidator.compiled:
        schemas.CompiledValidator.compiled = schemas.compile_all()
    nio.schemas.Validator = schemas.CompiledValidator
    return len(schemas.CompiledValidator.compiled)


def use_nio_schemas() -> None:
    """Back to nio's jsonschema validator (for the tests that compare the two)."""
    nio.schemas.Validator = schemas.NIO_VALIDATOR


def olm_account(olm: Any) -> Any:
    """The vodozemac `Account` inside nio's `OlmAccount`: nio has no call for fallback keys."""
    return olm.account._account
