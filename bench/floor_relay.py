"""The floor under the bot's CPU per relayed message: a relay with nothing but Matrix I/O.

    python -m bench.floor_relay HOMESERVER USER PASSWORD DATA_DIR SOURCE_ROOM TARGET_ROOM

It uses the bot's own Matrix connection (`bot.matrix.connection.Connection`: login,
cross-signing, the sync filter, the compiled schema checks, translation into inputs) and,
for every text message in SOURCE_ROOM, sends the same text to TARGET_ROOM with nio's
`room_send`. Nothing else: no core, no database, no outbox, no trust decisions (nio's
`ignore_unverified_devices`), no pseudonyms. Invites are accepted. It prints "serving"
once the first sync is done, and runs until SIGTERM.

bench/relay_latency.py runs it as a third leg: what it costs per message is what any bot
built on this Matrix stack (nio, aiohttp, vodozemac) pays to receive and send one message;
the bot's CPU minus this floor is what the bot's own logic costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from pathlib import Path

from bot.core.events import Message
from bot.inbox import Inbound
from bot.matrix.connection import Connection


async def relay(
    homeserver: str, user: str, password: str, data_dir: Path, source: str, target: str
) -> None:
    outbox: asyncio.Queue[str] = asyncio.Queue()

    def enqueue(item: object) -> None:
        inp = item.input if isinstance(item, Inbound) else None
        if isinstance(inp, Message) and inp.room == source:
            outbox.put_nowait(inp.body)

    conn = Connection(
        homeserver=homeserver,
        user_id=user,
        password=password,
        device_name="floor relay",
        display_name="Floor",
        data_dir=data_dir,
        store_key=secrets.token_urlsafe(24),
        enqueue=enqueue,
    )
    client = conn.client

    def on_invite(room: str, inviter: str, is_direct: bool) -> None:
        asyncio.get_running_loop().create_task(client.join(room))

    conn.on_invite = on_invite  # type: ignore[assignment]
    await conn.login()

    async def send() -> None:
        while True:
            body = await outbox.get()
            await client.room_send(
                target,
                "m.room.message",
                {"msgtype": "m.text", "body": body},
                ignore_unverified_devices=True,
            )

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, conn.stop)
    sender = loop.create_task(send())
    syncing = loop.create_task(conn.sync_loop(None))
    while conn.syncs == 0 and not syncing.done():
        await asyncio.sleep(0.05)
    print("serving", flush=True)
    try:
        await syncing
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        await client.close()


def main(argv: list[str]) -> int:
    homeserver, user, password, data_dir, source, target = argv
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    asyncio.run(relay(homeserver, user, password, Path(data_dir), source, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
