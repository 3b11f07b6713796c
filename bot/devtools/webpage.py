"""The web chat's page, played in Python: what `webchat/src/app.js` asks the bot's web
chat API before it logs in (a challenge, the proof of work solved, an account). For the
demo's scripted web chatter and the tests; the browser test drives the real page.

A `WebPage` has its own random token, as a page in a tab has (it is how the bot
recognises a blocked chatter who starts over in the same page).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from typing import Any

import aiohttp

from bot.webchat.guard import leading_zero_bits


def solve(challenge: str, difficulty: int) -> str:
    """A nonce such that sha256(challenge + nonce) starts with `difficulty` zero bits."""
    for n in itertools.count():
        nonce = str(n)
        if leading_zero_bits(hashlib.sha256((challenge + nonce).encode()).digest()) >= difficulty:
            return nonce
    raise AssertionError("unreachable")


class WebPage:
    def __init__(self, base: str, *, browser: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.browser = browser if browser is not None else secrets.token_hex(16)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.base + path) as resp:
            return resp.status, await resp.json()

    async def post(self, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.base + path, json=body) as resp:
            return resp.status, await resp.json()

    async def account(
        self, *, nonce: str | None = None, language: str = "nb"
    ) -> tuple[int, dict[str, Any]]:
        """`(201, {homeserver, user_id, password})`, or a refusal `(status, {error, text})`."""
        status, ch = await self.post("/api/challenge")
        if status != 200:
            return status, ch
        found = nonce if nonce is not None else solve(ch["challenge"], ch["difficulty"])
        body = {
            "challenge": ch["challenge"],
            "nonce": found,
            "language": language,
            "browser": self.browser,
        }
        return await self.post("/api/account", body)

    async def close(self) -> None:
        await self.http.close()
