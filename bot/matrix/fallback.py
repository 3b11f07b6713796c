"""The bot's fallback key: what lets a burst of new chatters reach it encrypted.

Every new chatter's client starts an Olm session with the bot's device by claiming one of
its one-time keys, and shares the room key of its first message through that session.
nio keeps 50 one-time keys on the server and tops them up after a sync; when many
chatters arrive within seconds the pool runs dry between two syncs, and a client that
finds no key cannot start a session: the bot never gets the key of that chatter's first
words (measured: 37 of 150 chatters arriving within 10 s). A fallback key (Matrix 1.2,
`/keys/upload` `fallback_keys`) is handed out when the one-time keys are gone; nio 0.26
does not publish one, so the bot does, with the same account (vodozemac) and signature.

The server says in each sync whether the fallback key is still unused
(`device_unused_fallback_key_types`); once it was used, a new one replaces it (vodozemac
keeps the previous one too, for messages still on their way).
"""

from __future__ import annotations

import logging
from typing import Any

from nio import AsyncClient

from bot.matrix.keysapi import NioHttp
from bot.matrix.patches import olm_account

log = logging.getLogger(__name__)

ALGORITHM = "signed_curve25519"


def needs_fallback_key(unused: Any) -> bool:
    """From a sync's `device_unused_fallback_key_types`: whether to publish a new one.
    A server that does not send the field does not support fallback keys."""
    return isinstance(unused, list) and ALGORITHM not in unused


async def publish_fallback_key(client: AsyncClient) -> bool:
    """Make a new fallback key, sign it, publish it and keep it in the crypto store.
    Returns whether the server took it. Call it after nio's own key upload, so that no
    unpublished one-time key is marked published without having been uploaded."""
    olm = client.olm
    if olm is None:
        return False
    account = olm_account(olm)
    account.generate_fallback_key()
    ((key_id, key),) = account.fallback_key.items()
    signed: dict[str, Any] = {"key": key.to_base64(), "fallback": True}
    signed["signatures"] = {client.user_id: {f"ed25519:{client.device_id}": olm.sign_json(signed)}}
    body = {"fallback_keys": {f"{ALGORITHM}:{key_id}": signed}}
    status, _ = await NioHttp(client).request("POST", "/_matrix/client/v3/keys/upload", body)
    if status != 200:
        log.warning("fallback key not published", extra={"status": status})
        return False
    account.mark_keys_as_published()
    olm.save_account()
    log.info("fallback key published")
    return True
