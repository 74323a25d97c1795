"""Tables of one recovery point written by several processes from one PostgreSQL snapshot.

The pattern of ``pg_dump -j``: the leader (the backup task) holds the backup's REPEATABLE READ
transaction and exports its snapshot (``pg_export_snapshot``); each worker process opens its
own connection and adopts it (``SET TRANSACTION SNAPSHOT``), so every table is read as of the
same instant. Leader and workers take tables from one shared counter, largest first, and write
them into the point's staging folder; the leader then assembles and signs one manifest.

* Workers are fresh interpreters (``python -m lomevexi_governance.backup_workers``), never forks
  of the leader: a forked child would share the leader's database socket, and multiprocessing's
  spawn would re-run the Airflow process's main module. The work description (with the keyring,
  see below) goes through the child's stdin; results come back as files in a private (0700)
  folder, written atomically; tables are claimed through a locked counter file.
* What a worker returns is what the leader would have computed itself: the table's manifest
  entry, its partitions, the content scan's counts and primary keys, reference violations, and
  the Great Expectations aggregates (counts only). No row data crosses a process boundary.
* The keyring is handed over through the pipe (``LocalKeyring.__reduce__``), never a file; a key
  service that cannot be pickled makes the backup run in one process, with a log line.
* A worker that fails names its table; the leader stops the others and fails the attempt (the
  staging folder is discarded by the next attempt). A worker dies with its leader
  (``PR_SET_PDEATHSIG``) and checks between tables that the leader is still its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lomevexi_governance import db, errors
from lomevexi_governance import recovery_points as rp
from lomevexi_governance.settings import DatabaseTarget
from lomevexi_governance.source import Snapshot

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
#: the leader writes tables too (it holds a connection and a validator anyway); tests switch it
#: off to send every table through the worker processes
LEADER_WRITES = True


class WorkerFailed(RuntimeError):
    """A worker process failed with an error that is not a governance error (retried)."""


@dataclass
class WorkerSpec:
    pw: rp.PointWrite
    target: DatabaseTarget
    exported: str
    order: list[str]
    gx: bool
    leader_pid: int
    exchange: str  # private folder: the claim counter and the results


def table_sizes(snapshot: Snapshot, names: list[str]) -> dict[str, int]:
    """On-disk size of each table (PostgreSQL), to hand out the largest tables first."""
    sizes = {}
    for name in names:
        literal = "'" + db.quote_ident(name).replace("'", "''") + "'"
        sizes[name] = int(snapshot.scalar(f"SELECT coalesce(pg_relation_size(to_regclass({literal})), 0)") or 0)
    return sizes


def claim(exchange: str, order: list[str]) -> str | None:
    """The next table nobody has taken yet (a counter file under an exclusive lock)."""
    path = Path(exchange) / "claims"
    with open(path, "a+", encoding="ascii") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        i = int(fh.read() or 0)
        if i >= len(order):
            return None
        fh.seek(0)
        fh.truncate()
        fh.write(str(i + 1))
        fh.flush()
    return order[i]


def _put(exchange: str, name: str, payload: Any) -> None:
    path = Path(exchange) / name
    tmp = path.with_name(f".partial-{name}")  # never matched by the leader's prefixes
    tmp.write_bytes(pickle.dumps(payload))
    os.replace(tmp, path)


def _die_with_parent(leader_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != leader_pid:
        raise SystemExit(3)


def worker_main() -> int:
    """A worker process: adopt the leader's snapshot, write tables until none are left."""
    # unpickled from the pipe as it arrives: never the whole pickle and its objects at once
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)  # noqa: S301 - our own leader, over a pipe
    _die_with_parent(spec.leader_pid)
    from lomevexi_governance.backup import backup_table

    current = None
    try:
        pw = spec.pw
        validator = None
        if spec.gx:
            from lomevexi_governance.validation import GxValidator

            validator = GxValidator(pw.policy, Path(spec.exchange), tables=spec.order)
        with Snapshot(spec.target, batch_rows=pw.policy.batch_rows, imported=spec.exported) as snapshot:
            while os.getppid() == spec.leader_pid:
                current = claim(spec.exchange, spec.order)
                if current is None:
                    break
                _put(spec.exchange, f"start-{current}", os.getpid())
                part = backup_table(pw, snapshot, pw.policy.table(current), validator)
                if validator is not None:
                    part.checks["gx"] = validator.take(current)
                _put(spec.exchange, f"done-{current}", part)
    except BaseException as exc:  # noqa: BLE001 - reported to the leader, which raises
        _put(spec.exchange, f"error-{os.getpid()}", (current, type(exc).__name__, str(exc)))
        return 1
    return 0


def _raise_worker_error(table: str | None, cls_name: str, message: str) -> None:
    where = f"table {table!r}" if table else "startup"
    cls = getattr(errors, cls_name, None)
    if isinstance(cls, type) and issubclass(cls, errors.GovernanceError):
        raise cls(f"{message} (backup worker, {where})")
    raise WorkerFailed(f"backup worker failed at {where}: {cls_name}: {message}")


def write_tables_in_parallel(
    pw: rp.PointWrite, snapshot: Snapshot, workers: int, validator: Any = None
) -> list[rp.TablePart]:
    """Write every table of ``pw`` with the leader and ``workers - 1`` worker processes."""
    from lomevexi_governance.backup import backup_table

    names = [t.name for t in pw.scope]
    sizes = table_sizes(snapshot, names)
    order = sorted(names, key=lambda n: (-sizes[n], names.index(n)))
    exchange = tempfile.mkdtemp(prefix="lomevexi-backup-")  # 0700
    try:
        spec = WorkerSpec(pw, snapshot.target, snapshot.export(), order, validator is not None, os.getpid(),
                          exchange)
        try:
            payload = pickle.dumps(spec)
        except Exception as exc:  # noqa: BLE001 - e.g. a key service client that cannot be pickled
            log.warning("writing tables in one process: the backup cannot be handed to workers (%s)",
                        type(exc).__name__)
            return [backup_table(pw, snapshot, t, validator) for t in pw.scope]
        started = time.monotonic()
        procs = _start(workers - 1, payload)
        # the pickled work (the planner's facts: about 19 bytes an order) is the workers' now;
        # kept here, it would be the leader's largest allocation for the whole backup
        del payload
        return _run(pw, snapshot, validator, spec, procs, started)
    finally:
        shutil.rmtree(exchange, ignore_errors=True)


def _start(count: int, payload: bytes) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` worker processes, each handed ``payload`` through its stdin."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            proc = subprocess.Popen(  # our own module, same interpreter
                [sys.executable, "-m", "lomevexi_governance.backup_workers"], stdin=subprocess.PIPE, close_fds=True
            )
            procs.append(proc)
            assert proc.stdin is not None
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except BrokenPipeError:
                code = proc.wait()
                raise WorkerFailed(
                    f"backup worker (pid {proc.pid}) exited with code {code} before it had taken its work"
                ) from None
    except BaseException:
        for proc in procs:
            proc.kill()
            proc.wait()
        raise
    return procs


def _run(pw: rp.PointWrite, snapshot: Snapshot, validator: Any, spec: WorkerSpec,
         procs: list[subprocess.Popen[bytes]], started: float) -> list[rp.TablePart]:
    from lomevexi_governance.backup import backup_table

    exchange, order = Path(spec.exchange), spec.order
    parts: dict[str, rp.TablePart] = {}

    def collect() -> None:
        for path in sorted(exchange.iterdir()):
            if path.name.startswith("error-"):
                table, cls_name, message = pickle.loads(path.read_bytes())  # noqa: S301 - our worker
                _raise_worker_error(table, cls_name, message)
            if path.name.startswith("done-") and path.name[5:] not in parts:
                part: rp.TablePart = pickle.loads(path.read_bytes())  # noqa: S301 - our worker
                if validator is not None:
                    validator.merge(part.checks.pop("gx", {}))
                parts[part.name] = part
                log.info("a worker wrote %s (%d rows)", part.name, part.entry["rows"])

    try:
        while LEADER_WRITES and (name := claim(spec.exchange, order)) is not None:
            collect()
            parts[name] = backup_table(pw, snapshot, pw.policy.table(name), validator)
            log.info("the leader wrote %s (%d rows)", name, parts[name].entry["rows"])
        while True:
            collect()
            if len(parts) == len(order):
                break
            if all(p.poll() is not None for p in procs):
                collect()
                if len(parts) < len(order):
                    lost = sorted(set(order) - set(parts))
                    codes = [p.returncode for p in procs]
                    raise WorkerFailed(f"backup worker(s) exited (codes {codes}) before writing table(s) {lost}")
            time.sleep(POLL_SECONDS)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    log.info("%d tables written by %d processes in %.1fs", len(parts), len(procs) + 1, time.monotonic() - started)
    return [parts[n] for n in [t.name for t in pw.scope]]


if __name__ == "__main__":
    sys.exit(worker_main())
