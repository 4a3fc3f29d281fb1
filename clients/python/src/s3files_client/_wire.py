"""Encoders and a decoder for the three messages that carry file bytes, written by hand so those
bytes are copied once into the outgoing message (and not at all out of an incoming one) instead of
through a protobuf message object and back. Every other message goes through the generated code.

The wire format is protobuf's: a field is a tag (number << 3 | 2 for length-delimited), the
length as a varint, then the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from ._gen.files.v1 import files_pb2 as pb

Buffer = Union[bytes, bytearray, memoryview]

# Field 1 and field 2, length-delimited.
_TAG_1 = b"\x0a"
_TAG_2 = b"\x12"


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(data: Buffer, at: int) -> tuple[int, int]:
    """(value, position after it); raises ValueError past the end or past 10 bytes."""
    value, shift = 0, 0
    for i in range(at, min(at + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    raise ValueError("truncated varint")


# UploadFileRequest: the metadata message first, then the content as raw chunks.
UploadItem = Union[pb.UploadFileMetadata, Buffer]


def encode_upload_request(item: UploadItem) -> bytes:
    if isinstance(item, pb.UploadFileMetadata):
        return pb.UploadFileRequest(metadata=item).SerializeToString()
    return b"".join((_TAG_2, varint(len(item)), item))


@dataclass(frozen=True)
class PartRequest:
    """An AddUploadPartRequest whose message is built only when the call serializes it, so a part
    waiting for its turn or for a retry holds no copy of its bytes."""

    upload_id: str
    #: The part's place in the file, from 0.
    index: int
    size: int
    #: Returns the encoded message (see encode_part).
    encode: Callable[[], bytes]


def encode_part(upload_id: str, index: int, size: int, data: Buffer) -> bytes:
    """AddUploadPartRequest{upload_id, data}, copying `data` once."""
    if len(data) != size:
        raise ValueError(f"part {index} read {len(data)} bytes, want {size}: did the source change?")
    uid = upload_id.encode("utf-8")
    return b"".join((_TAG_1, varint(len(uid)), uid, _TAG_2, varint(len(data)), data))


def encode_part_request(request: PartRequest) -> bytes:
    return request.encode()


# DownloadFileResponse: the File first, then chunks (a view into the received message, not a copy).
DownloadItem = Union[pb.File, memoryview]


def decode_download_response(raw: bytes) -> DownloadItem:
    if raw[:1] == _TAG_2:
        length, start = _read_varint(raw, 1)
        if start + length == len(raw):
            return memoryview(raw)[start:]
    # Anything else (the File, or a chunk with fields we do not expect) takes the generated path.
    message = pb.DownloadFileResponse.FromString(raw)
    kind = message.WhichOneof("payload")
    if kind == "file":
        return message.file
    if kind == "chunk":
        return memoryview(message.chunk)
    raise ValueError("DownloadFile sent a message with neither a file nor a chunk")
