"""The bench's client through the Python client library (targets pylib and pylibstream), run in a
virtualenv where the library is installed as a wheel: the line protocol of bench/clients/go/main.go
for large transfers (upload, download, delete).

An upload reads bench/payload.ts's payload from a file written once per size, outside the timing (a
user's large upload comes from disk, and a path is what lets the library declare the size and go
in parallel parts above its threshold); --stream sets the threshold past any size, so every upload
is one UploadFile stream. Downloads go to a writer that hashes what arrives.

Usage: python lib_client.py HOST:PORT POOL_FILE [--stream] [--ca CA_FILE]
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

import s3files_client

BLOCK = 1 << 20
POOL_BLOCKS = 4


class HashingWriter:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.bytes = 0
        self.writes = 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.bytes += len(data)
        self.writes += 1
        return len(data)

    def flush(self) -> None:
        pass


class LibClient:
    def __init__(self, client: s3files_client.Client, pool: bytes, stream: bool) -> None:
        self.client = client
        self.pool = [pool[i * BLOCK : (i + 1) * BLOCK] for i in range(POOL_BLOCKS)]
        self.stream = stream
        self.dir = tempfile.mkdtemp(prefix="files-bench-pylib-")
        self.payloads: dict[int, str] = {}

    def payload_file(self, size: int) -> str:
        if size not in self.payloads:
            path = os.path.join(self.dir, f"payload-{size}.bin")
            with open(path, "wb") as f:
                index, at = 0, 0
                while at < size:
                    n = min(BLOCK, size - at)
                    base = self.pool[index % POOL_BLOCKS]
                    f.write(index.to_bytes(8, "big") + base[8:n] if n >= 8 else base[:n])
                    index, at = index + 1, at + BLOCK
            self.payloads[size] = path
        return self.payloads[size]

    def handle(self, req: dict) -> dict:
        op = req["op"]
        if op == "upload":
            path = self.payload_file(req["size"])
            extra = {"part_threshold": sys.maxsize} if self.stream else {}
            t0 = time.perf_counter()
            file = self.client.upload(path, "user_data", filename="bench.bin", **extra)
            return {"id": file.id, "bytes": file.bytes, "sha256": file.sha256, "seconds": time.perf_counter() - t0}
        if op == "download":
            t0 = time.perf_counter()
            w = HashingWriter()
            self.client.download(req["id"], w)
            return {"bytes": w.bytes, "sha256": w.digest.hexdigest(), "chunks": w.writes, "seconds": time.perf_counter() - t0}
        if op == "delete":
            self.client.delete(req["id"])
            return {}
        raise ValueError(f"op {op!r}: the library client does large transfers only")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("target")
    parser.add_argument("pool_file")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--ca")
    args = parser.parse_args()
    with open(args.pool_file, "rb") as f:
        pool = f.read()
    with s3files_client.connect(args.target, ca_file=args.ca) as client:
        lib = LibClient(client, pool, args.stream)
        try:
            for line in sys.stdin:
                try:
                    reply = lib.handle(json.loads(line))
                except Exception as err:  # any failure answers the request, the harness decides
                    reply = {"error": f"{type(err).__name__}: {err}"}
                sys.stdout.write(json.dumps(reply) + "\n")
                sys.stdout.flush()
        finally:
            lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
