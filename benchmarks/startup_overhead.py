"""Startup overhead of pytest-batchflow: blocked vs installed-but-off vs on.

Run with ``python benchmarks/startup_overhead.py [repetitions]`` (default 15).
Times ``python -m pytest --collect-only -q`` on a generated suite of 500
trivial tests in a temporary directory, the three variants alternating within
each repetition so that drift (caches, CPU frequency) hits them alike, and
reads the plugin module's cumulative import time from ``python -X importtime``.
Standard library only.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _xdist_bench import clean_env, count_argument

TESTS = 500
PER_FILE = 50
DEFAULT_REPETITIONS = 15

VARIANTS = {
    "a: -p no:batchflow": ["-p", "no:batchflow"],
    "b: installed, off": [],
    "c: --batchflow": ["--batchflow", "--batchflow-no-history"],
}


def make_suite(root: Path) -> None:
    for index in range(TESTS // PER_FILE):
        body = "".join(f"def test_{n}():\n    pass\n\n" for n in range(PER_FILE))
        (root / f"test_gen_{index:02d}.py").write_text(body)


def time_collect(root: Path, extra: list[str], env: dict[str, str]) -> float:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    done = subprocess.run(command + extra, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command + extra)} failed:\n{done.stdout}\n{done.stderr}")
    if f"{TESTS} tests collected" not in done.stdout:
        raise SystemExit(f"unexpected collection output:\n{done.stdout}")
    return elapsed


def plugin_import_us(env: dict[str, str], code: str) -> int:
    """Cumulative -X importtime of pytest_batchflow.plugin when running ``code``, in us."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "pytest_batchflow.plugin":
            return int(parts[1])
    raise SystemExit("pytest_batchflow.plugin not found in -X importtime output")


def main() -> None:
    repetitions = count_argument("repetitions", DEFAULT_REPETITIONS)
    env = clean_env()
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="batchflow-bench-") as tmp:
        root = Path(tmp)
        make_suite(root)
        for extra in VARIANTS.values():  # warm-up: bytecode caches, page cache
            time_collect(root, extra, env)
        names = list(VARIANTS)
        for repetition in range(repetitions):
            # Rotate the starting variant so none always goes first.
            shift = repetition % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(time_collect(root, VARIANTS[name], env))
    cold = [plugin_import_us(env, "import pytest_batchflow.plugin") for _ in range(5)]
    # In a pytest run, pytest is already imported: the plugin's own share.
    warm = [
        plugin_import_us(env, "import pytest; import pytest_batchflow.plugin") for _ in range(5)
    ]

    print(
        f"pytest --collect-only -q, {TESTS} trivial tests, {repetitions} repetitions "
        f"(Python {sys.version.split()[0]})"
    )
    print(f"{'variant':<22}{'median ms':>12}{'min ms':>10}")
    for name, values in samples.items():
        print(f"{name:<22}{statistics.median(values) * 1000:>12.1f}{min(values) * 1000:>10.1f}")
    med = {name: statistics.median(values) for name, values in samples.items()}
    low = {name: min(values) for name, values in samples.items()}
    a, b, c = VARIANTS
    print(
        f"{'b - a (off overhead)':<22}{(med[b] - med[a]) * 1000:>12.1f}"
        f"{(low[b] - low[a]) * 1000:>10.1f}"
    )
    print(f"{'c / a (ratio)':<22}{med[c] / med[a]:>12.3f}{low[c] / low[a]:>10.3f}")
    print("import pytest_batchflow.plugin, -X importtime cumulative, 5 runs:")
    for label, micros in (("cold (pytest included)", cold), ("pytest already imported", warm)):
        print(f"  {label:<26}median {statistics.median(micros):>8.0f} us, min {min(micros):>8} us")


if __name__ == "__main__":
    main()
