"""The hand-written encoders and decoder of the byte-carrying messages agree with the generated
protobuf code, byte for byte (no server needed)."""

from __future__ import annotations

import os

import pytest

from s3files_client import _wire
from s3files_client.pb import files_pb2 as pb


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 1 << 20, (5 << 20) + 3])
def test_chunks_and_parts_encode_as_protobuf_does(size: int) -> None:
    data = os.urandom(size)
    assert _wire.encode_upload_request(data) == pb.UploadFileRequest(chunk=data).SerializeToString()
    assert _wire.encode_upload_request(memoryview(data)) == pb.UploadFileRequest(chunk=data).SerializeToString()
    upload_id = "upload_" + "ab" * 16
    part = _wire.PartRequest(upload_id, 3, size, lambda: _wire.encode_part(upload_id, 3, size, memoryview(data)))
    encoded = _wire.encode_part_request(part)
    assert pb.AddUploadPartRequest.FromString(encoded) == pb.AddUploadPartRequest(upload_id=upload_id, data=data)
    if size > 0:  # (protobuf leaves an empty `data` out; parts are never empty)
        assert encoded == pb.AddUploadPartRequest(upload_id=upload_id, data=data).SerializeToString()


def test_metadata_goes_through_the_generated_code() -> None:
    meta = pb.UploadFileMetadata(filename="a.jsonl", purpose=pb.FILE_PURPOSE_BATCH, size_bytes=0)
    assert _wire.encode_upload_request(meta) == pb.UploadFileRequest(metadata=meta).SerializeToString()


def test_a_part_that_reads_short_is_refused() -> None:
    with pytest.raises(ValueError, match="part 0 read 3 bytes, want 10"):
        _wire.encode_part("upload_x", 0, 10, b"123")


@pytest.mark.parametrize("size", [0, 1, 300, 1 << 18])
def test_download_chunks_decode_without_a_copy(size: int) -> None:
    data = os.urandom(size)
    raw = pb.DownloadFileResponse(chunk=data).SerializeToString()
    item = _wire.decode_download_response(raw)
    assert isinstance(item, memoryview) and bytes(item) == data
    assert size == 0 or item.obj is raw  # a view into the received message


def test_the_file_message_decodes_as_a_file() -> None:
    file = pb.File(id="file-" + "0" * 32, bytes=5, sha256="ab", filename="x")
    item = _wire.decode_download_response(pb.DownloadFileResponse(file=file).SerializeToString())
    assert item == file


def test_a_chunk_with_unexpected_fields_takes_the_generated_path() -> None:
    raw = pb.DownloadFileResponse(chunk=b"abc").SerializeToString() + b"\x18\x01"  # an unknown field 3
    item = _wire.decode_download_response(raw)
    assert isinstance(item, memoryview) and bytes(item) == b"abc"
    with pytest.raises(ValueError, match="neither a file nor a chunk"):
        _wire.decode_download_response(b"")
