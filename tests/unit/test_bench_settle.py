"""The bench harness settles the machine before each run, and goes on without CHECKPOINT
when the server refuses it (said once, then syncing only)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import pytest
from bench import run as bench_run

pytestmark = pytest.mark.unit


def test_settle_syncs_without_checkpoint_when_the_server_refuses_it(tmp_path: Path, monkeypatch, capsys) -> None:
    opts = argparse.Namespace(pg="postgresql://postgres@127.0.0.1:5432", as_of="2026-11-24T00:00:00+00:00")
    harness = bench_run.Harness(opts, tmp_path)
    calls: list[str] = []

    class Refusing:
        def execute(self, sql: str) -> None:
            calls.append(sql)
            raise PermissionError("permission denied to execute CHECKPOINT")

    monkeypatch.setattr(harness, "admin", lambda: contextlib.nullcontext(Refusing()))
    synced: list[bool] = []
    monkeypatch.setattr(bench_run.os, "sync", lambda: synced.append(True))

    assert harness.settle() >= 0 and harness.settle() >= 0
    assert calls == ["CHECKPOINT"]  # tried once, not before every run
    assert synced == [True, True]  # the kernel's dirty pages are synced anyway
    assert harness.checkpoint is False
    err = capsys.readouterr().err
    assert err.count("CHECKPOINT before each run not possible, syncing only") == 1
    assert "permission denied" in err
