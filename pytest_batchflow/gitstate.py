"""The code under test, as the history records it: a CI's commit variable, else
git's ``HEAD``, with ``+`` and a fingerprint of uncommitted changes.

Runs on different edits are not runs of the same code: their outcomes must
not pair as flips in a flakiness score, nor one's pass meet another CI
stage's dependency. Only tracked files count (a stage's own outputs, which
git does not track, leave the next stage's code as it was), and batchflow's
own files (a history store kept in git) do not. A changed submodule counts
with its own ``HEAD`` and changes. When git cannot tell (it fails, or takes
longer than :data:`TIMEOUT`), there is no commit rather than a wrong one.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = ["COMMIT_VARIABLES", "TIMEOUT", "commit_under_test"]

#: Where a CI names the commit under test, first found wins.
COMMIT_VARIABLES = ("BATCHFLOW_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA")
#: Seconds a git command may take.
TIMEOUT = 10
#: How deep submodules of submodules are looked into.
_SUBMODULE_DEPTH = 3


def commit_under_test(rootpath: Path, exclude: Iterable[Path] = ()) -> str | None:
    """``abc123...``, ``abc123...+0123456789ab`` with uncommitted changes to
    tracked files other than ``exclude``, or None without a commit."""
    for variable in COMMIT_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:  # a blank one is none
            return value
    return _state(rootpath, [path.absolute() for path in exclude], 0)


def _state(folder: Path, exclude: list[Path], depth: int) -> str | None:
    """The state of the repository ``folder`` is in; for a submodule (``depth``
    above 0), only when ``folder`` is that repository's top."""
    found = _git(folder, "rev-parse", "HEAD", "--show-toplevel")
    lines = [] if found is None else found.splitlines()
    if len(lines) != 2:
        return None
    head, top = lines[0].decode("ascii", "replace"), lines[1]
    if depth and os.path.realpath(top) != os.path.realpath(os.fsencode(folder)):
        return None  # a folder of the repository, not a submodule checked out
    # From the repository's top, without the index lock (as an editor's git
    # does): changed tracked files, NUL-separated, "XY path" (renames and
    # copies followed by their old path).
    changes = _git(
        folder, "--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=no"
    )
    if changes is None:
        return None
    # As git names them (its top is a real path): through links resolved.
    real_top = os.path.realpath(os.fsdecode(top))
    left_out = {os.fsencode(os.path.relpath(os.path.realpath(p), real_top)) for p in exclude}
    digest = hashlib.sha1(usedforsecurity=False)
    changed = False
    entries = iter(changes.split(b"\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if b"R" in status or b"C" in status:
            next(entries, None)  # the old path
        if path in left_out:
            continue
        changed = True
        # The path and what is there, not git's letters: staging an edit
        # (git add) leaves the code as it was.
        state = _file_state(os.path.join(top, path), depth)
        digest.update(path + b"\0" + state.encode("utf-8", "surrogateescape") + b"\0")
    return f"{head}+{digest.hexdigest()[:12]}" if changed else head


def _file_state(path: bytes, depth: int) -> str:
    """What changes when the file is edited: its size and modification time; a
    link's target; a submodule's own state."""
    try:
        info = os.lstat(path)
    except OSError:
        return "gone"
    if stat.S_ISLNK(info.st_mode):
        return f"-> {os.fsdecode(os.readlink(path))}"
    if stat.S_ISDIR(info.st_mode):  # a submodule, when it is a repository's top
        inside = (
            _state(Path(os.fsdecode(path)), [], depth + 1) if depth < _SUBMODULE_DEPTH else None
        )
        return inside or f"folder {info.st_mtime_ns}"  # else its gitlink
    return f"{info.st_size} {info.st_mtime_ns}"


def _git(cwd: Path, *arguments: str) -> bytes | None:
    """What a git command printed, as bytes (file names need not be UTF-8), or
    None when it failed."""
    try:
        completed = subprocess.run(
            ["git", *arguments], cwd=cwd, capture_output=True, timeout=TIMEOUT, check=False
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return completed.stdout if completed.returncode == 0 else None
