"""The account endpoint's protections, on a clock the test moves: a proof-of-work
challenge buys one account, the rate limit forgets an address when its window has passed,
and a page's token links its accounts for a while and only in memory."""

from __future__ import annotations

import hashlib

from bot.devtools.webpage import solve
from bot.webchat.guard import (
    CHALLENGE_TTL_S,
    Browsers,
    Challenges,
    RateLimit,
    leading_zero_bits,
    solves,
)

TOKEN = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_leading_zero_bits() -> None:
    assert leading_zero_bits(b"\x00\x00\x01") == 23
    assert leading_zero_bits(b"\x80") == 0
    assert leading_zero_bits(b"\x00\x0f") == 12
    assert leading_zero_bits(b"\x00\x00") == 16


def test_a_solved_challenge_buys_one_account_and_expires() -> None:
    clock = Clock()
    ch = Challenges(8, clock=clock)
    challenge = ch.issue()
    nonce = solve(challenge, 8)
    assert solves(challenge, nonce, 8)
    assert ch.redeem(challenge, nonce)
    assert not ch.redeem(challenge, nonce)  # spent
    late = ch.issue()
    clock.t += CHALLENGE_TTL_S + 1
    assert not ch.redeem(late, solve(late, 8))


def test_a_challenge_not_made_here_or_not_solved_is_refused() -> None:
    ch = Challenges(8)
    challenge = ch.issue()
    expiry, random, mac = challenge.split(".")
    forged = f"{expiry}.{random[::-1]}.{mac}"
    assert not ch.redeem(forged, solve(forged, 8))
    unsolved = next(
        str(n)
        for n in range(1000)
        if hashlib.sha256((challenge + str(n)).encode()).digest()[0] != 0
    )
    assert not ch.redeem(challenge, unsolved)
    assert not ch.redeem(challenge, "x" * 65)  # longer than any nonce the page makes
    assert not Challenges(8).redeem(challenge, solve(challenge, 8))  # another start's key


def test_the_rate_limit_counts_per_address_and_forgets() -> None:
    clock = Clock()
    rate = RateLimit(2, 3600, clock=clock)
    for _ in range(2):
        assert rate.allows("198.51.100.1")
        rate.count("198.51.100.1")
    assert not rate.allows("198.51.100.1")
    assert rate.allows("198.51.100.2")
    clock.t += 3601
    assert rate.allows("198.51.100.1")
    assert rate._seen == {}  # nothing kept once the window has passed


def test_the_rate_limit_keeps_no_address() -> None:
    rate = RateLimit(2, 3600)
    rate.count("198.51.100.7")
    assert all(b"198.51.100.7" not in key for key in rate._seen)


def test_a_page_token_links_its_accounts_for_a_while() -> None:
    clock = Clock()
    browsers = Browsers(ttl_s=600, clock=clock)
    assert browsers.pseudonyms(TOKEN) == ()
    browsers.remember(TOKEN, "h1")
    clock.t += 500
    browsers.remember(TOKEN, "h2")
    assert browsers.pseudonyms(TOKEN) == ("h1", "h2")
    assert browsers.pseudonyms(OTHER) == ()
    clock.t += 599  # the ttl counts from the last account
    assert browsers.pseudonyms(TOKEN) == ("h1", "h2")
    clock.t += 2
    assert browsers.pseudonyms(TOKEN) == ()


def test_no_token_or_a_malformed_one_links_nothing() -> None:
    browsers = Browsers(ttl_s=600)
    for token in ("", "abc", TOKEN.upper(), TOKEN + "0"):
        browsers.remember(token, "h")
        assert browsers.pseudonyms(token) == ()
    assert len(browsers._seen) == 0


def test_the_oldest_pages_are_forgotten_beyond_the_limit() -> None:
    browsers = Browsers(ttl_s=600, limit=2)
    tokens = [f"{n:032x}" for n in range(3)]
    for n, token in enumerate(tokens):
        browsers.remember(token, f"h{n}")
    assert [browsers.pseudonyms(t) for t in tokens] == [(), ("h1",), ("h2",)]
    assert all(t.encode() not in key for t in tokens for key in browsers._seen)
