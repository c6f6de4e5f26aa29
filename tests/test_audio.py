"""app/audio.py: what a local file holds, told from its header, and every other file refused in words.

The samples under tests/data/audio/ are real files made once with ffmpeg
(their README says how); the bad files are built here from them or from
nothing.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from pathlib import Path

import pytest

from app.audio import ACCEPTED, CONTENT_TYPES, EXTENSIONS, HEAD_BYTES, AudioFile, NotAudio, probe

DATA = Path(__file__).resolve().parent / "data" / "audio"
NOTES = b"Call Bob back at three about the invoice.\n"  # not audio

# name, format, channels, duration (None: the file does not say)
SAMPLES = [
    ("mono.wav", "WAV", 1, 1.0),
    ("stereo.wav", "WAV", 2, 1.0),
    ("live.wav", "WAV", 1, 0.5),  # written to a pipe: its sizes say 0xFFFFFFFF
    ("mono.mp3", "MP3", 1, 1.0),
    ("stereo.mp3", "MP3", 2, 1.0),
    ("stereo.m4a", "M4A", 2, 1.0),
    ("vorbis.ogg", "OGG", 1, 1.0),
    ("opus.opus", "OGG", 1, 1.0),
    ("stereo.flac", "FLAC", 2, 1.0),
    ("mono.webm", "WebM", 1, 1.0),
    ("stereo.webm", "WebM", 2, 1.0),
    ("live.webm", "WebM", 1, None),  # written to a pipe: unknown sizes, no duration
]
NAMES = [name for name, *_ in SAMPLES]
ONE_OF_EACH = {"WAV": "mono.wav", "MP3": "mono.mp3", "M4A": "stereo.m4a", "OGG": "vorbis.ogg"}
ONE_OF_EACH |= {"FLAC": "stereo.flac", "WebM": "mono.webm"}


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def written(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def refusal(path: Path, name: str | None = None) -> str:
    """The message probe refuses the file with."""
    with pytest.raises(NotAudio) as refused:
        probe(path, name)
    return str(refused.value)


def png() -> bytes:
    """A real one-pixel PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def noise(length: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(length)


@pytest.mark.parametrize(("name", "kind", "channels", "duration"), SAMPLES, ids=NAMES)
def test_each_sample_is_recognised(name: str, kind: str, channels: int, duration: float | None) -> None:
    found = probe(DATA / name)
    assert found == AudioFile(
        format=kind,
        content_type=CONTENT_TYPES[kind],
        channels=channels,
        duration=found.duration,
        size=(DATA / name).stat().st_size,
    )
    assert found.duration == (None if duration is None else pytest.approx(duration, abs=0.2))


def test_the_content_types_are_the_audio_types_engines_expect() -> None:
    assert CONTENT_TYPES == {
        "WAV": "audio/wav",
        "MP3": "audio/mpeg",
        "M4A": "audio/mp4",
        "OGG": "audio/ogg",
        "FLAC": "audio/flac",
        "WebM": "audio/webm",
    }
    assert set(EXTENSIONS.values()) == set(ACCEPTED)


@pytest.mark.parametrize(
    ("extension", "kind"),
    [
        *[(".wav", "WAV"), (".mp3", "MP3"), (".m4a", "M4A"), (".flac", "FLAC"), (".webm", "WebM")],
        *[(".ogg", "OGG"), (".oga", "OGG"), (".opus", "OGG")],
    ],
)
def test_every_accepted_extension_reads_its_format(extension: str, kind: str) -> None:
    assert probe(DATA / ONE_OF_EACH[kind], name=f"call{extension}").format == kind


@pytest.mark.parametrize("name", ["CALL.WAV", "Call.Flac", "VOICEMAIL.WEBM"])
def test_upper_case_extensions_are_accepted(name: str, tmp_path: Path) -> None:
    kind = EXTENSIONS[os.path.splitext(name)[1].lower()]
    path = written(tmp_path, name, sample(ONE_OF_EACH[kind]))
    assert probe(path).format == kind


def test_an_uploads_original_name_is_judged_not_its_temporary_path(tmp_path: Path) -> None:
    path = written(tmp_path, "upload-7f3a", sample("stereo.m4a"))
    assert probe(path, name="call.m4a").format == "M4A"
    assert refusal(path, name="call.txt").startswith("call.txt: ")


@pytest.mark.parametrize("name", ["notes.txt", "recording", "call.mp4", "call.wav.zip"])
def test_an_unknown_extension_is_refused_naming_the_file(name: str, tmp_path: Path) -> None:
    path = written(tmp_path, name, sample("mono.wav"))
    assert refusal(path) == (
        f"{name}: not an audio file this service accepts (WAV, MP3, M4A, OGG, FLAC or WebM)."
    )


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    assert refusal(written(tmp_path, "x.wav", b"")) == "x.wav is empty."


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.wav", NOTES * 20),
        ("picture.wav", png()),
        ("song.flac", sample("mono.mp3")),
        ("song.wav", sample("stereo.flac")),
        ("noise.mp3", noise(4096)),
        ("noise.m4a", noise(4096)),
        ("noise.ogg", noise(4096)),
        ("noise.webm", noise(4096)),
        ("noise.wav", noise(4096)),
        ("noise.flac", noise(4096)),
        ("notes.mp3", NOTES * 2000),
        ("zeros.mp3", bytes(100_000)),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_content_that_is_not_the_named_format_is_refused(name: str, content: bytes, tmp_path: Path) -> None:
    kind = EXTENSIONS[os.path.splitext(name)[1]]
    assert refusal(written(tmp_path, name, content)) == (
        f"{name} is not {kind} audio (it could not be read as {kind})."
    )


@pytest.mark.parametrize("name", NAMES)
def test_a_sample_named_as_another_format_is_refused(name: str, tmp_path: Path) -> None:
    own = probe(DATA / name).format
    for extension, kind in EXTENSIONS.items():
        if kind != own:
            shown = f"x{extension}"
            assert (
                refusal(DATA / name, name=shown)
                == f"{shown} is not {kind} audio (it could not be read as {kind})."
            )


MAGIC = {
    "x.wav": b"RIFF\x00\x10\x00\x00WAVE",
    "x.mp3": b"ID3\x04\x00\x00\x00\x00\x01\x00",
    "y.mp3": b"\xff\xfb\x90\x64",  # a valid MPEG-1 layer III frame header, then no frames
    "x.m4a": b"\x00\x00\x00\x1cftypM4A ",
    "x.ogg": b"OggS\x00\x02" + bytes(20) + b"\x01\x1eOpusHead",
    "y.ogg": b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis",
    "x.flac": b"fLaC",
    "x.webm": sample("mono.webm")[:40],  # a whole WebM EBML header and a Segment's start
}


@pytest.mark.parametrize("name", sorted(MAGIC))
def test_random_bytes_behind_a_formats_magic_are_refused(name: str, tmp_path: Path) -> None:
    for seed in range(25):
        message = refusal(written(tmp_path, name, MAGIC[name] + noise(3000, seed)))
        assert message.startswith(f"{name} is not ") or message == f"{name} holds no audio."


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        *[("x.wav", cut) for cut in (12, 20, 30, 36)],  # 36: the fmt chunk whole, no data chunk
        *[("x.flac", cut) for cut in (4, 20, 41, 100)],  # 41: within the first metadata block
        *[("x.m4a", 40), ("x.ogg", 40), ("x.mp3", 30), ("x.webm", 30)],
    ],
)
def test_a_truncated_header_is_refused_naming_the_file(name: str, cut: int, tmp_path: Path) -> None:
    whole = sample(ONE_OF_EACH[EXTENSIONS[os.path.splitext(name)[1]]])
    assert refusal(written(tmp_path, name, whole[:cut])).startswith(name + " ")


@pytest.mark.parametrize("name", NAMES)
def test_a_sample_cut_short_anywhere_is_read_or_refused_never_another_error(
    name: str, tmp_path: Path
) -> None:
    whole = sample(name)
    path = tmp_path / name
    for cut in sorted({*range(1, 160), *range(160, len(whole), max(1, len(whole) // 40))}):
        path.write_bytes(whole[:cut])
        try:
            probe(path)
        except NotAudio as refused:
            assert name in str(refused)


def test_text_before_mp3_frames_is_refused(tmp_path: Path) -> None:
    """mutagen alone finds the frames after the text, and would read this as MP3."""
    content = NOTES * 20 + sample("mono.mp3")
    assert (
        refusal(written(tmp_path, "x.mp3", content))
        == "x.mp3 is not MP3 audio (it could not be read as MP3)."
    )


def test_noise_holding_two_mpeg_frame_headers_is_refused(tmp_path: Path) -> None:
    """mutagen alone reads two frames in a row as a "sketchy" MP3 of 0.19 seconds."""
    header = b"\xff\xfb\x90\x64"  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: frames of 417 bytes
    content = bytearray(noise(3000))
    content[0:4] = content[417:421] = header
    assert refusal(written(tmp_path, "x.mp3", bytes(content))) == (
        "x.mp3 is not MP3 audio (it could not be read as MP3)."
    )


def test_a_wav_with_no_samples_holds_no_audio(tmp_path: Path) -> None:
    header = sample("mono.wav")[:44]
    assert refusal(written(tmp_path, "x.wav", header[:40] + struct.pack("<I", 0))) == "x.wav holds no audio."


def test_a_wav_declaring_more_than_the_file_holds_lasts_what_the_file_holds(tmp_path: Path) -> None:
    content = sample("mono.wav")
    content = content[:40] + struct.pack("<I", 2**31) + content[44:]
    assert probe(written(tmp_path, "x.wav", content)).duration == pytest.approx(1.0, abs=0.01)


def test_a_webm_with_only_video_holds_no_audio(tmp_path: Path) -> None:
    content = sample("mono.webm")
    audio_type = b"\x83\x81\x02"  # TrackType, one byte: 2 (audio)
    assert content.count(audio_type) == 1
    assert refusal(written(tmp_path, "x.webm", content.replace(audio_type, b"\x83\x81\x01"))) == (
        "x.webm holds no audio."
    )


@pytest.mark.parametrize(
    "replacement",
    [b"\xec\x81\x02", b"\x9f\x81\x00"],  # the element made a Void; a count of 0
    ids=["no-channels-element", "zero-channels"],
)
def test_a_webm_track_that_does_not_say_its_channels_leaves_them_unknown(
    replacement: bytes, tmp_path: Path
) -> None:
    content = sample("stereo.webm")
    channels = b"\x9f\x81\x02"  # Channels, one byte: 2
    assert content.count(channels) == 1
    found = probe(written(tmp_path, "x.webm", content.replace(channels, replacement)))
    assert (found.format, found.channels) == ("WebM", None)


def test_a_webm_cut_within_its_tracks_is_refused(tmp_path: Path) -> None:
    content = sample("mono.webm")
    tracks = content.rindex(b"\x16\x54\xae\x6b")  # the Tracks element (the first is in the SeekHead)
    assert refusal(written(tmp_path, "x.webm", content[: tracks + 8])) == (
        "x.webm is not WebM audio (it could not be read as WebM)."
    )


def test_a_webm_whose_tracks_lie_beyond_the_header_read_is_accepted_with_channels_unknown(
    tmp_path: Path,
) -> None:
    content = sample("live.webm")
    segment = b"\x18\x53\x80\x67\x01" + b"\xff" * 7  # of unknown size
    assert content.count(segment) == 1
    at = content.index(segment) + len(segment)
    void = b"\xec\x01" + (HEAD_BYTES).to_bytes(7, "big") + bytes(HEAD_BYTES)
    found = probe(written(tmp_path, "x.webm", content[:at] + void + content[at:]))
    assert (found.format, found.channels, found.duration) == ("WebM", None, None)


def test_an_m4a_without_a_sound_track_holds_no_audio(tmp_path: Path) -> None:
    content = sample("stereo.m4a")
    assert content.count(b"soun") == 1  # the track's handler type
    assert refusal(written(tmp_path, "x.m4a", content.replace(b"soun", b"vide"))) == "x.m4a holds no audio."


def test_a_wav_that_says_it_has_no_channels_is_refused(tmp_path: Path) -> None:
    content = sample("mono.wav")
    content = content[:22] + struct.pack("<H", 0) + content[24:]  # fmt's channel count
    assert (
        refusal(written(tmp_path, "x.wav", content))
        == "x.wav is not WAV audio (it could not be read as WAV)."
    )


def test_a_matroska_file_named_webm_is_refused(tmp_path: Path) -> None:
    content = sample("mono.webm")
    header = b"\x1a\x45\xdf\xa3\x9f"  # the EBML header, 31 bytes long
    doc_type = b"\x42\x82\x84webm"
    assert content.startswith(header) and content.count(doc_type) == 1
    matroska = b"\x1a\x45\xdf\xa3\xa3" + content[5:].replace(doc_type, b"\x42\x82\x88matroska", 1)
    assert (
        refusal(written(tmp_path, "x.webm", matroska))
        == "x.webm is not WebM audio (it could not be read as WebM)."
    )


def test_a_path_that_does_not_exist_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "gone.wav")
    with pytest.raises(IsADirectoryError):
        probe(tmp_path, name="folder.wav")


def bytes_read() -> int:
    """What this process has read so far, by the kernel's count."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


# Ogg is left out: its length comes from its last page, so zeros after the
# audio make it no longer Ogg.
@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts reads with Linux's /proc/self/io")
@pytest.mark.parametrize("name", [name for name in NAMES if not name.endswith((".ogg", ".opus"))])
def test_a_large_file_is_probed_from_its_header_alone(name: str, tmp_path: Path) -> None:
    path = written(tmp_path, name, sample(name))
    os.truncate(path, 512 * 2**20)  # sparse: 512 MB of zeros that take no disk
    before = bytes_read()
    found = probe(path)
    assert bytes_read() - before < 2 * 2**20
    assert found.size == 512 * 2**20
