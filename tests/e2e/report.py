"""What an end-to-end run leaves for the terminal: the logs of running services, the timings."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.e2e.service import Service

RUNNING: list[Service] = []
TIMINGS: list[dict[str, Any]] = []
TIMINGS_FILE_VARIABLE = "CALLSCRIBE_E2E_TIMINGS"


def record_timings(entry: dict[str, Any]) -> None:
    """Keep the figures for the summary, print them, and append them to $CALLSCRIBE_E2E_TIMINGS."""
    TIMINGS.append(entry)
    print(f"e2e timings: {json.dumps(entry)}")
    path = os.environ.get(TIMINGS_FILE_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
