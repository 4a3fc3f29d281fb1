"""Drives the FilesService over gRPC with grpcio and the generated code in gen/python: a 32 MiB
client-streaming upload, ranged and full server-streaming downloads (SHA-256 compared every time),
get, list and delete. test/e2e/python-client.test.ts runs it against a live server; any mismatch
exits non-zero with a message. The last stdout line is a JSON summary.

Usage: python files_client.py HOST:PORT
"""
import hashlib
import json
import os
import sys

sys.dont_write_bytecode = True  # keep gen/python free of __pycache__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "gen", "python"))

import grpc  # noqa: E402
from files.v1 import files_pb2, files_pb2_grpc  # noqa: E402

FILE_SIZE = 32 << 20
CHUNK_SIZE = 256 << 10
TIMEOUT_S = 120


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def hex_sum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload_requests(data: bytes, sha256: str):
    """Metadata first, then the bytes in chunks."""
    yield files_pb2.UploadFileRequest(
        metadata=files_pb2.UploadFileMetadata(
            filename="python-client.bin",
            purpose=files_pb2.FILE_PURPOSE_ASSISTANTS,
            mime_type="application/octet-stream",
            size_bytes=len(data),
            sha256=sha256,
        )
    )
    view = memoryview(data)
    for offset in range(0, len(data), CHUNK_SIZE):
        yield files_pb2.UploadFileRequest(chunk=bytes(view[offset : offset + CHUNK_SIZE]))


def download(stub: files_pb2_grpc.FilesServiceStub, request: files_pb2.DownloadFileRequest):
    """The file from the first message and the bytes of the rest."""
    file, chunks = None, []
    for i, message in enumerate(stub.DownloadFile(request, timeout=TIMEOUT_S)):
        kind = message.WhichOneof("payload")
        if kind == "file":
            check(i == 0, f"DownloadFile(offset {request.offset}): file in message {i}, want only in the first")
            file = message.file
        elif kind == "chunk":
            check(i > 0, f"DownloadFile(offset {request.offset}): first message is a chunk, want the file")
            chunks.append(message.chunk)
        else:
            raise Failure(f"DownloadFile(offset {request.offset}): message {i} has no payload")
    return file, b"".join(chunks)


def expect_not_found(what: str, call) -> None:
    try:
        call()
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.NOT_FOUND, f"{what}: got {err.code()} {err.details()}, want NOT_FOUND")
        return
    raise Failure(f"{what}: succeeded, want NOT_FOUND")


def run(address: str) -> dict:
    data = os.urandom(FILE_SIZE)
    sha256 = hex_sum(data)
    with grpc.insecure_channel(address) as channel:
        stub = files_pb2_grpc.FilesServiceStub(channel)

        file = stub.UploadFile(upload_requests(data, sha256), timeout=TIMEOUT_S).file
        check(file.id.startswith("file-"), f"UploadFile: id {file.id!r}")
        check(
            (file.bytes, file.sha256, file.filename, file.purpose, file.status)
            == (FILE_SIZE, sha256, "python-client.bin", files_pb2.FILE_PURPOSE_ASSISTANTS, files_pb2.FILE_STATUS_PROCESSED),
            f"UploadFile: unexpected file {file} (want {FILE_SIZE} bytes, sha256 {sha256})",
        )

        # A range, an open-ended range and the whole file.
        for offset, length in [((5 << 20) + 3, (7 << 20) + 11), (FILE_SIZE - 1000, None), (0, None)]:
            request = files_pb2.DownloadFileRequest(file_id=file.id, offset=offset)
            if length is not None:
                request.length = length
            meta, got = download(stub, request)
            want = data[offset : offset + length] if length is not None else data[offset:]
            check(meta == file, f"DownloadFile(offset {offset}): first message file {meta}, want {file}")
            check(
                len(got) == len(want) and hex_sum(got) == hex_sum(want),
                f"DownloadFile(offset {offset}): got {len(got)} bytes sha256 {hex_sum(got)}, "
                f"want {len(want)} bytes sha256 {hex_sum(want)}",
            )

        got = stub.GetFile(files_pb2.GetFileRequest(file_id=file.id), timeout=TIMEOUT_S).file
        check(got == file, f"GetFile: {got}, want {file}")

        # The server is fresh: the upload is the only file.
        listed = stub.ListFiles(files_pb2.ListFilesRequest(limit=100, purpose=files_pb2.FILE_PURPOSE_ASSISTANTS), timeout=TIMEOUT_S)
        check(
            list(listed.data) == [file] and not listed.has_more and listed.first_id == file.id and listed.last_id == file.id,
            f"ListFiles: {listed}, want exactly {file.id}",
        )

        deleted = stub.DeleteFile(files_pb2.DeleteFileRequest(file_id=file.id), timeout=TIMEOUT_S)
        check(deleted.id == file.id and deleted.deleted, f"DeleteFile: {deleted}")
        expect_not_found("GetFile after delete", lambda: stub.GetFile(files_pb2.GetFileRequest(file_id=file.id), timeout=TIMEOUT_S))
        expect_not_found("DownloadFile after delete", lambda: download(stub, files_pb2.DownloadFileRequest(file_id=file.id)))
        after = stub.ListFiles(files_pb2.ListFilesRequest(), timeout=TIMEOUT_S)
        check(len(after.data) == 0, f"ListFiles after delete: {after}, want none")

    return {"ok": True, "file_id": file.id, "bytes": FILE_SIZE, "sha256": sha256, "grpcio": grpc.__version__}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        summary = run(sys.argv[1])
    except Failure as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
