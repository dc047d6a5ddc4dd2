"""A plain batch policy for the core tests: the fields of a batch line and their defaults.

It implements the ``BatchPolicy`` protocol of ``core.plan`` structurally, as the
settings model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Policy:
    name: str
    kind: Literal["test", "benchmark"] = "test"
    paths: tuple[str, ...] = ()
    markers: str | None = None
    after: tuple[str, ...] = ()
    mode: Literal["parallel", "serial", "exclusive"] = "parallel"
    workers: int | None = None
    priority: int = 0
    reruns: int = 0
    timeout: float | None = None
    maxfail: int | None = None
    cov: bool = True
    on_upstream_failure: Literal["skip", "run"] = "skip"
