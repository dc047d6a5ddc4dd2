"""The collector pause restores the collector as it found it, errors included."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pytest_batchflow.gcpause import collector_paused


@pytest.fixture
def collector_state() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_state")
@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_inside_and_restored_after(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("a bad setting")
    assert gc.isenabled() is enabled
