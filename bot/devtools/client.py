"""An end-to-end-encrypted Matrix test client: a person in the helpline flows.

:class:`TestClient` wraps :class:`nio.AsyncClient` with encryption on and a crypto store in
a temp dir. It runs its own background sync loop (instead of ``sync_forever``) so that
errors are recorded and surfaced to the test instead of vanishing in a task, and it
collects what the user would see: decrypted room messages, undecryptable events and
invites, each waitable with a timeout (the recording and the waits are in
:mod:`bot.devtools.seen`).

Device trust is Element's (MSC4153), with the bot's own code: at creation the client
cross-signs its device (:func:`bot.matrix.crosssigning.ensure_cross_signing`), and before
each send it shares the room key only with devices their owner has cross-signed
(:class:`bot.matrix.trust.CrossSigned`; see :meth:`TestClient.apply_trust`). A
client made with ``cross_sign=False`` is a plain nio device, as old clients are: nobody
following the rule gives it a room key.

Create and close clients through the ``make_client`` fixture so no task outlives a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    ForwardedRoomKeyEvent,
    InviteMemberEvent,
    JoinError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    RoomCreateResponse,
    RoomKeyEvent,
    RoomMessage,
    RoomPreset,
    RoomSendResponse,
    RoomVisibility,
    SyncError,
)
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from bot.devtools.seen import Seen, TestClientError
from bot.matrix.crosssigning import ensure_cross_signing
from bot.matrix.keyfile import CrossSigningKeys
from bot.matrix.keysapi import NioHttp
from bot.matrix.trust import CrossSigned, MemoryPins

log = logging.getLogger(__name__)

MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"


def _is_error(resp: Any) -> bool:
    return isinstance(resp, ErrorResponse)


class TestClient(Seen):
    """A logged-in E2EE matrix-nio client with a background sync loop.

    Use :meth:`create` (or construct, then ``await start()``); always ``await close()``.

    Received data, oldest first:

    - ``messages``: every :class:`ReceivedMessage` (including this user's own echoes);
      :meth:`wait_for_message` consumes them one at a time from a separate pending queue.
    - ``undecryptable``: :class:`UndecryptableEvent` s still without a key. When a room
      key arrives later the event is decrypted and moves to ``messages``.
    - ``invites``: :class:`Invite` s, consumed by :meth:`wait_for_invite`.
    - ``sync_errors``: error responses from sync and key maintenance (non-fatal; the loop
      backs off and retries). A fatal failure of the loop is re-raised by every wait.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        homeserver: str,
        user_id: str,
        password: str,
        *,
        store_dir: str | Path | None = None,
        auto_join: bool = False,
        device_name: str | None = None,
        sync_timeout_ms: int = 30_000,
        cross_sign: bool = True,
        cross_signing_keys: CrossSigningKeys | None = None,
        device: tuple[str, str] | None = None,
    ) -> None:
        self.homeserver = homeserver
        self.password = password
        # (device ID, access token) of a device logged in elsewhere, with no keys yet: an
        # appservice's user has no password, its bridge logs it in and hands over the token.
        self.device = device
        self.auto_join = auto_join
        self.device_name = device_name or f"helpline-test {user_id}"
        self.sync_timeout_ms = sync_timeout_ms
        self.cross_sign = cross_sign
        # The account's keys: pass the same ones to every device of one account, or the
        # second device replaces the account's identity (with the password) on creation.
        self.cross_signing_keys = cross_signing_keys
        # A person's app: it accepts anyone's new identity (no staff pins here), and asks
        # the server before every send (ttl 0), so a device signed a moment ago counts.
        self.trust = CrossSigned(
            pins=MemoryPins(),
            pin_key=secrets.token_bytes(16),
            is_staff=lambda user: False,
            ttl=0.0,
        )

        self._owns_store_dir = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="helpline-nio-"))
        self.store_dir.mkdir(parents=True, exist_ok=True)

        config = AsyncClientConfig(
            store_sync_tokens=True,
            encryption_enabled=True,
            # nio's default pickle key is a constant: use a secret per client.
            pickle_key=secrets.token_urlsafe(32),
            # Keep retrying connection errors forever (fault tests take Synapse down),
            # but never wait more than 2 s between tries so a restart is noticed quickly.
            max_timeout_retry_wait_time=2,
            request_timeout=30,
        )
        self.client = AsyncClient(
            homeserver, user_id, store_path=str(self.store_dir), config=config
        )

        Seen.__init__(self)
        self.sync_errors: list[ErrorResponse] = []
        self.sync_count = 0

        # Serialises key upload/query/claim, to-device sends and room sends: nio would
        # otherwise run the same key query twice when the sync loop and a send race.
        self._crypto_lock = asyncio.Lock()
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_failure: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

        self.client.add_event_callback(self._on_room_message, RoomMessage)
        self.client.add_event_callback(self._on_undecryptable, MegolmEvent)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)
        self.client.add_to_device_callback(self._on_room_key, (RoomKeyEvent, ForwardedRoomKeyEvent))

    # ------------------------------------------------------------- lifecycle

    @classmethod
    async def create(
        cls, homeserver: str, user_id: str, password: str, **kwargs: Any
    ) -> TestClient:
        """Construct, log in, upload keys, do a first sync and start syncing."""
        self = cls(homeserver, user_id, password, **kwargs)
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    @property
    def device_id(self) -> str:
        return str(self.client.device_id)

    @property
    def access_token(self) -> str:
        return str(self.client.access_token)

    async def start(self) -> None:
        """Log in (a new device; or take over `device`), upload device and one-time keys,
        sync once, then keep syncing in the background.

        Keys are uploaded before anyone can see this device, so a peer's key query never
        finds the device without keys.
        """
        if self.device is not None:
            self.client.restore_login(self.client.user, *self.device)
        else:
            resp = await self.client.login(self.password, device_name=self.device_name)
            if not isinstance(resp, LoginResponse):
                raise TestClientError(f"login of {self.client.user} failed: {resp}")
        await self._maintain_keys()
        if self.cross_sign:
            await self._cross_sign()
        # The first sync (timeout 0) fills rooms/membership before start() returns.
        await self._sync_once(first=True)
        await self._maintain_keys()
        self._sync_task = asyncio.create_task(
            self._sync_loop(), name=f"sync-{self.user_id}-{self.device_id}"
        )

    async def _cross_sign(self) -> None:
        """Publish the account's cross-signing keys (first device) and sign this device
        with them, before anyone can see it: as Element does at login."""
        olm = self.client.olm
        assert olm is not None
        self.cross_signing_keys, self.cross_signing_report = await ensure_cross_signing(
            NioHttp(self.client),
            user_id=self.user_id,
            device_id=self.device_id,
            device_ed25519=olm.account.identity_keys["ed25519"],
            key_file=None,
            password=self.password or None,
            keys=self.cross_signing_keys,
        )

    async def close(self) -> None:
        """Stop syncing, cancel helper tasks, close HTTP and the crypto store.

        Idempotent. Does not log out (the device stays, as when a person closes the
        app); delete the store directory if this client created it.
        """
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._sync_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()
        store = getattr(self.client, "store", None)
        database = getattr(store, "database", None)
        if database is not None:
            with contextlib.suppress(Exception):
                database.close()
        if self._owns_store_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    # ------------------------------------------------------------ sync loop

    async def _sync_once(self, first: bool = False) -> bool:
        """One sync; callbacks run inside nio's response handling. False on error."""
        resp = await self.client.sync(timeout=0 if first else self.sync_timeout_ms)
        if isinstance(resp, SyncError):
            self.sync_errors.append(resp)
            if resp.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
                raise TestClientError(f"{self.client.user}: logged out: {resp}")
            return False
        self.sync_count += 1
        self.trust.forget([*resp.device_list.changed, *resp.device_list.left])
        await self._notify()
        return True

    async def _sync_loop(self) -> None:
        backoff = 0.1
        try:
            while True:
                if await self._sync_once():
                    backoff = 0.1
                    await self._maintain_keys()
                else:
                    # HTTP errors (e.g. 5xx while Synapse restarts); connection errors
                    # are retried inside nio. Back off, never spin.
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("sync loop of %s died", self.client.user_id)
            self._sync_failure = exc
            await self._notify()

    async def _maintain_keys(self) -> None:
        """What ``sync_forever`` does between syncs: send queued to-device messages and
        upload, query and claim keys as nio asks for."""
        client = self.client
        async with self._crypto_lock:
            if client.outgoing_to_device_messages:
                for r in await client.send_to_device_messages():
                    if _is_error(r):
                        self.sync_errors.append(r)
            if client.should_upload_keys:
                self._record(await client.keys_upload())
            if client.should_query_keys:
                self._record(await client.keys_query())
            if client.should_claim_keys:
                self._record(await client.keys_claim(client.get_users_for_key_claiming()))

    def _record(self, resp: Any) -> None:
        if _is_error(resp):
            self.sync_errors.append(resp)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --------------------------------------------------------------- actions

    async def create_encrypted_room(
        self,
        invite: Iterable[str] = (),
        name: str | None = None,
        *,
        is_direct: bool = False,
        timeout: float = 10.0,
    ) -> str:
        """Create a private (preset private_chat) Megolm-encrypted room, inviting
        ``invite``; return its ID once this client has synced it as encrypted."""
        resp = await self.client.room_create(
            visibility=RoomVisibility.private,
            name=name,
            preset=RoomPreset.private_chat,
            invite=list(invite),
            is_direct=is_direct,
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": MEGOLM_ALGORITHM},
                }
            ],
        )
        if not isinstance(resp, RoomCreateResponse):
            raise TestClientError(f"{self.user_id}: room_create failed: {resp}")
        await self.wait_for_room(resp.room_id, encrypted=True, timeout=timeout)
        return str(resp.room_id)

    async def join(self, room_id: str, timeout: float = 10.0) -> MatrixRoom:
        """Join ``room_id`` (or a room alias: a room on another server is joined by its
        alias, which names a server to join through) and wait until the room (with its
        state) has been synced.

        An invite from another server can arrive before the inviter's server has stored
        it, which then refuses the join ("not invited"): asked again until `timeout`, as
        a person tapping "join" again would."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        resp = await self.client.join(room_id)
        while (
            isinstance(resp, JoinError)
            and resp.status_code == "M_FORBIDDEN"
            and self._invited_from_elsewhere(room_id)
            and loop.time() < deadline
        ):
            await asyncio.sleep(0.2)
            resp = await self.client.join(room_id)
        if isinstance(resp, JoinError):
            raise TestClientError(f"{self.user_id}: join {room_id} failed: {resp}")
        return await self.wait_for_room(str(resp.room_id), timeout=timeout)

    def _invited_from_elsewhere(self, room_id: str) -> bool:
        own = self.user_id.partition(":")[2]
        return any(i.room_id == room_id and i.sender.partition(":")[2] != own for i in self.invites)

    async def apply_trust(self, room_id: str) -> None:
        """Element's rule: verify (in nio's store) exactly the member devices their owner
        has cross-signed, blacklist the others, so nio shares the room key with the first
        only. Call with the crypto lock held."""
        await self.trust.prepare(self.client, room_id)

    async def send_text(
        self,
        room_id: str,
        body: str,
        *,
        msgtype: str = "m.text",
        extra_content: dict[str, Any] | None = None,
        txn_id: str | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Send an encrypted ``m.room.message``; return its event ID.

        Refuses to send unless this client knows the room is encrypted (waits up to
        ``timeout`` for the encryption state), so a test can never leak plaintext by
        racing the room's state. Brings member list and device keys up to date, applies
        the cross-signing trust rule, then lets nio share the Megolm session and encrypt.
        """
        await self.wait_for_room(room_id, encrypted=True, timeout=timeout)
        content: dict[str, Any] = {"msgtype": msgtype, "body": body, **(extra_content or {})}
        client = self.client
        async with self._crypto_lock:
            room = client.rooms[room_id]
            if not room.members_synced:
                self._record(await client.joined_members(room_id))
            if client.should_query_keys:
                resp = await client.keys_query()
                if _is_error(resp):
                    raise TestClientError(f"{self.user_id}: keys_query failed: {resp}")
            await self.apply_trust(room_id)
            if not client.rooms[room_id].encrypted:  # paranoia: never send plaintext
                raise TestClientError(f"{room_id} is not encrypted; refusing to send")
            resp = await client.room_send(
                room_id,
                "m.room.message",
                content,
                tx_id=txn_id,
                ignore_unverified_devices=False,
            )
        if not isinstance(resp, RoomSendResponse):
            raise TestClientError(f"{self.user_id}: send to {room_id} failed: {resp}")
        return str(resp.event_id)

    async def upload_encrypted(self, data: bytes) -> dict[str, Any]:
        """Encrypt `data` with a fresh key, as Element does for an encrypted room, and
        upload the ciphertext; returns the EncryptedFile (`file`) that unlocks it."""
        sealed, keys = encrypt_attachment(data)
        headers = {
            "Authorization": f"Bearer {self.access_token}",
            "Content-Type": "application/octet-stream",
        }
        resp = await self.client.send("POST", "/_matrix/media/v3/upload", sealed, headers)
        async with resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise TestClientError(f"{self.user_id}: upload failed: {resp.status} {body}")
        return {"url": body["content_uri"], **keys}

    async def send_image(
        self,
        room_id: str,
        data: bytes,
        *,
        filename: str = "IMG_0042.png",
        info: dict[str, Any] | None = None,
        msgtype: str = "m.image",
    ) -> tuple[str, str]:
        """Send `data` as Element sends a picture in an encrypted room: the file encrypted
        and uploaded, its key in the (Megolm-encrypted) event, with a file name and an
        `info` (default: image/png and the size; pass one to declare other things, or {}
        to declare nothing). Returns the event ID and the uploaded file's mxc://."""
        file = await self.upload_encrypted(data)
        declared = {"mimetype": "image/png", "size": len(data)} if info is None else info
        content = {"filename": filename, "info": declared, "file": file}
        event_id = await self.send_text(room_id, filename, msgtype=msgtype, extra_content=content)
        return event_id, str(file["url"])

    async def download_attachment(self, content: dict[str, Any]) -> bytes:
        """The file of a received encrypted attachment, downloaded through the
        authenticated media API and decrypted (its hash checked): what an app shows."""
        file = content["file"]
        status, sealed = await self.download(file["url"])
        if status != 200:
            raise TestClientError(f"{self.user_id}: download failed: {status}")
        return bytes(
            decrypt_attachment(sealed, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
        )

    async def download(self, mxc: str) -> tuple[int, bytes]:
        """GET /_matrix/client/v1/media/download for `mxc`: the status and the bytes."""
        server, media_id = mxc.removeprefix("mxc://").split("/", 1)
        path = f"/_matrix/client/v1/media/download/{server}/{media_id}"
        headers = {"Authorization": f"Bearer {self.access_token}"}
        resp = await self.client.send("GET", path, None, headers)
        async with resp:
            return resp.status, await resp.read()

    def __repr__(self) -> str:
        return f"<TestClient {self.client.user_id} device={self.client.device_id}>"
