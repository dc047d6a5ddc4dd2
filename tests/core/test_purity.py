"""The core stays pure: importing it loads neither pytest nor xdist nor sqlite."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs in a fresh interpreter, where nothing has imported pytest yet.
IMPORT_ALL_OF_CORE = """
import importlib, json, pkgutil, sys
import pytest_batchflow.core as core
names = [info.name for info in pkgutil.iter_modules(core.__path__, core.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"core": names, "loaded": sorted(sys.modules)}))
"""

FORBIDDEN = ("pytest", "_pytest", "xdist", "sqlite3")


def test_importing_the_core_loads_no_pytest_xdist_or_sqlite() -> None:
    completed = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALL_OF_CORE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(completed.stdout)
    core = {name.rpartition(".")[2] for name in result["core"]}
    assert {"graph", "markexpr", "plan", "scheduler"} <= core
    loaded = result["loaded"]
    offenders = [
        name for name in loaded if any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)
    ]
    assert offenders == []
