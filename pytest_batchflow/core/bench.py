"""The statistics of benchmark batches: summaries, round sizes, gates and comparisons.

A benchmark times a function in *rounds* of *iterations* calls; each round
gives one sample, the round's time divided by its iterations (seconds per
call). This module turns samples into a :class:`Stats` summary, says how many
calls make a round and how many rounds fit the time budget, and compares a
run with a stored baseline (:func:`compare`): a bootstrap confidence interval
of the relative change, so that a gate (``median:10%``) fails on a slowdown
the noise cannot explain, not on a noisy round. Pure functions, no pytest.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BOOTSTRAP_VALUES",
    "MAX_ROUNDS",
    "MIN_COMPARABLE_ROUNDS",
    "STATISTICS",
    "Comparison",
    "Gate",
    "Statistic",
    "Stats",
    "compare",
    "compare_with_history",
    "fingerprint_mismatch",
    "iterations_for",
    "parse_gate",
    "rounds_for",
    "scaled_time",
    "summarize",
]

Statistic = Literal["min", "mean", "median"]
#: The statistics a gate or a comparison can be about.
STATISTICS: tuple[Statistic, ...] = ("min", "mean", "median")
#: A sample set larger than this is bootstrapped from this many of its values.
BOOTSTRAP_VALUES = 250
#: With fewer rounds on a side, a comparison claims nothing (see :func:`compare`).
MIN_COMPARABLE_ROUNDS = 5
#: At most this many rounds, whatever the time budget: the samples are stored.
MAX_ROUNDS = 2_000


@dataclass(frozen=True)
class Stats:
    """A benchmark's rounds summed up; times in seconds per call.

    The quartiles are pytest-benchmark's, so that its users read the same
    figures here: for an even number of rounds the medians of the lower and
    upper halves; for an odd number, Wikipedia's "method 3" (a weighted mean of
    the two values around the quarter). With one round, every quantile is that round.
    """

    rounds: int
    iterations: int
    min: float
    max: float
    mean: float
    stddev: float
    median: float
    q1: float
    q3: float
    iqr: float
    #: Rounds outside [q1 - 1.5 iqr, q3 + 1.5 iqr] (Tukey's fences).
    outliers_iqr: int
    #: Rounds outside mean +- 1 stddev.
    outliers_stddev: int
    #: Calls per second: 1 / mean (infinite when the mean is 0).
    ops: float
    #: Seconds spent in all rounds.
    total: float


def summarize(per_call: Sequence[float], iterations: int) -> Stats:
    """Sum up one benchmark's rounds, given each round's seconds per call.

    ``stddev`` is the sample standard deviation (``statistics.stdev``), 0 for
    one round. A negative or non-finite time is refused: it can only come
    from a broken clock or a bug, and it would make every figure meaningless.
    """
    if not per_call:
        raise ValueError("a benchmark summary needs at least one round")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    if not all(0.0 <= value < math.inf for value in per_call):
        raise ValueError("times per call must be finite and not negative")
    data = sorted(map(float, per_call))
    mean = statistics.mean(data)
    stddev = statistics.stdev(data, mean) if len(data) > 1 else 0.0
    median = statistics.median(data)
    q1, q3 = _quartiles(data, median)
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    return Stats(
        rounds=len(data),
        iterations=iterations,
        min=data[0],
        max=data[-1],
        mean=mean,
        stddev=stddev,
        median=median,
        q1=q1,
        q3=q3,
        iqr=iqr,
        outliers_iqr=sum(not low_fence <= value <= high_fence for value in data),
        outliers_stddev=sum(not mean - stddev <= value <= mean + stddev for value in data),
        ops=1 / mean if mean else math.inf,
        total=math.fsum(data) * iterations,
    )


def _quartiles(data: Sequence[float], median: float) -> tuple[float, float]:
    """pytest-benchmark's first and third quartiles of sorted ``data``."""
    rounds = len(data)
    if rounds == 1:
        return data[0], data[0]
    if rounds % 2 == 0:
        half = rounds // 2
        return statistics.median(data[:half]), statistics.median(data[half:])
    n, remainder = divmod(rounds, 4)
    if remainder == 1:
        q1 = 0.25 * data[n - 1] + 0.75 * data[n]
        q3 = 0.75 * data[3 * n] + 0.25 * data[3 * n + 1]
    else:
        q1 = 0.75 * data[n] + 0.25 * data[n + 1]
        q3 = 0.25 * data[3 * n + 1] + 0.75 * data[3 * n + 2]
    # The weighted means can round an ulp past the values they lie between
    # (0.25 x + 0.75 x need not be x): keep the quartiles in order.
    return min(max(q1, data[0]), median), max(min(q3, data[-1]), median)


def iterations_for(
    one_call: float, resolution: float, min_round: float = 1e-4, precision: int = 1000
) -> int:
    """Calls per round, so that the timer's resolution is a small part of a round.

    A round lasts at least ``max(min_round, resolution * precision)``: with
    the default ``precision``, a tick of the clock is at most 0.1% of it. A
    call measured at 0 (or less, or not a number) took under a tick: the
    resolution is the best guess at its cost.
    """
    if not resolution > 0:
        raise ValueError(f"the timer resolution must be positive, not {resolution}")
    target = max(min_round, resolution * precision)
    cost = one_call if one_call > 0 else resolution
    iterations = max(1, math.ceil(target / cost))
    # target / cost rounds, possibly down onto a whole number: one call more
    # keeps the promise that a round lasts the target.
    return iterations + 1 if iterations * cost < target else iterations


def rounds_for(round_time: float, max_time: float, min_rounds: int, max_rounds: int) -> int:
    """How many rounds of ``round_time`` seconds fit in ``max_time``, within the bounds.

    ``min_rounds`` wins over the time budget: a summary of too few rounds
    says little, so a slow benchmark overruns ``max_time`` rather than
    measuring less. A round that took no measurable time fits any number.
    """
    if not 1 <= min_rounds <= max_rounds:
        raise ValueError(
            f"rounds need 1 <= min_rounds <= max_rounds, not {min_rounds} and {max_rounds}"
        )
    if round_time <= 0:
        return max_rounds
    fit = max_time / round_time
    if fit >= max_rounds:
        return max_rounds
    rounds = math.floor(fit) if fit > 0 else 0
    # The division can round up onto a whole number that no longer fits.
    if rounds * round_time > max_time:
        rounds -= 1
    return max(min_rounds, rounds)


@dataclass(frozen=True)
class Gate:
    """Fail the run when ``statistic`` got slower than the baseline by more than ``threshold``."""

    statistic: Statistic
    #: A fraction: 0.10 for 10%.
    threshold: float


def parse_gate(text: str) -> Gate:
    """A :class:`Gate` from ``median:10%``, ``mean:5.5%`` or ``min:0.1`` (a fraction).

    The error names the text and what is wrong with it, as it ends up in front
    of someone who typed it on a command line or in an ini file (the usage
    error around it shows a good one).
    """
    name, colon, amount = text.partition(":")
    name, amount = name.strip(), amount.strip()
    statistic = next((known for known in STATISTICS if known == name), None)
    if not colon:
        problem = "no ':' between the statistic and the threshold"
    elif statistic is None:
        problem = f"unknown statistic {name!r} (use min, mean or median)"
    else:
        percent = amount.endswith("%")
        try:
            threshold = float(amount[:-1] if percent else amount)
        except ValueError:
            problem = f"the threshold {amount!r} is not a number"
        else:
            if percent:
                threshold /= 100
            if not percent and 1 < threshold < math.inf:
                # 10 means 1,000%: surely 10% with its sign left out.
                problem = (
                    f"the threshold {amount!r} without % is a fraction ({threshold:g} = "
                    f"{threshold:.0%}); write {amount}% for {amount} percent"
                )
            elif 0 <= threshold < math.inf:
                return Gate(statistic, threshold)
            else:
                problem = f"the threshold {amount!r} must be a finite number, 0 or more"
    # No example here: the usage error that shows this message adds one.
    raise ValueError(f"invalid benchmark gate {text!r}: {problem}")


@dataclass(frozen=True)
class Comparison:
    """How a statistic of the current samples compares with the baseline's.

    ``change`` is ``current / baseline - 1`` (0.12: 12% slower) and
    ``low``/``high`` its confidence interval. The verdict is ``slower`` only
    when the whole interval is above 0, ``faster`` when it is below; a gate
    fails only when the whole interval is above the threshold, so a slowdown
    that may be noise never fails a run.
    """

    statistic: str
    baseline: float
    current: float
    change: float
    low: float
    high: float
    verdict: Literal["faster", "slower", "same"]
    threshold: float | None
    failed: bool


def compare(
    baseline: Sequence[float],
    current: Sequence[float],
    statistic: str = "median",
    threshold: float | None = None,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare two sets of rounds (seconds per call) by a percentile bootstrap.

    Each resample draws, with replacement, as many rounds as each set has,
    independently for the two sets, and takes ``statistic(current) /
    statistic(baseline) - 1``; the interval is the middle ``confidence`` of
    those changes. ``random.Random(seed)`` draws them, so the same samples
    always give the same verdict: a gate must not pass and fail by chance on
    a rerun of the report.

    With fewer than :data:`MIN_COMPARABLE_ROUNDS` rounds on either side the
    interval is unbounded (``-inf`` to ``inf``): the verdict is ``same`` and
    no gate fails. The bootstrap of a handful of rounds gives far too narrow
    an interval: in A/A trials (both sides from one distribution) of two
    rounds each, one in five said ``slower``. Five is the default ``min_rounds``.
    The minimum, an extreme, is the statistic the bootstrap serves least
    well: in A/A trials of 30 rounds it said ``slower`` 4% of the time, the
    median 1% (2.5% is the nominal rate).

    A set of more than :data:`BOOTSTRAP_VALUES` rounds is bootstrapped from
    that many of its values, evenly spaced in sorted order, to keep the cost
    of a comparison bounded (a few tens of milliseconds for 2000 resamples,
    however long the benchmark ran). The interval is then as wide as for that
    many rounds, wider than the full set would give: the shortcut may miss a
    small change rather than report a false one. ``baseline``, ``current``
    and ``change`` use every round.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}: use min, mean or median")
    if not (baseline and current):
        raise ValueError("a comparison needs at least one round on each side")
    if not all(0 < value < math.inf for value in (*baseline, *current)):
        raise ValueError("times per call must be positive and finite to compare")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    baseline_value = _statistic_of(baseline, statistic)
    current_value = _statistic_of(current, statistic)
    if min(len(baseline), len(current)) < MIN_COMPARABLE_ROUNDS:
        low, high = -math.inf, math.inf
    else:
        baseline_draw = _Resampler(baseline, statistic)
        current_draw = _Resampler(current, statistic)
        rng = random.Random(seed)
        changes = sorted(current_draw(rng) / baseline_draw(rng) - 1 for _ in range(resamples))
        tail = (1 - confidence) / 2
        low, high = _percentile(changes, tail), _percentile(changes, 1 - tail)
    return _comparison(statistic, baseline_value, current_value, low, high, threshold)


def _comparison(
    statistic: str,
    baseline: float,
    current: float,
    low: float,
    high: float,
    threshold: float | None,
) -> Comparison:
    """The verdict and the gate of a change and its interval."""
    verdict: Literal["faster", "slower", "same"] = (
        "slower" if low > 0 else "faster" if high < 0 else "same"
    )
    return Comparison(
        statistic=statistic,
        baseline=baseline,
        current=current,
        change=current / baseline - 1,
        low=low,
        high=high,
        verdict=verdict,
        threshold=threshold,
        failed=threshold is not None and low > threshold,
    )


#: Two-sided 97.5% quantiles of Student's t for 1..10 degrees of freedom (more: 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def compare_with_history(
    baseline_runs: Sequence[Sequence[float]],
    current: Sequence[float],
    statistic: str = "median",
    threshold: float | None = None,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare with several earlier runs (oldest first), counting how much runs differ.

    The bootstrap of :func:`compare` sees only the noise within a run: the
    rounds of one process. A fresh process on a shared machine is often a
    few percent faster or slower as a whole (CPU frequency, neighbours), and
    a gate that ignores that fails on unchanged code. With two or more
    earlier runs, the change is taken against the median of their statistics
    and its interval is widened, in log space, by the spread of those
    statistics: ``t * s * sqrt(1 + 1/k)`` for ``k`` runs with log standard
    deviation ``s`` (a prediction interval for one more run), combined in
    quadrature with the within-run interval of the latest run. With one
    earlier run this is :func:`compare`.
    """
    if not baseline_runs:
        raise ValueError("a comparison needs at least one earlier run")
    within = compare(baseline_runs[-1], current, statistic, threshold, confidence, resamples, seed)
    if len(baseline_runs) < 2 or not math.isfinite(within.low):
        return within
    values = [_statistic_of(run, statistic) for run in baseline_runs]
    if not all(0 < value < math.inf for value in values):
        raise ValueError("times per call must be positive and finite to compare")
    k = len(values)
    spread = statistics.stdev(math.log(value) for value in values)
    t = _T975[k - 2] if k - 1 <= len(_T975) else 1.96
    if confidence != 0.95:
        t = t / 1.96 * statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    between = t * spread * math.sqrt(1 + 1 / k)
    centre = statistics.median(values)
    log_change = math.log(within.current / centre)
    below = math.log1p(within.change) - math.log1p(within.low)
    above = math.log1p(within.high) - math.log1p(within.change)
    low = math.expm1(log_change - math.hypot(between, below))
    high = math.expm1(log_change + math.hypot(between, above))
    return _comparison(statistic, centre, within.current, low, high, threshold)


def _statistic_of(values: Sequence[float], statistic: str) -> float:
    if statistic == "min":
        return min(values)
    if statistic == "mean":
        return statistics.mean(values)
    return statistics.median(values)


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of sorted values, interpolating linearly between ranks."""
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


#: _AT_MOST[k] deletes the indices 0..k from a bytes of indices (see _Resampler).
_AT_MOST = tuple(bytes(range(k + 1)) for k in range(BOOTSTRAP_VALUES))


class _Resampler:
    """Draws one bootstrap resample of a sample set and returns its statistic.

    Resampling in pure Python costs a call per drawn value, which made 2000
    resamples of 250 rounds take over 100 ms. Here a resample is a ``bytes``
    of indices into the sorted values, drawn with ``randbytes`` and mapped to
    indices by ``bytes.translate`` (both run in C): as the values are sorted,
    the resample's minimum is at the smallest index and its median at the
    middle indices, which a bisection over counts finds without sorting. It
    is the same distribution as drawing the values themselves.
    """

    def __init__(self, samples: Sequence[float], statistic: str) -> None:
        ordered = sorted(samples)
        if len(ordered) > BOOTSTRAP_VALUES:
            step = (len(ordered) - 1) / (BOOTSTRAP_VALUES - 1)
            ordered = [ordered[round(i * step)] for i in range(BOOTSTRAP_VALUES)]
        self._values = ordered
        size = len(ordered)
        self._size = size
        # A random byte below the largest multiple of size that fits in 256 is
        # uniform modulo size; bytes at or above it are dropped and redrawn.
        usable = 256 // size * size
        self._to_index = bytes(byte % size if byte < usable else 0 for byte in range(256))
        self._unusable = bytes(range(usable, 256))
        # Enough bytes that one draw usually gives a whole resample.
        self._draw_size = math.ceil(size * 256 / usable) + 8
        self._statistic: Callable[[bytes], float] = {
            "min": self._min,
            "mean": self._mean,
            "median": self._median,
        }[statistic]

    def __call__(self, rng: random.Random) -> float:
        indices = b""
        while len(indices) < self._size:
            drawn = rng.randbytes(self._draw_size)
            indices += drawn.translate(self._to_index, self._unusable)
        return self._statistic(indices[: self._size])

    def _min(self, indices: bytes) -> float:
        return self._values[min(indices)]

    def _mean(self, indices: bytes) -> float:
        return sum(map(self._values.__getitem__, indices)) / self._size

    def _median(self, indices: bytes) -> float:
        middle, odd = divmod(self._size, 2)
        if odd:
            return self._values[self._kth_smallest(indices, middle)]
        lower = self._kth_smallest(indices, middle - 1)
        if self._size - len(indices.translate(None, _AT_MOST[lower])) > middle:
            upper = lower
        else:
            # The next index drawn: each index is in a resample with chance
            # 1 - 1/e, so this looks at one or two, each a fast byte search.
            upper = lower + 1
            while upper not in indices:
                upper += 1
        return (self._values[lower] + self._values[upper]) / 2

    def _kth_smallest(self, indices: bytes, k: int) -> int:
        """The ``k``-th smallest index drawn (0 the smallest): the first with k + 1 at most it.

        A bisection over the counts of indices at most a candidate, each one
        ``translate`` deleting the smaller indices: no sort of the resample.
        """
        low, high = 0, self._size - 1
        while low < high:
            candidate = (low + high) // 2
            if self._size - len(indices.translate(None, _AT_MOST[candidate])) > k:
                high = candidate
            else:
                low = candidate + 1
        return low


def scaled_time(seconds: float) -> tuple[float, str]:
    """A time per call in the unit that reads best: ``(17.7, "us")`` for 17.7e-6 s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return seconds / scale, unit
    return seconds / 1e-9, "ns"


def fingerprint_mismatch(baseline: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The fingerprint keys ('cpu', 'python', ...) that differ, sorted; empty: same machine kind.

    A key recorded on one side only differs too: nothing says the two agree on it.
    """
    keys = baseline.keys() | current.keys()
    return sorted(key for key in keys if baseline.get(key) != current.get(key))
