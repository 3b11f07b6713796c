"""The core's Policy, built from the config: every field has one source, and arrives."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigErrors, build_policy, load_config
from bot.config.policy import CORE_ONLY, carried, converted
from bot.core.ids import RoomID, UserID
from bot.core.media import MediaLimits
from bot.core.model import PlaintextDirect, Policy, ReadReceipts, Strategy
from tests.unit.test_config import MINIMAL, STORE_KEY, edited, write_config

CHANGED = MINIMAL + textwrap.dedent("""\
    intake:
      allowed_servers: [helpline.test]
      consent_required: true
      plaintext_direct: refuse
    routing: {strategy: broadcast, offer_timeout: 2m, waiting_reminder: 0}
    limits: {max_duration: 90m, warn_before: [1m, 20m], queue_max_length: 7}
    privacy:
      purge_after: 0
      relay_media: true
      relay_read_receipts: both
      ask_rating: true
      media: {max_bytes: 2000000, types: [image/png, application/pdf]}
    language: {default: en, available: [en, nb]}
    topics: [angst, skole]
    """)


def test_every_policy_field_has_exactly_one_source(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    from_sections = set(carried(config)) - set(converted(config, None))
    from_conversions = set(converted(config, None))
    assert not from_sections & CORE_ONLY
    assert not from_conversions & CORE_ONLY
    policy_fields = {f.name for f in dataclasses.fields(Policy)}
    assert from_sections | from_conversions | CORE_ONLY == policy_fields


def test_settings_reach_the_core(tmp_path: Path) -> None:
    text = edited("alias: Anne}", "alias: Anne, languages: [en, nb], max_sessions: 2}", CHANGED)
    config = load_config(write_config(tmp_path, text), env={})
    policy = build_policy(config, RoomID("!vakt:helpline.test"))

    assert policy.staff_room == "!vakt:helpline.test"
    (anne,) = policy.volunteers
    assert (anne.user_id, anne.alias, anne.languages, anne.max_sessions) == (
        UserID("@anne:helpline.test"),
        "Anne",
        ("en", "nb"),
        2,
    )
    assert policy.allowed_servers == frozenset({"helpline.test"})
    assert policy.allows(UserID("@someone:helpline.test"))
    assert not policy.allows(UserID("@someone:elsewhere.test"))
    assert policy.consent_required is True
    assert policy.plaintext_direct is PlaintextDirect.REFUSE
    assert policy.strategy is Strategy.BROADCAST
    assert policy.offer_timeout == timedelta(minutes=2)
    assert policy.waiting_reminder == timedelta(0)
    assert policy.max_duration == timedelta(minutes=90)
    assert policy.warn_before == (timedelta(minutes=20), timedelta(minutes=1))
    assert policy.queue_max_length == 7
    assert policy.purge_after == timedelta(0)
    assert policy.relay_media is True
    assert policy.relay_read_receipts is ReadReceipts.BOTH
    assert policy.ask_rating is True
    assert policy.media == MediaLimits(2_000_000, frozenset({"image/png", "application/pdf"}))
    assert (policy.default_language, policy.languages) == ("en", ("en", "nb"))
    assert policy.topics == ("angst", "skole")
    assert policy.canned
    assert "unknown" not in policy.canned
    assert policy.hours == config.opening_hours.hours()
    assert policy.block_key == STORE_KEY.encode()  # no block_list_key: the store key


def test_supervision_settings_reach_the_core(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    policy = build_policy(config, None)
    assert policy.volunteer_silence == timedelta(minutes=5)
    assert policy.tell_chatter is False
    text = MINIMAL + "limits: {volunteer_silence: 90s}\nsupervision: {tell_chatter: true}\n"
    policy = build_policy(load_config(write_config(tmp_path, text), env={}), None)
    assert policy.volunteer_silence == timedelta(seconds=90)
    assert policy.tell_chatter is True
    off = MINIMAL + "limits: {volunteer_silence: 0}\n"
    assert build_policy(
        load_config(write_config(tmp_path, off), env={}), None
    ).volunteer_silence == (timedelta(0))


def test_a_bad_supervision_setting_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "supervision: {tell_chatter: maybe, tell_volunteer: true}\n"
    with pytest.raises(ConfigErrors) as caught:
        load_config(write_config(tmp_path, text), env={})
    paths = {p.path for p in caught.value.problems}
    assert {"supervision.tell_chatter", "supervision.tell_volunteer"} <= paths


EVERY_SETTING = MINIMAL.replace("opening_hours:\n", "opening_hours:\n  timezone: UTC\n").replace(
    "helpline.test/\n", "helpline.test/\n  admin_token_file: secrets/admin_token\n"
).replace("  password_file:", "  display_name: Snakk\n  password_file:") + (
    textwrap.dedent("""\
    intake:
      direct_messages: false
      lobby_rooms: ["#lobby:helpline.test"]
      allowed_servers: [helpline.test]
      consent_required: true
      plaintext_direct: refuse
    routing:
      strategy: broadcast
      offer_timeout: 2m
      lapses_before_off_duty: 3
      language_fallback: false
      waiting_reminder: 0
    limits:
      max_duration: 90m
      warn_before: [1m]
      max_extension: 0
      chatter_idle: 20m
      idle_warning_before: 5m
      queue_max_wait: 40m
      queue_max_length: 7
      message_max_chars: 300
      messages_per_minute: 3
      sessions_per_day: 2
      volunteer_silence: 90s
    supervision: {tell_chatter: true, debrief_topics: [angst]}
    admins: ["@drift:helpline.test"]
    privacy:
      purge_after: 0
      relay_media: true
      relay_read_receipts: both
      ask_rating: true
      block_list_key_file: secrets/block_list_key
      media: {max_bytes: 2000000, types: [image/png]}
    language: {default: en, available: [en]}
    topics: [angst]
    webchat: {enabled: true, public_url: https://chat.helpline.test}
    """)
)


def test_every_core_setting_arrives_as_written(tmp_path: Path) -> None:
    # Each key the core obeys is set away from its default: a value read and then dropped
    # on the way (the default used instead) shows as a Policy field still at its default.
    text = EVERY_SETTING.replace("alias: Anne}", "alias: Anne, languages: [en], language: en}")
    text = text.replace("volunteers:\n", 'volunteers:\n  supervisors: ["@kari:helpline.test"]\n', 1)
    path = write_config(tmp_path, text)
    (tmp_path / "secrets" / "admin_token").write_text("admin-token\n")
    (tmp_path / "secrets" / "block_list_key").write_text("a block list key of its own\n")
    policy = build_policy(load_config(path, env={}), RoomID("!vakt:helpline.test"))
    default = Policy(volunteers=())
    unchanged = {
        f.name
        for f in dataclasses.fields(Policy)
        if getattr(policy, f.name) == getattr(default, f.name)
    }
    # canned: the built-in replies of the default language; default_extension: core only.
    assert unchanged - {"canned"} == CORE_ONLY
    assert policy.block_key == b"a block list key of its own"
    assert policy.server_name == "helpline.test"
    assert policy.bot_name == "Snakk"
