"""Each test's memory and CPU, memory-aware scheduling, limits, leaks, ``-n auto``.

Tests allocate known amounts (``bytearray`` of a given size, touched page by
page, in the test process or in a child process) and the figures in the JSON
result must come within 10% of them. Overlaps under xdist are read from the
start and stop times in the JSON result, never from wall-clock assertions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from json_runs import by_name, overlap, run

from pytest_batchflow import resources
from pytest_batchflow.resources import Figures, available_memory, pack_figures, unpack_figures
from pytest_batchflow.results import TestResult

MIB = 1024**2

ALLOCATE = """
import subprocess
import sys
import time

import pytest

def allocate(mib):
    block = bytearray(mib * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # every page resident
    return block

CHILD = (
    "block = bytearray({mib} * 1024 * 1024); "
    "block[::4096] = b'x' * len(block[::4096])"
)
"""

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="exact peaks come from Linux's /proc"
)


def memory_of(test: TestResult) -> int:
    assert test.resources is not None, f"{test.nodeid} was not measured"
    return test.resources.memory


def most_at_once(tests: list[TestResult]) -> int:
    events = sorted([(t.start, 1) for t in tests] + [(t.stop, -1) for t in tests])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def run_python(script: str) -> str:
    """What a Python script run in a process of its own printed."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return done.stdout


def xdist_args(workers: int) -> list[str]:
    if workers:
        pytest.importorskip("xdist")
        return ["-n", str(workers)]
    return []


@linux_only
@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist"])
def test_peaks_and_cpu_are_measured_per_test(pytester: pytest.Pytester, workers: int) -> None:
    pytester.makepyfile(
        test_sizes=ALLOCATE
        + """
def test_own_200():
    block = allocate(200)
    del block

def test_child_200():
    subprocess.run([sys.executable, "-c", CHILD.format(mib=200)], check=True)

def start_living_child(mib, pid_file):
    # A server-like child left running (a later test stops it, on any
    # worker): it counts where it was started, with its own peak.
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(mib=mib) + "; import time; time.sleep(60)"]
    )
    with open(pid_file, "w") as pid:
        pid.write(str(child.pid))

def stop_living_child(pid_file):
    import os
    import signal

    with open(pid_file) as pid:
        os.kill(int(pid.read()), signal.SIGKILL)

def test_living_child_120():
    start_living_child(120, "child.pid")
    time.sleep(1.5)

@pytest.mark.depends_on("test_living_child_120")
def test_stops_the_child():
    stop_living_child("child.pid")

def test_child_of_a_thread_200():
    # Started by another thread (a pool, a server fixture): still the
    # process's child, and counted.
    import threading

    starter = threading.Thread(target=start_living_child, args=(200, "thread_child.pid"))
    starter.start()
    starter.join()
    time.sleep(1.5)

@pytest.mark.depends_on("test_child_of_a_thread_200")
def test_stops_the_thread_child():
    stop_living_child("thread_child.pid")

def test_busy():
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass

def test_small():
    pass
"""
    )
    result, data = run(pytester, *xdist_args(workers))
    result.assert_outcomes(passed=8)
    tests = by_name(data)
    # The test's own allocation, and a child's (an interpreter of its own: ~10 MiB more).
    assert 0.9 * 200 * MIB <= memory_of(tests["test_own_200"]) <= 1.1 * 200 * MIB
    assert 0.9 * 200 * MIB <= memory_of(tests["test_child_200"]) <= 1.1 * 200 * MIB
    assert 0.9 * 120 * MIB <= memory_of(tests["test_living_child_120"]) <= 1.1 * 120 * MIB
    assert 0.9 * 200 * MIB <= memory_of(tests["test_child_of_a_thread_200"]) <= 1.1 * 200 * MIB
    assert memory_of(tests["test_small"]) < 5 * MIB
    assert memory_of(tests["test_stops_the_child"]) < 5 * MIB
    assert memory_of(tests["test_stops_the_thread_child"]) < 5 * MIB
    busy = tests["test_busy"].resources
    assert busy is not None
    assert 0.3 <= busy.cpu <= 1.0
    assert busy.wall >= 0.4
    own = tests["test_own_200"].resources
    assert own is not None
    assert own.peak_rss >= own.rss_start + own.memory - MIB
    # Per batch, and the history.
    (batch,) = data.batches
    assert batch.peak_memory == max(memory_of(t) for t in tests.values())
    assert batch.cpu is not None
    assert batch.cpu >= busy.cpu
    with closing(sqlite3.connect(pytester.path / ".batchflow" / "history.sqlite")) as db:
        stored = {
            row[0]: row[1:]
            for row in db.execute("SELECT nodeid, memory, peak_rss, cpu, rss_start FROM attempts")
        }
    # The history keeps each figure in its own column.
    assert stored["test_sizes.py::test_own_200"] == (
        own.memory,
        own.peak_rss,
        own.cpu,
        own.rss_start,
    )
    assert stored["test_sizes.py::test_busy"][2] == busy.cpu
    result.stdout.fnmatch_lines(
        ["*= batchflow resources =*", "memory: heaviest tests test_sizes.py::test_*MiB)*"]
    )
    if xdist_args(workers):  # the default budget, a share of what is available, named
        result.stdout.fnmatch_lines(
            [
                "memory budget: * (75% of the memory available) for the tests running at once; "
                "CPU budget: *"
            ]
        )
    else:  # no budget serially
        assert "memory budget" not in result.stdout.str()


@linux_only
@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist"])
def test_a_small_child_does_not_count_the_test_process_twice(
    pytester: pytest.Pytester, workers: int
) -> None:
    # The kernel's figure for an ended child starts at the memory of the process
    # it was started from (fork copies it, vfork shares it until exec).
    pytester.makepyfile(
        test_spawn=ALLOCATE
        + """
def test_true_first():
    subprocess.run(["true"], check=True)

def test_fill_then_true():
    block = allocate(200)
    del block
    subprocess.run(["true"], check=True)

def test_true_after():
    subprocess.run(["true"], check=True)
"""
    )
    result, data = run(pytester, *xdist_args(workers))
    result.assert_outcomes(passed=3)
    tests = by_name(data)
    assert memory_of(tests["test_true_first"]) < 5 * MIB
    assert 0.9 * 200 * MIB <= memory_of(tests["test_fill_then_true"]) <= 1.1 * 200 * MIB
    assert memory_of(tests["test_true_after"]) < 5 * MIB


@linux_only
@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist"])
def test_a_session_server_stopped_in_the_last_teardown_is_not_that_test_s(
    pytester: pytest.Pytester, workers: int
) -> None:
    # pytest-xprocess's shape: a session fixture starts a server and waits for
    # it in its teardown, which pytest runs in the last test's teardown. The
    # kernel then adds the server's whole life (its peak, its CPU time) to the
    # figures for ended children.
    pytester.makepyfile(
        test_server=ALLOCATE
        + """
SERVER = (
    "import time; " + CHILD.format(mib=150) + "; "
    "end = time.process_time() + 0.4\\n"
    "while time.process_time() < end: pass\\n"
    "print('ready', flush=True); time.sleep(60)"
)

@pytest.fixture(scope="session")
def server():
    process = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    process.stdout.readline()
    yield process
    process.kill()
    process.wait()

@pytest.mark.parametrize("number", range(6))
def test_uses_the_server(server, number):
    pass
"""
    )
    result, data = run(pytester, *xdist_args(workers), "--batchflow-keep-order")
    result.assert_outcomes(passed=6)
    by_worker: dict[str, list[TestResult]] = {}
    for test in sorted(data.tests, key=lambda t: t.start):
        by_worker.setdefault(test.worker, []).append(test)
    # Each worker starts its own server, in its first test's setup: that test
    # counts the server's peak; the others, its last included, nothing.
    firsts = [tests[0] for tests in by_worker.values()]
    others = [test for tests in by_worker.values() for test in tests[1:]]
    assert len(others) >= 3
    for first in firsts:
        assert 0.9 * 150 * MIB <= memory_of(first) <= 1.2 * 150 * MIB
    for test in others:
        assert memory_of(test) < 5 * MIB, test.nodeid
        assert test.resources is not None
        assert test.resources.cpu < 0.2, test.nodeid  # not the server's 0.4 s


@linux_only
def test_figures_reach_the_results_when_a_plugin_logs_the_reports_later(
    pytester: pytest.Pytester,
) -> None:
    # pytest-rerunfailures' protocol: all three reports made, then logged.
    pytester.makeconftest(
        """
import pytest
from _pytest.runner import runtestprotocol

def pytest_runtest_protocol(item, nextitem):
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in runtestprotocol(item, nextitem=nextitem, log=False):
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
"""
    )
    pytester.makepyfile(
        test_later=ALLOCATE
        + """
def test_own_50():
    block = allocate(50)
    del block

def test_small():
    pass
"""
    )
    result, data = run(pytester)
    result.assert_outcomes(passed=2)
    tests = by_name(data)
    assert 0.9 * 50 * MIB <= memory_of(tests["test_own_50"]) <= 1.1 * 50 * MIB
    assert memory_of(tests["test_small"]) < 5 * MIB


@linux_only
def test_tests_over_the_memory_budget_never_run_together_on_four_workers(
    pytester: pytest.Pytester,
) -> None:
    """Declared needs first; then, on a second run, the peaks the history measured."""
    pytest.importorskip("xdist")
    body = "".join(
        f"""
{{mark}}
def test_heavy_{number}():
    block = allocate(100)
    time.sleep(0.6)
"""
        for number in range(6)
    )
    pytester.makepyfile(
        test_heavy=ALLOCATE + body.format(mark='@pytest.mark.resources(memory="100MiB")')
    )
    args = ("-n", "4", "--batchflow-max-memory=250MiB")
    result, data = run(pytester, *args)
    result.assert_outcomes(passed=6)
    assert most_at_once(data.tests) == 2
    # The same suite without a budget that binds: four at once.
    result, roomy = run(pytester, "-n", "4", "--batchflow-max-memory=10GiB")
    assert most_at_once(roomy.tests) == 4
    # No marker now: the history knows each test needs ~100 MiB.
    pytester.makepyfile(test_heavy=ALLOCATE + body.format(mark=""))
    result, measured = run(pytester, *args)
    result.assert_outcomes(passed=6)
    assert all(memory_of(t) >= 90 * MIB for t in measured.tests)
    assert most_at_once(measured.tests) == 2
    assert measured.resources is not None
    assert measured.resources.budget == 250 * MIB


def test_a_test_larger_than_the_whole_budget_runs_alone_with_a_warning(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_mixed="""
import time
import pytest

@pytest.mark.resources(memory="2GiB")
def test_huge():
    time.sleep(0.5)

def test_a(): time.sleep(0.3)
def test_b(): time.sleep(0.3)
def test_c(): time.sleep(0.3)
def test_d(): time.sleep(0.3)
"""
    )
    result, data = run(pytester, "-n", "2", "--batchflow-max-memory=1GiB")
    result.assert_outcomes(passed=5)
    tests = by_name(data)
    huge = tests.pop("test_huge")
    assert not any(overlap(huge, other) for other in tests.values())
    assert most_at_once(list(tests.values())) == 2
    result.stdout.fnmatch_lines(
        [
            "batchflow: warning: test_mixed.py::test_huge needs 2 GiB of memory, "
            "more than the budget of 1 GiB (--batchflow-max-memory): it runs alone",
        ]
    )
    # A size set by the user: no share of the memory available to name.
    result.stdout.fnmatch_lines(
        [
            "memory budget: 1 GiB for the tests running at once; CPU budget: "
            f"{max(os.cpu_count() or 1, 2)} (the larger of the machine's CPUs and the workers)"
        ]
    )
    assert data.resources is not None
    assert data.resources.alone == ["test_mixed.py::test_huge"]


def test_a_test_declaring_two_cpus_leaves_room_for_them(pytester: pytest.Pytester) -> None:
    """On two workers with a CPU budget of 2, a two-CPU test runs beside nothing."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_cpus="""
import time
import pytest

@pytest.mark.resources(cpus=2)
def test_parallel_build():
    time.sleep(0.5)

def test_a(): time.sleep(0.3)
def test_b(): time.sleep(0.3)
def test_c(): time.sleep(0.3)
"""
    )
    # The budget's CPUs are max(CPU count, workers): with as many workers as CPUs
    # the two-CPU test needs the whole machine.
    workers = os.cpu_count() or 1
    if workers < 2:
        pytest.skip("needs two CPUs")
    result, data = run(pytester, "-n", str(workers))
    result.assert_outcomes(passed=4)
    tests = by_name(data)
    build = tests.pop("test_parallel_build")
    beside = [other for other in tests.values() if overlap(build, other)]
    assert most_at_once(beside) <= workers - 2


@linux_only
def test_the_leak_detector_names_the_test_that_kept_memory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_leaky=ALLOCATE
        + """
KEPT = []

def test_fine():
    allocate(50)

def test_keeps_memory():
    KEPT.append(allocate(150))

def test_after():
    pass
"""
    )
    result, data = run(pytester)
    result.assert_outcomes(passed=3)
    assert data.resources is not None
    (leak,) = data.resources.leaks
    assert leak.worker == "main"
    assert 0.9 * 150 * MIB <= leak.growth <= 1.1 * 150 * MIB + 10 * MIB
    assert leak.culprits[0][0] == "test_leaky.py::test_keeps_memory"
    assert 0.9 * 150 * MIB <= leak.culprits[0][1] <= 1.1 * 150 * MIB
    result.stdout.fnmatch_lines(
        [
            "memory leak? worker main grew by 1?? MiB over 3 tests "
            "(threshold 100 MiB plus 8 KiB a test: 100 MiB); "
            "most by: test_leaky.py::test_keeps_memory (+1?? MiB)*",
        ]
    )
    # Above the threshold, nothing is named.
    result, quiet = run(pytester, "--batchflow-leak-threshold=1GiB")
    assert quiet.resources is not None
    assert quiet.resources.leaks == []
    assert "memory leak?" not in result.stdout.str()


@linux_only
def test_a_test_over_the_memory_limit_is_named_or_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_limit=ALLOCATE
        + """
def test_big():
    allocate(120)

def test_small():
    allocate(10)
"""
    )
    result, data = run(pytester, "--batchflow-test-memory-limit=100MiB")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    assert [t.nodeid for t in data.tests if t.memory_limit_exceeded] == ["test_limit.py::test_big"]
    result.stdout.fnmatch_lines(
        ["over the memory limit of 100 MiB: test_limit.py::test_big (1?? MiB)"]
    )

    result, data = run(
        pytester, "--batchflow-test-memory-limit=100MiB", "--batchflow-test-memory-fail"
    )
    result.assert_outcomes(passed=2, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert by_name(data)["test_big"].outcome == "error"
    assert by_name(data)["test_small"].outcome == "passed"
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_big*",
            "batchflow: the test needed 1?? MiB of memory, over the limit of 100 MiB "
            "(--batchflow-test-memory-limit)",
        ]
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--batchflow-max-memory=lots"],
            "ERROR: batchflow: --batchflow-max-memory (command line): 'lots' is not a "
            "size*; e.g. --batchflow-max-memory=8GiB",
        ),
        (
            ["--batchflow-max-memory=150%"],
            "ERROR: batchflow: --batchflow-max-memory (command line): '150%': the percentage "
            "must be above 0 and at most 100; e.g. --batchflow-max-memory=8GiB",
        ),
        (
            ["--batchflow-test-memory-limit=0"],
            "ERROR: batchflow: --batchflow-test-memory-limit (command line): '0': the size "
            "must be above 0*",
        ),
        (
            ["--batchflow-test-memory-fail"],
            "ERROR: batchflow: --batchflow-test-memory-fail (command line) needs a limit to fail "
            "tests over; add --batchflow-test-memory-limit=SIZE, e.g. "
            "--batchflow-test-memory-limit=1GiB",
        ),
    ],
)
def test_bad_resource_settings_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], line: str
) -> None:
    pytester.makepyfile("def test_one(): pass")
    result = pytester.runpytest_subprocess("--batchflow", "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    "mark",
    [
        '@pytest.mark.resources(memory="lots")',
        "@pytest.mark.resources(cpus=0)",
        '@pytest.mark.resources("2GB")',
        "@pytest.mark.resources(disk=3)",
    ],
)
def test_a_bad_resources_marker_is_a_usage_error(pytester: pytest.Pytester, mark: str) -> None:
    pytester.makepyfile(f"import pytest\n\n{mark}\ndef test_one(): pass\n")
    result = pytester.runpytest_subprocess("--batchflow", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: batchflow: test_a_bad_resources_marker_is_a_usage_error.py::test_one: "
            "@pytest.mark.resources takes memory=SIZE and cpus=N, "
            '*e.g. @pytest.mark.resources(memory="2GB", cpus=2); got *',
        ]
    )


def test_the_resources_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        'import pytest\n\n@pytest.mark.resources(memory="1MB")\ndef test_one(): pass\n'
    )
    result = pytester.runpytest_subprocess("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@linux_only
def test_n_auto_takes_no_more_workers_than_the_memory_budget_holds(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_auto=ALLOCATE + "\ndef test_heavy():\n    allocate(150)\n")
    result, _ = run(pytester)  # the history learns the test's peak
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess(
        "--batchflow", "-p", "no:cacheprovider", "-n", "auto", "--batchflow-max-memory=200MiB"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "batchflow: -n auto: 1 worker (* CPUs; the memory budget of 200 MiB holds 1 at "
            "* MiB each: a worker's resting memory plus the 90th percentile of the tests' "
            "peaks in the history)",
            "created: 1/1 worker",
        ]
    )


def test_measuring_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one(): pass")
    result, data = run(pytester, "--batchflow-no-resources")
    result.assert_outcomes(passed=1)
    assert data.resources is None
    assert data.tests[0].resources is None
    assert "batchflow resources" not in result.stdout.str()


def test_a_forking_test_sees_no_thread_of_ours(pytester: pytest.Pytester) -> None:
    """Measuring starts no thread: os.fork() in a test does not warn on Python 3.12+."""
    pytester.makepyfile(
        test_fork="""
import os
import threading
import warnings

def test_only_the_main_thread():
    assert threading.active_count() == 1

def test_fork_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pid = os.fork()
        if pid == 0:
            os._exit(0)
    os.waitpid(pid, 0)
"""
    )
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork here")
    result, data = run(pytester)
    result.assert_outcomes(passed=2)
    assert all(t.resources is not None for t in data.tests)


@linux_only
def test_a_thread_that_ended_leaves_no_peak_to_later_tests(pytester: pytest.Pytester) -> None:
    """The kernel keeps a peak apart when a thread ends; a later test is not charged it."""
    pytester.makepyfile(
        test_threads=ALLOCATE
        + """
import threading

def test_in_a_thread():
    worker = threading.Thread(target=lambda: allocate(150))
    worker.start()
    worker.join()

def test_later():
    block = allocate(20)
    del block
"""
    )
    result, data = run(pytester)
    result.assert_outcomes(passed=2)
    tests = by_name(data)
    assert 0.9 * 150 * MIB <= memory_of(tests["test_in_a_thread"]) <= 1.1 * 150 * MIB
    assert 0.9 * 20 * MIB <= memory_of(tests["test_later"]) <= 1.1 * 20 * MIB


def test_the_figures_travel_as_one_json_safe_value() -> None:
    # One string on the teardown report: execnet carries it whole, and a
    # plugin that writes reports out as JSON (pytest-reportlog) can.
    figures = Figures((1 << 40) + 3, 209_715_200, 31_000_000, 31_500_000, 0.001234, 1.5, 4321)
    packed = pack_figures(figures)
    assert isinstance(packed, str)
    assert json.loads(json.dumps(packed)) == packed
    assert unpack_figures(packed) == figures
    assert unpack_figures(None) is None
    assert unpack_figures("not seven numbers") is None
    assert unpack_figures(list(figures)) is None


@linux_only
def test_without_the_reset_a_small_child_does_not_count_an_earlier_peak() -> None:
    # Where /proc/self/clear_refs cannot be written, the process's peak is its
    # lifetime one: a vforked child's figure carries that too.
    script = (
        "import subprocess\n"
        "from pytest_batchflow.resources import Figures, ResourceMeter\n"
        "meter = ResourceMeter()\n"
        "meter.close()  # measuring goes on without the reset, as where it is refused\n"
        "block = bytearray(200 * 1024 * 1024); block[::4096] = b'x' * len(block[::4096])\n"
        "del block\n"
        "meter.start()\n"
        "subprocess.run(['true'], check=True)\n"
        "print(Figures._make(meter.stop()).memory)\n"
    )
    assert int(run_python(script)) < 5 * MIB


@linux_only
def test_after_a_childless_test_the_next_one_counts_only_its_own_children() -> None:
    # After a test that ended with no child alive, the next one starts from
    # the ended children's figures read then (no system calls for them): a
    # child that ended in the test before is not counted again, one started
    # between the two tests (as a hook might) counts with the next one.
    script = (
        "import subprocess, sys\n"
        "from pytest_batchflow.resources import ResourceMeter\n"
        "busy = 'sum(range(3 * 10**7))'\n"
        "hold = 'import sys; b = bytearray(80 * 2**20); b[::4096] = bytes(len(b[::4096]));"
        " print(flush=True); sys.stdin.read()'\n"
        "meter = ResourceMeter()\n"
        "meter.start(); subprocess.run([sys.executable, '-c', busy], check=True)\n"
        "spawning = meter.stop()\n"
        "meter.start(); after = meter.stop()\n"
        "pipe = subprocess.PIPE\n"
        "child = subprocess.Popen([sys.executable, '-c', hold], stdin=pipe, stdout=pipe)\n"
        "child.stdout.readline()  # the child holds its memory now\n"
        "meter.start(); beside = meter.stop()\n"
        "child.communicate(b''); meter.start(); last = meter.stop()\n"
        "print(spawning.cpu, after.cpu, after.memory, beside.memory, last.cpu)\n"
    )
    spawning_cpu, after_cpu, after_memory, beside_memory, last_cpu = run_python(script).split()
    assert float(spawning_cpu) > 0.2  # the ended child's CPU time counts
    assert float(after_cpu) < 0.05  # and only with the test that ran it
    assert int(after_memory) < 5 * MIB
    assert int(beside_memory) >= 80 * MIB  # started between two tests: the next one's
    assert float(last_cpu) < 0.05


@linux_only
def test_a_child_from_before_counts_only_with_what_came_during_the_test() -> None:
    # A server started before the test: killed in one test (a zombie until
    # waited for, so the kernel has added nothing yet), waited for in the
    # next. Neither test counts its 80 MiB or the 0.3 s it ran before them;
    # the first counts its own busy 0.3 s in full.
    script = (
        "import subprocess, sys, time\n"
        "from pytest_batchflow.resources import ResourceMeter\n"
        "def busy(seconds):\n"
        "    end = time.thread_time() + seconds\n"
        "    while time.thread_time() < end: pass\n"
        "server = ('import sys, time; b = bytearray(80 * 2**20);'\n"
        "          ' b[::4096] = bytes(len(b[::4096])); end = time.process_time() + 0.3\\n'\n"
        "          'while time.process_time() < end: pass\\n'\n"
        "          'print(flush=True); time.sleep(60)')\n"
        "child = subprocess.Popen([sys.executable, '-c', server], stdout=subprocess.PIPE)\n"
        "child.stdout.readline()\n"
        "meter = ResourceMeter()\n"
        "meter.start(); meter.stop()\n"
        "meter.start(); child.kill(); time.sleep(0.3); busy(0.3); killing = meter.stop()\n"
        "meter.start(); child.wait(); waiting = meter.stop()\n"
        "print(killing.cpu, killing.memory, waiting.cpu, waiting.memory)\n"
    )
    killing_cpu, killing_memory, waiting_cpu, waiting_memory = run_python(script).split()
    assert 0.25 <= float(killing_cpu) < 0.5
    assert int(killing_memory) < 5 * MIB
    assert float(waiting_cpu) < 0.1
    assert int(waiting_memory) < 5 * MIB


@linux_only
def test_a_zombie_reaped_in_passing_leaves_the_test_s_own_child_counted() -> None:
    # A child dropped while it runs is a zombie at the next test's start, and
    # the next Popen() reaps it: that test's own 200 MiB child still counts,
    # less the zombie's small peak as last read.
    script = (
        "import subprocess, sys, time\n"
        "from pytest_batchflow.resources import ResourceMeter\n"
        "fill = 'b = bytearray(200 * 2**20); b[::4096] = bytes(len(b[::4096]))'\n"
        "meter = ResourceMeter()\n"
        "meter.start(); meter.stop()\n"
        "meter.start(); subprocess.Popen(['sleep', '0.2']); meter.stop()\n"
        "time.sleep(0.5)  # a zombie now\n"
        "meter.start(); subprocess.run([sys.executable, '-c', fill], check=True)\n"
        "print(meter.stop().memory)\n"
    )
    assert 0.9 * 200 * MIB <= int(run_python(script)) <= 1.1 * 200 * MIB


@linux_only
@pytest.mark.skipif(
    not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK), reason="sets the next pid (root)"
)
def test_a_pid_read_before_a_childless_test_is_not_a_later_zombie_s() -> None:
    # A child read alive (150 MiB) is waited for; the test ends with no child.
    # Later a short-lived child gets its pid back (pids wrap at pid_max) and is
    # a zombie at the next test's start: never seen alive, it takes nothing
    # off that test's own 400 MiB child.
    script = (
        "import subprocess, sys, time\n"
        "from pytest_batchflow.resources import ResourceMeter\n"
        "hold = 'b = bytearray(150 * 2**20); b[::4096] = bytes(len(b[::4096]));"
        " print(flush=True); import time; time.sleep(60)'\n"
        "fill = 'b = bytearray(400 * 2**20); b[::4096] = bytes(len(b[::4096]))'\n"
        "def spawn_at(pid):\n"
        "    for _ in range(200):\n"
        "        with open('/proc/sys/kernel/ns_last_pid', 'w') as last:\n"
        "            last.write(str(pid - 1))\n"
        "        child = subprocess.Popen(['true'])\n"
        "        if child.pid == pid:\n"
        "            return child\n"
        "        child.wait()\n"
        "    sys.exit('the pid did not come back')\n"
        "meter = ResourceMeter()\n"
        "meter.start()\n"
        "held = subprocess.Popen([sys.executable, '-c', hold], stdout=subprocess.PIPE)\n"
        "held.stdout.readline(); meter.stop()\n"
        "meter.start(); held.kill(); held.wait(); meter.stop()\n"
        "meter.start(); again = spawn_at(held.pid); time.sleep(0.3); meter.stop()\n"
        "meter.start(); again.wait(); subprocess.run([sys.executable, '-c', fill], check=True)\n"
        "print(meter.stop().memory)\n"
    )
    assert int(run_python(script)) >= 0.9 * 400 * MIB


@linux_only
def test_each_test_counts_only_its_own_peak_whatever_came_before() -> None:
    # The peak starts again at a test's start only where an earlier one is
    # above the memory resident then (a test that kept its memory leaves none).
    script = (
        "from pytest_batchflow.resources import ResourceMeter\n"
        "def touched(mib):\n"
        "    block = bytearray(mib * 2**20); block[::4096] = bytes(len(block[::4096]))\n"
        "    return block\n"
        "meter = ResourceMeter()\n"
        "meter.start(); meter.stop()  # the first start takes the long way\n"
        "figures = []\n"
        "meter.start(); touched(200); figures.append(meter.stop())  # freed: a peak above\n"
        "meter.start(); touched(50); figures.append(meter.stop())  # below that peak\n"
        "meter.start(); kept = touched(30); figures.append(meter.stop())  # stays resident\n"
        "meter.start(); figures.append(meter.stop())  # nothing\n"
        "meter.start(); touched(40); figures.append(meter.stop())\n"
        "del kept  # freed between two tests, as a garbage collection there may\n"
        "meter.start(); touched(20); figures.append(meter.stop())\n"
        "print(*(f.memory // 2**20 for f in figures))\n"
    )
    first, below, kept, nothing, last, after_free = map(int, run_python(script).split())
    assert 180 <= first <= 220
    assert 45 <= below <= 55
    assert 27 <= kept <= 33
    assert nothing < 5
    assert 36 <= last <= 44
    # The peak of the test before (with the 30 MiB still kept) is no floor for
    # this one: it starts from the memory resident at its start.
    assert 18 <= after_free <= 22


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="reads Linux's /proc")
def test_the_available_memory_is_the_kernels_estimate_as_psutil_gives_it() -> None:
    import psutil

    ours, theirs = available_memory(), psutil.virtual_memory().available
    assert ours > 0
    assert abs(ours - theirs) <= 64 * 2**20, (ours, theirs)


def test_without_proc_psutil_tells_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    def no_proc(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("/proc/meminfo")

    class Memory:
        available = 123_456_789

    monkeypatch.setattr(resources, "open", no_proc, raising=False)
    monkeypatch.setattr(psutil, "virtual_memory", Memory)
    assert available_memory() == 123_456_789


def test_a_size_the_marker_cannot_read_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        'import pytest\n\n@pytest.mark.resources(memory="lots")\ndef test_one(): pass\n'
    )
    result = pytester.runpytest_subprocess("--batchflow", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*; got (memory='lots') ('lots' is not a size: a number and a unit among *)"]
    )


def test_a_test_needing_more_cpus_than_there_are_is_named_for_its_cpus(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.resources(cpus=999)\ndef test_wide(): pass\n"
        "def test_other(): pass\n"
    )
    result, _ = run(pytester, "-n", "2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "batchflow: warning: test_a_test_needing_more_cpus_than_there_are_is_named_for_its_cpus"
            ".py::test_wide needs 999 CPUs, more than the * of this machine and its workers: "
            "it runs alone"
        ]
    )
    assert "--batchflow-max-memory" not in result.stdout.str()
