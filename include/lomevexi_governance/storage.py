"""Where recovery points live: a local folder or an object store, behind one small interface.

Publishing is atomic either way:

* local: a point is written under ``staging/<id>.<attempt>/``, every file fsynced, then the
  folder is renamed to ``recovery_points/<id>/`` (one ``rename``: all or nothing);
* object store (``s3://bucket/prefix``): objects are written under their final prefix and the
  manifest last; readers ignore any point without a valid, signed manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from lomevexi_governance.errors import ConfigurationError, NotFound

POINTS = "recovery_points"
STAGING = "staging"
CATALOG = "catalog"
_CHUNK = 4 << 20


class Storage:
    """Base class; paths are ``/``-separated and relative to the backup root."""

    root: str
    filesystem: Any
    atomic_rename: bool

    def full(self, rel: str) -> str:
        raise NotImplementedError

    # -- primitives implemented per backend ------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def delete_tree(self, rel: str, *, last: Sequence[str] = ()) -> None:
        """Delete a file or a folder. Files directly under ``rel`` named in ``last`` go last,
        in that order, so an interrupted delete leaves them (e.g. a point's manifest) behind
        and a rerun that still finds them can finish the job."""
        raise NotImplementedError

    def list_dir(self, rel: str) -> list[str]:
        raise NotImplementedError

    def finalize_file(self, rel: str) -> None:
        """Make a written file durable (fsync locally; a no-op on object stores)."""

    def publish(self, staging_rel: str, final_rel: str) -> None:
        raise NotImplementedError

    def staging_for(self, point_id: str) -> str:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        info = self.filesystem.get_file_info(self.full(rel))
        return info.type != pafs.FileType.NotFound

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.filesystem.open_input_stream(self.full(rel)) as fh:
                return fh.read()
        except FileNotFoundError:
            raise NotFound(f"{self.describe(rel)} does not exist") from None

    def sha256(self, rel: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        try:
            with self.filesystem.open_input_stream(self.full(rel)) as fh:
                while True:
                    chunk = fh.read(_CHUNK)
                    if not chunk:
                        break
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            raise NotFound(f"{self.describe(rel)} does not exist") from None
        return digest.hexdigest(), size

    def describe(self, rel: str) -> str:
        return self.full(rel)

    def walk_files(self, rel: str) -> Iterator[str]:
        selector = pafs.FileSelector(self.full(rel), recursive=True, allow_not_found=True)
        base = self.full(rel).rstrip("/") + "/"
        for info in self.filesystem.get_file_info(selector):
            if info.type == pafs.FileType.File:
                yield rel.rstrip("/") + "/" + info.path[len(base):]


class LocalStorage(Storage):
    atomic_rename = True

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.filesystem = pafs.LocalFileSystem()
        Path(self.root).mkdir(parents=True, exist_ok=True)

    def full(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def write_bytes(self, rel: str, data: bytes) -> None:
        from lomevexi_governance.reports import write_bytes_atomic

        write_bytes_atomic(self.full(rel), data)

    def delete_tree(self, rel: str, *, last: Sequence[str] = ()) -> None:
        path = self.full(rel)
        if os.path.isdir(path):
            if last:
                for name in sorted(os.listdir(path)):
                    if name not in last:
                        self.delete_tree(_join(rel, name))
                for name in last:
                    self.delete_tree(_join(rel, name))
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)

    def list_dir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.full(rel)))
        except FileNotFoundError:
            return []

    def finalize_file(self, rel: str) -> None:
        fd = os.open(self.full(rel), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def staging_for(self, point_id: str) -> str:
        rel = f"{STAGING}/{point_id}.{uuid.uuid4().hex[:12]}"
        Path(self.full(rel)).mkdir(parents=True)
        return rel

    def _fsync_tree(self, rel: str) -> None:
        for dirpath, _dirs, _files in os.walk(self.full(rel)):
            fd = os.open(dirpath, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def publish(self, staging_rel: str, final_rel: str) -> None:
        self._fsync_tree(staging_rel)
        final = self.full(final_rel)
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.full(staging_rel), final)  # fails if the final name already exists
        fd = os.open(os.path.dirname(final), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def local_path(self, rel: str) -> str:
        return self.full(rel)


class ObjectStorage(Storage):
    """An S3-compatible bucket through pyarrow's S3FileSystem.

    Credentials come from the standard AWS environment/instance settings; ``endpoint_override``
    (for S3-compatible servers) from ``AWS_ENDPOINT_URL``.
    """

    atomic_rename = False

    def __init__(self, url: str):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigurationError(f"unsupported backup root {url!r}: expected a local path or s3://bucket/prefix")
        kwargs: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        if endpoint:
            ep = urlparse(endpoint)
            kwargs["endpoint_override"] = ep.netloc or endpoint
            kwargs["scheme"] = ep.scheme or "https"
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        if region:
            kwargs["region"] = region
        self.filesystem = pafs.S3FileSystem(**kwargs)
        self.root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        self.url = url.rstrip("/")

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def describe(self, rel: str) -> str:
        return f"s3://{self.full(rel)}"

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.filesystem.open_output_stream(self.full(rel)) as fh:
            fh.write(data)

    def delete_tree(self, rel: str, *, last: Sequence[str] = ()) -> None:
        info = self.filesystem.get_file_info(self.full(rel))
        if info.type == pafs.FileType.File:
            self.filesystem.delete_file(self.full(rel))
        elif info.type == pafs.FileType.Directory:
            if last:
                # S3 batch deletes come in no particular order: delete everything but ``last``
                # first (sub-folders in batches), then ``last`` one by one, in order
                for child in self.list_dir(rel):
                    if child not in last:
                        self.delete_tree(_join(rel, child))
                for name in last:
                    self.delete_tree(_join(rel, name))
            if self.filesystem.get_file_info(self.full(rel)).type == pafs.FileType.Directory:
                self.filesystem.delete_dir(self.full(rel))

    def list_dir(self, rel: str) -> list[str]:
        selector = pafs.FileSelector(self.full(rel), recursive=False, allow_not_found=True)
        return sorted(i.base_name for i in self.filesystem.get_file_info(selector))

    def staging_for(self, point_id: str) -> str:
        # objects go straight to their final prefix; the manifest, written last, publishes them
        return f"{POINTS}/{point_id}"

    def publish(self, staging_rel: str, final_rel: str) -> None:
        if staging_rel != final_rel:
            raise ConfigurationError("object-store points are written in place")


def _join(rel: str, name: str) -> str:
    return f"{rel.rstrip('/')}/{name}" if rel else name


def storage_for(root: str) -> Storage:
    if "://" in root:
        scheme = root.split("://", 1)[0]
        if scheme == "file":
            return LocalStorage(urlparse(root).path)
        return ObjectStorage(root)
    return LocalStorage(root)
