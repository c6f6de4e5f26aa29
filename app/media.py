"""Audio we keep ourselves: the files people upload, under MEDIA_DIR.

Keys are made here ("uploads/UP….wav"), stored on the recording, and
turned back into paths only inside MEDIA_DIR. A file is written under a
temporary name and renamed when complete, so a crash mid-write leaves no
file that looks whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from flask import Flask, current_app

CHUNK_BYTES = 1024 * 1024
KEY = re.compile(r"^[a-z]+/[A-Za-z0-9]+(\.[a-z0-9]{1,5})?$")


class MediaStore:
    """Files in one folder, by key."""

    def __init__(self, folder: str) -> None:
        self.folder = os.path.abspath(folder)

    def path(self, key: str) -> str:
        if not KEY.match(key):
            raise ValueError(f"not a media key: {key!r}")
        return os.path.join(self.folder, key)

    def save(self, chunks: Iterable[bytes], key: str) -> int:
        """Write the chunks as ``key``; returns the bytes written."""
        path = self.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.part"
        written = 0
        try:
            with open(partial, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            _remove(partial)
            raise
        return written

    def tee(self, chunks: Iterable[bytes], key: str) -> Iterator[bytes]:
        """Pass the chunks on, writing them as ``key`` on the way; kept only if they all went through.

        A download streamed to the engine is kept at no extra read, in
        constant memory. Stopped early (the upload failed), nothing is kept.
        """
        path = self.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.part"
        complete = False
        try:
            with open(partial, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    yield chunk
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
            complete = True
        finally:
            if not complete:
                _remove(partial)

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")  # the caller closes it

    def chunks(self, key: str, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The file's bytes from ``start``, ``length`` of them (all when None), a chunk at a time."""
        with self.open(key) as media:
            media.seek(start)
            left = length
            while left is None or left > 0:
                chunk = media.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        return os.path.getsize(self.path(key))

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def delete(self, key: str) -> None:
        """Remove the file; one already gone is fine."""
        _remove(self.path(key))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def store() -> MediaStore:
    media: MediaStore = current_app.extensions["media"]
    return media


def init_app(app: Flask, *, folder: str | None) -> None:
    app.extensions["media"] = MediaStore(folder or os.path.join(app.instance_path, "media"))
