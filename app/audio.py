"""What audio a local file holds, told from its header before anything is uploaded.

A transcription engine refuses a file it cannot decode only after the upload,
minutes later and in words of its own. So a file is judged here first, by its
content for the format its extension names: a PNG or an MP3 renamed .wav is
refused, not sent. mutagen reads WAV, MP3, M4A, OGG and FLAC headers; WebM,
which mutagen does not read, is read by the few lines of EBML at the end.
Only headers are read: a recording can be hundreds of megabytes.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mutagen.flac import FLAC
from mutagen.mp3 import MPEGInfo
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WaveStreamInfo

ACCEPTED = ("WAV", "MP3", "M4A", "OGG", "FLAC", "WebM")
EXTENSIONS = {
    ".wav": "WAV",
    ".mp3": "MP3",
    ".m4a": "M4A",
    ".ogg": "OGG",
    ".oga": "OGG",
    ".opus": "OGG",
    ".flac": "FLAC",
    ".webm": "WebM",
}
CONTENT_TYPES = {
    "WAV": "audio/wav",
    "MP3": "audio/mpeg",
    "M4A": "audio/mp4",
    "OGG": "audio/ogg",
    "FLAC": "audio/flac",
    "WebM": "audio/webm",
}
# The start of a file that the checks here look at. WebM's tracks come in
# its first few hundred bytes; the rest is margin.
HEAD_BYTES = 64 * 1024


class NotAudio(ValueError):
    """The file cannot be transcribed; str() is one clear sentence for a person, naming the file."""


class _Unreadable(Exception):
    """The content is not the format its extension names."""


class _NoAudio(Exception):
    """The content is the format, but holds no sound to transcribe."""


@dataclass(frozen=True)
class AudioFile:
    format: str  # one of ACCEPTED
    content_type: str
    channels: int | None  # None when the container does not say (then callers assume 1)
    duration: float | None  # seconds, when known
    size: int  # bytes


def probe(path: str | os.PathLike[str], name: str | None = None) -> AudioFile:
    """What audio the file at ``path`` holds, or NotAudio saying why it cannot be transcribed.

    ``name`` is the name to judge the extension by and to show in messages
    (an uploaded file's original name); it defaults to the path's name. A
    path that does not exist or cannot be read is the OSError of open().
    """
    shown = name if name is not None else os.path.basename(os.fspath(path))
    kind = EXTENSIONS.get(os.path.splitext(shown)[1].lower())
    if kind is None:
        raise NotAudio(f"{shown}: not an audio file this service accepts ({_listed(ACCEPTED)}).")
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise NotAudio(f"{shown} is empty.")
        head = file.read(HEAD_BYTES)
        file.seek(0)
        try:
            channels, duration = _READERS[kind](file, head, size)
        except _NoAudio:
            raise NotAudio(f"{shown} holds no audio.") from None
        except OSError:
            raise  # the disk's failure, not the content's
        except Exception as error:
            # The readers parse bytes from anyone: whatever they raise on
            # them means the file is not what its extension says.
            raise NotAudio(f"{shown} is not {kind} audio (it could not be read as {kind}).") from error
    return AudioFile(
        format=kind,
        content_type=CONTENT_TYPES[kind],
        channels=channels or None,
        # 0 or nothing is how the formats say "not known" (a streamed FLAC, a live WebM).
        duration=duration if duration and math.isfinite(duration) and duration > 0 else None,
        size=size,
    )


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1]


Reader = Callable[[BinaryIO, bytes, int], tuple[int | None, float | None]]


def _wav(file: BinaryIO, head: bytes, size: int) -> tuple[int | None, float | None]:
    """RIFF/WAVE, bounded by the file: a streamed WAV declares sizes (0xFFFFFFFF) it never reached."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise _Unreadable
    info = WaveStreamInfo(file)
    if not info.channels:
        raise _Unreadable
    if not info.length:
        raise _NoAudio  # no data chunk, or an empty one
    duration = info.length
    if info.bitrate:
        duration = min(duration, size * 8 / info.bitrate)
    return info.channels, duration


def _starts_with_mpeg_frame(head: bytes) -> bool:
    """The first four bytes are an MPEG audio frame header: the sync, and no reserved value."""
    if len(head) < 4:
        return False
    word = int.from_bytes(head[:4], "big")
    version, layer = (word >> 19) & 3, (word >> 17) & 3
    bitrate, rate = (word >> 12) & 15, (word >> 10) & 3
    return word >> 21 == 0x7FF and version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _mp3(file: BinaryIO, head: bytes, size: int) -> tuple[int | None, float | None]:
    """MPEG audio from the first byte, or after an ID3 tag.

    mutagen looks for frames anywhere in the first megabyte and settles for
    two in a row, so it reads text followed by an MP3, or noise with two
    chance frame headers, as MP3. Here the file must start as MP3 does, and
    mutagen must be sure of the stream (a Xing/LAME header or four frames in
    a row).
    """
    if not head.startswith(b"ID3") and not _starts_with_mpeg_frame(head):
        raise _Unreadable
    info = MPEGInfo(file)
    if info.sketchy:
        raise _Unreadable
    return info.channels, info.length


def _m4a(file: BinaryIO, head: bytes, size: int) -> tuple[int | None, float | None]:
    """An MP4 file: its first box is the file type."""
    if head[4:8] != b"ftyp":
        raise _Unreadable
    info = MP4(file).info
    if not info.codec:
        raise _NoAudio  # no sound track: mutagen fell back to the movie's header
    return info.channels, info.length


def _ogg(file: BinaryIO, head: bytes, size: int) -> tuple[int | None, float | None]:
    """Ogg Opus or else Ogg Vorbis, told by the first packet, which names its codec."""
    if head[:4] != b"OggS" or len(head) < 27:
        raise _Unreadable
    packet = head[27 + head[26] :]  # after the page header and its segment table
    reader = OggOpus if packet.startswith(b"OpusHead") else OggVorbis  # each checks its own header
    info = reader(file).info
    return info.channels, info.length


def _flac(file: BinaryIO, head: bytes, size: int) -> tuple[int | None, float | None]:
    """FLAC, perhaps behind an ID3 tag (mutagen then checks the FLAC that follows it)."""
    if not head.startswith((b"fLaC", b"ID3")):
        raise _Unreadable
    info = FLAC(file).info
    return info.channels, info.length


# WebM is Matroska's EBML: elements of an id, a size and a payload, each id
# and size a variable-length integer whose first byte's leading zeros say how
# many more bytes it has. The ids below keep that length marker, as the
# Matroska specification writes them.
_EBML = 0x1A45DFA3
_DOC_TYPE = 0x4282
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TIMESTAMP_SCALE = 0x2AD7B1  # nanoseconds per Duration unit
_DURATION = 0x4489
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_TYPE = 0x83
_AUDIO = 0xE1
_CHANNELS = 0x9F
_CLUSTER = 0x1F43B675  # the media itself: no header comes after
_AUDIO_TRACK = 2


def _elements(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, bool]]:
    """The EBML elements from ``start`` to ``end``: id, payload start and end, whether it is all there.

    A payload cut off by ``end`` (the end of what was read) ends there. So
    does an unknown size, all its bits set, as live recorders write for the
    Segment: it is larger than any file.
    """
    at = start
    while at < end:
        fields = []
        for _ in range(2):  # the id, then the size
            if at >= end:
                return
            if data[at] == 0:
                raise _Unreadable  # longer than EBML's 8 bytes
            length = 9 - data[at].bit_length()
            if at + length > end:
                return
            fields.append((int.from_bytes(data[at : at + length], "big"), length))
            at += length
        (ident, _), (size, length) = fields
        stop = at + size - (1 << (7 * length))  # less the size's marker bit
        yield ident, at, min(stop, end), stop <= end
        at = stop


def _uint(data: bytes, start: int, end: int) -> int:
    return int.from_bytes(data[start:end], "big")


def _webm(file: BinaryIO, head: bytes, size: int) -> tuple[int | None, float | None]:
    """WebM by its EBML header's DocType; channels and duration from the Segment's header elements."""
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        raise _Unreadable
    top = _elements(head, 0, len(head))
    ident, start, stop, _ = next(top, (None, 0, 0, False))
    doc_type = next((head[b:e] for i, b, e, _ in _elements(head, start, stop) if i == _DOC_TYPE), None)
    if ident != _EBML or doc_type is None or doc_type.rstrip(b"\0") != b"webm":
        raise _Unreadable  # Matroska (.mkv), or not EBML at all
    ident, start, stop, _ = next(top, (None, 0, 0, False))
    if ident != _SEGMENT:
        raise _Unreadable
    scale, duration = 1_000_000, None
    audio: list[int | None] = []  # the channel count of each audio track
    tracks_read = False  # a whole Tracks element was read
    for ident, begin, end, whole in _elements(head, start, stop):
        if ident == _CLUSTER:
            break
        if ident == _INFO:
            for i, b, e, _ in _elements(head, begin, end):
                if i == _TIMESTAMP_SCALE:
                    scale = _uint(head, b, e)
                elif i == _DURATION and e - b in (4, 8):
                    duration = struct.unpack(">f" if e - b == 4 else ">d", head[b:e])[0]
        elif ident == _TRACKS:
            tracks_read = whole
            for entry, b, e, _ in _elements(head, begin, end):
                if entry == _TRACK_ENTRY:
                    kind, channels = _track(head, b, e)
                    if kind == _AUDIO_TRACK:
                        audio.append(channels)
    if not audio and tracks_read:
        raise _NoAudio  # video only
    if not audio and len(head) == size:
        raise _Unreadable  # the whole file is less than its header
    # Tracks beyond what was read (not seen in practice) leave the channels unknown.
    seconds = duration * scale / 1e9 if duration is not None else None
    return (audio[0] if audio else None), seconds


def _track(data: bytes, start: int, end: int) -> tuple[int | None, int | None]:
    """A TrackEntry's type and, for audio, its Channels (None when the entry does not say)."""
    kind = channels = None
    for ident, begin, stop, _ in _elements(data, start, end):
        if ident == _TRACK_TYPE:
            kind = _uint(data, begin, stop)
        elif ident == _AUDIO:
            for inner, b, e, _ in _elements(data, begin, stop):
                if inner == _CHANNELS:
                    channels = _uint(data, b, e)
    return kind, channels


_READERS: dict[str, Reader] = {
    "WAV": _wav,
    "MP3": _mp3,
    "M4A": _m4a,
    "OGG": _ogg,
    "FLAC": _flac,
    "WebM": _webm,
}
