"""Login and identity at start: one device for the life of the data dir, checked against
the config and the server, cross-signed before anything is sent encrypted.

Rules:
- The first login saves the device ID and access token in the data dir
  (`credentials.json`, mode 0600); later starts restore them (never a new device per
  start) and check that store, config and `whoami` agree. Each disagreement stops the
  start with its own exit code (`bot.exits`).
- The account's cross-signing keys are published and this device signed before the sync
  starts: what a device sends before it is signed stays unreadable for Element's
  only-signed mode, and it does not ask again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from nio import AsyncClient, LoginResponse, WhoamiResponse

from bot.exits import EXIT_CROSS_SIGNING, EXIT_IDENTITY, EXIT_LOGIN, EXIT_TOKEN, StartupError
from bot.matrix.crosssigning import ensure_cross_signing
from bot.matrix.errors import NO_ANSWER
from bot.matrix.keyfile import CrossSigningKeys, KeyFile
from bot.matrix.keysapi import CrossSigningError, NioHttp
from bot.matrix.patches import skip_empty_room_saves

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoggedIn:
    new_device: bool  # no saved credentials: this start made the device
    cross_signing: CrossSigningKeys


async def log_in(
    client: AsyncClient,
    *,
    user_id: str,
    password: str,
    device_name: str,
    display_name: str,
    data_dir: Path,
    store_key: str,
) -> LoggedIn:
    """Log in or restore the saved device, check who the server says the bot is, load
    the crypto store, upload keys, cross-sign and set the display name. Raises
    `StartupError` with the exit code of what disagreed or failed."""
    if client.client_session is None:
        # nio's own session carries a trace hook for upload progress on every request;
        # the bot uploads nothing, and the hooks cost CPU on each sync and send.
        client.client_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=client.config.request_timeout)
        )
    credentials = data_dir / "credentials.json"
    creds = _load_credentials(credentials)
    new_device = False
    if creds is None:
        resp = await client.login(password, device_name=device_name)
        if not isinstance(resp, LoginResponse):
            raise StartupError(f"login failed: {getattr(resp, 'message', resp)}", EXIT_LOGIN)
        _save_credentials(credentials, resp.user_id, resp.device_id, resp.access_token)
        log.info("logged in with a new device")
        new_device = True
    else:
        if creds["user_id"] != user_id:
            raise StartupError(
                f"the data dir belongs to {creds['user_id']}, the config says"
                f" {user_id}: use another data dir or fix bot.user_id",
                EXIT_IDENTITY,
            )
        client.restore_login(creds["user_id"], creds["device_id"], creds["access_token"])
    who = await client.whoami()
    if not isinstance(who, WhoamiResponse):
        code = getattr(who, "status_code", "")
        if code == "M_UNKNOWN_TOKEN":
            raise StartupError(
                "the saved access token was rejected (M_UNKNOWN_TOKEN): the device was"
                " logged out; delete credentials.json in the data dir to log in again",
                EXIT_TOKEN,
            )
        raise StartupError(f"whoami failed: {getattr(who, 'message', who)}", EXIT_LOGIN)
    if who.user_id != user_id or (who.device_id and who.device_id != client.device_id):
        raise StartupError(
            f"identity mismatch: whoami says {who.user_id} device {who.device_id}, the store"
            f" holds {user_id} device {client.device_id}",
            EXIT_IDENTITY,
        )
    if client.olm is None:
        client.load_store()
    skip_empty_room_saves(client)  # login/restore_login load the store too
    if client.should_upload_keys:
        await client.keys_upload()
    keys = await _cross_sign(client, user_id, password, data_dir, store_key)
    await client.set_displayname(display_name)
    return LoggedIn(new_device, keys)


async def _cross_sign(
    client: AsyncClient, user_id: str, password: str, data_dir: Path, store_key: str
) -> CrossSigningKeys:
    """Publish the account's cross-signing keys and sign this device."""
    assert client.olm is not None
    key_file = KeyFile(data_dir / "cross_signing.json", store_key, user_id)
    try:
        keys, report = await ensure_cross_signing(
            NioHttp(client),
            user_id=user_id,
            device_id=client.device_id,
            device_ed25519=client.olm.account.identity_keys["ed25519"],
            key_file=key_file,
            password=password,
        )
    except CrossSigningError as exc:
        raise StartupError(f"cross-signing: {exc}", EXIT_CROSS_SIGNING) from exc
    except NO_ANSWER as exc:
        raise StartupError(
            f"cross-signing: the homeserver did not answer ({type(exc).__name__})",
            EXIT_CROSS_SIGNING,
        ) from exc
    log.info(
        "cross-signing checked",
        extra={
            "new_keys": report.new_keys,
            "uploaded_keys": report.uploaded_keys,
            "password_used": report.password_used,
            "signed_device": report.signed_device,
            "requests": report.requests,
            "ms": round(report.seconds * 1000),
        },
    )
    return keys


def _load_credentials(path: Path) -> dict[str, str] | None:
    try:
        data: dict[str, str] = json.loads(path.read_text())
        return data
    except FileNotFoundError:
        return None


def _save_credentials(path: Path, user_id: str, device_id: str, token: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"user_id": user_id, "device_id": device_id, "access_token": token}, f)
    os.replace(tmp, path)
