"""JUnit XML rendered from the results model, in Maven Surefire's dialect.

One ``<testsuite>`` per batch with tests (plan order), one ``<testcase>`` per
test, in result order. A
testcase's ``classname`` and ``name`` are made from its node id the way
pytest's ``--junitxml`` makes them, so the two files line up in a CI's
test history. Each testcase carries the properties ``batch``, ``worker`` and
``outcome`` (batchflow's word for it: flaky and quarantined are lost in the
JUnit vocabulary otherwise).

The final outcome decides the testcase's first child:

=============  ==============================================================
passed         none (xpassed, and flaky: failed, then passed on a rerun, too)
failed         ``<failure>``
error          ``<error>``
skipped        ``<skipped>`` with the reason as ``message``
xfailed        ``<skipped type="pytest.xfail">``
quarantined    ``<skipped type="batchflow.quarantined" message="quarantined:
               ...">``: it does not fail the run, so it must not fail a CI's
               test report either; the failure text is the element's text
               (where CIs show a skip's details), not in ``<system-out>``,
               which stays the test's own output
=============  ==============================================================

Any other word (another plugin's) becomes an ``<error>`` so that it is not
lost. What pytest could not collect, or skipped while collecting (a
module-level ``pytest.skip``), comes last, in a ``<testsuite>`` named
``pytest collection``: a testcase per file or class, named as pytest's
``--junitxml`` names it, with an ``<error>`` (the collection error's text) or
a ``<skipped type="pytest.skip">`` (the reason as ``message``).

Earlier attempts (each failed and was rerun) follow, oldest first, in
Surefire's convention: a test that passed in the end gets a
``<flakyFailure>`` (``<flakyError>`` for an attempt that errored) per attempt,
any other a ``<rerunFailure>`` (``<rerunError>``); each holds the attempt's
failure text in ``<stackTrace>``. The model keeps no output per attempt, so
those elements have no ``<system-out>``. ``<system-out>`` is the test's
stdout followed by its captured log under a ``Captured log`` rule, as pytest
writes it; ``<system-err>`` its stderr; each only when not empty.

A ``message`` is the failure's first ``E`` line (pytest's), else its last
line, at most 1000 characters; a ``type`` is the exception's name when the
failure text says it. Text that XML 1.0 cannot hold (control characters but
tab, newline and carriage return, lone surrogates, U+FFFE and U+FFFF) is
written as a visible ``\\xNN`` / ``\\uNNNN`` escape: the file always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..files import write_atomically
from ..results import (
    AttemptResult,
    BatchResult,
    CollectionProblem,
    RunResult,
    TestResult,
    collection_error_line,
    error_line,
)

__all__ = ["COLLECTION_SUITE", "MESSAGE_LIMIT", "junit_xml", "visible", "write_junit"]

#: The testsuite of what pytest could not collect or skipped while collecting.
COLLECTION_SUITE = "pytest collection"
#: Characters of a ``message`` attribute; the element's text keeps all of it.
MESSAGE_LIMIT = 1000
_PASSING = frozenset({"passed", "xpassed", "flaky"})
_ILLEGAL_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: The last line of pytest's long traceback: ``path:line: ExceptionName``.
_CRASH_LINE = re.compile(r"^\S.*:\d+: ([A-Za-z_][\w.]*)$")
#: An ``E`` line naming the exception: ``ValueError: bad`` or ``KeyError``.
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Failed|Interrupt))\b")
_LOG_RULE = " Captured log ".center(80, "-")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with what XML 1.0 cannot hold written as a visible escape.

    What is left is also safe to encode as UTF-8 and to print: no lone surrogates.
    """
    return _ILLEGAL_XML.sub(_escape, text)


def _seconds(value: float) -> str:
    # Surefire's time is a plain decimal, never negative or in exponent form.
    return f"{max(value, 0.0):.3f}"


def _timestamp(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, tz=timezone.utc).isoformat(timespec="milliseconds")


def _classname_and_name(nodeid: str) -> tuple[str, str]:
    """``tests/a/test_b.py::TestC::test_d[x]`` -> ``tests.a.test_b.TestC``, ``test_d[x]``.

    As pytest's junitxml: parameters (which may hold ``::``) stay in the name.
    """
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _message(longrepr: str | None, default: str) -> str:
    return (error_line(longrepr) if longrepr and longrepr.strip() else default)[:MESSAGE_LIMIT]


def _exception_type(longrepr: str | None, default: str) -> str:
    lines = [line.rstrip() for line in (longrepr or "").splitlines() if line.strip()]
    if lines and (crash := _CRASH_LINE.match(lines[-1])):
        return crash.group(1)
    for line in lines:
        if line.startswith("E ") and (named := _EXCEPTION_LINE.match(line[1:].strip())):
            return named.group(1)
    return default


@dataclass(frozen=True)
class _Verdict:
    """What a test's final outcome becomes: the child element and its attributes."""

    tag: str | None
    message: str = ""
    type: str | None = None
    text: str = ""


def _verdict(test: TestResult) -> _Verdict:
    outcome, longrepr = test.outcome, test.longrepr
    if outcome in _PASSING:
        return _Verdict(None)
    if outcome == "failed":
        return _Verdict(
            "failure",
            _message(longrepr, "failed"),
            _exception_type(longrepr, "failure"),
            longrepr or "",
        )
    if outcome == "skipped":
        return _Verdict("skipped", _message(longrepr, "skipped"), None, longrepr or "")
    if outcome == "xfailed":
        return _Verdict(
            "skipped", _message(longrepr, "expected failure"), "pytest.xfail", longrepr or ""
        )
    if outcome == "quarantined":
        message = f"quarantined: {_message(longrepr, 'failed')}"[:MESSAGE_LIMIT]
        return _Verdict("skipped", message, "batchflow.quarantined", longrepr or "")
    default = "error" if outcome == "error" else f"batchflow outcome {outcome!r}"
    return _Verdict(
        "error", _message(longrepr, default), _exception_type(longrepr, "error"), longrepr or ""
    )


def _collection_verdict(problem: CollectionProblem) -> _Verdict:
    if problem.outcome == "skipped":
        return _Verdict("skipped", problem.longrepr[:MESSAGE_LIMIT], "pytest.skip")
    message = collection_error_line(problem)[:MESSAGE_LIMIT]
    return _Verdict("error", message, _exception_type(problem.longrepr, "error"), problem.longrepr)


def _verdict_element(testcase: ET.Element, verdict: _Verdict) -> None:
    if verdict.tag is not None:
        kind = {} if verdict.type is None else {"type": verdict.type}
        _element(testcase, verdict.tag, verdict.text, message=verdict.message, **kind)


def _element(parent: ET.Element, tag: str, text: str = "", **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: visible(v) for k, v in attributes.items()})
    if text:
        element.text = visible(text)
    return element


def _properties(parent: ET.Element, values: Iterable[tuple[str, str]]) -> None:
    properties = ET.SubElement(parent, "properties")
    for name, value in values:
        _element(properties, "property", name=name, value=value)


def _attempt(parent: ET.Element, attempt: AttemptResult, passed_in_the_end: bool) -> None:
    word = "Error" if attempt.outcome == "error" else "Failure"
    tag = f"{'flaky' if passed_in_the_end else 'rerun'}{word}"
    element = _element(
        parent,
        tag,
        message=_message(attempt.longrepr, attempt.outcome),
        type=_exception_type(attempt.longrepr, attempt.outcome),
    )
    _element(element, "stackTrace", attempt.longrepr or "")


def _system_out(test: TestResult) -> str:
    if not test.log:
        return test.stdout
    separator = "\n" if test.stdout and not test.stdout.endswith("\n") else ""
    return f"{test.stdout}{separator}{_LOG_RULE}\n{test.log}"


def _testcase(parent: ET.Element, test: TestResult, verdict: _Verdict) -> None:
    classname, name = _classname_and_name(test.nodeid)
    attributes = {"classname": classname, "name": name, "time": _seconds(test.duration)}
    if test.file is not None:
        attributes["file"] = test.file
    if test.line is not None:
        attributes["line"] = str(test.line)
    testcase = _element(parent, "testcase", **attributes)
    _properties(
        testcase, [("batch", test.batch), ("worker", test.worker), ("outcome", test.outcome)]
    )
    _verdict_element(testcase, verdict)
    for attempt in test.attempts:
        _attempt(testcase, attempt, passed_in_the_end=verdict.tag is None)
    if system_out := _system_out(test):
        _element(testcase, "system-out", system_out)
    if test.stderr:
        _element(testcase, "system-err", test.stderr)


def _counts(verdicts: Iterable[_Verdict]) -> dict[str, str]:
    tags = Counter(verdict.tag for verdict in verdicts)
    return {
        "tests": str(tags.total()),
        "failures": str(tags["failure"]),
        "errors": str(tags["error"]),
        "skipped": str(tags["skipped"]),
    }


def _by_batch(result: RunResult) -> list[tuple[str, BatchResult | None, list[TestResult]]]:
    """Batches in plan order with their tests in result order; unknown batches last.

    A batch without a test result (one with no tests here) has no suite.
    """
    tests: dict[str, list[TestResult]] = {batch.name: [] for batch in result.batches}
    for test in result.tests:
        tests.setdefault(test.batch, []).append(test)
    known = {batch.name: batch for batch in result.batches}
    return [(name, known.get(name), found) for name, found in tests.items() if found]


def junit_xml(result: RunResult) -> bytes:
    """The JUnit XML document of a run, UTF-8 with an XML declaration."""
    root = ET.Element("testsuites", name="batchflow")
    everything: list[_Verdict] = []
    for name, batch, tests in _by_batch(result):
        verdicts = [_verdict(test) for test in tests]
        everything += verdicts
        started = min(test.first_start for test in tests)
        if batch is not None:
            duration = batch.duration
        else:
            duration = max(test.stop for test in tests) - started
        suite = _element(
            root,
            "testsuite",
            name=name,
            **_counts(verdicts),
            time=_seconds(duration),
            timestamp=_timestamp(started),
            hostname=result.environment.hostname,
        )
        if batch is not None:
            _properties(
                suite, [("kind", batch.kind), ("mode", batch.mode), ("status", batch.status)]
            )
        for test, verdict in zip(tests, verdicts, strict=True):
            _testcase(suite, test, verdict)
    if result.collection:
        verdicts = [_collection_verdict(problem) for problem in result.collection]
        everything += verdicts
        suite = _element(
            root,
            "testsuite",
            name=COLLECTION_SUITE,
            **_counts(verdicts),
            time=_seconds(0.0),
            timestamp=_timestamp(result.started),
            hostname=result.environment.hostname,
        )
        for problem, verdict in zip(result.collection, verdicts, strict=True):
            classname, name = _classname_and_name(problem.nodeid)
            testcase = _element(suite, "testcase", classname=classname, name=name, time="0.000")
            _verdict_element(testcase, verdict)
    root.attrib.update(_counts(everything))
    root.set("time", _seconds(result.duration))
    root.set("timestamp", _timestamp(result.started))
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def write_junit(result: RunResult, path: Path) -> None:
    """Write the JUnit XML atomically: a reader never sees half a file. Raises OSError."""
    write_atomically(path, junit_xml(result))
