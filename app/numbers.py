"""Whole numbers as text from outside: form fields, query parameters, path segments.

``str.isdigit()`` and ``int()`` both accept more than ASCII digits, and not
the same more: ``"²".isdigit()`` is true but ``int("²")`` fails, while
``int("٣")`` is 3. Databases refuse numbers beyond their integers. So every
number a request carries is read here, and only here: ASCII digits, within
a stated range, or nothing.
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter, ValidationError

# The id columns are INTEGER: 32 bits on PostgreSQL, the narrower of the two.
MAX_ROW_ID = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,18}")


def whole_number(text: str | None, *, low: int = 0, high: int) -> int | None:
    """The number ``text`` spells in ASCII digits, if it lies in [low, high]; else None.

    No sign, no spaces, no other script's digits; the length is capped
    before ``int()`` ever sees the text.
    """
    if text is None or not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if low <= number <= high else None


def row_id(text: str | None) -> int | None:
    """A row's id as a URL or query parameter names it, or None when no row can have it."""
    return whole_number(text, low=1, high=MAX_ROW_ID)


class RowIdConverter(BaseConverter):
    """``<row_id:name>`` in a route: a path naming an id no row can have is a 404, never a 500."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        number = row_id(value)
        if number is None:
            raise ValidationError()
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))
