"""Writing output files: whole or not at all, and out of git."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["ignore_in_git", "run_directory", "write_atomically"]


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        # mkstemp makes the file private; an output is as readable as any other file.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ignore_in_git(folder: Path) -> None:
    """Keep run outputs out of commits, as pytest does for its cache folder."""
    gitignore = folder / ".gitignore"
    if not gitignore.exists():
        with contextlib.suppress(OSError):
            gitignore.write_text("# created by pytest-batchflow\n*\n", encoding="utf-8")


def run_directory(prefix: str) -> Path:
    """A new private folder in the system's temporary folder, for this run's
    files between processes: ``{prefix}{pid}-XXXXXXXX``, removed by the run.

    A run that was killed (SIGKILL, SIGTERM, the out-of-memory killer) could
    not remove its folder: folders of this user with the same prefix whose
    process is gone are removed first.
    """
    root = Path(tempfile.gettempdir())
    for stale in root.glob(f"{prefix}*-*"):
        pid = stale.name[len(prefix) :].partition("-")[0]
        with contextlib.suppress(OSError, ValueError):
            if stale.is_dir() and stale.stat().st_uid == os.getuid() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
