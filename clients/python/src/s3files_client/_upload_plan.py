"""How an upload will go (one stream, or parts of which size), worked out and checked before any
call, so bad arguments fail at once with a message naming them. Shared by both clients."""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ._channel import MAX_MESSAGE_BYTES, MiB
from ._errors import IntegrityError
from ._gen.files.v1 import files_pb2 as pb
from ._source import BytesSource, FileSource, Source
from ._types import ExpiresAfter, File, expires_after_message, purpose_value
from ._wire import encode_part

#: Files larger than this go through the Uploads API in parallel parts.
DEFAULT_PART_THRESHOLD = 64 * MiB
#: One part per AddUploadPart message. A little under 8 MiB, so that a part and its framing fit
#: in the server's default message limit (server.limits.max_message_bytes, 8 MiB), while staying
#: above S3's 5 MiB minimum that lets the server join parts without copying them through itself.
DEFAULT_PART_SIZE = 8 * MiB - 64 * 1024
DEFAULT_PART_CONCURRENCY = 4
#: The most parts one upload may have (the server's limit, and S3's).
MAX_PARTS = 10_000
#: Room in a part's message for the upload id and the framing.
_PART_FRAMING_BYTES = 1024
MAX_PART_SIZE = MAX_MESSAGE_BYTES - _PART_FRAMING_BYTES

#: Called with (bytes sent so far, total bytes or None when the source is a stream).
ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class UploadPlan:
    filename: str
    purpose: pb.FilePurpose
    mime_type: str
    expires_after: pb.ExpiresAfter | None
    size: int | None
    #: 0 for a single stream.
    part_size: int
    part_count: int
    part_concurrency: int

    @property
    def in_parts(self) -> bool:
        return self.part_count > 0

    def metadata(self, sha256: str | None) -> pb.UploadFileMetadata:
        message = pb.UploadFileMetadata(filename=self.filename, purpose=self.purpose, mime_type=self.mime_type)
        if self.expires_after is not None:
            message.expires_after.CopyFrom(self.expires_after)
        if self.size is not None:
            message.size_bytes = self.size
        if sha256 is not None:
            message.sha256 = sha256
        return message

    def create_upload_request(self) -> pb.CreateUploadRequest:
        assert self.size is not None
        message = pb.CreateUploadRequest(filename=self.filename, purpose=self.purpose, bytes=self.size, mime_type=self.mime_type)
        if self.expires_after is not None:
            message.expires_after.CopyFrom(self.expires_after)
        return message

    def part(self, index: int) -> tuple[int, int]:
        """(offset, size) of part `index`."""
        assert self.size is not None
        offset = index * self.part_size
        return offset, min(self.part_size, self.size - offset)


def _positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def plan_upload(
    source: Source,
    purpose: str,
    filename: str | None,
    mime_type: str | None,
    expires_after: ExpiresAfter | None,
    part_threshold: int,
    part_size: int,
    part_concurrency: int,
) -> UploadPlan:
    purpose_enum = purpose_value(purpose)
    name = filename if filename is not None else source.name
    if name is None or name == "":
        raise ValueError("filename is required when the source is bytes or a file object without a name")
    _positive_int(part_threshold, "part_threshold", 0)
    _positive_int(part_size, "part_size")
    if part_size > MAX_PART_SIZE:
        raise ValueError(f"part_size {part_size} is larger than one message can carry ({MAX_PART_SIZE} bytes)")
    _positive_int(part_concurrency, "part_concurrency")
    mime = mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    size = source.size
    part_count = 0
    # Parts need the size up front (CreateUpload declares it), so streams always go in one stream.
    if size is not None and size > part_threshold and isinstance(source, (BytesSource, FileSource)):
        part_count = -(-size // part_size)
        if part_count > MAX_PARTS:
            raise ValueError(f"{size} bytes in parts of {part_size} would take {part_count} parts; the limit is {MAX_PARTS}: raise part_size")
    return UploadPlan(
        filename=name,
        purpose=purpose_enum,
        mime_type=mime,
        expires_after=expires_after_message(expires_after),
        size=size,
        part_size=part_size if part_count else 0,
        part_count=part_count,
        part_concurrency=min(part_concurrency, part_count) if part_count else 0,
    )


class Progress:
    """Adds up bytes sent from any thread or task and reports each new total once, in order."""

    def __init__(self, callback: ProgressCallback | None, total: int | None) -> None:
        self._callback = callback
        self._total = total
        self._sent = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._callback is not None:
            self._callback(0, self._total)

    def add(self, n: int) -> None:
        if self._callback is None:
            return
        with self._lock:
            self._sent += n
            self._callback(self._sent, self._total)


def check_stored(file: File, size: int | None, sha256: str | None, request_id: str | None = None) -> File:
    """The server's record of an upload must match what was sent."""
    if size is not None and file.bytes != size:
        raise IntegrityError(f"the server stored {file.bytes} bytes of {file.id}, {size} were sent", request_id)
    if sha256 is not None and file.sha256 != sha256:
        raise IntegrityError(f"the server recorded SHA-256 {file.sha256} for {file.id}, the content sent has {sha256}", request_id)
    return file


def checked_part(response: pb.AddUploadPartResponse, index: int, size: int) -> str:
    """The id of a stored part, once the server confirms all of its bytes."""
    if response.part.bytes != size:
        raise IntegrityError(f"the server stored {response.part.bytes} bytes of part {index}, {size} were sent")
    return response.part.id


def part_message(src: BytesSource | FileSource, upload_id: str, plan: UploadPlan, index: int) -> bytes:
    """The AddUploadPart message of part `index`, read straight from the source into it."""
    offset, size = plan.part(index)
    with src.view(offset, size) as data:
        return encode_part(upload_id, index, size, data)
