"""Read what a written HTML report carries."""

from __future__ import annotations

import json
import re
from typing import Any


def page_data(html: str) -> dict[str, Any]:
    """The page's embedded JSON block, as its script reads it."""
    match = re.search(
        r'<script type="application/json" id="batchflow-data">(.*?)</script>', html, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data
