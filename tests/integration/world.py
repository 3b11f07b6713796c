"""A small helpline world for flow tests: the bot in-process, volunteers, a staff room.

`build_world` registers the bot and the volunteers, makes the volunteers' room (the first
volunteer creates it, the bot and the others are invited and join), writes a real YAML
config (any section can be overridden) and starts the bot. Logs are captured exactly as
production writes them, so a test can check they hold no content and no chatter IDs.

The helpers below drive the flows as people do (a chatter writing to the bot, a volunteer
coming on duty or accepting an offer) and wait for what each side decrypts.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.devtools.client import TestClient
from bot.devtools.leaves import LeaveWatcher  # noqa: F401 - the flow tests import it from here
from bot.devtools.runner import InProcessBot, write_config
from bot.devtools.seen import ReceivedMessage
from bot.devtools.synapse import SynapseServer
from bot.devtools.users import RegisteredUser
from bot.logs import Scrub, TextFormatter
from bot.worker.retry import PurgeBackoff

# What the fixtures of the same names give a test.
MakeUser = Callable[..., Awaitable[RegisteredUser]]  # (prefix="user", admin=False, ...)
MakeClient = Callable[..., Awaitable[TestClient]]  # (user_or_prefix=None, *, auto_join, ...)
OpenWorld = Callable[..., Awaitable["World"]]  # (**build_world options)

TIMEOUT = 20.0  # for one step of a flow; a healthy step takes well under a second


@dataclass
class Volunteer:
    alias: str
    user: RegisteredUser
    client: TestClient


@dataclass
class Chatter:
    user: RegisteredUser
    client: TestClient
    room: str  # the private session room the bot made
    welcome: ReceivedMessage
    dm: str = ""  # the DM in which the chatter first wrote to the bot


@dataclass
class World:
    bot: InProcessBot
    bot_user: RegisteredUser
    volunteers: list[Volunteer]
    staff_room: str
    logs: io.StringIO
    _handler: logging.Handler = field(repr=False)
    _old_level: int = field(repr=False)
    supervisors: list[Volunteer] = field(default_factory=list)  # in the room, not members
    admins: list[Volunteer] = field(default_factory=list)  # in the room, not members

    @property
    def bot_id(self) -> str:
        return self.bot_user.user_id

    async def close(self) -> None:
        try:
            if self.bot.task is not None and not self.bot.task.done():
                assert await self.bot.stop() == 0
        finally:
            root = logging.getLogger()
            root.removeHandler(self._handler)
            root.setLevel(self._old_level)


@dataclass
class Staffed:
    """A helpline ready to start: accounts, the volunteers' room and the config file."""

    bot_user: RegisteredUser
    volunteers: list[Volunteer]
    staff_room: str
    config: Path
    supervisors: list[Volunteer] = field(default_factory=list)
    admins: list[Volunteer] = field(default_factory=list)


async def build_world(
    synapse: SynapseServer,
    make_user: MakeUser,
    make_client: MakeClient,
    tmp_path: Path,
    *,
    purge_backoff: PurgeBackoff | None = None,
    **options: Any,
) -> World:
    """`staff_helpline(**options)`, then the bot started in-process, its logs captured.
    `purge_backoff`: a shorter `bot.worker.retry.PurgeBackoff` for the bot."""
    staffed = await staff_helpline(synapse, make_user, make_client, tmp_path, **options)
    bot_user, volunteers, staff_room = staffed.bot_user, staffed.volunteers, staffed.staff_room
    logs, handler, old_level = capture_logs()
    bot = InProcessBot(staffed.config, purge_backoff=purge_backoff)
    world = World(
        bot,
        bot_user,
        volunteers,
        staff_room,
        logs,
        handler,
        old_level,
        staffed.supervisors,
        staffed.admins,
    )
    try:
        await bot.start()
        for v in [*volunteers, *staffed.supervisors, *staffed.admins]:
            await v.client.wait_for_join(staff_room, bot_user.user_id, timeout=TIMEOUT)
    except BaseException:
        await world.close()
        raise
    return world


def capture_logs() -> tuple[io.StringIO, logging.Handler, int]:
    """Capture logs exactly as production writes them (same filter and format), at DEBUG.
    Returns the buffer, the handler and the root logger's old level, to restore."""
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.addFilter(Scrub())
    handler.setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return logs, handler, old_level


async def staff_helpline(
    synapse: SynapseServer,
    make_user: MakeUser,
    make_client: MakeClient,
    tmp_path: Path,
    *,
    aliases: tuple[str, ...] = ("Irene",),
    supervisor_aliases: tuple[str, ...] = (),
    admin_aliases: tuple[str, ...] = (),
    bot_user: RegisteredUser | None = None,
    lobby_rooms: tuple[str, ...] = (),
    max_sessions: int = 1,
    homeserver: str | None = None,
    guests: Sequence[Volunteer] = (),
    volunteer_languages: Mapping[str, str] | None = None,
    **sections: dict[str, Any],
) -> Staffed:
    """Everything `build_world` does before the bot starts, for tests that start the bot
    themselves (as a child process, say). `homeserver`: the URL the bot talks to, when
    not Synapse's own (a fault proxy in front of it); people's clients stay direct.
    `supervisor_aliases`: supervisors (`volunteers.supervisors`), in the volunteers' room
    but not volunteers themselves; `admin_aliases` the same for admins (`admins`).
    `guests`: volunteers made elsewhere (on another server), listed after the others and
    invited like them. `volunteer_languages`: alias -> a volunteer's own language."""
    bot_user = bot_user or await make_user("bot")
    volunteers: list[Volunteer] = []
    for alias in aliases:
        user = await make_user(alias.lower())
        volunteers.append(Volunteer(alias, user, await make_client(user)))
    volunteers.extend(guests)
    supervisors: list[Volunteer] = []
    for alias in supervisor_aliases:
        user = await make_user(alias.lower())
        supervisors.append(Volunteer(alias, user, await make_client(user)))
    admins: list[Volunteer] = []
    for alias in admin_aliases:
        user = await make_user(alias.lower())
        admins.append(Volunteer(alias, user, await make_client(user)))
    first = volunteers[0].client
    others = [*volunteers[1:], *supervisors, *admins]
    staff_room = await first.create_encrypted_room(
        invite=[bot_user.user_id, *(v.user.user_id for v in others)], name="Vakt"
    )
    for v in others:
        await v.client.wait_for_invite(room_id=staff_room, timeout=TIMEOUT)
        await v.client.join(staff_room)
    sections.setdefault("privacy", {}).setdefault("purge_after", "2s")
    extra: dict[str, Any] = dict(sections)  # config sections only, never write_config's own
    config = write_config(
        tmp_path / "config.yaml",
        homeserver=homeserver or synapse.base_url,
        bot_user=bot_user.user_id,
        bot_password=bot_user.password,
        data_dir=tmp_path / "data",
        staff_room=staff_room,
        volunteers=[
            {
                "user_id": v.user.user_id,
                "alias": v.alias,
                "languages": ["nb", "en"],
                "max_sessions": max_sessions,
                **(
                    {"language": volunteer_languages[v.alias]}
                    if v.alias in (volunteer_languages or {})
                    else {}
                ),
            }
            for v in volunteers
        ],
        supervisors=[s.user.user_id for s in supervisors],
        lobby_rooms=list(lobby_rooms),
        admins=[a.user.user_id for a in admins],
        **extra,
    )
    return Staffed(bot_user, volunteers, staff_room, config, supervisors, admins)


async def next_from_bot(
    w: World,
    client: TestClient,
    room: str,
    predicate: Callable[[ReceivedMessage], bool] | None = None,
    timeout: float = TIMEOUT,
) -> ReceivedMessage:
    """The oldest not yet read message from the bot in `room`, as `client` decrypted it."""
    msg = await client.wait_for_message(
        room_id=room, sender=w.bot_id, predicate=predicate, timeout=timeout
    )
    assert msg.decrypted, f"{msg.event_id} arrived unencrypted"
    return msg


async def open_conversation(
    w: World, make_user: MakeUser, make_client: MakeClient, first_words: str = "hei"
) -> tuple[Chatter, str]:
    """The first volunteer on duty, a chatter by DM, the offer accepted; the held first
    words have reached the volunteer and the chatter knows who came. Returns the chatter
    and the volunteer's room."""
    v = w.volunteers[0]
    await go_on_duty(w, v)
    chatter = await chatter_by_dm(w, make_user, make_client, first_words)
    vroom, _ = await accept_offer(w, v)
    held = await next_from_bot(w, v.client, vroom)
    assert held.body == first_words
    assert held.msgtype == "m.text"
    joined = await next_from_bot(w, chatter.client, chatter.room)
    assert v.alias in (joined.body or "")
    return chatter, vroom


async def go_on_duty(w: World, v: Volunteer) -> None:
    await v.client.send_text(w.staff_room, "!på")

    def on_duty(m: ReceivedMessage) -> bool:
        body = m.body or ""
        return v.alias in body and ("på vakt" in body or "on duty" in body)

    reply = await next_from_bot(w, v.client, w.staff_room, on_duty)
    assert reply.msgtype == "m.notice"


async def chatter_by_dm(
    w: World, make_user: MakeUser, make_client: MakeClient, first_words: str
) -> Chatter:
    """A chatter writes to the bot in a DM, accepts the invite to the session room, and
    reads the welcome there."""
    user = await make_user("chatter")
    client = await make_client(user)
    dm = await client.create_encrypted_room(invite=[w.bot_id], is_direct=True)
    await client.wait_for_join(dm, w.bot_id, timeout=TIMEOUT)
    await client.send_text(dm, first_words)
    invite = await client.wait_for_invite(timeout=TIMEOUT)
    assert invite.room_id != dm
    assert invite.sender == w.bot_id
    await client.join(invite.room_id)
    welcome = await next_from_bot(w, client, invite.room_id)
    assert welcome.msgtype == "m.notice"
    assert "113" in (welcome.body or "")
    return Chatter(user, client, invite.room_id, welcome, dm)


async def accept_offer(w: World, v: Volunteer) -> tuple[str, ReceivedMessage]:
    """The volunteer's next offer: an invite from the bot; joining accepts it. Returns the
    room and the bot's introduction there."""
    offer = await v.client.wait_for_invite(timeout=TIMEOUT)
    assert offer.sender == w.bot_id
    await v.client.join(offer.room_id)
    intro = await next_from_bot(w, v.client, offer.room_id)
    assert intro.msgtype == "m.notice"
    assert "Chatter #" in (intro.body or "")
    return offer.room_id, intro


def assert_logs_clean(w: World, *secrets: str) -> None:
    captured = w.logs.getvalue()
    assert "serving" in captured
    for secret in secrets:
        assert secret not in captured, "a chatter's words or ID reached the logs"
