"""Dispatch overhead on many fast tests: ``--dist load`` vs batchflow on ``-n 2``.

Run with ``python benchmarks/xdist_overhead.py [repetitions]`` (default 3;
about four minutes). Generates 5,000 no-op tests over 50 modules in a temporary
directory and times the whole ``python -m pytest -n 2`` command (perf_counter
around the subprocess) four ways: ``--dist load``, ``--batchflow
--batchflow-no-history``, ``--batchflow`` reading and writing the history
store, and the same with ``--batchflow-no-fast-exit``: Python's full shutdown
in every process, as under ``--dist load``, so that its ratio is batchflow's
own cost like for like (the target is on the default). One untimed warm-up
run of each first (bytecode caches; the history variants' warm-ups fill the
store they share), then the variants alternate within each
repetition so that drift hits them alike; the table gives the median and the
range. A second table splits each median: the time the tests ran (the first
test's start to the last test's stop, from a two-line conftest in every
variant) and the rest, before and after them. Standard library only; it prints
figures and the target, and asserts nothing.
"""

from __future__ import annotations

import statistics

from _xdist_bench import count_argument, machine, noop_runs, seconds, table

TESTS = 5000
MODULES = 50
WORKERS = 2
DEFAULT_REPETITIONS = 3
COMMON = ["-p", "no:cacheprovider", "-q", "-n", str(WORKERS)]
VARIANTS = {
    "--dist load": ["--dist", "load"],
    "batchflow, --batchflow-no-history": ["--batchflow", "--batchflow-no-history"],
    "batchflow, history": ["--batchflow"],
    "batchflow, history, --batchflow-no-fast-exit": ["--batchflow", "--batchflow-no-fast-exit"],
}
BASE = "--dist load"
#: Not a target: batchflow with Python's full shutdown, like --dist load.
LIKE_FOR_LIKE = "batchflow, history, --batchflow-no-fast-exit"
TARGET = 1.15


def main() -> None:
    repetitions = count_argument("repetitions", DEFAULT_REPETITIONS)
    print(
        f"xdist_overhead: {TESTS} no-op tests in {MODULES} modules, -n {WORKERS}, "
        f"{repetitions} repetitions; {machine()}",
        flush=True,
    )
    # The history variants' warm-ups fill the store they share.
    runs = noop_runs("batchflow-overhead-", TESTS, MODULES, VARIANTS, COMMON, repetitions)
    samples = {name: [run.wall for run in done] for name, done in runs.items()}
    statuses = {name: {run.status() for run in done} for name, done in runs.items()}
    base = statistics.median(samples[BASE])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append(
            [
                name,
                seconds(median),
                seconds(min(values)),
                seconds(max(values)),
                f"{median / base:.3f}",
                f"{1000 * (median - base) / TESTS:+.2f}",
                ", ".join(sorted(statuses[name])),
            ]
        )
    print()
    print(table(["variant", "median", "min", "max", "/load", "ms/test", "status"], rows))
    print()
    for name in VARIANTS:
        if name in (BASE, LIKE_FOR_LIKE):
            continue
        value = statistics.median(samples[name]) / base
        print(
            f"target {name} <= {TARGET:.2f} x {BASE}: {'met' if value <= TARGET else 'NOT met'} "
            f"({value:.3f})"
        )
    value = statistics.median(samples[LIKE_FOR_LIKE]) / base
    print(
        f"like for like (no target): {LIKE_FOR_LIKE} / {BASE}: {value:.3f}; the "
        "difference to the history variant is the processes' shutdown"
    )
    print(
        "wall time of the whole pytest command; ms/test: the median's difference to "
        f"{BASE} spread over the {TESTS} tests"
    )
    # Where the time goes: while tests run (dispatch), and before and after
    # (start, collection, planning; summing up, reports, the processes' exit).
    spans = {
        name: [run.span for run in done if run.span is not None] for name, done in runs.items()
    }
    if all(spans.values()):
        base_span = statistics.median(spans[BASE])
        print()
        print(
            table(
                ["variant", "tests ran", "/load", "before and after"],
                [
                    [
                        name,
                        seconds(statistics.median(values)),
                        f"{statistics.median(values) / base_span:.3f}",
                        seconds(statistics.median(samples[name]) - statistics.median(values)),
                    ]
                    for name, values in spans.items()
                ],
            )
        )
        print(
            "tests ran: the first test's start to the last test's stop, as the controller "
            "heard them (medians); before and after: the wall time's median minus it"
        )


if __name__ == "__main__":
    main()
