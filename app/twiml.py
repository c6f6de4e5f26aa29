"""TwiML documents, as pure functions of their inputs.

Every document is built with twilio's ``VoiceResponse``: no string
concatenation, so caller-controlled text can never change the XML.
"""

from __future__ import annotations

from twilio.twiml.voice_response import Dial, VoiceResponse

RECORDING_NOTICE = "This call is recorded and transcribed."
# "failed" exists only with recording encryption; Twilio rejects it otherwise.
RECORDING_EVENTS = "completed absent"


def voicemail(*, greeting: str, max_seconds: int, recording_callback: str, after_url: str) -> str:
    """Inbound call, nobody to forward to: greet, then record the caller (mono)."""
    response = VoiceResponse()
    response.say(greeting)
    _record(response, max_seconds, recording_callback, after_url)
    return str(response)


def forward(*, to: str, recording_callback: str) -> str:
    """Inbound call with FORWARD_TO: connect it, one party per channel."""
    response = VoiceResponse()
    response.say(RECORDING_NOTICE)
    dial = Dial(
        record="record-from-answer-dual",
        recording_status_callback=recording_callback,
        recording_status_callback_method="POST",
        recording_status_callback_event=RECORDING_EVENTS,
    )
    dial.number(to)
    response.append(dial)
    return str(response)


def outbound(*, max_seconds: int, recording_callback: str, after_url: str) -> str:
    """An outbound call from /dial, once answered: tell the callee, record them."""
    response = VoiceResponse()
    response.say(f"{RECORDING_NOTICE} Please speak after the beep.")
    _record(response, max_seconds, recording_callback, after_url)
    return str(response)


def _record(response: VoiceResponse, max_seconds: int, recording_callback: str, after_url: str) -> None:
    response.record(
        max_length=max_seconds,
        play_beep=True,
        # Without an action Twilio fetches the same document again when the
        # recording ends, and the caller would hear the start in a loop.
        action=after_url,
        method="POST",
        recording_status_callback=recording_callback,
        recording_status_callback_method="POST",
        recording_status_callback_event=RECORDING_EVENTS,
    )


def goodbye() -> str:
    """After a recording: end the call instead of falling back to the start."""
    response = VoiceResponse()
    response.say("Thank you. Goodbye.")
    response.hangup()
    return str(response)
