"""Pseudonyms: keeping who someone is from the other side of a conversation.

`scrub` makes a participant's text safe to relay (no reply fallback quoting a Matrix ID,
no Matrix ID of a participant, no matrix.to link); `chatter_hash` lets the bot recognise
a chatter (the block list, the cap per day) without keeping their Matrix ID.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from bot.core.ids import UserID


def chatter_hash(key: bytes, user: UserID) -> str:
    """A keyed hash of a Matrix ID: lets the bot recognise a chatter without keeping the ID."""
    return hmac.new(key, user.encode(), hashlib.sha256).hexdigest()


_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n", re.MULTILINE)
_MATRIX_TO = re.compile(r"https?://matrix\.to/#/[^\s)>\]]+", re.IGNORECASE)


def scrub(body: str, replacements: dict[str, str]) -> str:
    """Make a participant's text safe to show to the other side.

    Drops the reply fallback (it quotes a sender by Matrix ID), and replaces every known
    participant's Matrix ID, and every matrix.to link, with the pseudonym shown instead.
    """
    text = _REPLY_FALLBACK.sub("", body, count=1)
    for real, shown in replacements.items():
        if real:
            text = text.replace(real, shown)
    return _MATRIX_TO.sub("[lenke fjernet / link removed]", text)
