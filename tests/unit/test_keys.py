"""The local keyring: root key, master keys, destruction, signing, tombstone hashes."""

from __future__ import annotations

import base64
import os
import sqlite3
from types import SimpleNamespace

import pytest

from lomevexi_governance.errors import ConfigurationError, KeyMaterialError
from lomevexi_governance.keys import LocalKeyring, keyring_from_connection, write_root_key_file

pytestmark = pytest.mark.unit


def test_wrap_unwrap_round_trip(keyring):
    keyring.ensure_master_key("epoch/2026-W01/contact", created_by="t")
    wrapped = keyring.wrap(b"k" * 32, "epoch/2026-W01/contact")
    assert keyring.unwrap(wrapped, "epoch/2026-W01/contact") == b"k" * 32
    assert b"k" * 32 not in base64.b64decode(wrapped)


def test_wrong_root_key_fails_naming_the_source(tmp_path, keyring):
    with pytest.raises(KeyMaterialError, match="root key does not open the keyring"):
        LocalKeyring(keyring.path, os.urandom(32), source="connection 'governance_kms'")


def test_destroyed_key_is_gone_and_leaves_a_tombstone(keyring, root_key):
    key = "epoch/2025-W10/payment"
    keyring.ensure_master_key(key, created_by="run-1")
    wrapped = keyring.wrap(b"x" * 16, key)
    tomb = keyring.destroy(key, reason="retention epoch 2025-W10", run_id="purge-1")
    assert tomb.key_id == key
    fresh = LocalKeyring(keyring.path, root_key)  # no in-process cache
    with pytest.raises(KeyMaterialError, match=r"'epoch/2025-W10/payment' was destroyed .*purge-1"):
        fresh.unwrap(wrapped, key)
    assert keyring.destroy(key, reason="again", run_id="purge-2").run_id == "purge-1"  # idempotent
    with pytest.raises(KeyMaterialError, match="cannot be re-created"):
        keyring.ensure_master_key(key, created_by="run-2")
    info = keyring.info(key)
    assert info is not None and info.state == "destroyed" and info.reason == "retention epoch 2025-W10"


def test_destroyed_material_is_not_left_in_the_file(tmp_path, root_key):
    kr = LocalKeyring(tmp_path / "kr.db", root_key)
    kr.ensure_master_key("k/1", created_by="t")
    blob = sqlite3.connect(kr.path).execute("SELECT material FROM keys WHERE key_id='k/1'").fetchone()[0]
    kr.destroy("k/1", reason="test", run_id="r")
    assert blob not in kr.path.read_bytes()  # secure_delete zeroed the freed cell


def test_missing_key_is_named(keyring):
    with pytest.raises(KeyMaterialError, match="'rp/x/open/contact' is not in the keyring"):
        keyring.wrap(b"1" * 16, "rp/x/open/contact")


def test_signature_verifies_and_detects_changes(keyring):
    key_id, sig = keyring.sign(b"manifest bytes")
    assert keyring.verify(b"manifest bytes", sig, key_id)
    assert not keyring.verify(b"manifest bytez", sig, key_id)


def test_tombstone_hash_is_keyed_and_stable(keyring, tmp_path):
    h = keyring.tombstone_hasher()
    assert h("orders", 42) == keyring.tombstone_hash("orders", 42)
    assert h("orders", 42) != h("orders", 43) != h("payments", 42)
    other = LocalKeyring(tmp_path / "other.db", os.urandom(32))
    assert other.tombstone_hash("orders", 42) != h("orders", 42)
    assert h.many("orders", [1, 2]) == [h("orders", 1), h("orders", 2)]


def _conn(**kw):
    base = {"conn_id": "governance_kms", "password": None, "extra_dejson": {}}
    base.update(kw)
    return SimpleNamespace(**base)


def test_connection_forms(tmp_path):
    root = base64.b64encode(os.urandom(32)).decode()
    kr = keyring_from_connection(_conn(password=root, extra_dejson={"keyring_path": str(tmp_path / "a.db")}))
    assert kr.path.exists() and (kr.path.stat().st_mode & 0o777) == 0o600
    key_file = tmp_path / "kms" / "root.key"
    assert write_root_key_file(key_file) and not write_root_key_file(key_file)
    assert (key_file.stat().st_mode & 0o777) == 0o600
    keyring_from_connection(_conn(extra_dejson={"keyring_path": str(tmp_path / "b.db"), "root_key_file": str(key_file)}))


def test_connection_errors_name_the_connection_never_the_key(tmp_path):
    secret = base64.b64encode(b"s" * 31).decode()
    with pytest.raises(ConfigurationError, match="'governance_kms': the root key must be 32 bytes") as exc:
        keyring_from_connection(_conn(password=secret, extra_dejson={"keyring_path": str(tmp_path / "a.db")}))
    assert secret not in str(exc.value)
    with pytest.raises(ConfigurationError, match="has no root key"):
        keyring_from_connection(_conn(extra_dejson={"keyring_path": str(tmp_path / "a.db")}))
    with pytest.raises(ConfigurationError, match="extra.keyring_path is missing"):
        keyring_from_connection(_conn(password=secret))
    loose = tmp_path / "loose.key"
    loose.write_text(base64.b64encode(os.urandom(32)).decode())
    loose.chmod(0o644)
    with pytest.raises(ConfigurationError, match="must not be readable by others"):
        keyring_from_connection(_conn(extra_dejson={"keyring_path": str(tmp_path / "c.db"), "root_key_file": str(loose)}))
    with pytest.raises(ConfigurationError, match="backend 'vault' is not installed"):
        keyring_from_connection(_conn(extra_dejson={"backend": "vault"}))
