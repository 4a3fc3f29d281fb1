"""Where a download's bytes go and what has arrived so far, so a broken stream resumes at the next
byte and the whole file is checked against the SHA-256 the server recorded. No I/O to the server
here: both clients drive these objects."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Callable
from typing import BinaryIO, Protocol, Union

from ._errors import IntegrityError
from ._gen.files.v1 import files_pb2 as pb
from ._types import File
from ._wire import Buffer

DownloadDest = Union[str, "os.PathLike[str]", BinaryIO]
#: Called with (bytes received so far, bytes expected).
DownloadProgress = Callable[[int, int], None]


class Sink(Protocol):
    def write(self, data: Buffer) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class PathSink:
    """A temporary file beside the destination, renamed over it only once every byte is verified,
    so a failed download leaves no partial file (and an existing file untouched)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"download destination {self.path!r} is a directory: give a file path")
        directory, base = os.path.split(os.path.abspath(self.path))
        self._temp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.part")
        self._file: BinaryIO | None = open(self._temp, "xb")  # noqa: SIM115 (closed by commit or abort)

    def write(self, data: Buffer) -> None:
        assert self._file is not None
        self._file.write(data)

    def commit(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        os.replace(self._temp, self.path)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            os.unlink(self._temp)
        except FileNotFoundError:
            pass


class WriterSink:
    """A caller's binary file object; what was written before a failure stays written."""

    def __init__(self, writer: BinaryIO) -> None:
        if isinstance(writer, io.TextIOBase):
            raise TypeError("the download destination is a text file: open it in binary mode ('wb')")
        self._writer = writer

    def write(self, data: Buffer) -> None:
        self._writer.write(data)

    def commit(self) -> None:
        flush = getattr(self._writer, "flush", None)
        if callable(flush):
            flush()

    def abort(self) -> None:
        pass


def open_sink(dest: DownloadDest) -> Sink:
    if isinstance(dest, (str, os.PathLike)):
        return PathSink(dest)
    if callable(getattr(dest, "write", None)):
        return WriterSink(dest)
    raise TypeError(f"dest must be a path or a writable binary file object, got {type(dest).__name__}")


class DownloadState:
    """The bytes of [offset, offset + length) received so far, and the request for the rest."""

    def __init__(self, file_id: str, offset: int, length: int | None, sink: Sink, progress: DownloadProgress | None) -> None:
        if not isinstance(file_id, str) or file_id == "":
            raise ValueError("file_id must be a non-empty string")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 0):
            raise ValueError(f"length must be an int >= 0 or None, got {length!r}")
        self.file_id = file_id
        self.offset = offset
        self.length = length
        self.sink = sink
        self.received = 0
        self.file: File | None = None
        self.expected: int | None = None
        self._progress = progress
        # Only a whole-file download can be checked against the file's SHA-256.
        self._digest = hashlib.sha256() if offset == 0 else None
        self._received_at_mark = 0

    def request(self) -> pb.DownloadFileRequest:
        """The next attempt asks for what has not arrived yet."""
        message = pb.DownloadFileRequest(file_id=self.file_id, offset=self.offset + self.received)
        if self.length is not None:
            message.length = self.length - self.received
        return message

    def on_file(self, message: pb.File) -> None:
        file = File.from_proto(message)
        if self.file is None:
            self.file = file
            end = file.bytes if self.length is None else min(file.bytes, self.offset + self.length)
            self.expected = max(0, end - self.offset)
            if self._digest is not None and end != file.bytes:
                self._digest = None  # a range that stops short of the end: nothing to check
            if self._progress is not None:
                self._progress(0, self.expected)
        elif (file.bytes, file.sha256) != (self.file.bytes, self.file.sha256):
            raise IntegrityError(f"{self.file_id} changed while it was downloaded (resumed at byte {self.offset + self.received})")

    def on_chunk(self, chunk: Buffer, report: bool = True) -> None:
        """Writes and hashes a chunk; `report=False` leaves the progress call to `report()`
        (the asyncio client writes in a worker thread but reports on the event loop)."""
        if self.expected is None:
            raise IntegrityError(f"DownloadFile {self.file_id}: a chunk came before the file")
        if self.received + len(chunk) > self.expected:
            raise IntegrityError(f"DownloadFile {self.file_id}: more than the {self.expected} bytes expected arrived")
        self.sink.write(chunk)
        if self._digest is not None:
            self._digest.update(chunk)
        self.received += len(chunk)
        if report:
            self.report()

    def report(self) -> None:
        if self._progress is not None and self.expected is not None:
            self._progress(self.received, self.expected)

    @property
    def done(self) -> bool:
        return self.expected is not None and self.received == self.expected

    def made_progress(self) -> bool:
        """Whether anything arrived since the last call (a resumed stream that moves on is not a
        repeated failure)."""
        moved = self.received > self._received_at_mark
        self._received_at_mark = self.received
        return moved

    def finish(self, request_id: str | None = None) -> File:
        assert self.file is not None and self.done
        if self._digest is not None and self.file.sha256 != "":
            got = self._digest.hexdigest()
            if got != self.file.sha256:
                raise IntegrityError(f"{self.file_id}: the bytes received have SHA-256 {got}, the server recorded {self.file.sha256}", request_id)
        return self.file
