"""The messages section: the texts an organisation overrides, per language.

Keys and placeholders are checked against bot.messages, so that a misspelt key or
``{positon}`` is found by check-config instead of reaching a chatter.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any

from bot.config.fields import _text
from bot.config.model import LanguageConfig
from bot.config.reader import _Section
from bot.config.source import _BAD, _MISSING, _Checker, _show


def _read_messages(root: _Section, language: LanguageConfig) -> Any:
    value = root.raw("messages")
    if value is _MISSING or value is None:
        return MappingProxyType({})
    s = root.mapping_at("messages", value)
    catalogue = _catalogue()
    result: dict[str, Mapping[str, str]] = {}
    for lang, texts in s.data.items():
        lang_path = s.path_of(lang)
        s.asked.append(lang)  # every language is read below; none is "unknown"
        if language.available is not _BAD and lang not in language.available:
            s.chk.problem(
                lang_path,
                "a language from language.available (" + ", ".join(language.available) + ")",
                _show(lang),
            )
            continue
        section = s.mapping_at(lang_path, texts)
        # None: no catalogue, or no texts in this language; its keys go unchecked.
        known = catalogue.CATALOGUE.get(lang) if catalogue is not None else None
        overrides: dict[str, str] = {}
        for key in section.data:
            if known is not None and key not in known:
                continue  # reported by done() below, with a "did you mean"
            text = section.get(key, _text)
            if catalogue is not None and text is not _BAD:
                _check_placeholders(catalogue, s.chk, section.path_of(key), key, text)
            overrides[key] = text
        if known is not None:
            section.asked = list(known)  # the catalogue's keys are the known ones here
        section.done()
        result[lang] = MappingProxyType(overrides)
    return MappingProxyType(result)


def _check_placeholders(
    catalogue: ModuleType, chk: _Checker, path: str, key: str, text: str
) -> None:
    # The bot leaves a {name} it cannot fill in visible, so a misspelt one would reach a
    # chatter as "{positon}". Checked with bot.messages' own reading of a template.
    if key not in catalogue.PARAMS:
        return
    allowed = set(catalogue.PARAMS[key]) | set(catalogue.COMMON)
    unknown = sorted(catalogue.placeholders(text) - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        chk.problem(
            path,
            "only the placeholders " + ", ".join("{" + n + "}" for n in sorted(allowed)),
            ", ".join("{" + n + "}" for n in unknown),
            f"did you mean {{{close[0]}}}?" if close else "write {{ for a literal {",
        )


def _catalogue() -> ModuleType | None:
    """bot.messages: its texts, the placeholders each may use, and its reading of them.

    Looked up each time a config is read, not imported with this module, so that a test can
    put a small catalogue in its place. Without one, keys go unchecked, which beats refusing
    every override.
    """
    try:
        return importlib.import_module("bot.messages")
    except ImportError:
        return None
