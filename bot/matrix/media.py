"""Copying an encrypted attachment from one side of a conversation to the other.

The bot never forwards the sender's file: it downloads the ciphertext (the authenticated
media API, the bot's token in the header), checks its hash and decrypts it, asks the core
whether the bytes may pass (`bot.core.media.inspect`: size, type sniffed from the bytes),
encrypts them again with a fresh key and uploads that as its own file. The other side
gets a new `mxc://`, a new key, a neutral file name and no other metadata (no thumbnail,
no original name, no caption), so nothing links the two copies but the bot.

The copy the bot uploaded is the conversation's to purge: the executor reports it in
`MediaRelayed`, the worker records it with the bot as its poster, and the purge deletes
it with the sender's original (`bot.matrix.admin.AdminAPI.delete_media`).

Retries: an upload whose message could not be sent yet (a 5xx, a 429) is kept in memory
under the effect's transaction ID and sent on the retry, not uploaded twice. A crash
between the upload and the recorded outcome leaves an upload whose key existed only in
this process's memory: unreadable ciphertext, which the server's media retention drops.

Nothing logged carries an `mxc://`, a key or any byte of the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

from nio import AsyncClient
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment
from nio.exceptions import EncryptionError

from bot.core.media import (
    Attachment,
    Checked,
    MediaLimits,
    MediaProblem,
    inspect,
    without_metadata,
)
from bot.matrix.errors import Kind, Refusal, kind_of_status
from bot.outcomes import Transient

log = logging.getLogger(__name__)

DOWNLOAD = "/_matrix/client/v1/media/download"
UPLOAD = "/_matrix/media/v3/upload"
CHUNK = 64 * 1024
MAX_PENDING = 64  # uploads kept for a retry of their send; the oldest is dropped first


@dataclass(frozen=True, slots=True)
class Copy:
    """The bot's own upload of a checked attachment, and the content that sends it."""

    mxc: str
    content: dict[str, Any]


class MediaCopier:
    def __init__(self, client: AsyncClient, limits: MediaLimits) -> None:
        self.client = client
        self.limits = limits
        self._pending: dict[str, Copy] = {}  # transaction ID -> uploaded, not yet sent

    async def copy(self, attachment: Attachment, txn_id: str) -> Copy | MediaProblem:
        """The bot's copy of `attachment`, uploaded, or why it may not be passed on.
        Raises `Transient` for passing trouble, `Refusal` when the upload is refused."""
        done = self._pending.get(txn_id)
        if done is not None:
            return done
        ciphertext = await self._download(attachment.url)
        if isinstance(ciphertext, MediaProblem):
            return ciphertext
        try:
            data = decrypt_attachment(ciphertext, attachment.key, attachment.sha256, attachment.iv)
        except (EncryptionError, ValueError):
            log.warning("an attachment could not be decrypted (its hash or key is wrong)")
            return MediaProblem.BROKEN
        checked = inspect(bytes(data), self.limits)
        if isinstance(checked, MediaProblem):
            log.info("an attachment was not passed on", extra={"why": checked.value})
            return checked
        clean = without_metadata(bytes(data), checked.mimetype)
        checked = replace(checked, size=len(clean))
        sealed, keys = encrypt_attachment(clean)
        mxc = await self._upload(sealed)
        if isinstance(mxc, MediaProblem):
            return mxc
        made = Copy(mxc, content(checked, mxc, keys))
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
        self._pending[txn_id] = made
        return made

    def sent(self, txn_id: str) -> None:
        """The copy made for this effect is in a message now (or never will be)."""
        self._pending.pop(txn_id, None)

    async def _download(self, mxc: str) -> bytes | MediaProblem:
        parts = urlsplit(mxc)
        server, media_id = parts.netloc, parts.path.lstrip("/")
        if not server or not media_id or "/" in media_id:
            return MediaProblem.BROKEN
        path = f"{DOWNLOAD}/{quote(server, safe='')}/{quote(media_id, safe='')}"
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        resp = await self.client.send("GET", path, None, headers)
        async with resp:
            if resp.status != 200:
                return _failed(resp.status, "download")
            # AES-CTR: the ciphertext is as long as the file; stop reading past the limit.
            if (resp.content_length or 0) > self.limits.max_bytes:
                return MediaProblem.TOO_BIG
            chunks: list[bytes] = []
            total = 0
            async for chunk in resp.content.iter_chunked(CHUNK):
                total += len(chunk)
                if total > self.limits.max_bytes:
                    return MediaProblem.TOO_BIG
                chunks.append(chunk)
        return b"".join(chunks)

    async def _upload(self, data: bytes) -> str | MediaProblem:
        headers = {
            "Authorization": f"Bearer {self.client.access_token}",
            "Content-Type": "application/octet-stream",
        }
        resp = await self.client.send("POST", UPLOAD, data, headers)
        async with resp:
            status = resp.status
            try:
                body = await resp.json(content_type=None) if status < 500 else None
            except ValueError:  # a proxy's HTML page: no error code to go by
                body = None
        if status == 413:
            return MediaProblem.TOO_BIG  # the homeserver's own limit is lower than ours
        uri = body.get("content_uri") if isinstance(body, dict) else None
        if status == 200 and isinstance(uri, str) and uri.startswith("mxc://"):
            return uri
        code = body.get("errcode") if isinstance(body, dict) else None
        if kind_of_status(status) is Kind.PERMANENT and isinstance(code, str):
            raise Refusal(code)
        raise Transient(f"upload answered {status}")


def content(checked: Checked, mxc: str, keys: dict[str, Any]) -> dict[str, Any]:
    """The message that carries the bot's copy: a neutral name, the type, size and a
    picture's dimensions, the new key. Nothing of the sender's message."""
    return {
        "msgtype": checked.kind.msgtype,
        "body": checked.filename,
        "info": checked.info(),
        "file": {
            "v": "v2",
            "url": mxc,
            "key": keys["key"],
            "iv": keys["iv"],
            "hashes": {"sha256": keys["hashes"]["sha256"]},
        },
    }


def _failed(status: int, what: str) -> MediaProblem:
    """A download the server did not answer with the file: passing trouble is tried
    again (raises `Transient`); a definite no (gone, forbidden) means the sender must
    send it again."""
    if kind_of_status(status) is not Kind.PERMANENT:
        raise Transient(f"{what} answered {status}")
    log.warning("an attachment could not be downloaded", extra={"status": status})
    return MediaProblem.BROKEN
