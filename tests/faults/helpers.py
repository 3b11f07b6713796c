"""What the fault tests share: request patterns for the proxy. The check that what a
chatter wrote reached the volunteer once each, in order, is the integration layer's
(`tests.integration.waits`), named here too for the tests that import it from here."""

from __future__ import annotations

import re
from urllib.parse import quote

from tests.integration.waits import assert_relayed_once_in_order
from tests.integration.world import World

__all__ = ["SEND", "SYNC", "assert_relayed_once_in_order", "bot_alive", "send_into"]

# Request paths, as the proxy sees them.
SYNC = r"/_matrix/client/[^/]+/sync(?:\?|$)"
SEND = r"/_matrix/client/[^/]+/rooms/[^/]+/send/"  # not /sendToDevice/: keys still flow


def send_into(room: str) -> str:
    """Sends into `room` only, however the client quoted its ID in the path."""
    forms = sorted({room, quote(room, safe=""), quote(room, safe="!:")})
    return r"/_matrix/client/[^/]+/rooms/(?:" + "|".join(map(re.escape, forms)) + r")/send/"


def bot_alive(w: World) -> bool:
    return w.bot.task is not None and not w.bot.task.done()
