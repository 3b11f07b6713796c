"""The intake section's answer to a direct chat that is not encrypted."""

from __future__ import annotations

from pathlib import Path

from bot.config import build_policy, load_config
from bot.core.model import PlaintextDirect
from tests.unit.test_config import MINIMAL, line_of, only_problem, write_config


def test_a_plaintext_direct_chat_opens_a_conversation_by_default(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    assert config.intake.plaintext_direct is PlaintextDirect.OPEN


def test_refuse_is_read_and_reaches_the_core(tmp_path: Path) -> None:
    text = MINIMAL + "intake:\n  plaintext_direct: refuse\n"
    config = load_config(write_config(tmp_path, text), env={})
    assert config.intake.plaintext_direct is PlaintextDirect.REFUSE
    assert build_policy(config, None).plaintext_direct is PlaintextDirect.REFUSE


def test_an_unknown_answer_names_its_key_and_the_choices(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL + "intake:\n  plaintext_direct: refused\n")
    problem = only_problem(path)
    assert problem.path == "intake.plaintext_direct"
    assert problem.expected == "one of open, refuse"
    assert problem.hint == 'did you mean "refuse"?'
    assert problem.line == line_of(path, "plaintext_direct")
