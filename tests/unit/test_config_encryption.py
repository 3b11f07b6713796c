"""The encryption section: the trust policy by name, and the grace period for messages
whose key has not arrived."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.config import ChatterDevices, TrustRule, load_config
from tests.unit.test_config import MINIMAL, line_of, only_problem, write_config


def test_defaults_are_element_compatible_and_a_minute_of_grace(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    assert config.encryption.trust is TrustRule.CROSS_SIGNED
    assert config.encryption.undecryptable_grace == timedelta(seconds=60)
    assert config.encryption.chatter_devices is ChatterDevices.FALLBACK_TO_UNSIGNED


def test_chatter_devices_is_one_of_two_rules(tmp_path: Path) -> None:
    text = MINIMAL + "encryption:\n  chatter_devices: cross_signed_only\n"
    config = load_config(write_config(tmp_path, text), env={})
    assert config.encryption.chatter_devices is ChatterDevices.CROSS_SIGNED_ONLY

    path = write_config(tmp_path, MINIMAL + "encryption:\n  chatter_devices: everyone\n")
    problem = only_problem(path)
    assert problem.path == "encryption.chatter_devices"
    assert "fallback_to_unsigned" in problem.expected
    assert problem.found == '"everyone"'
    assert problem.line == line_of(path, "chatter_devices")


def test_grace_is_read_as_a_duration(tmp_path: Path) -> None:
    text = MINIMAL + "encryption:\n  trust: all_devices\n  undecryptable_grace: 2m\n"
    config = load_config(write_config(tmp_path, text), env={})
    assert config.encryption.trust is TrustRule.ALL_DEVICES
    assert config.encryption.undecryptable_grace == timedelta(minutes=2)


def test_grace_must_be_positive_and_at_most_an_hour(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "encryption:\n  undecryptable_grace: 0s\n")
    problem = only_problem(path)
    assert problem.path == "encryption.undecryptable_grace"
    assert "longer than zero" in problem.expected

    path = write_config(tmp_path, MINIMAL + "encryption:\n  undecryptable_grace: 2h\n")
    problem = only_problem(path)
    assert problem.path == "encryption.undecryptable_grace"
    assert "at most 1h" in problem.expected
    assert problem.found == "2h"
    assert problem.line == line_of(path, "undecryptable_grace")
