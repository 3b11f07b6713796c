"""The problems a config file can have, and the one exception that carries them.

A problem is worded for the volunteer coordinator who edits the file: the key path, its
line, what was expected, what was found, and a hint where one helps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the config file, worded for the person who edits it."""

    path: str  # key path like "limits.warn_before[1]"; "" for the file as a whole
    line: int | None  # 1-based line in the file, when the problem has one
    expected: str
    found: str
    hint: str | None = None
    file: str = ""  # the config file's name as the user gave it

    def __str__(self) -> str:
        where = self.file or "config"
        if self.line is not None:
            where += f":{self.line}"
        subject = f" {self.path}:" if self.path else ""
        text = f"{where}:{subject} expected {self.expected}, found {self.found}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigErrors(Exception):
    """Every problem found in a config file; raised only when there is at least one."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
