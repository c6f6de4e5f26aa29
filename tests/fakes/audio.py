"""Small WAV files such as Twilio serves: 8 kHz, 16-bit PCM."""

from __future__ import annotations

import io
import wave


def wav(frames: bytes, *, channels: int = 1, rate: int = 8000) -> bytes:
    """Wrap raw 16-bit PCM frames (interleaved when there are two channels) in a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def channel_count(data: bytes) -> int:
    """How many channels a WAV file has (``wave.Error`` if it is no WAV)."""
    with wave.open(io.BytesIO(data)) as parsed:
        return parsed.getnchannels()
