"""Kill the bot with SIGKILL mid-conversation and start it again.

What must hold: no message lost (what the chatter wrote while the bot was down arrives),
none relayed twice, in order; a timer that came due while the bot was down fires at once
on start; the queue and the conversation carry on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.runner import SubprocessBot, write_config
from bot.devtools.users import admin_request, q
from tests.integration.waits import bot_caught_up

pytestmark = pytest.mark.timeout(240)


async def from_bot(client, room, bot_id, timeout=30):
    return await client.wait_for_message(room_id=room, sender=bot_id, timeout=timeout)


async def test_sigkill_mid_conversation(synapse, admin, make_user, make_client, tmp_path: Path):
    bot_user = await make_user("bot")
    vol_user = await make_user("vol")
    volunteer = await make_client(vol_user)
    staff_room = await volunteer.create_encrypted_room(invite=[bot_user.user_id])
    config = write_config(
        tmp_path / "config.yaml",
        homeserver=synapse.base_url,
        bot_user=bot_user.user_id,
        bot_password=bot_user.password,
        data_dir=tmp_path / "data",
        staff_room=staff_room,
        volunteers=[{"user_id": vol_user.user_id, "alias": "Vera", "languages": ["nb"]}],
        limits={"max_duration": "40s", "warn_before": ["20s"], "max_extension": "1m"},
        privacy={"purge_after": "2s"},
    )
    bot = SubprocessBot(config, tmp_path / "bot.log")
    bot.start()
    try:
        await bot.wait_ready()
        await volunteer.wait_for_join(staff_room, bot_user.user_id, timeout=30)
        await volunteer.send_text(staff_room, "!on")
        await from_bot(volunteer, staff_room, bot_user.user_id)

        chatter = await make_client(await make_user("chatter"))
        dm = await chatter.create_encrypted_room(invite=[bot_user.user_id], is_direct=True)
        await chatter.wait_for_join(dm, bot_user.user_id, timeout=30)
        await chatter.send_text(dm, "hei")
        session_room = (await chatter.wait_for_invite(timeout=30)).room_id
        await chatter.join(session_room)
        await from_bot(chatter, session_room, bot_user.user_id)  # welcome
        offer_room = (await volunteer.wait_for_invite(timeout=30)).room_id
        await volunteer.join(offer_room)
        accepted_at = time.monotonic()
        await from_bot(volunteer, offer_room, bot_user.user_id)  # intro
        assert (await from_bot(volunteer, offer_room, bot_user.user_id)).body == "hei"
        await from_bot(chatter, session_room, bot_user.user_id)  # "Vera is here"

        await chatter.send_text(session_room, "before the crash")
        got = await from_bot(volunteer, offer_room, bot_user.user_id)
        assert got.body == "before the crash"

        # SIGKILL: no shutdown code runs.
        bot.kill()
        written = [f"while down {i}" for i in range(3)]
        for body in written:
            await chatter.send_text(session_room, body)
        # Let the 20 s warning come due while the bot is down.
        await asyncio.sleep(max(0.0, accepted_at + 21 - time.monotonic()))

        bot.start()
        await bot.wait_ready()
        restarted_at = time.monotonic()

        # Every message written while down arrives once, in order; the warning that came
        # due meanwhile fires on start, once what was written before it is relayed.
        got = [await from_bot(volunteer, offer_room, bot_user.user_id) for _ in range(4)]
        assert [m.body for m in got[:3]] == written
        assert got[3].msgtype == "m.notice"
        warning_c = await from_bot(chatter, session_room, bot_user.user_id)
        assert warning_c.msgtype == "m.notice"
        assert time.monotonic() - restarted_at < 15

        # The conversation goes on after the restart.
        await volunteer.send_text(offer_room, "still here")
        assert (await from_bot(chatter, session_room, bot_user.user_id)).body == "still here"

        # Nothing was relayed twice: the server's own record of the volunteer's room.
        _, body = await admin_request(
            synapse.base_url,
            admin.access_token,
            "GET",
            f"/_synapse/admin/v1/rooms/{q(offer_room)}/messages",
            params={"dir": "f", "limit": "200"},
        )
        from_bot_count = sum(
            1
            for e in body["chunk"]
            if e["sender"] == bot_user.user_id and e["type"] == "m.room.encrypted"
        )
        # intro, "hei", "before the crash", 3 while down, the warning
        assert from_bot_count == 7, from_bot_count

        # The maximum duration (40 s) still ends the conversation, with closing notices.
        closing = await from_bot(chatter, session_room, bot_user.user_id, timeout=40)
        assert "113" in closing.body
        assert bot.terminate() == 0
    finally:
        bot.kill()


# --------------------------------------------------------------------------------------
# found by the kill -9 soak (bench/soak.py)


class HoldingProxy:
    """A loopback reverse proxy in front of Synapse for the bot alone. With `hold_create`
    set, a `createRoom` request goes through to Synapse (the room is made, the chatter
    invited) but its answer is kept from the bot until `release` is set: a slow answer,
    or, with a SIGKILL meanwhile, the state a crash leaves when it comes between the
    server making the room and the bot recording it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold_create = False
        self.hold_invitee: str | None = None  # hold only a createRoom inviting this user
        self.held = asyncio.Event()  # a createRoom answer is being kept
        self.release = asyncio.Event()  # give it to the bot now
        self.url = ""
        self._runner = None
        self._session = None

    async def start(self) -> None:
        import aiohttp
        from aiohttp import web

        from bot.devtools.synapse import free_port

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )

        async def handle(request: web.Request) -> web.StreamResponse:
            hop = {"host", "content-length", "transfer-encoding", "connection"}
            headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
            data = await request.read()
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=data,
            ) as resp:
                body = await resp.read()
                out = {k: v for k, v in resp.headers.items() if k.lower() not in hop}
            invitee = self.hold_invitee
            if request.path.endswith("/createRoom") and (
                self.hold_create or (invitee is not None and invitee.encode() in data)
            ):
                self.held.set()
                await self.release.wait()
            return web.Response(status=resp.status, body=body, headers=out)

        app = web.Application(client_max_size=2**24)
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


@dataclass
class OnDuty:
    """A helpline with one volunteer on duty and the bot as a child process."""

    bot: SubprocessBot
    bot_id: str
    volunteer: Any
    staff_room: str


async def bot_with_a_volunteer_on_duty(
    homeserver: str, make_user: Any, make_client: Any, tmp_path: Path, **sections: Any
) -> OnDuty:
    """The volunteers' room, a config for `homeserver` (the test Synapse, or a proxy in
    front of it), the bot started, and its one volunteer on duty."""
    bot_user = await make_user("bot")
    vol_user = await make_user("vol")
    volunteer = await make_client(vol_user)
    staff_room = await volunteer.create_encrypted_room(invite=[bot_user.user_id])
    sections.setdefault("privacy", {"purge_after": "2s"})
    config = write_config(
        tmp_path / "config.yaml",
        homeserver=homeserver,
        bot_user=bot_user.user_id,
        bot_password=bot_user.password,
        data_dir=tmp_path / "data",
        staff_room=staff_room,
        volunteers=[{"user_id": vol_user.user_id, "alias": "Vera", "languages": ["nb"]}],
        **sections,
    )
    bot = SubprocessBot(config, tmp_path / "bot.log")
    bot.start()
    try:
        await bot.wait_ready()
        await volunteer.wait_for_join(staff_room, bot_user.user_id, timeout=30)
        await volunteer.send_text(staff_room, "!on")
        await from_bot(volunteer, staff_room, bot_user.user_id)
    except BaseException:
        bot.kill()
        raise
    return OnDuty(bot, bot_user.user_id, volunteer, staff_room)


async def welcomed_chatter(make_user: Any, make_client: Any, bot_id: str) -> tuple[Any, str]:
    """A chatter who wrote "hei" to the bot in a DM, joined the private room and read the
    welcome there; with that room."""
    chatter = await make_client(await make_user("chatter"))
    dm = await chatter.create_encrypted_room(invite=[bot_id], is_direct=True)
    await chatter.wait_for_join(dm, bot_id, timeout=30)
    await chatter.send_text(dm, "hei")
    session_room = (await chatter.wait_for_invite(timeout=30)).room_id
    await chatter.join(session_room)
    await from_bot(chatter, session_room, bot_id)  # welcome
    return chatter, session_room


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "slow-answer"])
async def test_a_join_before_the_room_is_recorded_still_welcomes_the_chatter(
    synapse, admin, make_user, make_client, tmp_path: Path, kill: bool
):
    """Found by the kill -9 soak: a chatter's join synced before the bot has recorded the
    session room it made (its createRoom answer slow, or the bot killed between Synapse
    making the room and the bot storing it) was dropped; the chatter was never welcomed
    nor offered, and the queue timeout ended the conversation without a word to them."""
    proxy = HoldingProxy(synapse.base_url)
    await proxy.start()
    w = await bot_with_a_volunteer_on_duty(
        proxy.url, make_user, make_client, tmp_path, limits={"queue_max_wait": "40s"}
    )
    bot, volunteer, bot_id = w.bot, w.volunteer, w.bot_id
    try:
        chatter = await make_client(await make_user("chatter"))
        dm = await chatter.create_encrypted_room(invite=[bot_id], is_direct=True)
        await chatter.wait_for_join(dm, bot_id, timeout=30)
        proxy.hold_create = True
        await chatter.send_text(dm, "hei")
        # Synapse made the session room and invited the chatter; the bot has not heard.
        await asyncio.wait_for(proxy.held.wait(), 30)
        session_room = (await chatter.wait_for_invite(timeout=30)).room_id
        await chatter.join(session_room)
        # The bot's sync delivers the join and its worker takes it, before the answer.
        await bot_caught_up(volunteer, w.staff_room, bot_id)

        proxy.hold_create = False
        if kill:
            bot.kill()  # SIGKILL before the room was recorded
            bot.start()
            await bot.wait_ready()
        else:
            proxy.release.set()  # the answer comes, late

        # The room is recorded (after a kill: found again and reused, as the bot's log
        # says), the chatter is in it: they must be welcomed and offered to the volunteer.
        welcome = await from_bot(chatter, session_room, bot_id, timeout=30)
        assert "113" in (welcome.body or "")
        offer_room = (await volunteer.wait_for_invite(timeout=30)).room_id
        await volunteer.join(offer_room)
        await from_bot(volunteer, offer_room, bot_id)  # intro
        assert (await from_bot(volunteer, offer_room, bot_id)).body == "hei"
    finally:
        bot.kill()
        proxy.release.set()
        await proxy.stop()


async def test_a_volunteer_join_before_the_offer_room_is_recorded_accepts_the_offer(
    synapse, admin, make_user, make_client, tmp_path: Path
):
    """The same for a volunteer: a join to an offer room synced before the bot recorded
    the room was dropped, the offer lapsed and counted against them."""
    proxy = HoldingProxy(synapse.base_url)
    await proxy.start()
    w = await bot_with_a_volunteer_on_duty(proxy.url, make_user, make_client, tmp_path)
    bot, volunteer, bot_id = w.bot, w.volunteer, w.bot_id
    try:
        proxy.hold_invitee = volunteer.user_id  # the offer room's answer comes late
        await welcomed_chatter(make_user, make_client, bot_id)
        await asyncio.wait_for(proxy.held.wait(), 30)
        offer_room = (await volunteer.wait_for_invite(timeout=30)).room_id
        await volunteer.join(offer_room)
        # The bot's sync delivers the join and its worker takes it, before the answer.
        await bot_caught_up(volunteer, w.staff_room, bot_id)
        proxy.hold_invitee = None
        proxy.release.set()

        # Within the default 90 s offer timeout: the join accepted the offer.
        await from_bot(volunteer, offer_room, bot_id, timeout=30)  # intro
        assert (await from_bot(volunteer, offer_room, bot_id)).body == "hei"
    finally:
        bot.kill()
        proxy.release.set()
        await proxy.stop()


async def test_what_was_written_before_the_end_is_relayed_before_the_end(
    synapse, admin, make_user, make_client, tmp_path: Path
):
    """Found by the kill -9 soak: the bot was down when a conversation's maximum
    duration came; on start the overdue timer fired before the first sync had replayed
    what the chatter wrote before the end, and those last words were never relayed. The
    timers now wait for the first sync."""
    w = await bot_with_a_volunteer_on_duty(
        synapse.base_url,
        make_user,
        make_client,
        tmp_path,
        limits={"max_duration": "20s", "warn_before": [], "max_extension": "1m"},
        privacy={"purge_after": "1m"},
    )
    bot, volunteer, bot_id = w.bot, w.volunteer, w.bot_id
    try:
        chatter, session_room = await welcomed_chatter(make_user, make_client, bot_id)
        offer_room = (await volunteer.wait_for_invite(timeout=30)).room_id
        await volunteer.join(offer_room)
        accepted_at = time.monotonic()
        await from_bot(volunteer, offer_room, bot_id)  # intro
        assert (await from_bot(volunteer, offer_room, bot_id)).body == "hei"

        bot.kill()
        last_words = ["takk for at du hørte på meg", "ha det"]
        for body in last_words:
            await chatter.send_text(session_room, body)
        # The maximum duration (20 s) comes while the bot is down.
        await asyncio.sleep(max(0.0, accepted_at + 22 - time.monotonic()))
        bot.start()
        await bot.wait_ready()

        got = []
        while not got or got[-1].msgtype != "m.notice":
            got.append(await from_bot(volunteer, offer_room, bot_id))
        assert [m.body for m in got[:-1]] == last_words  # then the closing notice
    finally:
        bot.kill()
