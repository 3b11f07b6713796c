"""The sections, one reader each: a section's keys, defaults and the checks between them.

A reader asks its `_Section` for every key it knows and calls ``done()`` last, so that
whatever was not asked for is reported as unknown.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from bot.config.fields import (
    _LOG_LEVELS,
    _bool,
    _choice,
    _duration,
    _format_duration,
    _int,
    _language_code,
    _path,
    _room,
    _server_name,
    _text,
    _url,
    _user_id,
)
from bot.config.model import (
    BotConfig,
    ChatterDevices,
    EncryptionConfig,
    HomeserverConfig,
    HttpConfig,
    IntakeConfig,
    LanguageConfig,
    LimitsConfig,
    LoggingConfig,
    PrivacyConfig,
    RoutingConfig,
    StorageConfig,
    TrustRule,
    VolunteerConfig,
    VolunteersConfig,
)
from bot.config.reader import _Section
from bot.config.source import _BAD, _MISSING, _Checker, _show
from bot.core.media import KNOWN, MediaLimits, MiB
from bot.core.model import PlaintextDirect, ReadReceipts
from bot.core.model import Strategy as RoutingStrategy


def _read_homeserver(root: _Section) -> HomeserverConfig:
    s = root.section("homeserver", required=True, expected="url:")
    url = s.get("url", _url, expected="your homeserver's URL, like https://matrix.example.org")
    token = s.secret("admin_token", required=False, what="a Synapse admin access token")
    if s.has("server_name"):
        s.chk.problem(
            s.path_of("server_name"),
            "no such key any more",
            _show(s.raw("server_name")),
            "the server name is the part after the colon in bot.user_id; remove this line",
        )
    s.done()
    return HomeserverConfig(url=url, admin_token=token)


def _read_bot(root: _Section) -> BotConfig:
    s = root.section("bot", required=True, expected="user_id: and password_file:")
    user_id = s.get("user_id", _user_id, expected="the bot account's Matrix ID, like @bot:server")
    password = s.secret("password", required=True, what="the bot account's password")
    device_name = s.get("device_name", _text, default="helpline-bot")
    display_name = s.get("display_name", _text, default="Alltidhjelp")
    s.done()
    return BotConfig(user_id, password, device_name, display_name)


def _read_storage(root: _Section) -> StorageConfig:
    s = root.section("storage", required=True, expected="data_dir: and store_key_file:")
    data_dir = s.get("data_dir", _path, expected="a directory for the bot's database")
    store_key = s.secret(
        "store_key", required=True, what="the key that encrypts the crypto store", min_length=16
    )
    s.done()
    return StorageConfig(data_dir=data_dir, store_key=store_key)


def _read_encryption(root: _Section) -> EncryptionConfig:
    s = root.section("encryption")
    trust = s.get(
        "trust", _choice, default=TrustRule.CROSS_SIGNED, choices=[t.value for t in TrustRule]
    )
    chatters = s.get(
        "chatter_devices",
        _choice,
        default=ChatterDevices.FALLBACK_TO_UNSIGNED,
        choices=[c.value for c in ChatterDevices],
    )
    grace = s.get("undecryptable_grace", _duration, default=timedelta(seconds=60))
    if grace is not _BAD and grace > _MAX_GRACE:
        grace = s.chk.problem(
            s.path_of("undecryptable_grace"),
            f"a duration of at most {_format_duration(_MAX_GRACE)}",
            _format_duration(grace),
            "by then the sender has long given up waiting; the default is 60s",
        )
    s.done()
    return EncryptionConfig(
        trust=TrustRule(trust) if trust is not _BAD else _BAD,
        chatter_devices=ChatterDevices(chatters) if chatters is not _BAD else _BAD,
        undecryptable_grace=grace,
    )


_MAX_GRACE = timedelta(hours=1)


def _read_intake(root: _Section) -> IntakeConfig:
    s = root.section("intake")
    direct = s.get("direct_messages", _bool, default=True)
    lobbies = s.items("lobby_rooms", _room, default=(), expected="a list of rooms")
    servers = s.items(
        "allowed_servers", _allowed_server, default=("*",), expected='a list of server names or "*"'
    )
    consent = s.get("consent_required", _bool, default=False)
    plaintext = s.get(
        "plaintext_direct",
        _choice,
        default=PlaintextDirect.OPEN,
        choices=[p.value for p in PlaintextDirect],
    )
    if direct is False and lobbies == ():
        s.chk.problem(
            s.path_of("direct_messages"),
            "direct messages switched on, or at least one lobby room",
            "direct_messages: false and no lobby_rooms",
            "otherwise no chatter can reach the bot",
        )
    s.done()
    return IntakeConfig(
        direct,
        lobbies,
        servers,
        consent,
        PlaintextDirect(plaintext) if plaintext is not _BAD else _BAD,
    )


def _allowed_server(chk: _Checker, path: str, value: Any) -> Any:
    if value == "*":
        return value
    return _server_name(chk, path, value)


def _read_language(root: _Section) -> LanguageConfig:
    s = root.section("language")
    default = s.get("default", _language_code, default="nb")
    available = s.items(
        "available",
        _language_code,
        default=("nb", "en"),
        expected="a list of language codes",
        non_empty=True,
    )
    if default is not _BAD and available is not _BAD and default not in available:
        s.chk.problem(
            s.path_of("available"),
            f"a list that includes the default language {default}",
            "[" + ", ".join(available) + "]",
            f"add {default} to language.available, or change language.default",
        )
    s.done()
    return LanguageConfig(default, available)


def _read_volunteers(root: _Section, language: LanguageConfig, bot_user: Any) -> VolunteersConfig:
    s = root.section("volunteers", required=True, expected="room: and members:")
    room = s.get("room", _room, expected='the volunteers\' room, like "#vakt:example.org"')
    members_value = s.raw("members")
    members: list[VolunteerConfig] = []
    seen: dict[str, str] = {}
    if members_value is _BAD:
        pass
    elif members_value is _MISSING or members_value is None:
        s.missing("members", "a list of at least one volunteer", members_value)
    elif members_value == []:
        s.chk.problem(s.path_of("members"), "a list of at least one volunteer", "an empty list")
    elif not isinstance(members_value, list):
        s.chk.problem(s.path_of("members"), "a list of volunteers", _show(members_value))
    else:
        for index, item in enumerate(members_value):
            path = f"{s.path_of('members')}[{index}]"
            member = _read_member(s.mapping_at(path, item), language)
            if member.user_id is _BAD:
                continue
            if member.user_id in seen:
                s.chk.problem(
                    f"{path}.user_id",
                    "each volunteer once",
                    f"{_show(member.user_id)} a second time",
                    f"already listed as {seen[member.user_id]}",
                )
            elif member.user_id == bot_user:
                s.chk.problem(
                    f"{path}.user_id",
                    "a person's Matrix ID",
                    f"{_show(member.user_id)}, the bot's own ID",
                )
            seen.setdefault(member.user_id, path)
            members.append(member)
    supervisors = s.items("supervisors", _user_id, default=(), expected="a list of Matrix user IDs")
    s.done()
    return VolunteersConfig(room, tuple(members), supervisors)


def _read_member(s: _Section, language: LanguageConfig) -> VolunteerConfig:
    user_id = s.get("user_id", _user_id, expected="the volunteer's Matrix ID")
    alias = s.get("alias", _text, expected="the name chatters see, like Irene")
    default_languages = (language.default,) if language.default is not _BAD else _BAD
    languages = s.items(
        "languages",
        _language_code,
        default=default_languages,
        expected="a list of language codes",
        non_empty=True,
    )
    # Defaulted languages are checked once, as language.default against language.available.
    if s.has("languages") and languages is not _BAD and language.available is not _BAD:
        for index, code in enumerate(languages):
            if code not in language.available:
                s.chk.problem(
                    f"{s.path_of('languages')}[{index}]",
                    "one of the languages in language.available ("
                    + ", ".join(language.available)
                    + ")",
                    _show(code),
                    f"add {code} to language.available first",
                )
    max_sessions = s.get("max_sessions", _int, default=1, minimum=1, maximum=50)
    # The language the bot speaks to them in: one they read, of those the line has texts
    # in. A volunteer who takes English-speaking chatters may still want Norwegian.
    own = s.get("language", _language_code, default=language.default)
    known = language.available
    if s.has("language") and own is not _BAD and known is not _BAD and own not in known:
        s.chk.problem(
            s.path_of("language"),
            "one of the languages in language.available (" + ", ".join(language.available) + ")",
            _show(own),
            f"the bot has texts in those only; add {own} to language.available first",
        )
    s.done()
    return VolunteerConfig(user_id, alias, languages, max_sessions, own)


def _read_routing(root: _Section) -> RoutingConfig:
    s = root.section("routing")
    strategy = s.get(
        "strategy", _choice, default="longest_idle", choices=[x.value for x in RoutingStrategy]
    )
    offer_timeout = s.get("offer_timeout", _duration, default=timedelta(seconds=90))
    lapses = s.get("lapses_before_off_duty", _int, default=2, minimum=1)
    fallback = s.get("language_fallback", _bool, default=True)
    reminder = s.get("waiting_reminder", _duration, default=timedelta(minutes=3), allow_zero=True)
    s.done()
    return RoutingConfig(
        RoutingStrategy(strategy) if strategy is not _BAD else _BAD,
        offer_timeout,
        lapses,
        fallback,
        reminder,
    )


def _read_limits(root: _Section) -> LimitsConfig:
    d = LimitsConfig()
    s = root.section("limits")
    max_duration = s.get("max_duration", _duration, default=d.max_duration)
    warn_before = s.items(
        "warn_before", _duration, default=d.warn_before, expected="a list of durations"
    )
    if warn_before is not _BAD and max_duration is not _BAD:
        for index, warning in enumerate(warn_before):
            if warning >= max_duration:
                s.chk.problem(
                    f"{s.path_of('warn_before')}[{index}]",
                    f"a warning time shorter than limits.max_duration "
                    f"({_format_duration(max_duration)})",
                    _format_duration(warning),
                    "a warning is given this long before the end of a conversation",
                )
        warn_before = tuple(sorted(warn_before, reverse=True))
    max_extension = s.get("max_extension", _duration, default=d.max_extension, allow_zero=True)
    chatter_idle = s.get("chatter_idle", _duration, default=d.chatter_idle)
    idle_warning = s.get("idle_warning_before", _duration, default=d.idle_warning_before)
    if chatter_idle is not _BAD and idle_warning is not _BAD and idle_warning >= chatter_idle:
        s.chk.problem(
            s.path_of("idle_warning_before"),
            f"a duration shorter than limits.chatter_idle ({_format_duration(chatter_idle)})",
            _format_duration(idle_warning),
        )
    queue_max_wait = s.get("queue_max_wait", _duration, default=d.queue_max_wait)
    queue_max_length = s.get("queue_max_length", _int, default=d.queue_max_length, minimum=1)
    # Synapse refuses events over 64 KiB, and a relayed text carries some overhead.
    max_chars = s.get(
        "message_max_chars", _int, default=d.message_max_chars, minimum=1, maximum=30000
    )
    per_minute = s.get("messages_per_minute", _int, default=d.messages_per_minute, minimum=1)
    per_day = s.get("sessions_per_day", _int, default=d.sessions_per_day, minimum=1)
    silence = s.get("volunteer_silence", _duration, default=d.volunteer_silence, allow_zero=True)
    s.done()
    return LimitsConfig(
        max_duration,
        warn_before,
        max_extension,
        chatter_idle,
        idle_warning,
        queue_max_wait,
        queue_max_length,
        max_chars,
        per_minute,
        per_day,
        silence,
    )


def _read_privacy(root: _Section, limits: LimitsConfig) -> PrivacyConfig:
    d = PrivacyConfig()
    s = root.section("privacy")
    purge_after = s.get("purge_after", _duration, default=d.purge_after, allow_zero=True)
    relay_media = s.get("relay_media", _bool, default=False)
    receipts = s.get("relay_read_receipts", _read_receipts, default=ReadReceipts.OFF)
    lifetime = s.get("retention_max_lifetime", _duration, default=d.retention_max_lifetime)
    # A session room lives through the queue, the conversation, its extension and the purge
    # delay; a shorter retention would let the server drop it mid-conversation.
    parts = (
        limits.queue_max_wait,
        limits.max_duration,
        limits.max_extension,
        purge_after,
        lifetime,
    )
    if _BAD not in parts:
        longest = sum(parts[:4], timedelta())
        if lifetime <= longest:
            s.chk.problem(
                s.path_of("retention_max_lifetime"),
                f"a lifetime longer than a session room can live ({_format_duration(longest)}: "
                "queue_max_wait + max_duration + max_extension + purge_after)",
                _format_duration(lifetime),
                "otherwise the server could delete a room while the conversation goes on",
            )
    block_key = s.secret(
        "block_list_key", required=False, what="the block list's HMAC key", min_length=16
    )
    if s.has("deactivate_prefix"):
        s.chk.problem(
            s.path_of("deactivate_prefix"),
            "no such key any more",
            _show(s.raw("deactivate_prefix")),
            "throw-away accounts are the web chat's now: see webchat.account_prefix "
            '(a localpart prefix without "@" or server, like anon-) and webchat.enabled',
        )
    ask_rating = s.get("ask_rating", _bool, default=False)
    media = _read_media(s)
    s.done()
    return PrivacyConfig(purge_after, relay_media, receipts, lifetime, block_key, ask_rating, media)


def _read_receipts(chk: _Checker, path: str, value: Any) -> Any:
    # true is the direction nobody minds (the chatter sees their words were read); the
    # chatter's own reading reaches the volunteer only when written out as "both".
    if isinstance(value, bool):
        return ReadReceipts.VOLUNTEER_TO_CHATTER if value else ReadReceipts.OFF
    choice = _choice(chk, path, value, choices=list(_RECEIPT_WORDS))
    return _BAD if choice is _BAD else _RECEIPT_WORDS[choice]


# "true" and "false" as text come from ${VARIABLES}.
_RECEIPT_WORDS = {
    "false": ReadReceipts.OFF,
    "true": ReadReceipts.VOLUNTEER_TO_CHATTER,
    ReadReceipts.VOLUNTEER_TO_CHATTER.value: ReadReceipts.VOLUNTEER_TO_CHATTER,
    ReadReceipts.BOTH.value: ReadReceipts.BOTH,
}


# Synapse's own default upload limit is 50 MB; the bot holds a file in memory twice.
MAX_MEDIA_BYTES = 50 * MiB


def _read_media(privacy: _Section) -> MediaLimits:
    d = MediaLimits()
    s = privacy.section("media")
    max_bytes = s.get("max_bytes", _int, default=d.max_bytes, minimum=1, maximum=MAX_MEDIA_BYTES)
    types = s.items(
        "types",
        _choice,
        default=tuple(sorted(d.types)),
        expected="a list of MIME types",
        non_empty=True,
        choices=tuple(KNOWN),
    )
    s.done()
    if _BAD in (max_bytes, types):
        return d
    return MediaLimits(max_bytes, frozenset(types))


def _topic(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    return text.strip() if isinstance(text, str) else _BAD


def _read_logging(root: _Section) -> LoggingConfig:
    s = root.section("logging")
    level = s.get("level", _log_level, default="INFO")
    as_json = s.get("json", _bool, default=False)
    s.done()
    return LoggingConfig(level, as_json)


def _log_level(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD or text.upper() in _LOG_LEVELS:
        return text if text is _BAD else text.upper()
    return chk.problem(path, "one of " + ", ".join(_LOG_LEVELS), _show(text))


def _read_http(root: _Section) -> HttpConfig:
    s = root.section("http")
    host = s.get("host", _loopback_host, default="127.0.0.1")
    port = s.get("port", _int, default=9108, minimum=0, maximum=65535)
    s.done()
    return HttpConfig(host, port)


def _loopback_host(chk: _Checker, path: str, value: Any) -> Any:
    text = _text(chk, path, value)
    if text is _BAD:
        return _BAD
    try:
        loopback = text == "localhost" or ipaddress.ip_address(text).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return text
    return chk.problem(
        path,
        "a loopback address (127.0.0.1, ::1 or localhost)",
        _show(text),
        "health and metrics stay on this machine; put a reverse proxy in front to expose them",
    )


def _check_lobbies_against_volunteers(
    chk: _Checker, intake: IntakeConfig, volunteers: VolunteersConfig
) -> None:
    # Chatters sit in lobby rooms: the volunteers' room must never be one of them.
    if intake.lobby_rooms is _BAD or volunteers.room is _BAD:
        return
    for index, room in enumerate(intake.lobby_rooms):
        if room == volunteers.room:
            chk.problem(
                f"intake.lobby_rooms[{index}]",
                "a room other than the volunteers' room",
                _show(room),
                "chatters would see the volunteers' room",
            )
