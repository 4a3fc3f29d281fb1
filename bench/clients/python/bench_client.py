"""The bench's grpcio client (target grpcio): grpcio with the generated code in gen/python, as a
Python user of the service would call it. The harness (bench/line-client.ts) runs one process per
measured server and drives it over the line protocol of bench/clients/go/main.go: one JSON request
per stdin line, one JSON answer per stdout line ({"error": ...} when a request fails); it exits when
stdin closes.

The upload payload is bench/payload.ts's, byte for byte: Python's standard library has no AES, so
the harness writes the 4 MiB pool (payloadPool()) to a file and this client builds each block from
it as the others do (pool block index % 4, the index big-endian in its first 8 bytes). Every
download is hashed as it arrives and checked by the harness against the payload's SHA-256.

Channel options: grpcio's defaults (its flow control sizes windows by BDP estimation), except the
message size limits raised to 16 MiB (the default receive limit is 4 MiB). With CA_FILE the channel
is TLS, trusting only that CA (PEM); without it, plaintext.

Usage: python bench_client.py HOST:PORT POOL_FILE [CA_FILE]
"""
import hashlib
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep gen/python free of __pycache__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "gen", "python"))

import grpc  # noqa: E402
from files.v1 import files_pb2, files_pb2_grpc  # noqa: E402

BLOCK = 1 << 20
POOL_BLOCKS = 4
MAX_MESSAGE = 16 << 20
CALL_TIMEOUT_S = 60


def millis(seconds: float) -> float:
    return seconds * 1000.0


class Client:
    def __init__(self, stub: files_pb2_grpc.FilesServiceStub, pool: bytes):
        self.stub = stub
        self.pool = [pool[i * BLOCK : (i + 1) * BLOCK] for i in range(POOL_BLOCKS)]

    def blocks(self, size: int):
        """The payload's blocks: one copy each, the index written over the first 8 bytes."""
        index, at = 0, 0
        while at < size:
            n = min(BLOCK, size - at)
            base = self.pool[index % POOL_BLOCKS]
            yield index.to_bytes(8, "big") + base[8:n] if n >= 8 else base[:n]
            index, at = index + 1, at + BLOCK

    def upload(self, size: int, sha256: str) -> dict:
        def requests():
            yield files_pb2.UploadFileRequest(
                metadata=files_pb2.UploadFileMetadata(
                    filename="bench.bin",
                    purpose=files_pb2.FILE_PURPOSE_USER_DATA,
                    mime_type="application/octet-stream",
                    size_bytes=size,
                    sha256=sha256,
                )
            )
            for block in self.blocks(size):
                yield files_pb2.UploadFileRequest(chunk=block)

        t0 = time.perf_counter()
        file = self.stub.UploadFile(requests()).file
        return {"id": file.id, "bytes": file.bytes, "sha256": file.sha256, "seconds": time.perf_counter() - t0}

    def download(self, file_id: str) -> dict:
        t0 = time.perf_counter()
        digest, size, chunks = hashlib.sha256(), 0, 0
        for message in self.stub.DownloadFile(files_pb2.DownloadFileRequest(file_id=file_id)):
            if message.WhichOneof("payload") == "chunk":
                digest.update(message.chunk)
                size += len(message.chunk)
                chunks += 1
        return {"bytes": size, "sha256": digest.hexdigest(), "chunks": chunks, "seconds": time.perf_counter() - t0}

    def delete(self, file_id: str) -> dict:
        self.stub.DeleteFile(files_pb2.DeleteFileRequest(file_id=file_id), timeout=CALL_TIMEOUT_S)
        return {}

    def small_upload(self, n: int, size: int) -> None:
        data = os.urandom(size)
        requests = [
            files_pb2.UploadFileRequest(
                metadata=files_pb2.UploadFileMetadata(
                    filename=f"small-{n}.bin", purpose=files_pb2.FILE_PURPOSE_ASSISTANTS, mime_type="application/octet-stream", size_bytes=size
                )
            ),
            files_pb2.UploadFileRequest(chunk=data),
        ]
        file = self.stub.UploadFile(iter(requests), timeout=CALL_TIMEOUT_S).file
        if file.bytes != size:
            raise RuntimeError(f"UploadFile stored {file.bytes} bytes, sent {size}")

    def small(self, concurrency: int, seconds: float, max_ops: int, size: int) -> dict:
        """`concurrency` threads upload back to back until `seconds` pass or `max_ops` have started."""
        lock = threading.Lock()
        state = {"started": 0, "errors": 0, "firstError": None}
        latencies: list[float] = []
        t0 = time.perf_counter()
        deadline = t0 + seconds

        def worker():
            while time.perf_counter() < deadline:
                with lock:
                    n = state["started"]
                    if n >= max_ops:
                        return
                    state["started"] = n + 1
                s = time.perf_counter()
                try:
                    self.small_upload(n, size)
                except Exception as err:  # counted, as the other clients count failed uploads
                    with lock:
                        state["errors"] += 1
                        if state["firstError"] is None:
                            state["firstError"] = str(err)
                    continue
                elapsed = millis(time.perf_counter() - s)
                with lock:
                    latencies.append(elapsed)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"ops": len(latencies), "errors": state["errors"], "firstError": state["firstError"], "latenciesMs": latencies, "seconds": time.perf_counter() - t0}

    def retrieve(self, ids: list[str]) -> dict:
        latencies: list[float] = []
        mismatches, first_mismatch = 0, None
        t0 = time.perf_counter()
        for file_id in ids:
            s = time.perf_counter()
            try:
                got = self.stub.GetFile(files_pb2.GetFileRequest(file_id=file_id), timeout=CALL_TIMEOUT_S).file.id
            except grpc.RpcError as err:
                got = f"{err.code()} {err.details()}"
            elapsed = millis(time.perf_counter() - s)
            if got != file_id:
                mismatches += 1
                first_mismatch = first_mismatch or f"GetFile {file_id}: {got}"
                continue
            latencies.append(elapsed)
        return {"latenciesMs": latencies, "seconds": time.perf_counter() - t0, "mismatches": mismatches, "firstMismatch": first_mismatch}

    def list(self, limit: int, max_pages: int) -> dict:
        seen: set[str] = set()
        duplicates = 0
        latencies: list[float] = []
        after = ""
        t0 = time.perf_counter()
        while len(latencies) < max_pages:
            s = time.perf_counter()
            page = self.stub.ListFiles(files_pb2.ListFilesRequest(limit=limit, after=after), timeout=CALL_TIMEOUT_S)
            latencies.append(millis(time.perf_counter() - s))
            for f in page.data:
                duplicates += f.id in seen
                seen.add(f.id)
            if not page.has_more or len(page.data) == 0:
                break
            after = page.last_id
        return {"pages": len(latencies), "rowsSeen": len(seen), "duplicates": duplicates, "latenciesMs": latencies, "seconds": time.perf_counter() - t0}

    def handle(self, req: dict) -> dict:
        op = req.get("op")
        if op == "upload":
            return self.upload(req["size"], req["sha256"])
        if op == "download":
            return self.download(req["id"])
        if op == "delete":
            return self.delete(req["id"])
        if op == "small":
            return self.small(req["concurrency"], req["seconds"], req["maxOps"], req["size"])
        if op == "retrieve":
            return self.retrieve(req["ids"])
        if op == "list":
            return self.list(req["limit"], req["maxPages"])
        raise ValueError(f"unknown op {op!r}")


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[2], "rb") as f:
        pool = f.read()
    if len(pool) != POOL_BLOCKS * BLOCK:
        print(f"{sys.argv[2]}: {len(pool)} bytes, want {POOL_BLOCKS * BLOCK}", file=sys.stderr)
        return 2
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    if len(sys.argv) == 4:
        with open(sys.argv[3], "rb") as f:
            channel = grpc.secure_channel(sys.argv[1], grpc.ssl_channel_credentials(root_certificates=f.read()), options=options)
    else:
        channel = grpc.insecure_channel(sys.argv[1], options=options)
    with channel:
        client = Client(files_pb2_grpc.FilesServiceStub(channel), pool)
        for line in sys.stdin:
            try:
                reply = client.handle(json.loads(line))
            except grpc.RpcError as err:
                reply = {"error": f"{err.code()}: {err.details()}"}
            except Exception as err:  # any failure answers the request, the harness decides
                reply = {"error": f"{type(err).__name__}: {err}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
