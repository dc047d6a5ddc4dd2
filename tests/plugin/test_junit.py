"""The JUnit XML file: Surefire's dialect, one testsuite per batch, valid whatever the text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from results_factory import FAILURE, attempt, batch, case, run

from pytest_batchflow.report.junit import MESSAGE_LIMIT, junit_xml, write_junit
from pytest_batchflow.results import (
    RunResult,
)

# The schema validator is a test extra; tox's noxdist environment has only hypothesis.
xmlschema = pytest.importorskip("xmlschema")
SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("data") / "junit.xsd")


def document(result: RunResult) -> ET.Element:
    """The XML of ``result``, checked against the schema."""
    data = junit_xml(result)
    SCHEMA.validate(data.decode("utf-8"))
    return ET.fromstring(data)


def find_case(root: ET.Element, name: str) -> ET.Element:
    (found,) = [element for element in root.iter("testcase") if element.get("name") == name]
    return found


def children(element: ET.Element) -> list[str]:
    return [child.tag for child in element if child.tag != "properties"]


def properties(element: ET.Element) -> dict[str, str]:
    found = element.find("properties")
    assert found is not None
    return {p.attrib["name"]: p.attrib["value"] for p in found.iter("property")}


# -- unit tests ----------------------------------------------------------------------


def test_the_document_is_utf8_xml_with_a_declaration() -> None:
    data = junit_xml(run([case(stdout="café ✓")]))
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert "café ✓".encode() in data


@pytest.mark.parametrize(
    ("nodeid", "classname", "name"),
    [
        ("tests/unit/test_a.py::TestX::test_y", "tests.unit.test_a.TestX", "test_y"),
        ("test_b.py::test_z", "test_b", "test_z"),
        ("test_c.py::TestOuter::TestInner::test_w", "test_c.TestOuter.TestInner", "test_w"),
        # Parameters keep their ``::``, ``/`` and ``.``, as in pytest's junitxml.
        ("t/test_d.py::test_p[a::b/c.py]", "t.test_d", "test_p[a::b/c.py]"),
    ],
)
def test_classname_and_name_follow_pytest_junitxml(nodeid: str, classname: str, name: str) -> None:
    root = document(run([case(nodeid)]))
    element = root.find("testsuite/testcase")
    assert element is not None
    assert (element.get("classname"), element.get("name")) == (classname, name)


def test_a_testcase_has_time_file_line_and_its_batch_and_worker() -> None:
    root = document(run([case(duration=1.23456, line=42)]))
    element = find_case(root, "test_x")
    assert element.get("time") == "1.235"
    assert element.get("file") == "tests/test_a.py"
    assert element.get("line") == "42"
    assert properties(element) == {"batch": "unit", "worker": "gw1", "outcome": "passed"}
    assert children(element) == []


def test_file_and_line_are_left_out_when_unknown() -> None:
    element = find_case(document(run([case(file=None, line=None)])), "test_x")
    assert "file" not in element.attrib
    assert "line" not in element.attrib


def test_one_testsuite_per_batch_in_plan_order_with_counts() -> None:
    tests = [
        case("test_db.py::test_a", "failed", batch="db", longrepr=FAILURE, start=1_700_000_050.0),
        case("test_unit.py::test_b", "passed", batch="unit", start=1_700_000_020.0),
        case("test_unit.py::test_c", "skipped", batch="unit", longrepr="no db"),
        case(
            "test_db.py::test_d",
            "error",
            batch="db",
            longrepr="E   OSError: refused",
            start=1_700_000_060.0,
        ),
        case("test_unit.py::test_e", "xfailed", batch="unit", start=1_700_000_030.0),
        case("test_unit.py::test_f", "flaky", batch="unit", attempts=[attempt()]),
    ]
    batches = [
        batch("unit", [t for t in tests if t.batch == "unit"], duration=3.5),
        batch("db", [t for t in tests if t.batch == "db"], duration=7.0),
        batch("empty", []),
    ]
    root = document(run(tests, batches=batches))
    assert root.tag == "testsuites"
    assert root.attrib == {
        "name": "batchflow",
        "tests": "6",
        "failures": "1",
        "errors": "1",
        "skipped": "2",
        "time": "100.000",
        "timestamp": "2023-11-14T22:13:20.000+00:00",
    }
    suites = root.findall("testsuite")
    # A batch without tests in this run has no suite.
    assert [suite.get("name") for suite in suites] == ["unit", "db"]
    unit, db = (suite.attrib for suite in suites)
    assert (unit["tests"], unit["failures"], unit["errors"], unit["skipped"]) == (
        "4",
        "0",
        "0",
        "2",
    )
    assert (db["tests"], db["failures"], db["errors"], db["skipped"]) == ("2", "1", "1", "0")
    assert (unit["time"], db["time"]) == ("3.500", "7.000")
    # A suite's timestamp is its first test's start: test_f's first attempt, at
    # 1_700_000_009, before test_b's start at 1_700_000_020.
    assert unit["timestamp"] == "2023-11-14T22:13:29.000+00:00"
    assert db["timestamp"] == "2023-11-14T22:14:10.000+00:00"
    assert {suite["hostname"] for suite in (unit, db)} == {"ci"}
    assert [t.get("name") for t in suites[0].iter("testcase")] == [
        "test_b",
        "test_c",
        "test_e",
        "test_f",
    ]
    assert properties(suites[1]) == {"kind": "test", "mode": "parallel", "status": "passed"}


def test_a_failure_carries_its_first_e_line_its_exception_type_and_the_whole_text() -> None:
    element = find_case(document(run([case(outcome="failed", longrepr=FAILURE)])), "test_x")
    assert children(element) == ["failure"]
    failure = element.find("failure")
    assert failure is not None
    assert failure.attrib == {"message": "AssertionError: sums are off", "type": "AssertionError"}
    assert failure.text == FAILURE


def test_without_an_e_line_the_message_is_the_last_line_and_at_most_1000_characters() -> None:
    longrepr = "collecting went wrong\n\n" + "x" * 5000 + "\n"
    element = find_case(document(run([case(outcome="error", longrepr=longrepr)])), "test_x")
    error = element.find("error")
    assert error is not None
    assert error.get("message") == "x" * MESSAGE_LIMIT
    assert error.get("type") == "error"
    assert error.text == longrepr


@pytest.mark.parametrize(
    ("outcome", "longrepr", "attributes"),
    [
        ("skipped", "needs a GPU", {"message": "needs a GPU"}),
        ("xfailed", None, {"message": "expected failure", "type": "pytest.xfail"}),
        (
            "quarantined",
            FAILURE,
            {
                "message": "quarantined: AssertionError: sums are off",
                "type": "batchflow.quarantined",
            },
        ),
    ],
)
def test_skipped_xfailed_and_quarantined_tests_are_skipped(
    outcome: str, longrepr: str | None, attributes: dict[str, str]
) -> None:
    root = document(run([case(outcome=outcome, longrepr=longrepr)]))
    element = find_case(root, "test_x")
    assert children(element) == ["skipped"]
    skipped = element.find("skipped")
    assert skipped is not None
    assert skipped.attrib == attributes
    assert (skipped.text or "") == (longrepr or "")
    assert properties(element)["outcome"] == outcome
    assert (root.get("failures"), root.get("skipped")) == ("0", "1")


@pytest.mark.parametrize("outcome", ["passed", "xpassed"])
def test_passing_tests_have_no_outcome_element(outcome: str) -> None:
    element = find_case(document(run([case(outcome=outcome)])), "test_x")
    assert children(element) == []


def test_another_plugin_s_outcome_word_is_an_error_so_it_is_not_lost() -> None:
    root = document(run([case(outcome="timeout")]))
    error = find_case(root, "test_x").find("error")
    assert error is not None
    assert error.attrib == {"message": "batchflow outcome 'timeout'", "type": "error"}
    assert root.get("errors") == "1"


def test_a_flaky_test_passes_with_a_flaky_element_per_earlier_attempt() -> None:
    attempts = [attempt("failed"), attempt("error", "E   RuntimeError: port in use")]
    root = document(run([case(outcome="flaky", attempts=attempts, stdout="last try\n")]))
    element = find_case(root, "test_x")
    assert children(element) == ["flakyFailure", "flakyError", "system-out"]
    first, second = element.find("flakyFailure"), element.find("flakyError")
    assert first is not None
    assert second is not None
    assert first.attrib == {"message": "AssertionError: sums are off", "type": "AssertionError"}
    assert first.findtext("stackTrace") == FAILURE
    assert second.attrib == {"message": "RuntimeError: port in use", "type": "RuntimeError"}
    assert second.findtext("stackTrace") == "E   RuntimeError: port in use"
    assert element.findtext("system-out") == "last try\n"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")


@pytest.mark.parametrize(("outcome", "tag"), [("failed", "failure"), ("error", "error")])
def test_a_test_failing_every_attempt_has_rerun_elements_after_its_outcome(
    outcome: str, tag: str
) -> None:
    attempts = [attempt("failed"), attempt("error", None)]
    root = document(run([case(outcome=outcome, longrepr=FAILURE, attempts=attempts)]))
    element = find_case(root, "test_x")
    assert children(element) == [tag, "rerunFailure", "rerunError"]
    rerun_error = element.find("rerunError")
    assert rerun_error is not None
    assert rerun_error.attrib == {"message": "error", "type": "error"}
    assert rerun_error.findtext("stackTrace") == ""


def test_output_and_log_go_to_system_out_and_err_only_when_not_empty() -> None:
    tests = [
        case("test_a.py::test_out", stdout="printed", log="WARNING  root:a.py:3 careful\n"),
        case("test_a.py::test_err", stderr="complained\n"),
        case("test_a.py::test_quiet"),
    ]
    root = document(run(tests))
    out = find_case(root, "test_out")
    assert children(out) == ["system-out"]
    assert out.findtext("system-out") == (
        "printed\n" + " Captured log ".center(80, "-") + "\nWARNING  root:a.py:3 careful\n"
    )
    err = find_case(root, "test_err")
    assert children(err) == ["system-err"]
    assert err.findtext("system-err") == "complained\n"
    assert children(find_case(root, "test_quiet")) == []


def test_hostile_text_is_escaped_and_the_document_stays_valid() -> None:
    hostile = (
        '\x00\x1b[31m<script>alert(1)</script> \ud800 \ufffe ]]> "><img src=x onerror=alert(1)>'
    )
    longrepr = f"E   AssertionError: {hostile}\n\ntest_a.py:3: AssertionError"
    tests = [
        case(
            "test_a.py::test_x[\x07]",
            "failed",
            longrepr=longrepr,
            stdout=hostile,
            stderr=hostile,
            log=hostile,
            batch="b<&>\x01",
            attempts=[attempt("failed", longrepr)],
        )
    ]
    root = document(run(tests))
    element = root.find("testsuite/testcase")
    assert element is not None
    visible = (
        '\\x00\\x1b[31m<script>alert(1)</script> \\ud800 \\ufffe ]]> "><img src=x onerror=alert(1)>'
    )
    assert element.get("name") == "test_x[\\x07]"
    assert properties(element)["batch"] == "b<&>\\x01"
    assert element.findtext("system-err") == visible
    assert element.findtext("system-out", "").startswith(visible)
    failure = element.find("failure")
    assert failure is not None
    assert failure.get("message") == f"AssertionError: {visible}"
    assert element.findtext("rerunFailure/stackTrace") == failure.text
    assert "\\ud800" in (failure.text or "")


def test_the_schema_rejects_a_flaky_attempt_beside_a_failure() -> None:
    """The schema is strict enough to catch a wrong mix of outcome elements."""
    bad = (
        '<testsuites tests="1" failures="1" errors="0" skipped="0">'
        '<testsuite name="unit" tests="1" failures="1" errors="0" skipped="0">'
        '<testcase classname="t" name="x" time="0.1"><failure message="m" type="T"/>'
        '<flakyFailure type="T"><stackTrace/></flakyFailure></testcase></testsuite></testsuites>'
    )
    assert not SCHEMA.is_valid(bad)


def test_write_junit_creates_folders_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deep" / "junit.xml"
    result = run([case()])
    write_junit(result, path)
    assert path.read_bytes() == junit_xml(result)
    assert [p.name for p in path.parent.iterdir()] == ["junit.xml"]


def test_write_junit_raises_oserror_and_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").mkdir()  # a directory cannot be replaced by the file
    with pytest.raises(OSError, match=r"junit\.xml"):
        write_junit(run([case()]), tmp_path / "junit.xml")
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


# -- end to end ----------------------------------------------------------------------

SUITE = {
    "test_shop": """
        import pathlib
        import pytest

        def attempt(name):
            path = pathlib.Path(__file__).with_name(f".attempts-{name}")
            count = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(count))
            return count

        def test_flaky():
            print("trying")
            assert attempt("flaky") % 2 == 0, "odd attempt"

        def test_broken():
            assert 0, "always"

        def test_later():
            pytest.skip("not today")

        @pytest.mark.xfail(reason="known bug")
        def test_known_bug():
            assert 0
    """,
    "test_api": """
        class TestOrders:
            def test_list(self):
                pass
    """,
}
#: The suite's outcomes as pytest's summary line counts them.
OUTCOMES = {"passed": 1, "failed": 1, "skipped": 1, "xfailed": 1, "rerun": 2, "flaky": 1}
INI = (
    "[pytest]\nbatchflow_batches =\n"
    "    api: paths=test_api.py\n"
    "    shop: paths=test_shop.py after=api\n"
)


def test_a_run_writes_junit_with_batches_reruns_and_locations(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**SUITE)
    result = pytester.runpytest(
        "--batchflow", "--batchflow-junit=out/junit.xml", "--batchflow-reruns=1"
    )
    assert result.parseoutcomes() == OUTCOMES
    result.stdout.fnmatch_lines([f"batchflow: JUnit XML: {pytester.path}/out/junit.xml"])
    data = (pytester.path / "out/junit.xml").read_text(encoding="utf-8")
    SCHEMA.validate(data)
    root = ET.fromstring(data)
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "1", "2")
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert list(suites) == ["api", "shop"]
    (listing,) = suites["api"].iter("testcase")
    assert listing.attrib["classname"] == "test_api.TestOrders"
    assert (listing.get("file"), listing.get("line")) == ("test_api.py", "2")
    assert properties(listing)["batch"] == "api"

    shop = {element.get("name"): element for element in suites["shop"].iter("testcase")}
    assert list(shop) == ["test_flaky", "test_broken", "test_later", "test_known_bug"]
    flaky = shop["test_flaky"]
    assert children(flaky) == ["flakyFailure", "system-out"]
    flaky_failure = flaky.find("flakyFailure")
    assert flaky_failure is not None
    assert flaky_failure.get("message") == "AssertionError: odd attempt"
    assert "odd attempt" in flaky_failure.findtext("stackTrace", "")
    assert properties(flaky) == {"batch": "shop", "worker": "main", "outcome": "flaky"}
    assert (flaky.get("file"), flaky.get("line")) == ("test_shop.py", "10")

    broken = shop["test_broken"]
    assert children(broken) == ["failure", "rerunFailure"]
    failure = broken.find("failure")
    assert failure is not None
    assert failure.attrib == {"message": "AssertionError: always", "type": "AssertionError"}
    assert "assert 0" in (failure.text or "")
    assert "AssertionError: always" in broken.findtext("rerunFailure/stackTrace", "")

    skipped = shop["test_later"].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "not today"
    xfailed = shop["test_known_bug"].find("skipped")
    assert xfailed is not None
    assert xfailed.get("type") == "pytest.xfail"


def test_without_the_option_no_junit_is_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a(): pass")
    result = pytester.runpytest("--batchflow")
    result.assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("junit.xml"))
    assert "JUnit XML" not in result.stdout.str()


def _pytest_junit(path: Path) -> list[tuple[str, str, list[str]]]:
    root = ET.parse(path).getroot()
    return [
        (str(case.get("classname")), str(case.get("name")), [child.tag for child in case])
        for case in root.iter("testcase")
    ]


def test_pytest_s_own_junitxml_is_unchanged_beside_ours(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**SUITE)
    both = pytester.runpytest(
        "--batchflow",
        "--batchflow-reruns=1",
        "--batchflow-junit=out/junit.xml",
        "--junitxml=pytest-both.xml",
    )
    assert both.parseoutcomes() == OUTCOMES
    alone = pytester.runpytest("--batchflow", "--batchflow-reruns=1", "--junitxml=pytest-alone.xml")
    assert alone.parseoutcomes() == OUTCOMES
    with_ours = _pytest_junit(pytester.path / "pytest-both.xml")
    assert sorted(with_ours) == sorted(_pytest_junit(pytester.path / "pytest-alone.xml"))
    names = [name for _, name, _ in with_ours]
    assert {"test_list", "test_flaky", "test_broken", "test_later", "test_known_bug"} <= set(names)
    assert (pytester.path / "out/junit.xml").exists()


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist"])
def test_pytest_s_junitxml_has_one_testcase_a_test_its_last_attempt(
    pytester: pytest.Pytester, workers: int
) -> None:
    """An attempt batchflow reruns left pytest's junitxml a <testcase> with no
    outcome, which JUnit readers count as a pass: a test failing every attempt
    read as passed once and failed once."""
    if workers:
        pytest.importorskip("xdist")
    pytester.makepyfile(
        **SUITE,
        test_teardown="""
        import pytest

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown always")

        def test_cleanup(broken_teardown):
            pass
        """,
    )
    if workers:  # and a worker that dies: the test's report has no name
        pytester.makepyfile(
            test_worker="""
            import os, pathlib

            def test_crash_once():
                seen = pathlib.Path(__file__).with_name(".crashed")
                if not seen.exists():
                    seen.write_text("")
                    os._exit(1)
            """
        )
    args = ["--batchflow", "--batchflow-reruns=1", "--junitxml=pytest.xml", "-p", "no:randomly"]
    result = pytester.runpytest_subprocess(*args, *(["-n", str(workers)] if workers else []))
    assert result.parseoutcomes()["rerun"] == 3 + bool(workers)
    cases = sorted(_pytest_junit(pytester.path / "pytest.xml"))
    assert cases == [
        ("test_api.TestOrders", "test_list", []),
        ("test_shop", "test_broken", ["failure"]),
        ("test_shop", "test_flaky", []),
        ("test_shop", "test_known_bug", ["skipped"]),
        ("test_shop", "test_later", ["skipped"]),
        ("test_teardown", "test_cleanup", ["error"]),
        *([("test_worker", "test_crash_once", [])] if workers else []),
    ]
    # The counts too are pytest's for the attempts that stand: a run without
    # batchflow in which test_flaky passes at once.
    (pytester.path / ".attempts-flaky").write_text("1")
    pytester.runpytest_subprocess("--junitxml=plain.xml", "-p", "no:randomly")
    assert cases == sorted(_pytest_junit(pytester.path / "plain.xml"))
    assert _counts(pytester.path / "pytest.xml") == _counts(pytester.path / "plain.xml")


def test_pytest_s_junitxml_has_no_testcase_for_a_release_item_s_failure(
    pytester: pytest.Pytester,
) -> None:
    """A release item's failure (a module's finalizer) is reported under its
    own node id and moved to the test before it on the way: pytest's junitxml
    writes it for that test, and no nameless <testcase> for the release item."""
    pytest.importorskip("xdist")
    pytester.makepyfile(
        # test_later waits for test_between, which waits for test_last: the
        # module's fixture ends in the release item after test_last.
        test_late="""
        import pytest

        @pytest.fixture(scope="module")
        def resource():
            yield
            raise RuntimeError("closing late")

        def test_last(resource):
            pass

        @pytest.mark.depends_on("test_z.py::test_between")
        def test_later(resource):
            pass
        """,
        test_z="""
        import pytest

        @pytest.mark.depends_on("test_late.py::test_last")
        def test_between():
            pass
        """,
    )
    result = pytester.runpytest_subprocess(
        "--batchflow", "-n", "1", "--junitxml=pytest.xml", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=3, errors=2)
    assert sorted(_pytest_junit(pytester.path / "pytest.xml")) == [
        ("test_late", "test_last", []),
        ("test_late", "test_last", ["error"]),
        ("test_late", "test_later", ["error"]),
        ("test_z", "test_between", []),
    ]


def _counts(path: Path) -> list[str | None]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return [suite.get(name) for name in ("tests", "failures", "errors", "skipped")]


def test_hostile_output_and_failure_text_give_valid_junit(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_hostile=r"""
        import sys

        def test_hostile():
            print("\x00\x1b[31m<script>alert(1)</script> \ud800 \\ud800")
            sys.stderr.write("bell\x07 \ufffe\n")
            assert 0, ']]> "><img src=x onerror=alert(1)> \x01'
        """
    )
    result = pytester.runpytest("--batchflow", "--batchflow-junit=junit.xml")
    result.assert_outcomes(failed=1)
    data = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    SCHEMA.validate(data)
    element = ET.fromstring(data).find("testsuite/testcase")
    assert element is not None
    assert element.findtext("system-out", "").startswith("\\x00\\x1b[31m<script>alert(1)</script> ")
    assert element.findtext("system-err") == "bell\\x07 \\ufffe\n"
    failure = element.find("failure")
    assert failure is not None
    assert failure.get("message") == 'AssertionError: ]]> "><img src=x onerror=alert(1)> \\x01'
