"""Each test's memory and CPU time, measured in the process that runs it.

On Linux the kernel keeps each process's peak resident memory (``VmHWM``)
and lets the process reset it (writing ``5`` to ``/proc/self/clear_refs``):
the peak of the test process is exact, costs a few system calls a test, and
needs no sampling thread. A thread
would show in the suite's own thread counts and make Python 3.12+ warn on
every ``os.fork()`` a test makes
(``DeprecationWarning: This process is multi-threaded``), so there is none.
Child processes count with their own peaks: those still alive at the
test's end through their ``VmHWM``, those that ended and were waited for
through the kernel's largest-child figure (``RUSAGE_CHILDREN``), when it rose
during the test above the test process's own peak (the figure starts from
the memory of the process a child was started from). A child that was running
before the test counts only with what it grew by, also when it ends during
the test (a session fixture's server, stopped in the last test's teardown):
its memory and CPU time at the test's start are taken off the kernel's figures
for ended children. Elsewhere psutil reads
the resident memory at the test's start and end, and the process's lifetime
peak counts when it rose.

Under xdist the figures travel to the controller as one string on the
teardown report; a serial run hands them over in-process.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .clock import monotonic
from .core.resources import WorkerCount, format_size, workers_for_memory
from .core.words import count_of

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]
#: Linux's per-thread usage: CPU time of the calling thread and the peak figure.
_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)

if TYPE_CHECKING:
    import psutil

    from .settings import Settings

__all__ = [
    "RESOURCES_ATTRIBUTE",
    "Figures",
    "ResourceMeter",
    "auto_workers",
    "available_memory",
    "describe_auto_workers",
    "pack_figures",
    "unpack_figures",
]

#: The teardown report's attribute: the test's :class:`Figures`, packed (see
#: :func:`pack_figures`).
RESOURCES_ATTRIBUTE = "batchflow_resources"


class Figures(NamedTuple):
    """A test's figures (:meth:`ResourceMeter.stop`), named as
    :class:`~pytest_batchflow.results.ResourceResult` names them."""

    peak_rss: int
    memory: int
    rss_start: int
    rss_end: int
    cpu: float
    wall: float
    pid: int


def pack_figures(figures: Figures) -> str:
    """:meth:`ResourceMeter.stop`'s figures as the teardown report carries them:
    one text of seven numbers (``peak memory rss_start rss_end cpu wall pid``).

    One value: execnet takes a list of seven numbers apart and puts it back
    together number by number, some 7 microseconds a test between a worker and
    the controller; one string costs a fraction of that. A string, not bytes:
    plugins that write reports out as JSON (pytest-reportlog) still can.
    """
    peak, memory, rss_start, rss_end, cpu, wall, pid = figures
    sizes = f"{int(peak)} {int(memory)} {int(rss_start)} {int(rss_end)}"
    return f"{sizes} {float(cpu)!r} {float(wall)!r} {int(pid)}"


def unpack_figures(data: object) -> Figures | None:
    """The figures a report brought (:func:`pack_figures`), None if it brought none."""
    if not isinstance(data, str):
        return None
    try:
        peak, memory, rss_start, rss_end, cpu, wall, pid = data.split()
        return Figures(
            int(peak), int(memory), int(rss_start), int(rss_end), float(cpu), float(wall), int(pid)
        )
    except ValueError:
        return None


# getrusage's ru_maxrss is in KiB on Linux, bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def available_memory() -> int:
    """Bytes of memory available to new work on this machine now.

    Linux: the kernel's estimate, ``MemAvailable`` in ``/proc/meminfo``, the
    figure psutil's ``virtual_memory().available`` gives there too, without
    importing psutil (some 15 ms at the start of every run). Elsewhere, and
    on kernels older than 3.14 (which lack the line), psutil's.
    """
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for line in meminfo:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import psutil

    return int(psutil.virtual_memory().available)


def auto_workers(settings: Settings, cpus: int, budget: int | None) -> WorkerCount:
    """``-n auto``: the smaller of ``cpus`` and what the memory ``budget`` holds.

    The history gives the workers' resting memory and the tests' peaks; a
    store that cannot be read counts as no history (the CPU count stands).
    """
    import sqlite3

    from .history import HistoryError, HistoryStore

    resting: list[int] = []
    peaks: list[int] = []
    path = settings.history_path
    if not settings.no_history and path.exists():
        try:
            store, _ = HistoryStore.open(path)
        except HistoryError:
            store = None
        if store is not None:
            try:
                resting = store.resting_memory()
                peaks = list(store.memory_needs().values())
            except sqlite3.Error:
                pass
            finally:
                store.close()
    return workers_for_memory(cpus, budget, resting, peaks)


def describe_auto_workers(count: WorkerCount, budget: int) -> str:
    """The header line that says why ``-n auto`` chose its number."""
    head = f"batchflow: -n auto: {count_of(count.workers, 'worker')} ({count.cpus} CPUs"
    if count.by_memory is None or count.per_worker is None:
        return f"{head}; no memory figures in the history yet)"
    return (
        f"{head}; the memory budget of {format_size(budget)} holds {count.by_memory} at "
        f"{format_size(count.per_worker)} each: a worker's resting memory plus the 90th "
        "percentile of the tests' peaks in the history)"
    )


#: The figures of ``/proc/PID/status`` a test's end needs, in the order the kernel writes them.
_OWN_STATUS = re.compile(rb"VmHWM:\s*(\d+) kB\nVmRSS:\s*(\d+) kB")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _field(status: bytes, name: bytes) -> int | None:
    """A number from a ``/proc/PID/status`` text (``VmRSS:  1234 kB``)."""
    at = status.find(name)
    if at < 0:
        return None
    end = status.find(b"\n", at)
    try:
        return int(status[at + len(name) : end].split()[0])
    except (ValueError, IndexError):
        return None


def _status(pid: int | str) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of a Linux process in bytes, None if it is gone or not Linux."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            text = status.read()
    except OSError:
        return None
    rss, hwm = _field(text, b"VmRSS:"), _field(text, b"VmHWM:")
    if rss is None or hwm is None:
        return None
    return rss * 1024, hwm * 1024


def _linux_children(pid: int | str, deep: bool = True) -> list[str]:
    """The process's descendants (``deep``) or its direct children only, from
    each thread's ``children`` file; zombies too.

    psutil's ``children()`` reads every process on the machine (a
    millisecond or more); these files list only the process's own.
    """
    found: list[str] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as children:
                direct = children.read().split()
        except OSError:
            continue
        for child in direct:
            found.append(child.decode())
            if deep:
                found.extend(_linux_children(child.decode()))
    return found


#: Looked up once: the meter asks at the end of every test.
_WAITID = getattr(os, "waitid", None)
#: Neither wait (``WNOHANG``) nor reap (``WNOWAIT``): only ask.
_ASK_ONLY = os.WEXITED | os.WNOHANG | os.WNOWAIT if _WAITID is not None else 0


def _has_children() -> bool:
    """Whether the process has a child, alive or not yet waited for, from any
    of its threads.

    One ``waitid`` that neither waits (``WNOHANG``) nor reaps (``WNOWAIT``):
    about a microsecond, where listing the children of every thread of an
    xdist worker (execnet runs one) cost some 40 microseconds a test. True
    where there is no ``waitid`` (Windows): the caller then looks.
    """
    if _WAITID is None:
        return True
    try:
        _WAITID(os.P_ALL, 0, _ASK_ONLY)
    except ChildProcessError:
        return False
    return True


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _child_share(pid: str) -> tuple[int, float] | None:
    """A Linux process's parent and the CPU seconds it would add to its parent's
    figure for ended children when waited for (its own and its ended
    children's), from ``/proc/PID/stat``; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
        # After the name in parentheses (which may hold spaces): state, ppid, ...
        fields = text[text.rindex(b")") + 2 :].split()
        ticks = sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
        return int(fields[1]), ticks / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def _reaped(pid: str) -> bool:
    """Whether this process's child ``pid`` was waited for: gone, not a zombie
    (whose figures the kernel has not added to those for ended children yet)."""
    if _WAITID is None:
        return False
    try:
        _WAITID(os.P_PID, int(pid), _ASK_ONLY)
    except ChildProcessError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _children_usage() -> tuple[float, int]:
    """CPU seconds of the ended children (those waited for) and the largest
    one's peak resident memory (bytes); zeros where there is no getrusage."""
    if resource is None:
        return 0.0, 0
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ended.ru_utime + ended.ru_stime, ended.ru_maxrss * _MAXRSS_UNIT


def _own_usage() -> tuple[float, int]:
    """CPU seconds of the calling thread, and the kernel's peak figure that
    ``getrusage(RUSAGE_THREAD)`` gives (bytes; 0 where there is none).

    Only the calling thread's CPU time: a process-wide figure (``os.times``,
    ``getrusage(RUSAGE_SELF)``) sums every thread's, which cost 20 to 40
    microseconds a call in an xdist worker (whose execnet thread is busy on
    another CPU) and counted that thread's work too.

    On Linux the thread's ``ru_maxrss`` is the larger of the process's peak
    since the last reset (``clear_refs``) and the peak it had when a thread
    last ended; :meth:`ResourceMeter.stop` reads ``/proc/self/status`` only
    when the second may hide the first.
    """
    if _RUSAGE_THREAD is None:
        return time.thread_time(), 0
    own = resource.getrusage(_RUSAGE_THREAD)
    return own.ru_utime + own.ru_stime, own.ru_maxrss * _MAXRSS_UNIT


def _lifetime_peak() -> int:
    """This process's peak resident memory over its life (bytes), where no
    ``/proc`` tells the peak since a reset; 0 without getrusage."""
    if resource is None:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


class ResourceMeter:
    """Start before a test's setup, stop after its teardown: one test at a time."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # Linux: descriptors kept open, read with pread (a few microseconds a
        # test, where opening the files each time costs several times that).
        self._clear_refs: int | None = None
        self._own_status: int | None = None
        self._own_statm: int | None = None
        if _status(self.pid) is not None:
            try:
                self._own_status = os.open(f"/proc/{self.pid}/status", os.O_RDONLY)
                self._own_statm = os.open(f"/proc/{self.pid}/statm", os.O_RDONLY)
                self._clear_refs = os.open(f"/proc/{self.pid}/clear_refs", os.O_WRONLY)
            except OSError:
                self.close()
        self._psutil_process: psutil.Process | None = None
        self._start: tuple[int, float, float, int, int] | None = None
        self._children_start: dict[str, int] = {}
        # The children at the test's start, zombies too: their memory then (a
        # zombie's last read, None if it was never seen alive) and the CPU
        # seconds they would bring to the figures for ended children once
        # waited for.
        self._direct_start: dict[str, tuple[int | None, float]] = {}
        # Each descendant's memory as last read (its peak since its reset);
        # emptied when a test ends with no child, rebuilt at a start with
        # children: a pid read once may be a new process's later.
        self._seen: dict[str, int] = {}
        # What the last stop() found of the ended children (CPU seconds, peak),
        # when no child was alive or unreaped then; None otherwise.
        self._childless_at: tuple[float, int] | None = None

    def _process(self) -> psutil.Process:
        """psutil's view of this process, where there is no ``/proc`` to read:
        imported on first need (some 15 ms a worker that Linux does not spend)."""
        if self._psutil_process is None:
            import psutil

            self._psutil_process = psutil.Process(self.pid)
        return self._psutil_process

    def close(self) -> None:
        """Give back the descriptors; measuring goes on through psutil."""
        for fd in (self._clear_refs, self._own_status, self._own_statm):
            if fd is not None:
                os.close(fd)
        self._clear_refs = self._own_status = self._own_statm = None

    def _rss(self) -> tuple[int, int | None]:
        """Resident memory now, and the peak since the last reset (Linux only)."""
        if self._own_status is not None:
            match = _OWN_STATUS.search(os.pread(self._own_status, 8192, 0))
            if match is not None:
                return int(match[2]) * 1024, int(match[1]) * 1024
        return int(self._process().memory_info().rss), None

    def _resident(self) -> int:
        """Resident memory now: ``statm`` where there is one (the kernel writes it
        several times faster than ``status``)."""
        if self._own_statm is not None:
            fields = os.pread(self._own_statm, 256, 0).split()
            if len(fields) > 1:
                return int(fields[1]) * _PAGE
        return self._rss()[0]

    def start(self) -> None:
        statm, clear_refs, childless = self._own_statm, self._clear_refs, self._childless_at
        if statm is None or clear_refs is None or childless is None or _RUSAGE_THREAD is None:
            self._start_with_helpers()
            return
        # Linux after a test that ended with no child (the usual case), written
        # out: two or three system calls and no helper call, as in stop().
        rss = int(os.pread(statm, 256, 0).split(None, 2)[1]) * _PAGE
        own = resource.getrusage(_RUSAGE_THREAD)
        # The thread's peak figure is at least the process's peak since the
        # last reset: when it is no more than the memory now, that peak is
        # too, and a reset would change nothing (one system call a test fewer;
        # most tests leave no peak above what stays resident).
        peak_before = own.ru_maxrss * _MAXRSS_UNIT
        if peak_before > rss or not peak_before:
            try:
                os.write(clear_refs, b"5")  # the peak starts again from now
            except OSError:
                self.close()
                self._start_with_helpers()
                return
        # Nothing to hold apart, and the ended children's figures are the ones
        # read then (two system calls a test fewer). A child that a hook starts
        # between two tests counts with the next one.
        self._childless_at = None
        self._children_start = {}
        self._direct_start = {}
        children_cpu, children = childless
        cpu = own.ru_utime + own.ru_stime + children_cpu
        # peak_before (read before any reset) is at least the figure that a
        # thread's end left, which is all that stop() asks of it.
        self._start = (rss, cpu, monotonic(), children, peak_before)

    def _start_with_helpers(self) -> None:
        """:meth:`start` anywhere: children alive, no ``/proc`` or no thread usage."""
        rss = self._resident()
        if self._clear_refs is not None:
            try:
                os.write(self._clear_refs, b"5")  # the peak starts again from now
            except OSError:
                self.close()
        childless, self._childless_at = self._childless_at, None
        self._children_start, self._direct_start = {}, {}
        if childless is not None:  # as in start()
            children_cpu, children = childless
        else:
            if _has_children():
                # Children from earlier tests (a server a session fixture started)
                # count only with what they grow by during this test.
                self._children_start = {
                    pid: rss for pid, (rss, _) in self._descendants(reset=True).items()
                }
                if _WAITID is not None:  # without it no child is known to be reaped
                    self._direct_start = self._direct_children(self._children_start)
                self._seen = {
                    **{pid: rss for pid, (rss, _) in self._direct_start.items() if rss is not None},
                    **self._children_start,
                }
            children_cpu, children = _children_usage()
        cpu, own = _own_usage()
        # Linux: the peak figure just after the reset; elsewhere the lifetime peak.
        peak_before = own if self._clear_refs is not None else _lifetime_peak()
        self._start = (rss, cpu + children_cpu, monotonic(), children, peak_before)

    def stop(self) -> Figures | None:
        """The test's :class:`Figures`, or None if :meth:`start` was not called for it.

        ``peak_rss``: the highest resident memory of the test process plus its
        children's peaks (bytes); ``memory``: ``peak_rss`` above the process's
        memory at the start (what the test itself needed); ``rss_start`` and
        ``rss_end``; ``cpu``: user plus system seconds of the thread that ran
        the test and of its ended children; ``wall``: seconds; ``pid``.
        """
        started = self._start
        if started is None:
            return None
        self._start = None
        wall = monotonic() - started[2]
        statm, waitid = self._own_statm, _WAITID
        if (
            statm is None
            or self._clear_refs is None
            or _RUSAGE_THREAD is None
            or waitid is None
            or self._direct_start
        ):
            return self._stop_with_helpers(started, wall)
        # Linux, written out: four system calls and no helper call (each a Python
        # frame; a third of the pair's instructions went to them). The reasoning
        # is _stop_with_helpers's, which also takes the rare cases.
        rss_start, cpu_start, _, children_before, peak_before = started
        usage = resource.getrusage(_RUSAGE_THREAD)
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = usage.ru_maxrss * _MAXRSS_UNIT
        rss_end = int(os.pread(statm, 256, 0).split(None, 2)[1]) * _PAGE
        ends = rss_start if rss_start > rss_end else rss_end
        if not own or not (own > peak_before or own <= ends):
            # A thread that ended with more memory may hide the test's peak.
            return self._stop_with_helpers(started, wall)
        hwm = own if own > ends else ends
        children_cpu = ended.ru_utime + ended.ru_stime
        cpu = usage.ru_utime + usage.ru_stime + children_cpu - cpu_start
        ended_peak = ended.ru_maxrss * _MAXRSS_UNIT
        children = ended_peak if ended_peak > children_before and ended_peak > hwm else 0
        try:
            waitid(os.P_ALL, 0, _ASK_ONLY)
        except ChildProcessError:  # no child alive or unreaped: the usual case
            self._childless_at = (children_cpu, ended_peak)
            if self._seen:  # every child read is gone: its pid may come back as another's
                self._seen = {}
        else:
            children = max(children, self._alive_children_peak(self._descendants()))
        peak = hwm + children
        # tuple.__new__ rather than the class's own __new__ (a Python frame), and
        # (x * 1e6 + 0.5) // 1 / 1e6 rather than round(x, 6): half up to the
        # microsecond with no decimal conversion (a microsecond apart only near
        # a tie). Together a tenth of the pair's instructions.
        return tuple.__new__(
            Figures,
            (
                peak,
                peak - rss_start if peak > rss_start else 0,
                rss_start,
                rss_end,
                (cpu * 1e6 + 0.5) // 1 / 1e6 if cpu > 0 else 0.0,
                (wall * 1e6 + 0.5) // 1 / 1e6,
                self.pid,
            ),
        )

    def _stop_with_helpers(
        self, started: tuple[int, float, float, int, int], wall: float
    ) -> Figures:
        """:meth:`stop` anywhere, and on Linux where a thread's peak may hide the test's."""
        rss_start, cpu_start, _, children_before, peak_before = started
        own_cpu, own = _own_usage()
        children_cpu, ended = _children_usage()
        has_children = _has_children()  # one system call when there is none, the usual case
        alive = self._descendants() if has_children else {}
        # A child that ran before the test and ended in it (waited for by a
        # session fixture's teardown) brings all its CPU time and its peak to
        # the figures for ended children: only what came during the test counts.
        ended_before = [share for pid, share in self._direct_start.items() if _reaped(pid)]
        cpu_before = sum(cpu for _, cpu in ended_before)
        cpu = own_cpu + children_cpu - cpu_start - cpu_before
        hwm: int | None = None
        if self._clear_refs is not None and own:
            rss_end = self._resident()
            # ``own`` is max(peak since the reset, peak when a thread last
            # ended). It is the test's peak when it rose during the test, or
            # when it is no more than the memory at either end (the peak since
            # the reset is at least both); otherwise a thread that ended with
            # more memory may hide it, and /proc/self/status tells.
            # (The kernel's counters behind the peak may lag the resident
            # figures by some pages: the peak is never less than either end.)
            if own > peak_before or own <= max(rss_start, rss_end):
                hwm = max(own, rss_start, rss_end)
        if hwm is None:
            rss_end, hwm = self._rss()
        if hwm is None:
            lifetime = _lifetime_peak()
            hwm = max(rss_start, rss_end, lifetime if lifetime > peak_before else 0)
        # An ended child's figure is at least the memory of the process it was
        # started from: fork copies this process's memory and vfork shares it
        # until exec, and the kernel keeps the larger of that and the child's
        # own peak. Only a figure above this process's peak (since the reset;
        # without one, over its life) can be the child's own.
        own_peak = hwm if self._clear_refs is not None else max(hwm, _lifetime_peak())
        children = ended if ended > children_before and ended > own_peak else 0
        if children and ended_before:  # the figure may be that child's peak
            # (A zombie never seen alive has no figure to take off: it counts.)
            bases = [rss for rss, _ in ended_before if rss is not None]
            if bases:
                children = max(children - max(bases), 0)
        if has_children:
            children = max(children, self._alive_children_peak(alive))
        else:
            self._childless_at = (children_cpu, ended)
            self._seen = {}  # as in stop(): no pid read before is a child any more
        peak = hwm + children
        return Figures(
            peak,
            max(peak - rss_start, 0),
            rss_start,
            rss_end,
            round(max(cpu, 0.0), 6),
            round(wall, 6),
            self.pid,
        )

    def _descendants(self, reset: bool = False) -> dict[str, tuple[int, int | None]]:
        """Each live descendant's resident memory and, on Linux, its peak since reset.

        ``reset``: start each one's peak again from now (where the kernel lets us).
        Callers ask :func:`_has_children` first (one system call), so that the
        usual childless test looks no further.
        """
        found: dict[str, tuple[int, int | None]] = {}
        if self._clear_refs is not None:  # /proc is read (its descriptors are open)
            for child in _linux_children(self.pid):
                if reset:
                    with contextlib.suppress(OSError):
                        Path(f"/proc/{child}/clear_refs").write_bytes(b"5")
                status = _status(child)
                if status is not None:
                    found[child] = status
            return found
        import psutil

        try:
            for process in self._process().children(recursive=True):
                found[str(process.pid)] = (int(process.memory_info().rss), None)
        except psutil.Error:
            pass
        return found

    def _direct_children(self, alive: dict[str, int]) -> dict[str, tuple[int | None, float]]:
        """This process's children, zombies too, with their resident memory
        (from ``alive``, pid: bytes; a zombie's as last read, None if it was
        never seen alive) and the CPU seconds that waiting for them adds to the
        figures for ended children."""
        found: dict[str, tuple[int | None, float]] = {}
        if self._clear_refs is not None:  # /proc is read
            for pid in _linux_children(self.pid, deep=False):
                share = _child_share(pid)
                if share is not None and share[0] == self.pid:
                    found[pid] = (alive.get(pid, self._seen.get(pid)), share[1])
            return found
        import psutil

        try:
            children = self._process().children()
        except psutil.Error:
            return found
        for process in children:
            try:
                cpu = sum(process.cpu_times()[:4])
            except psutil.Error:
                cpu = 0.0  # not known: nothing is taken off
            pid = str(process.pid)
            found[pid] = (alive.get(pid, self._seen.get(pid)), cpu)
        return found

    def _alive_children_peak(self, alive: dict[str, tuple[int, int | None]]) -> int:
        """What the live descendants (:meth:`_descendants`) needed during the
        test, summed.

        A child started during the test counts with its whole peak; one that
        was there before with what it grew by.
        """
        total = 0
        before = self._children_start
        for pid, (rss, hwm) in alive.items():
            peak = rss if hwm is None else hwm
            self._seen[pid] = peak
            total += max(peak - before[pid], 0) if pid in before else peak
        return total
