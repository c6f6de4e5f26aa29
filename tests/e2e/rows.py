"""Reading the running service's database, for tests that drive it from outside."""

from __future__ import annotations

import sqlalchemy as sa


def outcomes(database: sa.Engine, recording_sids: list[str]) -> dict[str, str]:
    """Recordings that reached the end of the pipeline: "transcribed" (with its transcript) or "failed"."""
    statement = sa.text(
        "SELECT r.recording_sid, r.stage FROM recordings r"
        " LEFT JOIN transcripts t ON t.recording_id = r.id"
        " WHERE r.recording_sid IN :sids"
        " AND ((r.stage = 'transcribed' AND t.status = 'completed') OR r.stage = 'failed')"
    ).bindparams(sa.bindparam("sids", expanding=True))
    with database.connect() as connection:
        return {sid: stage for sid, stage in connection.execute(statement, {"sids": recording_sids})}


def pipeline_state(database: sa.Engine) -> str:
    """Every recording's and transcript's row, for a failure message."""
    with database.connect() as connection:
        recordings = connection.execute(
            sa.text(
                "SELECT recording_sid, status, stage, attempts, next_attempt_at, last_error FROM recordings"
            )
        ).all()
        transcripts = connection.execute(
            sa.text("SELECT recording_id, transcript_id, status, error FROM transcripts")
        ).all()
    return f"recordings: {[tuple(r) for r in recordings]}\ntranscripts: {[tuple(t) for t in transcripts]}"
