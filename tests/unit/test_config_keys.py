"""Every key config.example.yaml documents is read by the loader and has a test of its effect.

The example is what an admin believes. So the keys are taken from the file itself: the keys
written out, and the optional ones shown commented out (``  # admin_token: ...``, a ``#`` at
the key's own indentation, one space, a key). The loader is then watched while it reads the
example, and every documented key must be among those it asked for. `EFFECTS` names, per
key, the tests that fail when what the key does is taken away (not merely that the value was
parsed); a key added to the example without an entry here fails, and so does an entry naming
a test that does not exist. Keys the loader refuses on purpose are in `REFUSED`, with the
test of their refusal.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import ConfigErrors, load_config
from bot.config.reader import _Section
from tests.unit.test_config import EXAMPLE, MINIMAL, REPO, problems, write_config

# Mappings whose keys are data, not settings (days, languages, text names): the mapping is
# the documented key, and its effect test covers what is written inside.
DATA_MAPPINGS = frozenset({"opening_hours.weekly", "messages", "webchat.texts"})

# Written as keys in YAML, these are booleans: in a comment they are prose ("# true: ...").
_NOT_KEYS = frozenset({"true", "false", "yes", "no", "on", "off", "null"})
_KEY = re.compile(r"([a-z_][a-z0-9_]*):(?:\s|$)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def written_keys(data: Any, path: str = "") -> Iterator[str]:
    """The key paths of a loaded YAML document; list items as ``[*]``."""
    if isinstance(data, dict):
        for key, value in data.items():
            here = _join(path, str(key))
            yield here
            if here not in DATA_MAPPINGS:
                yield from written_keys(value, here)
    elif isinstance(data, list):
        for item in data:
            yield from written_keys(item, f"{path}[*]")


def commented_keys(text: str) -> Iterator[str]:
    """The key paths shown commented out.

    A commented-out key has its ``#`` where the key itself would start, so it sits beside
    the written keys at that column (``  # admin_token: x`` among ``  url: y``). A comment
    that only opens a key (``# texts:``) may be followed by deeper commented keys
    (``#   nb:``). Indented words in prose (``#   cross_signed: only ...``) are not keys.
    """
    written: list[tuple[int, str]] = []  # (column, path) of the written keys above
    block: list[tuple[int, str, bool]] = []  # (column, path, opens) in this comment run
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        column = len(line) - len(stripped)
        if not stripped.startswith("#"):
            block = []
            item = stripped.startswith("- ")
            match = _KEY.match(stripped.removeprefix("- "))
            if match:
                column += 2 if item else 0
                while written and written[-1][0] >= column:
                    written.pop()
                parent = written[-1][1] if written else ""
                written.append((column, _join(parent + ("[*]" if item else ""), match[1])))
            continue
        body = stripped[1:]
        match = _KEY.match(body.lstrip(" "))
        if not match or match[1] in _NOT_KEYS:
            block = []
            continue
        key_column = column + len(body) - len(body.lstrip(" ")) - 1
        while block and block[-1][0] >= key_column:
            block.pop()
        if block:
            if not block[-1][2]:
                continue
            parent = block[-1][1]
        else:
            beside = [p for c, p in written if c == key_column]
            if key_column != column or not beside:
                continue
            parent = beside[-1].rpartition(".")[0]
        path = _join(parent, match[1])
        block.append((key_column, path, not body.split(":", 1)[1].strip()))
        if not any(path.startswith(m + ".") for m in DATA_MAPPINGS):
            yield path


@cache
def documented() -> frozenset[str]:
    text = EXAMPLE.read_text()
    return frozenset(written_keys(yaml.safe_load(text))) | frozenset(commented_keys(text))


def leaves(paths: frozenset[str]) -> frozenset[str]:
    """The keys that hold a value: not a section of other documented keys."""
    return frozenset(p for p in paths if not any(q.startswith((p + ".", p + "[*]")) for q in paths))


def keys_read(path: Path, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key path the loader asks for while it reads `path`, list positions as [*]."""
    asked: set[str] = set()
    raw = _Section.raw

    def recording(self: _Section, key: str) -> Any:
        asked.add(re.sub(r"\[\d+\]", "[*]", self.path_of(key)))
        return raw(self, key)

    monkeypatch.setattr(_Section, "raw", recording)
    # The example's placeholders are refused; every key is still read.
    with contextlib.suppress(ConfigErrors):
        load_config(path, env={}, read_secret_files=False)
    return asked


U = "tests/unit/"
S = "tests/storage/"
INT = "tests/integration/"
B = "tests/browser/"
POLICY = U + "test_config_policy.py::test_settings_reach_the_core"
SOURCE = U + "test_config_policy.py::test_every_policy_field_has_exactly_one_source"
CHANGED = U + "test_config_policy.py::test_every_core_setting_arrives_as_written"
M = U + "test_core_machine.py::"

# Per documented key: tests that fail when its effect is taken away. For a setting the core
# obeys, the core's test of the behaviour, and a test that the value arrives in the Policy.
EFFECTS: dict[str, tuple[str, ...]] = {
    "homeserver.url": (
        INT + "test_startup.py::test_nobody_on_duty_the_chatter_is_told_at_once_and_may_wait",
    ),
    "homeserver.admin_token_file": (
        U + "test_config.py::test_example_file_with_placeholders_replaced_loads",
        INT + "test_purge.py::test_audit_after_normal_end",
        INT + "test_purge.py::test_without_admin_every_event_reads_back_redacted",
    ),
    "homeserver.admin_token": (
        INT + "test_purge.py::test_audit_after_normal_end",
        INT + "test_purge.py::test_without_admin_every_event_reads_back_redacted",
    ),
    "bot.user_id": (
        INT + "test_startup.py::test_a_data_dir_of_another_account_is_refused",
        CHANGED,  # the helpline's server name is the bot's
    ),
    "bot.password_file": (
        INT + "test_startup.py::test_nobody_on_duty_the_chatter_is_told_at_once_and_may_wait",
    ),
    "bot.password": (U + "test_config.py::test_environment_substitution",),
    "bot.display_name": (
        U + "test_messages.py::test_persona_while_waiting_is_the_bot_name",
        CHANGED,
    ),
    "storage.data_dir": (
        INT + "test_startup.py::test_a_second_instance_on_the_same_data_dir_refuses_to_start",
        INT + "test_file_modes.py::test_every_path_under_the_data_dir_is_private_after_a_run",
    ),
    "storage.store_key_file": (
        U + "test_crosssigning.py::test_a_wrong_store_key_never_makes_new_keys",
        POLICY,  # the block list's key when it has none of its own
    ),
    "storage.store_key": (
        U + "test_crosssigning.py::test_a_wrong_store_key_never_makes_new_keys",
        U + "test_config_keys.py::test_the_block_list_takes_the_store_key_given_inline",
    ),
    "encryption.trust": (
        U + "test_trust.py::test_build_names_the_policies",
        U + "test_trust.py::test_a_user_without_cross_signing_gets_nothing_under_the_strict_rule",
    ),
    "encryption.chatter_devices": (
        U
        + "test_trust.py::test_a_chatter_without_cross_signing_gets_keys_on_their_own_devices_and_it_is_told",  # noqa: E501
        INT + "test_crosssigning.py::test_a_chatter_whose_app_does_not_cross_sign",
        INT + "test_bridges.py::test_a_bridge_device_that_is_not_cross_signed",
    ),
    "encryption.undecryptable_grace": (
        U + "test_held.py::test_a_key_that_never_comes_becomes_unreadable_after_the_grace_period",
        INT + "test_undecryptable.py::test_a_message_whose_key_never_comes_makes_the_bot_ask_again",
    ),
    "intake.direct_messages": (
        M + "test_dm_intake_creates_a_room_and_welcomes_only_after_the_join",
        CHANGED,
    ),
    "intake.lobby_rooms": (
        M + "test_lobby_intake_redacts_first_and_holds_the_message_for_the_volunteer",
        INT + "test_flows.py::test_lobby_intake_redacts_at_once_and_moves_chatter_to_private_room",
    ),
    "intake.allowed_servers": (M + "test_allowed_servers", POLICY),
    "intake.consent_required": (M + "test_consent_step", POLICY),
    "intake.plaintext_direct": (
        U + "test_core_plaintext.py::test_refuse_opens_nothing_and_says_how_to_write_encrypted",
        POLICY,
    ),
    "volunteers.room": (M + "test_wait_reminders_repeat_to_the_staff_room", POLICY),
    "volunteers.members[*].user_id": (M + "test_accept_by_joining_the_offer_room", POLICY),
    "volunteers.members[*].alias": (M + "test_accept_by_joining_the_offer_room", POLICY),
    "volunteers.members[*].languages": (
        U + "test_core_routing.py::test_language_match_first",
        POLICY,
    ),
    "volunteers.members[*].max_sessions": (
        U + "test_core_routing.py::test_estimate_uses_the_volunteers_caps",
        POLICY,
    ),
    "volunteers.supervisors": (
        U + "test_core_blocking.py::test_someone_not_a_supervisor_is_refused_clearly",
        CHANGED,
    ),
    "routing.strategy": (U + "test_core_routing.py::test_machine_routes_by_strategy", POLICY),
    "routing.offer_timeout": (
        M + "test_offer_timeout_withdraws_counts_a_lapse_and_offers_to_the_next",
        POLICY,
    ),
    "routing.lapses_before_off_duty": (
        M + "test_lapses_put_a_volunteer_off_duty_and_tell_the_staff",
        CHANGED,
    ),
    "routing.language_fallback": (
        U + "test_core_routing.py::test_busy_speaker_falls_back_to_another_language",
        CHANGED,
    ),
    "routing.waiting_reminder": (
        M + "test_wait_reminders_repeat_to_the_staff_room",
        M + "test_a_zero_waiting_reminder_means_no_reminders",
        POLICY,
    ),
    "limits.max_duration": (M + "test_max_duration_ends_the_conversation", POLICY),
    "limits.warn_before": (M + "test_warnings_before_max_duration_to_both_sides", POLICY),
    "limits.max_extension": (M + "test_extend_up_to_the_cap", CHANGED),
    "limits.chatter_idle": (
        M + "test_idle_warning_then_idle_end_reset_by_chatter_messages",
        CHANGED,
    ),
    "limits.idle_warning_before": (
        M + "test_idle_warning_then_idle_end_reset_by_chatter_messages",
        CHANGED,
    ),
    "limits.queue_max_wait": (M + "test_queue_max_wait_ends_with_queue_timeout", CHANGED),
    "limits.queue_max_length": (M + "test_queue_full", POLICY),
    "limits.message_max_chars": (M + "test_too_long_is_refused", CHANGED),
    "limits.messages_per_minute": (M + "test_rate_limit", CHANGED),
    "limits.sessions_per_day": (M + "test_daily_cap", CHANGED),
    "admins": (
        U + "test_core_admin.py::test_an_admin_asks_for_a_reload_and_the_core_reads_no_file",
        U + "test_core_admin.py::test_anyone_else_is_told_reload_is_for_admins",
        INT + "test_reload.py::test_a_bad_file_keeps_the_old_config_and_the_admin_gets_the_count",
        CHANGED,
    ),
    "supervision.debrief_topics": (
        U
        + "test_core_care.py::test_a_conversation_tagged_with_a_debrief_topic_offers_one_at_its_end",  # noqa: E501
        U + "test_core_care.py::test_no_debrief_topics_no_debrief",
        CHANGED,
    ),
    "volunteers.members[*].language": (
        U + "test_core_volunteer_language.py::"
        "test_everything_in_their_conversation_room_is_in_their_language",
        U
        + "test_core_volunteer_language.py::test_a_volunteer_without_a_language_reads_the_default",
        CHANGED,
    ),
    "limits.volunteer_silence": (
        U + "test_core_supervision.py::"
        "test_a_silent_volunteer_is_nudged_then_the_supervisors_are_alerted",
        U + "test_core_supervision.py::test_silence_survives_a_restart_and_can_be_turned_off",
        CHANGED,
    ),
    "supervision.tell_chatter": (
        U + "test_core_supervision.py::test_the_chatter_is_told_only_when_configured",
        CHANGED,
    ),
    "privacy.purge_after": (M + "test_purge_timer_after_purge_after", POLICY),
    "privacy.relay_media": (
        U
        + "test_core_media.py::test_an_image_from_the_chatter_is_relayed_to_the_volunteer_and_recorded",  # noqa: E501
        U
        + "test_core_media.py::test_with_relaying_off_an_image_is_refused_with_the_old_text_and_kept_for_the_purge",  # noqa: E501
        POLICY,
    ),
    "privacy.media.max_bytes": (
        U + "test_core_media.py::test_the_allow_list_and_limit_come_from_the_policy",
        POLICY,
    ),
    "privacy.media.types": (
        U + "test_core_media.py::test_the_allow_list_and_limit_come_from_the_policy",
        POLICY,
    ),
    "privacy.relay_read_receipts": (
        M + "test_read_receipts_pass_only_in_the_directions_configured",
        POLICY,
    ),
    "privacy.ask_rating": (M + "test_rating", M + "test_no_rating_unless_asked", POLICY),
    "privacy.retention_max_lifetime": (
        INT
        + "test_effects.py::test_a_conversation_room_asks_the_server_to_drop_it_after_the_retention",  # noqa: E501
    ),
    "privacy.block_list_key_file": (
        U
        + "test_core_blocking.py::test_what_is_stored_of_a_block_is_the_hash_the_end_and_the_number",  # noqa: E501
        CHANGED,
    ),
    "privacy.block_list_key": (
        U
        + "test_core_blocking.py::test_what_is_stored_of_a_block_is_the_hash_the_end_and_the_number",  # noqa: E501
        U + "test_config_keys.py::test_a_block_list_key_given_inline_hashes_the_block_list",
    ),
    "opening_hours.timezone": (
        U + "test_core_hours.py::test_opening_is_told_on_the_helplines_clock",
        CHANGED,
    ),
    "opening_hours.always_open": (U + "test_core_hours.py::test_always_open", CHANGED),
    "opening_hours.weekly": (
        U + "test_core_hours.py::test_weekly_and_overnight",
        U + "test_config.py::test_opening_hours_pass_midnight_and_respect_closed_dates",
        M + "test_closed_hours_dm_is_answered_in_the_dm_without_a_session",
    ),
    "opening_hours.closed_dates": (
        U + "test_core_hours.py::test_closed_dates",
        U + "test_config.py::test_opening_hours_pass_midnight_and_respect_closed_dates",
    ),
    "language.default": (M + "test_chatter_switches_language", CHANGED),
    "language.available": (M + "test_chatter_switches_language", POLICY),
    "messages": (U + "test_messages.py::test_an_override_replaces_a_text_in_one_language_only",),
    "topics": (M + "test_tags_are_validated_against_topics", POLICY),
    "logging.level": (INT + "test_operations.py::test_json_logs_log_level_and_sigterm",),
    "logging.json": (INT + "test_operations.py::test_json_logs_log_level_and_sigterm",),
    "http.host": (INT + "test_operations.py::test_healthz_and_metrics_after_a_conversation",),
    "http.port": (
        INT + "test_operations.py::test_healthz_and_metrics_after_a_conversation",
        U + "test_http.py::test_port_zero_means_off",
    ),
    "webchat.enabled": (
        INT + "test_webchat.py::test_the_listener_is_off_by_default",
        M + "test_someone_from_a_server_not_served_is_pointed_at_the_web_chat",
        CHANGED,
    ),
    "webchat.listen": (
        INT
        + "test_webchat.py::test_a_web_chatter_talks_to_a_volunteer_and_quick_exit_erases_everything",  # noqa: E501
    ),
    "webchat.trusted_proxies": (
        INT
        + "test_webchat.py::test_behind_a_trusted_proxy_the_rate_limit_is_per_forwarded_address",
        INT + "test_webchat.py::test_without_trusted_proxies_x_forwarded_for_is_ignored",
    ),
    "webchat.public_url": (
        M + "test_someone_from_a_server_not_served_is_pointed_at_the_web_chat",
        CHANGED,
    ),
    "webchat.account_prefix": (
        INT + "test_webchat.py::test_closed_hours_are_refused_before_an_account_is_made",
    ),
    "webchat.idle_erase": (
        INT + "test_webchat.py::test_an_account_that_never_starts_is_erased_after_idle_erase",
    ),
    "webchat.max_open_accounts": (INT + "test_webchat.py::test_the_cap_of_open_accounts",),
    "webchat.rate_limit.accounts": (
        U + "test_webchat_guard.py::test_the_rate_limit_counts_per_address_and_forgets",
        INT + "test_webchat.py::test_refusals_bad_proof_rate_limit_and_cap",
    ),
    "webchat.rate_limit.per": (
        U + "test_webchat_guard.py::test_the_rate_limit_counts_per_address_and_forgets",
    ),
    "webchat.pow_difficulty": (
        U + "test_webchat_guard.py::test_a_challenge_not_made_here_or_not_solved_is_refused",
        INT + "test_webchat.py::test_refusals_bad_proof_rate_limit_and_cap",
    ),
    "webchat.quick_exit_url": (
        B
        + "test_webchat_page.py::test_a_chatter_in_a_browser_talks_to_a_volunteer_reloads_and_quick_exits",  # noqa: E501
    ),
    "webchat.frame_ancestors": (
        B
        + "test_webchat_page.py::test_the_embed_snippet_opens_the_chat_and_its_quick_exit_leaves_the_site",  # noqa: E501
        INT + "test_webchat.py::test_the_page_headers",
    ),
    "webchat.homeserver_url": (
        INT
        + "test_webchat.py::test_the_page_is_told_the_homeserver_address_and_the_helplines_own_words",  # noqa: E501
    ),
    "webchat.texts": (
        INT
        + "test_webchat.py::test_the_page_is_told_the_homeserver_address_and_the_helplines_own_words",  # noqa: E501
    ),
    "bot.device_name": (INT + "test_startup.py::test_the_bots_device_carries_the_configured_name",),
}

# Documented keys whose effect no test checks yet, with what such a test must show: none
# now, and the test below keeps it so.
NO_EFFECT_TEST_YET: dict[str, str] = {}

# Keys of earlier releases, refused with a pointer to what replaced them: asked for only to
# be refused, and never documented again.
REFUSED: dict[str, str] = {
    "homeserver.server_name": U
    + "test_config.py::test_server_name_is_refused_with_where_it_comes_from_now",
    "privacy.deactivate_prefix": U
    + "test_config_webchat.py::test_the_removed_deactivate_prefix_points_at_the_web_chat",
}


@cache
def functions_in(file: str) -> frozenset[str]:
    tree = ast.parse((REPO / file).read_text())
    return frozenset(
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )


def missing_tests(ids: list[str]) -> list[str]:
    gone = []
    for test_id in ids:
        file, _, name = test_id.partition("::")
        if not (REPO / file).is_file() or name not in functions_in(file):
            gone.append(test_id)
    return gone


def test_the_example_shows_its_optional_keys_commented_out() -> None:
    # The parser of commented-out keys must find these, and no prose.
    assert set(commented_keys(EXAMPLE.read_text())) == {
        "homeserver.admin_token",
        "bot.password",
        "storage.store_key",
        "privacy.block_list_key_file",
        "privacy.block_list_key",
        "webchat.public_url",
        "webchat.homeserver_url",
        "webchat.texts",
    }


def test_every_documented_key_is_read_by_the_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = tmp_path / "config.yaml"
    example.write_text(EXAMPLE.read_text())
    read = keys_read(example, monkeypatch)
    assert len(documented()) > 80
    assert sorted(documented() - read) == []


def test_every_documented_key_names_the_tests_of_its_effect() -> None:
    keys = leaves(documented())
    listed = set(EFFECTS) | set(NO_EFFECT_TEST_YET)
    assert sorted(keys - listed) == [], "add the new key to EFFECTS with the tests of its effect"
    assert sorted(listed - keys) == [], "the example no longer documents these"
    assert not set(EFFECTS) & set(NO_EFFECT_TEST_YET)
    assert all(EFFECTS.values())
    assert missing_tests([t for tests in EFFECTS.values() for t in tests]) == []


def test_refused_keys_are_read_to_be_refused_and_no_longer_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not set(REFUSED) & documented()
    assert missing_tests(list(REFUSED.values())) == []
    assert set(REFUSED) <= keys_read(write_config(tmp_path), monkeypatch)


def test_no_documented_key_lacks_a_test_of_its_effect() -> None:
    assert NO_EFFECT_TEST_YET == {}


def test_a_block_list_key_given_inline_hashes_the_block_list(tmp_path: Path) -> None:
    text = MINIMAL + "privacy: {block_list_key: '${BLOCK_KEY}'}\n"
    config = load_config(write_config(tmp_path, text), env={"BLOCK_KEY": "k" * 20})
    assert config.block_key == b"k" * 20
    assert problems(write_config(tmp_path, MINIMAL + "privacy: {block_list_key: short}\n"))


def test_the_block_list_takes_the_store_key_given_inline(tmp_path: Path) -> None:
    text = MINIMAL.replace("  store_key_file: secrets/store_key", "  store_key: ${STORE}")
    config = load_config(write_config(tmp_path, text), env={"STORE": "s" * 20})
    assert config.storage.store_key == "s" * 20
    assert config.block_key == b"s" * 20
