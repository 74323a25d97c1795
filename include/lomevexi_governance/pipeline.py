"""Overlapping work on both cores inside one process.

pyarrow (the ADBC reader, casts, compute, Parquet encoding and encryption) and numpy release the
GIL while they work, so a thread that reads the next record batches from the database runs at
the same time as the Python-level checks on the current one.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetched(source: Iterator[T], depth: int = 2, name: str = "prefetch") -> Generator[T, None, None]:
    """Yield the items of ``source``, produced by a background thread up to ``depth`` ahead.

    ``source`` runs entirely on that thread (a database cursor is used by one thread only), and
    its exceptions are re-raised here unchanged. When the consumer stops early (``close()``, an
    exception, garbage collection), the thread stops after its current item, closes ``source``
    (running its cleanup) and is joined before this generator returns: nothing outlives it.
    Memory: at most ``depth`` items wait in the queue, plus the one being produced.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            put(_Failed(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - reported to the consumer if it still listens
                    put(_Failed(exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get(timeout=0.1)  # unblock a producer waiting to put
            except queue.Empty:
                pass
        thread.join()


@functools.cache
def libc() -> Any:
    """The C library already loaded into this process (``malloc_trim``, ``mallopt``), or None.

    Not ``ctypes.util.find_library("c")``: on Linux that runs ``/sbin/ldconfig -p`` in a child
    process at every call, and :func:`release_memory` runs after every table, from a large,
    multi-threaded process.
    """
    import ctypes

    try:
        lib = ctypes.CDLL(None)  # the symbols loaded into the process, the C library's among them
        lib.malloc_trim  # noqa: B018 - raises AttributeError where the C library has none (not glibc)
    except (OSError, AttributeError):
        return None
    return lib


def release_memory() -> None:
    """Give freed memory back to the system: Arrow's allocator keeps what a table's buffers
    used for the next allocation, and so does the C heap (between tables: the next may be
    smaller; before a step that imports much, such as GX writing its results)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    lib = libc()
    if lib is not None:
        lib.malloc_trim(0)
