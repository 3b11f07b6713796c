"""The compiled schema checks (bot/matrix/schemas.py) against nio's jsonschema checks.

For every schema nio has, instances are generated from the schema (valid ones) and then
mutated (a required key dropped, a value of the wrong type, a bad format, an enum value
off by one character, an extra key, null, a nested value replaced) with a fixed seed. Both
validators see a copy of each instance. They must agree on valid or invalid, and on a valid
instance they must fill in the same defaults. Where nio's path raises something other than
ValidationError (its malformed `delete_devices` schema, which is not compiled), the
compiled path may only say "invalid" or fail the same way.
"""

from __future__ import annotations

import copy
import random
import string
from typing import Any

import nio.schemas
import pytest
from jsonschema.exceptions import ValidationError
from nio.schemas import Schemas, validate_json

from bot.matrix import patches, schemas

PER_SCHEMA = 200


def _schemas() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, s)
        for name, s in vars(Schemas).items()
        if not name.startswith("_") and isinstance(s, dict)
    ]


def _string(rng: random.Random, fmt: str | None) -> str:
    word = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 8)))
    if fmt == "user_id":
        return f"@{word}:example.org"
    if fmt == "room_id":
        return f"!{word}:example.org"
    if fmt == "http_url":
        return f"https://{word}.example.org"
    return word


def generate(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value that should satisfy `schema` (best effort: anyOf/oneOf pick a branch)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if "enum" in schema:
        return copy.deepcopy(rng.choice(schema["enum"]))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return generate(rng.choice(schema[key]), rng, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = rng.choice(kind)
    match kind:
        case "object":
            out: dict[str, Any] = {}
            props = schema.get("properties", {})
            required = (
                set(schema.get("required", []))
                if isinstance(schema.get("required"), list)
                else set()
            )
            for key, sub in props.items():
                if key in required or (depth < 4 and rng.random() < 0.6):
                    out[key] = generate(sub, rng, depth + 1)
            for pattern, sub in schema.get("patternProperties", {}).items():
                if depth < 4 and rng.random() < 0.5:
                    key = "@u:example.org" if "@" in pattern else "m.key"
                    out[key] = generate(sub, rng, depth + 1)
            return out
        case "array":
            items = schema.get("items", {})
            return [
                generate(items, rng, depth + 1)
                for _ in range(rng.randint(0, 2 if depth < 4 else 0))
            ]
        case "string":
            return _string(rng, schema.get("format"))
        case "integer":
            return rng.randint(0, 10**6)
        case "number":
            return rng.choice([rng.randint(0, 100), rng.random() * 100])
        case "boolean":
            return rng.random() < 0.5
        case "null":
            return None
    return None


_WRONG = [None, 7, -1, 2.5, "x", "", True, [], {}, ["a"], {"k": 1}, "@nocolon", "!r"]


def mutate(value: Any, rng: random.Random) -> Any:
    """`value` with one random thing made wrong somewhere inside it."""
    value = copy.deepcopy(value)
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k in list(node):
                paths.append((node, k))
                walk(node[k])
        elif isinstance(node, list):
            for i in range(len(node)):
                paths.append((node, i))
                walk(node[i])

    walk(value)
    if not paths or rng.random() < 0.05:
        return rng.choice(_WRONG)
    parent, key = rng.choice(paths)
    op = rng.randrange(4)
    if op == 0 and isinstance(parent, dict):
        del parent[key]
    elif op == 1 and isinstance(parent, dict):
        parent["extra_" + _string(rng, None)] = rng.choice(_WRONG)
    elif op == 2 and isinstance(parent[key], str):
        parent[key] = parent[key][:-1] + "!"
    else:
        parent[key] = rng.choice(_WRONG)
    return value


def outcome(instance: Any, schema: dict[str, Any]) -> tuple[str, Any]:
    try:
        validate_json(instance, schema)
    except ValidationError:
        return "invalid", None
    except (AttributeError, TypeError) as exc:  # nio's own checkers on a non-string
        return f"crash:{type(exc).__name__}", None
    return "ok", instance


@pytest.fixture
def both() -> Any:
    yield
    patches.use_nio_schemas()


def test_compiles_nearly_all_of_nios_schemas(both: None) -> None:
    count = patches.use_compiled_schemas()
    total = len(_schemas())
    assert nio.schemas.Validator is schemas.CompiledValidator
    assert count >= total - 2, f"only {count} of {total} compiled"


@pytest.mark.parametrize(("name", "schema"), _schemas(), ids=[n for n, _ in _schemas()])
def test_compiled_check_agrees_with_jsonschema(
    name: str, schema: dict[str, Any], both: None
) -> None:
    rng = random.Random(f"schemas-{name}")
    agreed = {"ok": 0, "invalid": 0}
    for i in range(PER_SCHEMA):
        base = generate(schema, rng)
        instance = base if i % 3 == 0 else mutate(base, rng)
        patches.use_nio_schemas()
        want, want_filled = outcome(copy.deepcopy(instance), schema)
        patches.use_compiled_schemas()
        got, got_filled = outcome(copy.deepcopy(instance), schema)
        if want.startswith("crash:"):
            assert got in (want, "invalid"), f"{name}: nio {want}, compiled {got}: {instance!r}"
            continue
        assert got == want, f"{name}: jsonschema {want}, compiled {got}: {instance!r}"
        if want == "ok":
            assert got_filled == want_filled, f"{name}: defaults differ for {instance!r}"
        agreed[want] += 1
    assert agreed["invalid"] + agreed["ok"] > 0


def test_other_schemas_keep_the_jsonschema_path(both: None) -> None:
    patches.use_compiled_schemas()
    ad_hoc = {"type": "object", "required": ["a"]}
    validate_json({"a": 1}, ad_hoc)
    with pytest.raises(ValidationError):
        validate_json({}, ad_hoc)
