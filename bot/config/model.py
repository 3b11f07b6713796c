"""The configuration as the rest of the bot sees it: frozen dataclasses, one per section.

A field's default here is the documented default (config.example.yaml shows each); the
readers in bot.config.sections fill these in. Secrets stay out of every ``repr``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.core.media import MediaLimits
from bot.core.model import Hours, Interval, PlaintextDirect, ReadReceipts
from bot.core.model import Strategy as RoutingStrategy

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustRule(enum.StrEnum):
    """Which devices of other users the bot shares room keys with."""

    # Element's rule since MSC4153: only devices their owner has cross-signed.
    CROSS_SIGNED = "cross_signed"
    # Every device, signed or not: only for testing with old clients.
    ALL_DEVICES = "all_devices"


class ChatterDevices(enum.StrEnum):
    """Which devices of a chatter get room keys under the cross-signed rule."""

    # Their cross-signed devices; a chatter with none (an old client, a bridge) gets keys
    # on their unsigned devices, and the volunteer is told once. Nobody in crisis is
    # left reading silence because of their app.
    FALLBACK_TO_UNSIGNED = "fallback_to_unsigned"
    # Their cross-signed devices only, as for staff.
    CROSS_SIGNED_ONLY = "cross_signed_only"


@dataclass(frozen=True, slots=True)
class HomeserverConfig:
    url: str  # no trailing slash
    admin_token: str | None = field(default=None, repr=False)  # enables server-side purge


@dataclass(frozen=True, slots=True)
class BotConfig:
    user_id: str
    password: str = field(repr=False)
    device_name: str = "helpline-bot"
    display_name: str = "Alltidhjelp"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    data_dir: Path
    store_key: str = field(repr=False)  # encrypts the crypto store


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    trust: TrustRule = TrustRule.CROSS_SIGNED
    chatter_devices: ChatterDevices = ChatterDevices.FALLBACK_TO_UNSIGNED
    # How long a message whose key has not arrived is waited for before its sender is
    # asked to send it again.
    undecryptable_grace: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    direct_messages: bool = True
    lobby_rooms: tuple[str, ...] = ()
    allowed_servers: tuple[str, ...] = ("*",)
    consent_required: bool = False
    plaintext_direct: PlaintextDirect = PlaintextDirect.OPEN


@dataclass(frozen=True, slots=True)
class VolunteerConfig:
    user_id: str
    alias: str  # the only name a chatter ever sees
    languages: tuple[str, ...]
    max_sessions: int = 1
    language: str = "nb"  # what the bot says to them is in it; default: language.default


@dataclass(frozen=True, slots=True)
class VolunteersConfig:
    room: str  # room ID or alias of the volunteers' and supervisors' room
    members: tuple[VolunteerConfig, ...]
    supervisors: tuple[str, ...] = ()

    def member(self, user_id: str) -> VolunteerConfig | None:
        return next((m for m in self.members if m.user_id == user_id), None)


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    strategy: RoutingStrategy = RoutingStrategy.LONGEST_IDLE
    offer_timeout: timedelta = timedelta(seconds=90)
    lapses_before_off_duty: int = 2
    language_fallback: bool = True
    waiting_reminder: timedelta = timedelta(minutes=3)  # zero: no reminders


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_duration: timedelta = timedelta(minutes=60)
    warn_before: tuple[timedelta, ...] = (timedelta(minutes=10), timedelta(minutes=2))
    max_extension: timedelta = timedelta(minutes=30)
    chatter_idle: timedelta = timedelta(minutes=15)
    idle_warning_before: timedelta = timedelta(minutes=3)
    queue_max_wait: timedelta = timedelta(minutes=30)
    queue_max_length: int = 50
    message_max_chars: int = 4000
    messages_per_minute: int = 20  # per chatter
    sessions_per_day: int = 5  # per chatter
    # The chatter's words unanswered this long: the volunteer is nudged; twice this long:
    # the supervisors are alerted. Zero: never.
    volunteer_silence: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    purge_after: timedelta = timedelta(seconds=60)
    relay_media: bool = False
    relay_read_receipts: ReadReceipts = ReadReceipts.OFF
    retention_max_lifetime: timedelta = timedelta(days=1)
    block_list_key: str | None = field(default=None, repr=False)  # None: use the store key
    # The chatter is asked for 1-5 at the end; only the number is kept, in the statistics.
    ask_rating: bool = False
    media: MediaLimits = field(default_factory=MediaLimits)  # what relay_media passes on


@dataclass(frozen=True, slots=True)
class OpeningHoursConfig:
    # A factory, so that importing this module works even without a tz database.
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Oslo"))
    always_open: bool = False
    # Seven entries, Monday first (date.weekday() indexes it). An interval belongs to the day
    # it starts on, even when it ends after midnight.
    weekly: tuple[tuple[Interval, ...], ...] = ((),) * 7
    closed_dates: frozenset[date] = frozenset()

    def hours(self) -> Hours:
        """As the core evaluates them (`bot.core.hours.is_open`): the one place that decides
        whether the line is open."""
        return Hours(
            always_open=self.always_open,
            timezone=self.timezone.key,
            weekly=self.weekly,
            closed_dates=self.closed_dates,
        )


@dataclass(frozen=True, slots=True)
class LanguageConfig:
    default: str = "nb"
    available: tuple[str, ...] = ("nb", "en")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 9108  # 0: no HTTP endpoint

    @property
    def enabled(self) -> bool:
        return self.port != 0


@dataclass(frozen=True, slots=True)
class RateLimit:
    accounts: int = 5
    per: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class WebchatConfig:
    """The web chat (`bot.webchat`): off unless enabled."""

    enabled: bool = False
    listen: tuple[str, int] = ("127.0.0.1", 8090)  # host, port
    public_url: str | None = None  # where chatters open the page
    homeserver_url: str | None = None  # the homeserver as browsers reach it; None: homeserver.url
    account_prefix: str = "anon-"  # localpart prefix of the throw-away accounts
    idle_erase: timedelta = timedelta(minutes=30)
    max_open_accounts: int = 200
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit())  # per address
    pow_difficulty: int = 18  # leading zero bits of sha256(challenge + nonce)
    quick_exit_url: str = "https://www.google.com"
    frame_ancestors: tuple[str, ...] = ()  # origins that may embed the page
    # reverse proxies whose X-Forwarded-For is believed (the rate limit's address)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # language -> key -> text; only the texts the organisation overrides (`bot.webchat.texts`)
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SupervisionConfig:
    tell_chatter: bool = False  # tell the chatter when a supervisor joins the volunteer
    # Topics after which the volunteer is offered a debrief (`bot.core.care`); none: never.
    debrief_topics: tuple[str, ...] = ()


DEFAULT_TOPICS = (
    "angst",
    "ensomhet",
    "familie",
    "skole",
    "selvskading",
    "selvmordstanker",
    "annet",
)


@dataclass(frozen=True, slots=True)
class Config:
    homeserver: HomeserverConfig
    bot: BotConfig
    storage: StorageConfig
    encryption: EncryptionConfig
    intake: IntakeConfig
    volunteers: VolunteersConfig
    admins: tuple[str, ...]
    routing: RoutingConfig
    limits: LimitsConfig
    privacy: PrivacyConfig
    opening_hours: OpeningHoursConfig
    language: LanguageConfig
    # language -> message key -> text; only the texts the organisation overrides
    messages: Mapping[str, Mapping[str, str]]
    topics: tuple[str, ...]
    logging: LoggingConfig
    http: HttpConfig
    webchat: WebchatConfig = field(default_factory=WebchatConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)

    @property
    def server_name(self) -> str:
        """The homeserver's Matrix server name (the part after ':' in user IDs): the bot's
        account lives there, so its own ID says it."""
        return self.bot.user_id.split(":", 1)[1]

    @property
    def block_key(self) -> bytes:
        """The key that hashes chatters for the block list and staff for the identity pins."""
        return (self.privacy.block_list_key or self.storage.store_key).encode()

    def message_override(self, language: str, key: str) -> str | None:
        return self.messages.get(language, {}).get(key)
