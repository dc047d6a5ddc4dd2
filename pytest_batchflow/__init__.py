"""pytest-batchflow: run a pytest suite as batch jobs in dependency order."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
