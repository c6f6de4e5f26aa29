"""The JSON API under /api: for scripts (bearer tokens) and the page's own script (session and CSRF).

Errors are JSON ``{"error": "..."}`` with their status, never a page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request

from . import dialogue
from .access import Permission, requires
from .pages import find_call

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.put("/calls/<call_sid>/speakers")
@requires(Permission.EDIT)
def rename_speakers(call_sid: str) -> Any:
    """Name a call's speakers: ``{"A": "Dana", "B": "Sam"}``; an empty name restores the default."""
    names = request.get_json(silent=True)
    if not isinstance(names, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in names.items()
    ):
        abort(400, 'Send a JSON object of speaker labels and names, e.g. {"A": "Dana"}.')
    call = find_call(call_sid)
    try:
        speakers = dialogue.rename(call, names)
    except dialogue.NamingError as refused:
        return jsonify(error=str(refused)), 422
    return jsonify(call_sid=call.call_sid, speakers=speakers)
