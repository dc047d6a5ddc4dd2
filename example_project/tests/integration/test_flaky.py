"""A test that is flaky by construction, to show how batchflow classifies reruns.

On its first attempt in a run, another connection holds the database's write lock and
the store, told not to wait, fails with "database is locked": the transient contention
that makes real SQLite-backed suites flaky. Every later attempt in the same run passes.

Its batch line (``integration: ... reruns=2``) gives it two reruns: batchflow reruns it
at the end of the batch (on another worker under ``-n``) and reports it ``flaky``. A
plain ``pytest`` run, without reruns, reports it failed: the problem batchflow is for.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import TYPE_CHECKING

from inventory import Product, Store

if TYPE_CHECKING:
    from pathlib import Path


def claim_first_attempt(marker: Path) -> bool:
    """True for exactly one caller per marker file, across processes.

    ``touch(exist_ok=False)`` creates the file with ``O_EXCL``, so even two xdist workers
    racing on a rerun cannot both see a first attempt.
    """
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def test_reserve_under_lock_contention(run_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "contended.sqlite3"
    with Store(path, timeout=0.0) as store:
        store.add(Product("FLK-1", "Contended crate", Decimal("4.50"), stock=3))
        competitor = sqlite3.connect(path, isolation_level=None)
        try:
            if claim_first_attempt(run_dir / "flaky-first-attempt"):
                competitor.execute("BEGIN IMMEDIATE")
            store.reserve("FLK-1", 2)
        finally:
            competitor.close()
        assert store.available("FLK-1") == 1
