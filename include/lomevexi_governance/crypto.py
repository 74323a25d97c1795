"""Parquet Modular Encryption over the key service.

Every column is encrypted, and so is the footer. Columns are grouped by sensitivity class and
each class has its own master key (``<partition>/<class>``), so access to a backup can be tiered
by key, and a partition's rows vanish from every recovery point when its keys are destroyed.

pyarrow caches unwrapped keys inside a ``CryptoFactory``; we build a fresh factory and fresh
properties for every file, so a destroyed key can never be served from a cache.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

from lomevexi_governance.errors import IntegrityError, KeyMaterialError
from lomevexi_governance.keys import FOOTER, KeyService

#: Data keys are AES-256 (pyarrow's default is 128).
DATA_KEY_BITS = 256
_CACHE = dt.timedelta(seconds=1)

#: How a recovery-point file is read: a column chunk at a time through a 1 MiB buffered stream.
#: pyarrow's default (``pre_buffer``) reads every column chunk of the row groups being read up
#: front; in a drill, which decodes one file while it reads back another table, those chunks
#: were about 50 MB of its peak heap (2M orders, memray), and the drill ran no slower without
#: them (three alternating pairs, 2026-12-07).
READ_OPTIONS: dict[str, Any] = {"pre_buffer": False, "buffer_size": 1 << 20}


class _KmsClient(pe.KmsClient):
    """pyarrow's KMS client interface, backed by a :class:`KeyService`."""

    def __init__(self, service: KeyService, errors: list[BaseException]):
        super().__init__()
        self._service = service
        self._errors = errors

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        try:
            return self._service.wrap(bytes(key_bytes), master_key_identifier)
        except BaseException as exc:
            self._errors.append(exc)
            raise

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        try:
            return self._service.unwrap(wrapped_key, master_key_identifier)
        except BaseException as exc:
            self._errors.append(exc)
            raise


class _Session:
    """One CryptoFactory for one file; remembers the KMS errors pyarrow wraps into OSError."""

    def __init__(self, service: KeyService):
        self.errors: list[BaseException] = []
        errors = self.errors
        self.factory = pe.CryptoFactory(lambda _config: _KmsClient(service, errors))
        self.kms_config = pe.KmsConnectionConfig()

    def key_error(self) -> KeyMaterialError | None:
        for exc in self.errors:
            if isinstance(exc, KeyMaterialError):
                return exc
        return None


def master_key_ids(partition_key_prefix: str, classes: Sequence[str]) -> dict[str, str]:
    """``{class: master key id}`` for a partition, including the footer key."""
    ids = {c: f"{partition_key_prefix}/{c}" for c in sorted(set(classes))}
    ids[FOOTER] = f"{partition_key_prefix}/{FOOTER}"
    return ids


def encryption_properties(
    service: KeyService, class_keys: Mapping[str, str], columns_by_class: Mapping[str, Sequence[str]]
) -> Any:
    """Fresh FileEncryptionProperties: each class's columns under its master key, footer encrypted."""
    session = _Session(service)
    column_keys = {class_keys[c]: list(cols) for c, cols in columns_by_class.items() if cols}
    config = pe.EncryptionConfiguration(
        footer_key=class_keys[FOOTER],
        column_keys=column_keys,
        encryption_algorithm="AES_GCM_V1",
        plaintext_footer=False,
        double_wrapping=True,
        internal_key_material=True,
        cache_lifetime=_CACHE,
        data_key_length_bits=DATA_KEY_BITS,
    )
    try:
        return session.factory.file_encryption_properties(session.kms_config, config)
    except OSError:
        err = session.key_error()
        if err:
            raise err from None
        raise


def open_encrypted(path: str, service: KeyService, *, filesystem: Any = None) -> pq.ParquetFile:
    """Open one encrypted Parquet file. Errors name the file and, for key problems, the key id."""
    session = _Session(service)
    decryption = session.factory.file_decryption_properties(
        session.kms_config, pe.DecryptionConfiguration(cache_lifetime=_CACHE)
    )
    try:
        if filesystem is not None:
            source = filesystem.open_input_file(path)
            return pq.ParquetFile(source, decryption_properties=decryption, **READ_OPTIONS)
        return pq.ParquetFile(path, decryption_properties=decryption, **READ_OPTIONS)
    except (OSError, pa.ArrowException) as exc:
        err = session.key_error()
        if err:
            raise KeyMaterialError(f"{os.path.basename(path)}: {err}") from None
        raise IntegrityError(f"cannot decrypt or parse {path}: {type(exc).__name__}") from None


def read_batches(pf: pq.ParquetFile, path: str, *, batch_size: int = 65536, columns: list[str] | None = None):
    """Stream a file's record batches; corruption found mid-read names the file."""
    try:
        yield from pf.iter_batches(batch_size=batch_size, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise IntegrityError(f"cannot decrypt or decode {path}: {type(exc).__name__}") from None
