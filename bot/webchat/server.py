"""The web chat's listener: the page's static files under a strict CSP, and the JSON API
that gives the page a throw-away account (README, "Web chat", is the contract).

Every response carries the CSP, `Referrer-Policy: no-referrer` and `nosniff`; the page
and the API are `no-store`. Every refusal is `{"error": <code>, "text": <words>}` with the
emergency numbers in the words, in the page's language. The order of the checks on
`POST /api/account` costs the bot least first: the address's rate, the proof of work, a
block on this page's earlier accounts, the global cap, the opening hours and the queue;
only then is an account made. Nothing logged names an address or an account.

The address is the peer's, or behind a reverse proxy listed in `webchat.trusted_proxies`
the last one in `X-Forwarded-For` that is not such a proxy.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import logging
import mimetypes
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from bot.core.events import WebChatter
from bot.core.ids import UserID
from bot.inbox import Inbound
from bot.messages import Texts, fill
from bot.webchat.accounts import Accounts, NotMade
from bot.webchat.guard import CHALLENGE_TTL_S, Browsers, Challenges, RateLimit
from bot.webchat.texts import DEFAULTS, PAGE

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript"}
# Sent gzipped to a browser that accepts it: the crypto's wasm is 7.8 MB, 2.1 MB gzipped.
COMPRESSED = frozenset({".wasm", ".js", ".css", ".html", ".txt"})
SHUTDOWN_S = 3.0
STATUS = {
    "bad_request": 400,
    "proof_failed": 403,
    "rate_limited": 429,
    "full": 503,
    "closed": 503,
    "queue_full": 503,
    "blocked": 403,
    "unavailable": 503,
}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Desk(Protocol):
    """What the account endpoint asks the helpline before it makes an account (read only)."""

    def refusal(self) -> str | None:
        """`closed` or `queue_full` when a conversation could not start now, else None."""

    def opening(self) -> dict[str, int] | None:
        """When the line opens next (`bot.core.hours.opening`), for `refused.closed`."""

    def pseudonym(self, user: UserID) -> str:
        """The block list's keyed hash of `user`."""

    def is_blocked(self, pseudonym: str) -> bool: ...


def csp(homeserver: str, frame_ancestors: tuple[str, ...] = ()) -> str:
    parts = urlsplit(homeserver)
    origin = f"{parts.scheme}://{parts.netloc}"
    policy = (
        f"default-src 'self'; connect-src 'self' {origin}; script-src 'self' 'wasm-unsafe-eval'"
    )
    ancestors = " ".join(frame_ancestors) or "'none'"
    return f"{policy}; frame-ancestors {ancestors}"


class WebChat:
    def __init__(
        self,
        *,
        accounts: Accounts,
        put: Callable[[Inbound], None],
        homeserver: str,
        challenges: Challenges,
        rate: RateLimit,
        max_open: int,
        desk: Desk,
        browsers: Browsers,
        texts: Texts,
        overrides: Mapping[str, Mapping[str, str]],
        languages: tuple[str, ...],
        quick_exit_url: str,
        frame_ancestors: tuple[str, ...] = (),
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        self.accounts = accounts
        self.put = put
        self.homeserver = homeserver
        self.challenges = challenges
        self.rate = rate
        self.max_open = max_open
        self.desk = desk
        self.browsers = browsers
        self.trusted_proxies = trusted_proxies
        self.texts = texts
        self.overrides = overrides
        self.languages = languages
        self.quick_exit_url = quick_exit_url
        self.csp = csp(homeserver, frame_ancestors)
        self._runner: web.AppRunner | None = None
        # Accounts being made: counted against the cap until their row is in (read after
        # the count's await, so requests arriving together cannot all pass the cap).
        self._making = 0
        self._gzipped: dict[Path, asyncio.Future[bytes]] = {}

    # -- the listener -------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4096)
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/api/config", self._config)
        app.router.add_post("/api/challenge", self._challenge)
        app.router.add_post("/api/account", self._account)
        app.router.add_get("/", self._static)
        app.router.add_get(r"/{name:[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?}", self._static)
        return app

    async def start(self, host: str, port: int) -> None:
        # At a stop, a page's request still running gets a moment, not aiohttp's minute.
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        for path in STATIC.rglob("*"):
            if path.suffix in COMPRESSED:
                self._gzip(path)  # ready before the first chatter asks
        log.info("web chat listening", extra={"host": host, "port": port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h["Content-Security-Policy"] = self.csp
        h["Referrer-Policy"] = "no-referrer"
        h["X-Content-Type-Options"] = "nosniff"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        ctype = h.get("Content-Type", "")
        if request.path.startswith("/api/") or ctype.startswith("text/html"):
            h["Cache-Control"] = "no-store"
        else:
            h.setdefault("Cache-Control", "no-cache")

    # -- static files -------------------------------------------------------------------

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "index.html")
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            raise web.HTTPNotFound()
        ctype = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        headers = {"Content-Type": ctype or "application/octet-stream", "Vary": "Accept-Encoding"}
        accepts = request.headers.get("Accept-Encoding", "")
        if path.suffix in COMPRESSED and "gzip" in accepts:
            body = await self._gzip(path)
            return web.Response(body=body, headers={**headers, "Content-Encoding": "gzip"})
        return web.FileResponse(path, headers=headers)

    def _gzip(self, path: Path) -> asyncio.Future[bytes]:
        """The file gzipped, made once (in a thread) and kept: the files never change
        while the bot runs."""
        made = self._gzipped.get(path)
        if made is None:
            data = path.read_bytes()
            made = asyncio.ensure_future(asyncio.to_thread(gzip.compress, data, 9, mtime=0))
            self._gzipped[path] = made
        return made

    # -- the API --------------------------------------------------------------------------

    def _language(self, request: web.Request, asked: Any = None) -> str:
        wanted = [asked] if isinstance(asked, str) else []
        header = request.headers.get("Accept-Language", "")
        wanted += [part.split(";")[0].strip().lower().split("-")[0] for part in header.split(",")]
        return next((w for w in wanted if w in self.languages), self.texts.default_language)

    def text(self, key: str, language: str, **values: str) -> str:
        template = self.overrides.get(language, {}).get(key)
        if template is None:
            fallback = DEFAULTS.get(language) or DEFAULTS["nb"]
            template = fallback.get(key, "")
        emergency = self.texts.template("emergency", language) or ""
        emergency = fill(emergency, {"bot_name": self.texts.bot_name})
        return fill(template, {**values, "emergency": emergency})

    def _refuse(self, code: str, language: str) -> web.Response:
        values = {}
        if code == "closed":  # the bot's own sentence, as a chatter by DM reads it
            values["opens"] = self.texts.opening(self.desk.opening(), language)
        body = {"error": code, "text": self.text(f"refused.{code}", language, **values)}
        return web.json_response(body, status=STATUS[code])

    def address(self, request: web.Request) -> str:
        """The client's address: the peer's, unless the peer is a trusted proxy."""
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")
        hops = [h.strip() for h in forwarded if h.strip()]
        for hop in [peer, *reversed(hops)]:
            try:
                ip = ipaddress.ip_address(hop)
            except ValueError:
                return hop  # not an address: as good a key as any, and never trusted
            if not any(ip in net for net in self.trusted_proxies):
                return hop
        return peer

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "homeserver": self.homeserver,
                "languages": list(self.languages),
                "language": self._language(request),
                "quick_exit_url": self.quick_exit_url,
                "texts": {
                    lang: {key: self.text(key, lang) for key in PAGE} for lang in self.languages
                },
            }
        )

    async def _challenge(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "challenge": self.challenges.issue(),
                "difficulty": self.challenges.difficulty,
                "expires_in": CHALLENGE_TTL_S,
            }
        )

    async def _account(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        language = self._language(request, body.get("language") if isinstance(body, dict) else None)
        if not isinstance(body, dict):
            return self._refuse("bad_request", language)
        challenge, nonce = body.get("challenge"), body.get("nonce")
        browser = body.get("browser", "")
        if not (isinstance(challenge, str) and isinstance(nonce, str)):
            return self._refuse("bad_request", language)
        if not isinstance(browser, str):
            return self._refuse("bad_request", language)
        address = self.address(request)
        if not self.rate.allows(address):
            return self._refuse("rate_limited", language)
        if not self.challenges.redeem(challenge, nonce):
            return self._refuse("proof_failed", language)
        if any(self.desk.is_blocked(p) for p in self.browsers.pseudonyms(browser)):
            return self._refuse("blocked", language)
        if await self.accounts.open_count() + self._making >= self.max_open:
            log.warning("web chat refused an account: the cap is reached")
            return self._refuse("full", language)
        why = self.desk.refusal()
        if why is not None:
            return self._refuse(why, language)
        self.rate.count(address)
        self._making += 1
        try:
            user, password = await self.accounts.make()
        except NotMade:
            return self._refuse("unavailable", language)
        finally:
            self._making -= 1
        self.browsers.remember(browser, self.desk.pseudonym(user))
        self.put(Inbound(WebChatter(user, language)))
        body = {"homeserver": self.homeserver, "user_id": user, "password": password}
        return web.json_response(body, status=201)
