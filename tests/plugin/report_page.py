"""Read what a written HTML report carries, and open it in a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest


def page_data(html: str) -> dict[str, Any]:
    """The page's embedded JSON block, as its script reads it."""
    match = re.search(
        r'<script type="application/json" id="batchflow-data">(.*?)</script>', html, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def headless_chromium(scratch: Path, browser_log: bool = False) -> Any:
    """Headless Chromium driven by selenium; skips the test where one is missing.

    An explicit driver path keeps selenium-manager from fetching anything.
    Chromium's temporary files go to ``scratch``: it leaves its singleton
    socket's ``org.chromium.Chromium.*`` folder behind, which would pile up in /tmp.
    """
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver import Chrome, ChromeOptions
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    chromedriver = shutil.which("chromedriver")
    if chromedriver is None:
        pytest.skip("chromedriver is not installed (apt-get install chromium-driver)")
    options = ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.binary_location = chromium
    if browser_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver, env={**os.environ, "TMPDIR": str(scratch)})
    return Chrome(options=options, service=service)
