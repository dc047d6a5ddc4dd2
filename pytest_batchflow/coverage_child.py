"""coverage.py's reports at the end of a run, in a child process of batchflow's.

Run as a script (``python coverage_child.py ...``, see
:func:`pytest_batchflow.coverage_report.start_child`), so that it imports
only coverage.py and starts in about 60 ms, not as a module of the package.
Arguments: the parent's ``sys.path`` (JSON), the run directory, the combined
data file, the HTML directory, the XML file and the JSON file. It reads
coverage.py's configuration as the parent would (same working directory,
environment and import path: a coverage.py plugin may live where pytest's
``pythonpath`` points) and prints two JSON lines: after the JSON report (with
the configuration's ``fail_under``), and at the end; each says what failed and
which warnings coverage.py gave.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any


def tell(failed: dict[str, Any], caught: list[warnings.WarningMessage], **more: object) -> None:
    said = [str(warning.message) for warning in caught]
    print(json.dumps({"failed": failed, "warnings": said, **more}), flush=True)


def problem(error: Exception) -> dict[str, Any]:
    from coverage.exceptions import CoverageException

    return {
        "message": f"{type(error).__name__}: {error}",
        "coverage": isinstance(error, CoverageException),
        "text": str(error),
    }


def main(argv: list[str]) -> None:
    import coverage

    path, rundir, data_file, html_dir, xml_file, json_file = argv
    # After coverage.py's own import: a test folder on pytest's path cannot shadow it.
    sys.path.extend(entry for entry in json.loads(path) if entry not in sys.path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cov = coverage.Coverage(data_file=data_file, config_file=True)
        try:
            cov.combine([rundir], keep=False)
            cov.save()
            keep_open = getattr(cov.get_data(), "keep_db_open", None)
            if keep_open is None:
                cov.json_report(outfile=json_file, show_contexts=True)
            else:
                with keep_open():  # one connection for the report's many queries
                    cov.json_report(outfile=json_file, show_contexts=True)
        except Exception as error:
            tell({"json": problem(error)}, caught)
            return
        # The configuration's [report] fail_under: the total's gate when the
        # run names none (0: none).
        fail_under = cov.get_option("report:fail_under")
        tell({}, caught, fail_under=fail_under if isinstance(fail_under, int | float) else 0)
        del caught[:]
        failed: dict[str, Any] = {}
        try:
            cov.html_report(directory=html_dir, show_contexts=True)
        except Exception as error:
            failed["html"] = problem(error)
        try:
            cov.xml_report(outfile=xml_file)
        except Exception as error:
            failed["xml"] = problem(error)
        tell(failed, caught)


if __name__ == "__main__":
    # Python put this file's folder (the package's) first on the path: its
    # modules must not stand in for others (a ``serial`` for pyserial, say).
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    main(sys.argv[1:])
