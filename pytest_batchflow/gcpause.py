"""The garbage collector paused around code whose allocations all live on."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector paused (if it ran), for code whose allocations all
    live on: the collections they would trigger walk the whole heap and find
    nothing to free."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
