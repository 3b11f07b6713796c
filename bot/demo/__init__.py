"""`helpline-bot demo`: the helpline on this machine, ready for Element, in one command.

A throw-away Synapse on 127.0.0.1 (SQLite, data in ``./.demo``), demo accounts with
printed passwords, the bot's rate-limit override, the volunteers' room and a lobby room,
a generated config and the bot, all set up by :mod:`bot.demo.site`. Ctrl-C (or SIGTERM)
stops the bot, then Synapse, by PID. ``--simulate`` then plays a scripted conversation
(:mod:`bot.demo.simulate`) in a separate, always fresh folder and exits.

Needs the ``demo`` extra (matrix-synapse); without it, one line says how to install it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import signal
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("synapse") is None:
        print(
            "helpline-bot demo needs Synapse: pip install 'helpline-bot[demo]' "
            "(or run ./demo.sh, which does it for you)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.simulate:
        from bot.demo.simulate import simulate

        return asyncio.run(simulate(Path(args.dir) / "simulate"))
    return asyncio.run(serve(args))


async def serve(args: argparse.Namespace) -> int:
    from bot.demo.site import DemoError, DemoSite

    site = DemoSite(Path(args.dir), port=args.port, say=_note)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    try:
        setup = asyncio.create_task(site.up(fresh=args.fresh))
        await asyncio.wait({setup, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not setup.done():
            setup.cancel()
            _note("stopped during setup")
            return EXIT_OK
        try:
            setup.result()
        except DemoError as exc:
            print(f"helpline-bot demo: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(welcome(site), flush=True)
        while not stop.is_set():
            problem = site.alive()
            if problem is not None:
                print(f"helpline-bot demo: {problem}", file=sys.stderr)
                return EXIT_FAILED
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        _note("stopping")
        return EXIT_OK
    finally:
        stopping.cancel()
        await site.down()


def _note(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def welcome(site: object) -> str:
    from bot.demo.site import DemoSite

    assert isinstance(site, DemoSite)
    assert site.state is not None
    s = site.state
    people = sorted(
        (a for a in s.accounts.values() if a.role in ("chatter", "volunteer", "supervisor")),
        key=lambda a: ("chatter", "volunteer", "supervisor").index(a.role),
    )
    width = max(len(a.user_id) for a in people)
    rows = "\n".join(
        f"    {a.role:<10}  {a.user_id:<{width}}  password: {a.password}" for a in people
    )
    t = site.timings
    how = "reused" if site.reused else "new"
    return f"""
helpline-bot demo is ready ({how}, {t.get("total", 0):.1f} s). Data in {site.root}

  Homeserver URL for Element:  {site.base_url}
    Element Desktop: on the sign-in screen, Edit the homeserver and enter this URL.
    Element Web: a self-hosted Element Web (see docker/) or any Element Web your browser
    lets talk to http://127.0.0.1.

  Web chat (no account, no app: as most chatters will come):  {site.web_url}
    Open it in a browser, press "Start chat"; a volunteer on duty gets the offer.

  Accounts (username and password on the sign-in screen):
{rows}
    bot         {s.bot.user_id}  (the bot itself; do not log in as it)

  Try it, with two Element sessions (two browser profiles, or desktop + web):
    1. As a volunteer (irene): open the room "Vakt (demo)" and write !på (or !on).
    2. As the chatter: start a chat with {s.bot.user_id} and write anything,
       or write in the public room {s.lobby_alias}.
    3. The volunteer gets an invite: accept it, and you are talking through the bot.
       Either side ends with !slutt (or !end); the rooms are purged 30 s later.

  The bot: log {site.bot_log}
           health http://127.0.0.1:{site.http_port}/healthz
           metrics http://127.0.0.1:{site.http_port}/metrics
  Config: {site.config_path} (generated; the passwords are in {site.state_path})

Ctrl-C stops the bot and Synapse. Run again to come back to the same demo; --fresh
starts a new one.
"""
