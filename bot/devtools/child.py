"""`python -m bot.devtools.child --config FILE [--log-level L] [--purge-pause-after STEP]`:
the bot's `run` for a test's child process, with the test hooks that the production
command line does not offer (`SubprocessBot.start` passes them).

Only the hooks are added: the config is loaded and the service run as `helpline-bot run`
does it (`bot.app.run`). Production code reads no test setting from the environment;
the hooks reach it as arguments from here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot.config import load_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.devtools.child")
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--purge-pause-after", default=None, metavar="STEP")
    args = parser.parse_args(argv)
    from bot import app  # as `helpline-bot run` does: the service's imports after the parse

    return app.run(load_config(args.config), args, purge_pause_after=args.purge_pause_after)


if __name__ == "__main__":
    sys.exit(main())
