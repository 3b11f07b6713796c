"""The YAML source: plain data out of the file, with the line of every key kept.

`_Checker` parses the text, records the line of each key path and list item, replaces
``${NAME}`` from the environment (``$${`` is a literal ``${``), and collects every problem.
A value found wrong becomes `_BAD`, so that checks depending on it stay silent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bot.config.errors import ConfigProblem

_ENV_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Bad:
    """Stands in for a value already reported as wrong, so later checks skip it."""

    def __repr__(self) -> str:
        return "<bad value>"


_BAD: Any = _Bad()
# A key that is not in the file at all (None is a key with an empty value).
_MISSING: Any = object()


def _show(value: Any) -> str:
    """How a found value is quoted in a problem message."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Checker:
    """Holds what is known about the file and collects problems while reading it."""

    def __init__(
        self, file: str, base_dir: Path, env: Mapping[str, str], read_secret_files: bool
    ) -> None:
        self.file = file
        self.base_dir = base_dir
        self.env = env
        self.read_secret_files = read_secret_files
        self.problems: list[ConfigProblem] = []
        self.lines: dict[str, int] = {}  # key path -> line of its key (or list item)
        # Plain scalars that YAML 1.1 turned into non-strings (no -> false, 14:00 -> 840):
        # string-typed keys take the text as written instead.
        self.raw_text: dict[str, str] = {}
        self.from_env: set[str] = set()  # paths whose value came from ${...}
        self.source_lines: list[str] = []

    # ---- problems

    def line_of(self, path: str) -> int | None:
        # A missing key has no line of its own: point at the nearest parent that has one.
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = _parent(path)

    def problem(self, path: str, expected: str, found: str, hint: str | None = None) -> Any:
        self.problems.append(
            ConfigProblem(path, self.line_of(path), expected, found, hint, file=self.file)
        )
        return _BAD

    def file_problem(self, expected: str, found: str, line: int | None = None) -> None:
        self.problems.append(ConfigProblem("", line, expected, found, None, file=self.file))

    # ---- YAML to plain data

    def parse(self, text: str) -> Any:
        self.source_lines = text.splitlines()
        loader: yaml.SafeLoader | None = None
        try:
            # The reader checks for unprintable characters already when it is created.
            loader = yaml.SafeLoader(text)
            node = loader.get_single_node()
            if node is None:
                self.file_problem(
                    "a mapping of sections like homeserver: and bot:", "an empty file"
                )
                return _BAD
            return self._convert(loader, node, "", set())
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            what = e.problem or e.context or "a YAML error"
            line = mark.line + 1 if mark else None
            hint = _yaml_hint(what)
            self.problems.append(
                ConfigProblem("", line, "valid YAML", f"a syntax error ({what})", hint, self.file)
            )
            return _BAD
        except yaml.YAMLError as e:  # reader errors: control characters and the like
            position = getattr(e, "position", None)
            line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
            self.file_problem("valid YAML", f"an unreadable file ({e})", line)
            return _BAD
        finally:
            if loader is not None:
                loader.dispose()

    def _convert(self, loader: yaml.SafeLoader, node: yaml.Node, path: str, stack: set[int]) -> Any:
        if id(node) in stack:
            return self.problem(path, "a value", "an alias that contains itself")
        if isinstance(node, yaml.MappingNode):
            return self._convert_mapping(loader, node, path, stack | {id(node)})
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                item_path = f"{path}[{index}]"
                self.lines[item_path] = item.start_mark.line + 1
                items.append(self._convert(loader, item, item_path, stack | {id(node)}))
            return items
        assert isinstance(node, yaml.ScalarNode)
        try:
            value = loader.construct_object(node)
        except ValueError:  # a date-shaped value that is no date, like 2025-13-45
            value = node.value
        except yaml.YAMLError:
            return self.problem(
                path,
                "a plain value",
                f"the YAML tag {node.tag}",
                'text starting with ! must be quoted, like "!abc123:example.org"',
            )
        if isinstance(value, str):
            return self._substitute(path, value)
        if node.style is None and value is not None:
            self.raw_text[path] = node.value
        return value

    def _convert_mapping(
        self, loader: yaml.SafeLoader, node: yaml.MappingNode, path: str, stack: set[int]
    ) -> Any:
        # Duplicates are looked for before merge keys (<<) are expanded, because a key that
        # overrides a merged one is fine, while the same key written twice is a mistake.
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in seen:
                    self.problems.append(
                        ConfigProblem(
                            _join(path, key),
                            line,
                            "each key once",
                            f'"{key}" a second time',
                            f"it was already given on line {seen[key]}; keep one",
                            self.file,
                        )
                    )
                seen.setdefault(key, line)
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                self.problems.append(
                    ConfigProblem(path, line, "a plain key", "a list or mapping", None, self.file)
                )
                continue
            # Keys are taken as written: "no:" or "on:" stay text, unlike YAML 1.1 values.
            key = str(key_node.value)
            child = _join(path, key)
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self._convert(loader, value_node, child, stack)
        return result

    def _substitute(self, path: str, value: str) -> Any:
        if "${" not in value:
            return value
        missing: list[str] = []
        invalid: list[str] = []

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"  # the escape, so that a password may contain "${"
            name = match.group(1)
            if not _ENV_NAME_RE.fullmatch(name):
                invalid.append(name)
                return ""
            if name not in self.env:
                missing.append(name)
                return ""
            return self.env[name]

        result = _ENV_RE.sub(replace, value)
        for name in invalid:
            self.problem(
                path,
                "an environment variable name like ${HELPLINE_BOT_PASSWORD}",
                _show("${" + name + "}"),
                "names use letters, digits and _; write $${ for a literal ${",
            )
        for name in missing:
            self.problem(
                path,
                f"the environment variable {name} to be set",
                "it unset",
                f"set {name} in the bot's environment, or write the value here",
            )
        if missing or invalid:
            return _BAD
        if result != value:
            self.from_env.add(path)
        return result

    def empty_hint(self, path: str) -> str | None:
        # An unquoted "#room:server" is a YAML comment, so the value arrives empty.
        line = self.lines.get(path)
        if (
            line is not None
            and line <= len(self.source_lines)
            and "#" in self.source_lines[line - 1]
        ):
            return (
                "YAML reads an unquoted # as the start of a comment; "
                'put the value in quotes, like "#room:example.org"'
            )
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


def _yaml_hint(problem: str) -> str | None:
    for char in "@`!%&*":
        if f"'{char}'" in problem:
            return f'values starting with {char} must be quoted, like "{char}name:example.org"'
    if "tab" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return 'a value containing ": " must be quoted, or a key is indented wrongly'
    return "check the indentation and the quotes on this line and the one before"
