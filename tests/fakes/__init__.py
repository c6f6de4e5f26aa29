"""Fake Twilio and AssemblyAI HTTP servers for callscribe's tests.

They speak the providers' real wire protocols on 127.0.0.1, so tests fake
the providers only at the HTTP boundary (also across processes, e.g. a
gunicorn-run service pointed at `fake.base_url`).
"""

from .assemblyai_api import FakeAssemblyAI, TranscriptJob
from .http import FakeHTTPServer, Headers, RecordedRequest
from .openapi import (
    component_validator,
    spec_path,
    transcript_params_errors,
    transcript_params_validator,
    validate_transcript_params,
)
from .twilio_api import FakeTwilio, make_sid

__all__ = [
    "FakeAssemblyAI",
    "FakeHTTPServer",
    "FakeTwilio",
    "Headers",
    "RecordedRequest",
    "TranscriptJob",
    "component_validator",
    "make_sid",
    "spec_path",
    "transcript_params_errors",
    "transcript_params_validator",
    "validate_transcript_params",
]
