"""Effects and inputs to and from JSON-safe dicts, for the outbox.

An effect is stored (with its transaction ID) in the same transaction as the state change
that produced it, and carried out afterwards; after a crash it is read back from here.
The codec is generic over the frozen dataclasses in `bot.core.events`: a dict carries the
class name under "type" and each field by name; RoomRef, Text and enums nest.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any

from bot.core import events
from bot.core.model import Role

_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        events.CreateRoom,
        events.Say,
        events.SetPersona,
        events.Relay,
        events.RelayMedia,
        events.RelayEdit,
        events.RelayRedaction,
        events.SetTyping,
        events.RelayReceipt,
        events.Redact,
        events.RedactRoom,
        events.Withdraw,
        events.Retire,
        events.Invite,
        events.RecordMedia,
        events.Purge,
        events.Reload,
        events.RoomCreated,
        events.RoomFailed,
        events.PurgeFinished,
        events.TimerFired,
        events.MediaRefused,
    )
}


def encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = encode(getattr(obj, f.name))
        return out
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [encode(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    return obj


def decode_effect(data: dict[str, Any]) -> Any:
    cls = _TYPES[data["type"]]
    return _build(cls, data)


def _build(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {name: _value(hint, data[name]) for name, hint in _fields(cls) if name in data}
    return cls(**kwargs)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, type hint) of each field; resolving the hints is the slow part of decoding,
    and the outbox decodes every effect it carries out."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if isinstance(value, dict) and "type" in value:
            for arg in typing.get_args(hint):
                if getattr(arg, "__name__", None) == value["type"]:
                    return _build(arg, value)
        # a NewType'd str/int or None: keep the plain value
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        return tuple(_value(args[0], v) for v in value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value)
    if hint is Role:
        return Role(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if origin is dict:
        return dict(value)
    return value
