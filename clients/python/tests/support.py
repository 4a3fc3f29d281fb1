"""Helpers shared by the tests: the servers' addresses, payloads and small checks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar
from collections.abc import Awaitable

import s3files_client
import s3files_client.aio

T = TypeVar("T")


@dataclass(frozen=True)
class Servers:
    #: A plain server on S3 (moto), authentication off.
    target: str
    #: A server with API keys; `token` is one principal's, `list_token` another's (for listing).
    auth_target: str
    token: str
    list_token: str
    #: A server with max_file_bytes = max_part_bytes = `small_max_bytes` on local storage, whose
    #: directory the integrity test may tamper with.
    small_target: str
    small_max_bytes: int
    small_max_upload_bytes: int
    small_storage_dir: str
    #: A TLS server trusting `tls_ca` for client certificates (principal from the subject CN).
    tls_target: str
    tls_ca: str
    tls_cert: str
    tls_key: str


VARIABLES = {
    "target": "FILES_TARGET",
    "auth_target": "FILES_AUTH_TARGET",
    "token": "FILES_AUTH_TOKEN",
    "list_token": "FILES_LIST_TOKEN",
    "small_target": "FILES_SMALL_TARGET",
    "small_max_bytes": "FILES_SMALL_MAX_BYTES",
    "small_max_upload_bytes": "FILES_SMALL_MAX_UPLOAD_BYTES",
    "small_storage_dir": "FILES_SMALL_STORAGE_DIR",
    "tls_target": "FILES_TLS_TARGET",
    "tls_ca": "FILES_TLS_CA",
    "tls_cert": "FILES_TLS_CERT",
    "tls_key": "FILES_TLS_KEY",
}


def run(coro: Awaitable[T]) -> T:
    """Runs one coroutine on a new event loop (each test's asyncio client lives inside it)."""

    async def main() -> T:
        return await coro

    return asyncio.run(main())


def aclient(target: str, **kwargs: Any) -> s3files_client.AsyncClient:
    return s3files_client.aio.connect(target, **kwargs)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int) -> bytes:
    return os.urandom(size)


def unique_name(label: str) -> str:
    """A filename no other test uses, to find exactly this test's files in a shared listing."""
    return f"{label}-{uuid.uuid4().hex[:12]}.bin"


class ProgressLog:
    """Records progress calls and checks they only ever move forward."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        if self.calls:
            assert done >= self.calls[-1][0], f"progress went back: {self.calls[-1]} then {(done, total)}"
        self.calls.append((done, total))

    @property
    def last(self) -> tuple[int, int | None]:
        assert self.calls, "progress was never called"
        return self.calls[-1]

