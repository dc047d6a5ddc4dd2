"""The ``bench`` fixture: times a function inside a batchflow run.

``bench(function, *args, **kwargs)`` calls the function once to learn its
cost, calibrates how many calls make a round last well above the timer's
resolution, warms up, then times rounds with the monotonic clock until
``--batchflow-bench-max-time`` is spent (at least ``--batchflow-bench-min-rounds``
rounds), optionally with the garbage collector off, and returns the
function's result. ``bench.pedantic(...)`` gives the rounds and iterations
and a ``setup`` per round instead. The samples (seconds per call, one per
round) travel to the controller on the test's call report as plain floats;
statistics, baselines and gates are worked out there (``core/bench.py``).

Without ``--batchflow`` the fixture calls the function once and measures
nothing, so a benchmark module still runs as a plain test.

With ``--batchflow-bench-compat`` a ``benchmark`` fixture with
pytest-benchmark's calling conventions is provided as well (it replaces
pytest-benchmark's own inside a batchflow run, which would switch itself off
under xdist).
"""

from __future__ import annotations

import gc
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, TypeVar

import pytest

from .clock import monotonic_ns
from .core.bench import MAX_ROUNDS, iterations_for, rounds_for

__all__ = [
    "SAMPLES_ATTRIBUTE",
    "SAMPLES_KEY",
    "Bench",
    "BenchOptions",
    "BenchmarkCompat",
    "fingerprint",
    "timer_resolution",
]

T = TypeVar("T")

#: Where the fixture leaves its measurement for the call report.
SAMPLES_KEY = pytest.StashKey[dict[str, Any]]()
#: The call report's attribute that carries it to the controller (plain builtins only).
SAMPLES_ATTRIBUTE = "batchflow_bench"
#: Calls per round at the most (a function of a few nanoseconds).
MAX_ITERATIONS = 10_000_000
#: Warm-up: rounds run and thrown away before timing, within this much time.
WARMUP_SECONDS = 0.05
#: A calibration round this long is not timed again: a wait for a CPU (some
#: milliseconds) cannot be most of it, and a slow function is called once less.
_NO_CONFIRMING = 0.05


@dataclass(frozen=True)
class BenchOptions:
    """How long to measure: from the settings, or a ``benchmark`` marker in compat mode."""

    max_time: float = 1.0
    min_rounds: int = 5
    disable_gc: bool = False
    warmup: bool = True


@cache
def timer_resolution() -> float:
    """The smallest step the monotonic clock is seen to take here, in seconds."""
    smallest = None
    for _ in range(200):
        first = monotonic_ns()
        second = monotonic_ns()
        while second == first:
            second = monotonic_ns()
        step = second - first
        smallest = step if smallest is None else min(smallest, step)
    assert smallest is not None
    return smallest / 1e9


@cache
def fingerprint() -> dict[str, str]:
    """What makes timings comparable: CPU model, cores, Python and OS."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or 0),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
    }


class Bench:
    """The fixture's value: call it with the function to time and its arguments."""

    def __init__(self, item: pytest.Item, options: BenchOptions, active: bool) -> None:
        self._item = item
        self._options = options
        self._active = active
        self._used = False
        #: After a measurement: the samples (seconds per call, one per round).
        self.samples: list[float] = []
        self.iterations = 0

    def __call__(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._once()
        if not self._active:
            return function(*args, **kwargs)
        return self._measure(lambda: function(*args, **kwargs))

    def pedantic(
        self,
        target: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        setup: Callable[[], tuple[Sequence[Any], Mapping[str, Any]] | None] | None = None,
        *,
        rounds: int = 1,
        warmup_rounds: int = 0,
        iterations: int = 1,
        teardown: Callable[..., object] | None = None,
    ) -> T:
        """Exactly ``rounds`` rounds of ``iterations`` calls after ``warmup_rounds``.

        ``setup`` runs before each round, untimed; when it returns
        ``(args, kwargs)`` those are the round's arguments (then ``iterations``
        must be 1, as each round needs fresh ones). ``teardown`` runs after
        each round, warm-up ones too, untimed, with the round's arguments (as
        pytest-benchmark's does).
        """
        self._once()
        if rounds < 1 or iterations < 1 or warmup_rounds < 0:
            raise ValueError("bench.pedantic: rounds and iterations must be >= 1, warmup >= 0")
        if setup is not None and iterations != 1:
            raise ValueError("bench.pedantic: a setup function needs iterations=1")
        call_args, call_kwargs = tuple(args), dict(kwargs or {})
        if not self._active:
            if setup is not None:
                given = setup()
                if given is not None:
                    call_args, call_kwargs = tuple(given[0]), dict(given[1])
            once = target(*call_args, **call_kwargs)
            if teardown is not None:
                teardown(*call_args, **call_kwargs)
            return once
        result: T
        samples: list[float] = []
        clock = monotonic_ns
        with self._gc_off():
            for number in range(warmup_rounds + rounds):
                if setup is not None:
                    given = setup()
                    if given is not None:
                        call_args, call_kwargs = tuple(given[0]), dict(given[1])
                started = clock()
                for _ in range(iterations):
                    result = target(*call_args, **call_kwargs)
                elapsed = clock() - started
                if number >= warmup_rounds:
                    samples.append(elapsed / 1e9 / iterations)
                if teardown is not None:
                    teardown(*call_args, **call_kwargs)
        self._keep(samples, iterations)
        return result

    def _once(self) -> None:
        if self._used:
            raise RuntimeError(
                f"{self._item.nodeid}: the bench fixture measures one function per test; "
                "split the test, or parametrize it"
            )
        self._used = True

    def _gc_off(self) -> _GcOff:
        return _GcOff(self._options.disable_gc)

    def _measure(self, call: Callable[[], T]) -> T:
        clock = monotonic_ns
        options = self._options
        resolution = timer_resolution()
        started = clock()
        result = call()
        first = (clock() - started) / 1e9
        iterations = iterations_for(first, resolution)
        samples: list[float] = []
        round_time = first
        with self._gc_off():
            # A first call of 50 ms or more may be a slow function's, or a
            # cold start's (an import, a cache filled): the next call tells.
            # Slow, it was the calibration and the warm-up, and that call is
            # the first round (more rounds only to throw them away cost a slow
            # function seconds a test); else calibrate from that call.
            slow = False
            if iterations == 1 and first >= _NO_CONFIRMING:
                started = clock()
                result = call()
                round_time = (clock() - started) / 1e9
                slow = round_time >= _NO_CONFIRMING
                if slow:
                    samples.append(round_time)
                else:
                    iterations = iterations_for(round_time, resolution)
            # A first call is often slower than the rest (caches, imports): grow
            # the round until it really lasts the target, as timeit's autorange
            # does. A round that says it is long enough is timed once more and
            # the shorter counts: on a busy machine one round can last far
            # longer than its calls (the process waited for a CPU), and that
            # alone ended calibration with rounds of a tenth of the target.
            while not slow:
                round_time = float("inf")
                for _ in range(2):  # a second round only to confirm a short one
                    started = clock()
                    for _ in range(iterations):
                        result = call()
                    round_time = min(round_time, (clock() - started) / 1e9)
                    wanted = iterations_for(round_time / iterations, resolution)
                    if wanted > iterations or round_time >= _NO_CONFIRMING:
                        break
                if wanted <= iterations or iterations >= MAX_ITERATIONS:
                    break
                iterations = min(max(wanted, iterations * 2), MAX_ITERATIONS)
            if options.warmup and not slow:
                # Rounds thrown away; their mean round time sizes the budget.
                warm_until = clock() + int(min(WARMUP_SECONDS, options.max_time / 10) * 1e9)
                spent, count = 0, 0
                while clock() < warm_until or not count:
                    started = clock()
                    for _ in range(iterations):
                        result = call()
                    spent += clock() - started
                    count += 1
                round_time = spent / count / 1e9
            rounds = rounds_for(round_time, options.max_time, options.min_rounds, MAX_ROUNDS)
            for _ in range(rounds - len(samples)):
                started = clock()
                for _ in range(iterations):
                    result = call()
                samples.append((clock() - started) / 1e9 / iterations)
        self._keep(samples, iterations)
        return result

    def _keep(self, samples: list[float], iterations: int) -> None:
        self.samples, self.iterations = samples, iterations
        self._item.stash[SAMPLES_KEY] = {
            "samples": samples,
            "iterations": iterations,
            "gc_disabled": self._options.disable_gc,
            "fingerprint": fingerprint(),
        }


class _GcOff:
    """The collector off for the timed rounds, if asked; as it was afterwards."""

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted
        self.was_enabled = gc.isenabled()

    def __enter__(self) -> None:
        if self.wanted:
            gc.collect()
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.wanted and self.was_enabled:
            gc.enable()


class _Stats(dict[str, float | int]):
    """pytest-benchmark's ``benchmark.stats``: keys and attributes both work."""

    def __getattr__(self, name: str) -> float | int:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def stats(self) -> _Stats:  # pytest-benchmark's Metadata.stats.stats.mean
        return self


class CompatBenchmark(Bench):
    """``benchmark`` as pytest-benchmark's suites call it."""

    def __init__(self, item: pytest.Item, options: BenchOptions, active: bool) -> None:
        super().__init__(item, options, active)
        self.extra_info: dict[str, Any] = {}
        self.name = item.name
        self.group: str | None = None

    def pedantic(
        self,
        target: Callable[..., T],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        setup: Callable[[], tuple[Sequence[Any], Mapping[str, Any]] | None] | None = None,
        teardown: Callable[..., object] | None = None,
        rounds: int = 1,
        warmup_rounds: int = 0,
        iterations: int = 1,
    ) -> T:
        """pytest-benchmark's order of the arguments (``teardown`` after ``setup``)."""
        return super().pedantic(
            target,
            args,
            kwargs,
            setup,
            rounds=rounds,
            warmup_rounds=warmup_rounds,
            iterations=iterations,
            teardown=teardown,
        )

    @property
    def stats(self) -> _Stats | None:
        if not self.samples:
            return None
        from .core.bench import summarize

        # As the summary has them: counts stay whole numbers, as pytest-benchmark's do.
        return _Stats(asdict(summarize(self.samples, self.iterations)))


def options_for(item: pytest.Item, base: BenchOptions, compat: bool) -> BenchOptions:
    """The run's options, with a pytest-benchmark ``benchmark`` marker's in compat mode."""
    marker = item.get_closest_marker("benchmark") if compat else None
    if marker is None:
        return base
    given = marker.kwargs
    return BenchOptions(
        max_time=float(given.get("max_time", base.max_time)),
        # pytest-benchmark runs any number; at most MAX_ROUNDS are kept here.
        min_rounds=min(max(int(given.get("min_rounds", base.min_rounds)), 1), MAX_ROUNDS),
        disable_gc=bool(given.get("disable_gc", base.disable_gc)),
        warmup=bool(given.get("warmup", base.warmup)),
    )


class BenchmarkCompat:
    """Registered with --batchflow-bench-compat: pytest-benchmark's ``benchmark`` fixture.

    Registered after pytest-benchmark's plugin, so this fixture wins where both exist.
    """

    def __init__(self, options: BenchOptions) -> None:
        self.options = options

    @pytest.fixture
    def benchmark(self, request: pytest.FixtureRequest) -> CompatBenchmark:
        item = request.node
        assert isinstance(item, pytest.Item)
        return _compat_class()(item, options_for(item, self.options, True), active=True)


@cache
def _compat_class() -> type[CompatBenchmark]:
    """CompatBenchmark, also a pytest-benchmark BenchmarkFixture when that is installed.

    pytest-benchmark's makereport hook refuses a ``benchmark`` value of any other
    type (and only sets its ``skipped`` attribute): the subclass passes that check
    while batchflow does the measuring.
    """
    try:
        from pytest_benchmark.fixture import BenchmarkFixture
    except ImportError:
        return CompatBenchmark
    return type("CompatBenchmarkFixture", (CompatBenchmark, BenchmarkFixture), {})
