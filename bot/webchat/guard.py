"""The account endpoint's protections, with no trace of anyone.

- `Challenges`: a proof-of-work challenge is signed, not stored: `<expiry>.<random>.<mac>`
  under a key made at start. A solution is a nonce such that sha256(challenge + nonce)
  starts with `difficulty` zero bits. A solved challenge is remembered (in memory, until
  it expires) so that it buys one account only.
- `RateLimit`: accounts per address in a sliding window, the address kept only as a keyed
  hash (BLAKE2b under a key made at start, never written anywhere), forgotten when its
  window has passed.
- `Browsers`: which accounts one open page was given, so that a chatter who was blocked
  is recognised when they start over in the same page. The page's token is random and
  lives in the page's memory (and in its sessionStorage while a chat is open); the bot
  keeps only a keyed hash of it and the block-list pseudonyms of its accounts, in memory,
  for `ttl_s` after the last account. A reload after the chat ended, a new tab or a
  restart of the bot makes the same person someone new.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

CHALLENGE_TTL_S = 300


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte:
            return bits + 8 - byte.bit_length()
        bits += 8
    return bits


def solves(challenge: str, nonce: str, difficulty: int) -> bool:
    digest = hashlib.sha256((challenge + nonce).encode()).digest()
    return leading_zero_bits(digest) >= difficulty


class Challenges:
    def __init__(self, difficulty: int, clock: Callable[[], float] = time.time) -> None:
        self.difficulty = difficulty
        self._key = secrets.token_bytes(32)
        self._clock = clock
        self._spent: dict[str, float] = {}

    def issue(self) -> str:
        body = f"{int(self._clock()) + CHALLENGE_TTL_S}.{secrets.token_hex(16)}"
        return f"{body}.{self._mac(body)}"

    def redeem(self, challenge: str, nonce: str) -> bool:
        """True once per valid, unexpired, solved challenge."""
        body, _, mac = challenge.rpartition(".")
        expiry, _, _ = body.partition(".")
        now = self._clock()
        if not (body and expiry.isdigit() and hmac.compare_digest(mac, self._mac(body))):
            return False
        if int(expiry) < now or challenge in self._spent or len(nonce) > 64:
            return False
        if not solves(challenge, nonce, self.difficulty):
            return False
        self._spent = {c: t for c, t in self._spent.items() if t >= now}
        self._spent[challenge] = float(expiry)
        return True

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]


class RateLimit:
    def __init__(
        self, accounts: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.accounts = accounts
        self.window_s = window_s
        self._key = secrets.token_bytes(32)
        self._clock = clock
        self._seen: dict[bytes, deque[float]] = {}

    def _hash(self, address: str) -> bytes:
        return hashlib.blake2b(address.encode(), key=self._key, digest_size=16).digest()

    def allows(self, address: str) -> bool:
        self._forget_old()
        return len(self._seen.get(self._hash(address), ())) < self.accounts

    def count(self, address: str) -> None:
        self._seen.setdefault(self._hash(address), deque()).append(self._clock())

    def _forget_old(self) -> None:
        horizon = self._clock() - self.window_s
        for key in list(self._seen):
            times = self._seen[key]
            while times and times[0] <= horizon:
                times.popleft()
            if not times:
                del self._seen[key]


BROWSER_TOKEN = re.compile(r"[0-9a-f]{32}")


class Browsers:
    def __init__(
        self, ttl_s: float, limit: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._key = secrets.token_bytes(32)
        self._clock = clock
        # keyed hash of the token -> (last account's time, pseudonyms); oldest first
        self._seen: OrderedDict[bytes, tuple[float, tuple[str, ...]]] = OrderedDict()

    def _hash(self, token: str) -> bytes | None:
        if not BROWSER_TOKEN.fullmatch(token):
            return None  # no token (or not one the page makes): nobody to recognise
        return hashlib.blake2b(token.encode(), key=self._key, digest_size=16).digest()

    def pseudonyms(self, token: str) -> tuple[str, ...]:
        self._forget_old()
        key = self._hash(token)
        entry = self._seen.get(key) if key is not None else None
        return entry[1] if entry is not None else ()

    def remember(self, token: str, pseudonym: str) -> None:
        key = self._hash(token)
        if key is None:
            return
        _, before = self._seen.pop(key, (0.0, ()))
        self._seen[key] = (self._clock(), (*before, pseudonym)[-16:])
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)

    def _forget_old(self) -> None:
        horizon = self._clock() - self.ttl_s
        while self._seen:
            key, (last, _) = next(iter(self._seen.items()))
            if last > horizon:
                return
            del self._seen[key]
