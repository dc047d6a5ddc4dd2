"""``--batchflow-probe=N``: what the runs say, and each failing test run alone.

The runs themselves are the scheduler's (serial or xdist): every test runs N
times, in rounds. At the end of the session this module turns the results into
a failure rate per test, runs each test that failed alone in fresh pytest
processes (batchflow off there, see :data:`~pytest_batchflow.options.ALONE_ENV`)
and names the tests that ran before its failures on the same worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence

import pytest

from .core.probe import (
    ALONE_RUNS,
    MAX_ALONE_TESTS,
    Alone,
    Run,
    suspects,
    verdict,
    wilson_interval,
)
from .core.words import count_of
from .options import ALONE_ENV
from .results import ProbeResult, ProbeTest, TestResult

__all__ = ["MAX_SUSPECTS", "alone_command", "probe_lines", "probe_result"]

#: Suspects kept per test in the JSON result; the terminal shows fewer.
MAX_SUSPECTS = 20
_SHOWN_SUSPECTS = 5
_FAILURES = frozenset({"failed", "error", "quarantined"})


def _runs(result: TestResult) -> list[tuple[str, float, bool]]:
    """Each run of a test as (worker, start, failed), the last one included."""
    runs = [(a.worker, a.start, a.outcome in _FAILURES) for a in result.attempts]
    last_failed = any(p.outcome in ("failed", "quarantined") for p in result.phases)
    runs.append((result.worker, result.start, last_failed))
    return runs


def alone_command(config: pytest.Config, nodeid: str) -> list[str]:
    """The command that runs one test in a fresh pytest process, as this run would.

    Same interpreter, root directory and configuration file, the plugins named
    with ``-p`` and the ``-o`` overrides of this run; no xdist, no cache
    written (``--lf`` keeps this run's failures), batchflow off.
    """
    command = [sys.executable, "-m", "pytest", nodeid, "-q", "-p", "no:cacheprovider"]
    command += ["--rootdir", str(config.rootpath)]
    if config.inipath is not None:
        command += ["-c", str(config.inipath)]
    if config.pluginmanager.has_plugin("xdist"):
        command += ["-n", "0"]
    args = list(config.invocation_params.args)
    for position, arg in enumerate(args):
        if arg in ("-p", "-o") and position + 1 < len(args):
            if arg == "-p" and args[position + 1] == "no:cacheprovider":
                continue
            command += [arg, args[position + 1]]
        elif arg.startswith(("-p", "-o")) and len(arg) > 2:
            command.append(arg)
    return command


def _run_alone(
    command: list[str], cwd: str, timeout: float, victim: str | None = None
) -> tuple[bool | None, str | None]:
    """One run alone: (failed, problem); failed is None when it said nothing.

    With ``victim``, whether that test failed (others may run before it).
    """
    env = {**os.environ, ALONE_ENV: "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {timeout:.0f}s alone"
    except OSError as error:
        return None, f"could not start pytest: {error}"
    if done.returncode in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        if victim is not None:
            failed = (f"FAILED {victim}", f"ERROR {victim}")
            return any(line.startswith(failed) for line in done.stdout.splitlines()), None
        return done.returncode == pytest.ExitCode.TESTS_FAILED, None
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "no output"
    return None, f"pytest exited with code {done.returncode} alone: {last}"


def _alone_all(config: pytest.Config, timeouts: dict[str, float]) -> dict[str, Alone]:
    """Run each test alone :data:`ALONE_RUNS` times, each in a fresh process.

    The processes run one after another: the suite never ran a test beside
    itself, and side by side they would share what it keeps in one place (a
    file, pytest-django's test database, a port) and fail for that alone.
    """
    cwd = str(config.rootpath)
    jobs = [
        (nodeid, alone_command(config, nodeid), timeout)
        for nodeid, timeout in timeouts.items()
        for _ in range(ALONE_RUNS)
    ]
    outcomes = [_run_alone(command, cwd, timeout) for _, command, timeout in jobs]
    found: dict[str, Alone] = {}
    for nodeid in timeouts:
        mine = [outcome for job, outcome in zip(jobs, outcomes, strict=False) if job[0] == nodeid]
        problem = next((problem for _, problem in mine if problem is not None), None)
        said = [failed for failed, _ in mine if failed is not None]
        found[nodeid] = Alone(runs=len(said), failures=sum(said), problem=problem)
    return found


def _confirm(
    config: pytest.Config, pairs: list[tuple[str, str]], timeout: float
) -> set[tuple[str, str]]:
    """The (suspect, victim) pairs where the victim fails right after the suspect.

    Both run in one fresh process, in that order (pytest keeps the order of
    its arguments; pytest-randomly, if installed, is kept out), one pair
    after another, as in :func:`_alone_all`.
    """
    cwd = str(config.rootpath)

    def fails_after(pair: tuple[str, str]) -> bool:
        suspect, victim = pair
        command = alone_command(config, suspect)
        command[4:4] = [victim, "-rfE", "-p", "no:randomly"]
        return _run_alone(command, cwd, timeout, victim=victim)[0] is True

    verdicts = [fails_after(pair) for pair in pairs]
    return {pair for pair, failed in zip(pairs, verdicts, strict=True) if failed}


def probe_result(
    config: pytest.Config,
    runs: int,
    results: Sequence[TestResult],
    alone_runs: bool = True,
) -> ProbeResult:
    """The probe's findings over the run's results (each test's runs are its attempts).

    ``alone_runs``: run the failing tests alone too (not after Ctrl-C).
    """
    timeline = [
        Run(result.nodeid, worker, start, failed)
        for result in results
        if result.outcome not in ("skipped",)
        for worker, start, failed in _runs(result)
    ]
    probed = [r for r in results if r.attempts or r.outcome not in ("skipped",)]
    failing = sorted(
        (r for r in probed if any(failed for _, _, failed in _runs(r))),
        key=lambda r: (-sum(failed for _, _, failed in _runs(r)), r.nodeid),
    )
    alone = _alone_all(
        config,
        {
            r.nodeid: 60 + 10 * max([a.duration for a in r.attempts] + [r.duration])
            for r in (failing[:MAX_ALONE_TESTS] if alone_runs else [])
        },
    )
    tests = []
    for result in probed:
        flags = [failed for _, _, failed in _runs(result)]
        failures, count = sum(flags), len(flags)
        low, high = wilson_interval(failures, count)
        fields: dict[str, object] = {}
        if failures and result.nodeid in alone:
            runs_alone = alone[result.nodeid]
            word, p_value = verdict(failures, count, runs_alone)
            fields = {
                "alone_runs": runs_alone.runs,
                "alone_failures": runs_alone.failures,
                "verdict": word,
                "p_value": p_value,
                "problem": runs_alone.problem,
            }
        elif failures:
            fields = {
                "verdict": "not checked",
                "problem": f"more than {MAX_ALONE_TESTS} tests failed; the "
                f"{MAX_ALONE_TESTS} failing most often were run alone",
            }
        if failures:
            fields["suspects"] = suspects(result.nodeid, timeline)[:MAX_SUSPECTS]
        tests.append(
            ProbeTest(
                nodeid=result.nodeid,
                runs=count,
                failures=failures,
                rate=failures / count,
                low=low,
                high=high,
                **fields,
            )
        )
    pairs = [
        (suspect, test.nodeid)
        for test in tests
        if test.verdict == "order-dependent"
        for suspect in test.suspects[:_SHOWN_SUSPECTS]
        if suspect != test.nodeid  # pytest runs a test once per process
    ]
    if pairs:
        timeout = 60 + 10 * max(r.duration for r in results)
        confirmed = _confirm(config, pairs, timeout)
        tests = [
            test.model_copy(
                update={
                    "confirmed": [s for s in test.suspects if (s, test.nodeid) in confirmed],
                    # Confirmed suspects first.
                    "suspects": sorted(
                        test.suspects, key=lambda s: (s, test.nodeid) not in confirmed
                    ),
                }
            )
            for test in tests
        ]
    return ProbeResult(runs=runs, tests=tests)


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def probe_lines(probe: ProbeResult, cut: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The terminal section: failing tests, their rates and verdicts, then a count."""
    lines = []
    for test in sorted(probe.tests, key=lambda t: (-t.rate, t.nodeid)):
        if not test.failures:
            continue
        lines.append(
            f"{test.nodeid}: failed {test.failures} of {test.runs} runs, "
            f"{_percent(test.rate)} (95% interval {_percent(test.low)} to {_percent(test.high)})"
        )
        alone = f"alone: failed {test.alone_failures} of {test.alone_runs}"
        if test.verdict == "order-dependent":
            lines.append(f"  ORDER-DEPENDENT: passes alone ({alone}, p={test.p_value:.3g})")
            if test.confirmed:
                lines.append(
                    "  fails right after: " + ", ".join(test.confirmed) + " (confirmed alone)"
                )
            else:
                lines.append("  no single suspect makes it fail when run just before it")
        elif test.verdict == "fails alone":
            lines.append(f"  fails alone too ({alone}): not (only) the order")
        elif test.verdict == "inconclusive":
            why = test.problem or (
                f"it failed too rarely in the suite to tell (p={test.p_value:.2g})"
                if test.p_value is not None
                else "no run alone"
            )
            lines.append(f"  inconclusive ({alone}): {why}")
        elif test.verdict == "not checked":
            lines.append(f"  not run alone: {test.problem}")
        if test.suspects and test.verdict != "fails alone":
            shown = ", ".join(
                "itself (an earlier run on its worker)" if s == test.nodeid else s
                for s in test.suspects[:_SHOWN_SUSPECTS]
            )
            more = len(test.suspects) - _SHOWN_SUSPECTS
            lines.append(f"  suspects: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    for nodeid, reason in cut:
        lines.append(f"{nodeid}: its runs stopped early: {reason}")
    never = sum(1 for test in probe.tests if not test.failures)
    tests = len(probe.tests)
    lines.append(
        f"batchflow: probe: {count_of(tests, 'test')} run up to {probe.runs} "
        f"times each; {never} never failed"
    )
    return lines
