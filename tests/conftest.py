from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BATCHFLOW_* variable of the developer's shell leaks into a scenario."""
    import os

    for name in list(os.environ):
        if name.startswith("BATCHFLOW") or name in ("GITHUB_SHA", "CI_COMMIT_SHA"):
            monkeypatch.delenv(name)
