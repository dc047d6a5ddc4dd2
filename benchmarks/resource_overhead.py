"""Cost of measuring each test's memory and CPU: batchflow with and without resources.

Run with ``python benchmarks/resource_overhead.py [repetitions] [serial|-n]``
(default 5 repetitions of both modes; about five minutes on two CPUs; with a
mode, that mode alone, so that many repetitions fit in the time). Generates
5,000 no-op tests over 50 modules in a temporary directory and times the whole
``python -m pytest`` command (perf_counter around the subprocess) four ways:
``--batchflow --batchflow-no-history --batchflow-no-resources`` (not measured)
and ``--batchflow --batchflow-no-history`` (each test's peak memory and CPU
time measured, see pytest_batchflow/resources.py), both serially and on ``-n
2``. One untimed warm-up run of each first (bytecode caches), then the variants
alternate within each repetition (in reverse order every other one) so that
drift hits them alike; the table gives the median and the range, and the ratio
measured / not measured within each mode; under it, the target against each
repetition's own ratio (its two runs ran one after the other), with a 95%
confidence interval for their median (from the order statistics,
distribution-free; at least 6 repetitions), then the ratio of the medians. The
verdict is "met" when the whole interval is within the target, "NOT met" when
all of it is above, and "not settled" when the target lies inside it. Under the
table, the in-process cost of one ``ResourceMeter().start()`` / ``.stop()``
pair, the part of the overhead that is the measuring itself (the rest is
carrying the figures on the reports and gathering them). Standard library only;
it prints figures and the target, and asserts nothing.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

from _xdist_bench import count_argument, machine, noop_runs, ratio, seconds, table

TESTS = 5000
MODULES = 50
WORKERS = 2
DEFAULT_REPETITIONS = 5
COMMON = ["-p", "no:cacheprovider", "-q", "--batchflow", "--batchflow-no-history"]
NOT_MEASURED = ["--batchflow-no-resources"]
MODES = {"serial": [], f"-n {WORKERS}": ["-n", str(WORKERS)]}
#: Per mode: (variant without resources, variant with resources).
PAIRS = {mode: (f"{mode}, not measured", f"{mode}, resources measured") for mode in MODES}
VARIANTS = {
    name: [*mode_args, *extra]
    for mode, mode_args in MODES.items()
    for name, extra in zip(PAIRS[mode], (NOT_MEASURED, []), strict=True)
}
TARGET = 1.05
#: The micro-figure: timing loops of PAIRS_PER_LOOP start/stop pairs, in-process.
LOOPS = 7
PAIRS_PER_LOOP = TESTS


def meter_cost() -> list[float]:
    """Microseconds per ``start()`` / ``stop()`` pair, one figure per timing loop."""
    from pytest_batchflow.resources import ResourceMeter

    meter = ResourceMeter()
    try:
        for _ in range(100):  # warm-up
            meter.start()
            meter.stop()
        costs = []
        for _ in range(LOOPS):
            start = time.perf_counter()
            for _ in range(PAIRS_PER_LOOP):
                meter.start()
                meter.stop()
            costs.append(1e6 * (time.perf_counter() - start) / PAIRS_PER_LOOP)
    finally:
        meter.close()
    return costs


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval for the median of ``values``:
    the k-th smallest and k-th largest, with k the largest for which a
    binomial(n, 1/2) count falls below k with probability at most (1 - level) / 2.
    None with fewer than 6 values (no such k at 95%)."""
    n = len(values)
    ordered = sorted(values)
    tail = (1 - level) / 2
    k, below = 0, 0.0
    while True:
        below_next = below + math.comb(n, k) / 2**n
        if below_next > tail:
            break
        k, below = k + 1, below_next
    if k == 0:
        return None
    return ordered[k - 1], ordered[n - k]


def chosen_modes() -> list[str]:
    """The modes the second argument names (``serial`` or ``-n``), else both."""
    if len(sys.argv) < 3:
        return list(MODES)
    wanted = sys.argv[2]
    found = [mode for mode in MODES if mode.split()[0] == wanted]
    if not found:
        raise SystemExit(f"resource_overhead.py: the mode is serial or -n, not {wanted!r}")
    return found


def verdict(low: float, high: float) -> str:
    if high <= TARGET:
        return "met"
    return "NOT met" if low > TARGET else "not settled"


def main() -> None:
    repetitions = count_argument("repetitions", DEFAULT_REPETITIONS)
    modes = chosen_modes()
    pairs = {mode: PAIRS[mode] for mode in modes}
    variants = {name: VARIANTS[name] for pair in pairs.values() for name in pair}
    print(
        f"resource_overhead: {TESTS} no-op tests in {MODULES} modules, "
        f"{' and '.join(modes)}, {repetitions} repetitions; {machine()}",
        flush=True,
    )
    runs = noop_runs("batchflow-resources-", TESTS, MODULES, variants, COMMON, repetitions)
    print("timing ResourceMeter start/stop in-process ...", flush=True)
    costs = meter_cost()
    samples = {name: [run.wall for run in done] for name, done in runs.items()}
    statuses = {name: {run.status() for run in done} for name, done in runs.items()}
    medians = {name: statistics.median(values) for name, values in samples.items()}
    cpu_samples = {name: [run.cpu for run in done if run.cpu] for name, done in runs.items()}
    cpus = {name: statistics.median(v) if v else None for name, v in cpu_samples.items()}
    rows = []
    for base, measured in pairs.values():
        for name in (base, measured):
            values = samples[name]
            cpu, cpu_base = cpus[name], cpus[base]
            rows.append(
                [
                    name,
                    seconds(medians[name]),
                    seconds(min(values)),
                    seconds(max(values)),
                    f"{medians[name] / medians[base]:.3f}",
                    f"{1000 * (medians[name] - medians[base]) / TESTS:+.3f}",
                    seconds(cpu),
                    ratio(cpu, cpu_base),
                    ", ".join(sorted(statuses[name])),
                ]
            )
    print()
    headers = ["variant", "median", "min", "max", "/not measured", "ms/test"]
    print(table([*headers, "cpu", "cpu /not measured", "status"], rows))
    print()
    cost = statistics.median(costs)
    print(
        f"ResourceMeter start()+stop(), in-process: {cost:.1f} us a test (median of "
        f"{LOOPS} loops of {PAIRS_PER_LOOP} pairs; range {min(costs):.1f}-{max(costs):.1f} us), "
        f"{cost * TESTS / 1e6:.3f}s for {TESTS} tests"
    )
    print()
    for mode, (base, measured) in pairs.items():
        value = medians[measured] / medians[base]
        # Each repetition's two runs ran one after the other: their ratio is the
        # least touched by the machine's drift over the whole benchmark.
        paired = [m.wall / b.wall for b, m in zip(runs[base], runs[measured], strict=True)]
        interval = median_interval(paired)
        said = (
            f"{verdict(*interval)}; repetition by repetition {statistics.median(paired):.3f} "
            f"(95% confidence interval {interval[0]:.3f}-{interval[1]:.3f}; range "
            if interval is not None
            else f"not settled (6 repetitions at least give an interval); repetition by "
            f"repetition {statistics.median(paired):.3f} (range "
        )
        print(
            f"target resources measured <= {TARGET:.2f} x not measured ({mode}): {said}"
            f"{min(paired):.3f}-{max(paired):.3f}, "
            f"{sum(r <= TARGET for r in paired)} of {len(paired)} within the target); "
            f"ratio of the medians {value:.3f}"
        )
    print(
        "wall time of the whole pytest command; /not measured and ms/test: against the "
        f"same mode's --batchflow-no-resources median, the difference spread over the "
        f"{TESTS} tests; cpu: median CPU seconds of the command's processes (user plus "
        "system, workers included), which waiting for a busy CPU does not lengthen"
    )


if __name__ == "__main__":
    main()
