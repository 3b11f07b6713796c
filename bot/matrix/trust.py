"""Which devices get the room keys: a named policy, never a blanket ignore.

`encryption.trust` in the config chooses the policy:
- `all_devices`: every device of every room member is trusted (verified in nio's store)
  before a send. For old clients and tests; it is what "ignore unverified devices" does,
  but chosen by name in the config, not hidden in a send call.
- `cross_signed`: Element's rule (MSC4153): only devices their owner has cross-signed.
  Its implementation arrives with the cross-signing work; until then the bot refuses to
  start with it rather than pretend.
"""

from __future__ import annotations

from typing import Protocol

from nio import AsyncClient


class TrustPolicy(Protocol):
    name: str

    async def prepare(self, client: AsyncClient, room_id: str) -> None:
        """Decide every member device's trust before a send into `room_id`."""


class AllDevices:
    name = "all_devices"

    async def prepare(self, client: AsyncClient, room_id: str) -> None:
        room = client.rooms.get(room_id)
        if room is None or client.olm is None:
            return
        if client.should_query_keys:
            await client.keys_query()
        for user in room.users:
            for device in client.device_store.active_user_devices(user):
                if not device.verified and not device.blacklisted:
                    client.verify_device(device)


class TrustNotAvailable(Exception):
    pass


def policy(name: str) -> TrustPolicy:
    if name == "all_devices":
        return AllDevices()
    raise TrustNotAvailable(
        f"encryption.trust: {name!r} needs cross-signing, which this version does not have"
        " yet; set encryption.trust: all_devices"
    )
