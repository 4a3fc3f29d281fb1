"""Drives the FilesService over gRPC with grpcio and the generated code in gen/python: a 32 MiB
client-streaming upload, ranged and full server-streaming downloads (SHA-256 compared every time),
get, list and delete. test/e2e/python-client.test.ts runs it against a live server; any mismatch
exits non-zero with a message. The last stdout line is a JSON summary.

Usage: python files_client.py [--ca FILE | --tls] [--cert FILE --key FILE] [--server-name NAME]
                              [--token TOKEN] [--size BYTES] HOST:PORT

Plaintext by default. --ca trusts that CA and turns TLS on (--tls: TLS with grpcio's default roots);
--cert and --key add a client certificate (mutual TLS); --server-name overrides the name the server
certificate is checked against; --token sends "authorization: Bearer TOKEN" on every call (TLS only).
"""
import argparse
import faulthandler
import hashlib
import json
import os
import sys

sys.dont_write_bytecode = True  # keep gen/python free of __pycache__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "gen", "python"))

import grpc  # noqa: E402
from files.v1 import files_pb2, files_pb2_grpc  # noqa: E402

DEFAULT_FILE_SIZE = 32 << 20
MIN_FILE_SIZE = 4 << 10
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


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """Plaintext, or TLS with the given CA (or the default roots), client certificate and token."""
    if not args.tls:
        return grpc.insecure_channel(args.address)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read_file(args.ca) if args.ca else None,
        private_key=read_file(args.key) if args.key else None,
        certificate_chain=read_file(args.cert) if args.cert else None,
    )
    if args.token:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(args.token))
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.address, creds, options=options)


def run(args: argparse.Namespace) -> dict:
    size = args.size
    data = os.urandom(size)
    sha256 = hex_sum(data)
    with open_channel(args) as channel:
        stub = files_pb2_grpc.FilesServiceStub(channel)

        file = stub.UploadFile(upload_requests(data, sha256), timeout=TIMEOUT_S).file
        check(file.id.startswith("file-"), f"UploadFile: id {file.id!r}")
        check(
            (file.bytes, file.sha256, file.filename, file.purpose, file.status)
            == (size, sha256, "python-client.bin", files_pb2.FILE_PURPOSE_ASSISTANTS, files_pb2.FILE_STATUS_PROCESSED),
            f"UploadFile: unexpected file {file} (want {size} bytes, sha256 {sha256})",
        )

        # A range, an open-ended range and the whole file (of 32 MiB: 5 MiB + 3 for 7 MiB + 11).
        for offset, length in [(size * 5 // 32 + 3, size * 7 // 32 + 11), (size - 1000, None), (0, None)]:
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

        # The server (or at least this principal) is fresh: the upload is the only file.
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

    return {"ok": True, "file_id": file.id, "bytes": size, "sha256": sha256, "grpcio": grpc.__version__}


def parse_args(argv):
    parser = argparse.ArgumentParser(description="A grpcio client of the FilesService; see the module docstring.")
    parser.add_argument("address", help="HOST:PORT")
    parser.add_argument("--tls", action="store_true", help="TLS with grpcio's default roots (implied by --ca)")
    parser.add_argument("--ca", help="PEM CA certificate to trust; turns TLS on")
    parser.add_argument("--cert", help="PEM client certificate (mutual TLS)")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--server-name", help="name to verify the server certificate against")
    parser.add_argument("--token", help="bearer token (API key) sent on every call")
    parser.add_argument("--size", type=int, default=DEFAULT_FILE_SIZE, help="bytes to upload")
    args = parser.parse_args(argv)
    args.tls = args.tls or args.ca is not None
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    if (args.cert or args.server_name or args.token) and not args.tls:
        parser.error("--cert, --server-name and --token need TLS: give --ca or --tls")
    if args.size < MIN_FILE_SIZE:
        parser.error(f"--size must be at least {MIN_FILE_SIZE}")
    return args


def main() -> int:
    args = parse_args(sys.argv[1:])
    # A run that hangs prints every thread's stack before the test harness kills it (at 45 s or more).
    faulthandler.dump_traceback_later(40, exit=False)
    try:
        summary = run(args)
    except Failure as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return 1
    except grpc.RpcError as err:
        print(f"FAIL: {err.code()}: {err.details()}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Straight out: after a failed TLS handshake, grpcio's background threads have been seen to
    # keep a finished run from exiting; the outcome is already printed.
    os._exit(code)
