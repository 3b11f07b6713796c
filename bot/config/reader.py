"""`_Section`: one mapping of the file being read, key by key.

It remembers the keys asked for, so that every other key can be reported as unknown with
the closest known one as a hint; reads lists item by item; and reads secrets given inline
or from a ``*_file``, never both.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from bot.config.fields import Parser, _path, _secret_text
from bot.config.source import _BAD, _MISSING, _Checker, _join, _plural, _show

# What a *_file secret holds when load_config was told not to read secret files.
_UNREAD_SECRET = "<not read>"


class _Section:
    """A mapping being read. Remembers the keys asked for, so the rest can be reported."""

    def __init__(self, chk: _Checker, path: str, data: Any, *, absent: bool = False) -> None:
        self.chk = chk
        self.path = path
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        # A section already reported as missing or broken: its required keys stay quiet.
        self.absent = absent
        self.asked: list[str] = []

    def path_of(self, key: str) -> str:
        return _join(self.path, key)

    def raw(self, key: str) -> Any:
        if key not in self.asked:
            self.asked.append(key)
        return self.data.get(key, _MISSING)

    def has(self, key: str) -> bool:
        value = self.raw(key)
        return value is not _MISSING and value is not None

    def get(
        self,
        key: str,
        parse: Parser,
        *,
        default: Any = _MISSING,
        expected: str | None = None,
        **kwargs: Any,
    ) -> Any:
        value = self.raw(key)
        path = self.path_of(key)
        if value is _BAD:
            return _BAD
        if value is _MISSING or value is None:
            if default is not _MISSING:
                return default
            return self.missing(key, expected or "a value", value)
        return parse(self.chk, path, value, **kwargs)

    def missing(self, key: str, expected: str, value: Any = _MISSING) -> Any:
        if self.absent:
            return _BAD
        path = self.path_of(key)
        if value is None:
            return self.chk.problem(path, expected, "an empty value", self.chk.empty_hint(path))
        return self.chk.problem(path, expected, "nothing (the key is missing)")

    def section(self, key: str, *, required: bool = False, expected: str = "") -> _Section:
        value = self.raw(key)
        path = self.path_of(key)
        if value is _MISSING or value is None:
            if required and not self.absent:
                self.chk.problem(
                    path,
                    f"a {key}: section with {expected}",
                    "nothing" if value is _MISSING else "an empty section",
                    "config.example.yaml shows every key with its default",
                )
            return _Section(self.chk, path, {}, absent=required)
        return self.mapping_at(path, value)

    def mapping_at(self, path: str, value: Any) -> _Section:
        if value is _BAD:
            return _Section(self.chk, path, {}, absent=True)
        if not isinstance(value, dict):
            self.chk.problem(path, "a mapping of keys (key: value lines, indented)", _show(value))
            return _Section(self.chk, path, {}, absent=True)
        return _Section(self.chk, path, value)

    def items(
        self,
        key: str,
        parse: Parser,
        *,
        default: tuple[Any, ...] | Any = _MISSING,
        expected: str = "a list",
        unique: bool = True,
        non_empty: bool = False,
        **kwargs: Any,
    ) -> Any:
        """A list whose items are each checked with ``parse``; duplicates are problems."""
        value = self.raw(key)
        path = self.path_of(key)
        if value is _BAD:
            return _BAD
        if value is _MISSING or value is None:
            if default is not _MISSING:
                return default
            return self.missing(key, expected, value)
        if not isinstance(value, list):
            example = f"[{_show(value)}]" if isinstance(value, str) else "[a, b]"
            return self.chk.problem(
                path, expected, _show(value), f"write a list, even of one item: {example}"
            )
        if non_empty and not value:
            return self.chk.problem(path, f"{expected} with at least one item", "an empty list")
        results: list[Any] = []
        first_seen: dict[Any, int] = {}
        broken = False
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            parsed = _BAD if item is _BAD else parse(self.chk, item_path, item, **kwargs)
            if parsed is _BAD:
                broken = True
                continue
            if unique and parsed in first_seen:
                self.chk.problem(
                    item_path,
                    "each entry once",
                    f"{_show(item)} a second time",
                    f"it is already entry [{first_seen[parsed]}]",
                )
                broken = True
                continue
            first_seen[parsed] = index
            results.append(parsed)
        return _BAD if broken else tuple(results)

    def secret(self, key: str, *, required: bool, what: str, min_length: int | None = None) -> Any:
        """A secret given inline as ``key`` or read from the file named by ``key_file``."""
        file_key = f"{key}_file"
        inline, named = self.has(key), self.has(file_key)
        if inline and named:
            return self.chk.problem(
                self.path_of(file_key),
                f"either {key} or {file_key}, not both",
                "both",
                f"keep {file_key} (a file the bot reads at start) or {key}, and remove the other",
            )
        if not inline and not named:
            if required and not self.absent:
                return self.chk.problem(
                    self.path_of(key),
                    f"{what}, given as {file_key} or {key}",
                    "neither",
                    f"{file_key}: /run/secrets/... is safest; {key}: ${{SOME_VARIABLE}} works too",
                )
            return None if not required else _BAD
        if inline:
            value = self.get(key, _secret_text)
            path = self.path_of(key)
        else:
            path = self.path_of(file_key)
            file_path = self.get(file_key, _path)
            if file_path is _BAD:
                return _BAD
            if not self.chk.read_secret_files:
                return _UNREAD_SECRET
            value = _read_secret_file(self.chk, path, file_path, what)
        if value is _BAD:
            return _BAD
        if min_length is not None and len(value) < min_length:
            return self.chk.problem(
                path,
                f"{what}, at least {min_length} characters long",
                _plural(len(value), "character"),
                "generate one with: openssl rand -base64 32",
            )
        return value

    def done(self) -> None:
        """Report every key that nobody asked for, with the closest known key as a hint."""
        for key in self.data:
            if key in self.asked:
                continue
            close = difflib.get_close_matches(key, self.asked, n=1, cutoff=0.6)
            if close:
                hint = f'did you mean "{close[0]}"?'
            elif len(self.asked) <= 12:
                hint = "known keys here: " + ", ".join(self.asked)
            else:
                hint = None
            where = f"in {self.path}" if self.path else "at the top level"
            self.chk.problem(self.path_of(key), f"a key known {where}", f'"{key}"', hint)


def _os_reason(error: OSError) -> str:
    if isinstance(error, IsADirectoryError):
        return "a directory"
    return (error.strerror or type(error).__name__).lower()


def _read_secret_file(chk: _Checker, path: str, file_path: Path, what: str) -> Any:
    try:
        content = file_path.read_text(encoding="utf-8")
    except OSError as e:
        reason = _os_reason(e)
        return chk.problem(
            path,
            f"a readable file with {what}",
            f"{_show(str(file_path))} ({reason})",
            "the file must exist and be readable by the user the bot runs as",
        )
    except UnicodeDecodeError:
        return chk.problem(path, f"a UTF-8 text file with {what}", f"{_show(str(file_path))}")
    # Editors and `echo` add a final newline; it is never part of the secret.
    content = content.rstrip("\r\n")
    if not content:
        return chk.problem(path, f"a file with {what}", f"{_show(str(file_path))}, which is empty")
    return content
