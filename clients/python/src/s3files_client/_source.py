"""What an upload reads from: a path, bytes, or a binary file object.

A path, bytes, or a file object backed by a regular file have a known size: the upload declares it
and its SHA-256, and may be sent in parallel parts (read by offset, so parts need no shared file
position). Anything else is a stream, read front to back once and never buffered whole.

Parts read a regular file through short-lived memory maps rather than into fresh buffers: a part
is then copied once, straight into its message, and the client does not allocate and free a
part-sized buffer per part (memory glibc's allocator keeps, so RSS grows by about a third).
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, Protocol, Union

from ._wire import Buffer

CHUNK_BYTES = 1024 * 1024
HASH_BLOCK_BYTES = 4 * CHUNK_BYTES

UploadSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]


class Source(Protocol):
    @property
    def size(self) -> int | None:
        """None for a stream."""

    @property
    def name(self) -> str | None:
        """The base name of the path or file object, for the default filename."""

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Buffer]: ...

    def close(self) -> None: ...


class BytesSource:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self.size = len(self._view)
        self.name: str | None = None

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Buffer]:
        for at in range(0, self.size, chunk_bytes):
            yield self._view[at : at + chunk_bytes]

    @contextmanager
    def view(self, offset: int, length: int) -> Iterator[Buffer]:
        yield self._view[offset : offset + length]

    def sha256(self, stop: threading.Event | None = None) -> str:
        return _digest(self.chunks(HASH_BLOCK_BYTES), stop)

    def close(self) -> None:
        pass


class FileSource:
    """A regular file from `start` on, read by offset so its file position never matters."""

    def __init__(self, fd: int, start: int, size: int, name: str | None, owned: BinaryIO | None) -> None:
        self._fd = fd
        self._start = start
        self.size = size
        self.name = name
        self._owned = owned
        self._seek_lock = threading.Lock()

    def _pread(self, length: int, position: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._fd, length, position)
        with self._seek_lock:  # no pread (Windows): seek and read, one reader at a time
            os.lseek(self._fd, position, os.SEEK_SET)
            return os.read(self._fd, length)

    def read_at(self, offset: int, length: int) -> Buffer:
        data = self._pread(length, self._start + offset)
        if len(data) == length:
            return data
        # Short reads happen on some filesystems; a read that gets nothing means the file shrank.
        parts = [data]
        got = len(data)
        while got < length:
            more = self._pread(length - got, self._start + offset + got)
            if not more:
                raise ValueError(f"{self.name or 'the file'} ended at {offset + got} bytes, want {self.size}: it changed during the upload")
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Buffer]:
        for at in range(0, self.size, chunk_bytes):
            yield self.read_at(at, min(chunk_bytes, self.size - at))

    @contextmanager
    def view(self, offset: int, length: int) -> Iterator[Buffer]:
        """`length` bytes from `offset`, valid inside the `with`: a window of a memory map where
        the file allows one, else a copy read by offset. (A file must not shrink while it uploads:
        that fails the upload, and a cut landing inside a part being copied faults the process.)"""
        start = self._start + offset
        # A map over bytes the file no longer has would fault on access: check it still has them.
        if length == 0 or os.fstat(self._fd).st_size < start + length:
            yield self.read_at(offset, length)
            return
        aligned = start - start % mmap.ALLOCATIONGRANULARITY
        try:
            mapped = mmap.mmap(self._fd, length + start - aligned, offset=aligned, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # a filesystem without mmap
            yield self.read_at(offset, length)
            return
        whole = memoryview(mapped)
        window = whole[start - aligned :]
        try:
            yield window
        finally:
            window.release()
            whole.release()
            mapped.close()

    def sha256(self, stop: threading.Event | None = None) -> str:
        # Plain reads, not maps: this runs beside the parts, while the file could be cut short under it.
        return _digest(self.chunks(CHUNK_BYTES), stop)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


class StreamSource:
    def __init__(self, reader: BinaryIO, name: str | None) -> None:
        self._reader = reader
        self.size: int | None = None
        self.name = name

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Buffer]:
        while True:
            chunk = self._reader.read(chunk_bytes)
            if not chunk:
                return
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"the source's read() returned {type(chunk).__name__}, not bytes: open it in binary mode ('rb')")
            yield chunk

    def close(self) -> None:
        pass


class Stopped(Exception):
    """Hashing was stopped because the upload failed."""


def _digest(blocks: Iterator[Buffer], stop: threading.Event | None) -> str:
    digest = hashlib.sha256()
    for block in blocks:
        if stop is not None and stop.is_set():
            raise Stopped()
        digest.update(block)
    return digest.hexdigest()


def _regular_file_size(fd: int) -> int | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _base_name(name: object) -> str | None:
    if isinstance(name, (str, os.PathLike)):
        base = os.path.basename(os.fspath(name))
        return base if isinstance(base, str) and base != "" else None
    return None


def open_source(source: UploadSource) -> Source:
    """The Source for `source`; the caller closes it (which closes only files it opened itself)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return BytesSource(source)
    if isinstance(source, (str, os.PathLike)):
        f = open(source, "rb")  # noqa: SIM115 (closed by the Source)
        size = _regular_file_size(f.fileno())
        if size is None:
            return StreamSource(f, _base_name(source))
        return FileSource(f.fileno(), 0, size, _base_name(source), owned=f)
    if isinstance(source, io.TextIOBase):
        raise TypeError("the source is a text file: open it in binary mode ('rb')")
    if not callable(getattr(source, "read", None)):
        raise TypeError(f"source must be a path, bytes or a binary file object, got {type(source).__name__}")
    name = _base_name(getattr(source, "name", None))
    fd = _fileno(source)
    if fd is not None:
        size = _regular_file_size(fd)
        if size is not None and source.seekable():
            start = source.tell()
            return FileSource(fd, start, max(0, size - start), name, owned=None)
    return StreamSource(source, name)


def _fileno(source: BinaryIO) -> int | None:
    try:
        return source.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
