"""The settings as plain values: what an xdist worker gets from the controller."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from pytest_batchflow.settings import (
    BatchLine,
    RawValue,
    Settings,
    from_plain,
    parse_settings,
    to_plain,
)
from pytest_batchflow.validation import _BatchLineModel, _SettingsModel


def test_the_plain_values_have_the_fields_of_the_validating_models() -> None:
    assert {f.name for f in fields(Settings)} == set(_SettingsModel.model_fields)
    assert [f.name for f in fields(BatchLine)] == list(_BatchLineModel.model_fields)


def test_every_setting_survives_the_trip_to_a_worker(tmp_path: Path) -> None:
    listed = tmp_path / "quarantine.txt"
    listed.write_text("tests/test_a.py::test_a\n", encoding="utf-8")
    given = {
        "enabled": True,
        "select": "unit,db",
        "json_path": str(tmp_path / "result.json"),
        "html_path": "off",
        "junit_path": str(tmp_path / "junit.xml"),
        "history_path": str(tmp_path / "history.sqlite"),
        "missing_dependency": "skip",
        "reruns": "2",
        "reruns_delay": "0.5",
        "reruns_only": "Connection.*",
        "reruns_except": "AssertionError",
        "quarantine": f"{listed},auto:0.4",
        "probe": "3",
        "cov_source": "pkg,src",
        "cov_context": "test",
        "cov_fail_under": "80",
        "bench_compare": "last",
        "bench_fail": "median:10%",
        "bench_max_time": "0.2",
    }
    raw = {name: RawValue(value, "cli", "command line") for name, value in given.items()}
    lines = [
        "unit: paths=tests/unit,tests/api/test_*.py",
        'db: markers="db and not slow" after=unit',
    ]
    settings = parse_settings(raw, [*lines, "perf: kind=benchmark after=unit"], "pytest.ini")

    plain = to_plain(settings)

    # Builtins only: what execnet carries, and JSON can say the same.
    assert json.loads(json.dumps(plain)) == plain
    assert from_plain(plain) == settings


def test_a_worker_takes_the_settings_without_validating_them(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_modules="""
import sys

def test_worker_modules():
    # Neither the validation (pydantic) nor the results models are loaded;
    # pydantic itself may come from another plugin.
    assert "pytest_batchflow.orchestrator" in sys.modules
    assert "pytest_batchflow.validation" not in sys.modules
    assert "pytest_batchflow.results" not in sys.modules
"""
    )
    result = pytester.runpytest_subprocess("--batchflow", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_settings_module_imports_nothing_heavy() -> None:
    code = "import sys, pytest_batchflow.settings; print('pydantic' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("field", "written", "read"),
    [
        ("missing_dependency", "Skip", "skip"),
        ("missing_dependency", " ERROR ", "error"),
        ("cov_context", "Test", "test"),
    ],
)
def test_a_choice_is_read_in_any_case(tmp_path: Path, field: str, written: str, read: str) -> None:
    # BATCHFLOW_MISSING_DEPENDENCY=Skip was refused, where yes/no words take any case.
    raw = {
        "history_path": RawValue(str(tmp_path / "h.sqlite"), "default", "default"),
        "cov_source": RawValue("pkg", "cli", "command line"),
        field: RawValue(written, "env", "environment"),
    }
    assert getattr(parse_settings(raw, [], "pytest.ini"), field) == read


def test_a_batch_line_s_and_the_baseline_s_words_are_read_in_any_case(tmp_path: Path) -> None:
    raw = {
        "history_path": RawValue(str(tmp_path / "h.sqlite"), "default", "default"),
        "bench_compare": RawValue("Last", "env", "environment"),
    }
    lines = ["perf: kind=Benchmark", "db: mode=Serial on_upstream_failure=Run"]
    settings = parse_settings(raw, lines, "pytest.ini")
    assert settings.bench_compare == "last"
    perf, db = settings.batches
    assert (perf.kind, perf.mode, perf.cov) == ("benchmark", "exclusive", False)
    assert (db.mode, db.on_upstream_failure) == ("serial", "run")
