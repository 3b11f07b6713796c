"""The `webchat:` section: the web chat's listener, its throw-away accounts and its
protections. Read after `homeserver:` and `language:`, which it checks against (web chat
needs the admin token; its texts are per configured language).

`privacy.deactivate_prefix` of earlier releases is refused with a pointer here (in
`_read_privacy`): its job, erasing throw-away accounts, is the web chat's now, and only
for accounts the bot made itself (`webchat.account_prefix`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from bot.config.fields import _bool, _duration, _int, _text, _url
from bot.config.model import HomeserverConfig, LanguageConfig, RateLimit, WebchatConfig
from bot.config.reader import _Section
from bot.config.source import _BAD, _Checker, _show
from bot.webchat.texts import KEYS

_LOCALPART_PREFIX = re.compile(r"[a-z0-9._=/-]{1,32}")


def _read_webchat(
    root: _Section, homeserver: HomeserverConfig, language: LanguageConfig
) -> WebchatConfig:
    d = WebchatConfig()
    s = root.section("webchat")
    enabled = s.get("enabled", _bool, default=False)
    listen = s.get("listen", _listen, default=d.listen)
    public_url = s.get("public_url", _url, default=None)
    client_url = s.get("homeserver_url", _url, default=None)
    prefix = s.get("account_prefix", _prefix, default=d.account_prefix)
    idle = s.get("idle_erase", _duration, default=d.idle_erase)
    cap = s.get("max_open_accounts", _int, default=d.max_open_accounts, minimum=1)
    r = s.section("rate_limit")
    per_address = r.get("accounts", _int, default=d.rate_limit.accounts, minimum=1)
    window = r.get("per", _duration, default=d.rate_limit.per)
    r.done()
    difficulty = s.get("pow_difficulty", _int, default=d.pow_difficulty, minimum=0, maximum=32)
    quick_exit = s.get("quick_exit_url", _url, default=d.quick_exit_url)
    ancestors = s.items("frame_ancestors", _origin, default=(), expected="a list of origins")
    proxies = s.items(
        "trusted_proxies", _network, default=(), expected="a list of addresses or networks"
    )
    texts = _read_texts(s, language)
    if enabled is True:
        if homeserver.admin_token is None:
            s.chk.problem(
                s.path_of("enabled"),
                "false, or homeserver.admin_token_file set",
                "true without an admin token",
                "web chat accounts are made and erased with Synapse's admin API "
                "(with Matrix Authentication Service it cannot make accounts)",
            )
        if public_url is None:
            s.missing("public_url", "the page's public address, like https://chat.example.org")
    s.done()
    return WebchatConfig(
        enabled=enabled,
        listen=listen,
        public_url=public_url,
        homeserver_url=client_url,
        account_prefix=prefix,
        idle_erase=idle,
        max_open_accounts=cap,
        rate_limit=RateLimit(per_address, window),
        pow_difficulty=difficulty,
        quick_exit_url=quick_exit,
        frame_ancestors=ancestors,
        trusted_proxies=proxies,
        texts=texts,
    )


def _read_texts(s: _Section, language: LanguageConfig) -> Any:
    t = s.section("texts")
    out: dict[str, dict[str, str]] = {}
    for lang, value in t.data.items():
        t.raw(lang)
        if language.available is not _BAD and lang not in language.available:
            t.chk.problem(
                t.path_of(lang),
                "one of the languages in language.available",
                _show(lang),
            )
            continue
        texts = t.mapping_at(t.path_of(lang), value)
        out[lang] = {}
        for key in list(texts.data):
            if key not in KEYS:
                continue  # reported by done() below, with the closest known key
            text = texts.get(key, _text)
            if text is not _BAD:
                out[lang][key] = text
        for key in sorted(KEYS):
            texts.raw(key)
        texts.done()
    t.done()
    return out


def _listen(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", text.strip())
    if match is not None:
        host, port = match.group(1), int(match.group(2))
        try:
            ok = host == "localhost" or bool(ipaddress.ip_address(host))
        except ValueError:
            ok = False
        if ok and 0 < port < 65536:
            return host, port
    return chk.problem(
        path,
        "an address and port to listen on, like 127.0.0.1:8090 or [::]:8090",
        _show(text),
        "put the helpline's reverse proxy in front of it",
    )


def _prefix(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD or _LOCALPART_PREFIX.fullmatch(text):
        return text
    return chk.problem(
        path,
        "the start of a Matrix localpart (a-z, 0-9, . _ = - /), like anon-, without @",
        _show(text),
    )


def _origin(chk: _Checker, path: str, value: Any) -> Any:
    text = _url(chk, path, value)
    if text is _BAD or re.fullmatch(r"https?://[^/]+", text):
        return text
    return chk.problem(path, "an origin (scheme and host, no path)", _show(text))


def _network(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return chk.problem(
            path, "an address or network, like 10.0.0.2 or 172.16.0.0/12", _show(text)
        )
