"""Admin commands for the identity pins (`helpline-bot identities`, `reset-identity`).

The bot pins each user's cross-signing master key the first time it sees it. A
volunteer's or supervisor's new master key is not trusted until an admin resets the pin
here, after checking with the person that they set up their encryption again themselves
(a new phone with no backup, "reset my identity" in Element). Otherwise someone who took
over the account could read along. Resetting works while the bot runs: it reads the pin
from the database before each send.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bot.config import Config
from bot.storage.db import open_database
from bot.storage.pins import Pins, kept


def _staff(config: Config) -> set[str]:
    return {m.user_id for m in config.volunteers.members} | set(config.volunteers.supervisors)


def reset(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_reset(config, str(args.user)))


async def _reset(config: Config, user: str) -> int:
    staff = user in _staff(config) or user == config.bot.user_id
    subject = kept(user, staff, config.block_key)
    db = await open_database(Path(config.storage.data_dir) / "helpline.db")
    try:
        pins = Pins(db)
        pin = await pins.get(subject)
        if pin is None:
            print(f"{user}: no pinned identity; the next one seen will be trusted")
            return 0
        await pins.reset(subject)
    finally:
        await db.close()
    if pin.changed_to:
        print(f"{user}: the new identity {pin.changed_to} will be trusted from the next message")
    else:
        print(f"{user}: pin {pin.master_key} forgotten; the next identity seen will be trusted")
    return 0


def list_pins(config: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_list(config))


async def _list(config: Config) -> int:
    db = await open_database(Path(config.storage.data_dir) / "helpline.db")
    try:
        pins = await Pins(db).staff_pins()
    finally:
        await db.close()
    if not pins:
        print("no staff identities pinned yet")
    for pin in pins:
        line = f"{pin.subject}  master key {pin.master_key}"
        if pin.changed_to:
            line += f"  CHANGED to {pin.changed_to}: not trusted until reset-identity"
        print(line)
    return 0
