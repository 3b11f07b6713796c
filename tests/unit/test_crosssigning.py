"""Cross-signing (bot.matrix.signing, keyfile, keysapi, crosssigning): canonical JSON and
signatures against the spec's test vectors
and a second implementation (signedjson/canonicaljson, which come with Synapse), the key
file, the Element trust rule, and the bootstrap against a fake homeserver that behaves
like Synapse 1.163 where it matters (first upload without auth, 401 to replace, 200 with
`failures` for a bad signature)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import stat
from pathlib import Path
from typing import Any

import canonicaljson
import pytest
import signedjson.key
import signedjson.sign

from bot.matrix.crosssigning import ensure_cross_signing
from bot.matrix.keyfile import CrossSigningKeys, KeyFile
from bot.matrix.keysapi import CrossSigningError, identity_from_query
from bot.matrix.signing import (
    SigningKey,
    b64decode,
    b64encode,
    canonical_json,
    sign_json,
    verify_json,
)

# The spec's appendix, "Signing details": this seed, server "domain", key "ed25519:1".
SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
USER = "@bot:example.org"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- canonical JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [  # the spec's appendix, "Canonical JSON" examples
        ({}, "{}"),
        ({"one": 1, "two": "Two"}, '{"one":1,"two":"Two"}'),
        ({"b": "2", "a": "1"}, '{"a":"1","b":"2"}'),
        (
            {
                "auth": {
                    "success": True,
                    "mxid": "@john.doe:example.com",
                    "profile": {
                        "display_name": "John Doe",
                        "three_pids": [
                            {"medium": "email", "address": "john.doe@example.org"},
                            {"medium": "msisdn", "address": "123456789"},
                        ],
                    },
                }
            },
            '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
            '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
            '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
        ),
        ({"a": "日本語"}, '{"a":"日本語"}'),
        ({"本": 2, "日": 1}, '{"日":1,"本":2}'),
        (json.loads('{"a": "\\u65E5"}'), '{"a":"日"}'),
        ({"a": None}, '{"a":null}'),
        (json.loads('{"a": -0, "b": 1e10}'), '{"a":0,"b":10000000000}'),
    ],
)
def test_canonical_json_matches_the_spec_examples(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected.encode("utf-8")


def test_canonical_json_agrees_with_canonicaljson() -> None:
    samples = [
        {"device_keys": {"@a:b": ["X", "Y"]}, "z": [1, -2, True, None], "ø": 'æå\n"\\'},
        {"emoji": "🙂", "ctl": "\u0001\u001f", "nested": {"b": {"d": 1, "c": 2}, "a": []}},
        {"big": 2**53 - 1, "neg": -(2**53) + 1, "s": "\u2028\u2029"},
    ]
    for sample in samples:
        assert canonical_json(sample) == canonicaljson.encode_canonical_json(sample)


@pytest.mark.parametrize("bad", [{"a": 1.5}, {"a": float("nan")}, {"a": 2**53}, {"a": object()}])
def test_canonical_json_refuses_what_the_spec_does_not_allow(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical_json(bad)


def test_base64_is_unpadded_standard() -> None:
    assert b64encode(b"\xfb\xff") == "+/8"
    assert b64decode("+/8") == b"\xfb\xff"
    assert b64decode("+/8=") == b"\xfb\xff"
    with pytest.raises(ValueError, match="base64"):
        b64decode("-_8")  # url-safe alphabet is not Matrix's


# -- signing ----------------------------------------------------------------------------


def spec_key() -> SigningKey:
    return SigningKey(b64decode(SPEC_SEED))


def test_signing_matches_the_spec_vectors() -> None:
    key = spec_key()
    assert sign_json({}, "domain", "ed25519:1", key) == {
        "signatures": {
            "domain": {
                "ed25519:1": (
                    "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMt"
                    "TdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                )
            }
        }
    }
    signed = sign_json({"one": 1, "two": "Two"}, "domain", "ed25519:1", key)
    assert signed["signatures"]["domain"]["ed25519:1"] == (
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
    )
    # signatures and unsigned are not part of what is signed
    again = sign_json(
        {"one": 1, "two": "Two", "signatures": {}, "unsigned": {"age_ts": 1}},
        "domain",
        "ed25519:1",
        key,
    )
    assert again["signatures"] == signed["signatures"]
    assert again["unsigned"] == {"age_ts": 1}


def _their_signing_key(seed: bytes) -> Any:
    key = signedjson.key.decode_signing_key_base64("ed25519", "1", b64encode(seed))
    return key


def test_signedjson_verifies_our_signatures_and_we_verify_theirs() -> None:
    ours = SigningKey(os.urandom(32))
    obj = {"user_id": USER, "keys": {ours.key_id: ours.public}, "usage": ["self_signing"]}
    signed = sign_json(obj, USER, ours.key_id, ours)
    verify_key = signedjson.key.decode_verify_key_bytes(ours.key_id, b64decode(ours.public))
    signedjson.sign.verify_signed_json(copy.deepcopy(signed), USER, verify_key)  # raises if bad

    theirs = _their_signing_key(ours.seed)
    their_signed = signedjson.sign.sign_json(copy.deepcopy(obj), USER, theirs)
    # ed25519 is deterministic: the same seed signs the same bytes the same way
    assert their_signed["signatures"][USER]["ed25519:1"] == signed["signatures"][USER][ours.key_id]
    assert verify_json(their_signed, USER, "ed25519:1", ours.public)


def test_verify_json_rejects_tampering_and_wrong_keys() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    signed = sign_json({"a": 1}, USER, key.key_id, key)
    assert verify_json(signed, USER, key.key_id, key.public)
    assert verify_json({**signed, "unsigned": {"x": 1}}, USER, key.key_id, key.public)
    assert not verify_json({**signed, "a": 2}, USER, key.key_id, key.public)
    assert not verify_json(signed, USER, key.key_id, other.public)
    assert not verify_json(signed, "@other:example.org", key.key_id, key.public)
    assert not verify_json({"a": 1}, USER, key.key_id, key.public)
    broken = copy.deepcopy(signed)
    broken["signatures"][USER][key.key_id] = "not base64!"
    assert not verify_json(broken, USER, key.key_id, key.public)


def test_the_published_form_is_what_the_spec_asks_for() -> None:
    keys = CrossSigningKeys.generate()
    body = keys.published_form(USER)
    master = body["master_key"]
    assert master == {
        "user_id": USER,
        "usage": ["master"],
        "keys": {keys.master.key_id: keys.master.public},
    }
    assert keys.master.key_id == f"ed25519:{keys.master.public}"
    assert "=" not in keys.master.public
    assert len(b64decode(keys.master.public)) == 32
    verify_key = signedjson.key.decode_verify_key_bytes(
        keys.master.key_id, b64decode(keys.master.public)
    )
    for name, usage in (("self_signing_key", "self_signing"), ("user_signing_key", "user_signing")):
        assert body[name]["usage"] == [usage]
        signedjson.sign.verify_signed_json(copy.deepcopy(body[name]), USER, verify_key)


def test_a_signing_key_never_shows_its_seed() -> None:
    key = SigningKey.generate()
    assert b64encode(key.seed) not in repr(key)


# -- the key file -----------------------------------------------------------------------


def test_key_file_round_trip_is_private_and_encrypted(tmp_path: Path) -> None:
    keys = CrossSigningKeys.generate()
    path = tmp_path / "cross_signing.json"
    KeyFile(path, "store-key-0123456789", USER).save(keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    for k in (keys.master, keys.self_signing, keys.user_signing):
        assert b64encode(k.seed) not in raw
    loaded = KeyFile(path, "store-key-0123456789", USER).load()
    assert loaded is not None
    assert loaded.master.public == keys.master.public
    assert loaded.self_signing.seed == keys.self_signing.seed
    assert loaded.user_signing.seed == keys.user_signing.seed
    assert not list(tmp_path.glob("*.tmp"))


def test_key_file_missing_is_none_and_wrong_key_or_account_is_an_error(tmp_path: Path) -> None:
    from bot.matrix.keyfile import KeyFileError

    path = tmp_path / "cross_signing.json"
    assert KeyFile(path, "store-key-0123456789", USER).load() is None
    KeyFile(path, "store-key-0123456789", USER).save(CrossSigningKeys.generate())
    with pytest.raises(KeyFileError, match="store_key"):
        KeyFile(path, "another-key-0123456789", USER).load()
    with pytest.raises(KeyFileError):
        KeyFile(path, "store-key-0123456789", "@other:example.org").load()
    path.write_text("{not json")
    with pytest.raises(KeyFileError, match="damaged"):
        KeyFile(path, "store-key-0123456789", USER).load()


# -- the trust rule for others ----------------------------------------------------------


class Person:
    """A user with cross-signing keys and devices, as /keys/query would show them."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.keys = CrossSigningKeys.generate()
        self.devices: dict[str, dict[str, Any]] = {}
        self.device_keys: dict[str, SigningKey] = {}

    def add_device(self, device_id: str, cross_sign: bool = True) -> str:
        key = SigningKey.generate()
        dev = {
            "user_id": self.user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"ed25519:{device_id}": key.public,
                f"curve25519:{device_id}": b64encode(os.urandom(32)),
            },
        }
        dev = sign_json(dev, self.user_id, f"ed25519:{device_id}", key)
        if cross_sign:
            ssk = self.keys.self_signing
            dev = sign_json(dev, self.user_id, ssk.key_id, ssk)
        dev["unsigned"] = {"device_display_name": "phone"}
        self.devices[device_id] = dev
        self.device_keys[device_id] = key
        return key.public

    def query(self) -> dict[str, Any]:
        body = self.keys.published_form(self.user_id)
        return {
            "device_keys": {self.user_id: copy.deepcopy(self.devices)},
            "master_keys": {self.user_id: body["master_key"]},
            "self_signing_keys": {self.user_id: body["self_signing_key"]},
        }


def test_identity_vouches_only_for_cross_signed_devices() -> None:
    p = Person("@irene:example.org")
    signed = p.add_device("PHONE")
    p.add_device("LAPTOP", cross_sign=False)
    ident = identity_from_query(p.query(), p.user_id)
    assert ident.problem is None
    assert ident.master == p.keys.master.public
    assert dict(ident.devices) == {"PHONE": signed}


def test_identity_without_cross_signing_vouches_for_nothing() -> None:
    p = Person("@old:example.org")
    p.add_device("PHONE")
    q = p.query()
    del q["master_keys"]
    ident = identity_from_query(q, p.user_id)
    assert ident.master is None
    assert not ident.devices
    assert ident.problem


def test_identity_checks_usage_and_the_master_signature() -> None:
    p = Person("@irene:example.org")
    p.add_device("PHONE")
    q = p.query()
    q["self_signing_keys"][p.user_id]["usage"] = ["user_signing"]
    assert not identity_from_query(q, p.user_id).devices

    q = p.query()
    q["master_keys"][p.user_id]["usage"] = ["self_signing"]
    assert identity_from_query(q, p.user_id).master is None

    # a self-signing key signed by some other master: an attacker's key on the server
    q = p.query()
    intruder = CrossSigningKeys.generate()
    forged = intruder.published_form(p.user_id)["self_signing_key"]
    q["self_signing_keys"][p.user_id] = forged
    ident = identity_from_query(q, p.user_id)
    assert not ident.devices
    assert "master" in (ident.problem or "")

    # the master key's ID must be its public key
    q = p.query()
    master = q["master_keys"][p.user_id]
    master["keys"] = {"ed25519:whatever": p.keys.master.public}
    assert identity_from_query(q, p.user_id).master is None


def test_identity_refuses_a_device_not_signed_by_itself_or_listed_under_another_id() -> None:
    p = Person("@irene:example.org")
    p.add_device("PHONE")
    q = p.query()
    q["device_keys"][p.user_id]["PHONE"]["signatures"][p.user_id].pop("ed25519:PHONE")
    assert not identity_from_query(q, p.user_id).devices

    q = p.query()
    q["device_keys"][p.user_id]["OTHER"] = q["device_keys"][p.user_id].pop("PHONE")
    assert not identity_from_query(q, p.user_id).devices

    q = p.query()
    q["device_keys"][p.user_id]["PHONE"]["keys"]["curve25519:PHONE"] = "swapped"
    assert not identity_from_query(q, p.user_id).devices


# -- the bootstrap against a fake homeserver --------------------------------------------


class Synapseish:
    """The three endpoints as Synapse 1.163 answers them, for one account."""

    def __init__(self, user_id: str, password: str) -> None:
        self.user_id = user_id
        self.password = password
        self.devices: dict[str, dict[str, Any]] = {}
        self.cross: dict[str, dict[str, Any]] = {}  # master_key, self_signing_key, ...
        self.log: list[str] = []
        self.drop_signatures = False  # "accept" signatures but never store them

    def add_device(self, device_id: str) -> SigningKey:
        key = SigningKey.generate()
        dev = {
            "user_id": self.user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"ed25519:{device_id}": key.public, f"curve25519:{device_id}": "c"},
        }
        self.devices[device_id] = sign_json(dev, self.user_id, f"ed25519:{device_id}", key)
        return key

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.log.append(path.removeprefix("/_matrix/client/v3/"))
        if path.endswith("/keys/query"):
            return self._query(body)
        if path.endswith("/keys/device_signing/upload"):
            return self._upload(body)
        if path.endswith("/keys/signatures/upload"):
            return self._sign(body)
        return 404, {"errcode": "M_UNRECOGNIZED"}

    def _query(self, body: Any) -> tuple[int, Any]:
        out: dict[str, Any] = {"device_keys": {self.user_id: {}}, "failures": {}}
        for device_id, dev in self.devices.items():
            out["device_keys"][self.user_id][device_id] = {
                **copy.deepcopy(dev),
                "unsigned": {"device_display_name": "helpline-bot"},
            }
        for name, section in (
            ("master_key", "master_keys"),
            ("self_signing_key", "self_signing_keys"),
            ("user_signing_key", "user_signing_keys"),
        ):
            if name in self.cross:
                out.setdefault(section, {})[self.user_id] = copy.deepcopy(self.cross[name])
        return 200, out

    def _upload(self, body: Any) -> tuple[int, Any]:
        keys = {k: v for k, v in body.items() if k != "auth"}
        if self.cross and self.cross != keys:
            auth = body.get("auth")
            if not auth or auth.get("password") != self.password or auth.get("session") != "S":
                return 401, {"session": "S", "flows": [{"stages": ["m.login.password"]}]}
        self.cross = copy.deepcopy(keys)
        return 200, {}

    def _sign(self, body: Any) -> tuple[int, Any]:
        failures: dict[str, Any] = {}
        ssk = self.cross.get("self_signing_key")
        for device_id, signed in body.get(self.user_id, {}).items():
            pub = next(iter(ssk["keys"].values())) if ssk else None
            key_id = f"ed25519:{pub}"
            stored = self.devices.get(device_id)
            ok = (
                stored is not None
                and pub is not None
                and verify_json(
                    {**stored, "signatures": signed.get("signatures", {})},
                    self.user_id,
                    key_id,
                    pub,
                )
            )
            if not ok:
                failures.setdefault(self.user_id, {})[device_id] = {
                    "errcode": "M_INVALID_SIGNATURE",
                    "error": "Key does not match",
                }
            elif not self.drop_signatures:
                stored["signatures"][self.user_id][key_id] = signed["signatures"][self.user_id][
                    key_id
                ]
        return 200, {"failures": failures}


def _ensure(server: Synapseish, device: str, key: SigningKey, key_file: KeyFile | None, **kw: Any):
    return run(
        ensure_cross_signing(
            server,
            user_id=server.user_id,
            device_id=device,
            device_ed25519=key.public,
            key_file=key_file,
            password=kw.pop("password", server.password),
            **kw,
        )
    )


def _device_signed(server: Synapseish, device: str, keys: CrossSigningKeys) -> bool:
    dev = server.devices[device]
    return verify_json(dev, server.user_id, keys.self_signing.key_id, keys.self_signing.public)


def test_first_start_publishes_keys_and_signs_the_device(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    dev_key = server.add_device("DEV1")
    kf = KeyFile(tmp_path / "cs.json", "store-key-0123456789", USER)
    keys, report = _ensure(server, "DEV1", dev_key, kf)
    assert report.new_keys
    assert report.uploaded_keys
    assert report.signed_device
    assert not report.password_used
    assert server.cross == keys.published_form(USER)
    assert _device_signed(server, "DEV1", keys)
    assert kf.load() is not None
    assert kf.load().master.public == keys.master.public
    # The second implementation agrees that the device is signed by the self-signing key.
    vk = signedjson.key.decode_verify_key_bytes(
        keys.self_signing.key_id, b64decode(keys.self_signing.public)
    )
    signedjson.sign.verify_signed_json(copy.deepcopy(server.devices["DEV1"]), USER, vk)


def test_a_healthy_later_start_costs_one_query_and_changes_nothing(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    dev_key = server.add_device("DEV1")
    kf = KeyFile(tmp_path / "cs.json", "store-key-0123456789", USER)
    _ensure(server, "DEV1", dev_key, kf)
    server.log.clear()
    _, report = _ensure(server, "DEV1", dev_key, kf)
    assert server.log == ["keys/query"]
    assert report.requests == 1
    assert not (report.new_keys)
    assert not (report.uploaded_keys)
    assert not (report.signed_device)


def test_a_new_device_is_signed_with_the_kept_keys(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    kf = KeyFile(tmp_path / "cs.json", "store-key-0123456789", USER)
    keys, _ = _ensure(server, "DEV1", server.add_device("DEV1"), kf)
    new_key = server.add_device("DEV2")  # the crypto store was lost: a new login
    server.log.clear()
    again, report = _ensure(server, "DEV2", new_key, kf)
    assert again.master.public == keys.master.public
    assert report.signed_device
    assert not report.uploaded_keys
    assert not report.password_used
    assert "keys/device_signing/upload" not in server.log
    assert _device_signed(server, "DEV2", keys)


def test_missing_published_keys_are_uploaded_again(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    dev_key = server.add_device("DEV1")
    kf = KeyFile(tmp_path / "cs.json", "store-key-0123456789", USER)
    keys, _ = _ensure(server, "DEV1", dev_key, kf)
    server.cross.pop("user_signing_key")  # what a partial reset on the server would leave
    server.devices["DEV1"]["signatures"][USER].pop(keys.self_signing.key_id)
    _, report = _ensure(server, "DEV1", dev_key, kf)
    assert report.uploaded_keys
    assert report.signed_device
    assert not report.new_keys
    assert server.cross == keys.published_form(USER)
    assert _device_signed(server, "DEV1", keys)


def test_a_lost_data_dir_replaces_the_identity_with_the_password(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    old, _ = _ensure(
        server, "DEV1", server.add_device("DEV1"), KeyFile(tmp_path / "a.json", "k" * 20, USER)
    )
    new_key = server.add_device("DEV2")
    kf = KeyFile(tmp_path / "b.json", "k" * 20, USER)  # a fresh data dir
    keys, report = _ensure(server, "DEV2", new_key, kf)
    assert report.new_keys
    assert report.uploaded_keys
    assert report.password_used
    assert keys.master.public != old.master.public
    assert server.cross == keys.published_form(USER)
    assert _device_signed(server, "DEV2", keys)


def test_replacing_without_a_usable_password_is_a_clear_error(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    _ensure(server, "DEV1", server.add_device("DEV1"), KeyFile(tmp_path / "a.json", "k" * 20, USER))
    dev2 = server.add_device("DEV2")
    with pytest.raises(CrossSigningError, match="password"):
        _ensure(server, "DEV2", dev2, KeyFile(tmp_path / "b.json", "k" * 20, USER), password="no")


def test_a_server_that_wants_other_auth_is_explained(tmp_path: Path) -> None:
    class SSO(Synapseish):
        def _upload(self, body: Any) -> tuple[int, Any]:
            if self.cross:
                return 401, {"session": "S", "flows": [{"stages": ["m.login.sso"]}]}
            return super()._upload(body)

    server = SSO(USER, "pw")
    _ensure(server, "DEV1", server.add_device("DEV1"), KeyFile(tmp_path / "a.json", "k" * 20, USER))
    dev2 = server.add_device("DEV2")
    with pytest.raises(CrossSigningError, match=r"m\.login\.sso"):
        _ensure(server, "DEV2", dev2, KeyFile(tmp_path / "b.json", "k" * 20, USER))


def test_a_refused_signature_in_failures_is_an_error_not_success(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    dev_key = server.add_device("DEV1")
    # The device on the server is not the one the bot holds: its key differs.
    wrong = SigningKey.generate()
    with pytest.raises(CrossSigningError, match="ed25519"):
        _ensure(server, "DEV1", wrong, KeyFile(tmp_path / "a.json", "k" * 20, USER))

    # The server answers 200 with failures: the bot must not believe it.
    class Refusing(Synapseish):
        def _sign(self, body: Any) -> tuple[int, Any]:
            return 200, {
                "failures": {USER: {"DEV1": {"errcode": "M_INVALID_SIGNATURE", "error": "no"}}}
            }

    refusing = Refusing(USER, "pw")
    dev_key = refusing.add_device("DEV1")
    with pytest.raises(CrossSigningError, match="M_INVALID_SIGNATURE"):
        _ensure(refusing, "DEV1", dev_key, KeyFile(tmp_path / "b.json", "k" * 20, USER))

    silent = Synapseish(USER, "pw")
    silent.drop_signatures = True
    dev_key = silent.add_device("DEV1")
    with pytest.raises(CrossSigningError, match="not published"):
        _ensure(silent, "DEV1", dev_key, KeyFile(tmp_path / "c.json", "k" * 20, USER))


def test_keys_are_saved_before_they_are_uploaded(tmp_path: Path) -> None:
    class Down(Synapseish):
        def _upload(self, body: Any) -> tuple[int, Any]:
            return 502, "Bad Gateway"

    server = Down(USER, "pw")
    dev_key = server.add_device("DEV1")
    kf = KeyFile(tmp_path / "a.json", "k" * 20, USER)
    with pytest.raises(CrossSigningError, match="502"):
        _ensure(server, "DEV1", dev_key, kf)
    kept = kf.load()
    assert kept is not None
    healthy = Synapseish(USER, "pw")
    healthy.devices = server.devices
    keys, report = _ensure(healthy, "DEV1", dev_key, kf)
    assert keys.master.public == kept.master.public
    assert not report.new_keys


def test_a_wrong_store_key_never_makes_new_keys(tmp_path: Path) -> None:
    server = Synapseish(USER, "pw")
    dev_key = server.add_device("DEV1")
    path = tmp_path / "a.json"
    _ensure(server, "DEV1", dev_key, KeyFile(path, "k" * 20, USER))
    published = copy.deepcopy(server.cross)
    with pytest.raises(CrossSigningError, match="store_key"):
        _ensure(server, "DEV1", dev_key, KeyFile(path, "x" * 20, USER))
    assert server.cross == published
