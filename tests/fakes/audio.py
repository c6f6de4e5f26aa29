"""Small WAV files such as Twilio serves: 8 kHz, 16-bit PCM."""

from __future__ import annotations

import io
import math
import struct
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


def tone(seconds: float, channels: int, frequency: float) -> bytes:
    """A sine tone of ``seconds`` as a WAV file: audio a browser can play, distinct bytes per frequency."""
    rate = 8000
    frames = bytearray()
    for i in range(int(rate * seconds)):
        sample = int(6000 * math.sin(2 * math.pi * frequency * i / rate))
        frames += struct.pack("<h", sample) * channels
    return wav(bytes(frames), channels=channels, rate=rate)
