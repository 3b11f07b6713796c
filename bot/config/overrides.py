"""The messages section: the texts an organisation overrides, per language.

Keys and placeholders are checked against bot.messages, so that a misspelt key or
``{positon}`` is found by check-config instead of reaching a chatter.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
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
    catalogue = _MessageCatalogue.load()
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
        known = catalogue.texts.get(lang) if catalogue is not None else None
        overrides: dict[str, str] = {}
        for key in section.data:
            if known is not None and key not in known:
                continue  # reported by done() below, with a "did you mean"
            text = section.get(key, _text)
            if catalogue is not None and text is not _BAD:
                catalogue.check_placeholders(s.chk, section.path_of(key), key, text)
            overrides[key] = text
        if known is not None:
            section.asked = list(known)  # the catalogue's keys are the known ones here
        section.done()
        result[lang] = MappingProxyType(overrides)
    return MappingProxyType(result)


@dataclass(frozen=True, slots=True)
class _MessageCatalogue:
    """What bot.messages tells about its texts, as far as it tells it."""

    texts: Mapping[str, Mapping[str, str]]  # language -> key -> template
    params: Mapping[str, Iterable[str]] | None  # key -> placeholders the bot fills in
    common: tuple[str, ...]  # placeholders every template may use
    placeholders: Callable[[str], set[str]] | None  # the names a template uses

    @classmethod
    def load(cls) -> _MessageCatalogue | None:
        # Imported lazily: bot.messages belongs to another part of the bot and may not exist
        # yet. Without it keys go unchecked, which beats refusing every override.
        try:
            module = importlib.import_module("bot.messages")
        except ImportError:
            return None
        texts = getattr(module, "CATALOGUE", None)
        if not isinstance(texts, Mapping):
            return None
        params = getattr(module, "PARAMS", None)
        placeholders = getattr(module, "placeholders", None)
        return cls(
            texts={k: v for k, v in texts.items() if isinstance(v, Mapping)},
            params=params if isinstance(params, Mapping) else None,
            common=tuple(getattr(module, "COMMON", ())),
            placeholders=placeholders if callable(placeholders) else None,
        )

    def check_placeholders(self, chk: _Checker, path: str, key: str, text: str) -> None:
        # The bot leaves a {name} it cannot fill in visible, so a misspelt one would reach a
        # chatter as "{positon}". Checked with bot.messages' own reading of a template.
        if self.params is None or self.placeholders is None or key not in self.params:
            return
        allowed = set(self.params[key]) | set(self.common)
        unknown = sorted(self.placeholders(text) - allowed)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
            chk.problem(
                path,
                "only the placeholders " + ", ".join("{" + n + "}" for n in sorted(allowed)),
                ", ".join("{" + n + "}" for n in unknown),
                f"did you mean {{{close[0]}}}?" if close else "write {{ for a literal {",
            )
