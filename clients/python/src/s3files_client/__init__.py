"""Client library for the S3 Files service's gRPC API (FilesService).

    import s3files_client

    with s3files_client.connect("127.0.0.1:8321") as client:
        file = client.upload("data.jsonl", purpose="batch")
        client.download(file.id, "copy.jsonl")

`s3files_client.aio` has the same client for asyncio; `s3files_client.pb` the generated messages
and stubs, for calls the clients do not wrap.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._aio import AsyncClient
from ._channel import DEFAULT_TIMEOUT_S, MAX_MESSAGE_BYTES, ChannelOptions, PathLike, SyncInterceptor
from ._download_state import DownloadDest, DownloadProgress
from ._errors import (
    AuthenticationError,
    FilesError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    TooLargeError,
    UnavailableError,
)
from ._retry import DEFAULT_RETRY, RetryPolicy
from ._source import UploadSource
from ._sync import Client
from ._types import ExpiresAfter, File, Order, Purpose
from ._upload_plan import DEFAULT_PART_CONCURRENCY, DEFAULT_PART_SIZE, DEFAULT_PART_THRESHOLD, MAX_PART_SIZE, ProgressCallback
from ._version import __version__

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "ChannelOptions",
    "Client",
    "DEFAULT_PART_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "DEFAULT_PART_THRESHOLD",
    "DEFAULT_TIMEOUT_S",
    "DownloadDest",
    "DownloadProgress",
    "ExpiresAfter",
    "File",
    "FilesError",
    "IntegrityError",
    "InvalidArgumentError",
    "MAX_MESSAGE_BYTES",
    "MAX_PART_SIZE",
    "NotFoundError",
    "Order",
    "PermissionDeniedError",
    "ProgressCallback",
    "Purpose",
    "RetryPolicy",
    "TooLargeError",
    "UnavailableError",
    "UploadSource",
    "__version__",
    "connect",
]


def connect(
    target: str,
    token: str | None = None,
    *,
    tls: bool | None = None,
    ca_file: PathLike | None = None,
    cert_file: PathLike | None = None,
    key_file: PathLike | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    transfer_timeout: float | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    options: ChannelOptions = (),
    interceptors: Sequence[SyncInterceptor] = (),
) -> Client:
    """A Client for the server at `target` ("host:port").

    `token` is sent as `authorization: Bearer <token>`. TLS is on when `tls=True` or any of
    `ca_file` (PEM CA to trust; default: the system's roots), `cert_file` and `key_file` (a client
    certificate for mutual TLS) is given. `timeout` is each unary call's deadline in seconds.
    """
    return Client(
        target,
        token,
        tls=tls,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        timeout=timeout,
        transfer_timeout=transfer_timeout,
        retry=retry,
        options=options,
        interceptors=interceptors,
    )
