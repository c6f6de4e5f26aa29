"""The JSON API under /api: for scripts (bearer tokens) and the page's own script (session and CSRF).

Errors are JSON ``{"error": "..."}`` with their status, never a page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request
from flask_login import current_user

from . import deletion, dialogue, exports, listing, openapi
from .access import Permission, public, requires
from .models import utcnow
from .pages import find_call

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/calls")
@requires(Permission.READ)
def list_calls() -> Any:
    """The calls list: the page's filters, search and cursor; ``{"calls": [...], "next": cursor|null}``.

    ``updated_since`` (an ISO time) narrows it to calls that changed since:
    the list page polls with it for live status. ``as_of`` is the server's
    time of the answer, to ask from next time.
    """
    as_of = utcnow()
    try:
        filters, _ = listing.read_filters(request.args, strict=True)
        limit, _ = listing.read_limit(request.args.get("limit"), strict=True)
        before = listing.decode_cursor(request.args["before"]) if request.args.get("before") else None
    except listing.BadFilter as bad:
        abort(400, str(bad))
    page = listing.list_calls(filters, before=before, limit=limit)
    return jsonify(
        calls=[call.as_json() for call in page.calls],
        next=page.next,
        as_of=as_of.isoformat().replace("+00:00", "Z"),
    )


@bp.get("/calls/<call_sid>")
@requires(Permission.READ)
def call_detail(call_sid: str) -> Any:
    """One call with its recordings, transcripts, dialogue and speaker names."""
    return jsonify(exports.call_document(find_call(call_sid)))


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


@bp.delete("/calls/<call_sid>")
@requires(Permission.DELETE)
def delete_call(call_sid: str) -> Any:
    """Delete the call everywhere (Twilio, the engine, our files, our rows): 202, then the worker does it.

    Asking again while it is being deleted is a 202 too; once it is gone, a 404 that says so.
    """
    try:
        deletion.request_deletion(call_sid[:64], current_user.username)
    except deletion.NoSuchCall as missing:
        abort(404, str(missing))
    return jsonify(call_sid=call_sid, deleting=True), 202


@bp.get("/openapi.json")
@public
def openapi_document() -> Any:
    """The OpenAPI 3.1 description of the API: open to anyone, as it holds no call."""
    return jsonify(openapi.document())
