"""Key management: master keys in a KMS, the Parquet KMS client, signing and tombstone keys.

Key scheme (DESIGN.md "Recovery points and keys")
-------------------------------------------------
* Parquet Modular Encryption wraps each file's data keys with *master keys* held here.
  A master key id is ``<partition>/<class>`` where ``class`` is a sensitivity class
  (contact, payment, communication, operational) or ``footer``:

  - ``epoch/2025-W48/contact``: rows whose retention ends in ISO week 2025-W48. Shared by every
    recovery point; destroying the epoch's keys erases those rows from all points at once.
  - ``rp/<recovery point id>/{open,protected,pending}/<class>``: keys exclusive to one point for
    rows whose retention clock has not started, rows protected by a hold or an open ticket, and
    rows already due at backup time (purged the same night). Destroyed when the point expires.

* A destroyed key leaves a tombstone (id, when, why, by which run); its material is gone
  (deleted with ``PRAGMA secure_delete``). A destroyed id is never re-created.
* The local keyring keeps every key encrypted (AES-256-GCM) under a root key that comes from the
  Airflow connection ``governance_kms`` (``password``, base64) or a 0600 file it names
  (``extra.root_key_file``). A cloud KMS or Vault Transit implements :class:`KeyService`.
* Recovery-point manifests are signed with Ed25519; verifying needs only the public key.
* Purge tombstones use HMAC-SHA256 under a keyring key that is never shredded.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lomevexi_governance.errors import ConfigurationError, KeyMaterialError

ROOT_KEY_BYTES = 32
MASTER_KEY_BYTES = 32
_CHECK_PLAINTEXT = b"lomevexi-governance keyring v1"
SIGNING_KEY_ID = "signing/ed25519/1"
TOMBSTONE_HMAC_KEY_ID = "tombstone/hmac/1"
FOOTER = "footer"


@dataclass(frozen=True)
class KeyTombstone:
    key_id: str
    destroyed_at: str
    reason: str
    run_id: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    state: str  # "active" | "destroyed"
    created_at: str
    created_by: str
    destroyed_at: str | None = None
    reason: str | None = None
    run_id: str | None = None


class KeyService(Protocol):
    """What the jobs need from a KMS. The local keyring implements it; so can a cloud KMS.

    Implementations must never log, return or raise with key material in the message.
    """

    def ensure_master_key(self, key_id: str, *, created_by: str) -> None: ...

    def wrap(self, key_bytes: bytes, master_key_id: str) -> str: ...

    def unwrap(self, wrapped: str, master_key_id: str) -> bytes: ...

    def destroy(self, key_id: str, *, reason: str, run_id: str) -> KeyTombstone: ...

    def info(self, key_id: str) -> KeyInfo | None: ...

    def list_keys(self, prefix: str = "") -> list[KeyInfo]: ...

    def sign(self, data: bytes) -> tuple[str, str]: ...

    def verify(self, data: bytes, signature_b64: str, key_id: str) -> bool: ...

    def public_key_pem(self, key_id: str = SIGNING_KEY_ID) -> str: ...

    def tombstone_hash(self, table: str, primary_key: int | str) -> str: ...

    def tombstone_hasher(self) -> Any: ...


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def generate_root_key() -> str:
    """A new base64 root key for a local keyring."""
    return base64.b64encode(os.urandom(ROOT_KEY_BYTES)).decode("ascii")


def write_root_key_file(path: str | os.PathLike[str]) -> bool:
    """Create a 0600 root key file if it does not exist. Returns True when it created one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(p.parent, 0o700)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(generate_root_key() + "\n")
    return True


def _decode_root_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{source}: the root key is not valid base64") from None
    if len(key) != ROOT_KEY_BYTES:
        raise ConfigurationError(f"{source}: the root key must be {ROOT_KEY_BYTES} bytes (base64)")
    return key


def _open_keyring(path: str, root_key: bytes, source: str) -> LocalKeyring:
    return LocalKeyring(path, root_key, source=source)


class LocalKeyring:
    """A keyring in one SQLite file, every secret encrypted under the root key.

    Safe for concurrent use by several processes (SQLite locking) and threads (one
    connection per call). ``PRAGMA secure_delete`` zeroes destroyed material in the file.
    """

    def __init__(self, path: str | os.PathLike[str], root_key: bytes, *, source: str = "governance_kms"):
        self.path = Path(path)
        self._root_key = root_key  # kept only so a backup worker process can open the same keyring
        self._aead = AESGCM(root_key)
        self._source = source
        self._lock = threading.Lock()
        self._unwrapped: dict[str, bytes] = {}
        self._known: set[str] = set()  # master keys seen to exist (never destroyed by this object)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled only to hand the keyring to a backup worker process (a local pipe, never disk)."""
        return (_open_keyring, (str(self.path), self._root_key, self._source))

    def __repr__(self) -> str:
        return f"LocalKeyring({str(self.path)!r})"

    # -- storage -------------------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA busy_timeout = 60000")
            yield conn
        finally:
            conn.close()

    def _init(self) -> None:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            for ddl in (
                "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
                "CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, material BLOB NOT NULL,"
                " kind TEXT NOT NULL, public_pem TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS tombstones (key_id TEXT PRIMARY KEY, created_at TEXT NOT NULL,"
                " created_by TEXT NOT NULL, destroyed_at TEXT NOT NULL, reason TEXT NOT NULL, run_id TEXT NOT NULL)",
            ):
                db.execute(ddl)
            row = db.execute("SELECT value FROM meta WHERE name = 'root_check'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('root_check', ?)", (self._seal(_CHECK_PLAINTEXT, "root_check"),))
            else:
                try:
                    self._open(row[0], "root_check")
                except KeyMaterialError:
                    db.execute("ROLLBACK")
                    raise KeyMaterialError(
                        f"{self._source}: the root key does not open the keyring at {self.path} "
                        "(wrong or rotated root key)"
                    ) from None
            db.execute("COMMIT")
        os.chmod(self.path, 0o600)
        self._ensure_secret(SIGNING_KEY_ID, kind="ed25519")
        self._ensure_secret(TOMBSTONE_HMAC_KEY_ID, kind="hmac")

    def _seal(self, plaintext: bytes, aad: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad.encode())

    def _open(self, blob: bytes, aad: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], aad.encode())
        except InvalidTag:
            raise KeyMaterialError(f"{self._source}: key {aad!r} cannot be decrypted with the root key") from None

    def _insert_key(self, key_id: str, kind: str, secret: bytes, created_by: str, public_pem: str | None) -> None:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM tombstones WHERE key_id = ?", (key_id,)).fetchone():
                    raise KeyMaterialError(f"key {key_id!r} was destroyed and cannot be re-created")
                db.execute(
                    "INSERT OR IGNORE INTO keys VALUES (?, ?, ?, ?, ?, ?)",
                    (key_id, self._seal(secret, key_id), kind, public_pem, _now(), created_by),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _ensure_secret(self, key_id: str, kind: str) -> None:
        with self._db() as db:
            if db.execute("SELECT 1 FROM keys WHERE key_id = ?", (key_id,)).fetchone():
                return
        if kind == "ed25519":
            priv = Ed25519PrivateKey.generate()
            secret = priv.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            pem = (
                priv.public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode()
            )
            self._insert_key(key_id, kind, secret, "keyring-init", pem)
        else:
            self._insert_key(key_id, kind, os.urandom(32), "keyring-init", None)

    def _material(self, key_id: str) -> bytes:
        with self._lock:
            cached = self._unwrapped.get(key_id)
        if cached is not None:
            return cached
        with self._db() as db:
            row = db.execute("SELECT material FROM keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                tomb = db.execute(
                    "SELECT destroyed_at, reason, run_id FROM tombstones WHERE key_id = ?", (key_id,)
                ).fetchone()
        if row is None:
            if tomb:
                raise KeyMaterialError(
                    f"key {key_id!r} was destroyed at {tomb[0]} ({tomb[1]}, run {tomb[2]})"
                )
            raise KeyMaterialError(f"key {key_id!r} is not in the keyring at {self.path}")
        material = self._open(row[0], key_id)
        with self._lock:
            self._unwrapped[key_id] = material
        return material

    # -- KeyService ----------------------------------------------------------------------
    def ensure_master_key(self, key_id: str, *, created_by: str) -> None:
        with self._lock:
            if key_id in self._known:
                return
        with self._db() as db:
            exists = db.execute("SELECT 1 FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        if not exists:
            self._insert_key(key_id, "master", os.urandom(MASTER_KEY_BYTES), created_by, None)
        with self._lock:
            self._known.add(key_id)

    def wrap(self, key_bytes: bytes, master_key_id: str) -> str:
        aead = AESGCM(self._material(master_key_id))
        nonce = os.urandom(12)
        return base64.b64encode(nonce + aead.encrypt(nonce, key_bytes, master_key_id.encode())).decode()

    def unwrap(self, wrapped: str, master_key_id: str) -> bytes:
        blob = base64.b64decode(wrapped)
        try:
            return AESGCM(self._material(master_key_id)).decrypt(blob[:12], blob[12:], master_key_id.encode())
        except InvalidTag:
            raise KeyMaterialError(f"a data key wrapped by {master_key_id!r} does not unwrap (tampered?)") from None

    def destroy(self, key_id: str, *, reason: str, run_id: str) -> KeyTombstone:
        """Destroy a key: its material is deleted for good and a tombstone remains. Idempotent."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                existing = db.execute(
                    "SELECT destroyed_at, reason, run_id FROM tombstones WHERE key_id = ?", (key_id,)
                ).fetchone()
                if existing:
                    db.execute("COMMIT")
                    return KeyTombstone(key_id, existing[0], existing[1], existing[2])
                row = db.execute("SELECT created_at, created_by FROM keys WHERE key_id = ?", (key_id,)).fetchone()
                if row is None:
                    raise KeyMaterialError(f"cannot destroy key {key_id!r}: it is not in the keyring")
                tomb = KeyTombstone(key_id, _now(), reason, run_id)
                db.execute(
                    "INSERT INTO tombstones VALUES (?, ?, ?, ?, ?, ?)",
                    (key_id, row[0], row[1], tomb.destroyed_at, reason, run_id),
                )
                db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        with self._lock:
            self._unwrapped.pop(key_id, None)
            self._known.discard(key_id)
        return tomb

    def info(self, key_id: str) -> KeyInfo | None:
        found = self.list_keys(key_id, exact=True)
        return found[0] if found else None

    def list_keys(self, prefix: str = "", *, exact: bool = False) -> list[KeyInfo]:
        cond, arg = ("key_id = ?", prefix) if exact else ("key_id LIKE ? ESCAPE '\\'", _like_prefix(prefix))
        with self._db() as db:
            active = db.execute(
                f"SELECT key_id, created_at, created_by FROM keys WHERE kind = 'master' AND {cond}", (arg,)
            ).fetchall()
            dead = db.execute(
                f"SELECT key_id, created_at, created_by, destroyed_at, reason, run_id FROM tombstones WHERE {cond}",
                (arg,),
            ).fetchall()
        out = [KeyInfo(k, "active", c, b) for k, c, b in active]
        out += [KeyInfo(k, "destroyed", c, b, d, r, run) for k, c, b, d, r, run in dead]
        return sorted(out, key=lambda k: k.key_id)

    def sign(self, data: bytes) -> tuple[str, str]:
        priv = Ed25519PrivateKey.from_private_bytes(self._material(SIGNING_KEY_ID))
        return SIGNING_KEY_ID, base64.b64encode(priv.sign(data)).decode()

    def public_key_pem(self, key_id: str = SIGNING_KEY_ID) -> str:
        with self._db() as db:
            row = db.execute("SELECT public_pem FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None or not row[0]:
            raise KeyMaterialError(f"no public key {key_id!r} in the keyring at {self.path}")
        return str(row[0])

    def verify(self, data: bytes, signature_b64: str, key_id: str) -> bool:
        return verify_signature(self.public_key_pem(key_id), data, signature_b64)

    def tombstone_hash(self, table: str, primary_key: int | str) -> str:
        return self.tombstone_hasher()(table, primary_key)

    def tombstone_hasher(self) -> TombstoneHasher:
        return TombstoneHasher(self._material(TOMBSTONE_HMAC_KEY_ID))


class TombstoneHasher:
    """Keyed hash of a purged primary key: ``HMAC-SHA256(key, "<table>:<pk>")``, hex.

    The ledger keeps these instead of the keys themselves, so evidence never holds purged data,
    yet a restore can recognise and drop every purged row.
    """

    def __init__(self, key: bytes):
        self._key = key

    def __call__(self, table: str, primary_key: int | str) -> str:
        return hmac.new(self._key, f"{table}:{primary_key}".encode(), hashlib.sha256).hexdigest()

    def many(self, table: str, primary_keys: Iterable[int | str]) -> list[str]:
        key = self._key
        prefix = f"{table}:".encode()
        return [hmac.new(key, prefix + str(pk).encode(), hashlib.sha256).hexdigest() for pk in primary_keys]


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def verify_signature(public_pem: str, data: bytes, signature_b64: str) -> bool:
    pub = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(pub, Ed25519PublicKey):
        raise KeyMaterialError("the signing public key is not an Ed25519 key")
    try:
        pub.verify(base64.b64decode(signature_b64), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def keyring_from_connection(conn: Any) -> LocalKeyring:
    """Build the key service from the Airflow connection ``governance_kms``.

    ``extra.backend`` selects the implementation; ``local`` (default) is the SQLite keyring with
    ``extra.keyring_path`` and the root key in ``password`` (base64) or ``extra.root_key_file``.
    """
    conn_id = getattr(conn, "conn_id", "governance_kms")
    extra = dict(getattr(conn, "extra_dejson", None) or {})
    backend = extra.get("backend", "local")
    if backend != "local":
        raise ConfigurationError(
            f"connection {conn_id!r}: KMS backend {backend!r} is not installed here "
            "(see docs/deployment.md for plugging in a cloud KMS or Vault)"
        )
    path = extra.get("keyring_path")
    if not path:
        raise ConfigurationError(f"connection {conn_id!r}: extra.keyring_path is missing")
    password = getattr(conn, "password", None)
    if password:
        root = _decode_root_key(password, f"connection {conn_id!r}")
    elif extra.get("root_key_file"):
        key_file = Path(extra["root_key_file"])
        try:
            mode = key_file.stat().st_mode & 0o777
        except FileNotFoundError:
            raise ConfigurationError(
                f"connection {conn_id!r}: the root key file {key_file} does not exist "
                "(run `make demo` or bin/make-local-key for a local one)"
            ) from None
        if mode & 0o077:
            raise ConfigurationError(
                f"connection {conn_id!r}: the root key file {key_file} must not be readable by others (chmod 600)"
            )
        root = _decode_root_key(key_file.read_text(), f"connection {conn_id!r} root key file {key_file}")
    else:
        raise ConfigurationError(
            f"connection {conn_id!r} has no root key: set its password (base64) or extra.root_key_file"
        )
    return LocalKeyring(path, root, source=f"connection {conn_id!r}")


def public_key_fingerprint(public_pem: str) -> str:
    return hashlib.sha256(public_pem.encode()).hexdigest()[:16]
