"""Phone calls played through a running service: what Twilio and AssemblyAI will say about each."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tests.e2e.rows import outcomes, pipeline_state
from tests.e2e.service import Fakes
from tests.e2e.twilio_side import TwilioSide
from tests.fakes import make_sid


@dataclass(frozen=True)
class PlannedCall:
    """One call as Twilio and AssemblyAI will see it, and what the dashboard must show."""

    name: str
    caller: str
    channels: int
    source: str
    duration: int
    audio: bytes
    text: str
    utterances: list[dict[str, Any]]
    call_sid: str = field(default_factory=lambda: make_sid("CA"))
    recording_sid: str = field(default_factory=lambda: make_sid("RE"))

    @property
    def lines(self) -> list[str]:
        return [u["text"] for u in self.utterances]


def ring(twilio: TwilioSide, call: PlannedCall) -> None:
    """The call reaches the number: the voice webhook, then its ringing status."""
    twilio.incoming_call(call.call_sid, call.caller)
    twilio.call_status(call.call_sid, call.caller, "ringing")


def answer_and_record(twilio: TwilioSide, fakes: Fakes, call: PlannedCall) -> None:
    """The call is answered and ends; its recording is ready at Twilio, its result at AssemblyAI."""
    twilio.call_status(call.call_sid, call.caller, "in-progress")
    twilio.call_status(call.call_sid, call.caller, "completed", CallDuration=str(call.duration + 2))
    fakes.twilio.add_recording(
        call.recording_sid,
        call.audio,
        call.call_sid,
        channels=call.channels,
        duration=call.duration,
        source=call.source,
    )
    fakes.assemblyai.set_result_for_audio(call.audio, call.text, call.utterances)
    twilio.recording_completed(
        call.call_sid,
        call.recording_sid,
        channels=call.channels,
        source=call.source,
        duration=call.duration,
    )


def wait_transcribed(database: sa.Engine, calls: list[PlannedCall], timeout: float = 30.0) -> None:
    """Return once every call's recording has its stored transcript; fail saying where each one stopped."""
    sids = [call.recording_sid for call in calls]
    deadline = time.monotonic() + timeout
    ended: dict[str, str] = {}
    while time.monotonic() < deadline:
        ended = outcomes(database, sids)
        if len(ended) == len(sids):
            break
        time.sleep(0.05)
    if any(ended.get(sid) != "transcribed" for sid in sids):
        raise AssertionError(f"not transcribed within {timeout} s\n{pipeline_state(database)}")


def transcript_of(fakes: Fakes, call: PlannedCall) -> dict[str, Any]:
    """The transcript AssemblyAI made of the call's audio, as its API serves it: the times are its."""
    uploads = {u["upload_url"] for u in fakes.assemblyai.uploads if u["data"] == call.audio}
    for job in list(fakes.assemblyai.jobs.values()):
        if job.params.get("audio_url") in uploads:
            return fakes.assemblyai.transcript(job.id)
    raise AssertionError(f"AssemblyAI never transcribed the audio of the {call.name} call")
