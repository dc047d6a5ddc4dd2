"""The suites ``report_scale.py`` reports on (not a script itself).

One seeded plan of N tests is drawn first: files in nested folders, classes,
parametrized ids, batches, outcomes, durations and printed lines. Two things
are made from the same plan, so that both reports describe the same suite:

* :func:`synthetic_result`, the :class:`~pytest_batchflow.results.RunResult`
  a 4-worker batchflow run of it could have produced: a list schedule per
  batch stage (no worker runs two tests at once), a failed first attempt and
  a later passing rerun for each flaky test, a ~30-line traceback and some
  output for each failure, output on a share of the passing tests too, and
  for failed and flaky tests the history a run with a store gives them
  (``flakiness`` and ``recent``);
* :func:`write_pytest_suite`, a real test package of the same node ids and
  outcomes for pytest-html to run (serially; a flaky test simply passes
  there, as no rerun plugin is in play).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_batchflow.results import (
    AttemptResult,
    BatchResult,
    Environment,
    PhaseResult,
    RunResult,
    TestResult,
)

WORKERS = ("gw0", "gw1", "gw2", "gw3")
TESTS_PER_FILE = 25
STARTED = 1_767_225_600.0  # a fixed Unix time: the result is the same on every run
# Cumulative shares: failed 2%, skipped 3%, xfailed 1%, flaky 0.5%, the rest passed.
OUTCOME_SHARES = (("failed", 0.02), ("skipped", 0.05), ("xfailed", 0.06), ("flaky", 0.065))
PASSED_WITH_OUTPUT = 0.3
SLOW_SHARE = 0.01
SKIP_REASONS = (
    "needs the staging database",
    "Windows only",
    "requires network access",
    "feature flag 'new-checkout' is off",
)
XFAIL_REASONS = ("bug #4521: rounding on refunds", "upstream issue in the payment sandbox")

_AREAS = (
    "accounts",
    "billing",
    "catalog",
    "checkout",
    "inventory",
    "notifications",
    "orders",
    "pricing",
    "search",
    "shipping",
)
_SUBAREAS = ("models", "views", "services", "tasks", "adapters", "forms", "utils", "v2")
_NOUNS = (
    "invoice",
    "refund",
    "cart",
    "user",
    "token",
    "price",
    "discount",
    "address",
    "parcel",
    "report",
    "session",
    "webhook",
    "coupon",
    "stock",
    "tax",
    "query",
)
_VERBS = (
    "creates",
    "rejects",
    "updates",
    "deletes",
    "lists",
    "rounds",
    "retries",
    "caches",
    "validates",
    "merges",
    "exports",
    "parses",
)
_QUALIFIERS = ("", "_when_empty", "_twice", "_for_guest", "_with_unicode", "_after_expiry")
_PARAMS = ("eu", "us", "gbp", "utf8", "empty", "large", "none", "negative", "zero", "max")


@dataclass(frozen=True)
class BatchPlan:
    """A batch of the synthetic run: where its tests live and how they ran."""

    name: str
    share: float
    stage: int  # stages run one after the other (the ``after`` barriers)
    median: float  # median test duration, seconds
    after: tuple[str, ...] = ()
    mode: str = "parallel"
    workers: tuple[str, ...] = WORKERS  # a workers=2 cap: two workers take its tests
    reruns: int = 2


BATCHES = (
    BatchPlan("unit", 0.45, 0, 0.004),
    BatchPlan("integration", 0.25, 1, 0.03, ("unit",)),
    BatchPlan("api", 0.15, 1, 0.02, ("unit",)),
    BatchPlan("db", 0.10, 1, 0.04, ("unit",), workers=WORKERS[2:]),
    BatchPlan("e2e", 0.05, 2, 0.12, ("integration", "api"), mode="serial", reruns=1),
)


@dataclass(frozen=True)
class PlannedTest:
    """One test of the plan."""

    file: str
    cls: str | None
    function: str
    param: str | None
    line: int
    batch: str
    outcome: str  # passed, failed, skipped, xfailed or flaky
    duration: float
    output_lines: int  # lines printed on stdout

    @property
    def nodeid(self) -> str:
        parts = [self.file, *([self.cls] if self.cls else []), self.function]
        return "::".join(parts) + (f"[{self.param}]" if self.param else "")

    @property
    def pytest_outcome(self) -> str:
        """The outcome in a plain serial pytest run, which does not rerun."""
        return "passed" if self.outcome == "flaky" else self.outcome


@dataclass
class _Group:
    """Tests sharing one function: one test, or the ids of a parametrized one."""

    cls: str | None
    function: str
    params: list[str | None] = field(default_factory=list)


def plan_suite(tests: int, seed: int = 20260101) -> list[PlannedTest]:
    """N tests over about N/25 files, outcome mix and durations drawn from ``seed``."""
    rng = random.Random(seed + tests)
    files = max(1, round(tests / TESTS_PER_FILE))
    planned: list[PlannedTest] = []
    remaining_tests, remaining_files = tests, files
    for index, batch in enumerate(BATCHES):
        last = index == len(BATCHES) - 1
        count = remaining_tests if last else round(tests * batch.share)
        file_count = remaining_files if last else max(1, round(files * batch.share))
        remaining_tests -= count
        remaining_files -= file_count
        paths = _file_paths(rng, batch.name, max(1, file_count))
        weights = [rng.uniform(0.3, 1.7) for _ in paths]
        per_file = Counter(rng.choices(range(len(paths)), weights, k=count))
        for number, path in enumerate(paths):
            planned.extend(_file_tests(rng, batch, path, per_file[number]))
    return planned


def _file_paths(rng: random.Random, batch: str, count: int) -> list[str]:
    paths: set[str] = set()
    draws = 0
    while len(paths) < count:
        draws += 1
        folders = [batch, rng.choice(_AREAS)]
        if rng.random() < 0.6:
            folders.append(rng.choice(_SUBAREAS))
        name = f"test_{rng.choice(_NOUNS)}_{rng.choice(_NOUNS)}"
        if draws > 4 * count:  # a suite larger than the word lists can name
            name += f"_{draws}"
        paths.add("/".join(["tests", *folders, f"{name}.py"]))
    return sorted(paths)


def _file_tests(
    rng: random.Random, batch: BatchPlan, path: str, count: int
) -> Iterator[PlannedTest]:
    groups: list[_Group] = []
    names: set[tuple[str | None, str]] = set()
    cls: str | None = None
    left = count
    while left > 0:
        if rng.random() < 0.15:  # a new container: a class, or back to module level
            cls = f"Test{rng.choice(_NOUNS).title()}{rng.choice(_VERBS).title()}"
            cls = None if rng.random() < 0.4 else cls
        function = f"test_{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}{rng.choice(_QUALIFIERS)}"
        while (cls, function) in names:
            function += "_again"
        names.add((cls, function))
        group = _Group(cls, function)
        if rng.random() < 0.25:
            ids = min(left, rng.randint(2, 8))
            stem = rng.choice(_PARAMS)
            group.params = [f"{stem}-{n}" if n % 3 else str(n) for n in range(ids)]
        else:
            group.params = [None]
        left -= len(group.params)
        groups.append(group)
    line = 12
    for group in groups:
        for param in group.params:
            outcome = _draw_outcome(rng)
            duration = rng.lognormvariate(math.log(batch.median), 0.9)
            if rng.random() < SLOW_SHARE:
                duration *= rng.uniform(20, 80)
            lines = 0
            if outcome in ("failed", "flaky"):
                lines = rng.randint(4, 12)
            elif outcome == "passed" and rng.random() < PASSED_WITH_OUTPUT:
                lines = rng.randint(1, 5)
            yield PlannedTest(
                path, group.cls, group.function, param, line, batch.name, outcome, duration, lines
            )
        line += 6 if group.params == [None] else 9


def _draw_outcome(rng: random.Random) -> str:
    draw = rng.random()
    return next((outcome for outcome, upto in OUTCOME_SHARES if draw < upto), "passed")


# -- the synthetic batchflow result ---------------------------------------------------------


def output_text(test: PlannedTest) -> str:
    """What the test printed (the real suite prints the same lines)."""
    return "".join(
        f"{test.batch}: step {n} of {test.function}: ok ({n * 7 % 23} rows)\n"
        for n in range(test.output_lines)
    )


def traceback_text(test: PlannedTest, seed: int) -> str:
    """A failure as pytest's long traceback shows it: two frames, about 30 lines."""
    rng = random.Random(seed)
    total = rng.randint(10, 999) + 0.5
    order = rng.randint(1000, 9999)
    module = test.file.removesuffix(".py").replace("/", ".")
    owner = f"self = <{module}.{test.cls} object at 0x7f{rng.randrange(16**10):010x}>\n"
    where = f"{test.file}:{test.line + 4}: "
    return (
        (owner if test.cls else "")
        + f"order = {{'currency': 'EUR', 'id': {order}, 'items': [...], 'status': 'open', ...}}\n"
        + "\n"
        + f"    def {test.function}({'self, ' if test.cls else ''}order):\n"
        + "        payload = build_payload(order, region='eu')\n"
        + f"        response = client.post('/api/orders/{order}/refund', json=payload)\n"
        + "        assert response.status_code == 200\n"
        + ">       check_refund(response.get_json(), order)\n"
        + "\n"
        + where
        + "\n"
        + "_ " * 40
        + "\n\n"
        + f"body = {{'currency': 'EUR', 'id': {order}, 'status': 'refunded', 'total': {total}}}\n"
        + f"order = {{'currency': 'EUR', 'id': {order}, 'items': [...], 'status': 'open', ...}}\n"
        + "\n"
        + "    def check_refund(body, order):\n"
        + "        expected = expected_refund(order)\n"
        + "        assert set(body) == set(expected)\n"
        + "        for key in ('id', 'currency', 'status'):\n"
        + "            assert body[key] == expected[key], key\n"
        + ">       assert body == expected\n"
        + "E       AssertionError: assert {'currency': 'EUR', 'id': "
        + f"{order}, 'status': 'refunded', 'total': {total}}} == "
        + f"{{'currency': 'EUR', 'id': {order}, 'status': 'refunded', 'total': {total + 1}}}\n"
        + "E         \n"
        + "E         Omitting 3 identical items, use -vv to show\n"
        + "E         Differing items:\n"
        + f"E         {{'total': {total}}} != {{'total': {total + 1}}}\n"
        + "E         Use -v to get more diff\n"
        + "\n"
        + "tests/helpers/refunds.py:41: AssertionError"
    )


def _phases(
    test: PlannedTest, start: float, duration: float, failed: bool, shared: float
) -> list[PhaseResult]:
    setup, call = 0.1 * duration, 0.85 * duration
    teardown = duration - setup - call
    marks = (start, start + setup, start + setup + call, start + duration)
    skipped_at_setup = test.outcome == "skipped" and not failed
    phases = [
        PhaseResult(
            when="setup",
            outcome="skipped" if skipped_at_setup else "passed",
            duration=setup,
            start=marks[0],
            stop=marks[1],
            longrepr=SKIP_REASONS[test.line % len(SKIP_REASONS)] if skipped_at_setup else None,
            shared_setup=shared,
        )
    ]
    if not skipped_at_setup:
        call_outcome = "passed"
        if failed:
            call_outcome = "rerun" if test.outcome == "flaky" else "failed"
        elif test.outcome == "xfailed":
            call_outcome = "skipped"
        phases.append(
            PhaseResult(
                when="call",
                outcome=call_outcome,
                duration=call,
                start=marks[1],
                stop=marks[2],
                longrepr=traceback_text(test, test.line) if failed else None,
            )
        )
    phases.append(
        PhaseResult(
            when="teardown",
            outcome="passed",
            duration=teardown,
            start=marks[2],
            stop=marks[3],
        )
    )
    return phases


@dataclass
class _Slot:
    test: PlannedTest
    attempt: int  # 0: the first; 1: a flaky test's rerun
    worker: str = ""
    start: float = 0.0
    shared: float = 0.0


def _schedule(planned: Sequence[PlannedTest], rng: random.Random) -> list[_Slot]:
    """Stage by stage, each test on the allowed worker free first: no overlaps."""
    free = dict.fromkeys(WORKERS, STARTED + 1.5)  # collection and planning first
    slots: list[_Slot] = []
    seen_files: set[tuple[str, str]] = set()
    policies = {batch.name: batch for batch in BATCHES}
    for stage in sorted({batch.stage for batch in BATCHES}):
        queue = [_Slot(t, 0) for t in planned if policies[t.batch].stage == stage]
        serial_free = 0.0
        position = 0
        while position < len(queue):
            slot = queue[position]
            position += 1
            policy = policies[slot.test.batch]
            worker = min(policy.workers, key=free.__getitem__)
            start = free[worker] + rng.uniform(0.0001, 0.0005)
            if policy.mode == "serial":
                start = max(start, serial_free)
            if (worker, slot.test.file) not in seen_files:
                seen_files.add((worker, slot.test.file))
                slot.shared = rng.uniform(0.02, 0.2)
            duration = slot.test.duration + slot.shared
            slot.worker, slot.start = worker, start
            free[worker] = serial_free = start + duration
            slots.append(slot)
            if slot.test.outcome == "flaky" and slot.attempt == 0:
                rerun = _Slot(slot.test, 1)
                # A serial batch reruns next; a parallel one when a worker is free.
                queue.insert(position if policy.mode == "serial" else len(queue), rerun)
        barrier = max(free.values())
        free = dict.fromkeys(WORKERS, barrier)
    return slots


def synthetic_result(planned: Sequence[PlannedTest], seed: int = 7) -> RunResult:
    """The RunResult of a 4-worker batchflow run of the plan."""
    rng = random.Random(seed + len(planned))
    attempts: dict[str, AttemptResult] = {}
    results: list[TestResult] = []
    for slot in _schedule(planned, rng):
        test = slot.test
        duration = test.duration + slot.shared
        if test.outcome == "flaky" and slot.attempt == 0:
            phases = _phases(test, slot.start, duration, True, slot.shared)
            attempts[test.nodeid] = AttemptResult(
                outcome="failed",
                worker=slot.worker,
                duration=duration,
                start=slot.start,
                stop=slot.start + duration,
                phases=phases,
                longrepr=phases[1].longrepr,
            )
            continue
        failed = test.outcome == "failed"
        phases = _phases(test, slot.start, duration, failed, slot.shared)
        decisive = next((p for p in phases if p.outcome in ("failed", "skipped")), None)
        earlier = [attempts[test.nodeid]] if test.outcome == "flaky" else []
        history = test.outcome in ("failed", "flaky")
        results.append(
            TestResult(
                nodeid=test.nodeid,
                file=test.file,
                line=test.line,
                batch=test.batch,
                outcome=test.outcome,
                duration=duration,
                start=slot.start,
                stop=slot.start + duration,
                worker=slot.worker,
                phases=phases,
                longrepr=decisive.longrepr if decisive else None,
                stdout=output_text(test),
                attempts=earlier,
                flakiness=round(rng.uniform(0.05, 0.6), 3) if history else None,
                recent=[rng.choice(("passed", "passed", "failed")) for _ in range(8)]
                if history
                else [],
            )
        )
    stopped = max(t.stop for t in results) + 0.8
    return RunResult(
        started=STARTED,
        stopped=stopped,
        duration=stopped - STARTED,
        exitstatus=1,
        environment=_environment(),
        batches=_batches(results),
        tests=results,
        failed_by=["tests"],
    )


def _batches(results: Sequence[TestResult]) -> list[BatchResult]:
    batches = []
    for policy in BATCHES:
        mine = [t for t in results if t.batch == policy.name]
        outcomes = Counter(t.outcome for t in mine)
        batches.append(
            BatchResult(
                name=policy.name,
                kind="test",
                mode="serial" if policy.mode == "serial" else "parallel",
                after=list(policy.after),
                priority=0,
                workers=len(policy.workers) if policy.workers != WORKERS else None,
                reruns=policy.reruns,
                timeout=None,
                maxfail=None,
                cov=False,
                on_upstream_failure="run",
                status="failed" if outcomes["failed"] else "passed",
                tests=len(mine),
                outcomes=dict(sorted(outcomes.items())),
                duration=max(t.stop for t in mine) - min(t.start for t in mine),
            )
        )
    return batches


def _environment() -> Environment:
    return Environment(
        python="3.11.7",
        implementation="CPython",
        platform="Linux-6.1.0-18-amd64-x86_64-with-glibc2.36",
        pytest="9.2.0",
        batchflow="0.1.0",
        plugins=["pytest-batchflow==0.1.0", "pytest-xdist==3.8.0", "pytest-cov==7.1.0"],
        rootdir="/home/ci/shop",
        invocation=["--batchflow", "-n", "4", "--batchflow-html=report.html"],
        hostname="ci-runner-17",
        git_commit="3f9c2a1d0b7e4c5a8e6f1d2c3b4a59687a6b5c4d",
        workers=len(WORKERS),
    )


# -- the real suite for pytest-html ---------------------------------------------------------

_MODULE_HEADER = """\
import pytest


def _emit(batch, function, lines):
    for n in range(lines):
        print(f"{batch}: step {n} of {function}: ok ({n * 7 % 23} rows)")


def _expected_refund(order):
    return dict(order, total=order["total"] + 1, status="refunded")


def _check_refund(body, order):
    expected = _expected_refund(order)
    assert set(body) == set(expected)
    for key in ("id", "currency", "status"):
        assert body[key] == expected[key], key
    assert body == expected


def _case(outcome, batch, function, lines):
    _emit(batch, function, lines)
    if outcome in ("failed", "xfailed"):
        order = {"currency": "EUR", "id": 4312, "status": "open", "total": 12.5}
        body = dict(order, status="refunded")
        _check_refund(body, order)

"""


def _marks(test: PlannedTest) -> list[str]:
    if test.outcome == "skipped":
        return [f"pytest.mark.skip(reason={SKIP_REASONS[test.line % len(SKIP_REASONS)]!r})"]
    if test.outcome == "xfailed":
        return [f"pytest.mark.xfail(reason={XFAIL_REASONS[test.line % 2]!r})"]
    return []


def _module_source(tests: Sequence[PlannedTest]) -> str:
    lines = [_MODULE_HEADER]
    groups: dict[tuple[str | None, str], list[PlannedTest]] = {}
    for test in tests:
        groups.setdefault((test.cls, test.function), []).append(test)
    by_class: dict[str | None, list[list[PlannedTest]]] = {}
    for (cls, _), members in groups.items():
        by_class.setdefault(cls, []).append(members)
    for cls, functions in by_class.items():
        indent = "    " if cls else ""
        if cls:
            lines.append(f"\nclass {cls}:")
        for members in functions:
            first = members[0]
            own = "self, " if cls else ""
            call = f"{first.batch!r}, {first.function!r}"
            if first.param is None:
                lines.extend(f"\n{indent}@{mark}" for mark in _marks(first))
                lines.append(f"\n{indent}def {first.function}({own.rstrip(', ')}):")
                body = f"_case({first.pytest_outcome!r}, {call}, {first.output_lines})"
                lines.append(f"{indent}    {body}\n")
                continue
            lines.append(f"\n{indent}@pytest.mark.parametrize(('outcome', 'lines'), [")
            for test in members:
                marks = _marks(test)
                extra = f", marks=[{', '.join(marks)}]" if marks else ""
                lines.append(
                    f"{indent}    pytest.param({test.pytest_outcome!r}, {test.output_lines}, "
                    f"id={test.param!r}{extra}),"
                )
            lines.append(f"{indent}])")
            lines.append(f"{indent}def {first.function}({own}outcome, lines):")
            lines.append(f"{indent}    _case(outcome, {call}, lines)\n")
    return "\n".join(lines)


def write_pytest_suite(planned: Sequence[PlannedTest], root: Path) -> None:
    """The plan as a test package under ``root`` (its own rootdir: a pytest.ini)."""
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    by_file: dict[str, list[PlannedTest]] = {}
    for test in planned:
        by_file.setdefault(test.file, []).append(test)
    for file, tests in by_file.items():
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        # Packages: the same module name in two folders must not clash.
        for folder in path.relative_to(root).parents:
            if folder != Path("."):
                (root / folder / "__init__.py").touch()
        path.write_text(_module_source(tests), encoding="utf-8")


def pytest_counts(planned: Sequence[PlannedTest]) -> Counter[str]:
    """The outcome counts a serial pytest run of the suite ends with."""
    return Counter(test.pytest_outcome for test in planned)
