"""The commit under test with uncommitted changes (``pytest_batchflow/gitstate.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pytest_batchflow.gitstate import commit_under_test

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(folder: Path, *arguments: str) -> str:
    identity = ("-c", "user.name=t", "-c", "user.email=t@example.com")
    command = ["git", *identity, "-c", "protocol.file.allow=always", *arguments]
    completed = subprocess.run(command, cwd=folder, check=True, capture_output=True)
    return completed.stdout.decode().strip()


def repository(folder: Path, **files: str) -> str:
    """A repository with ``files`` committed; its HEAD."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "first")
    return git(folder, "rev-parse", "HEAD")


def edit(path: Path, text: str) -> None:
    """Write, with a modification time of its own (file systems keep a few ms apart)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    while path.stat().st_mtime_ns == before:
        time.sleep(0.01)
        path.write_text(text)


def test_a_clean_tree_is_its_head_and_each_edit_another_commit(tmp_path: Path) -> None:
    head = repository(tmp_path, **{"calc.py": "ONE = 1\n"})
    assert commit_under_test(tmp_path) == head
    edit(tmp_path / "calc.py", "ONE = 2\n")
    first = commit_under_test(tmp_path)
    assert first is not None
    assert first.startswith(f"{head}+")
    assert len(first) == len(head) + 13
    assert commit_under_test(tmp_path) == first  # the same edit: the same commit
    edit(tmp_path / "calc.py", "ONE = 3\n")
    assert commit_under_test(tmp_path) not in (head, first)
    edit(tmp_path / "calc.py", "ONE = 1\n")  # as committed
    assert commit_under_test(tmp_path) == head


def test_files_git_does_not_track_and_batchflow_s_own_change_nothing(tmp_path: Path) -> None:
    head = repository(tmp_path, **{"calc.py": "ONE = 1\n", "history.sqlite": "kept in git\n"})
    (tmp_path / "junit.xml").write_text("<testsuites/>")  # a stage's output
    edit(tmp_path / "history.sqlite", "written by the run\n")
    assert commit_under_test(tmp_path, [tmp_path / "history.sqlite"]) == head
    assert commit_under_test(tmp_path) != head


def test_odd_file_names_and_renames_are_read(tmp_path: Path) -> None:
    head = repository(tmp_path, **{"a b.py": "x = 1\n", "old.py": "y = 1\n"})
    odd = os.fsencode(tmp_path) + b"/f\xff.py"  # not UTF-8: git prints bytes
    with open(odd, "w") as file:
        file.write("z = 1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "odd")
    head = git(tmp_path, "rev-parse", "HEAD")
    with open(odd, "w") as file:
        file.write("z = 22\n")
    edit(tmp_path / "a b.py", "x = 2\n")
    (tmp_path / "old.py").rename(tmp_path / "new name.py")
    git(tmp_path, "add", "-N", "new name.py")  # a rename in the working tree
    state = commit_under_test(tmp_path)
    assert state is not None
    assert state.startswith(f"{head}+")
    assert commit_under_test(tmp_path) == state


def test_a_submodule_s_edits_change_the_commit(tmp_path: Path) -> None:
    repository(tmp_path / "lib", **{"lib.py": "V = 1\n"})
    head = repository(tmp_path / "app", **{"app.py": "import lib\n"})
    git(tmp_path / "app", "submodule", "add", "-q", str(tmp_path / "lib"), "lib")
    git(tmp_path / "app", "commit", "-qm", "lib")
    head = git(tmp_path / "app", "rev-parse", "HEAD")
    assert commit_under_test(tmp_path / "app") == head
    states = []
    for value in (2, 3):
        edit(tmp_path / "app" / "lib" / "lib.py", f"V = {value}\n")
        states.append(commit_under_test(tmp_path / "app"))
    # The folder's own size and time do not change: before, both were the same.
    assert head not in states
    assert states[0] != states[1]


def test_no_commit_where_git_cannot_tell(tmp_path: Path) -> None:
    assert commit_under_test(tmp_path) is None  # no repository
    (tmp_path / "empty").mkdir()
    git(tmp_path / "empty", "init", "-q")
    assert commit_under_test(tmp_path / "empty") is None  # no commit yet
    repository(tmp_path / "broken", **{"calc.py": "ONE = 1\n"})
    edit(tmp_path / "broken" / "calc.py", "ONE = 2\n")
    (tmp_path / "broken" / ".git" / "index").write_bytes(b"not an index")
    # git status fails: before, the edited tree passed for a clean HEAD.
    assert commit_under_test(tmp_path / "broken") is None


def test_staging_an_edit_leaves_the_commit_as_it_was(tmp_path: Path) -> None:
    repository(tmp_path, **{"calc.py": "ONE = 1\n"})
    edit(tmp_path / "calc.py", "ONE = 2\n")
    edited = commit_under_test(tmp_path)
    git(tmp_path, "add", "-A")  # the same code: a stage's pass still counts
    assert commit_under_test(tmp_path) == edited


def test_a_retargeted_link_changes_the_commit_and_batchflow_s_file_never(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / "elsewhere" / name).mkdir(parents=True)
    repo = tmp_path / "repo"
    repository(repo, **{"hist.sqlite": "kept\n", "calc.py": "ONE = 1\n"})
    (repo / "data").symlink_to(tmp_path / "elsewhere" / "one")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "link")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "data").unlink()
    (repo / "data").symlink_to(tmp_path / "elsewhere" / "two")
    retargeted = commit_under_test(repo, [repo / "hist.sqlite"])
    assert retargeted not in (None, head)
    # The history store, kept in git, named through a link to the repository.
    (tmp_path / "via").symlink_to(repo)
    edit(repo / "hist.sqlite", "written by the run\n")
    assert commit_under_test(repo, [tmp_path / "via" / "hist.sqlite"]) == retargeted
