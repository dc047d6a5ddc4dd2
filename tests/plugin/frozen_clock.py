"""A test module's opening that freezes the clock for all its tests (freezegun)."""

FROZEN_MODULE = """\
import time

import pytest
from freezegun import freeze_time


@pytest.fixture(scope="module", autouse=True)
def frozen():
    with freeze_time("2040-01-01"):
        yield


"""
