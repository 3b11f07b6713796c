"""nio's event and response schemas, checked by compiled validators instead of jsonschema.

nio checks every sync response, every event in it, and every decrypted event against a
JSON schema, building a fresh jsonschema validator each time: about ten checks per relayed
message, 0.1-0.3 ms each, which made schema checking the largest single cost of the
bot's CPU per message (bench/relay_latency.py). fastjsonschema compiles each schema once
into plain Python that does the same checks 20-25x faster.

Same rules, same results: the compiled checks use Draft 4 like nio, fill in the schema's
defaults like nio's `extend_with_default` does, know nio's `user_id` and `http_url` formats,
and raise jsonschema's `ValidationError`, which is what nio's callers catch. A schema that
does not compile (nio's `delete_devices` has a malformed one) and any schema that is not
one of nio's own `Schemas` keeps nio's jsonschema path. tests/unit/test_schemas.py checks
the two paths agree on thousands of generated and mutated instances. Putting them in
nio's place is a patch, in `bot.matrix.patches.use_compiled_schemas`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any, ClassVar

import fastjsonschema
import nio.schemas
from jsonschema.exceptions import ValidationError

_Check = Callable[[Any], Any]

_FORMATS: dict[str, Any] = {
    # nio's own checkers (nio/schemas.py), as predicates
    "user_id": lambda v: v.startswith("@") and ":" in v,
    "http_url": r"^https?://.+",
    # used by nio's schemas but registered with no checker: jsonschema lets anything pass
    "room_id": lambda v: True,
}

# nio validates with Draft 4, which has no `const`: nio's `"const": "m.text"` checks nothing,
# and the compiled checks must not start enforcing it (fastjsonschema defaults to Draft 7).
_DRAFT4 = "http://json-schema.org/draft-04/schema#"

NIO_VALIDATOR = nio.schemas.Validator  # nio's own, before any patch


def with_nio_defaults(schema: Any) -> Any:
    """A copy of `schema` whose compiled check fills in defaults exactly as nio does.

    nio fills a property's default when jsonschema reaches the `properties` keyword, and
    jsonschema then validates the filled-in value too, filling the defaults inside it; a
    `required` listed after `properties` therefore always finds a property that has a
    default. fastjsonschema checks `required` first and puts a default in as it is. So:
    each default becomes the value nio would end up with, and a property with a default
    leaves a `required` that comes after `properties`.
    """
    if isinstance(schema, list):
        return [with_nio_defaults(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: with_nio_defaults(v) if k != "default" else v for k, v in schema.items()}
    props = schema.get("properties")
    if isinstance(props, dict):
        for key, sub in props.items():
            if isinstance(sub, dict) and "default" in sub:
                filled = copy.deepcopy(sub["default"])
                with contextlib.suppress(ValidationError):
                    NIO_VALIDATOR(sub, format_checker=nio.schemas.Checker).validate(filled)
                out["properties"][key]["default"] = filled
        required = schema.get("required")
        keys = list(schema)
        if isinstance(required, list) and keys.index("properties") < keys.index("required"):
            defaulted = {
                k for k, sub in props.items() if isinstance(sub, dict) and "default" in sub
            }
            out["required"] = [k for k in required if k not in defaulted]
    return out


def compile_all() -> dict[int, tuple[dict[str, Any], _Check]]:
    """Every schema in nio's `Schemas` that compiles, by the id of its dict."""
    out: dict[int, tuple[dict[str, Any], _Check]] = {}
    for name, schema in vars(nio.schemas.Schemas).items():
        if name.startswith("_") or not isinstance(schema, dict):
            continue
        try:
            check = fastjsonschema.compile(
                {**with_nio_defaults(schema), "$schema": _DRAFT4},
                formats=_FORMATS,
                use_default=True,
            )
        except fastjsonschema.JsonSchemaDefinitionException:
            continue  # stays on jsonschema
        out[id(schema)] = (schema, check)
    return out


class CompiledValidator:
    """Stands in for nio's `Validator` class: `Validator(schema, format_checker=...)
    .validate(instance)` is the only way nio uses it (nio.schemas.validate_json)."""

    compiled: ClassVar[dict[int, tuple[dict[str, Any], _Check]]] = {}

    def __init__(self, schema: dict[str, Any], format_checker: Any = None) -> None:
        self.schema = schema
        self.format_checker = format_checker

    def validate(self, instance: Any) -> None:
        hit = self.compiled.get(id(self.schema))
        if hit is None or hit[0] is not self.schema:  # not one of nio's own schemas
            NIO_VALIDATOR(self.schema, format_checker=self.format_checker).validate(instance)
            return
        try:
            hit[1](instance)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise ValidationError(exc.message) from None
