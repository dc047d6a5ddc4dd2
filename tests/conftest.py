from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BATCHFLOW_* or GITHUB_* variable of the shell (or of CI) leaks into a scenario."""
    import os

    for name in list(os.environ):
        if name.startswith(("BATCHFLOW", "GITHUB_")) or name == "CI_COMMIT_SHA":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _scenarios_without_hypothesis(request: pytest.FixtureRequest) -> None:
    """The scenarios' own pytest runs load no Hypothesis plugin.

    Hypothesis's pytest plugin (6.170) imports all of Hypothesis in its terminal
    summary, whether or not a test used it: some 0.8 s of every pytest process
    a scenario starts, which is most of what a scenario costs. The scenarios do
    not use Hypothesis. Pytester clears ``PYTEST_ADDOPTS`` when it is set up, so
    this sets it after; fresh processes (``runpytest_subprocess``, xdist's
    workers, ``subprocess.run``) and in-process runs read it alike.
    """
    if "pytester" not in request.fixturenames:
        return
    request.getfixturevalue("pytester")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest")
