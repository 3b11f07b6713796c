"""The bot's canonical JSON and signatures against matrix-org's reference implementations
(`canonicaljson`, `signedjson`), over generated JSON objects.

The bot writes its own canonical JSON instead of calling `canonicaljson` for one reason,
pinned below: for a float the reference writes Python's float form (`1e10` becomes
`10000000000.0`), which the spec's grammar does not allow and which contradicts the spec's
own example (`{"a": -0, "b": 1e10}` is `{"a":0,"b":10000000000}`). The bot's rule for
floats: an integral float within the integer range is written as that integer (the
spec's example); any other float is refused, so an object with one is never signed and
never verifies (fail closed). Everywhere the spec allows, the bytes must be the
reference's, byte for byte.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from typing import Any

import canonicaljson
import pytest
import signedjson.key
import signedjson.sign
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.matrix.signing import SigningKey, canonical_json, sign_json, verify_json

MAX_INT = 2**53 - 1  # the spec's range is [-(2**53)+1, 2**53-1]

# Characters that JSON escapes or that a naive encoder gets wrong, so that every example
# run sees some: control characters (short and \u00XX escapes), quote and backslash,
# DEL (not escaped), the JavaScript line separators, non-BMP (a surrogate pair in UTF-16).
TRICKY = '\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f"\\/\u2028\u2029\ufeff\U0001f642\U00010000\U0010ffff'
chars = st.one_of(
    st.characters(exclude_categories=["Cs"]),  # lone surrogates are not UTF-8 at all
    st.sampled_from(TRICKY),
)
texts = st.text(chars, max_size=12)
ints = st.one_of(
    st.integers(-MAX_INT, MAX_INT),
    st.sampled_from([0, -1, 1, MAX_INT, -MAX_INT, 2**31, -(2**31), 2**32]),
)
scalars = st.one_of(st.none(), st.booleans(), ints, texts)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=24,
)
objects = st.dictionaries(texts, values, max_size=6)
# what a signature covers: the envelope keys are the signer's, not generated content
signables = st.dictionaries(
    texts.filter(lambda k: k not in ("signatures", "unsigned")), values, max_size=6
)

SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SIGNER = "@bot:example.org"


@settings(max_examples=300)
@given(obj=objects)
def test_canonical_json_is_the_reference_encoding_byte_for_byte(obj: dict[str, Any]) -> None:
    ours = canonical_json(obj)
    assert ours == canonicaljson.encode_canonical_json(obj)
    assert json.loads(ours) == obj


@settings(max_examples=100)
@given(obj=signables)
def test_signatures_agree_with_the_reference_both_ways(obj: dict[str, Any]) -> None:
    ours = SigningKey(_b64decode(SPEC_SEED))
    theirs = signedjson.key.decode_signing_key_base64("ed25519", "1", SPEC_SEED)
    signed = sign_json(obj, SIGNER, "ed25519:1", ours)
    their_signed = signedjson.sign.sign_json(copy.deepcopy(obj), SIGNER, theirs)
    # ed25519 is deterministic: the same seed over the same bytes gives the same signature
    assert signed == their_signed
    signedjson.sign.verify_signed_json(
        copy.deepcopy(signed), SIGNER, signedjson.key.get_verify_key(theirs)
    )
    assert verify_json(their_signed, SIGNER, "ed25519:1", ours.public)


@given(n=st.integers(-MAX_INT, MAX_INT))
def test_an_integral_float_is_written_as_the_integer_it_is(n: int) -> None:
    assert canonical_json({"n": float(n)}) == canonicaljson.encode_canonical_json({"n": n})


def test_the_reference_writes_the_spec_example_with_a_float_so_the_bot_keeps_its_own() -> None:
    spec_example = json.loads('{"a": -0, "b": 1e10}')
    assert canonical_json(spec_example) == b'{"a":0,"b":10000000000}'
    assert canonicaljson.encode_canonical_json(spec_example) == b'{"a":0,"b":10000000000.0}'


@given(
    x=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(
            lambda f: not (math.isfinite(f) and f.is_integer() and abs(f) <= MAX_INT)
        ),
        st.sampled_from([0.5, -0.5, 1e-300, float(MAX_INT + 1), -float(MAX_INT + 1)]),
    )
)
def test_any_other_float_is_refused_and_never_signed_or_verified(x: float) -> None:
    with pytest.raises(ValueError, match="canonical JSON"):
        canonical_json({"nested": [{"x": x}]})
    key = SigningKey(_b64decode(SPEC_SEED))
    with pytest.raises(ValueError, match="canonical JSON"):
        sign_json({"x": x}, SIGNER, key.key_id, key)
    # a signature made over some other encoding of the float does not make it valid here
    forged = {"x": x, "signatures": {SIGNER: {key.key_id: key.sign(b'{"x":1}')}}}
    assert not verify_json(forged, SIGNER, key.key_id, key.public)


@given(n=st.one_of(st.integers(min_value=MAX_INT + 1), st.integers(max_value=-MAX_INT - 1)))
def test_an_integer_outside_the_spec_range_is_refused(n: int) -> None:
    with pytest.raises(ValueError, match="canonical JSON"):
        canonical_json({"n": n})


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
