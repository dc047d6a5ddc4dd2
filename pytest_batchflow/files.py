"""Writing output files: whole or not at all, and out of git."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, TypeVar

T = TypeVar("T")

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "OUTPUT_KINDS",
    "OutputKind",
    "ignore_in_git",
    "output_problem",
    "remove_run_directory",
    "run_directory",
    "shared_file",
    "why_not_written",
    "write_atomically",
]


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


class OutputKind(NamedTuple):
    """An output batchflow writes: what it is, and what the start of the file
    holds when batchflow wrote it."""

    article: str
    noun: str
    mark: bytes


#: The outputs of a run and of ``batchflow report``.
OUTPUT_KINDS = {
    "json": OutputKind("a", "JSON result", b'"schema_version"'),
    "html": OutputKind("an", "HTML report", b"<title>batchflow"),
    "junit": OutputKind("a", "JUnit XML", b'<testsuites name="batchflow"'),
}
#: How much of a file :func:`output_problem` reads to tell that batchflow wrote it.
_HEAD = 4096


def output_problem(path: Path, kind: str, probe: bool = True) -> str | None:
    """Why :func:`write_atomically` could not put an output of ``kind`` (a key of
    :data:`OUTPUT_KINDS`) at ``path``, found before anything runs; None if
    nothing stands in its way.

    A file there is replaced only when it is empty or batchflow wrote it (its
    first bytes hold the kind's mark): an option that took the next argument
    as its path (``--batchflow-html tests/test_api.py``) would otherwise
    overwrite a source or a configuration file. Nor is a device, a pipe or a
    socket: the rename would put the output in its place (``/dev/null``, as
    root).

    ``probe``: also whether the folder lets a file be made in it, as the write
    makes its temporary file there: one is made in the nearest folder that
    exists and removed at once, which the system refuses where ``os.access``
    would not tell (``/proc``, a read-only mount, ACLs).
    """
    try:
        if path.is_dir():
            return f"{path} is a folder; name a file in it"
        if path.exists() and not path.is_file():  # a pipe or a terminal would wait for a read
            return f"{path} is not a regular file (a device, a pipe or a socket); name a file"
        if path.exists():
            try:
                with path.open("rb") as stream:
                    head = stream.read(_HEAD)
            except OSError as error:
                why = error.strerror or error
                return f"cannot read {path} to tell whether batchflow wrote it: {why}"
            output = OUTPUT_KINDS[kind]
            if head.strip() and output.mark not in head:
                return (
                    f"{path} exists and is not {output.article} {output.noun} that batchflow "
                    "wrote, so batchflow will not replace it; delete it or name another file"
                )
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # write_atomically makes the folders in between
        if not folder.is_dir():
            return f"{folder} is a file, not a folder, so {path} cannot be written"
    except OSError as error:  # a folder on the way that this process may not enter
        return f"cannot reach {path}: {error.strerror or error}"
    if not probe:
        return None
    try:
        descriptor, made = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as error:
        return f"cannot write in {folder}: {error.strerror or error}"
    os.close(descriptor)
    with contextlib.suppress(OSError):  # a folder that takes files and keeps them
        os.unlink(made)
    return None


def shared_file(files: Iterable[tuple[T, Path]]) -> tuple[T, T, Path] | None:
    """The first two of ``files`` (each a name and its path) that are one file:
    the earlier's name, the later's and the later's path; None when each has
    a file of its own."""
    claimed: dict[Path, T] = {}
    for name, path in files:
        key = path.resolve()
        if key in claimed:
            return claimed[key], name, path
        claimed[key] = name
    return None


def why_not_written(error: OSError, path: Path) -> str:
    """Why a file could not be written, naming what the system refused unless it
    is the file itself or the temporary file written beside it."""
    reason = error.strerror or str(error)
    refused = error.filename
    if refused and Path(refused) != path and not Path(refused).name.startswith(f".{path.name}."):
        reason += f": {refused}"
    return reason


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
    files between processes (``{prefix}XXXXXXXX``); :func:`remove_run_directory`
    removes it at the run's end.

    The process that makes it holds a lock on a file in it until then. A run
    that was killed (SIGKILL, SIGTERM, the out-of-memory killer) could not
    remove its folder, and its lock went with it: folders of this user with
    the same prefix whose lock nobody holds are removed first. A lock, not a
    process id: a run in another PID namespace (a container sharing ``/tmp``)
    holds it as well. Where there are no such locks (Windows), nothing is
    swept.
    """
    root = Path(tempfile.gettempdir())
    if fcntl is not None:
        for folder in root.glob(f"{prefix}*"):
            with contextlib.suppress(OSError):
                _remove_if_abandoned(folder)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    if fcntl is not None:
        # Locked before it has its name: a sweep never sees it free.
        unnamed = folder / f"{_LOCK}.new"
        descriptor = os.open(unnamed, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(unnamed, folder / _LOCK)
        _held[folder] = descriptor
    return folder


def remove_run_directory(folder: Path) -> None:
    """The run is over: remove its folder and give its lock back."""
    shutil.rmtree(folder, ignore_errors=True)
    descriptor = _held.pop(folder, None)
    if descriptor is not None:
        os.close(descriptor)


#: The lock file in a run's folder, and the locks this process holds.
_LOCK = ".batchflow-run.lock"
_held: dict[Path, int] = {}


def _remove_if_abandoned(folder: Path) -> None:
    """Remove a run folder of this user whose run is gone (its lock is free)."""
    assert fcntl is not None
    if folder in _held or not folder.is_dir() or folder.is_symlink():
        return
    if folder.stat().st_uid != os.getuid():
        return
    try:
        descriptor = os.open(folder / _LOCK, os.O_RDWR)
    except FileNotFoundError:
        return  # made an instant ago and not locked yet, or by another batchflow
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # its run is alive
    finally:
        os.close(descriptor)
    shutil.rmtree(folder, ignore_errors=True)
