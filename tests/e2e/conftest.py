"""Show the service's logs next to a failure, and the measured timings at the end."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest

from tests.e2e import report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    test_report = yield
    if test_report.failed:
        for service in report.RUNNING:
            test_report.sections.append((f"callscribe logs ({service.folder.name})", service.logs()))
    return test_report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if report.TIMINGS:
        terminalreporter.section("end-to-end timings (recording callback to stored transcript)")
        for entry in report.TIMINGS:
            terminalreporter.write_line(json.dumps(entry))
