"""Skipping with a reason, except in CI where the same gap is a failure."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required() -> bool:
    """CI sets CALLSCRIBE_REQUIRE_SERVERS=1: everything a test may need must be there."""
    return os.environ.get("CALLSCRIBE_REQUIRE_SERVERS") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip, saying why; in CI fail instead."""
    if required():
        pytest.fail(f"{reason} (CALLSCRIBE_REQUIRE_SERVERS=1: CI must run this)", pytrace=False)
    pytest.skip(reason)
