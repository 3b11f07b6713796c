"""A loopback HTTP proxy in front of Synapse that a test drives.

Requests pass through unchanged, but for paths under a prefix in `failing`, which get a
502 with an HTML body, as a reverse proxy answers when the server behind it is away. With
it, "the admin API is down for minutes" is an ordinary test. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from yarl import URL

from bot.devtools.synapse import free_port

# Hop-by-hop headers, and those aiohttp sets itself for the body it sends.
_DROP = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.failing: set[str] = set()  # path prefixes answered with 502
        self.refused = 0  # requests answered with 502 so far
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if any(request.path.startswith(prefix) for prefix in self.failing):
            self.refused += 1
            return web.Response(
                status=502, text="<html>502 Bad Gateway</html>", content_type="text/html"
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),
            data=await request.read(),
            headers=headers,
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _DROP}
            if "Content-Encoding" in resp.headers:
                out["Content-Encoding"] = resp.headers["Content-Encoding"]
            return web.Response(status=resp.status, body=body, headers=out)
