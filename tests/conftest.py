from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BATCHFLOW_* or GITHUB_* variable of the shell (or of CI) leaks into a scenario."""
    import os

    for name in list(os.environ):
        if name.startswith(("BATCHFLOW", "GITHUB_")) or name == "CI_COMMIT_SHA":
            monkeypatch.delenv(name)
