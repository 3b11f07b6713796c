"""nio's crypto store as the bot runs it: SQLite only, device trust in memory.

nio's default store (`DefaultStore`) keeps every device's trust in plaintext files beside
its database, one line per device ("@user:hs DEVICE ed25519 KEY"), and never removes a
line: every chatter the bot ever shared a key with would stay named there. `SqliteStore`
keeps trust in its database instead, but the bot does not need trust to persist at all:
the trust policy (`bot/matrix/trust.py`) decides every member device's trust again
before each send (`prepare`), from `/keys/query` and the pinned identities, and checks a
staff sender's device itself (`vouches`). So this store keeps trust only on the device
objects in memory; after a start every device is "unset" until the policy decides.

Everything else (the Olm account, Olm and Megolm sessions, device keys, key requests) is
nio's own SQLite database, unchanged: a data dir made with `DefaultStore` opens with this
store as it is, with the same device, identity and Olm account. Its old trust files are
overwritten and removed when the store opens (`remove_trust_files`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from nio.crypto import OlmDevice, TrustState
from nio.store import MatrixStore

log = logging.getLogger(__name__)

TRUST_FILE_SUFFIXES = (".trusted_devices", ".blacklisted_devices", ".ignored_devices")


def remove_trust_files(store_dir: Path) -> int:
    """Overwrite with zeros, then delete, the trust files `DefaultStore` left in
    `store_dir`; returns how many there were. (On a copy-on-write or journalling file
    system the overwrite is best effort; the file itself is gone either way.)"""
    removed = 0
    for path in sorted(store_dir.iterdir()) if store_dir.is_dir() else []:
        if not path.name.endswith(TRUST_FILE_SUFFIXES) or not path.is_file():
            continue
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
        removed += 1
    if removed:
        log.info("old device trust files removed", extra={"files": removed})
    return removed


@dataclass
class BotStore(MatrixStore):
    """`MatrixStore` (nio's SQLite tables) with device trust kept in memory only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        remove_trust_files(Path(self.store_path))

    # Each method answers as nio's stores do: True if the state changed.

    def _set(self, device: OlmDevice, state: TrustState) -> bool:
        if device.trust_state == state:
            return False
        device.trust_state = state
        return True

    def _unset(self, device: OlmDevice, state: TrustState) -> bool:
        if device.trust_state != state:
            return False
        device.trust_state = TrustState.unset
        return True

    def verify_device(self, device: OlmDevice) -> bool:
        return self._set(device, TrustState.verified)

    def unverify_device(self, device: OlmDevice) -> bool:
        return self._unset(device, TrustState.verified)

    def blacklist_device(self, device: OlmDevice) -> bool:
        return self._set(device, TrustState.blacklisted)

    def unblacklist_device(self, device: OlmDevice) -> bool:
        return self._unset(device, TrustState.blacklisted)

    def ignore_device(self, device: OlmDevice) -> bool:
        return self._set(device, TrustState.ignored)

    def unignore_device(self, device: OlmDevice) -> bool:
        return self._unset(device, TrustState.ignored)

    def ignore_devices(self, devices: list[OlmDevice]) -> None:
        for device in devices:
            device.trust_state = TrustState.ignored

    def is_device_verified(self, device: OlmDevice) -> bool:
        return bool(device.trust_state == TrustState.verified)

    def is_device_blacklisted(self, device: OlmDevice) -> bool:
        return bool(device.trust_state == TrustState.blacklisted)

    def is_device_ignored(self, device: OlmDevice) -> bool:
        return bool(device.trust_state == TrustState.ignored)
